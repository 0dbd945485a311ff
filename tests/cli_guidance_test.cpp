// What a new user trips over (issue 15, "Messages"): every missing variable named at once, a
// --set or CSV column the profile never uses, usage errors exiting 2, cat of a file A and B
// disagree on, certs refusing an id DPS would refuse, defaults in --help, ls -R and owner names,
// and a vfat refusal that comes before the libguestfs appliance would boot.
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>

#include "support.hpp"

using namespace imprint::test;

namespace {

// Uses key_file, cert_file (no defaults), a defaulted dps_client and device_id.
const char* kProfile = R"(version: 1
variables:
  dps_client: prov
files:
  - path: /data/mender/id
    content: "{{device_id}} {{dps_client}}\n"
    mode: "0644"
  - path: /data/mender/key
    content: "{{key_file}}"
    mode: "0600"
  - path: /data/mender/cert
    content: "{{cert_file}} {{key_file}}"
    mode: "0644"
)";

std::vector<std::string> stamp_arguments(const TempDir& dir, std::vector<std::string> extra) {
  write_file(dir / "profile.yaml", kProfile);
  std::vector<std::string> arguments{"stamp", "-p", dir / "profile.yaml", "-i", fixture("mbr.img"), "--device", "d1",
                                     "--backend", "native"};
  arguments.insert(arguments.end(), extra.begin(), extra.end());
  return arguments;
}

std::vector<std::string> batch_arguments(const TempDir& dir, const std::string& csv, std::vector<std::string> extra = {}) {
  write_file(dir / "profile.yaml", kProfile);
  write_file(dir / "devices.csv", csv);
  std::vector<std::string> arguments{"batch", "-p", dir / "profile.yaml", "-i", fixture("mbr.img"), "--devices",
                                     dir / "devices.csv", "-O", dir / "out", "--backend", "native", "-j", "1"};
  arguments.insert(arguments.end(), extra.begin(), extra.end());
  return arguments;
}

std::size_t count(const std::string& text, const std::string& what) {
  std::size_t found = 0;
  for (auto at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++found;
  return found;
}

}  // namespace

// The first missing variable was reported (with its file:line), the user fixed it, and got the next.
TEST(Guidance, EveryMissingVariableIsNamedOnceInOneLine) {
  TempDir dir;
  const CommandResult stamp = run_imprint(stamp_arguments(dir, {"--dry-run"}));
  EXPECT_EQ(stamp.status, 1);
  EXPECT_EQ(stamp.err, "imprint: " + dir / "profile.yaml" +
                           ": no value for variables 'cert_file', 'key_file': set each with --set NAME=... or a column of the "
                           "devices CSV\n");

  const CommandResult one = run_imprint(stamp_arguments(dir, {"--dry-run", "--set", "key_file=k"}));
  EXPECT_EQ(one.status, 1);
  EXPECT_EQ(one.err, "imprint: " + dir / "profile.yaml" +
                         ": no value for variable 'cert_file': set it with --set NAME=... or a column of the devices CSV\n");

  // A batch whose CSV lacks both columns: one line for all rows, each variable once.
  const CommandResult batch = run_imprint(batch_arguments(dir, "device_id\nd1\nd2\n"));
  EXPECT_EQ(batch.status, 1);
  EXPECT_EQ(count(batch.err, "\n"), 1u) << batch.err;
  EXPECT_EQ(count(batch.err, "'key_file'"), 1u) << batch.err;
  EXPECT_NE(batch.err.find("lines 2-3 (2 devices): " + dir / "profile.yaml" + ": no value for variables 'cert_file', 'key_file'"),
            std::string::npos)
      << batch.err;
  EXPECT_FALSE(std::filesystem::exists(dir / "out/d1.img"));
}

