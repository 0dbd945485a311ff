#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "imprint/core/bytes.hpp"
#include "imprint/core/error.hpp"
#include "imprint/profile/profile.hpp"
#include "support.hpp"

using namespace imprint;

namespace {

std::string plan_error(const Profile& profile, const Variables& variables, const CredentialBytes& credentials = {}) {
  try {
    build_plan(profile, variables, credentials);
  } catch (const Error& error) {
    EXPECT_EQ(error.code(), ErrorCode::Invalid) << error.what();
    return error.what();
  }
  ADD_FAILURE() << "build_plan did not fail";
  return "";
}

// Binary bytes with a NUL and template-looking text: must arrive untouched.
using namespace std::string_literals;
const std::string binary_bytes = "\x7f" "ELF\x01\x01\x01\0\0{{device_id}}\xff\xfe}}{{ tail"s;

}  // namespace

TEST(ProfilePlan, SourceFileIsCopiedByteForByteRelativeToTheProfile) {
  test::TempDir dir;
  test::write_file(dir / "client.bin", binary_bytes);
  const Profile profile = parse_profile(R"(version: 1
files:
  - path: /usr/bin/prov_dev_client_bbb
    source: client.bin
    mode: "0755"
    expect: { elf: armhf }
)", "p.yaml", dir.path());
  const Plan plan = build_plan(profile, device_variables(profile, {}, "dev-1"), {});
  ASSERT_EQ(plan.ops.size(), 1u);
  const PlanOp& op = plan.ops[0];
  EXPECT_EQ(op.kind, OpKind::File);
  EXPECT_EQ(op.bytes, binary_bytes);
  EXPECT_EQ(op.bytes.size(), 33u);
  EXPECT_EQ(op.bytes.find('\0'), 7u);
  EXPECT_EQ(op.target.role, "");
  EXPECT_EQ(op.target.path, "/usr/bin/prov_dev_client_bbb");
  EXPECT_EQ(op.mode, 0755u);
  EXPECT_EQ(op.owner, "0:0");
  EXPECT_EQ(op.elf_arch, "armhf");
  EXPECT_EQ(op.origin, "p.yaml:3:5");
  EXPECT_EQ(plan.device_id, "dev-1");
}

TEST(ProfilePlan, TemplatedSourceAndSourcePathFromAVariable) {
  test::TempDir dir;
  test::write_file(dir / "motd.in", "Welcome to {{ device_id }} ({{site}})\n");
  const Profile profile = parse_profile(R"(version: 1
variables:
  site: lab
files:
  - path: "/etc/motd-{{device_id}}"
    source: "{{template_file}}"
    template: true
    mode: "0644"
    owner: "root:root"
)", "p.yaml", "/elsewhere");
  const Plan plan = build_plan(profile, device_variables(profile, {{"template_file", dir / "motd.in"}, {"site", "line-3"}}, "dev-7"), {});
  ASSERT_EQ(plan.ops.size(), 1u);
  EXPECT_EQ(plan.ops[0].bytes, "Welcome to dev-7 (line-3)\n");
  EXPECT_EQ(plan.ops[0].target.path, "/etc/motd-dev-7");
  EXPECT_EQ(plan.ops[0].owner, "root:root");
}

TEST(ProfilePlan, UndefinedVariableInATemplatedSourceNamesEntryAndFile) {
  test::TempDir dir;
  test::write_file(dir / "t.in", "x={{nope}}\n");
  const Profile profile = parse_profile("version: 1\nfiles:\n  - path: /x\n    source: t.in\n    template: true\n    mode: \"0644\"\n",
                                        "p.yaml", dir.path());
  const std::string message = plan_error(profile, device_variables(profile, {}, "d"));
  EXPECT_TRUE(message.starts_with("p.yaml:3:5: files[0].source " + dir / "t.in" + ": undefined variable 'nope'")) << message;
}

TEST(ProfilePlan, MissingSourceFileNamesEntryAndFile) {
  test::TempDir dir;
  const Profile profile = parse_profile("version: 1\nfiles:\n  - path: /x\n    content: a\n    mode: \"0644\"\n  - path: /y\n    source: gone.bin\n    mode: \"0644\"\n",
                                        "p.yaml", dir.path());
  const std::string message = plan_error(profile, device_variables(profile, {}, "d"));
  EXPECT_TRUE(message.starts_with("p.yaml:6:5: files[1]: source: ")) << message;
  EXPECT_NE(message.find(dir / "gone.bin"), std::string::npos) << message;
}

