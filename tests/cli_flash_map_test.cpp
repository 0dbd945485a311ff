// A flashed card is exactly the image: every fixture layout, stamped, flashed onto targets that
// held other data (0xFF as erased cards read, or random bytes), as a regular file and as a loop
// device, and copied by bmaptool with imprint's bmap. Checked with e2fsck -fn, fsck.vfat -n and
// mtools, xfs_repair -n, sfdisk and imprint verify --structure; a byte changed inside a zero range
// after the write fails the read-back; a target that is one of flash's inputs is refused.
#include <gtest/gtest.h>

#include <unistd.h>

#include <filesystem>

#include <nlohmann/json.hpp>

#include "support.hpp"

using namespace imprint::test;

namespace {

enum class Fill { Ones, Random };

std::string fill_name(Fill fill) { return fill == Fill::Ones ? "0xFF" : "random"; }

// A file of `size` bytes that reads as 0xFF everywhere or as random bytes: a used card.
void make_dirty(const std::string& path, std::uint64_t size, Fill fill) {
  const std::string source = fill == Fill::Ones ? "tr '\\0' '\\377' < /dev/zero" : "openssl enc -aes-128-ctr -nosalt -pass pass:imprint -in /dev/zero 2>/dev/null";
  shell(source + " | head -c " + std::to_string(size) + " > '" + path + "'");
}

std::uint64_t size_of(const std::string& path) { return std::filesystem::file_size(path); }

// sfdisk's dump with the device names taken out: the partition table as data.
std::string table_of(const std::string& disk) {
  std::string dump = shell("sfdisk --dump '" + disk + "'");
  std::string result;
  std::istringstream lines(dump);
  std::string line;
  while (std::getline(lines, line)) {
    if (line.starts_with("device:")) continue;
    const auto colon = line.find(" : ");
    result += (colon == std::string::npos ? line : line.substr(colon)) + "\n";
  }
  return result;
}

std::string fs_type(const std::string& disk, const Span& span) {
  return blkid_values(disk, span)["TYPE"];
}

// The bytes of one partition in their own file (for checkers that take no offset).
std::string extract(const std::string& disk, const Span& span, const TempDir& dir, const std::string& name) {
  const std::string out = dir / name;
  shell("dd if='" + disk + "' of='" + out + "' bs=512 skip=" + std::to_string(span.offset / 512) + " count=" +
        std::to_string(span.size / 512) + " status=none");
  return out;
}

// Everything a device would read from the card, checked with the filesystems' own tools.
void expect_card_is_image(const std::string& image, const std::string& card, const std::string& what) {
  SCOPED_TRACE(what);
  EXPECT_EQ(table_of(card), table_of(image));
  const auto partitions = nlohmann::json::parse(shell("sfdisk --json '" + image + "'")).at("partitiontable").at("partitions");
  TempDir dir;
  for (std::size_t i = 0; i < partitions.size(); ++i) {
    const std::string node = partitions[i].at("node");
    const int number = std::stoi(node.substr(node.find_last_not_of("0123456789") + 1));
    const Span span = partition_span(image, number);
    const std::string type = fs_type(image, span);
    SCOPED_TRACE("p" + std::to_string(number) + " " + type);
    if (type.starts_with("ext")) {
      const CommandResult checked = e2fsck(card, number);
      EXPECT_EQ(checked.status, 0) << checked.out << checked.err;
    } else if (type.starts_with("vfat")) {
      const std::string part = extract(card, span, dir, "p" + std::to_string(number));
      const CommandResult checked = run({"fsck.vfat", "-n", part});
      EXPECT_EQ(checked.status, 0) << checked.out << checked.err;
      const std::string golden_part = extract(image, span, dir, "golden-p" + std::to_string(number));
      EXPECT_EQ(shell("MTOOLS_SKIP_CHECK=1 mdir -/ -b -i '" + part + "' ::/"),
                shell("MTOOLS_SKIP_CHECK=1 mdir -/ -b -i '" + golden_part + "' ::/"));
    } else if (type.starts_with("xfs")) {
      const CommandResult checked = run({"xfs_repair", "-n", "-f", extract(card, span, dir, "p" + std::to_string(number))});
      EXPECT_EQ(checked.status, 0) << checked.out << checked.err;
    } else if (type.starts_with("swap")) {
      EXPECT_EQ(run({"cmp", "-n", std::to_string(span.size), "-i", std::to_string(span.offset), image, card}).status, 0);
    }
  }
}

class FlashMap : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir();
    write_file(*dir_ / "profile.yaml", kDeviceIdProfile);
    // U-Boot-like bytes between the MBR and the first partition (mender-convert's U-Boot layouts).
    const std::string uboot = *dir_ / "mbr-uboot-golden.img";
    shell("cp --sparse=always '" + fixture("mbr.img") + "' '" + uboot + "'");
    shell("head -c 300000 /dev/urandom | dd of='" + uboot + "' bs=1 seek=32768 conv=notrunc status=none");
    for (const std::string& name : {std::string("mbr-uboot"), std::string("gpt"), std::string("v1"), std::string("mbr-1k")}) {
      const std::string golden = name == "mbr-uboot" ? uboot : fixture(name + ".img");
      const CommandResult stamped = run_imprint({"stamp", "-p", *dir_ / "profile.yaml", "-i", golden, "--device", "card-" + name,
                                                 "-o", *dir_ / (name + ".img"), "--bmap"});
      if (stamped.status != 0) throw std::runtime_error("stamp of " + name + " failed: " + stamped.err);
    }
  }
  static void TearDownTestSuite() {
    delete dir_;
    dir_ = nullptr;
  }
  static std::string path(const std::string& name) { return *dir_ / name; }

  // Flashes image onto a dirty regular file and a dirty loop device (each fill), checks each card.
  static void flash_and_check(const std::string& image, const std::string& device_id) {
    for (Fill fill : {Fill::Ones, Fill::Random}) {
      TempDir dir;
      const std::string file = dir / "card.img";
      make_dirty(file, size_of(image), fill);
      const CommandResult to_file = run_imprint({"flash", image, "--target", file, "--force", "--json"});
      ASSERT_EQ(to_file.status, 0) << to_file.err;
      EXPECT_EQ(nlohmann::json::parse(to_file.out).at("verified"), true);
      expect_card_is_image(image, file, "file filled with " + fill_name(fill));

      const std::string backing = dir / "loop.raw";
      make_dirty(backing, size_of(image), fill);
      Loop loop(backing);
      const CommandResult to_loop = run_imprint({"flash", image, "--target", loop.device, "--force"});
      ASSERT_EQ(to_loop.status, 0) << to_loop.err;
      EXPECT_NE(to_loop.out.find("verified"), std::string::npos) << to_loop.out;
      expect_card_is_image(image, loop.device, "loop device filled with " + fill_name(fill));
      if (!device_id.empty()) {
        const CommandResult verified = run_imprint({"verify", "-p", path("profile.yaml"), "--device", device_id, "--structure", loop.device});
        EXPECT_EQ(verified.status, 0) << verified.out << verified.err;
      }
    }
  }

  // bmaptool copy with imprint's bmap onto a card that reads 0xFF. A loop device, not a file: bmaptool
  // truncates a regular-file destination first, which hides what its map leaves out.
  static void bmaptool_and_check(const std::string& image, const std::string& bmap) {
    TempDir dir;
    const std::string backing = dir / "card.raw";
    make_dirty(backing, size_of(image), Fill::Ones);
    Loop loop(backing);
    const CommandResult copied = run({"bmaptool", "copy", "--bmap", bmap, image, loop.device});
    ASSERT_EQ(copied.status, 0) << copied.err;
    expect_card_is_image(image, loop.device, "bmaptool copy onto 0xFF");
  }

  static TempDir* dir_;
};
TempDir* FlashMap::dir_ = nullptr;

