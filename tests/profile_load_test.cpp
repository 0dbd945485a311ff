#include <gtest/gtest.h>

#include <filesystem>

#include "imprint/core/error.hpp"
#include "imprint/profile/profile.hpp"
#include "support.hpp"

using namespace imprint;

namespace {

std::string load_error(const std::string& yaml) {
  try {
    parse_profile(yaml, "p.yaml", "/profiles");
  } catch (const Error& error) {
    EXPECT_EQ(error.code(), ErrorCode::Invalid) << error.what();
    return error.what();
  }
  ADD_FAILURE() << "the profile loaded without an error:\n" << yaml;
  return "";
}

// The message starts with the position and names what is wrong.
void expect_load_error(const std::string& yaml, const std::string& position, const std::string& text) {
  const std::string message = load_error(yaml);
  EXPECT_TRUE(message.starts_with("p.yaml:" + position + ": ")) << message;
  EXPECT_NE(message.find(text), std::string::npos) << message;
  EXPECT_EQ(message.find('\n'), std::string::npos) << "one line: " << message;
}

const char* const full_profile = R"(version: 1
variables:
  pfx_password: "1234"
  scope: 0ne00ABCDEF
credentials:
  key: "certs/{{device_id}}/key.pem"
  cert: "certs/{{device_id}}/cert.pem"
  chain: chain.pem
  pfx_encryption: aes
directories:
  - path: /data/mender/extra
    mode: "0700"
    owner: "root:root"
  - path: primary:/opt/x
files:
  - path: /data/mender/mender-agent.pem
    from: credentials.key
    format: pkcs1
    mode: "0600"
  - path: /usr/share/mender/identity/mender-device-identity
    content: |
      #!/bin/sh
      echo "DeviceId={{device_id}}"
    mode: "0755"
  - path: /usr/bin/prov_dev_client_bbb
    source: "{{dps_client}}"
    mode: !!str 0755
    owner: "0:0"
    expect: { elf: armhf }
  - path: /etc/motd
    source: motd.in
    template: true
    mode: '644'
    owner: "1000:1000"
symlinks:
  - path: /etc/imprint-link
    target: "/data/{{device_id}}"
    owner: "0:0"
remove:
  - path: /etc/old
  - path: rootfs:/var/cache/old
    recursive: true
checks:
  - key-matches-cert
  - cert-valid-for-days: 30
  - cn-is-device-id
)";

}  // namespace

