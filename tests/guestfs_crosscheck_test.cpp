// The libguestfs backend against the native one, both ways, in ONE appliance launch (each launch
// costs ~20 s): files stamped and written with libext2fs are read back through libguestfs (bytes,
// mode, owner, mtime, symlink targets); files written through libguestfs are read back with
// libext2fs and debugfs; refusals (symlinks, missing paths, ENOSPC) are checked on the way; every
// ext4 partition passes e2fsck -fn at the end.
#include <gtest/gtest.h>

#include <functional>
#include <map>

#include "imprint/core/error.hpp"
#include "imprint/fs/ext4.hpp"
#include "imprint/guestfs/guestfs.hpp"
#include "support.hpp"

using namespace imprint;
using namespace imprint::test;

namespace {

const std::string kDevice = "mender-azure-test-device1";

struct Expected {
  int partition = 0;
  std::string path;
  FileType type = FileType::Regular;
  std::string bytes;  // content, or the symlink target
  unsigned mode = 0644;
  std::uint32_t uid = 0;
  std::uint32_t gid = 0;
  std::optional<std::int64_t> mtime;
};

std::unique_ptr<Filesystem> native(const std::string& image, int number, bool writable) {
  const Span span = partition_span(image, number);
  return open_ext4(Ext4OpenOptions{image, span.offset, span.size, writable, "p" + std::to_string(number)});
}

// Bytes that are neither all zero nor compressible into holes, with a zero run in the middle.
std::string patterned(std::size_t size, std::size_t hole_start, std::size_t hole_size) {
  std::string bytes(size, '\0');
  std::uint32_t state = 12345;
  for (std::size_t i = 0; i < size; ++i) {
    state = state * 1103515245 + 12345;
    bytes[i] = static_cast<char>((state >> 16) | 1);
  }
  std::fill(bytes.begin() + static_cast<std::ptrdiff_t>(hole_start),
            bytes.begin() + static_cast<std::ptrdiff_t>(hole_start + hole_size), '\0');
  return bytes;
}

void expect_entry(Filesystem& filesystem, const Expected& expected, const std::string& who) {
  SCOPED_TRACE(who + " p" + std::to_string(expected.partition) + ":" + expected.path);
  const std::optional<FileStat> stat = filesystem.stat(expected.path);
  ASSERT_TRUE(stat.has_value());
  EXPECT_EQ(stat->type, expected.type);
  EXPECT_EQ(stat->uid, expected.uid);
  EXPECT_EQ(stat->gid, expected.gid);
  if (expected.mtime) {
    EXPECT_EQ(stat->mtime, *expected.mtime);
  }
  if (expected.type == FileType::Symlink) {
    EXPECT_EQ(stat->link_target, expected.bytes);
    return;
  }
  EXPECT_EQ(stat->mode, expected.mode);
  if (expected.type == FileType::Regular) {
    EXPECT_EQ(stat->size, expected.bytes.size());
    const std::string bytes = read_all(filesystem, expected.path);
    EXPECT_TRUE(bytes == expected.bytes) << "content differs (" << bytes.size() << " bytes read)";
  }
}

void write_entry(Filesystem& filesystem, const Expected& entry) {
  const Attributes attributes{entry.mode, entry.uid, entry.gid, entry.mtime};
  switch (entry.type) {
    case FileType::Regular: {
      MemorySource source(entry.bytes);
      filesystem.write(entry.path, source, attributes);
      break;
    }
    case FileType::Directory:
      filesystem.mkdir(entry.path, attributes);
      break;
    case FileType::Symlink:
      filesystem.symlink(entry.path, entry.bytes, attributes);
      break;
    case FileType::Other:
      break;
  }
}

std::vector<std::string> stamp_arguments(const std::string& golden, const std::string& output) {
  const auto credential = [](const std::string& name) { return fixture("credentials/" + name); };
  return {"stamp", "-p", source_dir() + "/profiles/azure-dps-mender.yaml", "-i", golden, "--device", kDevice,
          "-o", output, "--set", "key_file=" + credential(kDevice + ".key.pem"),
          "--set", "cert_file=" + credential(kDevice + ".cert.pem"),
          "--set", "pfx_file=" + credential(kDevice + ".cert.pfx"),
          "--set", "dps_client=" + fixture("elf/hello-armhf")};
}

}  // namespace