TEST_F(FlashMap, MbrWithABootLoaderBeforeTheFirstPartition) {
  flash_and_check(path("mbr-uboot.img"), "card-mbr-uboot");
  bmaptool_and_check(path("mbr-uboot.img"), path("mbr-uboot.bmap"));
}

TEST_F(FlashMap, Gpt) {
  flash_and_check(path("gpt.img"), "card-gpt");
  bmaptool_and_check(path("gpt.img"), path("gpt.bmap"));
}

TEST_F(FlashMap, ExtendedPartitionWithSwap) {
  flash_and_check(path("v1.img"), "card-v1");
  bmaptool_and_check(path("v1.img"), path("v1.bmap"));
}

TEST_F(FlashMap, OneKibBlockFilesystems) {
  flash_and_check(path("mbr-1k.img"), "card-mbr-1k");
  bmaptool_and_check(path("mbr-1k.img"), path("mbr-1k.bmap"));
}

// The xfs fixture (root and data on xfs: imprint does not parse xfs, so those partitions are mapped
// whole) flashed as it is: stamping it needs a libguestfs appliance, which the guestfs tests launch.
TEST_F(FlashMap, XfsRootAndDataPartitionsAreWrittenWhole) {
  TempDir dir;
  const std::string image = dir / "xfs.img";
  shell("cp --sparse=always '" + fixture("xfs.img") + "' '" + image + "'");
  flash_and_check(image, "");
}

