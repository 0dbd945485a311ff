// Device credentials (OpenSSL 3): the device key, its certificate and chain, loaded from files or a
// PFX, or generated and signed by a CA; written out in the formats the device clients read; and the
// checks that make a wrong key, a wrong CN or an unreadable PFX impossible to ship.
//
// All OpenSSL work runs in a library context of our own with the "default" and "legacy" providers
// (legacy reads OpenSSL 1.x RC2 PFX files); the process-wide default context stays untouched.
// Secrets (keys, passwords) never appear in messages, and never go to a host file other than the
// outputs asked for.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace imprint {

// Host paths (empty when not given) and passwords.
struct CredentialInputs {
  std::string key;           // PEM private key: PKCS#1, PKCS#8 or SEC1, optionally encrypted
  std::string key_password;  // for an encrypted key; empty = none
  std::string cert;          // PEM or DER certificate
  std::string chain;         // PEM file of one or more certificates (intermediate first, root last)
  std::string pfx;           // PKCS#12 file; key and cert come from it unless key/cert are given
  std::string pfx_password;
};

enum class KeyFormat {
  Pkcs1,  // "BEGIN RSA PRIVATE KEY" (EC keys: SEC1 "BEGIN EC PRIVATE KEY"); Mender clients <= 2.4
  Pkcs8,  // "BEGIN PRIVATE KEY"
};
KeyFormat parse_key_format(const std::string& text);  // "pkcs1" | "pkcs8"; Error(Invalid) otherwise

enum class PfxEncryption {
  Compat,  // 3DES key and cert bags + SHA-1 MAC: readable by old Windows/macOS/Android and OpenSSL 1.x
  Aes,     // OpenSSL 3 defaults: AES-256-CBC + PBKDF2, SHA-256 MAC
};
PfxEncryption parse_pfx_encryption(const std::string& text);  // "compat" | "aes"

// Key algorithms for generate(): "rsa:2048", "rsa:3072", "rsa:4096", "ec:p256".
std::vector<std::string> known_key_types();

class DeviceCredentials {
 public:
  DeviceCredentials();
  ~DeviceCredentials();
  DeviceCredentials(DeviceCredentials&&) noexcept;
  DeviceCredentials& operator=(DeviceCredentials&&) noexcept;
  DeviceCredentials(const DeviceCredentials&) = delete;
  DeviceCredentials& operator=(const DeviceCredentials&) = delete;

  // Loads what the inputs name; every error names the file. Key and certificate are not required
  // to match here (that is the key-matches-cert check), but a PFX's own key and certificate must.
  static DeviceCredentials load(const CredentialInputs& inputs);

  // A new device key and a certificate for /CN=device_id signed by the CA: CA:FALSE (critical),
  // keyUsage digitalSignature (+ keyEncipherment for RSA), extendedKeyUsage clientAuth, subject and
  // authority key identifiers, random positive 128-bit serial, SHA-256, valid from now
  // (SOURCE_DATE_EPOCH when set) for `days` days (1 to 36500, and never past the CA's notAfter:
  // Error(Invalid) saying how many days fit). The chain is the CA certificate followed by any
  // further certificates in the CA file.
  static DeviceCredentials generate(const std::string& ca_cert_path, const std::string& ca_key_path,
                                    const std::string& ca_key_password, const std::string& device_id,
                                    const std::string& key_type = "rsa:4096", int days = 365);

  bool has_key() const;
  bool has_cert() const;
  std::size_t chain_size() const;

  // Outputs; each throws Error naming what is missing when the part was not loaded.
  std::string key_pem(KeyFormat format) const;    // secret
  std::string cert_pem() const;
  std::string chain_pem() const;                  // intermediate(s) then root, as loaded
  std::string fullchain_pem() const;              // leaf + chain
  std::string pfx(const std::string& password, PfxEncryption encryption) const;  // leaf + key
  // The PFX file given as input, byte for byte (nullopt when none was given). Use it rather than
  // pfx() when the user supplied one.
  const std::optional<std::string>& loaded_pfx() const;
  std::string public_key_pem() const;  // SubjectPublicKeyInfo of the key (else of the certificate)
  std::string common_name() const;     // the certificate's only CN; Error(CheckFailed) unless exactly one
  std::string sha1_thumbprint() const;    // of the DER certificate, upper-case hex (as Azure shows)
  std::string sha256_thumbprint() const;
  std::int64_t not_before() const;  // seconds since the epoch
  std::int64_t not_after() const;

  // `imprint certs`: DIR/<id>.key.pem (PKCS#1 unless told, 0600), DIR/<id>.cert.pem,
  // DIR/<id>.fullchain.cert.pem (0644), DIR/<id>.cert.pfx (0600), written together: all four are
  // written to pending files and only then named, so a failure leaves none. An existing one is an
  // Error(Exists) naming it unless `force`. <id> is the certificate's CN. DIR is created (0700)
  // when missing. Returns the paths written.
  std::vector<std::string> write_certs_dir(const std::string& dir, const std::string& pfx_password,
                                           KeyFormat key_format = KeyFormat::Pkcs1,
                                           PfxEncryption encryption = PfxEncryption::Compat, bool force = false) const;

  // OpenSSL objects (EVP_PKEY*, X509*) for the checks; null when not loaded.
  void* key_handle() const;
  void* cert_handle() const;
  std::vector<void*> chain_handles() const;

 private:
  struct State;
  std::unique_ptr<State> state_;
};

// DPS individual-enrollment record for the device (Azure DPS REST API body, X.509 attestation with
// the leaf certificate as primary): {"attestation": {...}, "deviceId", "provisioningStatus",
// "registrationId"}.
std::string dps_enrollment_json(const DeviceCredentials& credentials);

// "2030-01-31 12:00:00 UTC"
std::string format_utc(std::int64_t seconds);

// Everything a check may need. Null/empty parts make the checks that need them fail, saying so.
struct CheckContext {
  std::string device_id;
  const DeviceCredentials* credentials = nullptr;
  std::optional<std::string> pfx;           // the PFX bytes that go onto the device
  std::string pfx_password = "1234";        // the password the device client uses
  std::optional<std::string> identity_script;          // bytes of the identity script in the plan
  std::map<std::string, std::string> data_files;       // data-partition files of the plan: "mender/x" -> bytes
  std::int64_t now = 0;                     // seconds since the epoch (0: the clock; never SOURCE_DATE_EPOCH)
};

// Why `id` (described as `what`: "the device id \"x\"") cannot be a DPS registration id, or empty
// when it can: at most 64 characters, letters, digits, '-', '.', '_', starting and ending
// alphanumeric. The dps-registration-id check and `certs --device` both apply it.
std::string dps_registration_id_problem(const std::string& id, const std::string& what);

// Names of the checks run_check knows, sorted.
std::vector<std::string> known_checks();
// Runs one check; throws Error(CheckFailed) "check <name> failed for device <id>: <why>", or
// Error(Invalid) for an unknown check or a bad argument.
void run_check(const std::string& name, const std::string& argument, const CheckContext& context);

}  // namespace imprint