// `--set dps_clinet=...` was accepted silently and the profile's default was used.
TEST(Guidance, AVariableTheProfileNeverUsesIsAWarningNamingTheClosestOrAnErrorWithStrict) {
  TempDir dir;
  write_file(dir / "client", "x\n");
  const std::vector<std::string> sets{"--dry-run", "--set", "key_file=k", "--set", "cert_file=c", "--set", "dps_clinet=x",
                                      "--set-file", "key_fiel=" + dir / "client"};
  const CommandResult warned = run_imprint(stamp_arguments(dir, sets));
  ASSERT_EQ(warned.status, 0) << warned.err;
  EXPECT_EQ(warned.err, "imprint: warning: --set dps_clinet: " + dir / "profile.yaml" +
                            " never uses variable 'dps_clinet' (did you mean 'dps_client'?); ignored\n"
                            "imprint: warning: --set-file key_fiel: " + dir / "profile.yaml" +
                            " never uses variable 'key_fiel' (did you mean 'key_file'?); ignored\n");

  std::vector<std::string> strict = sets;
  strict.push_back("--strict");
  const CommandResult refused = run_imprint(stamp_arguments(dir, strict));
  EXPECT_EQ(refused.status, 2);
  EXPECT_EQ(refused.err, "imprint: --set dps_clinet: " + dir / "profile.yaml" +
                             " never uses variable 'dps_clinet' (did you mean 'dps_client'?)\n");

  // A used variable and a defaulted one are known: no warning.
  const CommandResult clean = run_imprint(stamp_arguments(dir, {"--dry-run", "--set", "key_file=k", "--set", "cert_file=c",
                                                                 "--set", "dps_client=y", "--strict"}));
  EXPECT_EQ(clean.status, 0) << clean.err;
  EXPECT_EQ(clean.err, "");
}

TEST(Guidance, ACsvColumnTheProfileNeverUsesIsAWarningOrWithStrictAnError) {
  TempDir dir;
  const std::string csv = "device_id,key_file,cert_file,dps_clinet\nd1,k,c,x\n";
  const CommandResult warned = run_imprint(batch_arguments(dir, csv));
  ASSERT_EQ(warned.status, 0) << warned.err;
  EXPECT_EQ(count(warned.err, "column 'dps_clinet'"), 1u) << warned.err;
  EXPECT_NE(warned.err.find("imprint: warning: " + dir / "devices.csv" + ": column 'dps_clinet': " + dir / "profile.yaml" +
                            " never uses variable 'dps_clinet' (did you mean 'dps_client'?); ignored\n"),
            std::string::npos)
      << warned.err;
  EXPECT_TRUE(std::filesystem::exists(dir / "out/d1.img"));

  TempDir strict_dir;
  const CommandResult refused = run_imprint(batch_arguments(strict_dir, csv, {"--strict"}));
  EXPECT_EQ(refused.status, 1);
  EXPECT_EQ(refused.err, "imprint: " + strict_dir / "devices.csv" + ": column 'dps_clinet': " + strict_dir / "profile.yaml" +
                             " never uses variable 'dps_clinet' (did you mean 'dps_client'?)\n");
  EXPECT_FALSE(std::filesystem::exists(strict_dir / "out"));
}

// README promises exit 2 for a usage error; these exited 1.
TEST(Guidance, UsageErrorsExitTwo) {
  TempDir dir;
  write_file(dir / "f", "x");
  const std::string image = copy_fixture("mbr.img", dir);
  const std::vector<std::pair<std::vector<std::string>, std::string>> cases{
      {stamp_arguments(dir, {"--set", "key_file=k", "--set", "cert_file=c"}), "imprint: stamp needs -o OUTPUT (or --in-place, or --dry-run)\n"},
      {stamp_arguments(dir, {"--dry-run", "--bmap"}), "imprint: stamp --bmap needs -o OUTPUT\n"},
      {stamp_arguments(dir, {"--dry-run", "--set", "key_file"}), "imprint: --set key_file: expected NAME=VALUE\n"},
      {batch_arguments(dir, "device_id\nd1\n", {"--shard", "3/2"}), "imprint: --shard 3/2: expected K/N with 1 <= K <= N\n"},
      {batch_arguments(dir, "device_id\nd1\n", {"--compress", "rar"}), "imprint: --compress rar: expected none, gz, xz or zst\n"},
      {{"put", "-m", "0968", dir / "f", image + ":/data/mender/g"}, "imprint: -m: mode '0968' is not an octal mode like \"0644\"\n"},
      {{"ls", "--backend", "fast", image + ":/data"}, "imprint: unknown backend \"fast\" (expected auto, native or guestfs)\n"},
      {{"flash", image, "-p", dir / "profile.yaml", "--target", dir / "t.img"}, "imprint: flash takes either IMAGE or -p PROFILE -i GOLDEN --device ID\n"},
  };
  for (const auto& [arguments, message] : cases) {
    const CommandResult result = run_imprint(arguments);
    EXPECT_EQ(result.status, 2) << arguments[0] << " " << arguments.back() << ": " << result.err;
    EXPECT_EQ(result.err, message);
  }
  EXPECT_FALSE(std::filesystem::exists(dir / "out"));
  EXPECT_FALSE(std::filesystem::exists(dir / "t.img"));
  EXPECT_EQ(file_sha256(image), file_sha256(fixture("mbr.img")));
}