// The old, hole-based map: bmaptool's own bmap of the image leaves out zero blocks the filesystems
// need. flash given that bmap warns and writes the image's own map; the card comes out clean.
TEST_F(FlashMap, AHoleBasedBmapIsCompletedWithAWarning) {
  TempDir dir;
  const std::string image = path("gpt.img");
  ASSERT_EQ(run({"bmaptool", "create", "-o", dir / "holes.bmap", image}).status, 0);
  const std::string card = dir / "card.img";
  make_dirty(card, size_of(image), Fill::Ones);
  const CommandResult flashed = run_imprint({"flash", image, "--bmap", dir / "holes.bmap", "--target", card, "--force"});
  ASSERT_EQ(flashed.status, 0) << flashed.err;
  EXPECT_NE(flashed.err.find("holes.bmap leaves out"), std::string::npos) << flashed.err;
  expect_card_is_image(image, card, "flash with a hole-based bmap");
  // What the hole-based map alone gives on the same dirty card (bmaptool, or imprint before the
  // block map): filesystems that e2fsck calls damaged (reserved GDT blocks, zero metadata read as 0xFF).
  const std::string backing = dir / "loop.raw";
  make_dirty(backing, size_of(image), Fill::Ones);
  Loop loop(backing);
  ASSERT_EQ(run({"bmaptool", "copy", "--bmap", dir / "holes.bmap", image, loop.device}).status, 0);
  EXPECT_NE(run({"cmp", "-n", std::to_string(size_of(image)), image, loop.device}).status, 0);
  int damaged = run({"sfdisk", "--verify", loop.device}).status != 0 ? 1 : 0;
  const Span boot = partition_span(image, 1);
  damaged += run({"fsck.vfat", "-n", extract(loop.device, boot, dir, "boot")}).status != 0 ? 1 : 0;
  for (int number : {2, 3, 4}) {
    const std::string at = loop.device + "?offset=" + std::to_string(partition_span(image, number).offset);
    damaged += run({"e2fsck", "-fn", at}).status != 0 ? 1 : 0;
  }
  EXPECT_GT(damaged, 0) << "the hole-based copy unexpectedly gave a clean card: this test no longer shows the defect";
  // The GPT's zero entries read 0xFF: imprint cannot even read that card's table.
  const CommandResult gpt = run_imprint({"verify", "-p", path("profile.yaml"), "--device", "card-gpt", loop.device});
  EXPECT_EQ(gpt.status, 1) << gpt.err;
  EXPECT_NE(gpt.err.find(loop.device), std::string::npos) << gpt.err;

  // An MBR image the same way: imprint verify finds the plan's files on the card; --structure finds
  // the damage.
  const std::string mbr = path("mbr-uboot.img");
  ASSERT_EQ(run({"bmaptool", "create", "-o", dir / "mbr-holes.bmap", mbr}).status, 0);
  make_dirty(dir / "mbr.raw", size_of(mbr), Fill::Ones);
  Loop mbr_loop(dir / "mbr.raw");
  ASSERT_EQ(run({"bmaptool", "copy", "--bmap", dir / "mbr-holes.bmap", mbr, mbr_loop.device}).status, 0);
  EXPECT_EQ(run_imprint({"verify", "-p", path("profile.yaml"), "--device", "card-mbr-uboot", mbr_loop.device}).status, 0);
  const CommandResult structure = run_imprint({"verify", "-p", path("profile.yaml"), "--device", "card-mbr-uboot", "--structure", mbr_loop.device});
  EXPECT_EQ(structure.status, 3) << structure.out << structure.err;
  EXPECT_NE(structure.out.find("found damage"), std::string::npos) << structure.out;
}