TEST(ProfileLoad, FullProfileParsesIntoTheRightStructures) {
  const Profile profile = parse_profile(full_profile, "fleet.yaml", "/srv/profiles");
  EXPECT_EQ(profile.path, "fleet.yaml");
  EXPECT_EQ(profile.directory, "/srv/profiles");
  EXPECT_EQ(profile.variables, (Variables{{"pfx_password", "1234"}, {"scope", "0ne00ABCDEF"}}));

  ASSERT_TRUE(profile.credentials);
  EXPECT_EQ(profile.credentials->key, "certs/{{device_id}}/key.pem");
  EXPECT_EQ(profile.credentials->cert, "certs/{{device_id}}/cert.pem");
  EXPECT_EQ(profile.credentials->chain, "chain.pem");
  EXPECT_EQ(profile.credentials->pfx_password, "{{pfx_password}}");
  EXPECT_EQ(profile.credentials->pfx_encryption, "aes");
  EXPECT_FALSE(profile.credentials->generate);
  EXPECT_EQ(profile.credentials->where.str(), "fleet.yaml:6:3");

  ASSERT_EQ(profile.directories.size(), 2u);
  EXPECT_EQ(profile.directories[0].path, "/data/mender/extra");
  EXPECT_EQ(profile.directories[0].mode, 0700u);
  EXPECT_EQ(profile.directories[0].owner, "root:root");
  EXPECT_EQ(profile.directories[0].where.str(), "fleet.yaml:11:5");
  EXPECT_EQ(profile.directories[1].mode, 0755u);  // the default
  EXPECT_EQ(profile.directories[1].owner, "0:0");

  ASSERT_EQ(profile.files.size(), 4u);
  const FileSpec& key = profile.files[0];
  EXPECT_EQ(key.where.str(), "fleet.yaml:16:5");
  EXPECT_EQ(key.kind, ContentKind::Credential);
  EXPECT_EQ(key.value, "key");
  EXPECT_EQ(key.format, "pkcs1");
  EXPECT_EQ(key.mode, 0600u);
  const FileSpec& identity = profile.files[1];
  EXPECT_EQ(identity.kind, ContentKind::Content);
  EXPECT_EQ(identity.value, "#!/bin/sh\necho \"DeviceId={{device_id}}\"\n");
  EXPECT_EQ(identity.mode, 0755u);
  const FileSpec& client = profile.files[2];
  EXPECT_EQ(client.kind, ContentKind::Source);
  EXPECT_EQ(client.value, "{{dps_client}}");
  EXPECT_EQ(client.mode, 0755u);
  EXPECT_EQ(client.elf_arch, "armhf");
  EXPECT_FALSE(client.template_source);
  const FileSpec& motd = profile.files[3];
  EXPECT_TRUE(motd.template_source);
  EXPECT_EQ(motd.mode, 0644u);
  EXPECT_EQ(motd.owner, "1000:1000");

  ASSERT_EQ(profile.symlinks.size(), 1u);
  EXPECT_EQ(profile.symlinks[0].target, "/data/{{device_id}}");
  ASSERT_EQ(profile.removes.size(), 2u);
  EXPECT_FALSE(profile.removes[0].recursive);
  EXPECT_EQ(profile.removes[1].path, "rootfs:/var/cache/old");
  EXPECT_TRUE(profile.removes[1].recursive);

  ASSERT_EQ(profile.checks.size(), 3u);
  EXPECT_EQ(profile.checks[0].name, "key-matches-cert");
  EXPECT_EQ(profile.checks[0].argument, "");
  EXPECT_EQ(profile.checks[1].name, "cert-valid-for-days");
  EXPECT_EQ(profile.checks[1].argument, "30");
  EXPECT_EQ(profile.checks[1].where.str(), "fleet.yaml:45:5");
}

TEST(ProfileLoad, GenerateCredentials) {
  const Profile profile = parse_profile(R"(version: 1
credentials:
  generate:
    ca_cert: ca/cert.pem
    ca_key: ca/key.pem
    ca_key_password: "{{ca_pass}}"
    key: ec:p256
    days: 30
  pfx_password: fixed
  pfx_encryption: compat
files:
  - path: /data/mender/mender-certificate.pfx
    from: credentials.pfx
    mode: "0600"
)", "g.yaml", "/d");
  ASSERT_TRUE(profile.credentials && profile.credentials->generate);
  const GenerateSpec& generate = *profile.credentials->generate;
  EXPECT_EQ(generate.ca_cert, "ca/cert.pem");
  EXPECT_EQ(generate.ca_key, "ca/key.pem");
  EXPECT_EQ(generate.ca_key_password, "{{ca_pass}}");
  EXPECT_EQ(generate.key_type, "ec:p256");
  EXPECT_EQ(generate.days, 30);
  EXPECT_EQ(profile.credentials->pfx_password, "fixed");
  EXPECT_EQ(profile.credentials->pfx_encryption, "compat");
}

TEST(ProfileLoad, EmptySectionsAreEmpty) {
  const Profile profile = parse_profile("version: 1\nfiles:\nvariables:\nchecks: []\n", "e.yaml", "/d");
  EXPECT_TRUE(profile.files.empty());
  EXPECT_TRUE(profile.variables.empty());
  EXPECT_TRUE(profile.checks.empty());
  EXPECT_FALSE(profile.credentials);
}

TEST(ProfileLoad, LoadProfileNamesTheFileAndResolvesItsDirectory) {
  test::TempDir dir;
  test::write_file(dir / "bad.yaml", "version: 1\nfiles:\n  - path: /etc/x\n    content: x\n    mode: 644\n");
  try {
    load_profile(dir / "bad.yaml");
    FAIL() << "a bare mode loaded";
  } catch (const Error& error) {
    EXPECT_TRUE(std::string(error.what()).starts_with(dir / "bad.yaml:5:11: ")) << error.what();
  }
  test::write_file(dir / "good.yaml", "version: 1\n");
  const Profile profile = load_profile(dir / "good.yaml");
  EXPECT_EQ(profile.directory, std::filesystem::path(dir.path()).lexically_normal().string());
}

