#include "openssl_util.hpp"

#include <openssl/crypto.h>
#include <openssl/provider.h>

#include <algorithm>
#include <cstring>

#include "imprint/core/error.hpp"

namespace imprint::ossl {

namespace {
struct Context {
  OSSL_LIB_CTX* libctx = nullptr;
  Context() {
    libctx = OSSL_LIB_CTX_new();
    if (libctx == nullptr || OSSL_PROVIDER_load(libctx, "default") == nullptr) {
      throw Error("OpenSSL: cannot load the default provider: " + last_error());
    }
    // Missing legacy provider: only OpenSSL 1.x RC2 PFX files become unreadable, and their error
    // then says so (see load_pfx).
    if (OSSL_PROVIDER_load(libctx, "legacy") == nullptr) ERR_clear_error();
  }
};
}  // namespace

OSSL_LIB_CTX* context() {
  static Context instance;  // thread-safe initialisation; lives until exit
  return instance.libctx;
}

Bio memory_bio(std::string_view bytes) {
  Bio bio(BIO_new_mem_buf(bytes.data(), static_cast<int>(bytes.size())));
  if (!bio) throw Error("OpenSSL: out of memory");
  return bio;
}

Bio output_bio() {
  Bio bio(BIO_new(BIO_s_mem()));
  if (!bio) throw Error("OpenSSL: out of memory");
  return bio;
}

std::string contents(BIO* bio) {
  char* data = nullptr;
  const long size = BIO_get_mem_data(bio, &data);
  return size > 0 ? std::string(data, static_cast<std::size_t>(size)) : std::string();
}

std::string last_error() {
  unsigned long code = 0, last = 0;
  while ((code = ERR_get_error()) != 0) last = code;
  if (last == 0) return "";
  const char* reason = ERR_reason_error_string(last);
  return reason != nullptr ? reason : "error " + std::to_string(last);
}

Secret::~Secret() { OPENSSL_cleanse(text_.data(), text_.size()); }

int password_callback(char* buffer, int size, int, void* user) {
  const auto* secret = static_cast<const Secret*>(user);
  if (secret == nullptr || size <= 0) return -1;
  const std::size_t length = std::min<std::size_t>(secret->str().size(), static_cast<std::size_t>(size));
  std::memcpy(buffer, secret->c_str(), length);
  return static_cast<int>(length);
}

}  // namespace imprint::ossl
