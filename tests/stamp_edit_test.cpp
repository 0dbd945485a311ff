// The edit commands (ls, cat, put, rm, mkdir as library functions, edit.hpp) on an image of
// in-memory filesystems: every location of a device-view path, owners by the image's own names,
// and the refusals with the partition and, for a symlink into the data partition, the path to use.
#include <gtest/gtest.h>

#include "imprint/edit/edit.hpp"
#include "imprint/core/error.hpp"
#include "memory_image_support.hpp"
#include "support.hpp"

namespace imprint {
namespace {

using test::expect_error;
using test::mender_image;
using test::put_file;

PathSpec spec(const std::string& text) { return parse_path_spec(text); }

std::function<std::unique_ptr<ByteSource>()> source_of(const std::string& bytes, int& opened) {
  return [&bytes, &opened] {
    ++opened;
    return std::make_unique<MemorySource>(bytes);
  };
}

TEST(StampEdit, PutWritesEveryLocationWithParentsAndTheImagesOwners) {
  MemoryImage image = mender_image();
  const std::string bytes = "#!/bin/sh\necho DeviceId=x\n";
  int opened = 0;
  put_path(image, spec("/usr/share/mender/identity/mender-device-identity"), source_of(bytes, opened),
           PutOptions{0755, "mender:mender", 1600000000});
  EXPECT_EQ(opened, 2);  // once per root filesystem
  for (Role role : {Role::Primary, Role::Secondary}) {
    Filesystem& rootfs = image.memory_filesystem(role);
    const FileStat stat = rootfs.stat("/usr/share/mender/identity/mender-device-identity").value();
    EXPECT_EQ(read_all(rootfs, "/usr/share/mender/identity/mender-device-identity"), bytes);
    EXPECT_EQ(stat.mode, 0755u);
    EXPECT_EQ(stat.uid, 999u);
    EXPECT_EQ(stat.gid, 999u);
    EXPECT_EQ(stat.mtime, 1600000000);
    const FileStat parent = rootfs.stat("/usr/share/mender/identity").value();
    EXPECT_EQ(parent.mode, 0755u);
    EXPECT_EQ(parent.uid, 0u);
  }
  put_path(image, spec("/data/mender/x"), source_of("d", opened), PutOptions{0600, "0:0", std::nullopt});
  EXPECT_EQ(opened, 3);
  EXPECT_EQ(read_all(image.memory_filesystem(Role::Data), "/mender/x"), "d");
}

TEST(StampEdit, PutThroughASymlinkIntoTheDataPartitionSaysWhereToWrite) {
  MemoryImage image = mender_image();
  image.memory_filesystem(Role::Primary).symlink("/var", "/data/var", Attributes{});
  int opened = 0;
  const Error error =
      expect_error([&] { put_path(image, spec("/var/lib/mender/key.pem"), source_of("k", opened), PutOptions{}); }, ErrorCode::Symlink);
  EXPECT_EQ(std::string(error.what()), "primary (p2): /var is a symlink to /data/var; write /data/var/... instead");
  EXPECT_EQ(opened, 0);
  // A link elsewhere gets no hint.
  image.memory_filesystem(Role::Secondary).symlink("/opt", "/usr/local", Attributes{});
  const Error other = expect_error([&] { mkdir_path(image, spec("secondary:/opt/app"), false, 0755); }, ErrorCode::Symlink);
  EXPECT_EQ(std::string(other.what()), "secondary (p3): /opt is a symlink to /usr/local");
}

TEST(StampEdit, ListShowsEachLocationAndFormatsLikeLsL) {
  MemoryImage image = mender_image();
  for (Role role : {Role::Primary, Role::Secondary}) {
    Filesystem& rootfs = image.memory_filesystem(role);
    put_file(rootfs, "/etc/mender/mender.conf", "{}", Attributes{0600, 0, 0, 1700000000});
    rootfs.symlink("/etc/mender/link", "/data/mender", Attributes{0777, 0, 0, 1700000060});
  }
  const std::vector<ListedEntry> listed = list_path(image, spec("/etc/mender"));
  ASSERT_EQ(listed.size(), 2u);
  EXPECT_EQ(describe(listed[0].location), "primary (p2)");
  EXPECT_EQ(describe(listed[1].location), "secondary (p3)");
  ASSERT_EQ(listed[0].entries.size(), 2u);
  EXPECT_EQ(format_entry(listed[0].entries[0], true), "lrwxrwxrwx 0 0 12 2023-11-14 22:14 link -> /data/mender");
  EXPECT_EQ(format_entry(listed[0].entries[1], true), "-rw------- 0 0 2 2023-11-14 22:13 mender.conf");
  EXPECT_EQ(format_entry(listed[0].entries[1], false), "mender.conf");
  // A file lists as itself.
  const std::vector<ListedEntry> file = list_path(image, spec("primary:/etc/mender/mender.conf"));
  ASSERT_EQ(file.size(), 1u);
  ASSERT_EQ(file[0].entries.size(), 1u);
  EXPECT_EQ(file[0].entries[0].name, "mender.conf");
  const Error missing = expect_error([&] { list_path(image, spec("/etc/nothing")); }, ErrorCode::NotFound);
  EXPECT_EQ(std::string(missing.what()), "primary (p2): /etc/nothing: no such file or directory");
}

TEST(StampEdit, CatReadsThePrimaryAndRefusesWhatIsNotAFile) {
  MemoryImage image = mender_image();
  put_file(image.memory_filesystem(Role::Primary), "/etc/hostname", "a\n");
  put_file(image.memory_filesystem(Role::Secondary), "/etc/hostname", "b\n");
  std::string out;
  cat_path(image, spec("/etc/hostname"), [&](std::string_view chunk) { out.append(chunk); });
  EXPECT_EQ(out, "a\n");
  out.clear();
  cat_path(image, spec("secondary:/etc/hostname"), [&](std::string_view chunk) { out.append(chunk); });
  EXPECT_EQ(out, "b\n");
  const auto sink = [](std::string_view) {};
  EXPECT_EQ(std::string(expect_error([&] { cat_path(image, spec("/etc"), sink); }, ErrorCode::IsDirectory).what()),
            "primary (p2): /etc: not a regular file");
  EXPECT_EQ(std::string(expect_error([&] { cat_path(image, spec("/data/none"), sink); }, ErrorCode::NotFound).what()),
            "data (p4): /none: no such file");
}

TEST(StampEdit, RemoveAndMkdirActOnEveryLocation) {
  MemoryImage image = mender_image();
  mkdir_path(image, spec("/opt/app/bin"), true, 0700);
  for (Role role : {Role::Primary, Role::Secondary}) {
    EXPECT_EQ(image.memory_filesystem(role).stat("/opt/app/bin")->mode, 0700u);
    EXPECT_EQ(image.memory_filesystem(role).stat("/opt")->mode, 0700u);  // -p: every new one gets the mode
  }
  mkdir_path(image, spec("/opt/app/bin"), true, 0755);  // -p on what exists: fine, left as it is
  EXPECT_EQ(image.memory_filesystem(Role::Primary).stat("/opt/app/bin")->mode, 0700u);
  EXPECT_EQ(std::string(expect_error([&] { mkdir_path(image, spec("/opt/app"), false, 0755); }, ErrorCode::Exists).what()),
            "primary (p2): /opt/app already exists");
  EXPECT_EQ(std::string(expect_error([&] { remove_path(image, spec("/opt"), false); }, ErrorCode::NotEmpty).what()),
            "primary (p2): /opt: directory not empty");
  remove_path(image, spec("/opt"), true);
  EXPECT_FALSE(image.memory_filesystem(Role::Primary).stat("/opt"));
  EXPECT_FALSE(image.memory_filesystem(Role::Secondary).stat("/opt"));
  EXPECT_EQ(std::string(expect_error([&] { remove_path(image, spec("/opt"), true); }, ErrorCode::NotFound).what()),
            "primary (p2): /opt: no such file or directory");
}

TEST(StampEdit, OwnersResolveThroughTheImagesOwnFiles) {
  MemoryImage image = mender_image();
  EXPECT_EQ(resolve_image_owner(image, "mender:root").uid, 999u);
  EXPECT_EQ(resolve_image_owner(image, "mender:root").gid, 0u);
  EXPECT_EQ(resolve_image_owner(image, "1234:5678").gid, 5678u);
  image.memory_filesystem(Role::Primary).remove("/etc/passwd", false);
  EXPECT_EQ(resolve_image_owner(image, "1234").uid, 1234u);  // numbers need no /etc/passwd
  EXPECT_EQ(std::string(expect_error([&] { resolve_image_owner(image, "mender"); }, ErrorCode::Invalid).what()),
            "owner 'mender' is not in the image's /etc/passwd");
}

}  // namespace
}  // namespace imprint