TEST(ProfilePlan, UndefinedVariableNamesLineAndKey) {
  const Profile profile = parse_profile(R"(version: 1
files:
  - path: /a
    content: "ok {{device_id}}"
    mode: "0644"
  - path: /b
    content: "scope={{scope}}"
    mode: "0644"
symlinks:
  - path: /l
    target: "{{link}}"
)", "p.yaml", "/d");
  EXPECT_EQ(plan_error(profile, device_variables(profile, {}, "d")), "p.yaml:6:5: files[1].content: undefined variable 'scope'");
  EXPECT_EQ(plan_error(profile, device_variables(profile, {{"scope", "s"}}, "d")), "p.yaml:10:5: symlinks[0].target: undefined variable 'link'");
  const Profile path_profile = parse_profile("version: 1\nremove:\n  - path: \"/var/{{where}}\"\n", "p.yaml", "/d");
  EXPECT_EQ(plan_error(path_profile, device_variables(path_profile, {}, "d")), "p.yaml:3:5: remove[0].path: undefined variable 'where'");
}

TEST(ProfilePlan, DuplicateAfterExpansionIsAnError) {
  const Profile profile = parse_profile(R"(version: 1
files:
  - path: "/etc/{{a}}"
    content: x
    mode: "0644"
  - path: "primary:/etc/{{b}}"
    content: y
    mode: "0644"
)", "p.yaml", "/d");
  EXPECT_EQ(build_plan(profile, device_variables(profile, {{"a", "one"}, {"b", "two"}}, "d"), {}).ops.size(), 2u);
  const std::string message = plan_error(profile, device_variables(profile, {{"a", "same"}, {"b", "same"}}, "d"));
  EXPECT_EQ(message, "p.yaml:6:5: files[1]: path 'primary:/etc/same' is also written by files[0] ('/etc/same') at p.yaml:3:5 (each path may appear once)");
}

TEST(ProfilePlan, ExpandedPathMustBeAbsolute) {
  const Profile profile = parse_profile("version: 1\nfiles:\n  - path: \"{{dir}}/x\"\n    content: a\n    mode: \"0644\"\n", "p.yaml", "/d");
  EXPECT_EQ(build_plan(profile, device_variables(profile, {{"dir", "/opt"}}, "d"), {}).ops[0].target.path, "/opt/x");
  const std::string message = plan_error(profile, device_variables(profile, {{"dir", "opt"}}, "d"));
  EXPECT_TRUE(message.starts_with("p.yaml:3:5: files[0]: path 'opt/x'")) << message;
  EXPECT_NE(message.find("not absolute"), std::string::npos);
  EXPECT_NE(plan_error(profile, device_variables(profile, {{"dir", "/.."}}, "d")).find("climbs above the root"), std::string::npos);
}

TEST(ProfilePlan, CredentialsComeFromTheCallback) {
  const Profile profile = parse_profile(R"(version: 1
credentials:
  key: k.pem
  cert: c.pem
files:
  - path: /data/mender/mender-agent.pem
    from: credentials.key
    format: pkcs1
    mode: "0600"
  - path: /data/mender/mender-certificate.pfx
    from: credentials.pfx
    mode: "0600"
)", "p.yaml", "/d");
  std::vector<std::string> calls;
  const CredentialBytes credentials = [&](const std::string& name, const std::string& format) {
    calls.push_back(name + "/" + format);
    return "bytes of " + name;
  };
  const Plan plan = build_plan(profile, device_variables(profile, {}, "d"), credentials);
  EXPECT_EQ(calls, (std::vector<std::string>{"key/pkcs1", "pfx/"}));
  ASSERT_EQ(plan.ops.size(), 2u);
  EXPECT_EQ(plan.ops[0].bytes, "bytes of key");
  EXPECT_EQ(plan.ops[0].target.path, "/data/mender/mender-agent.pem");
  EXPECT_EQ(plan.ops[0].credential, "key");
  EXPECT_EQ(plan.ops[1].bytes, "bytes of pfx");
  EXPECT_EQ(plan.ops[1].credential, "pfx");
  const auto json = nlohmann::json::parse(plan_to_json(plan));
  EXPECT_EQ(json["ops"][1]["credential"], "pfx");
  EXPECT_FALSE(json["ops"][1].contains("sha256")) << "a digest of a credential is printed";
  EXPECT_EQ(json["ops"][1]["secret"], true);
  EXPECT_EQ(json["ops"][1]["origin"], "p.yaml:10:5");
  EXPECT_EQ(plan.ops[1].mode, 0600u);

  // No callback: the entry says credentials are not configured.
  EXPECT_EQ(plan_error(profile, device_variables(profile, {}, "d")),
            "p.yaml:6:5: files[0]: from: credentials.key but credentials are not configured for this command");

  // A failing callback keeps its code and gets the entry's position.
  const CredentialBytes failing = [](const std::string&, const std::string&) -> std::string {
    throw Error("key k.pem does not match certificate c.pem", ErrorCode::CheckFailed);
  };
  try {
    build_plan(profile, device_variables(profile, {}, "d"), failing);
    FAIL() << "no error";
  } catch (const Error& error) {
    EXPECT_EQ(error.code(), ErrorCode::CheckFailed);
    EXPECT_EQ(std::string(error.what()), "p.yaml:6:5: files[0]: credentials.key: key k.pem does not match certificate c.pem");
  }
}

