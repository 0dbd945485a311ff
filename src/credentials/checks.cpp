// The credential checks named in a profile's `checks:` list. Each one guards one way a device
// fails in the field (REFERENCE.md): a key the Mender client replaces, a CN DPS rejects, a PFX the
// DPS client cannot open, an identity script that does not print the registration id.
#include <openssl/rand.h>
#include <openssl/x509v3.h>

#include <array>
#include <charconv>
#include <ctime>
#include <functional>
#include <regex>

#include <nlohmann/json.hpp>

#include "imprint/credentials/credentials.hpp"
#include "imprint/core/error.hpp"
#include "imprint/credentials/identity.hpp"
#include "openssl_util.hpp"

namespace imprint {

namespace {

// A check's reason for failing; run_check turns it into "check <name> failed for device <id>: ...".
struct Failure {
  std::string why;
};
[[noreturn]] void fail(const std::string& why) { throw Failure{why}; }

const DeviceCredentials& need_credentials(const CheckContext& context) {
  if (context.credentials == nullptr) fail("no credentials are configured (credentials: in the profile)");
  return *context.credentials;
}
EVP_PKEY* need_key(const CheckContext& context) {
  auto* key = static_cast<EVP_PKEY*>(need_credentials(context).key_handle());
  if (key == nullptr) fail("the credentials have no device key");
  return key;
}
X509* need_cert(const CheckContext& context) {
  auto* cert = static_cast<X509*>(need_credentials(context).cert_handle());
  if (cert == nullptr) fail("the credentials have no device certificate");
  return cert;
}

std::string common_name(const CheckContext& context) {
  need_cert(context);
  try {
    return context.credentials->common_name();
  } catch (const Error& error) {
    fail(error.what());
  }
}

// Signs random bytes with the private key and verifies them with the certificate's public key:
// EVP_PKEY_eq compares public parts only, this proves the private half belongs too.
bool sign_verify_round_trip(EVP_PKEY* key, EVP_PKEY* public_key) {
  std::array<unsigned char, 32> message{};
  if (RAND_bytes_ex(ossl::context(), message.data(), message.size(), 0) != 1) return false;
  ossl::MdCtx sign_ctx(EVP_MD_CTX_new()), verify_ctx(EVP_MD_CTX_new());
  size_t length = 0;
  if (!sign_ctx || EVP_DigestSignInit_ex(sign_ctx.get(), nullptr, "SHA256", ossl::context(), nullptr, key, nullptr) != 1 ||
      EVP_DigestSign(sign_ctx.get(), nullptr, &length, message.data(), message.size()) != 1) {
    return false;
  }
  std::vector<unsigned char> signature(length);
  if (EVP_DigestSign(sign_ctx.get(), signature.data(), &length, message.data(), message.size()) != 1) return false;
  return verify_ctx &&
         EVP_DigestVerifyInit_ex(verify_ctx.get(), nullptr, "SHA256", ossl::context(), nullptr, public_key, nullptr) == 1 &&
         EVP_DigestVerify(verify_ctx.get(), signature.data(), length, message.data(), message.size()) == 1;
}

void key_matches_cert(const CheckContext& context, const std::string&) {
  EVP_PKEY* key = need_key(context);
  EVP_PKEY* public_key = X509_get0_pubkey(need_cert(context));
  const int equal = public_key == nullptr ? -1 : EVP_PKEY_eq(key, public_key);
  ERR_clear_error();
  if (equal != 1) fail("the device key is not the key of the certificate (its public key differs)");
  if (!sign_verify_round_trip(key, public_key)) {
    ERR_clear_error();
    fail("a signature made with the device key does not verify with the certificate");
  }
}

void cn_is_device_id(const CheckContext& context, const std::string&) {
  const std::string cn = common_name(context);
  if (cn != context.device_id) fail("the certificate CN is \"" + cn + "\", not the device id");
}

void dps_registration_id(const CheckContext& context, const std::string&) {
  // The registration id is the certificate CN; without a certificate it will be the device id.
  const bool from_cert = context.credentials != nullptr && context.credentials->has_cert();
  const std::string id = from_cert ? common_name(context) : context.device_id;
  const std::string what = from_cert ? "the certificate CN \"" + id + "\"" : "the device id \"" + id + "\"";
  if (std::string problem = dps_registration_id_problem(id, what); !problem.empty()) fail(problem);
}

void cert_not_ca(const CheckContext& context, const std::string&) {
  X509* cert = need_cert(context);
  const auto* constraints =
      static_cast<BASIC_CONSTRAINTS*>(X509_get_ext_d2i(cert, NID_basic_constraints, nullptr, nullptr));
  const bool ca_true = constraints != nullptr && constraints->ca != 0;
  BASIC_CONSTRAINTS_free(const_cast<BASIC_CONSTRAINTS*>(constraints));
  if (ca_true) fail("the device certificate is a CA certificate (basicConstraints CA:TRUE)");
  if (X509_check_ca(cert) != 0) fail("the device certificate can act as a CA (X509_check_ca)");
}

// The real clock, not SOURCE_DATE_EPOCH: a certificate's validity is about the day it is shipped.
std::int64_t now_of(const CheckContext& context) {
  return context.now != 0 ? context.now : static_cast<std::int64_t>(std::time(nullptr));
}

int days_argument(const std::string& check, const std::string& argument) {
  int days = 0;
  const auto [end, error] = std::from_chars(argument.data(), argument.data() + argument.size(), days);
  if (argument.empty() || error != std::errc() || end != argument.data() + argument.size() || days < 0) {
    throw Error("check " + check + " needs a number of days, got '" + argument + "'", ErrorCode::Invalid);
  }
  return days;
}

void cert_valid_for_days(const CheckContext& context, const std::string& argument) {
  const int days = days_argument("cert-valid-for-days", argument);
  need_cert(context);
  const std::int64_t now = now_of(context);
  const std::int64_t not_before = context.credentials->not_before(), not_after = context.credentials->not_after();
  if (now < not_before) fail("the certificate is not valid before " + format_utc(not_before));
  if (now > not_after) fail("the certificate expired on " + format_utc(not_after));
  if (not_after - now < std::int64_t{days} * 86400) {
    fail("the certificate expires on " + format_utc(not_after) + ", within " + std::to_string(days) + " days");
  }
}

// Every certificate of the chain, the leaf included: a device certificate that outlives its issuer
// stops verifying the day the intermediate expires (certGen.sh's certificates last 30 days).
void chain_valid_for_days(const CheckContext& context, const std::string& argument) {
  const int days = days_argument("chain-valid-for-days", argument);
  std::vector<X509*> certificates{need_cert(context)};
  for (void* handle : context.credentials->chain_handles()) certificates.push_back(static_cast<X509*>(handle));
  if (certificates.size() == 1) fail("no certificate chain is configured (credentials.chain or a PFX with CA certificates)");
  const std::int64_t now = now_of(context);
  ossl::Asn1Time now_time(ASN1_TIME_set(nullptr, static_cast<time_t>(now)));
  for (std::size_t i = 0; i < certificates.size(); ++i) {
    int day = 0, second = 0;
    if (!now_time || ASN1_TIME_diff(&day, &second, now_time.get(), X509_get0_notAfter(certificates[i])) != 1) {
      fail("certificate " + std::to_string(i) + " of the chain has an unreadable validity date");
    }
    const std::int64_t not_after = now + std::int64_t{day} * 86400 + second;
    char subject[256];
    X509_NAME_oneline(X509_get_subject_name(certificates[i]), subject, sizeof subject);
    const std::string which = (i == 0 ? std::string("the device certificate ") : "the chain's certificate ") + subject;
    if (not_after < now) fail(which + " expired on " + format_utc(not_after));
    if (not_after - now < std::int64_t{days} * 86400) {
      fail(which + " expires on " + format_utc(not_after) + ", within " + std::to_string(days) + " days");
    }
  }
}

void chain_verifies(const CheckContext& context, const std::string&) {
  X509* cert = need_cert(context);
  const auto chain = context.credentials->chain_handles();
  if (chain.empty()) fail("no certificate chain is configured (credentials.chain or a PFX with CA certificates)");
  using Store = std::unique_ptr<X509_STORE, ossl::Deleter<X509_STORE_free>>;
  using StoreCtx = std::unique_ptr<X509_STORE_CTX, ossl::Deleter<X509_STORE_CTX_free>>;
  struct StackFree {
    void operator()(STACK_OF(X509) * stack) const { sk_X509_free(stack); }  // the certs stay owned by the credentials
  };
  using Stack = std::unique_ptr<STACK_OF(X509), StackFree>;
  Store store(X509_STORE_new());
  Stack untrusted(sk_X509_new_null());
  int roots = 0;
  for (void* handle : chain) {
    auto* member = static_cast<X509*>(handle);
    // Self-signed certificates are the trust anchors; the others are intermediates to build through.
    if (X509_self_signed(member, 0) == 1) {
      X509_STORE_add_cert(store.get(), member);
      ++roots;
    } else {
      sk_X509_push(untrusted.get(), member);
    }
  }
  if (roots == 0) fail("the certificate chain has no root (self-signed) certificate");
  StoreCtx ctx(X509_STORE_CTX_new_ex(ossl::context(), nullptr));
  if (!ctx || X509_STORE_CTX_init(ctx.get(), store.get(), cert, untrusted.get()) != 1) fail("cannot set up verification");
  X509_VERIFY_PARAM_set_time(X509_STORE_CTX_get0_param(ctx.get()), static_cast<time_t>(now_of(context)));
  if (X509_verify_cert(ctx.get()) != 1) {
    const int code = X509_STORE_CTX_get_error(ctx.get());
    ERR_clear_error();
    fail(std::string("the certificate does not verify against its chain: ") + X509_verify_cert_error_string(code));
  }
}

void pfx_opens(const CheckContext& context, const std::string&) {
  if (!context.pfx) fail("no PFX goes onto the device (from: credentials.pfx)");
  ossl::PfxContents contents;
  try {
    contents = ossl::parse_pfx(*context.pfx, context.pfx_password, "the PFX");
  } catch (const Error& error) {
    fail(std::string(error.what()) + " (the device client's password)");
  }
  if (context.credentials != nullptr && context.credentials->has_key()) {
    const int equal = EVP_PKEY_eq(contents.key.get(), static_cast<EVP_PKEY*>(context.credentials->key_handle()));
    ERR_clear_error();
    if (equal != 1) fail("the key inside the PFX is not the device key");
  }
}

void rsa_only(const CheckContext& context, const std::string&) {
  EVP_PKEY* key = need_key(context);
  if (EVP_PKEY_get_base_id(key) != EVP_PKEY_RSA) {
    fail(std::string("the device key is ") + EVP_PKEY_get0_type_name(key) + ", the DPS client reads only RSA keys");
  }
  if (context.credentials->has_cert() && EVP_PKEY_get_base_id(X509_get0_pubkey(need_cert(context))) != EVP_PKEY_RSA) {
    fail("the certificate's key is not RSA, the DPS client reads only RSA keys");
  }
}

void identity_prints_device_id(const CheckContext& context, const std::string&) {
  if (!context.identity_script) fail("no identity script goes onto the image");
  const std::string& script = *context.identity_script;
  if (script.rfind("#!", 0) != 0) fail("the identity script does not start with #! (the Mender client execs it directly: ENOEXEC)");
  IdentityAttributes identity;
  try {
    identity = parse_identity_output(run_identity_script(script, context.data_files));
  } catch (const Error& error) {
    fail(error.what());
  }
  const auto found = identity.find("DeviceId");
  if (found == identity.end()) fail("the identity script prints no DeviceId (it prints " + identity_json(identity) + ")");
  if (found->second != std::vector<std::string>{context.device_id}) {
    fail("the identity script prints DeviceId " + nlohmann::json(found->second).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + ", not \"" + context.device_id + "\"");
  }
}

using CheckFunction = std::function<void(const CheckContext&, const std::string&)>;
const std::map<std::string, CheckFunction>& checks() {
  static const std::map<std::string, CheckFunction> table = {
      {"key-matches-cert", key_matches_cert},   {"cn-is-device-id", cn_is_device_id},
      {"dps-registration-id", dps_registration_id}, {"cert-not-ca", cert_not_ca},
      {"cert-valid-for-days", cert_valid_for_days}, {"chain-valid-for-days", chain_valid_for_days},
      {"chain-verifies", chain_verifies},
      {"pfx-opens", pfx_opens},                 {"rsa-only", rsa_only},
      {"identity-prints-device-id", identity_prints_device_id}};
  return table;
}

}  // namespace

std::string dps_registration_id_problem(const std::string& id, const std::string& what) {
  if (id.size() > 64) return what + " has " + std::to_string(id.size()) + " characters; a DPS registration id has at most 64";
  static const std::regex rule("^[A-Za-z0-9]([A-Za-z0-9._-]{0,62}[A-Za-z0-9])?$");
  if (!std::regex_match(id, rule)) {
    return what + " is not a valid DPS registration id (letters, digits, '-', '.', '_', starting and ending alphanumeric)";
  }
  return "";
}

std::vector<std::string> known_checks() {
  std::vector<std::string> names;
  for (const auto& [name, function] : checks()) names.push_back(name);
  return names;
}

void run_check(const std::string& name, const std::string& argument, const CheckContext& context) {
  const auto found = checks().find(name);
  if (found == checks().end()) throw Error("unknown check '" + name + "'", ErrorCode::Invalid);
  if (name != "cert-valid-for-days" && name != "chain-valid-for-days" && !argument.empty()) {
    throw Error("check " + name + " takes no argument, got '" + argument + "'", ErrorCode::Invalid);
  }
  try {
    found->second(context, argument);
  } catch (const Failure& failure) {
    throw Error("check " + name + " failed for device " + context.device_id + ": " + failure.why, ErrorCode::CheckFailed);
  }
}

std::string dps_enrollment_json(const DeviceCredentials& credentials) {
  // DPS wants the certificate as base64 DER: the PEM body without its armour and line breaks.
  std::string base64;
  for (const std::string pem = credentials.cert_pem(); const char c : pem) {
    if (c != '\n' && c != '\r') base64 += c;
  }
  const std::string begin = "-----BEGIN CERTIFICATE-----", end = "-----END CERTIFICATE-----";
  base64 = base64.substr(begin.size(), base64.find(end) - begin.size());
  const std::string id = credentials.common_name();
  const nlohmann::json record = {
      {"registrationId", id},
      {"deviceId", id},
      {"provisioningStatus", "enabled"},
      {"attestation", {{"type", "x509"}, {"x509", {{"clientCertificates", {{"primary", {{"certificate", base64}}}}}}}}}};
  return record.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);  // a CN need not be UTF-8
}

}  // namespace imprint
