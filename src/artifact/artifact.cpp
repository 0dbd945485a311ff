#include "imprint/artifact/artifact.hpp"

#include <archive.h>
#include <sys/stat.h>
#include <unistd.h>
#include <archive_entry.h>
#include <openssl/ecdsa.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include <algorithm>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>

#include "imprint/core/bytes.hpp"
#include "imprint/core/error.hpp"
#include "imprint/core/fileio.hpp"

namespace imprint {

namespace {

using Entries = std::vector<std::pair<std::string, std::string>>;  // tar members in order
using ArchivePtr = std::unique_ptr<archive, decltype(&archive_write_free)>;

constexpr std::size_t chunk_size = 1 << 20;

void check(archive* handle, int status, const std::string& what) {
  if (status < ARCHIVE_WARN) throw Error(what + ": " + (archive_error_string(handle) ? archive_error_string(handle) : "libarchive error"));
}

// A tar writer (optionally gzip-filtered) appending to a string or writing to a descriptor.
class TarWriter {
 public:
  TarWriter(bool gzip, std::string what) : handle_(archive_write_new(), archive_write_free), what_(std::move(what)) {
    check(handle_.get(), archive_write_set_format_ustar(handle_.get()), what_);
    if (gzip) {
      check(handle_.get(), archive_write_add_filter_gzip(handle_.get()), what_);
      // No name or time in the gzip header: the same input gives the same bytes.
      check(handle_.get(), archive_write_set_filter_option(handle_.get(), "gzip", "timestamp", nullptr), what_);
    }
    check(handle_.get(), archive_write_set_bytes_in_last_block(handle_.get(), 1), what_);
  }
  void open_string(std::string& out) {
    check(handle_.get(), archive_write_open(handle_.get(), &out, nullptr, append, nullptr), what_);
  }
  void open_fd(int fd) { check(handle_.get(), archive_write_open_fd(handle_.get(), fd), what_); }
  void begin(const std::string& name, std::uint64_t size) {
    std::unique_ptr<archive_entry, decltype(&archive_entry_free)> entry(archive_entry_new(), archive_entry_free);
    archive_entry_set_pathname(entry.get(), name.c_str());
    archive_entry_set_filetype(entry.get(), AE_IFREG);
    archive_entry_set_perm(entry.get(), 0600);
    archive_entry_set_size(entry.get(), static_cast<la_int64_t>(size));
    archive_entry_set_uid(entry.get(), 0);
    archive_entry_set_gid(entry.get(), 0);
    archive_entry_set_mtime(entry.get(), 0, 0);
    check(handle_.get(), archive_write_header(handle_.get(), entry.get()), what_ + ": " + name);
  }
  void data(std::string_view bytes) {
    if (bytes.empty()) return;
    if (archive_write_data(handle_.get(), bytes.data(), bytes.size()) != static_cast<la_ssize_t>(bytes.size())) {
      check(handle_.get(), ARCHIVE_FATAL, what_);
    }
  }
  void add(const std::string& name, std::string_view bytes) {
    begin(name, bytes.size());
    data(bytes);
  }
  void close() { check(handle_.get(), archive_write_close(handle_.get()), what_); }

 private:
  static la_ssize_t append(archive*, void* out, const void* buffer, size_t length) {
    static_cast<std::string*>(out)->append(static_cast<const char*>(buffer), length);
    return static_cast<la_ssize_t>(length);
  }
  ArchivePtr handle_;
  std::string what_;
};

std::string tar_gz(const Entries& entries, const std::string& what) {
  std::string out;
  TarWriter writer(true, what);
  writer.open_string(out);
  for (const auto& [name, bytes] : entries) writer.add(name, bytes);
  writer.close();
  return out;
}

// Every member of a (possibly gzip-compressed) tar held in memory.
Entries read_tar(const std::string& bytes, const std::string& what) {
  std::unique_ptr<archive, decltype(&archive_read_free)> handle(archive_read_new(), archive_read_free);
  archive_read_support_format_tar(handle.get());
  archive_read_support_filter_gzip(handle.get());
  if (archive_read_open_memory(handle.get(), bytes.data(), bytes.size()) != ARCHIVE_OK) {
    throw Error(what + " is not a Mender Artifact (not a tar archive)", ErrorCode::Corrupt);
  }
  Entries entries;
  archive_entry* entry = nullptr;
  int status = ARCHIVE_OK;
  while ((status = archive_read_next_header(handle.get(), &entry)) == ARCHIVE_OK) {
    std::string content;
    char buffer[16384];
    la_ssize_t got = 0;
    while ((got = archive_read_data(handle.get(), buffer, sizeof buffer)) > 0) content.append(buffer, static_cast<std::size_t>(got));
    if (got < 0) break;
    entries.emplace_back(archive_entry_pathname(entry), std::move(content));
  }
  if (status != ARCHIVE_EOF) {
    throw Error(what + " is damaged: " + (archive_error_string(handle.get()) ? archive_error_string(handle.get()) : "bad tar"),
                ErrorCode::Corrupt);
  }
  return entries;
}

std::string* find_entry(Entries& entries, const std::string& name) {
  for (auto& [entry_name, bytes] : entries) {
    if (entry_name == name) return &bytes;
  }
  return nullptr;
}

// "<sha256>  <name>\n" per file, sorted by name, as mender-artifact writes it.
std::string format_manifest(const std::map<std::string, std::string>& sums) {
  std::string manifest;
  for (const auto& [name, sum] : sums) manifest += sum + "  " + name + "\n";
  return manifest;
}

std::map<std::string, std::string> parse_manifest(const std::string& manifest, const std::string& what) {
  std::map<std::string, std::string> sums;
  std::size_t start = 0;
  while (start < manifest.size()) {
    std::size_t end = manifest.find('\n', start);
    if (end == std::string::npos) end = manifest.size();
    const std::string line = manifest.substr(start, end - start);
    start = end + 1;
    if (line.empty()) continue;
    const std::size_t gap = line.find("  ");
    if (gap != 64) throw Error(what + ": manifest line '" + line + "' is not '<sha256>  <name>'", ErrorCode::Corrupt);
    sums[line.substr(gap + 2)] = line.substr(0, gap);
  }
  return sums;
}

using PkeyPtr = std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)>;

PkeyPtr load_private_key(const std::string& key_path) {
  const std::string pem = read_host_file(key_path);
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())), BIO_free);
  PkeyPtr key(PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr), EVP_PKEY_free);
  if (!key) throw Error(key_path + ": not an unencrypted PEM private key", ErrorCode::Invalid);
  return key;
}