TEST(ProfilePlan, OrderIsDirectoriesFilesSymlinksRemoves) {
  const Profile profile = parse_profile(R"(version: 1
remove:
  - path: /etc/old
    recursive: true
symlinks:
  - path: /etc/link
    target: "../data/{{device_id}}"
files:
  - path: data:/mender/id
    content: "{{device_id}}"
    mode: "0640"
    owner: "0:1000"
directories:
  - path: /data/mender/d
    mode: "0700"
)", "p.yaml", "/d");
  const Plan plan = build_plan(profile, device_variables(profile, {}, "dev-9"), {});
  ASSERT_EQ(plan.ops.size(), 4u);
  EXPECT_EQ(plan.ops[0].kind, OpKind::Directory);
  EXPECT_EQ(plan.ops[0].mode, 0700u);
  EXPECT_EQ(plan.ops[1].kind, OpKind::File);
  EXPECT_EQ(plan.ops[1].target.role, "data");
  EXPECT_EQ(plan.ops[1].target.path, "/mender/id");
  EXPECT_EQ(plan.ops[1].bytes, "dev-9");
  EXPECT_EQ(plan.ops[1].owner, "0:1000");
  EXPECT_EQ(plan.ops[2].kind, OpKind::Symlink);
  EXPECT_EQ(plan.ops[2].bytes, "../data/dev-9");
  EXPECT_EQ(plan.ops[3].kind, OpKind::Remove);
  EXPECT_TRUE(plan.ops[3].recursive);
  EXPECT_EQ(plan.ops[3].origin, "p.yaml:3:5");
}

TEST(ProfilePlan, RequiredVariablesListEveryTemplateAndDeviceId) {
  test::TempDir dir;
  test::write_file(dir / "motd.in", "{{motd_var}}");
  test::write_file(dir / "raw.bin", "{{not_a_variable}}");
  const Profile profile = parse_profile(R"(version: 1
variables:
  pfx_password: "1234"
credentials:
  key: "{{cert_dir}}/key.pem"
  cert: "{{cert_dir}}/cert.pem"
files:
  - path: "/etc/{{name}}"
    content: "{{greeting}}"
    mode: "0644"
  - path: /etc/motd
    source: motd.in
    template: true
    mode: "0644"
  - path: /etc/raw
    source: raw.bin
    mode: "0644"
  - path: /data/mender/mender-certificate.pfx
    from: credentials.pfx
    mode: "0600"
symlinks:
  - path: /etc/l
    target: "{{link_target}}"
)", "p.yaml", dir.path());
  EXPECT_EQ(required_variables(profile), (std::vector<std::string>{"cert_dir", "device_id", "greeting", "link_target", "motd_var",
                                                                    "name", "pfx_password"}));
  const Profile bare = parse_profile("version: 1\n", "p.yaml", "/d");
  EXPECT_EQ(required_variables(bare), (std::vector<std::string>{"device_id"}));
}

TEST(ProfilePlan, DeviceVariablesPrecedence) {
  const Profile profile = parse_profile("version: 1\nvariables:\n  a: default\n  b: default\n", "p.yaml", "/d");
  const Variables variables = device_variables(profile, {{"b", "override"}, {"c", "new"}, {"device_id", "spoofed"}}, "real-id");
  EXPECT_EQ(variables, (Variables{{"a", "default"}, {"b", "override"}, {"c", "new"}, {"device_id", "real-id"}}));
  EXPECT_THROW(device_variables(profile, {}, ""), Error);
  EXPECT_THROW(device_variables(profile, {{"bad-name", "x"}}, "id"), Error);
}