TEST(ProfileLoad, MissingProfileFileIsNamed) {
  try {
    load_profile("/nonexistent/profile.yaml");
    FAIL() << "no error";
  } catch (const Error& error) {
    EXPECT_NE(std::string(error.what()).find("/nonexistent/profile.yaml"), std::string::npos) << error.what();
    EXPECT_EQ(error.code(), ErrorCode::NotFound);
  }
}

TEST(ProfileLoad, ShippedExampleLoads) {
  const Profile profile = load_profile(test::source_dir() + "/profiles/example.yaml");
  // The example shows every feature: check that each section is really there.
  EXPECT_FALSE(profile.variables.empty());
  ASSERT_TRUE(profile.credentials);
  EXPECT_FALSE(profile.directories.empty());
  EXPECT_FALSE(profile.symlinks.empty());
  EXPECT_FALSE(profile.removes.empty());
  EXPECT_FALSE(profile.checks.empty());
  bool source = false, content = false, credential = false, templated = false, expect = false, format = false;
  for (const FileSpec& file : profile.files) {
    source |= file.kind == ContentKind::Source;
    content |= file.kind == ContentKind::Content;
    credential |= file.kind == ContentKind::Credential;
    templated |= file.template_source;
    expect |= !file.elf_arch.empty();
    format |= !file.format.empty();
  }
  EXPECT_TRUE(source && content && credential && templated && expect && format);
}

// ---- every error names the line and column --------------------------------------------------

TEST(ProfileLoadErrors, YamlSyntaxError) {
  expect_load_error("version: 1\nfiles: [\n  {path: /x\n", "4:1", "YAML syntax error");
  expect_load_error("version: 1\nvariables:\n  a: b: c\n", "3:7", "YAML syntax error");
}

TEST(ProfileLoadErrors, EmptyOrNotAMap) {
  expect_load_error("", "1:1", "empty");
  expect_load_error("- a\n- b\n", "1:1", "must be a map");
}

TEST(ProfileLoadErrors, VersionMissingWrongOrNotANumber) {
  expect_load_error("files: []\n", "1:1", "missing required key 'version'");
  expect_load_error("version: 2\n", "1:10", "unsupported version 2");
  expect_load_error("version: one\n", "1:10", "version: must be a whole number");
  expect_load_error("version: [1]\n", "1:10", "version: must be a whole number");
}

TEST(ProfileLoadErrors, UnknownTopLevelKeyListsTheAllowedOnes) {
  expect_load_error("version: 1\nfile:\n  - path: /x\n", "2:1", "unknown key 'file' (allowed: version, variables, credentials, files");
}

TEST(ProfileLoadErrors, RepeatedKey) {
  expect_load_error("version: 1\nfiles: []\nfiles: []\n", "3:1", "key 'files' appears twice");
  expect_load_error("version: 1\nfiles:\n  - path: /x\n    content: a\n    mode: \"0644\"\n    mode: \"0600\"\n", "6:5",
                    "files[0]: key 'mode' appears twice");
}

TEST(ProfileLoadErrors, UnknownFileKeyNamesKeyAndAllowed) {
  expect_load_error("version: 1\nfiles:\n  - path: /x\n    sorce: a\n    mode: \"0644\"\n", "4:5",
                    "files[0]: unknown key 'sorce' (allowed: path, source, content, from, mode, owner, template, format, expect, secret)");
}

