#include <gtest/gtest.h>

#include "imprint/error.hpp"
#include "imprint/template.hpp"

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