// cat of a rootfs path printed rootfs A silently, also when B holds something else.
TEST(Guidance, CatSaysWhenTheRootFilesystemsDisagree) {
  TempDir dir;
  const std::string image = copy_fixture("mbr.img", dir);
  write_file(dir / "a", "on A\n");
  write_file(dir / "b", "on B\n");
  ASSERT_EQ(run_imprint({"put", dir / "a", image + ":/etc/same"}).status, 0);
  ASSERT_EQ(run_imprint({"put", dir / "a", image + ":primary:/etc/differs"}).status, 0);
  ASSERT_EQ(run_imprint({"put", dir / "b", image + ":secondary:/etc/differs"}).status, 0);
  ASSERT_EQ(run_imprint({"put", dir / "a", image + ":primary:/etc/only-a"}).status, 0);

  const CommandResult same = run_imprint({"cat", image + ":/etc/same"});
  EXPECT_EQ(same.status, 0);
  EXPECT_EQ(same.out, "on A\n");
  EXPECT_EQ(same.err, "");

  const CommandResult differs = run_imprint({"cat", image + ":/etc/differs"});
  EXPECT_EQ(differs.status, 0);
  EXPECT_EQ(differs.out, "on A\n");
  EXPECT_EQ(differs.err, "imprint: warning: /etc/differs differs between primary (p2) and secondary (p3): printed the copy on "
                         "primary (p2); name primary:/etc/differs or secondary:/etc/differs to choose\n");

  const CommandResult only = run_imprint({"cat", image + ":/etc/only-a"});
  EXPECT_EQ(only.status, 0);
  EXPECT_NE(only.err.find("/etc/only-a is a file on primary (p2) only, not on secondary (p3)"), std::string::npos) << only.err;

  // Naming one side is the way to choose: no note.
  const CommandResult chosen = run_imprint({"cat", image + ":secondary:/etc/differs"});
  EXPECT_EQ(chosen.out, "on B\n");
  EXPECT_EQ(chosen.err, "");
}

// certs made a certificate for 'dev 01'; only stamp's dps-registration-id check refused it later.
TEST(Guidance, CertsRefusesAnIdDpsWouldRefuseBeforeMakingAnything) {
  TempDir dir;
  write_file(dir / "ca.pass", "1234\n");
  for (const std::string& id : {std::string("dev 01"), std::string("dev-"), std::string(65, 'a')}) {
    const CommandResult result = run_imprint({"certs", "--ca-cert", fixture("credentials/intermediate.cert.pem"), "--ca-key",
                                              fixture("credentials/intermediate.key.pem"), "--ca-key-pass-file", dir / "ca.pass",
                                              "--device", id, "-O", dir / "certs", "--days", "30", "--key", "ec:p256"});
    EXPECT_EQ(result.status, 2) << id;
    EXPECT_EQ(count(result.err, "\n"), 1u) << result.err;
    EXPECT_EQ(result.err.rfind("imprint: --device \"" + id + "\"", 0), 0u) << result.err;
    EXPECT_NE(result.err.find("DPS registration id"), std::string::npos) << result.err;
    EXPECT_FALSE(std::filesystem::exists(dir / "certs")) << id;
  }
}

TEST(Guidance, HelpShowsDefaults) {
  const CommandResult certs = run_imprint({"certs", "--help"});
  EXPECT_EQ(certs.status, 0);
  for (const char* shown : {"INT=365", "TEXT=rsa:4096", "TEXT=pkcs1", "TEXT=compat"}) EXPECT_NE(certs.out.find(shown), std::string::npos) << shown << "\n" << certs.out;
  const CommandResult batch = run_imprint({"batch", "--help"});
  for (const char* shown : {"TEXT=none", "=number of cores", "TEXT=1/1", "TEXT={{device_id}}.img", "TEXT=auto"}) {
    EXPECT_NE(batch.out.find(shown), std::string::npos) << shown << "\n" << batch.out;
  }
  const CommandResult put = run_imprint({"put", "--help"});
  for (const char* shown : {"TEXT=0644", "TEXT=0:0"}) EXPECT_NE(put.out.find(shown), std::string::npos) << shown << "\n" << put.out;
}