TEST(ProfilePlan, JsonDescribesEveryOpWithoutTheBytes) {
  test::TempDir dir;
  test::write_file(dir / "client.bin", binary_bytes);
  const Profile profile = parse_profile(R"(version: 1
directories:
  - path: /data/mender/d
    mode: "0700"
    owner: "root:root"
files:
  - path: /data/mender/secret.pem
    content: "SECRET-KEY-{{device_id}}"
    mode: "0600"
  - path: rootfs:/usr/bin/client
    source: client.bin
    mode: "0755"
    expect: { elf: armhf }
symlinks:
  - path: /etc/l
    target: /data/x
remove:
  - path: /etc/old
)", "p.yaml", dir.path());
  const Plan plan = build_plan(profile, device_variables(profile, {}, "dev-1"), {});
  const std::string text = plan_to_json(plan);
  EXPECT_EQ(text.find("SECRET-KEY"), std::string::npos) << "file bytes must never be printed";
  const auto json = nlohmann::json::parse(text);
  EXPECT_EQ(json["device_id"], "dev-1");
  ASSERT_EQ(json["ops"].size(), 5u);
  const auto& dir_op = json["ops"][0];
  EXPECT_EQ(dir_op["kind"], "dir");
  EXPECT_EQ(dir_op["target"], "/data/mender/d");
  EXPECT_EQ(dir_op["mode"], "0700");
  EXPECT_EQ(dir_op["owner"], "root:root");
  EXPECT_EQ(dir_op["origin"], "p.yaml:3:5");
  const auto& secret = json["ops"][1];
  EXPECT_EQ(secret["kind"], "file");
  EXPECT_EQ(secret["mode"], "0600");
  EXPECT_EQ(secret["owner"], "0:0");
  EXPECT_EQ(secret["size"], std::string("SECRET-KEY-dev-1").size());
  EXPECT_EQ(secret["sha256"], sha256_hex("SECRET-KEY-dev-1"));
  const auto& client = json["ops"][2];
  EXPECT_EQ(client["target"], "rootfs:/usr/bin/client");
  EXPECT_EQ(client["size"], binary_bytes.size());
  EXPECT_EQ(client["sha256"], test::file_sha256(dir / "client.bin"));
  EXPECT_EQ(client["expect_elf"], "armhf");
  const auto& link = json["ops"][3];
  EXPECT_EQ(link["kind"], "symlink");
  EXPECT_EQ(link["link_target"], "/data/x");
  EXPECT_FALSE(link.contains("mode"));
  const auto& remove = json["ops"][4];
  EXPECT_EQ(remove["kind"], "remove");
  EXPECT_EQ(remove["recursive"], false);
  EXPECT_EQ(remove["origin"], "p.yaml:18:5");

  const std::string human = format_plan(plan);
  EXPECT_EQ(human.find("SECRET-KEY"), std::string::npos) << human;
  EXPECT_NE(human.find("plan for device dev-1: 5 operations"), std::string::npos) << human;
  EXPECT_NE(human.find("sha256=" + sha256_hex("SECRET-KEY-dev-1").substr(0, 12)), std::string::npos) << human;
  EXPECT_NE(human.find("-> /data/x"), std::string::npos) << human;
}

TEST(ProfilePlan, HumanListingIsAligned) {
  Plan plan;
  plan.device_id = "d";
  PlanOp file;
  file.kind = OpKind::File;
  file.target = {"", "/data/mender/mender-agent.pem"};
  file.bytes = "abc";
  file.mode = 0600;
  PlanOp dir;
  dir.kind = OpKind::Directory;
  dir.target = {"primary", "/opt"};
  dir.mode = 0755;
  dir.owner = "root:root";
  plan.ops = {file, dir};
  const std::string text = format_plan(plan);
  const std::string expected =
      "plan for device d: 2 operations\n"
      "  file  /data/mender/mender-agent.pem  0600  0:0        3 bytes  sha256=" + sha256_hex("abc").substr(0, 12) + "\n"
      "  dir   primary:/opt                   0755  root:root\n";
  EXPECT_EQ(text, expected);
  EXPECT_EQ(to_string(OpKind::Symlink), "symlink");
  EXPECT_EQ(to_string(OpKind::Remove), "remove");
}

// Fuzz finding (fuzz/regressions/profile_load/plan-json-invalid-utf8.yaml): a path or link target
// that is not UTF-8 made plan_to_json throw nlohmann's type_error 316 instead of printing the plan.
TEST(ProfilePlan, JsonOfNonUtf8PathsPrintsReplacementCharactersInsteadOfThrowing) {
  const Profile profile = parse_profile("version: 1\nfiles:\n  - path: /etc/motd-\xff\xfe\n    content: x\n    mode: \"0644\"\n"
                                        "symlinks:\n  - path: /etc/link\n    target: \"\xc3\"\n",
                                        "p.yaml", "/");
  const Plan plan = build_plan(profile, device_variables(profile, {}, "d1"), {});
  std::string json;
  ASSERT_NO_THROW(json = plan_to_json(plan));
  const auto parsed = nlohmann::json::parse(json);
  EXPECT_EQ(parsed.at("ops").at(0).at("target"), "/etc/motd-\xEF\xBF\xBD\xEF\xBF\xBD");
  EXPECT_EQ(parsed.at("ops").at(1).at("link_target"), "\xEF\xBF\xBD");
}
