// The block map of each fixture layout against what e2fsprogs' dumpe2fs and sfdisk say of the same
// image: no free block of an ext filesystem is mapped, every used block is (inode tables up to the
// last used inode), partition table areas and unparsed partitions are mapped whole.
#include <gtest/gtest.h>

#include <regex>
#include <sstream>

#include <nlohmann/json.hpp>

#include "imprint/image/block_map.hpp"
#include "imprint/image/copy.hpp"
#include "imprint/core/fileio.hpp"
#include "support.hpp"

namespace imprint {
namespace {

using test::fixture;

struct Part {
  int number = 0;
  std::uint64_t offset = 0, size = 0;
  std::string type;  // sfdisk's type: "83", "c", "5", GPT GUIDs
};

std::vector<Part> sfdisk_parts(const std::string& image) {
  const auto table = nlohmann::json::parse(test::shell("sfdisk --json '" + image + "'"));
  std::vector<Part> parts;
  int number = 0;
  for (const auto& entry : table.at("partitiontable").at("partitions")) {
    ++number;
    const std::string node = entry.at("node");
    number = std::stoi(node.substr(node.find_last_not_of("0123456789") + 1));
    parts.push_back(Part{number, entry.at("start").get<std::uint64_t>() * 512, entry.at("size").get<std::uint64_t>() * 512,
                         entry.at("type").get<std::string>()});
  }
  return parts;
}

bool covered(const std::vector<Extent>& map, const Extent& extent) {
  return subtract({extent}, map).empty();
}

// dumpe2fs's view of one ext filesystem: free ranges, inode tables, and how many inode-table
// blocks each group really uses.
struct Ext {
  std::uint64_t block_size = 0, blocks = 0;
  std::vector<Extent> free;         // in blocks
  std::vector<Extent> inode_tables; // in blocks
  std::vector<Extent> used_tables;  // the part of each table holding a used inode, in blocks
};

Ext dumpe2fs(const std::string& image, std::uint64_t offset) {
  const std::string text = test::shell("dumpe2fs '" + image + "?offset=" + std::to_string(offset) + "' 2>/dev/null");
  Ext ext;
  std::smatch match;
  std::regex_search(text, match, std::regex("Block size:\\s+(\\d+)"));
  ext.block_size = std::stoull(match[1]);
  std::regex_search(text, match, std::regex("Block count:\\s+(\\d+)"));
  ext.blocks = std::stoull(match[1]);
  std::regex_search(text, match, std::regex("Inodes per group:\\s+(\\d+)"));
  const std::uint64_t per_group = std::stoull(match[1]);
  std::regex_search(text, match, std::regex("Inode size:\\s+(\\d+)"));
  const std::uint64_t inode_size = std::stoull(match[1]);
  const bool csum = text.find("metadata_csum") != std::string::npos || text.find("uninit_bg") != std::string::npos;
  std::istringstream lines(text);
  std::string line;
  const std::regex table("Inode table at (\\d+)-(\\d+)"), unused(", (\\d+) unused inodes"), range("(\\d+)(?:-(\\d+))?");
  while (std::getline(lines, line)) {
    if (std::regex_search(line, match, table)) {
      ext.inode_tables.push_back(Extent{std::stoull(match[1]), std::stoull(match[2]) - std::stoull(match[1]) + 1});
    } else if (std::regex_search(line, match, unused)) {
      const std::uint64_t used = csum ? per_group - std::stoull(match[1]) : per_group;
      const std::uint64_t blocks = (used * inode_size + ext.block_size - 1) / ext.block_size;
      if (blocks > 0) ext.used_tables.push_back(Extent{ext.inode_tables.back().offset, blocks});
    } else if (line.find("  Free blocks: ") == 0) {
      const std::string list = line.substr(15);
      for (auto it = std::sregex_iterator(list.begin(), list.end(), range); it != std::sregex_iterator(); ++it) {
        const std::uint64_t first = std::stoull((*it)[1]);
        const std::uint64_t last = (*it)[2].matched ? std::stoull((*it)[2]) : first;
        ext.free.push_back(Extent{first, last - first + 1});
      }
    }
  }
  return ext;
}

std::vector<Extent> in_bytes(const std::vector<Extent>& blocks, std::uint64_t block_size, std::uint64_t offset) {
  std::vector<Extent> bytes;
  for (const Extent& extent : blocks) bytes.push_back(Extent{offset + extent.offset * block_size, extent.length * block_size});
  return bytes;
}

void expect_map_matches_filesystem(const std::vector<Extent>& map, const std::string& image, const Part& part) {
  const Ext ext = dumpe2fs(image, part.offset);
  ASSERT_GT(ext.blocks, 0u);
  const std::vector<Extent> fs{Extent{part.offset, ext.blocks * ext.block_size}};
  const auto free = in_bytes(ext.free, ext.block_size, part.offset);
  const auto mapped_in_fs = intersect(map, fs);
  // 1 KiB blocks: a 4 KiB map block holding a used 1 KiB block may also hold free ones.
  const auto free_whole_blocks = ext.block_size == kMapBlockSize ? free : std::vector<Extent>{};
  // A free block is mapped only when the image file holds data there (stale bytes are copied too).
  const UniqueFd fd = open_read(image);
  const auto mapped_free = subtract(intersect(mapped_in_fs, free_whole_blocks), data_extents(fd.get()));
  EXPECT_TRUE(mapped_free.empty()) << "p" << part.number << ": a hole-backed free block is mapped";
  const auto used = subtract(fs, free);
  const auto tables = in_bytes(ext.inode_tables, ext.block_size, part.offset);
  const auto needed = subtract(used, tables);
  EXPECT_TRUE(subtract(needed, map).empty()) << "p" << part.number << ": a used block is not mapped, first at byte "
                                              << subtract(needed, map).front().offset;
  for (const Extent& table : in_bytes(ext.used_tables, ext.block_size, part.offset)) {
    EXPECT_TRUE(covered(map, table)) << "p" << part.number << ": inode table blocks holding used inodes are not mapped";
  }
  // Inode tables past the used inodes (and free blocks) are what the map saves on a fresh filesystem.
  std::uint64_t mapped_bytes = 0;
  for (const Extent& extent : mapped_in_fs) mapped_bytes += extent.length;
  EXPECT_LT(mapped_bytes, ext.blocks * ext.block_size) << "p" << part.number << ": the whole filesystem is mapped";
}

void expect_layout_mapped(const std::string& name) {
  const std::string image = fixture(name);
  const BlockMap map = image_block_map(image, name);
  EXPECT_TRUE(map.notes.empty()) << map.notes.front();
  EXPECT_TRUE(covered(map.extents, Extent{0, 512})) << "the MBR is not mapped";
  for (const Extent& extent : map.extents) {
    EXPECT_EQ(extent.offset % kMapBlockSize, 0u);
    EXPECT_TRUE(extent.end() % kMapBlockSize == 0 || extent.end() == map.image_size);
  }
  const auto parts = sfdisk_parts(image);
  std::vector<Extent> logical;
  for (const Part& part : parts) {
    const Extent span{part.offset, part.size};
    if (part.type == "5" || part.type == "f") continue;
    const std::string fs = test::blkid_values(image, test::Span{part.offset, part.size})["TYPE"];
    if (fs.rfind("ext", 0) == 0) {
      expect_map_matches_filesystem(map.extents, image, part);
    } else {
      EXPECT_TRUE(covered(map.extents, span)) << name << " p" << part.number << " (" << fs << ") is not mapped whole";
    }
    if (part.number >= 5) logical.push_back(span);
  }
  // An extended container is mapped whole but for its logical partitions (its EBRs live there).
  for (const Part& part : parts) {
    if (part.type != "5" && part.type != "f") continue;
    for (const Extent& gap : subtract({Extent{part.offset, part.size}}, logical)) {
      EXPECT_TRUE(covered(map.extents, gap)) << name << ": extended container gap at " << gap.offset << " is not mapped";
    }
  }
}

TEST(BlockMap, MbrLayoutMapsUsedBlocksTableAndBootPartition) { expect_layout_mapped("mbr.img"); }
TEST(BlockMap, OneKibBlockFilesystems) { expect_layout_mapped("mbr-1k.img"); }
TEST(BlockMap, ExtendedContainerWithSwapAndLabels) { expect_layout_mapped("v1.img"); }

TEST(BlockMap, GptMapsPrimaryAndBackupHeadersAndEntries) {
  expect_layout_mapped("gpt.img");
  const std::string image = fixture("gpt.img");
  const BlockMap map = image_block_map(image, "gpt.img");
  // sfdisk writes 128 entries of 128 bytes from LBA 2 (16 KiB, mostly zeros) and the backup
  // entries + header in the last 33 sectors.
  EXPECT_TRUE(covered(map.extents, Extent{0, 34 * 512}));
  EXPECT_TRUE(covered(map.extents, Extent{map.image_size - 33 * 512, 33 * 512}));
}

TEST(BlockMap, DataOutsidePartitionsIsMappedAndHolesThereAreNot) {
  test::TempDir dir;
  const std::string image = test::copy_fixture("mbr.img", dir);
  // A boot loader between the MBR and the first partition (8 MiB), as U-Boot images have.
  test::shell("head -c 300000 /dev/urandom | dd of='" + image + "' bs=1 seek=32768 conv=notrunc status=none");
  const BlockMap map = image_block_map(image, "uboot.img");
  EXPECT_TRUE(covered(map.extents, Extent{32768, 300000}));
  EXPECT_FALSE(covered(map.extents, Extent{4 << 20, 4096})) << "a hole before the first partition is mapped";
}

TEST(BlockMap, AnUnreadableExtFilesystemIsMappedWhole) {
  test::TempDir dir;
  const std::string image = test::copy_fixture("mbr.img", dir);
  const auto parts = sfdisk_parts(image);
  // Damage the data partition's group descriptors (block 1 of a 4 KiB filesystem).
  test::shell("head -c 4096 /dev/urandom | dd of='" + image + "' bs=1 seek=" + std::to_string(parts[3].offset + 4096) +
              " conv=notrunc status=none");
  const BlockMap map = image_block_map(image, "damaged.img");
  ASSERT_EQ(map.notes.size(), 1u);
  EXPECT_NE(map.notes[0].find("p4"), std::string::npos) << map.notes[0];
  EXPECT_TRUE(covered(map.extents, Extent{parts[3].offset, parts[3].size}));
}

}  // namespace
}  // namespace imprint