TEST(GuestfsCrossCheck, NativeAndGuestfsAgreeBothWaysAndRefuseTheSameThings) {
  TempDir dir;
  const std::string image = dir / "device.img";
  // 1. Stamp with the native backend (mbr.img is all ext4 where the profile writes).
  const CommandResult stamped = run_imprint(stamp_arguments(fixture("mbr.img"), image));
  ASSERT_EQ(stamped.status, 0) << stamped.err;
  const std::string script = "#!/bin/sh\necho \"DeviceId=" + kDevice + "\"\n";
  std::vector<Expected> planned{
      {4, "/mender/mender-certificate.pfx", FileType::Regular, read_file(fixture("credentials/" + kDevice + ".cert.pfx")), 0600, 0, 0, {}},
      {2, "/usr/share/mender/identity/mender-device-identity", FileType::Regular, script, 0755, 0, 0, {}},
      {3, "/usr/share/mender/identity/mender-device-identity", FileType::Regular, script, 0755, 0, 0, {}},
      {2, "/usr/bin/prov_dev_client_bbb", FileType::Regular, read_file(fixture("elf/hello-armhf")), 0755, 0, 0, {}},
      {3, "/usr/bin/prov_dev_client_bbb", FileType::Regular, read_file(fixture("elf/hello-armhf")), 0755, 0, 0, {}},
      {2, "/var/lib/mender", FileType::Symlink, "/data/mender", 0777, 0, 0, {}},
      {3, "/etc/shadow", FileType::Regular, "", 0640, 0, 42, {}},
  };
  {
    // The agent key as native read it (PKCS#1 conversion happens in the stamp).
    auto data = native(image, 4, false);
    planned.push_back({4, "/mender/mender-agent.pem", FileType::Regular, read_all(*data, "/mender/mender-agent.pem"), 0600, 0, 0, {}});
    auto rootfs_b = native(image, 3, false);
    planned[6].bytes = read_all(*rootfs_b, "/etc/shadow");
  }
  ASSERT_EQ(planned.back().bytes.rfind("-----BEGIN RSA PRIVATE KEY-----", 0), 0u);

  // 2. More native writes: odd modes, owners, times, a symlink, a file with a hole.
  const std::vector<Expected> native_written{
      {2, "/opt/app", FileType::Directory, "", 0750, 1000, 1000, 1600000000},
      {2, "/opt/app/app.conf", FileType::Regular, "mode=test\n", 0640, 1000, 999, 1600000001},
      {2, "/opt/app/current", FileType::Symlink, "/data/app", 0777, 1000, 1000, 1600000002},
      {2, "/usr/bin/setuid-tool", FileType::Regular, "#!/bin/sh\nid\n", 04755, 0, 0, 1600000003},
      {4, "/mender/holes.bin", FileType::Regular, patterned(3 << 20, 1 << 20, 1 << 20), 0600, 0, 999, 1600000004},
  };
  {
    auto rootfs = native(image, 2, true);
    auto data = native(image, 4, true);
    for (const Expected& entry : native_written) write_entry(entry.partition == 2 ? *rootfs : *data, entry);
    rootfs->flush();
    data->flush();
  }

  // 3. One appliance over the image: read everything back, then write through it.
  auto session = std::make_shared<GuestfsSession>(std::vector<GuestfsSession::Drive>{{image, true, image, false, {}}});
  std::map<int, std::unique_ptr<Filesystem>> guest;
  for (int number : {1, 2, 3, 4}) {
    guest[number] = open_guestfs(GuestfsOpenOptions{session, 0, number, number == 1 ? "vfat" : "ext4", true,
                                                    "p" + std::to_string(number)});
  }
  for (const Expected& entry : planned) expect_entry(*guest[entry.partition], entry, "guestfs reads native");
  for (const Expected& entry : native_written) expect_entry(*guest[entry.partition], entry, "guestfs reads native");
  std::vector<std::string> names;
  for (const DirEntry& entry : guest[2]->list("/opt/app")) names.push_back(entry.name);
  EXPECT_EQ(names, (std::vector<std::string>{"app.conf", "current"}));
  EXPECT_EQ(guest[2]->list("/opt/app")[1].stat.link_target, "/data/app");
  EXPECT_EQ(guest[2]->type(), "ext4");
  EXPECT_GT(guest[4]->usage().free_bytes, 0u);

  const std::vector<Expected> guest_written{
      // (its mtime moves when the entries below are added, as on any filesystem)
      {3, "/etc/imprint", FileType::Directory, "", 0750, 0, 42, std::nullopt},
      {3, "/etc/imprint/guest.conf", FileType::Regular, "written by libguestfs\n", 0640, 0, 42, 1500000001},
      {3, "/etc/imprint/link", FileType::Symlink, "../hostname", 0777, 1000, 1000, 1500000002},
      {3, "/etc/hostname", FileType::Regular, "replaced\n", 0600, 1000, 100, 1500000003},
      {4, "/mender/guest-holes.bin", FileType::Regular, patterned(2 << 20, 4096, 1 << 20), 0644, 999, 999, 1500000004},
      {4, "/mender/empty", FileType::Regular, "", 02750, 0, 0, 1500000005},
  };
  for (const Expected& entry : guest_written) write_entry(*guest[entry.partition], entry);
  guest[3]->chmod("/etc/hosts", 0604);
  guest[3]->chown("/etc/hosts", 1000, 1000);
  guest[3]->set_mtime("/etc/hosts", 1400000000);
  guest[3]->remove("/home/debian", true);
  // Replacing a symlink with a symlink, never through it.
  guest[2]->symlink("/opt/app/current", "/data/app-2", Attributes{0777, 1000, 1000, 1600000009});

  // Refusals, the same as the native backend's.
  Filesystem& rootfs = *guest[2];
  MemorySource source("x");
  EXPECT_NE(std::string(expect_error([&] { rootfs.write("/var/lib/mender/x", source, {}); }, ErrorCode::Symlink).what())
                .find("p2: /var/lib/mender is a symlink to /data/mender"),
            std::string::npos);
  expect_error([&] { rootfs.write("/var/lib/mender", source, {}); }, ErrorCode::Symlink);
  expect_error([&] { rootfs.stat("/var/lib/mender/mender-agent.pem"); }, ErrorCode::Symlink);
  expect_error([&] { rootfs.mkdir("/var/lib/mender/sub", {}); }, ErrorCode::Symlink);
  expect_error([&] { rootfs.chmod("/var/lib/mender", 0700); }, ErrorCode::Symlink);
  expect_error([&] { rootfs.list("/var/lib/mender"); }, ErrorCode::Symlink);
  expect_error([&] { rootfs.symlink("/etc/hostname", "x", {}); }, ErrorCode::Exists);
  expect_error([&] { rootfs.read("/nonexistent", [](std::string_view) {}); }, ErrorCode::NotFound);
  EXPECT_FALSE(rootfs.stat("/nonexistent").has_value());
  EXPECT_FALSE(rootfs.stat("/nonexistent/deeper").has_value());
  expect_error([&] { rootfs.remove("/nonexistent", false); }, ErrorCode::NotFound);
  expect_error([&] { rootfs.list("/nonexistent"); }, ErrorCode::NotFound);
  expect_error([&] { rootfs.write("/nonexistent/file", source, {}); }, ErrorCode::NotFound);
  expect_error([&] { rootfs.mkdir("/etc", {}); }, ErrorCode::Exists);
  expect_error([&] { rootfs.remove("/etc/mender", false); }, ErrorCode::NotEmpty);
  expect_error([&] { rootfs.write("/etc/hostname/x", source, {}); }, ErrorCode::NotDirectory);
  expect_error([&] { rootfs.write("/etc", source, {}); }, ErrorCode::IsDirectory);

  // ENOSPC: nothing left behind, the old file kept, the space given back.
  Filesystem& data = *guest[4];
  const std::uint64_t free_before = data.usage().free_bytes;
  const std::string too_big = patterned(48 << 20, 0, 0);
  MemorySource big(too_big);
  EXPECT_NE(std::string(expect_error([&] { data.write("/mender/huge.bin", big, {}); }, ErrorCode::NoSpace).what())
                .find("no space left"),
            std::string::npos);
  MemorySource big_again(too_big);
  expect_error([&] { data.write("/mender/mender-agent.pem", big_again, Attributes{0644, 0, 0, {}}); }, ErrorCode::NoSpace);
  EXPECT_FALSE(data.stat("/mender/huge.bin").has_value());
  for (const DirEntry& entry : data.list("/mender")) EXPECT_EQ(entry.name.find(".imprint-"), std::string::npos) << entry.name;
  EXPECT_EQ(data.usage().free_bytes, free_before);
  expect_entry(data, planned.back(), "old key kept after ENOSPC");

  session->shutdown();
  guest.clear();

  // 4. Native and debugfs read what libguestfs wrote.
  std::vector<Expected> expected_after = guest_written;
  expected_after.push_back({2, "/opt/app/current", FileType::Symlink, "/data/app-2", 0777, 1000, 1000, 1600000009});
  expected_after.push_back({3, "/etc/hosts", FileType::Regular, "", 0604, 1000, 1000, 1400000000});
  {
    auto rootfs_b = native(image, 3, false);
    expected_after.back().bytes = read_all(*rootfs_b, "/etc/hosts");
    EXPECT_NE(expected_after.back().bytes.find("beaglebone"), std::string::npos);
    EXPECT_FALSE(rootfs_b->stat("/home/debian").has_value());
    EXPECT_TRUE(rootfs_b->stat("/home").has_value());
  }
  for (const Expected& entry : expected_after) {
    auto filesystem = native(image, entry.partition, false);
    expect_entry(*filesystem, entry, "native reads guestfs");
  }
  EXPECT_NE(debugfs(image, 3, "cat /etc/imprint/guest.conf").find("written by libguestfs"), std::string::npos);
  const std::string link = debugfs(image, 3, "stat /etc/imprint/link");
  EXPECT_NE(link.find("Fast link dest: \"../hostname\""), std::string::npos) << link;
  const std::string holes = debugfs(image, 4, "stat /mender/guest-holes.bin");
  EXPECT_NE(holes.find("Mode:  0644"), std::string::npos) << holes;
  EXPECT_NE(holes.find("User:   999   Group:   999"), std::string::npos) << holes;
  // 2 MiB with a 1 MiB zero run: about 1 MiB allocated (2048 sectors), not 4096.
  const auto count_at = holes.find("Blockcount: ");
  ASSERT_NE(count_at, std::string::npos) << holes;
  EXPECT_LT(std::stoul(holes.substr(count_at + 12)), 3000u) << holes;
  EXPECT_NE(debugfs(image, 4, "stat /mender/empty").find("Mode:  02750"), std::string::npos);
  for (int number : {2, 3, 4}) {
    const CommandResult fsck = e2fsck(image, number);
    EXPECT_EQ(fsck.status, 0) << "p" << number << ": " << fsck.out;
  }
}
