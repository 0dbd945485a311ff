// stamp -o and flash -p with a plan that writes the vfat boot partition (libguestfs) and the data
// partition (libext2fs): the golden stays read-only, the appliance writes into a qcow2 overlay over
// it whose clusters join the device's ImageOverlay, and the result is what the old path makes (a
// copy of the golden edited in place: stamp --in-place on a copy), byte for byte but for the FAT
// directory entries' creation and access times: the appliance's kernel stamps those with its clock
// (SOURCE_DATE_EPOCH does not reach it), so two runs of the old path differ there too. Checked with
// fsck.vfat -n, e2fsck -fn and mtools; the golden's sha256 is unchanged and no file is left beside
// the output, in TMPDIR or in XDG_RUNTIME_DIR (where flash -p keeps its overlay).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "support.hpp"

using namespace imprint::test;

namespace {

constexpr const char* kBootProfile = R"(version: 1
files:
  - path: /uboot/device-id.txt
    content: "{{device_id}}\n"
    mode: "0644"
  - path: /data/device-id
    content: "{{device_id}}\n"
    mode: "0644"
)";

std::string mtype(const std::string& image, const std::string& path) {
  return shell("MTOOLS_SKIP_CHECK=1 mtype -i '" + image + "@@" + std::to_string(partition_span(image, 1).offset) + "' '::" + path + "'");
}

// fsck.vfat -n on the boot partition copied out (it takes no offset).
CommandResult fsck_boot(const std::string& image, const std::string& part) {
  const Span span = partition_span(image, 1);
  shell("dd if='" + image + "' of='" + part + "' bs=512 skip=" + std::to_string(span.offset / 512) +
        " count=" + std::to_string(span.size / 512) + " status=none");
  const CommandResult result = run({"fsck.vfat", "-n", part});
  std::filesystem::remove(part);
  return result;
}

// The bytes where two images differ, as "offset: a b" lines (cmp -l), but for a FAT directory
// entry's time fields inside the boot partition (32-byte entries, aligned to the partition: creation
// time and date at 13-17, access date at 18-19, modification time and date at 22-25). Only entries
// the plan made differ there, so their modification times (set from the plan) are compared too
// unless the entry was deleted (imprint's temp name, renamed away: stamped with the clock).
std::vector<std::string> differences_but_fat_clock(const std::string& a, const std::string& b) {
  if (std::filesystem::file_size(a) != std::filesystem::file_size(b)) return {"the sizes differ"};
  const Span boot = partition_span(a, 1);
  std::ifstream image(a, std::ios::binary);
  std::vector<std::string> differences;
  std::istringstream lines(shell("cmp -l '" + a + "' '" + b + "' | head -n 100000 || true"));
  std::uint64_t position = 0;  // cmp -l: 1-based offset, then both bytes in octal
  std::string byte_a, byte_b;
  while (lines >> position >> byte_a >> byte_b && differences.size() < 20) {
    const std::uint64_t at = position - 1;
    if (at >= boot.offset && at < boot.offset + boot.size) {
      const std::uint64_t field = (at - boot.offset) % 32;
      char first = 0;
      image.seekg(static_cast<std::streamoff>(at - field));
      image.get(first);
      const bool deleted = static_cast<unsigned char>(first) == 0xe5;
      if ((field >= 13 && field <= 19) || (deleted && field >= 22 && field <= 25)) continue;
    }
    differences.push_back(std::to_string(at) + ": " + byte_a + " " + byte_b);
  }
  return differences;
}

}  // namespace

TEST(GuestfsOverlay, StampAndFlashThroughTheQcow2MatchTheCopyPath) {
  TempDir dir;
  for (const char* sub : {"out", "tmp", "run", "old"}) std::filesystem::create_directories(dir / sub);
  std::filesystem::permissions(dir / "run", std::filesystem::perms::owner_all, std::filesystem::perm_options::replace);
  write_file(dir / "profile.yaml", kBootProfile);
  const std::string golden = fixture("mbr.img");
  const std::string golden_before = file_sha256(golden);
  const std::vector<std::string> environment{"SOURCE_DATE_EPOCH=1700000000", "TMPDIR=" + (dir / "tmp"),
                                             "XDG_RUNTIME_DIR=" + (dir / "run")};

  // The one-pass path: -v says the filesystems were flushed into the overlay, not into a copy.
  const std::string output = dir / "out/dev-q.img";
  const CommandResult stamped =
      run_imprint({"stamp", "-v", "-p", dir / "profile.yaml", "-i", golden, "--device", "dev-q", "-o", output}, "", environment);
  ASSERT_EQ(stamped.status, 0) << stamped.err;
  EXPECT_NE(stamped.err.find("filesystem(s) into the overlay"), std::string::npos) << stamped.err;
  EXPECT_EQ(stamped.err.find("the copy of"), std::string::npos) << stamped.err;

  // The old path: the golden copied, then edited in place (what stamp -o did for a vfat plan).
  const std::string old = dir / "old/dev-q.img";
  shell("cp --sparse=always '" + golden + "' '" + old + "'");
  const CommandResult in_place =
      run_imprint({"stamp", "-p", dir / "profile.yaml", "-i", old, "--in-place", "--device", "dev-q"}, "", environment);
  ASSERT_EQ(in_place.status, 0) << in_place.err;
  EXPECT_EQ(differences_but_fat_clock(output, old), std::vector<std::string>{}) << "stamp -o through the qcow2 differs from the copy path";

  EXPECT_EQ(mtype(output, "/device-id.txt"), "dev-q\n");
  EXPECT_EQ(debugfs(output, 4, "cat /device-id"), "dev-q\n");
  const CommandResult vfat = fsck_boot(output, dir / "old/boot.vfat");
  EXPECT_EQ(vfat.status, 0) << vfat.out << vfat.err;
  const CommandResult ext = e2fsck(output, 4);
  EXPECT_EQ(ext.status, 0) << ext.out << ext.err;

  // flash -p onto a file: the card is that image too (its overlay in XDG_RUNTIME_DIR, memory-backed).
  const std::string card = dir / "out/card.img";
  const CommandResult flashed = run_imprint(
      {"flash", "-p", dir / "profile.yaml", "-i", golden, "--device", "dev-q", "--target", card, "--force"}, "", environment);
  ASSERT_EQ(flashed.status, 0) << flashed.err;
  EXPECT_EQ(differences_but_fat_clock(card, old), std::vector<std::string>{}) << "flash -p through the qcow2 differs from the copy path";

  EXPECT_EQ(file_sha256(golden), golden_before) << "the golden changed";
  EXPECT_EQ(directory_entries(dir / "out"), (std::vector<std::string>{"card.img", "dev-q.img"}));
  EXPECT_EQ(directory_entries(dir / "tmp"), std::vector<std::string>{});
  EXPECT_EQ(directory_entries(dir / "run"), std::vector<std::string>{});
}