std::string base64(std::string_view bytes) {
  std::string out(4 * ((bytes.size() + 2) / 3) + 1, '\0');
  const int length = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                     reinterpret_cast<const unsigned char*>(bytes.data()), static_cast<int>(bytes.size()));
  out.resize(static_cast<std::size_t>(length));
  return out;
}

// mender-artifact's ECDSA signatures are r and s, each padded to the curve's size, not DER.
std::string ecdsa_raw(const std::string& der, int bits, const std::string& key_path) {
  const auto* cursor = reinterpret_cast<const unsigned char*>(der.data());
  std::unique_ptr<ECDSA_SIG, decltype(&ECDSA_SIG_free)> sig(d2i_ECDSA_SIG(nullptr, &cursor, static_cast<long>(der.size())),
                                                           ECDSA_SIG_free);
  if (!sig) throw Error(key_path + ": ECDSA signature could not be decoded");
  const int width = (bits + 7) / 8;
  std::string raw(static_cast<std::size_t>(2 * width), '\0');
  auto* out = reinterpret_cast<unsigned char*>(raw.data());
  if (BN_bn2binpad(ECDSA_SIG_get0_r(sig.get()), out, width) != width ||
      BN_bn2binpad(ECDSA_SIG_get0_s(sig.get()), out + width, width) != width) {
    throw Error(key_path + ": ECDSA signature does not fit the curve");
  }
  return raw;
}

}  // namespace

std::string sign_manifest(const std::string& manifest, const std::string& key_path) {
  PkeyPtr key = load_private_key(key_path);
  const int type = EVP_PKEY_get_base_id(key.get());
  if (type != EVP_PKEY_RSA && type != EVP_PKEY_EC) throw Error(key_path + ": Artifacts are signed with RSA or ECDSA keys only", ErrorCode::Invalid);
  if (type == EVP_PKEY_EC && EVP_PKEY_get_bits(key.get()) != 256) {
    throw Error(key_path + ": mender-artifact verifies ECDSA P-256 signatures only", ErrorCode::Invalid);
  }
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> context(EVP_MD_CTX_new(), EVP_MD_CTX_free);
  std::size_t length = 0;
  if (EVP_DigestSignInit(context.get(), nullptr, EVP_sha256(), nullptr, key.get()) != 1 ||
      EVP_DigestSign(context.get(), nullptr, &length, reinterpret_cast<const unsigned char*>(manifest.data()), manifest.size()) != 1) {
    throw Error(key_path + ": cannot sign with this key");
  }
  std::string signature(length, '\0');
  if (EVP_DigestSign(context.get(), reinterpret_cast<unsigned char*>(signature.data()), &length,
                     reinterpret_cast<const unsigned char*>(manifest.data()), manifest.size()) != 1) {
    throw Error(key_path + ": signing failed");
  }
  signature.resize(length);
  if (type == EVP_PKEY_EC) signature = ecdsa_raw(signature, EVP_PKEY_get_bits(key.get()), key_path);
  return base64(signature);
}

