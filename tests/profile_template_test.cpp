#include <gtest/gtest.h>

#include "imprint/core/error.hpp"
#include "imprint/profile/profile.hpp"
#include "imprint/profile/template.hpp"

using namespace imprint;

namespace {

std::string error_of(const std::function<void()>& action) {
  try {
    action();
  } catch (const Error& error) {
    EXPECT_EQ(error.code(), ErrorCode::Invalid) << error.what();
    return error.what();
  }
  ADD_FAILURE() << "no error thrown";
  return "";
}

}  // namespace

TEST(ProfileTemplate, ExpandsEveryPlaceholderWithOrWithoutBlanks) {
  const Variables variables{{"device_id", "dev-1"}, {"dir", "/opt"}};
  EXPECT_EQ(expand_template("DeviceId={{device_id}} in {{ dir }}/{{\tdevice_id }}.", variables, "w"),
            "DeviceId=dev-1 in /opt/dev-1.");
  EXPECT_EQ(expand_template("", variables, "w"), "");
  EXPECT_EQ(expand_template("no placeholders } { }}", variables, "w"), "no placeholders } { }}");
}

TEST(ProfileTemplate, ValuesAreNotExpandedAgain) {
  const Variables variables{{"a", "{{b}}"}, {"b", "x"}};
  EXPECT_EQ(expand_template("{{a}}", variables, "w"), "{{b}}");
}

TEST(ProfileTemplate, UndefinedVariableIsAnErrorNamingItAndTheWhere) {
  const std::string message = error_of([] { expand_template("x={{missing}}", {{"other", "1"}}, "p.yaml:4:5: files[0].content"); });
  EXPECT_EQ(message, "p.yaml:4:5: files[0].content: undefined variable 'missing'");
}

TEST(ProfileTemplate, EmptyValueIsFineButAbsentIsNot) {
  EXPECT_EQ(expand_template("[{{v}}]", {{"v", ""}}, "w"), "[]");
  EXPECT_NE(error_of([] { expand_template("[{{v}}]", {}, "w"); }).find("undefined variable 'v'"), std::string::npos);
}

TEST(ProfileTemplate, SyntaxErrors) {
  EXPECT_NE(error_of([] { expand_template("a {{name", {{"name", "x"}}, "where"); }).find("where: unterminated '{{'"),
            std::string::npos);
  EXPECT_NE(error_of([] { template_variables("a {{two words}}", "where"); }).find("'{{two words}}' is not a variable name"),
            std::string::npos);
  EXPECT_NE(error_of([] { template_variables("{{}}", "where"); }).find("is not a variable name"), std::string::npos);
  EXPECT_NE(error_of([] { template_variables("{{1abc}}", "where"); }).find("is not a variable name"), std::string::npos);
}

TEST(ProfileTemplate, VariablesAreListedOnce) {
  EXPECT_EQ(template_variables("{{b}}{{a}} {{ b }}", "w"), (std::set<std::string>{"a", "b"}));
  EXPECT_TRUE(template_variables("plain", "w").empty());
}

TEST(ProfileTemplate, VariableNames) {
  EXPECT_TRUE(is_variable_name("device_id"));
  EXPECT_TRUE(is_variable_name("_x9"));
  EXPECT_TRUE(is_variable_name("PFX"));
  EXPECT_FALSE(is_variable_name(""));
  EXPECT_FALSE(is_variable_name("9x"));
  EXPECT_FALSE(is_variable_name("a-b"));
  EXPECT_FALSE(is_variable_name("a b"));
  EXPECT_FALSE(is_variable_name("a.b"));
}

TEST(ProfileTemplate, AScriptRefusesValuesWithControlCharactersUnlessRaw) {
  const Variables variables{{"serial", "a\nrm -rf /"}, {"tab", "a\tb"}, {"esc", "\x1b[2J"}, {"plain", "x y"}};
  EXPECT_EQ(error_of([&] { expand_content_template("#!/bin/sh\necho '{{serial}}'\n", variables, {}, "p.yaml:3:5: files[0].content"); }),
            "p.yaml:3:5: files[0].content: variable 'serial' holds a newline and this content is a script (#!): refused (mark the "
            "variable raw: true in the profile's variables if the script quotes it safely)");
  EXPECT_NE(error_of([&] { expand_content_template("#!/bin/sh\n{{tab}}", variables, {}, "w"); }).find("'tab' holds a tab"),
            std::string::npos);
  EXPECT_NE(error_of([&] { expand_content_template("#!/bin/sh\n{{esc}}", variables, {}, "w"); }).find("character 0x1b"),
            std::string::npos);
  // raw: allowed; not a script: allowed; plain values: allowed.
  EXPECT_EQ(expand_content_template("#!/bin/sh\n{{serial}}", variables, {"serial"}, "w"), "#!/bin/sh\na\nrm -rf /");
  EXPECT_EQ(expand_content_template("serial={{serial}}", variables, {}, "w"), "serial=a\nrm -rf /");
  EXPECT_EQ(expand_content_template("#!/bin/sh\necho '{{plain}}'", variables, {}, "w"), "#!/bin/sh\necho 'x y'");
  // A value that makes the content a script is checked too.
  EXPECT_NE(error_of([&] { expand_content_template("{{serial}}", {{"serial", "#!/bin/sh\nid"}}, {}, "w"); }).find("newline"),
            std::string::npos);
}

TEST(ProfileTemplate, RawVariablesInTheProfile) {
  const Profile profile = parse_profile("version: 1\nvariables:\n  a: plain\n  b: { value: \"x\", raw: true }\n  c: { raw: true }\n"
                                        "  d: { value: \"y\", raw: false }\n",
                                        "r.yaml", "/d");
  EXPECT_EQ(profile.variables, (Variables{{"a", "plain"}, {"b", "x"}, {"d", "y"}}));
  EXPECT_EQ(profile.raw_variables, (std::set<std::string>{"b", "c"}));
  EXPECT_NE(error_of([] { parse_profile("version: 1\nvariables:\n  a: { raw: yes please }\n", "r.yaml", "/d"); })
                .find("variables.a.raw: must be true or false"),
            std::string::npos);
  EXPECT_NE(error_of([] { parse_profile("version: 1\nvariables:\n  a: { valu: x }\n", "r.yaml", "/d"); })
                .find("r.yaml:3:8: variables.a: unknown key 'valu' (allowed: value, raw)"),
            std::string::npos);
}