TEST(ProfileLoadErrors, UnknownKeysInEverySection) {
  expect_load_error("version: 1\ndirectories:\n  - path: /x\n    recursive: true\n", "4:5", "directories[0]: unknown key 'recursive'");
  expect_load_error("version: 1\nsymlinks:\n  - path: /x\n    target: /y\n    mode: \"0777\"\n", "5:5", "symlinks[0]: unknown key 'mode'");
  expect_load_error("version: 1\nremove:\n  - path: /x\n    force: true\n", "4:5", "remove[0]: unknown key 'force'");
  expect_load_error("version: 1\ncredentials:\n  key: k.pem\n  password: x\n", "4:3", "credentials: unknown key 'password'");
  expect_load_error("version: 1\ncredentials:\n  generate:\n    ca_cert: c\n    ca_key: k\n    bits: 4096\n", "6:5",
                    "credentials.generate: unknown key 'bits'");
  expect_load_error("version: 1\nfiles:\n  - path: /x\n    source: s\n    mode: \"0755\"\n    expect: { arch: armhf }\n", "6:15",
                    "files[0].expect: unknown key 'arch'");
}

TEST(ProfileLoadErrors, BareModesAreRefused) {
  const std::string head = "version: 1\nfiles:\n  - path: /x\n    content: a\n";
  expect_load_error(head + "    mode: 600\n", "5:11", "files[0].mode: write the mode as a quoted octal string like \"0600\"");
  expect_load_error(head + "    mode: 0600\n", "5:11", "quoted octal string");
  expect_load_error(head + "    mode: \"0900\"\n", "5:11", "files[0].mode: mode '0900' is not an octal mode");
  expect_load_error(head + "    mode: \"rw-r--r--\"\n", "5:11", "is not an octal mode");
  expect_load_error(head + "    mode: \"17777\"\n", "5:11", "is not an octal mode");
  expect_load_error(head + "    mode:\n", "5:5", "quoted octal string");
  expect_load_error("version: 1\ndirectories:\n  - path: /d\n    mode: 755\n", "4:11", "directories[0].mode: write the mode as a quoted");
}

TEST(ProfileLoadErrors, MissingRequiredKeys) {
  expect_load_error("version: 1\nfiles:\n  - content: a\n    mode: \"0644\"\n", "3:5", "files[0]: missing required key 'path'");
  expect_load_error("version: 1\nfiles:\n  - path: /x\n    content: a\n", "3:5", "files[0]: missing required key 'mode");
  expect_load_error("version: 1\nfiles:\n  - path: /x\n    mode: \"0644\"\n", "3:5", "files[0]: needs one of 'source', 'content' or 'from'");
  expect_load_error("version: 1\nsymlinks:\n  - path: /x\n", "3:5", "symlinks[0]: missing required key 'target'");
  expect_load_error("version: 1\nremove:\n  - recursive: true\n", "3:5", "remove[0]: missing required key 'path'");
  expect_load_error("version: 1\ndirectories:\n  - mode: \"0700\"\n", "3:5", "directories[0]: missing required key 'path'");
  expect_load_error("version: 1\ncredentials:\n  generate:\n    ca_cert: c\n", "4:5", "credentials.generate: missing required key 'ca_key'");
  expect_load_error("version: 1\nfiles:\n  - path: /x\n    source: s\n    mode: \"0755\"\n    expect: {}\n", "6:13",
                    "files[0].expect: missing required key 'elf'");
}

TEST(ProfileLoadErrors, ExactlyOneContentKey) {
  expect_load_error("version: 1\nfiles:\n  - path: /x\n    content: a\n    source: b\n    mode: \"0644\"\n", "5:5",
                    "files[0]: has both 'content' and 'source'");
}

TEST(ProfileLoadErrors, WrongTypes) {
  expect_load_error("version: 1\nfiles:\n  path: /x\n", "3:3", "files: must be a list");
  expect_load_error("version: 1\nfiles:\n  - /x\n", "3:5", "files[0]: an entry must be a map");
  expect_load_error("version: 1\nvariables: [a, b]\n", "2:12", "variables: must be a map");
  expect_load_error("version: 1\nvariables:\n  a: [1]\n", "3:6", "variables.a: must be a string, not a list");
  expect_load_error("version: 1\nvariables:\n  a:\n", "3:3", "variables.a: must be a string, not nothing");
  expect_load_error("version: 1\nfiles:\n  - path: [/x]\n    content: a\n    mode: \"0644\"\n", "3:11", "files[0].path: must be a string, not a list");
  expect_load_error("version: 1\nfiles:\n  - path: /x\n    content: {a: b}\n    mode: \"0644\"\n", "4:14", "files[0].content: must be a string, not a map");
  expect_load_error("version: 1\nfiles:\n  - path: /x\n    source: s\n    template: maybe\n    mode: \"0644\"\n", "5:15",
                    "files[0].template: must be true or false");
  expect_load_error("version: 1\nremove:\n  - path: /x\n    recursive: \"yes\"\n", "4:16", "remove[0].recursive: must be true or false");
  expect_load_error("version: 1\ncredentials:\n  generate:\n    ca_cert: c\n    ca_key: k\n    days: soon\n", "6:11",
                    "credentials.generate.days: must be a whole number");
  expect_load_error("version: 1\ncredentials: k.pem\n", "2:14", "credentials: must be a map");
}

