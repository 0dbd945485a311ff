// Internal helpers of the credentials module: RAII for OpenSSL objects, our library context, and
// error text. Not a public header.
#pragma once

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pkcs12.h>
#include <openssl/x509.h>

#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace imprint::ossl {

template <auto Free>
struct Deleter {
  template <typename T>
  void operator()(T* pointer) const {
    Free(pointer);
  }
};

using Bio = std::unique_ptr<BIO, Deleter<BIO_free_all>>;
using Key = std::unique_ptr<EVP_PKEY, Deleter<EVP_PKEY_free>>;
using Cert = std::unique_ptr<X509, Deleter<X509_free>>;
using Pkcs12 = std::unique_ptr<PKCS12, Deleter<PKCS12_free>>;
using MdCtx = std::unique_ptr<EVP_MD_CTX, Deleter<EVP_MD_CTX_free>>;
using Md = std::unique_ptr<EVP_MD, Deleter<EVP_MD_free>>;
using Asn1Time = std::unique_ptr<ASN1_TIME, Deleter<ASN1_TIME_free>>;

// Our library context with the "default" and "legacy" providers (legacy when it is installed).
OSSL_LIB_CTX* context();

// A read-only memory BIO over bytes (which must outlive it).
Bio memory_bio(std::string_view bytes);
// A growing memory BIO; contents() copies what was written.
Bio output_bio();
std::string contents(BIO* bio);

// The last OpenSSL error as text ("" when none), clearing the queue.
std::string last_error();

// A password buffer wiped (OPENSSL_cleanse) on destruction.
class Secret {
 public:
  explicit Secret(std::string_view text) : text_(text) {}
  ~Secret();
  Secret(const Secret&) = delete;
  Secret& operator=(const Secret&) = delete;
  const char* c_str() const { return text_.c_str(); }
  const std::string& str() const { return text_; }

 private:
  std::string text_;
};

// pem_password_cb that hands out the Secret passed as user data (never prompts on a terminal).
int password_callback(char* buffer, int size, int rwflag, void* user);

// The contents of a PFX, read in our context; Error(Invalid) naming `what` when it does not open.
struct PfxContents {
  Key key;
  Cert cert;
  std::vector<Cert> chain;
};
PfxContents parse_pfx(std::string_view bytes, const std::string& password, const std::string& what);

}  // namespace imprint::ossl
