// DeviceCredentials: load, generate and write the device key, certificate, chain and PFX.
#include "imprint/credentials/credentials.hpp"

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <ctime>
#include <filesystem>

#include "imprint/core/error.hpp"
#include "imprint/core/fileio.hpp"
#include "openssl_util.hpp"

namespace imprint {

using ossl::Bio;
using ossl::Cert;
using ossl::Key;

struct DeviceCredentials::State {
  Key key;
  Cert cert;
  std::vector<Cert> chain;  // intermediate(s) first, root last
  std::optional<std::string> loaded_pfx;
};

DeviceCredentials::DeviceCredentials() : state_(std::make_unique<State>()) {}
DeviceCredentials::~DeviceCredentials() = default;
DeviceCredentials::DeviceCredentials(DeviceCredentials&&) noexcept = default;
DeviceCredentials& DeviceCredentials::operator=(DeviceCredentials&&) noexcept = default;

KeyFormat parse_key_format(const std::string& text) {
  if (text == "pkcs1") return KeyFormat::Pkcs1;
  if (text == "pkcs8") return KeyFormat::Pkcs8;
  throw Error("key format '" + text + "' is not pkcs1 or pkcs8", ErrorCode::Invalid);
}

PfxEncryption parse_pfx_encryption(const std::string& text) {
  if (text == "compat") return PfxEncryption::Compat;
  if (text == "aes") return PfxEncryption::Aes;
  throw Error("PFX encryption '" + text + "' is not compat or aes", ErrorCode::Invalid);
}

std::vector<std::string> known_key_types() { return {"ec:p256", "rsa:2048", "rsa:3072", "rsa:4096"}; }

namespace {

Cert new_cert() {
  Cert cert(X509_new_ex(ossl::context(), nullptr));
  if (!cert) throw Error("OpenSSL: out of memory");
  return cert;
}

// Decodes into an object made in our library context. OpenSSL's d2i functions free the object and
// null the pointer when decoding fails part-way, so ownership goes through a raw pointer.
template <typename Holder, typename Decode>
bool decode_into(Holder& holder, Decode&& decode) {
  auto* raw = holder.release();
  const bool decoded = decode(&raw) != nullptr;
  holder.reset(raw);
  if (!decoded) ERR_clear_error();
  return decoded;
}

// A certificate from PEM or DER bytes; null when the bytes hold none.
Cert parse_cert(std::string_view bytes) {
  Cert cert = new_cert();
  Bio pem = ossl::memory_bio(bytes);
  if (decode_into(cert, [&](X509** raw) { return PEM_read_bio_X509(pem.get(), raw, nullptr, nullptr); })) return cert;
  cert = new_cert();
  Bio der = ossl::memory_bio(bytes);
  if (decode_into(cert, [&](X509** raw) { return d2i_X509_bio(der.get(), raw); })) return cert;
  return nullptr;
}

// Every PEM certificate in the bytes, in order.
std::vector<Cert> parse_cert_list(std::string_view bytes) {
  std::vector<Cert> certs;
  Bio bio = ossl::memory_bio(bytes);
  for (;;) {
    Cert cert = new_cert();
    if (!decode_into(cert, [&](X509** raw) { return PEM_read_bio_X509(bio.get(), raw, nullptr, nullptr); })) break;
    certs.push_back(std::move(cert));
  }
  return certs;  // the end of the file reads as "no start line": cleared by decode_into
}

std::int64_t to_epoch(const ASN1_TIME* time) {
  std::tm tm{};
  if (time == nullptr || ASN1_TIME_to_tm(time, &tm) != 1) throw Error("certificate: unreadable validity date", ErrorCode::Corrupt);
  return static_cast<std::int64_t>(timegm(&tm));
}

// The label of the first PEM block ("CERTIFICATE", "PUBLIC KEY", ...), or "" when there is none.
std::string pem_label(std::string_view bytes) {
  Bio bio = ossl::memory_bio(bytes);
  char* name = nullptr;
  char* header = nullptr;
  unsigned char* data = nullptr;
  long length = 0;
  std::string label;
  if (PEM_read_bio(bio.get(), &name, &header, &data, &length) == 1) label = name;
  OPENSSL_free(name);
  OPENSSL_free(header);
  OPENSSL_clear_free(data, static_cast<std::size_t>(std::max(length, 0L)));
  ERR_clear_error();
  return label;
}

bool is_der_pfx(std::string_view bytes) {
  ossl::Pkcs12 p12(PKCS12_init_ex(NID_pkcs7_data, ossl::context(), nullptr));
  Bio bio = ossl::memory_bio(bytes);
  return p12 && decode_into(p12, [&](PKCS12** raw) { return d2i_PKCS12_bio(bio.get(), raw); });
}

// What a file that is not a usable private key holds instead, so the message says what was given.
std::string what_it_holds(std::string_view bytes) {
  if (bytes.empty()) return "the file is empty";
  const std::string label = pem_label(bytes);
  if (label == "CERTIFICATE" || label == "TRUSTED CERTIFICATE") return "it holds a certificate (PEM), not a private key";
  if (label.find("CERTIFICATE REQUEST") != std::string::npos) {
    return "it holds a certificate signing request (CSR), not a private key";
  }
  if (label.find("PUBLIC KEY") != std::string::npos) return "it holds a public key, not a private key";
  if (!label.empty()) return "it holds a PEM '" + label + "' block, not a private key";
  if (static_cast<unsigned char>(bytes.front()) == 0x30) {  // an ASN.1 SEQUENCE: DER
    if (Cert cert = parse_cert(bytes)) return "it holds a DER certificate, not a private key";
    if (is_der_pfx(bytes)) return "it is a PKCS#12 (PFX) file: give it as the pfx credential";
    return "it is DER (binary); imprint reads private keys in PEM (openssl pkey -inform DER -in FILE -out FILE.pem)";
  }
  return "it is neither PEM nor DER";
}

Key parse_key(std::string_view bytes, const std::string& password, const std::string& what) {
  const ossl::Secret secret(password);
  Bio bio = ossl::memory_bio(bytes);
  Key key(PEM_read_bio_PrivateKey_ex(bio.get(), nullptr, ossl::password_callback, const_cast<ossl::Secret*>(&secret),
                                     ossl::context(), nullptr));
  ERR_clear_error();
  if (key) return key;
  const bool encrypted = bytes.find("ENCRYPTED") != std::string_view::npos;
  if (encrypted && password.empty()) throw Error(what + ": the key is encrypted and no password was given", ErrorCode::Invalid);
  const std::string label = pem_label(bytes);
  if (encrypted || label == "ENCRYPTED PRIVATE KEY") {
    throw Error(what + ": not a private key (wrong password?)", ErrorCode::Invalid);
  }
  if (label.find("PRIVATE KEY") != std::string::npos) {
    throw Error(what + ": a PEM '" + label + "' block that OpenSSL cannot read (damaged or unsupported key)", ErrorCode::Invalid);
  }
  throw Error(what + ": not a private key: " + what_it_holds(bytes), ErrorCode::Invalid);
}

}  // namespace

// PKCS12_parse uses the library context of the PKCS12 object: we create it in ours (with the
// legacy provider) and decode into it.
ossl::PfxContents ossl::parse_pfx(std::string_view bytes, const std::string& password, const std::string& what) {
  ossl::Pkcs12 p12(PKCS12_init_ex(NID_pkcs7_data, ossl::context(), nullptr));
  if (!p12) throw Error("OpenSSL: out of memory");
  Bio bio = ossl::memory_bio(bytes);
  if (!decode_into(p12, [&](PKCS12** raw) { return d2i_PKCS12_bio(bio.get(), raw); })) {
    throw Error(what + ": not a PKCS#12 (PFX) file", ErrorCode::Invalid);
  }
  const ossl::Secret secret(password);
  if (PKCS12_mac_present(p12.get()) == 1 && PKCS12_verify_mac(p12.get(), secret.c_str(), -1) != 1) {
    ERR_clear_error();
    throw Error(what + ": the PFX does not open with the given password", ErrorCode::Invalid);
  }
  EVP_PKEY* key = nullptr;
  X509* cert = nullptr;
  STACK_OF(X509)* cas = nullptr;
  if (PKCS12_parse(p12.get(), secret.c_str(), &key, &cert, &cas) != 1) {
    const std::string reason = ossl::last_error();
    throw Error(what + ": cannot read the PFX contents (" + reason + ")" +
                    (reason.find("unsupported") != std::string::npos
                         ? ": an OpenSSL 1.x (RC2) PFX needs OpenSSL's legacy provider (ossl-modules/legacy.so)"
                         : ""),
                ErrorCode::Invalid);
  }
  ossl::PfxContents contents{Key(key), Cert(cert), {}};
  for (int i = 0; cas != nullptr && i < sk_X509_num(cas); ++i) contents.chain.emplace_back(sk_X509_value(cas, i));
  sk_X509_free(cas);
  if (!contents.key) throw Error(what + ": the PFX holds no private key", ErrorCode::Invalid);
  if (!contents.cert) throw Error(what + ": the PFX holds no certificate for its key", ErrorCode::Invalid);
  return contents;
}

DeviceCredentials DeviceCredentials::load(const CredentialInputs& inputs) {
  if (inputs.key.empty() && inputs.cert.empty() && inputs.pfx.empty() && inputs.chain.empty()) {
    throw Error("credentials: no key, certificate or PFX given", ErrorCode::Invalid);
  }
  DeviceCredentials credentials;
  State& state = *credentials.state_;
  if (!inputs.pfx.empty()) {
    std::string bytes = read_host_file(inputs.pfx);
    ossl::PfxContents contents = ossl::parse_pfx(bytes, inputs.pfx_password, inputs.pfx);
    state.key = std::move(contents.key);
    state.cert = std::move(contents.cert);
    state.chain = std::move(contents.chain);
    state.loaded_pfx = std::move(bytes);
  }
  if (!inputs.key.empty()) {
    std::string bytes = read_host_file(inputs.key);
    state.key = parse_key(bytes, inputs.key_password, inputs.key);
    OPENSSL_cleanse(bytes.data(), bytes.size());
  }
  if (!inputs.cert.empty()) {
    state.cert = parse_cert(read_host_file(inputs.cert));
    if (!state.cert) throw Error(inputs.cert + ": not a certificate (PEM or DER)", ErrorCode::Invalid);
  }
  if (!inputs.chain.empty()) {
    state.chain = parse_cert_list(read_host_file(inputs.chain));
    if (state.chain.empty()) throw Error(inputs.chain + ": no PEM certificate in the chain file", ErrorCode::Invalid);
  }
  return credentials;
}

namespace {

constexpr int kMaxDays = 36500;  // 100 years: far inside what an X.509 time (GeneralizedTime, year 9999) holds

Key generate_key(const std::string& key_type) {
  EVP_PKEY* key = nullptr;
  if (key_type == "rsa:2048" || key_type == "rsa:3072" || key_type == "rsa:4096") {
    key = EVP_PKEY_Q_keygen(ossl::context(), nullptr, "RSA", static_cast<size_t>(std::stoul(key_type.substr(4))));
  } else if (key_type == "ec:p256") {
    key = EVP_PKEY_Q_keygen(ossl::context(), nullptr, "EC", "P-256");
  } else {
    throw Error("key type '" + key_type + "' is not one of rsa:2048, rsa:3072, rsa:4096, ec:p256", ErrorCode::Invalid);
  }
  if (key == nullptr) throw Error("cannot generate a " + key_type + " key: " + ossl::last_error());
  return Key(key);
}

void add_extension(X509* cert, X509V3_CTX* ctx, int nid, const char* value) {
  X509_EXTENSION* extension = X509V3_EXT_conf_nid(nullptr, ctx, nid, value);
  if (extension == nullptr || X509_add_ext(cert, extension, -1) != 1) {
    X509_EXTENSION_free(extension);
    throw Error(std::string("cannot add the certificate extension ") + OBJ_nid2sn(nid) + ": " + ossl::last_error());
  }
  X509_EXTENSION_free(extension);
}

// Random positive 128-bit serial (RFC 5280: positive, at most 20 octets).
void set_random_serial(X509* cert) {
  std::array<unsigned char, 16> bytes{};
  do {
    if (RAND_bytes_ex(ossl::context(), bytes.data(), bytes.size(), 0) != 1) throw Error("cannot draw a random serial");
    bytes[0] &= 0x7f;
  } while (bytes[0] == 0);  // keep it a full 16 octets, non-zero
  std::unique_ptr<BIGNUM, ossl::Deleter<BN_free>> number(BN_bin2bn(bytes.data(), bytes.size(), nullptr));
  if (!number || BN_to_ASN1_INTEGER(number.get(), X509_get_serialNumber(cert)) == nullptr) {
    throw Error("cannot set the certificate serial");
  }
}

// A leaf that outlives its CA is refused by every verifier once the CA has expired: say how many
// days fit instead of issuing it (refusing rather than clamping keeps --days meaning what it says).
void refuse_beyond_ca(X509* ca, const std::string& ca_cert_path, std::int64_t now, int days) {
  const std::int64_t ca_end = to_epoch(X509_get0_notAfter(ca));
  if (now + std::int64_t{days} * 86400 <= ca_end) return;
  const std::string end = "the CA certificate " + ca_cert_path + " is valid until " + format_utc(ca_end);
  const std::int64_t fit = (ca_end - now) / 86400;
  if (fit < 1) throw Error("certs: " + end + ": less than a day is left to issue a certificate in", ErrorCode::Invalid);
  throw Error("certs: a certificate valid for " + std::to_string(days) + " days would outlive its CA: " + end + "; at most " +
                  std::to_string(fit) + " days fit",
              ErrorCode::Invalid);
}

void sign(X509* cert, EVP_PKEY* ca_key) {
  ossl::MdCtx md(EVP_MD_CTX_new());
  if (!md || EVP_DigestSignInit_ex(md.get(), nullptr, "SHA256", ossl::context(), nullptr, ca_key, nullptr) != 1 ||
      X509_sign_ctx(cert, md.get()) <= 0) {
    throw Error("cannot sign the device certificate: " + ossl::last_error());
  }
}

}  // namespace

DeviceCredentials DeviceCredentials::generate(const std::string& ca_cert_path, const std::string& ca_key_path,
                                              const std::string& ca_key_password, const std::string& device_id,
                                              const std::string& key_type, int days) {
  if (device_id.empty()) throw Error("certs: the device id is empty", ErrorCode::Invalid);
  if (days <= 0) throw Error("certs: validity of " + std::to_string(days) + " days is not positive", ErrorCode::Invalid);
  if (days > kMaxDays) {
    throw Error("certs: validity of " + std::to_string(days) + " days is more than " + std::to_string(kMaxDays) + " (100 years)",
                ErrorCode::Invalid);
  }
  std::vector<Cert> ca_certs = parse_cert_list(read_host_file(ca_cert_path));
  if (ca_certs.empty()) {
    Cert der = parse_cert(read_host_file(ca_cert_path));
    if (!der) throw Error(ca_cert_path + ": not a certificate (PEM or DER)", ErrorCode::Invalid);
    ca_certs.push_back(std::move(der));
  }
  std::string ca_key_bytes = read_host_file(ca_key_path);
  Key ca_key = parse_key(ca_key_bytes, ca_key_password, ca_key_path);
  OPENSSL_cleanse(ca_key_bytes.data(), ca_key_bytes.size());
  X509* ca = ca_certs.front().get();
  if (EVP_PKEY_eq(ca_key.get(), X509_get0_pubkey(ca)) != 1) {
    throw Error(ca_key_path + ": not the key of the CA certificate " + ca_cert_path, ErrorCode::Invalid);
  }
  if (X509_check_ca(ca) == 0) throw Error(ca_cert_path + ": not a CA certificate", ErrorCode::Invalid);
  const std::int64_t now = reproducible_now();
  refuse_beyond_ca(ca, ca_cert_path, now, days);

  DeviceCredentials credentials;
  State& state = *credentials.state_;
  state.key = generate_key(key_type);
  state.cert = new_cert();
  X509* cert = state.cert.get();
  if (X509_set_version(cert, X509_VERSION_3) != 1 || X509_set_issuer_name(cert, X509_get_subject_name(ca)) != 1 ||
      X509_set_pubkey(cert, state.key.get()) != 1 ||
      ASN1_TIME_set(X509_getm_notBefore(cert), static_cast<time_t>(now)) == nullptr ||
      ASN1_TIME_set(X509_getm_notAfter(cert), static_cast<time_t>(now + std::int64_t{days} * 86400)) == nullptr ||
      X509_NAME_add_entry_by_NID(X509_get_subject_name(cert), NID_commonName, MBSTRING_UTF8,
                                 reinterpret_cast<const unsigned char*>(device_id.c_str()),
                                 static_cast<int>(device_id.size()), -1, 0) != 1) {
    throw Error("cannot build the certificate for " + device_id + ": " + ossl::last_error(), ErrorCode::Invalid);
  }
  set_random_serial(cert);
  X509V3_CTX ctx;
  X509V3_set_ctx(&ctx, ca, cert, nullptr, nullptr, 0);
  const bool rsa = EVP_PKEY_is_a(state.key.get(), "RSA") == 1;
  add_extension(cert, &ctx, NID_basic_constraints, "critical,CA:FALSE");
  add_extension(cert, &ctx, NID_key_usage, rsa ? "critical,digitalSignature,keyEncipherment" : "critical,digitalSignature");
  add_extension(cert, &ctx, NID_ext_key_usage, "clientAuth");
  add_extension(cert, &ctx, NID_subject_key_identifier, "hash");
  add_extension(cert, &ctx, NID_authority_key_identifier, "keyid:always");
  sign(cert, ca_key.get());
  state.chain = std::move(ca_certs);
  return credentials;
}

bool DeviceCredentials::has_key() const { return state_->key != nullptr; }
bool DeviceCredentials::has_cert() const { return state_->cert != nullptr; }
std::size_t DeviceCredentials::chain_size() const { return state_->chain.size(); }
void* DeviceCredentials::key_handle() const { return state_->key.get(); }
void* DeviceCredentials::cert_handle() const { return state_->cert.get(); }
std::vector<void*> DeviceCredentials::chain_handles() const {
  std::vector<void*> handles;
  for (const auto& cert : state_->chain) handles.push_back(cert.get());
  return handles;
}
const std::optional<std::string>& DeviceCredentials::loaded_pfx() const { return state_->loaded_pfx; }

namespace {
EVP_PKEY* need_key(const Key& key) {
  if (!key) throw Error("credentials: no device key was given", ErrorCode::Invalid);
  return key.get();
}
X509* need_cert(const Cert& cert) {
  if (!cert) throw Error("credentials: no device certificate was given", ErrorCode::Invalid);
  return cert.get();
}
std::string cert_to_pem(X509* cert) {
  Bio bio = ossl::output_bio();
  if (PEM_write_bio_X509(bio.get(), cert) != 1) throw Error("cannot encode a certificate: " + ossl::last_error());
  return ossl::contents(bio.get());
}
std::string thumbprint(X509* cert, const char* digest) {
  ossl::Md md(EVP_MD_fetch(ossl::context(), digest, nullptr));
  std::array<unsigned char, EVP_MAX_MD_SIZE> hash{};
  unsigned length = 0;
  if (!md || X509_digest(cert, md.get(), hash.data(), &length) != 1) throw Error("cannot hash the certificate");
  static constexpr char digits[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned i = 0; i < length; ++i) {
    out += digits[hash[i] >> 4];
    out += digits[hash[i] & 0xf];
  }
  return out;
}
}  // namespace

std::string DeviceCredentials::key_pem(KeyFormat format) const {
  EVP_PKEY* key = need_key(state_->key);
  Bio bio(BIO_new(BIO_s_secmem()));  // cleansed when freed
  if (!bio) throw Error("OpenSSL: out of memory");
  // PKCS#1 ("RSA PRIVATE KEY") / SEC1 ("EC PRIVATE KEY") is the "traditional" format.
  const int written = format == KeyFormat::Pkcs1
                          ? PEM_write_bio_PrivateKey_traditional(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr)
                          : PEM_write_bio_PrivateKey_ex(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr,
                                                        ossl::context(), nullptr);
  if (written != 1) throw Error("cannot encode the device key: " + ossl::last_error());
  return ossl::contents(bio.get());
}

std::string DeviceCredentials::cert_pem() const { return cert_to_pem(need_cert(state_->cert)); }

std::string DeviceCredentials::chain_pem() const {
  if (state_->chain.empty()) throw Error("credentials: no certificate chain was given", ErrorCode::Invalid);
  std::string pem;
  for (const auto& cert : state_->chain) pem += cert_to_pem(cert.get());
  return pem;
}

std::string DeviceCredentials::fullchain_pem() const {
  std::string pem = cert_pem();
  for (const auto& cert : state_->chain) pem += cert_to_pem(cert.get());
  return pem;
}

std::string DeviceCredentials::pfx(const std::string& password, PfxEncryption encryption) const {
  EVP_PKEY* key = need_key(state_->key);
  X509* cert = need_cert(state_->cert);
  const ossl::Secret secret(password);
  const bool compat = encryption == PfxEncryption::Compat;
  const int nid = compat ? NID_pbe_WithSHA1And3_Key_TripleDES_CBC : 0;  // 0: OpenSSL 3 defaults (AES-256)
  // Compat: no MAC from create (it would be SHA-256), then a SHA-1 MAC that old readers verify.
  ossl::Pkcs12 p12(PKCS12_create_ex(secret.c_str(), nullptr, key, cert, nullptr, nid, nid, PKCS12_DEFAULT_ITER,
                                    compat ? -1 : PKCS12_DEFAULT_ITER, 0, ossl::context(), nullptr));
  if (!p12) throw Error("cannot build the PFX: " + ossl::last_error() + " (does the key match the certificate?)", ErrorCode::Invalid);
  if (compat && PKCS12_set_mac(p12.get(), secret.c_str(), -1, nullptr, 0, PKCS12_DEFAULT_ITER, EVP_sha1()) != 1) {
    throw Error("cannot add the PFX MAC: " + ossl::last_error());
  }
  Bio bio = ossl::output_bio();
  if (i2d_PKCS12_bio(bio.get(), p12.get()) != 1) throw Error("cannot encode the PFX: " + ossl::last_error());
  return ossl::contents(bio.get());
}

std::string DeviceCredentials::public_key_pem() const {
  EVP_PKEY* key = state_->key ? state_->key.get() : X509_get0_pubkey(need_cert(state_->cert));
  Bio bio = ossl::output_bio();
  if (key == nullptr || PEM_write_bio_PUBKEY_ex(bio.get(), key, ossl::context(), nullptr) != 1) {
    throw Error("cannot encode the public key: " + ossl::last_error());
  }
  return ossl::contents(bio.get());
}

std::string DeviceCredentials::common_name() const {
  X509_NAME* subject = X509_get_subject_name(need_cert(state_->cert));
  int index = -1, count = 0, found = -1;
  while ((index = X509_NAME_get_index_by_NID(subject, NID_commonName, index)) >= 0) {
    ++count;
    found = index;
  }
  if (count != 1) {
    throw Error("the certificate subject has " + std::to_string(count) + " CN entries, not exactly one", ErrorCode::CheckFailed);
  }
  const ASN1_STRING* data = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subject, found));
  unsigned char* utf8 = nullptr;
  const int length = ASN1_STRING_to_UTF8(&utf8, data);
  if (length < 0) throw Error("the certificate CN is not valid text", ErrorCode::CheckFailed);
  std::string name(reinterpret_cast<char*>(utf8), static_cast<std::size_t>(length));
  OPENSSL_free(utf8);
  if (name.find('\0') != std::string::npos) throw Error("the certificate CN contains a NUL byte", ErrorCode::CheckFailed);
  return name;
}

