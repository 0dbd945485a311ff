// bmaptool-format block maps (see yoctoproject/bmaptool BmapCreate.py for the layout reproduced).
#include "imprint/image/bmap.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <libxml/parser.h>
#include <libxml/tree.h>

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <limits>
#include <memory>
#include <optional>

#include "imprint/core/bytes.hpp"
#include "imprint/core/error.hpp"
#include "imprint/core/fileio.hpp"
#include "imprint/image/copy.hpp"

namespace imprint {

namespace {

// Bytes read per call: small enough to stay in the CPU cache between the read and the hash (the
// same reason as the copy's 128 KiB in src/image/copy.cpp).
constexpr std::size_t kChunk = 128 * 1024;

// bmaptool's human_size(): "1 byte", "N bytes" below 512, else one decimal and a binary unit.
std::string human_size(std::uint64_t size) {
  if (size == 1) return "1 byte";
  if (size < 512) return std::to_string(size) + " bytes";
  double value = static_cast<double>(size);
  for (const char* unit : {"KiB", "MiB", "GiB", "TiB"}) {
    value /= 1024.0;
    if (value < 1024) {
      char buffer[64];
      std::snprintf(buffer, sizeof buffer, "%.1f %s", value, unit);
      return buffer;
    }
  }
  char buffer[64];
  std::snprintf(buffer, sizeof buffer, "%.1f EiB", value);
  return buffer;
}


// Feeds bytes [begin, end) of fd to the whole image's hash and, when given, to the range's own.
void read_range(int fd, std::uint64_t begin, std::uint64_t end, std::vector<char>& buffer, const std::string& name,
                Sha256& whole, Sha256* range) {
  while (begin < end) {
    const auto want = static_cast<std::size_t>(std::min<std::uint64_t>(buffer.size(), end - begin));
    const ssize_t got = ::pread(fd, buffer.data(), want, static_cast<off_t>(begin));
    if (got < 0) {
      if (errno == EINTR) continue;
      throw_errno("cannot read " + name);
    }
    if (got == 0) throw Error(name + " is shorter than its size", ErrorCode::Corrupt);
    const std::string_view chunk(buffer.data(), static_cast<std::size_t>(got));
    whole.update(chunk);
    if (range != nullptr) range->update(chunk);
    begin += static_cast<std::uint64_t>(got);
  }
}

// One pass: the whole image's sha256 over `reads` (holes between them hashed as zeros), and when bmap
// is given a checksum per range of `map` (each inside one read extent).
std::string hash_image(int fd, std::uint64_t image_size, const std::vector<Extent>& reads, const std::vector<Extent>& map,
                       const std::string& name, Bmap* bmap) {
  Sha256 whole;
  std::vector<char> buffer(kChunk);
  std::uint64_t position = 0;
  std::size_t next = 0;  // the map range being hashed
  for (const Extent& extent : block_aligned(reads, image_size)) {
    const std::uint64_t end = std::min(extent.end(), image_size);
    hash_zeros(whole, extent.offset - position);
    // The map ranges inside this extent, each hashed on its own; between them only the whole hash.
    std::uint64_t at = extent.offset;
    for (; bmap != nullptr && next < map.size() && map[next].offset < end; ++next) {
      const Extent& range = map[next];
      read_range(fd, at, range.offset, buffer, name, whole, nullptr);
      Sha256 digest;
      const std::uint64_t range_end = std::min(range.end(), end);
      read_range(fd, range.offset, range_end, buffer, name, whole, &digest);
      bmap->ranges.push_back(BmapRange{range.offset / kBmapBlockSize, (range_end + kBmapBlockSize - 1) / kBmapBlockSize - 1,
                                       digest.hex_digest()});
      at = range_end;
    }
    read_range(fd, at, end, buffer, name, whole, nullptr);
    position = end;
  }
  hash_zeros(whole, image_size - position);
  return whole.hex_digest();
}

// A bmap parsed by libxml2: no network, no entity expansion, no DTD loading (the defaults, with
// NONET spelled out), so a bmap from anywhere is only ever read as data.
// A bmap parsed by libxml2: no network, no entity expansion, no DTD loading (libxml2's defaults,
// NONET spelled out), so a bmap from anywhere is only ever read as data.
xmlDoc* read_xml(const std::string& text, const std::string& name) {
  if (text.size() > static_cast<std::size_t>(std::numeric_limits<int>::max())) throw Error(name + ": too large for a bmap", ErrorCode::Corrupt);
  xmlDoc* document = xmlReadMemory(text.data(), static_cast<int>(text.size()), name.c_str(), nullptr,
                                   XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
  if (document != nullptr) return document;
  const xmlError* error = xmlGetLastError();
  std::string why = error != nullptr && error->message != nullptr ? error->message : "not XML";
  while (!why.empty() && why.back() == '\n') why.pop_back();
  throw Error(name + ": not a bmap file (" + why + (error != nullptr ? " at line " + std::to_string(error->line) : "") + ")",
              ErrorCode::Corrupt);
}

using XmlDocument = std::unique_ptr<xmlDoc, decltype(&xmlFreeDoc)>;

bool is_element(const xmlNode* node, const char* tag) {
  return node->type == XML_ELEMENT_NODE && xmlStrcmp(node->name, reinterpret_cast<const xmlChar*>(tag)) == 0;
}

std::string attribute(const xmlNode* node, const char* name) {
  xmlChar* value = xmlGetProp(node, reinterpret_cast<const xmlChar*>(name));
  if (value == nullptr) return "";
  std::string result(reinterpret_cast<const char*>(value));
  xmlFree(value);
  return result;
}

// An element's text without the blanks bmaptool puts around it ("<ImageSize> 4096 </ImageSize>").
std::string trimmed_text(const xmlNode* node) {
  xmlChar* content = xmlNodeGetContent(node);
  std::string text = content != nullptr ? reinterpret_cast<const char*>(content) : "";
  xmlFree(content);
  const auto first = text.find_first_not_of(" \t\r\n");
  if (first == std::string::npos) return "";
  return text.substr(first, text.find_last_not_of(" \t\r\n") - first + 1);
}

std::optional<std::uint64_t> parse_number(std::string_view text) {
  std::uint64_t value = 0;
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (error != std::errc() || end != text.data() + text.size() || text.empty()) return std::nullopt;
  return value;
}

// The fields under <bmap>, by tag; elements the reader does not know are left alone (a later
// minor version may add some).
struct Fields {
  const xmlNode* root;
  const std::string& name;

  const xmlNode* element(const char* tag) const {
    for (const xmlNode* child = root->children; child != nullptr; child = child->next) {
      if (is_element(child, tag)) return child;
    }
    throw Error(name + ": not a bmap file (no <" + tag + ">)", ErrorCode::Corrupt);
  }
  std::string text(const char* tag) const { return trimmed_text(element(tag)); }
  std::uint64_t number(const char* tag) const {
    const std::string value = text(tag);
    if (const auto parsed = parse_number(value)) return *parsed;
    throw Error(name + ": <" + tag + "> '" + value + "' is not a number", ErrorCode::Corrupt);
  }
};

// bmaptool checks the file's checksum over its text with the checksum's digits all "0".
void require_own_checksum(const std::string& text, const std::string& checksum, const std::string& name) {
  const auto at = checksum.empty() ? std::string::npos : text.find(checksum);
  std::string zeroed = text;
  if (at != std::string::npos) zeroed.replace(at, checksum.size(), std::string(checksum.size(), '0'));
  if (at == std::string::npos || sha256_hex(zeroed) != checksum) {
    throw Error(name + ": the bmap's own checksum does not match its content", ErrorCode::Corrupt);
  }
}

bool is_sha256_hex(const std::string& text) {
  return text.size() == 64 && text.find_first_not_of("0123456789abcdef") == std::string::npos;
}

// <Range chksum="..."> FIRST[-LAST] </Range>, each with its sha256 (imprint checks a card against it).
std::vector<BmapRange> read_ranges(const xmlNode* block_map, std::uint64_t blocks_count, const std::string& name) {
  std::vector<BmapRange> ranges;
  for (const xmlNode* node = block_map->children; node != nullptr; node = node->next) {
    if (!is_element(node, "Range")) continue;
    const std::string text = trimmed_text(node);
    const auto dash = text.find('-');
    const auto first = parse_number(text.substr(0, dash));
    const auto last = dash == std::string::npos ? first : parse_number(text.substr(dash + 1));
    if (!first || !last) throw Error(name + ": <Range> '" + text + "' is not FIRST or FIRST-LAST", ErrorCode::Corrupt);
    if (*last < *first || *last >= blocks_count) throw Error(name + ": range " + text + " lies outside the image", ErrorCode::Corrupt);
    std::string sha256 = attribute(node, "chksum");
    if (!is_sha256_hex(sha256)) {
      throw Error(name + ": range " + text + " has no sha256 chksum (imprint checks every range against one)", ErrorCode::Corrupt);
    }
    ranges.push_back(BmapRange{*first, *last, std::move(sha256)});
  }
  return ranges;
}

std::string template_head(const Bmap& bmap) {
  const std::string size_human = human_size(bmap.image_size);
  std::string xml =
      "<?xml version=\"1.0\" ?>\n"
      "<!-- This file contains the block map for an image file, which is basically\n"
      "     a list of useful (mapped) block numbers in the image file. In other words,\n"
      "     it lists only those blocks which contain data (boot sector, partition\n"
      "     table, file-system metadata, files, directories, extents, etc). These\n"
      "     blocks have to be copied to the target device. The other blocks do not\n"
      "     contain any useful data and do not have to be copied to the target\n"
      "     device.\n"
      "\n"
      "     The block map an optimization which allows to copy or flash the image to\n"
      "     the image quicker than copying of flashing the entire image. This is\n"
      "     because with bmap less data is copied: <MappedBlocksCount> blocks instead\n"
      "     of <BlocksCount> blocks.\n"
      "\n"
      "     Besides the machine-readable data, this file contains useful commentaries\n"
      "     which contain human-readable information like image size, percentage of\n"
      "     mapped data, etc.\n"
      "\n"
      "     The 'version' attribute is the block map file format version in the\n"
      "     'major.minor' format. The version major number is increased whenever an\n"
      "     incompatible block map format change is made. The minor number changes\n"
      "     in case of minor backward-compatible changes. -->\n"
      "\n"
      "<bmap version=\"2.0\">\n"
      "    <!-- Image size in bytes: " + size_human + " -->\n"
      "    <ImageSize> " + std::to_string(bmap.image_size) + " </ImageSize>\n"
      "\n"
      "    <!-- Size of a block in bytes -->\n"
      "    <BlockSize> " + std::to_string(kBmapBlockSize) + " </BlockSize>\n"
      "\n"
      "    <!-- Count of blocks in the image file -->\n"
      "    <BlocksCount> " + std::to_string(bmap.blocks_count()) + " </BlocksCount>\n"
      "\n";
  // BmapCreate writes blanks first and overwrites them in place once the counts are known.
  const std::uint64_t mapped = bmap.mapped_blocks();
  const double percent = bmap.blocks_count() == 0 ? 0.0 : static_cast<double>(mapped) * 100.0 / static_cast<double>(bmap.blocks_count());
  char summary[96];
  std::snprintf(summary, sizeof summary, "%s or %.1f%%", human_size(mapped * kBmapBlockSize).c_str(), percent);
  std::string field = std::string(size_human.size(), ' ') + " or " + std::string(6, ' ');
  std::string text = summary;
  if (text.size() < field.size()) text += field.substr(text.size());
  xml += "    <!-- Count of mapped blocks: " + text + "   -->\n";
  std::string count = std::to_string(mapped);
  const std::string blocks = std::to_string(bmap.blocks_count());
  if (count.size() < blocks.size()) count += std::string(blocks.size() - count.size(), ' ');
  xml += "    <MappedBlocksCount> " + count + " </MappedBlocksCount>\n\n";
  xml += "    <!-- Type of checksum used in this file -->\n";
  xml += "    <ChecksumType> sha256 </ChecksumType>\n\n";
  xml += "    <!-- The checksum of this bmap file. When it is calculated, the value of\n";
  xml += "         the checksum has be zero (all ASCII \"0\" symbols).  -->\n";
  xml += "    <BmapFileChecksum> ";
  return xml;
}

}  // namespace

void hash_zeros(Sha256& hash, std::uint64_t length) {
  static const std::string zeros(kChunk, '\0');
  while (length > 0) {
    const auto part = static_cast<std::size_t>(std::min<std::uint64_t>(length, zeros.size()));
    hash.update(std::string_view(zeros.data(), part));
    length -= part;
  }
}

std::uint64_t Bmap::mapped_blocks() const {
  std::uint64_t count = 0;
  for (const BmapRange& range : ranges) count += range.last - range.first + 1;
  return count;
}

std::vector<Extent> Bmap::extents() const {
  std::vector<Extent> result;
  for (const BmapRange& range : ranges) {
    const std::uint64_t begin = range.first * kBmapBlockSize;
    const std::uint64_t end = std::min((range.last + 1) * kBmapBlockSize, image_size);
    if (end > begin) result.push_back(Extent{begin, end - begin});
  }
  return result;
}

MappedImage map_image(int fd, std::uint64_t image_size, const std::vector<Extent>& data, const std::vector<Extent>& map,
                      const std::string& name) {
  MappedImage mapped;
  mapped.bmap.image_size = image_size;
  const std::vector<Extent> ranges = block_aligned(map, image_size);
  std::vector<Extent> reads = data;
  reads.insert(reads.end(), ranges.begin(), ranges.end());
  mapped.image_sha256 = hash_image(fd, image_size, reads, ranges, name, &mapped.bmap);
  return mapped;
}

std::string sparse_image_sha256(int fd, std::uint64_t image_size, const std::vector<Extent>& extents, const std::string& name) {
  return hash_image(fd, image_size, extents, {}, name, nullptr);
}

std::string sparse_file_sha256(const std::string& path) {
  UniqueFd fd = open_read(path);
  struct stat info {};
  if (::fstat(fd.get(), &info) != 0) throw_errno("cannot stat " + path);
  if (!S_ISREG(info.st_mode)) return sha256_file_hex(path);
  return sparse_image_sha256(fd.get(), static_cast<std::uint64_t>(info.st_size), data_extents(fd.get()), path);
}

std::string format_bmap(const Bmap& bmap) {
  const std::string zeros(64, '0');
  std::string head = template_head(bmap);
  std::string tail = " </BmapFileChecksum>\n\n";
  tail += "    <!-- The block map which consists of elements which may either be a\n";
  tail += "         range of blocks or a single block. The 'chksum' attribute\n";
  tail += "         (if present) is the checksum of this blocks range. -->\n";
  tail += "    <BlockMap>\n";
  for (const BmapRange& range : bmap.ranges) {
    tail += "        <Range chksum=\"" + range.sha256 + "\"> " + std::to_string(range.first);
    if (range.last != range.first) {
      tail += '-';  // not "-" + to_string(): GCC 12 warns falsely (-Wrestrict) on that concatenation
      tail += std::to_string(range.last);
    }
    tail += " </Range>\n";
  }
  tail += "    </BlockMap>\n</bmap>\n";
  const std::string checksum = sha256_hex(head + zeros + tail);
  return head + checksum + tail;
}

Bmap parse_bmap(const std::string& text, const std::string& name) {
  const XmlDocument document(read_xml(text, name), &xmlFreeDoc);
  const xmlNode* root = xmlDocGetRootElement(document.get());
  if (root == nullptr || !is_element(root, "bmap")) throw Error(name + ": not a bmap file (its root element is not <bmap>)", ErrorCode::Corrupt);
  if (!attribute(root, "version").starts_with("2.")) throw Error(name + ": not a bmap file of version 2.x", ErrorCode::Corrupt);
  const Fields fields{root, name};
  if (fields.text("ChecksumType") != "sha256") throw Error(name + ": only sha256 bmap files are supported", ErrorCode::Unsupported);
  if (fields.text("BlockSize") != std::to_string(kBmapBlockSize)) {
    throw Error(name + ": block size " + fields.text("BlockSize") + " is not supported (4096 only)", ErrorCode::Unsupported);
  }
  require_own_checksum(text, fields.text("BmapFileChecksum"), name);

  Bmap bmap;
  bmap.image_size = fields.number("ImageSize");
  bmap.ranges = read_ranges(fields.element("BlockMap"), bmap.blocks_count(), name);
  if (bmap.ranges.empty()) throw Error(name + ": the bmap lists no ranges: it would write nothing", ErrorCode::Corrupt);
  const std::uint64_t listed = fields.number("MappedBlocksCount");
  if (listed != bmap.mapped_blocks()) {
    throw Error(name + ": <MappedBlocksCount> says " + std::to_string(listed) + " blocks, but its ranges hold " +
                    std::to_string(bmap.mapped_blocks()),
                ErrorCode::Corrupt);
  }
  return bmap;
}

}  // namespace imprint
