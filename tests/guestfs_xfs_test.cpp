// Stamping an image whose root and data filesystems are xfs (fixtures/make-xfs.sh): the auto
// backend sends every write through libguestfs. Checked with xfs_repair -n and xfs_db on the
// partitions copied out, and the bytes read back with guestfish (one read-only launch).
#include <gtest/gtest.h>

#include "support.hpp"

using namespace imprint::test;

namespace {

const std::string kDevice = "mender-azure-test-device1";

std::string credential(const std::string& name) { return fixture("credentials/" + name); }

std::string copy_partition(const std::string& image, int number, const TempDir& dir) {
  const Span span = partition_span(image, number);
  const std::string part = dir / ("p" + std::to_string(number) + ".fs");
  shell("dd if='" + image + "' of='" + part + "' bs=1M skip=" + std::to_string(span.offset >> 20) +
        " count=" + std::to_string(span.size >> 20) + " conv=sparse status=none");
  return part;
}

// "core.mode = 0100600\ncore.uid = 0\ncore.gid = 0\n" for a path (xfs_db, read-only).
std::string xfs_stat(const std::string& part, const std::string& path) {
  const CommandResult result = run({"xfs_db", "-r", "-c", "path " + path, "-c", "print core.mode core.uid core.gid", part});
  if (result.status != 0 || !result.err.empty()) throw std::runtime_error("xfs_db " + path + ": " + result.err);
  return result.out;
}

std::string owner_and_mode(const std::string& mode) {
  return "core.mode = " + mode + "\ncore.uid = 0\ncore.gid = 0\n";
}

}  // namespace

TEST(GuestfsXfs, StampWritesEveryFileIntoXfsRootAndDataFilesystems) {
  const std::string golden = fixture("xfs.img");
  const std::string golden_sha = file_sha256(golden);
  TempDir dir;
  const std::string output = dir / "device.img";
  const CommandResult stamped = run_imprint(
      {"stamp", "-p", source_dir() + "/profiles/azure-dps-mender.yaml", "-i", golden, "--device", kDevice, "-o", output,
       "--set", "key_file=" + credential(kDevice + ".key.pem"), "--set", "cert_file=" + credential(kDevice + ".cert.pem"),
       "--set", "pfx_file=" + credential(kDevice + ".cert.pfx"), "--set", "dps_client=" + fixture("elf/hello-armhf")});
  ASSERT_EQ(stamped.status, 0) << stamped.err;
  EXPECT_EQ(file_sha256(golden), golden_sha) << "the golden image changed";
  EXPECT_EQ(partition_sha256(output, 1), partition_sha256(golden, 1)) << "the boot partition changed";

  for (int number : {2, 3, 4}) {
    const std::string part = copy_partition(output, number, dir);
    const CommandResult repair = run({"xfs_repair", "-n", part});
    EXPECT_EQ(repair.status, 0) << "p" << number << ": " << repair.out << repair.err;
    if (number == 4) {
      EXPECT_EQ(xfs_stat(part, "/mender/mender-agent.pem"), owner_and_mode("0100600"));
      EXPECT_EQ(xfs_stat(part, "/mender/mender-certificate.pfx"), owner_and_mode("0100600"));
    } else {
      EXPECT_EQ(xfs_stat(part, "/usr/share/mender/identity/mender-device-identity"), owner_and_mode("0100755"));
      EXPECT_EQ(xfs_stat(part, "/usr/bin/prov_dev_client_bbb"), owner_and_mode("0100755"));
      // The untouched link to the data partition is still a link.
      EXPECT_NE(xfs_stat(part, "/var/lib/mender").find("core.mode = 0120777"), std::string::npos);
    }
  }

  // The bytes, read with guestfish: rootfs A on /, B on /mnt, data on /data (the two rootfs
  // share their xfs UUID, as mender-convert's do: nouuid).
  const std::string script =
      "download /data/mender/mender-agent.pem " + (dir / "key.pem") + "\n" +
      "download /data/mender/mender-certificate.pfx " + (dir / "cert.pfx") + "\n" +
      "download /usr/share/mender/identity/mender-device-identity " + (dir / "id-a") + "\n" +
      "download /mnt/usr/share/mender/identity/mender-device-identity " + (dir / "id-b") + "\n" +
      "download /usr/bin/prov_dev_client_bbb " + (dir / "client-a") + "\n" +
      "download /mnt/usr/bin/prov_dev_client_bbb " + (dir / "client-b") + "\n";
  const CommandResult read_back = run({"guestfish", "--ro", "--format=raw", "-a", output, "-m", "/dev/sda2:/:nouuid",
                                       "-m", "/dev/sda3:/mnt:nouuid", "-m", "/dev/sda4:/data:nouuid"},
                                      script, {"LIBGUESTFS_BACKEND_SETTINGS=force_tcg"});
  ASSERT_EQ(read_back.status, 0) << read_back.err;
  EXPECT_EQ(read_file(dir / "key.pem").rfind("-----BEGIN RSA PRIVATE KEY-----", 0), 0u);
  EXPECT_EQ(shell("openssl pkey -in '" + (dir / "key.pem") + "' -pubout"),
            shell("openssl x509 -in '" + credential(kDevice + ".cert.pem") + "' -pubkey -noout"));
  EXPECT_EQ(file_sha256(dir / "cert.pfx"), file_sha256(credential(kDevice + ".cert.pfx")));
  EXPECT_EQ(read_file(dir / "id-a"), read_file(dir / "id-b"));
  EXPECT_NE(read_file(dir / "id-a").find("DeviceId=" + kDevice), std::string::npos);
  EXPECT_EQ(read_file(dir / "id-a").rfind("#!", 0), 0u);
  EXPECT_EQ(file_sha256(dir / "client-a"), file_sha256(fixture("elf/hello-armhf")));
  EXPECT_EQ(file_sha256(dir / "client-b"), file_sha256(fixture("elf/hello-armhf")));
}