std::string DeviceCredentials::sha1_thumbprint() const { return thumbprint(need_cert(state_->cert), "SHA1"); }
std::string DeviceCredentials::sha256_thumbprint() const { return thumbprint(need_cert(state_->cert), "SHA256"); }
std::int64_t DeviceCredentials::not_before() const { return to_epoch(X509_get0_notBefore(need_cert(state_->cert))); }
std::int64_t DeviceCredentials::not_after() const { return to_epoch(X509_get0_notAfter(need_cert(state_->cert))); }

std::vector<std::string> DeviceCredentials::write_certs_dir(const std::string& dir, const std::string& pfx_password,
                                                            KeyFormat key_format, PfxEncryption encryption, bool force) const {
  const std::string id = common_name();
  if (id.empty() || id == "." || id == ".." || id.find('/') != std::string::npos) {
    throw Error("certs: the CN '" + id + "' cannot name a file", ErrorCode::Invalid);
  }
  if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) throw_errno("certs: cannot create " + dir);
  const std::string base = (std::filesystem::path(dir) / id).string();
  const std::vector<std::string> paths{base + ".key.pem", base + ".cert.pem", base + ".fullchain.cert.pem", base + ".cert.pfx"};
  // The key of an enrolled device cannot be recovered once replaced: never overwrite by accident.
  // A directory under one of the names would fail its rename after the others were renamed.
  for (const std::string& path : paths) {
    struct stat info {};
    if (::lstat(path.c_str(), &info) != 0) continue;
    if (S_ISDIR(info.st_mode)) throw Error("certs: " + path + " is a directory", ErrorCode::IsDirectory);
    if (!force) {
      throw Error("certs: " + path + " already exists (a device's key cannot be recovered once replaced); --force replaces it",
                  ErrorCode::Exists);
    }
  }
  // Build and write everything into pending files first; none gets its name unless all were written.
  std::string key = key_pem(key_format);
  std::string pfx_bytes = pfx(pfx_password, encryption);
  const std::string cert = cert_pem(), fullchain = fullchain_pem();
  const std::vector<std::pair<std::string_view, unsigned>> contents{{key, 0600}, {cert, 0644}, {fullchain, 0644}, {pfx_bytes, 0600}};
  std::vector<PendingFile> pending;
  for (std::size_t i = 0; i < paths.size(); ++i) {
    pending.emplace_back(paths[i]);
    write_all(pending.back().fd(), contents[i].first, paths[i]);
    if (::fchmod(pending.back().fd(), contents[i].second) != 0) throw_errno("cannot set the mode of " + paths[i]);
  }
  OPENSSL_cleanse(key.data(), key.size());
  OPENSSL_cleanse(pfx_bytes.data(), pfx_bytes.size());
  for (PendingFile& file : pending) file.commit();
  return paths;
}

std::string format_utc(std::int64_t seconds) {
  const auto time = static_cast<std::time_t>(seconds);
  std::tm tm{};
  gmtime_r(&time, &tm);
  char buffer[32];
  std::strftime(buffer, sizeof buffer, "%Y-%m-%d %H:%M:%S UTC", &tm);
  return buffer;
}

}  // namespace imprint