TEST(ProfileLoadErrors, BadValues) {
  const std::string file = "version: 1\ncredentials:\n  key: k\nfiles:\n  - path: /x\n    mode: \"0600\"\n";
  expect_load_error(file + "    from: credentials.password\n", "7:11", "files[0].from: 'credentials.password' is not one of");
  expect_load_error(file + "    from: credentials.cert\n    format: pkcs1\n", "8:5", "files[0].format: only applies to 'from: credentials.key'");
  expect_load_error(file + "    from: credentials.key\n    format: der\n", "8:13", "files[0].format: 'der' is not pkcs1 or pkcs8");
  expect_load_error(file + "    content: a\n    template: true\n", "8:5", "files[0].template: only a 'source' file");
  expect_load_error(file + "    source: a\n    expect: { elf: mips }\n", "8:20", "files[0].expect.elf: 'mips' is not armhf");
  expect_load_error(file + "    content: a\n    owner: root\n", "8:12", "files[0].owner: 'root' is not \"uid:gid\" or \"user:group\"");
  expect_load_error(file + "    content: a\n    owner: \"0:\"\n", "8:12", "files[0].owner");
  expect_load_error("version: 1\ncredentials:\n  key: k\n  pfx_encryption: des\n", "4:19", "credentials.pfx_encryption: 'des' is not compat or aes");
  expect_load_error("version: 1\ncredentials:\n  generate:\n    ca_cert: c\n    ca_key: k\n    key: rsa:1024\n", "6:10",
                    "credentials.generate.key: 'rsa:1024' is not rsa:2048");
  expect_load_error("version: 1\ncredentials:\n  key_password: x\n", "3:3", "credentials: give key and cert, pfx, or generate");
  expect_load_error("version: 1\ncredentials:\n  key: k\n  generate:\n    ca_cert: c\n    ca_key: k\n", "3:3",
                    "'generate' makes the key and certificate");
}

TEST(ProfileLoadErrors, FromCredentialsWithoutACredentialsSection) {
  expect_load_error("version: 1\nfiles:\n  - path: /x\n    from: credentials.key\n    mode: \"0600\"\n", "4:11",
                    "files[0].from: the profile has no 'credentials:' section");
}

TEST(ProfileLoadErrors, BadPaths) {
  expect_load_error("version: 1\nfiles:\n  - path: etc/x\n    content: a\n    mode: \"0644\"\n", "3:11",
                    "files[0].path: 'etc/x' is neither an absolute device path nor ROLE:/PATH");
  expect_load_error("version: 1\nfiles:\n  - path: \"rootf:/x\"\n    content: a\n    mode: \"0644\"\n", "3:11", "'rootf:/x' is neither");
  expect_load_error("version: 1\nremove:\n  - path: /../etc\n", "3:11", "remove[0].path: '/../etc' climbs above the root");
  expect_load_error("version: 1\nsymlinks:\n  - path: /x\n    target: \"\"\n", "4:13", "symlinks[0].target: is empty");
}

TEST(ProfileLoadErrors, TemplateSyntaxIsCheckedWhereItIsWritten) {
  expect_load_error("version: 1\nfiles:\n  - path: /x\n    content: \"id={{device_id\"\n    mode: \"0644\"\n", "4:14",
                    "files[0].content: unterminated '{{'");
  expect_load_error("version: 1\nfiles:\n  - path: \"/x/{{a b}}\"\n    content: a\n    mode: \"0644\"\n", "3:11",
                    "files[0].path: '{{a b}}' is not a variable name");
}