// A card that changes a byte the image holds as zero (GPT entry 100, inside the map) between the
// write and the read-back.
TEST_F(FlashMap, AByteChangedInsideAZeroRangeFailsTheReadBack) {
  TempDir dir;
  const std::string card = dir / "card.img";
  make_dirty(card, size_of(path("gpt.img")), Fill::Random);
  const std::string offset = std::to_string(1024 + 100 * 128);
  ASSERT_EQ(shell("od -An -tx1 -j " + offset + " -N1 '" + path("gpt.img") + "' | tr -d ' \\n'"), "00");
  const CommandResult flashed = run_imprint({"flash", path("gpt.img"), "--target", card, "--force", "--manifest", dir / "m.jsonl"}, "",
                                            {"IMPRINT_TEST_CORRUPT_AT=" + offset});
  EXPECT_EQ(flashed.status, 3) << flashed.err;
  EXPECT_NE(flashed.out.find("VERIFY FAILED"), std::string::npos) << flashed.out;
  EXPECT_NE(flashed.err.find("must read as zeros"), std::string::npos) << flashed.err;
  EXPECT_NE(read_file(dir / "m.jsonl").find("\"verified\":false"), std::string::npos);
}

// verify --structure on an image whose data partition's bitmap lost a used block (debugfs freeb,
// as e2fsprogs' own test images are made): the plan's files still read back, the structure fails.
TEST_F(FlashMap, VerifyStructureReportsADamagedFilesystem) {
  TempDir dir;
  const std::string image = dir / "damaged.img";
  shell("cp --sparse=always '" + path("gpt.img") + "' '" + image + "'");
  const std::string block = debugfs(image, 4, "bmap /mender/device-id 0");
  ASSERT_FALSE(block.empty());
  shell("debugfs -w -R 'freeb " + block.substr(0, block.find('\n')) + "' '" + ext_device(image, 4) + "' 2>/dev/null");
  EXPECT_EQ(run_imprint({"verify", "-p", path("profile.yaml"), "--device", "card-gpt", image}).status, 0);
  const CommandResult structure = run_imprint({"verify", "-p", path("profile.yaml"), "--device", "card-gpt", "--structure", "--json", image});
  EXPECT_EQ(structure.status, 3) << structure.err;
  const auto report = nlohmann::json::parse(structure.out);
  ASSERT_EQ(report.at("structure").at("problems").size(), 1u) << structure.out;
  EXPECT_NE(report.at("structure").at("problems")[0].get<std::string>().find("(p4): e2fsck -fn found damage"), std::string::npos);
  EXPECT_EQ(report.at("structure").at("checked").size(), 3u) << structure.out;  // the ESP and both root filesystems
}

TEST_F(FlashMap, ATargetThatIsAnInputIsRefusedHoweverItIsNamed) {
  TempDir dir;
  const std::string golden = dir / "golden.img";
  shell("cp --sparse=always '" + fixture("mbr.img") + "' '" + golden + "'");
  const std::string before = file_sha256(golden);
  std::filesystem::create_symlink(golden, dir / "link.img");
  std::filesystem::create_hard_link(golden, dir / "hard.img");
  for (const std::string& target : {golden, dir / "link.img", dir / "hard.img"}) {
    const CommandResult stamped = run_imprint({"flash", "-p", path("profile.yaml"), "-i", golden, "--device", "x", "--target", target, "--force"});
    EXPECT_EQ(stamped.status, 1) << target;
    EXPECT_NE(stamped.err.find("refusing to write " + target + ": it is the golden image"), std::string::npos) << stamped.err;
    const CommandResult image = run_imprint({"flash", golden, "--target", target, "--force"});
    EXPECT_EQ(image.status, 1) << target;
    EXPECT_NE(image.err.find("refusing to write " + target), std::string::npos) << image.err;
  }
  const CommandResult profile = run_imprint({"flash", "-p", path("profile.yaml"), "-i", golden, "--device", "x", "--target",
                                             path("profile.yaml"), "--force"});
  EXPECT_NE(profile.err.find("it is the profile"), std::string::npos) << profile.err;
  EXPECT_EQ(file_sha256(golden), before);
  EXPECT_EQ(read_file(path("profile.yaml")), kDeviceIdProfile);
}

}  // namespace