RewrittenArtifact rewrite_artifact_provides(const std::string& artifact, const std::string& name,
                                            const std::vector<std::pair<std::string, std::string>>& provides,
                                            const std::string& key_path) {
  Entries outer = read_tar(artifact, name);
  std::string* header = find_entry(outer, "header.tar.gz");
  std::string* manifest = find_entry(outer, "manifest");
  if (!header || !manifest) throw Error(name + " is not a Mender Artifact version 3 (no header.tar.gz or manifest)", ErrorCode::Corrupt);
  Entries inner = read_tar(*header, name + ": header.tar.gz");
  std::string* type_info = find_entry(inner, "headers/0000/type-info");
  if (!type_info) throw Error(name + ": header.tar.gz has no headers/0000/type-info", ErrorCode::Corrupt);
  nlohmann::ordered_json info;
  try {
    info = nlohmann::ordered_json::parse(*type_info);
  } catch (const nlohmann::json::exception&) {
    throw Error(name + ": headers/0000/type-info is not JSON", ErrorCode::Corrupt);
  }
  for (const auto& [key, value] : provides) info["artifact_provides"][key] = value;
  *type_info = info.dump();
  *header = tar_gz(inner, name + ": header.tar.gz");

  auto sums = parse_manifest(*manifest, name);
  sums["header.tar.gz"] = sha256_hex(*header);
  *manifest = format_manifest(sums);

  RewrittenArtifact result;
  result.was_signed = find_entry(outer, "manifest.sig") != nullptr;
  result.signed_now = result.was_signed && !key_path.empty();
  std::string out;
  TarWriter writer(false, name);
  writer.open_string(out);
  for (const auto& [entry_name, bytes] : outer) {
    if (entry_name == "manifest.sig") {
      if (result.signed_now) writer.add(entry_name, sign_manifest(*manifest, key_path));
      continue;
    }
    writer.add(entry_name, bytes);
  }
  writer.close();
  result.bytes = std::move(out);
  return result;
}

std::string write_rootfs_artifact(const RootfsArtifact& spec, int image_fd, std::uint64_t offset, std::uint64_t size,
                                  int out_fd, const std::string& scratch_path) {
  // The payload first (into a scratch file): the header needs its checksum, and the outer tar its
  // compressed size, before the payload's bytes can follow them.
  PendingFile scratch(scratch_path);
  Sha256 hash;
  {
    TarWriter payload(true, scratch_path);
    payload.open_fd(scratch.fd());
    payload.begin(spec.payload_name, size);
    std::string buffer(chunk_size, '\0');
    for (std::uint64_t done = 0; done < size;) {
      const std::size_t want = static_cast<std::size_t>(std::min<std::uint64_t>(chunk_size, size - done));
      const ssize_t got = ::pread(image_fd, buffer.data(), want, static_cast<off_t>(offset + done));
      if (got <= 0) throw_errno("cannot read the root filesystem for " + spec.name);
      const std::string_view chunk(buffer.data(), static_cast<std::size_t>(got));
      hash.update(chunk);
      payload.data(chunk);
      done += static_cast<std::uint64_t>(got);
    }
    payload.close();
  }
  const std::string checksum = hash.hex_digest();

  nlohmann::ordered_json header_info = {
      {"payloads", {{{"type", "rootfs-image"}}}},
      {"artifact_provides", {{"artifact_name", spec.name}}},
      {"artifact_depends", {{"device_type", spec.device_types}}}};
  nlohmann::ordered_json type_info = {
      {"type", "rootfs-image"},
      {"artifact_provides", {{"rootfs-image.checksum", checksum}, {"rootfs-image.version", spec.name}}},
      {"clears_artifact_provides", {"artifact_group", "rootfs_image_checksum", "rootfs-image.*"}}};
  const std::string version = R"({"format":"mender","version":3})";
  const std::string header = tar_gz({{"header-info", header_info.dump()}, {"headers/0000/type-info", type_info.dump()},
                                     {"headers/0000/meta-data", ""}},
                                    "header.tar.gz");
  const std::string manifest = format_manifest({{"version", sha256_hex(version)},
                                                {"header.tar.gz", sha256_hex(header)},
                                                {"data/0000/" + spec.payload_name, checksum}});

  struct stat info {};
  if (::fstat(scratch.fd(), &info) != 0) throw_errno("cannot stat " + scratch_path);
  TarWriter outer(false, spec.name);
  outer.open_fd(out_fd);
  outer.add("version", version);
  outer.add("manifest", manifest);
  if (!spec.key_path.empty()) outer.add("manifest.sig", sign_manifest(manifest, spec.key_path));
  outer.add("header.tar.gz", header);
  outer.begin("data/0000.tar.gz", static_cast<std::uint64_t>(info.st_size));
  std::string buffer(chunk_size, '\0');
  for (off_t done = 0; done < info.st_size;) {
    const ssize_t got = ::pread(scratch.fd(), buffer.data(), buffer.size(), done);
    if (got <= 0) throw_errno("cannot read " + scratch_path);
    outer.data(std::string_view(buffer.data(), static_cast<std::size_t>(got)));
    done += got;
  }
  outer.close();
  return checksum;
}

}  // namespace imprint