TEST(ProfileLoadErrors, BadVariables) {
  expect_load_error("version: 1\nvariables:\n  bad-name: x\n", "3:3", "variables: 'bad-name' is not a variable name");
  expect_load_error("version: 1\nvariables:\n  device_id: x\n", "3:3", "'device_id' is built in");
  expect_load_error("version: 1\nvariables:\n  a: x\n  a: y\n", "4:3", "'a' appears twice");
}

TEST(ProfileLoadErrors, BadChecks) {
  expect_load_error("version: 1\nchecks: [key-matches-cert, key-matches-crt]\n", "2:28", "checks[1]: unknown check 'key-matches-crt' (known: key-matches-cert");
  expect_load_error("version: 1\nchecks:\n  - cert-valid-for-days\n", "3:5", "cert-valid-for-days needs a number of days");
  expect_load_error("version: 1\nchecks:\n  - cert-valid-for-days: soon\n", "3:26", "checks[0].cert-valid-for-days: must be a whole number");
  expect_load_error("version: 1\nchecks:\n  - cert-valid-for-days: 0\n", "3:26", "must be at least 1");
  expect_load_error("version: 1\nchecks:\n  - rsa-only: true\n", "3:5", "check 'rsa-only' takes no argument");
  expect_load_error("version: 1\nchecks:\n  - rsa-only\n  - pfx-opens\n  - rsa-only\n", "5:5",
                    "checks[2]: check 'rsa-only' is already listed at p.yaml:3:5");
  expect_load_error("version: 1\nchecks:\n  - [a]\n", "3:5", "checks[0]: a check is a name");
}

TEST(ProfileLoadErrors, SamePathTwiceNamesBothEntries) {
  expect_load_error(R"(version: 1
files:
  - path: /etc/x
    content: a
    mode: "0644"
  - path: /etc/x
    content: b
    mode: "0644"
)", "6:5", "files[1]: path '/etc/x' is also written by files[0] at p.yaml:3:5");
}

TEST(ProfileLoadErrors, OverlappingRolePathsAreTheSamePath) {
  const auto two = [](const std::string& first, const std::string& second) {
    return "version: 1\nfiles:\n  - path: \"" + first + "\"\n    content: a\n    mode: \"0644\"\nremove:\n  - path: \"" + second + "\"\n";
  };
  expect_load_error(two("/etc/x", "primary:/etc/x"), "7:5", "remove[0]: path 'primary:/etc/x' is also written by files[0] ('/etc/x') at p.yaml:3:5");
  expect_load_error(two("secondary:/etc/x", "/etc//./x"), "7:5", "also written by files[0]");
  expect_load_error(two("rootfs:/etc/x", "primary:/etc/x"), "7:5", "also written by files[0]");
  expect_load_error(two("/data/mender/k.pem", "data:/mender/k.pem"), "7:5", "also written by files[0]");
  expect_load_error(two("/uboot/uEnv.txt", "boot:/uEnv.txt"), "7:5", "also written by files[0]");
  expect_load_error(two("/etc/{{name}}", "/etc/{{name}}"), "7:5", "also written by files[0]");
  expect_load_error(
      "version: 1\ndirectories:\n  - path: /opt/d\nsymlinks:\n  - path: rootfs:/opt/d\n    target: /x\n", "5:5",
      "symlinks[0]: path 'rootfs:/opt/d' is also written by directories[0]");
}

TEST(ProfileLoad, DifferentPartitionsDoNotOverlap) {
  const Profile profile = parse_profile(R"(version: 1
files:
  - path: primary:/etc/x
    content: a
    mode: "0644"
  - path: secondary:/etc/x
    content: b
    mode: "0644"
  - path: /data/etc/x
    content: c
    mode: "0644"
  - path: data:/etc/y
    content: c
    mode: "0644"
  - path: /etc/y
    content: c
    mode: "0644"
)", "p.yaml", "/d");
  EXPECT_EQ(profile.files.size(), 5u);
}
