// GoldenCache (golden_cache.hpp): a golden's sha256 and compressed frames, kept between runs.
//
// Layout under the cache directory:
//   golden/KEY.sha256          the golden's sha256 (hex)
//   frames/KEY-zst.frames      the golden's frames, concatenated (a valid .zst / .gz / .xz)
//   frames/KEY-zst.json        their index, written last: an entry without it is not there
#include "imprint/image/golden_cache.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <system_error>
#include <vector>

#include "imprint/core/bytes.hpp"
#include "imprint/core/error.hpp"
#include "imprint/core/fileio.hpp"
#include "imprint/core/progress.hpp"
#include "imprint/image/bmap.hpp"

namespace imprint {

namespace {

constexpr int kFormat = 1;  // of the index; another format is another entry

std::string identity_key(const std::string& golden_path) {
  struct stat info {};
  if (::stat(golden_path.c_str(), &info) != 0) throw_errno("cannot stat " + golden_path);
  const auto time = [](const timespec& at) { return std::to_string(at.tv_sec) + "." + std::to_string(at.tv_nsec); };
  const std::string identity = "imprint golden v" + std::to_string(kFormat) + " dev " + std::to_string(info.st_dev) + " ino " +
                               std::to_string(info.st_ino) + " size " + std::to_string(info.st_size) + " mtime " +
                               time(info.st_mtim) + " ctime " + time(info.st_ctim);
  return sha256_hex(identity).substr(0, 32);
}

std::string compression_name(Compression compression) { return compression_suffix(compression).substr(1); }

// Creates the cache's subdirectory (private: the user's cache); false when it cannot be (nothing is cached then).
bool make_private_directory(const std::string& path) {
  std::error_code error;
  std::filesystem::create_directories(path, error);
  if (error) return false;
  ::chmod(path.c_str(), 0700);
  return true;
}

// Keeps the `keep` most recently used entries of a kind (by their `index` file's modification time,
// touched on every use) and removes the others with their companion files (`others`).
void evict(const std::string& directory, const std::string& index, const std::vector<std::string>& others, std::size_t keep) {
  std::vector<std::pair<std::filesystem::file_time_type, std::filesystem::path>> entries;
  std::error_code error;
  for (const auto& entry : std::filesystem::directory_iterator(directory, error)) {
    if (entry.path().extension() == index) entries.emplace_back(entry.last_write_time(error), entry.path());
  }
  std::sort(entries.begin(), entries.end(), [](const auto& a, const auto& b) { return a.first > b.first; });
  for (std::size_t i = keep; i < entries.size(); ++i) {
    std::filesystem::remove(entries[i].second, error);  // the index first: an entry without it is gone
    for (const std::string& other : others) std::filesystem::remove(std::filesystem::path(entries[i].second).replace_extension(other), error);
  }
}

}  // namespace

GoldenCache::GoldenCache(std::string directory, std::string golden_path)
    : directory_(std::move(directory)), golden_path_(std::move(golden_path)), key_(identity_key(golden_path_)) {}

std::string GoldenCache::entry_path(const std::string& kind, const std::string& suffix) const {
  return directory_ + "/" + kind + "/" + key_ + suffix;
}

std::string GoldenCache::digest() {
  if (!digest_.empty()) return digest_;
  const std::string path = directory_.empty() ? "" : entry_path("golden", ".sha256");
  if (!path.empty()) {
    try {
      const std::string cached = read_host_file(path, 128);
      if (cached.size() == 64 && cached.find_first_not_of("0123456789abcdef") == std::string::npos) {
        ::utimensat(AT_FDCWD, path.c_str(), nullptr, 0);  // recently used: kept by evict
        return digest_ = cached;
      }
    } catch (const Error&) {
      // not cached yet (or unreadable): computed below
    }
  }
  digest_ = sparse_file_sha256(golden_path_);
  // A golden on a block device has no identity the key can trust (its bytes change without its
  // inode's times): its digest is never kept.
  if (std::filesystem::is_regular_file(golden_path_)) store_digest(digest_);
  return digest_;
}

void GoldenCache::store_digest(const std::string& digest) const {
  if (directory_.empty() || !make_private_directory(directory_ + "/golden")) return;
  try {
    write_file_atomically(entry_path("golden", ".sha256"), digest, 0600);
    evict(directory_ + "/golden", ".sha256", {}, kKeptDigests);
  } catch (const Error& error) {
    verbose_note(std::string("not caching the golden's sha256: ") + error.what());
  }
}

std::optional<FramedBase> GoldenCache::load_frames(Compression compression) const {
  const std::string stem = entry_path("frames", "-" + compression_name(compression));
  nlohmann::json index;
  try {
    index = nlohmann::json::parse(read_host_file(stem + ".json", 64ull << 20));
  } catch (const std::exception&) {
    return std::nullopt;  // no entry (or not a whole one): built again
  }
  try {
    if (index.at("format").get<int>() != kFormat || index.at("key").get<std::string>() != key_ ||
        index.at("compression").get<std::string>() != compression_name(compression)) {
      return std::nullopt;
    }
    std::vector<Extent> extents;
    for (const auto& extent : index.at("extents")) extents.push_back({extent.at(0).get<std::uint64_t>(), extent.at(1).get<std::uint64_t>()});
    std::vector<FrameSpan> frames;
    std::uint64_t end = 0;
    for (const auto& frame : index.at("frames")) {
      frames.push_back(FrameSpan{end, frame.get<std::uint64_t>(), 0});
      end += frames.back().length;
    }
    UniqueFd file(::open((stem + ".frames").c_str(), O_RDONLY | O_CLOEXEC));
    struct stat info {};
    // A frames file of another length than its index says is not the one the index was written for.
    if (!file || ::fstat(file.get(), &info) != 0 || static_cast<std::uint64_t>(info.st_size) != end) return std::nullopt;
    ::utimensat(AT_FDCWD, (stem + ".json").c_str(), nullptr, 0);  // recently used: kept by evict
    return FramedBase::adopt(std::move(file), compression, index.at("size").get<std::uint64_t>(),
                             index.at("frame_size").get<std::uint64_t>(), std::move(extents), std::move(frames));
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

// Names the frames file (made unnamed in the cache's directory) and writes its index after it.
void GoldenCache::store_frames(const FramedBase& frames, Compression compression) const {
  const std::string stem = entry_path("frames", "-" + compression_name(compression));
  const std::string temp = stem + ".frames.tmp" + std::to_string(::getpid());
  if (::fsync(frames.fd()) != 0) throw_errno("cannot write the cached frames");
  ::unlink(temp.c_str());
  if (::linkat(AT_FDCWD, ("/proc/self/fd/" + std::to_string(frames.fd())).c_str(), AT_FDCWD, temp.c_str(), AT_SYMLINK_FOLLOW) != 0) {
    throw_errno("cannot name the cached frames " + temp);
  }
  if (::rename(temp.c_str(), (stem + ".frames").c_str()) != 0) {
    ::unlink(temp.c_str());
    throw_errno("cannot name the cached frames " + stem + ".frames");
  }
  nlohmann::json index{{"format", kFormat},           {"key", key_},
                       {"golden", golden_path_},       {"compression", compression_name(compression)},
                       {"size", frames.size()},        {"frame_size", frames.frame_size()},
                       {"extents", nlohmann::json::array()}, {"frames", nlohmann::json::array()}};
  for (const Extent& extent : frames.extents()) index["extents"].push_back({extent.offset, extent.length});
  for (const FrameSpan& frame : frames.frames()) index["frames"].push_back(frame.length);
  write_file_atomically(stem + ".json", index.dump(), 0600);
}

GoldenCache::Frames GoldenCache::frames(int golden_fd, Compression compression, unsigned threads, const std::string& scratch_directory) {
  if (!directory_.empty()) {
    if (auto cached = load_frames(compression)) {
      verbose_note(golden_path_ + ": its compressed frames come from the cache (" + directory_ + ")");
      return Frames{std::move(*cached), true};
    }
  }
  const bool cache = !directory_.empty() && make_private_directory(directory_ + "/frames");
  struct stat info {};
  if (::fstat(golden_fd, &info) != 0) throw_errno("cannot stat " + golden_path_);
  Sha256 hashed;  // the golden's sha256 on the way, unless known already
  FramedBase built = FramedBase::build(golden_fd, static_cast<std::uint64_t>(info.st_size), data_extents(golden_fd), compression,
                                       threads, cache ? directory_ + "/frames" : scratch_directory, golden_path_,
                                       kDefaultFrameSize, digest_.empty() ? &hashed : nullptr);
  if (digest_.empty()) {
    digest_ = hashed.hex_digest();
    store_digest(digest_);
  }
  if (cache) {
    try {
      store_frames(built, compression);
      evict(directory_ + "/frames", ".json", {".frames"}, kKeptFrames);
    } catch (const Error& error) {
      verbose_note(std::string("not caching the golden's compressed frames: ") + error.what());
    }
  }
  return Frames{std::move(built), false};
}

}  // namespace imprint
