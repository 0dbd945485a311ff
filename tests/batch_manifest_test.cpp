// Manifests, shards and bmaps at the library level.
#include <gtest/gtest.h>

#include <fcntl.h>
#include <unistd.h>

#include <filesystem>

#include "imprint/batch/batch.hpp"
#include "imprint/image/bmap.hpp"
#include "imprint/core/bytes.hpp"
#include "imprint/core/error.hpp"
#include "imprint/core/fileio.hpp"
#include "imprint/batch/manifest.hpp"
#include "support.hpp"

using namespace imprint;
using imprint::test::TempDir;
using imprint::test::read_file;
using imprint::test::write_file;

TEST(Manifest, ToleratesOnlyATruncatedLastLine) {
  TempDir dir;
  const std::string path = dir / "m.jsonl";
  append_manifest_record(path, {{"device_id", "b"}, {"x", 1}});
  append_manifest_record(path, {{"device_id", "a"}, {"x", 2}});
  write_file(path, read_file(path) + "{\"device_id\": \"c\", \"x\"");  // killed mid-append
  EXPECT_EQ(read_manifest(path, CutOff::Drop).size(), 2u);
  append_manifest_record(path, {{"device_id", "b"}, {"x", 3}});  // starts on a fresh line
  const auto records = read_manifest(path);
  ASSERT_EQ(records.size(), 3u);
  write_manifest(path, records);
  const auto compacted = read_manifest(path);
  ASSERT_EQ(compacted.size(), 2u);
  EXPECT_EQ(compacted[0]["device_id"], "a");
  EXPECT_EQ(compacted[1]["x"], 3);
  EXPECT_EQ(read_file(dir / "m.csv").substr(0, 10), "device_id,");

  write_file(path, "{\"device_id\": \"a\"}\nnot json\n{\"device_id\": \"b\"}\n");
  try {
    read_manifest(path);
    FAIL() << "a bad line in the middle was accepted";
  } catch (const Error& error) {
    EXPECT_NE(std::string(error.what()).find("m.jsonl:2"), std::string::npos) << error.what();
  }
}

TEST(Manifest, MergeRefusesConflictingRecordsButIgnoresTiming) {
  TempDir dir;
  write_file(dir / "a.jsonl", "{\"device_id\":\"d1\",\"v\":1,\"timing\":{\"seconds\":1}}\n");
  write_file(dir / "b.jsonl", "{\"device_id\":\"d1\",\"v\":1,\"timing\":{\"seconds\":2}}\n{\"device_id\":\"d0\",\"v\":0}\n");
  merge_manifests({dir / "a.jsonl", dir / "b.jsonl"}, dir / "out.jsonl");
  const auto merged = read_manifest(dir / "out.jsonl");
  ASSERT_EQ(merged.size(), 2u);
  EXPECT_EQ(merged[0]["device_id"], "d0");
  write_file(dir / "c.jsonl", "{\"device_id\":\"d1\",\"v\":2}\n");
  EXPECT_THROW(merge_manifests({dir / "a.jsonl", dir / "c.jsonl"}, dir / "out2.jsonl"), Error);
}

// A shard's manifest cut off mid-record (its batch was killed, the artifact uploaded anyway) used to
// merge without that device, exit 0.
TEST(Manifest, MergeRefusesACutOffLastRecordNamingFileAndLine) {
  TempDir dir;
  write_file(dir / "a.jsonl", "{\"device_id\":\"d0\",\"v\":0}\n");
  write_file(dir / "b.jsonl", "{\"device_id\":\"d1\",\"v\":1}\n{\"device_id\":\"d2\",\"v\"");
  const Error error = imprint::test::expect_error([&] { merge_manifests({dir / "a.jsonl", dir / "b.jsonl"}, dir / "out.jsonl"); },
                                         ErrorCode::Corrupt);
  EXPECT_NE(std::string(error.what()).find(dir / "b.jsonl:2: the last record is cut off"), std::string::npos) << error.what();
  EXPECT_FALSE(std::filesystem::exists(dir / "out.jsonl"));
  EXPECT_FALSE(std::filesystem::exists(dir / "out.csv"));
  // The batch reading its own manifest still drops the interrupted append (it redoes that device).
  EXPECT_EQ(read_manifest(dir / "b.jsonl", CutOff::Drop).size(), 1u);
}