// flash -p stamps onto the card straight from the golden and an in-memory overlay: nothing goes to
// the host's temp directory (TMPDIR names a directory that does not exist: any temp file would be an
// error), and the card is what stamp -o makes for the same device, checked by the filesystems' tools
// and imprint verify --structure, for a file and a loop device; the same for flash and verify of the
// stamped image compressed.
TEST_F(FlashMap, StampModeWritesNoTempCopyOfTheGolden) {
  TempDir dir;
  const std::vector<std::string> environment{"TMPDIR=" + (dir / "no-such-dir"), "SOURCE_DATE_EPOCH=1700000000"};
  const std::string stamped = dir / "stamped.img";
  ASSERT_EQ(run_imprint({"stamp", "-p", path("profile.yaml"), "-i", fixture("mbr.img"), "--device", "card-p", "-o", stamped}, "",
                        {"SOURCE_DATE_EPOCH=1700000000"}).status, 0);
  const std::string file = dir / "card.img";
  make_dirty(file, size_of(stamped), Fill::Random);
  const CommandResult to_file = run_imprint({"flash", "-p", path("profile.yaml"), "-i", fixture("mbr.img"), "--device", "card-p",
                                             "--target", file, "--force", "--json"}, "", environment);
  ASSERT_EQ(to_file.status, 0) << to_file.err;
  EXPECT_EQ(nlohmann::json::parse(to_file.out).at("verified"), true);
  expect_card_is_image(stamped, file, "flash -p onto a file");
  EXPECT_NE(debugfs(file, 4, "cat /mender/device-id").find("card-p"), std::string::npos);

  const std::string backing = dir / "loop.raw";
  make_dirty(backing, size_of(stamped), Fill::Ones);
  Loop loop(backing);
  const CommandResult to_loop = run_imprint({"flash", "-p", path("profile.yaml"), "-i", fixture("mbr.img"), "--device", "card-p",
                                             "--target", loop.device, "--force", "--json"}, "", environment);
  ASSERT_EQ(to_loop.status, 0) << to_loop.err;
  EXPECT_EQ(nlohmann::json::parse(to_loop.out).at("verified"), true);
  expect_card_is_image(stamped, loop.device, "flash -p onto a loop device");
  const CommandResult verified = run_imprint({"verify", "-p", path("profile.yaml"), "--device", "card-p", "--structure", loop.device});
  EXPECT_EQ(verified.status, 0) << verified.out << verified.err;

  // The stamped image compressed for shipping holds the device's key too: flash and verify
  // decompress it beside itself (unnamed), never into TMPDIR.
  ASSERT_EQ(run({"zstd", "-q", "-k", stamped}).status, 0);
  const std::string from_zst = dir / "card-from-zst.img";
  const CommandResult zst = run_imprint({"flash", stamped + ".zst", "--target", from_zst, "--force"}, "", environment);
  ASSERT_EQ(zst.status, 0) << zst.err;
  expect_card_is_image(stamped, from_zst, "flash of the stamped image, compressed");
  const CommandResult verified_zst =
      run_imprint({"verify", "-p", path("profile.yaml"), "--device", "card-p", stamped + ".zst"}, "", environment);
  EXPECT_EQ(verified_zst.status, 0) << verified_zst.out << verified_zst.err;
  EXPECT_FALSE(std::filesystem::exists(dir / "no-such-dir"));
}