// ls had no -R, and -l printed numbers where the image has names.
TEST(Guidance, LsRecursiveAndOwnerNamesFromTheImage) {
  TempDir dir;
  const std::string image = copy_fixture("mbr.img", dir);
  write_file(dir / "f", "x");
  ASSERT_EQ(run_imprint({"put", "--owner", "debian:mender", dir / "f", image + ":primary:/srv/a/b/file"}).status, 0);
  ASSERT_EQ(run_imprint({"put", "--owner", "4242:4343", dir / "f", image + ":primary:/srv/a/numeric"}).status, 0);

  const CommandResult tree = run_imprint({"ls", "-R", image + ":primary:/srv"});
  ASSERT_EQ(tree.status, 0) << tree.err;
  EXPECT_EQ(tree.out, "/srv:\na\n\n/srv/a:\nb\nnumeric\n\n/srv/a/b:\nfile\n");

  const CommandResult names = run_imprint({"ls", "-l", image + ":primary:/srv/a"});
  ASSERT_EQ(names.status, 0) << names.err;
  EXPECT_NE(names.out.find("-rw-r--r-- 4242 4343 1 "), std::string::npos) << names.out;  // no entry: numbers
  const CommandResult file = run_imprint({"ls", "-l", image + ":primary:/srv/a/b/file"});
  EXPECT_EQ(file.out.rfind("-rw-r--r-- debian mender 1 ", 0), 0u) << file.out;
  // debugfs (independent) stores the numbers the names stand for in the image's /etc/passwd and /etc/group.
  EXPECT_NE(debugfs(image, 2, "stat /srv/a/b/file").find("User:  1000   Group:   999 "), std::string::npos);
  const CommandResult gshadow = run_imprint({"ls", "-l", image + ":primary:/etc/gshadow"});
  EXPECT_EQ(gshadow.out.rfind("-rw-r----- root shadow ", 0), 0u) << gshadow.out;
}

// The vfat permission refusal came after the libguestfs appliance had booted (~50 s).
TEST(Guidance, WhatVfatCannotHoldIsRefusedBeforeTheApplianceStarts) {
  TempDir dir;
  const std::string image = copy_fixture("mbr.img", dir);
  write_file(dir / "f", "x");
  write_file(dir / "profile.yaml", "version: 1\nfiles:\n  - path: /uboot/uEnv.txt\n    content: \"x\"\n    mode: \"0600\"\n");
  const auto started = std::chrono::steady_clock::now();
  const CommandResult put = run_imprint({"put", "-m", "0600", dir / "f", image + ":/uboot/uEnv.txt"});
  EXPECT_EQ(put.status, 1);
  EXPECT_EQ(put.err, "imprint: boot (p1): /uEnv.txt: vfat keeps no owners or permissions: cannot store mode 0600 owner 0:0 "
                     "(only 0644 0:0)\n");
  const CommandResult owner = run_imprint({"put", "--owner", "debian", dir / "f", image + ":/uboot/uEnv.txt"});
  EXPECT_EQ(owner.status, 1);
  EXPECT_NE(owner.err.find("cannot store mode 0644 owner 1000:1000"), std::string::npos) << owner.err;
  const CommandResult mkdir = run_imprint({"mkdir", "-m", "0700", image + ":/uboot/private"});
  EXPECT_EQ(mkdir.status, 1);
  EXPECT_NE(mkdir.err.find("cannot store mode 0700"), std::string::npos) << mkdir.err;
  const CommandResult stamp = run_imprint({"stamp", "-p", dir / "profile.yaml", "-i", fixture("mbr.img"), "--device", "d1", "-o", dir / "out.img"});
  EXPECT_EQ(stamp.status, 1);
  EXPECT_EQ(stamp.err, "imprint: " + dir / "profile.yaml" + ":3:5: boot (p1): /uEnv.txt: vfat keeps no owners or permissions: "
                       "cannot store mode 0600 owner 0:0 (only 0644 0:0)\n");
  // Four commands, none of which booted an appliance (one boot alone takes 15 s or more).
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count(), 12.0);
  EXPECT_FALSE(std::filesystem::exists(dir / "out.img"));
  EXPECT_EQ(file_sha256(image), file_sha256(fixture("mbr.img")));
}