TEST(BadRows, RowsFailingAlikeShareOneMessage) {
  std::vector<BadRow> rows;
  for (int line : {2, 3, 4, 5, 9}) rows.push_back({line, "d" + std::to_string(line), "x", "undefined variable 'key_file'"});
  rows.push_back({7, "d7", "devices.csv:7: device d7: check cn-is-device-id failed", "check cn-is-device-id failed"});
  EXPECT_EQ(bad_row_messages(rows, "devices.csv"),
            (std::vector<std::string>{"devices.csv: lines 2-5, 9 (5 devices): undefined variable 'key_file'",
                                      "devices.csv:7: device d7: check cn-is-device-id failed"}));
}

TEST(Shard, CoversEveryRowExactlyOnce) {
  EXPECT_THROW(parse_shard("0/3"), Error);
  EXPECT_THROW(parse_shard("4/3"), Error);
  EXPECT_THROW(parse_shard("1-3"), Error);
  for (std::size_t row = 0; row < 50; ++row) {
    int owners = 0;
    for (const char* text : {"1/3", "2/3", "3/3"}) owners += parse_shard(text).contains(row);
    EXPECT_EQ(owners, 1) << row;
  }
  EXPECT_TRUE(parse_shard("2/3").contains(1));
}

TEST(Bmap, MapsAllocatedBlocksAndChecksItsOwnChecksum) {
  TempDir dir;
  const std::string image = dir / "img";
  {
    UniqueFd fd(::open(image.c_str(), O_RDWR | O_CREAT, 0600));
    ASSERT_EQ(::ftruncate(fd.get(), 10 * 4096 + 100), 0);
    pwrite_all(fd.get(), "hello", 4096 + 10, "img");
    pwrite_all(fd.get(), "tail", 10 * 4096 + 50, "img");
  }
  UniqueFd fd = open_read(image);
  // Data in blocks 1 and 10; the map adds block 5, all zeros, which a card must still hold as zeros.
  const std::vector<Extent> data{{4096 + 10, 5}, {10 * 4096 + 50, 4}};
  const MappedImage mapped = map_image(fd.get(), 10 * 4096 + 100, data, {{4096, 4096}, {5 * 4096, 4096}, {10 * 4096, 100}}, image);
  ASSERT_EQ(mapped.bmap.ranges.size(), 3u);
  EXPECT_EQ(mapped.bmap.ranges[0].first, 1u);
  EXPECT_EQ(mapped.bmap.ranges[1].first, 5u);
  EXPECT_EQ(mapped.bmap.ranges[1].sha256, sha256_hex(std::string(4096, '\0')));
  EXPECT_EQ(mapped.bmap.ranges[2].first, 10u);
  EXPECT_EQ(mapped.bmap.ranges[2].last, 10u);
  EXPECT_EQ(mapped.bmap.blocks_count(), 11u);
  EXPECT_EQ(mapped.image_sha256, sha256_hex(read_file(image)));
  const std::string text = format_bmap(mapped.bmap);
  EXPECT_NE(text.find("<Range chksum=\"" + sha256_hex(std::string(read_file(image)).substr(4096, 4096)) + "\"> 1 </Range>"), std::string::npos);
  EXPECT_EQ(parse_bmap(text, "x.bmap").ranges.size(), 3u);
  std::string tampered = text;
  tampered.replace(tampered.find("> 10 <"), 6, "> 9 <");
  EXPECT_THROW(parse_bmap(tampered, "x.bmap"), Error);
}
