#include "atlasd/cluster/pki.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>

#include "socketproto/str.h"

namespace atlas::cluster {
namespace {

struct BioDeleter {
  void operator()(BIO* p) const { BIO_free(p); }
};
struct BnDeleter {
  void operator()(BIGNUM* p) const { BN_free(p); }
};
struct GeneralNamesDeleter {
  void operator()(GENERAL_NAMES* p) const { GENERAL_NAMES_free(p); }
};
struct ExtensionDeleter {
  void operator()(X509_EXTENSION* p) const { X509_EXTENSION_free(p); }
};
struct ExtensionStackDeleter {
  void operator()(STACK_OF(X509_EXTENSION) * p) const {
    sk_X509_EXTENSION_pop_free(p, X509_EXTENSION_free);
  }
};
struct StoreDeleter {
  void operator()(X509_STORE* p) const { X509_STORE_free(p); }
};
struct StoreCtxDeleter {
  void operator()(X509_STORE_CTX* p) const { X509_STORE_CTX_free(p); }
};
using BioPtr = std::unique_ptr<BIO, BioDeleter>;
using BnPtr = std::unique_ptr<BIGNUM, BnDeleter>;
using GeneralNamesPtr = std::unique_ptr<GENERAL_NAMES, GeneralNamesDeleter>;
using ExtensionPtr = std::unique_ptr<X509_EXTENSION, ExtensionDeleter>;
using ExtensionStackPtr = std::unique_ptr<STACK_OF(X509_EXTENSION), ExtensionStackDeleter>;

// PEM input larger than this is refused before OpenSSL sees it: a CSR or certificate of ours
// is about 1 KiB.
constexpr size_t kPemBytesMax = 64 * 1024;

absl::Status SslError(std::string_view what) {
  return absl::InternalError(StrCat(what, ": ", OpenSslError()));
}

absl::StatusOr<PkeyPtr> NewP256Key() {
  PkeyPtr key(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256"));
  if (!key) return SslError("generating an ECDSA P-256 key");
  return key;
}

absl::Status SetCommonName(X509_NAME* name, std::string_view cn) {
  // RFC 5280 ub-common-name: OpenSSL refuses longer values anyway, say so clearly.
  if (cn.empty() || cn.size() > 64) {
    return absl::InvalidArgumentError(StrCat("common name must be 1..64 bytes: '", cn, "'"));
  }
  if (X509_NAME_add_entry_by_NID(name, NID_commonName, MBSTRING_UTF8,
                                 reinterpret_cast<const unsigned char*>(cn.data()),
                                 static_cast<int>(cn.size()), -1, 0) != 1) {
    return SslError("setting the common name");
  }
  return absl::OkStatus();
}

absl::Status SetRandomSerial(X509* cert) {
  // 127 random bits (top bit clear keeps the DER INTEGER positive; the next bit set keeps it
  // non-zero and of constant length): serials never collide, so a future revocation list can
  // name certificates unambiguously.
  unsigned char bytes[16];
  if (RAND_bytes(bytes, sizeof(bytes)) != 1) return SslError("drawing a serial number");
  bytes[0] = static_cast<unsigned char>((bytes[0] & 0x7f) | 0x40);
  BnPtr bn(BN_bin2bn(bytes, sizeof(bytes), nullptr));
  if (!bn || BN_to_ASN1_INTEGER(bn.get(), X509_get_serialNumber(cert)) == nullptr) {
    return SslError("setting the serial number");
  }
  return absl::OkStatus();
}

absl::Status AddExtension(X509* cert, X509* issuer, int nid, const char* value) {
  X509V3_CTX ctx;
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  X509V3_set_ctx_nodb(&ctx);
  ExtensionPtr ext(X509V3_EXT_nconf_nid(nullptr, &ctx, nid, value));
  if (!ext || X509_add_ext(cert, ext.get(), -1) != 1) {
    return SslError(StrCat("adding extension ", OBJ_nid2sn(nid), "=", value));
  }
  return absl::OkStatus();
}

// The common skeleton of both certificate profiles; extensions and signing are the callers'.
// Valid from kClockSkewSeconds ago, or from `not_before_s` (unix s) if that is later.
absl::StatusOr<X509Ptr> NewCert(EVP_PKEY* subject_key, std::string_view common_name,
                                int64_t validity_seconds, int64_t not_before_s = 0) {
  X509Ptr cert(X509_new());
  if (!cert) return SslError("allocating a certificate");
  if (X509_set_version(cert.get(), X509_VERSION_3) != 1) return SslError("setting version");
  if (absl::Status s = SetRandomSerial(cert.get()); !s.ok()) return s;
  const time_t now = time(nullptr);
  const time_t from = std::max<time_t>(now - kClockSkewSeconds, not_before_s);
  if (ASN1_TIME_set(X509_getm_notBefore(cert.get()), from) == nullptr ||
      X509_gmtime_adj(X509_getm_notAfter(cert.get()), static_cast<long>(validity_seconds)) ==
          nullptr) {
    return SslError("setting the validity period");
  }
  if (absl::Status s = SetCommonName(X509_get_subject_name(cert.get()), common_name); !s.ok()) {
    return s;
  }
  if (X509_set_pubkey(cert.get(), subject_key) != 1) return SslError("setting the public key");
  return cert;
}

bool IsLdhLabel(std::string_view label) {
  if (label.empty() || label.size() > 63) return false;
  if (label.front() == '-' || label.back() == '-') return false;
  for (char c : label) {
    bool ok =
        (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-';
    if (!ok) return false;
  }
  return true;
}

bool IsDnsName(std::string_view name) {
  if (name.empty() || name.size() > 253) return false;
  size_t start = 0;
  while (true) {
    size_t dot = name.find('.', start);
    std::string_view label =
        name.substr(start, dot == std::string_view::npos ? std::string_view::npos : dot - start);
    if (!IsLdhLabel(label)) return false;
    if (dot == std::string_view::npos) return true;
    start = dot + 1;
  }
}

absl::StatusOr<GeneralNamesPtr> BuildGeneralNames(const SubjectAltNames& sans) {
  GeneralNamesPtr names(sk_GENERAL_NAME_new_null());
  if (!names) return SslError("allocating subject alternative names");
  for (const std::string& dns : sans.dns) {
    GENERAL_NAME* gen = GENERAL_NAME_new();
    ASN1_IA5STRING* str = ASN1_IA5STRING_new();
    if (gen == nullptr || str == nullptr ||
        ASN1_STRING_set(str, dns.data(), static_cast<int>(dns.size())) != 1) {
      GENERAL_NAME_free(gen);
      ASN1_IA5STRING_free(str);
      return SslError("building a DNS name");
    }
    GENERAL_NAME_set0_value(gen, GEN_DNS, str);
    if (sk_GENERAL_NAME_push(names.get(), gen) == 0) {
      GENERAL_NAME_free(gen);
      return SslError("building a DNS name");
    }
  }
  for (const std::string& ip : sans.ips) {
    GENERAL_NAME* gen = GENERAL_NAME_new();
    ASN1_OCTET_STRING* octets = a2i_IPADDRESS(ip.c_str());
    if (gen == nullptr || octets == nullptr) {
      GENERAL_NAME_free(gen);
      ASN1_OCTET_STRING_free(octets);
      return absl::InvalidArgumentError(StrCat("not an IP address: '", ip, "'"));
    }
    GENERAL_NAME_set0_value(gen, GEN_IPADD, octets);
    if (sk_GENERAL_NAME_push(names.get(), gen) == 0) {
      GENERAL_NAME_free(gen);
      return SslError("building an IP address name");
    }
  }
  return names;
}

// Reads DNS and IP names out of a GENERAL_NAMES; any other kind, or a malformed entry, makes
// `strict` parsing fail (CSRs), while certificates we already trust are read leniently.
absl::StatusOr<SubjectAltNames> ReadGeneralNames(const GENERAL_NAMES* names, bool strict) {
  SubjectAltNames out;
  for (int i = 0; i < sk_GENERAL_NAME_num(names); ++i) {
    const GENERAL_NAME* gen = sk_GENERAL_NAME_value(names, i);
    int type = 0;
    void* value = GENERAL_NAME_get0_value(gen, &type);
    if (type == GEN_DNS) {
      const auto* str = static_cast<const ASN1_STRING*>(value);
      std::string dns(reinterpret_cast<const char*>(ASN1_STRING_get0_data(str)),
                      static_cast<size_t>(ASN1_STRING_length(str)));
      out.dns.push_back(std::move(dns));
    } else if (type == GEN_IPADD) {
      const auto* octets = static_cast<const ASN1_OCTET_STRING*>(value);
      int len = ASN1_STRING_length(octets);
      char text[INET6_ADDRSTRLEN] = {};
      int family = len == 4 ? AF_INET : len == 16 ? AF_INET6 : 0;
      if (family == 0 ||
          inet_ntop(family, ASN1_STRING_get0_data(octets), text, sizeof(text)) == nullptr) {
        if (strict) return absl::InvalidArgumentError("malformed IP address name");
        continue;
      }
      out.ips.emplace_back(text);
    } else if (strict) {
      return absl::InvalidArgumentError("only DNS and IP subject alternative names are accepted");
    }
  }
  return out;
}

}  // namespace

std::string OpenSslError() {
  unsigned long code = ERR_get_error();  // the earliest entry is usually the root cause
  ERR_clear_error();
  if (code == 0) return "unknown OpenSSL error";
  char buf[256];
  ERR_error_string_n(code, buf, sizeof(buf));
  return buf;
}

std::string NodeCommonName(uint64_t node_id) { return StrCat(kNodeCommonNamePrefix, node_id); }

absl::Status ValidateSans(const SubjectAltNames& sans) {
  if (sans.dns.size() + sans.ips.size() > kSansMax) {
    return absl::InvalidArgumentError(
        StrCat("too many subject alternative names (at most ", kSansMax, ")"));
  }
  for (const std::string& dns : sans.dns) {
    if (!IsDnsName(dns)) {
      return absl::InvalidArgumentError(StrCat("not a valid DNS name: '", dns, "'"));
    }
  }
  for (const std::string& ip : sans.ips) {
    unsigned char buf[16];
    if (inet_pton(AF_INET, ip.c_str(), buf) != 1 && inet_pton(AF_INET6, ip.c_str(), buf) != 1) {
      return absl::InvalidArgumentError(StrCat("not an IP address: '", ip, "'"));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<ClusterCa> CreateClusterCa(std::string_view cluster_id, int64_t not_before_s) {
  if (cluster_id.empty() || cluster_id.size() > 48) {
    return absl::InvalidArgumentError("cluster id must be 1..48 bytes");
  }
  absl::StatusOr<PkeyPtr> key = NewP256Key();
  if (!key.ok()) return key.status();
  absl::StatusOr<X509Ptr> cert =
      NewCert(key->get(), StrCat("atlasd cluster ", cluster_id), kCaValiditySeconds,
              not_before_s);
  if (!cert.ok()) return cert.status();
  X509* c = cert->get();
  if (X509_set_issuer_name(c, X509_get_subject_name(c)) != 1) return SslError("setting issuer");
  // pathlen:0: the CA signs node certificates only, never another CA.
  for (auto [nid, value] : {std::pair{NID_basic_constraints, "critical,CA:TRUE,pathlen:0"},
                            std::pair{NID_key_usage, "critical,keyCertSign,cRLSign"},
                            std::pair{NID_subject_key_identifier, "hash"},
                            std::pair{NID_authority_key_identifier, "keyid:always"}}) {
    if (absl::Status s = AddExtension(c, c, nid, value); !s.ok()) return s;
  }
  if (X509_sign(c, key->get(), EVP_sha256()) <= 0) return SslError("self-signing the CA");
  return ClusterCa{std::move(*cert), std::move(*key), {}};
}

absl::StatusOr<NodeKeyAndCsr> CreateNodeCsr(const SubjectAltNames& sans, EVP_PKEY* existing) {
  if (absl::Status s = ValidateSans(sans); !s.ok()) return s;
  absl::StatusOr<PkeyPtr> key;
  if (existing == nullptr) {
    key = NewP256Key();
  } else if (EVP_PKEY_up_ref(existing) == 1) {
    key = PkeyPtr(existing);
  } else {
    return SslError("referencing the node key");
  }
  if (!key.ok()) return key.status();
  X509ReqPtr req(X509_REQ_new());
  if (!req) return SslError("allocating a CSR");
  if (X509_REQ_set_version(req.get(), X509_REQ_VERSION_1) != 1) return SslError("CSR version");
  if (absl::Status s = SetCommonName(X509_REQ_get_subject_name(req.get()), "atlasd-node");
      !s.ok()) {
    return s;
  }
  if (X509_REQ_set_pubkey(req.get(), key->get()) != 1) return SslError("CSR public key");
  if (!sans.dns.empty() || !sans.ips.empty()) {
    absl::StatusOr<GeneralNamesPtr> names = BuildGeneralNames(sans);
    if (!names.ok()) return names.status();
    ExtensionStackPtr exts(sk_X509_EXTENSION_new_null());
    X509_EXTENSION* ext = X509V3_EXT_i2d(NID_subject_alt_name, 0, names->get());
    if (!exts || ext == nullptr || sk_X509_EXTENSION_push(exts.get(), ext) == 0) {
      X509_EXTENSION_free(ext);
      return SslError("building the CSR's subjectAltName");
    }
    if (X509_REQ_add_extensions(req.get(), exts.get()) != 1) {
      return SslError("adding the CSR's extensions");
    }
  }
  if (X509_REQ_sign(req.get(), key->get(), EVP_sha256()) <= 0) return SslError("signing CSR");
  return NodeKeyAndCsr{std::move(*key), std::move(req)};
}

absl::StatusOr<SubjectAltNames> ValidateCsr(X509_REQ* csr) {
  if (csr == nullptr) return absl::InvalidArgumentError("no CSR");
  EVP_PKEY* pub = X509_REQ_get0_pubkey(csr);
  if (pub == nullptr) {
    ERR_clear_error();
    return absl::InvalidArgumentError("CSR carries no usable public key");
  }
  if (EVP_PKEY_get_base_id(pub) != EVP_PKEY_EC) {
    return absl::InvalidArgumentError("CSR key must be ECDSA P-256 or P-384");
  }
  char group[64] = {};
  size_t group_len = 0;
  if (EVP_PKEY_get_group_name(pub, group, sizeof(group), &group_len) != 1) {
    ERR_clear_error();
    return absl::InvalidArgumentError("CSR key has no named curve");
  }
  std::string_view g(group, group_len);
  if (g != "prime256v1" && g != "P-256" && g != "secp384r1" && g != "P-384") {
    return absl::InvalidArgumentError(StrCat("CSR key curve ", g, " is not P-256 or P-384"));
  }
  // Proof of possession: the requester holds the private key of the key it asks us to certify.
  if (X509_REQ_verify(csr, pub) != 1) {
    ERR_clear_error();
    return absl::InvalidArgumentError("CSR signature does not verify");
  }
  SubjectAltNames sans;
  ExtensionStackPtr exts(X509_REQ_get_extensions(csr));
  ERR_clear_error();  // no extensions at all is not an error
  bool seen_san = false;
  for (int i = 0; exts && i < sk_X509_EXTENSION_num(exts.get()); ++i) {
    X509_EXTENSION* ext = sk_X509_EXTENSION_value(exts.get(), i);
    if (OBJ_obj2nid(X509_EXTENSION_get_object(ext)) != NID_subject_alt_name) continue;
    if (seen_san) return absl::InvalidArgumentError("CSR has two subjectAltName extensions");
    seen_san = true;
    GeneralNamesPtr names(static_cast<GENERAL_NAMES*>(X509V3_EXT_d2i(ext)));
    if (!names) {
      ERR_clear_error();
      return absl::InvalidArgumentError("CSR subjectAltName does not parse");
    }
    absl::StatusOr<SubjectAltNames> read = ReadGeneralNames(names.get(), /*strict=*/true);
    if (!read.ok()) return read.status();
    sans = std::move(*read);
  }
  if (absl::Status s = ValidateSans(sans); !s.ok()) return s;
  return sans;
}

absl::StatusOr<X509Ptr> SignNodeCsr(X509_REQ* csr, const ClusterCa& ca, uint64_t node_id,
                                    const SubjectAltNames& hosts, int64_t validity_seconds) {
  if (!ca.key) return absl::FailedPreconditionError("this node does not hold the CA key");
  // The CSR proves possession of its key; what it asks to be called is ignored: the signer
  // decides every name (a joiner once got a certificate naming another node this way).
  if (absl::StatusOr<SubjectAltNames> asked = ValidateCsr(csr); !asked.ok()) return asked.status();
  if (absl::Status s = ValidateSans(hosts); !s.ok()) return s;
  const std::string common_name = NodeCommonName(node_id);
  SubjectAltNames names;
  // The node's name as a DNS name too: verifiers that ignore the CN once a certificate has
  // subject alternative names (Go's, so Prometheus; gRPC's target name check) find it.
  names.dns.push_back(common_name);
  for (const std::string& dns : hosts.dns) {
    if (dns.starts_with(kNodeCommonNamePrefix)) {
      return absl::InvalidArgumentError(StrCat("host name ", dns, " is reserved for node names"));
    }
    if (std::find(names.dns.begin(), names.dns.end(), dns) == names.dns.end()) {
      names.dns.push_back(dns);
    }
  }
  names.ips = hosts.ips;
  const SubjectAltNames* sans = &names;
  absl::StatusOr<X509Ptr> cert =
      NewCert(X509_REQ_get0_pubkey(csr), common_name, validity_seconds);
  if (!cert.ok()) return cert.status();
  X509* c = cert->get();
  if (X509_set_issuer_name(c, X509_get_subject_name(ca.cert.get())) != 1) {
    return SslError("setting issuer");
  }
  for (auto [nid, value] : {std::pair{NID_basic_constraints, "critical,CA:FALSE"},
                            std::pair{NID_key_usage, "critical,digitalSignature"},
                            std::pair{NID_ext_key_usage, "serverAuth,clientAuth"},
                            std::pair{NID_subject_key_identifier, "hash"},
                            std::pair{NID_authority_key_identifier, "keyid:always"}}) {
    if (absl::Status s = AddExtension(c, ca.cert.get(), nid, value); !s.ok()) return s;
  }
  // Only the names decided here, encoded by us: nothing from the CSR but its public key
  // reaches the certificate.
  {
    absl::StatusOr<GeneralNamesPtr> names = BuildGeneralNames(*sans);
    if (!names.ok()) return names.status();
    if (X509_add1_ext_i2d(c, NID_subject_alt_name, names->get(), 0, X509V3_ADD_DEFAULT) != 1) {
      return SslError("adding subjectAltName");
    }
  }
  if (X509_sign(c, ca.key.get(), EVP_sha256()) <= 0) return SslError("signing the certificate");
  return cert;
}

namespace {
std::string Hex(const unsigned char* md, unsigned int len) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(len * 2);
  for (unsigned int i = 0; i < len; ++i) {
    out.push_back(kHex[md[i] >> 4]);
    out.push_back(kHex[md[i] & 0xf]);
  }
  return out;
}
}  // namespace

std::string Fingerprint(X509* cert) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (cert == nullptr || X509_digest(cert, EVP_sha256(), md, &len) != 1) return "";
  return Hex(md, len);
}

std::string PublicKeyFingerprint(EVP_PKEY* key) {
  unsigned char* der = nullptr;
  const int n = key == nullptr ? -1 : i2d_PUBKEY(key, &der);
  if (n <= 0) return "";
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  const bool ok = EVP_Digest(der, static_cast<size_t>(n), md, &len, EVP_sha256(), nullptr) == 1;
  OPENSSL_free(der);
  return ok ? Hex(md, len) : "";
}

SubjectAltNames CertSans(X509* cert) {
  GeneralNamesPtr names(
      static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr)));
  if (!names) return {};
  absl::StatusOr<SubjectAltNames> read = ReadGeneralNames(names.get(), /*strict=*/false);
  return read.ok() ? *read : SubjectAltNames{};
}

SubjectAltNames HostSans(const std::vector<std::string>& addresses) {
  SubjectAltNames sans;
  for (const std::string& address : addresses) {
    std::string host;
    if (address.starts_with('[')) {
      const size_t close = address.find(']');
      if (close != std::string::npos) host = address.substr(1, close - 1);
    } else {
      host = address.substr(0, address.rfind(':'));
    }
    if (host.empty() || host == "0.0.0.0" || host == "::") continue;
    SubjectAltNames one;
    unsigned char buf[16];
    if (inet_pton(AF_INET, host.c_str(), buf) == 1 || inet_pton(AF_INET6, host.c_str(), buf) == 1) {
      if (std::find(sans.ips.begin(), sans.ips.end(), host) == sans.ips.end()) one.ips = {host};
    } else if (std::find(sans.dns.begin(), sans.dns.end(), host) == sans.dns.end() &&
               !host.starts_with(kNodeCommonNamePrefix)) {
      one.dns = {host};
    }
    if (!ValidateSans(one).ok()) continue;
    sans.ips.insert(sans.ips.end(), one.ips.begin(), one.ips.end());
    sans.dns.insert(sans.dns.end(), one.dns.begin(), one.dns.end());
  }
  return sans;
}

std::optional<uint64_t> NodeIdOfIdentity(const std::vector<std::string_view>& common_names,
                                         const std::vector<std::string_view>& dns_names) {
  if (common_names.size() != 1) return std::nullopt;
  const std::string_view cn = common_names[0];
  if (!cn.starts_with(kNodeCommonNamePrefix)) return std::nullopt;
  std::string_view digits = cn.substr(kNodeCommonNamePrefix.size());
  uint64_t id = 0;
  if (digits.empty() || digits.size() > 10 || digits[0] == '0') return std::nullopt;
  for (char c : digits) {
    if (c < '0' || c > '9') return std::nullopt;
    id = id * 10 + static_cast<uint64_t>(c - '0');
  }
  if (id == 0 || id > UINT32_MAX) return std::nullopt;
  // One identity per certificate: every node name among its SANs must be this one (gRPC's
  // client checks a SAN, the server reads the CN; they must never disagree).
  for (std::string_view dns : dns_names) {
    if (dns.starts_with(kNodeCommonNamePrefix) && dns != cn) return std::nullopt;
  }
  return id;
}

namespace {
int64_t AsnTimeMs(const ASN1_TIME* t) {
  struct tm tm {};
  if (t == nullptr || ASN1_TIME_to_tm(t, &tm) != 1) return 0;
  return static_cast<int64_t>(timegm(&tm)) * 1000;
}
}  // namespace

int64_t CertNotBeforeMs(X509* cert) {
  return cert == nullptr ? 0 : AsnTimeMs(X509_get0_notBefore(cert));
}

int64_t CertNotAfterMs(X509* cert) {
  return cert == nullptr ? 0 : AsnTimeMs(X509_get0_notAfter(cert));
}

std::optional<uint64_t> NodeOfCert(X509* cert, SubjectAltNames* hosts) {
  SubjectAltNames sans = CertSans(cert);
  const std::string cn = CertCommonName(cert);
  std::vector<std::string_view> dns(sans.dns.begin(), sans.dns.end());
  std::optional<uint64_t> id = NodeIdOfIdentity({cn}, dns);
  if (!id) return std::nullopt;
  std::erase(sans.dns, NodeCommonName(*id));
  if (hosts != nullptr) *hosts = std::move(sans);
  return id;
}

std::string CertCommonName(X509* cert) {
  X509_NAME* name = X509_get_subject_name(cert);
  int idx = X509_NAME_get_index_by_NID(name, NID_commonName, -1);
  if (idx < 0) return "";
  unsigned char* utf8 = nullptr;
  int len = ASN1_STRING_to_UTF8(&utf8, X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, idx)));
  if (len < 0) return "";
  std::string out(reinterpret_cast<char*>(utf8), static_cast<size_t>(len));
  OPENSSL_free(utf8);
  return out;
}

absl::Status VerifyChain(X509* leaf, X509* ca, Purpose purpose) {
  if (leaf == nullptr || ca == nullptr) return absl::InvalidArgumentError("missing certificate");
  std::unique_ptr<X509_STORE, StoreDeleter> store(X509_STORE_new());
  std::unique_ptr<X509_STORE_CTX, StoreCtxDeleter> ctx(X509_STORE_CTX_new());
  if (!store || !ctx || X509_STORE_add_cert(store.get(), ca) != 1 ||
      X509_STORE_CTX_init(ctx.get(), store.get(), leaf, nullptr) != 1) {
    return SslError("setting up certificate verification");
  }
  X509_VERIFY_PARAM_set_flags(X509_STORE_CTX_get0_param(ctx.get()), X509_V_FLAG_X509_STRICT);
  if (purpose != Purpose::kAny) {
    X509_STORE_CTX_set_purpose(
        ctx.get(), purpose == Purpose::kServer ? X509_PURPOSE_SSL_SERVER : X509_PURPOSE_SSL_CLIENT);
  }
  if (X509_verify_cert(ctx.get()) != 1) {
    int err = X509_STORE_CTX_get_error(ctx.get());
    ERR_clear_error();
    return absl::PermissionDeniedError(StrCat("certificate does not chain to the cluster CA: ",
                                              X509_verify_cert_error_string(err)));
  }
  return absl::OkStatus();
}

X509* IssuingCa(X509* leaf, const ClusterCa& ca, Purpose purpose) {
  if (ca.cert && VerifyChain(leaf, ca.cert.get(), purpose).ok()) return ca.cert.get();
  for (const X509Ptr& other : ca.also_trusted) {
    if (VerifyChain(leaf, other.get(), purpose).ok()) return other.get();
  }
  return nullptr;
}

absl::Status VerifyToCluster(X509* leaf, const ClusterCa& ca, Purpose purpose) {
  if (IssuingCa(leaf, ca, purpose) != nullptr) return absl::OkStatus();
  return VerifyChain(leaf, ca.cert.get(), purpose);
}

std::vector<std::string> CaFingerprints(const ClusterCa& ca) {
  std::vector<std::string> out{Fingerprint(ca.cert.get())};
  for (const X509Ptr& other : ca.also_trusted) out.push_back(Fingerprint(other.get()));
  return out;
}

std::string CasToPem(const ClusterCa& ca) {
  std::string out = CertToPem(ca.cert.get());
  for (const X509Ptr& other : ca.also_trusted) out += CertToPem(other.get());
  return out;
}

std::string CertToBase64(X509* cert) {
  unsigned char* der = nullptr;
  const int len = i2d_X509(cert, &der);
  if (len <= 0) return "";
  std::string out(4 * ((static_cast<size_t>(len) + 2) / 3) + 1, '\0');
  const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()), der, len);
  OPENSSL_free(der);
  out.resize(static_cast<size_t>(std::max(n, 0)));
  return out;
}

absl::StatusOr<X509Ptr> CertFromBase64(std::string_view text) {
  if (text.empty() || text.size() > kPemBytesMax || text.size() % 4 != 0) {
    return absl::InvalidArgumentError("not a base64 certificate");
  }
  std::string der(text.size() / 4 * 3, '\0');
  const int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(der.data()),
                                reinterpret_cast<const unsigned char*>(text.data()),
                                static_cast<int>(text.size()));
  if (n <= 0) return absl::InvalidArgumentError("not a base64 certificate");
  // EVP_DecodeBlock keeps the padding's zero bytes: d2i reads the DER's own length.
  const unsigned char* p = reinterpret_cast<const unsigned char*>(der.data());
  X509Ptr cert(d2i_X509(nullptr, &p, n));
  if (!cert) {
    ERR_clear_error();
    return absl::InvalidArgumentError("not a DER certificate");
  }
  return cert;
}

namespace {

std::string BioContents(BIO* bio) {
  char* data = nullptr;
  long len = BIO_get_mem_data(bio, &data);
  return len > 0 ? std::string(data, static_cast<size_t>(len)) : std::string();
}

absl::StatusOr<BioPtr> ReadBio(std::string_view pem) {
  if (pem.size() > kPemBytesMax) return absl::InvalidArgumentError("PEM input too large");
  BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  if (!bio) return SslError("allocating a BIO");
  return bio;
}

// Never prompt on a terminal for a passphrase: our keys are unencrypted, any other is refused.
int NoPassphrase(char*, int, int, void*) { return 0; }

}  // namespace

std::string CertToPem(X509* cert) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio || PEM_write_bio_X509(bio.get(), cert) != 1) return "";
  return BioContents(bio.get());
}

std::string CsrToPem(X509_REQ* csr) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio || PEM_write_bio_X509_REQ(bio.get(), csr) != 1) return "";
  return BioContents(bio.get());
}

absl::StatusOr<std::string> KeyToPem(EVP_PKEY* key) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio ||
      PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr) != 1) {
    return SslError("encoding a private key");
  }
  return BioContents(bio.get());
}

absl::StatusOr<X509Ptr> CertFromPem(std::string_view pem) {
  absl::StatusOr<BioPtr> bio = ReadBio(pem);
  if (!bio.ok()) return bio.status();
  X509Ptr cert(PEM_read_bio_X509(bio->get(), nullptr, NoPassphrase, nullptr));
  if (!cert) {
    ERR_clear_error();
    return absl::InvalidArgumentError("not a PEM certificate");
  }
  return cert;
}

absl::StatusOr<std::vector<X509Ptr>> CertsFromPem(std::string_view pem, size_t count_max) {
  absl::StatusOr<BioPtr> bio = ReadBio(pem);
  if (!bio.ok()) return bio.status();
  std::vector<X509Ptr> certs;
  while (certs.size() <= count_max) {
    X509Ptr cert(PEM_read_bio_X509(bio->get(), nullptr, NoPassphrase, nullptr));
    if (!cert) break;
    certs.push_back(std::move(cert));
  }
  ERR_clear_error();  // the end of the input reads as an error
  if (certs.empty()) return absl::InvalidArgumentError("not a PEM certificate");
  if (certs.size() > count_max) {
    return absl::InvalidArgumentError(StrCat("more than ", count_max, " certificates"));
  }
  return certs;
}

absl::StatusOr<X509ReqPtr> CsrFromPem(std::string_view pem) {
  absl::StatusOr<BioPtr> bio = ReadBio(pem);
  if (!bio.ok()) return bio.status();
  X509ReqPtr csr(PEM_read_bio_X509_REQ(bio->get(), nullptr, NoPassphrase, nullptr));
  if (!csr) {
    ERR_clear_error();
    return absl::InvalidArgumentError("not a PEM certificate signing request");
  }
  return csr;
}

absl::StatusOr<PkeyPtr> KeyFromPem(std::string_view pem) {
  absl::StatusOr<BioPtr> bio = ReadBio(pem);
  if (!bio.ok()) return bio.status();
  PkeyPtr key(PEM_read_bio_PrivateKey(bio->get(), nullptr, NoPassphrase, nullptr));
  if (!key) {
    ERR_clear_error();
    return absl::InvalidArgumentError("not an unencrypted PEM private key");
  }
  return key;
}

absl::Status WriteFileAtomic(const std::string& path, std::string_view contents, unsigned mode) {
  const std::string tmp = path + ".tmp";
  ::unlink(tmp.c_str());  // a leftover from a crash mid-write; O_EXCL below needs it gone
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
  if (fd < 0) return absl::InternalError(StrCat("creating ", tmp, ": ", std::strerror(errno)));
  auto fail = [&](std::string_view what) {
    int err = errno;
    ::close(fd);
    ::unlink(tmp.c_str());
    return absl::InternalError(StrCat(what, " ", tmp, ": ", std::strerror(err)));
  };
  // The umask may have cleared bits we asked for; set exactly `mode` (never more than asked).
  if (::fchmod(fd, mode) != 0) return fail("chmod");
  size_t done = 0;
  while (done < contents.size()) {
    ssize_t n = ::write(fd, contents.data() + done, contents.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return fail("writing");
    done += static_cast<size_t>(n);
  }
  if (::fsync(fd) != 0) return fail("fsync");
  if (::close(fd) != 0) {
    ::unlink(tmp.c_str());
    return absl::InternalError(StrCat("closing ", tmp, ": ", std::strerror(errno)));
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    int err = errno;
    ::unlink(tmp.c_str());
    return absl::InternalError(StrCat("renaming to ", path, ": ", std::strerror(err)));
  }
  std::filesystem::path dir = std::filesystem::path(path).parent_path();
  if (dir.empty()) dir = std::filesystem::path(".");
  int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    ::fsync(dfd);  // makes the rename durable; best effort on filesystems that refuse it
    ::close(dfd);
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> ReadSmallFile(const std::string& path, size_t bytes_max) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return absl::NotFoundError(StrCat(path, ": no such file"));
    return absl::InternalError(StrCat("opening ", path, ": ", std::strerror(errno)));
  }
  std::string out;
  char buf[4096];
  while (true) {
    ssize_t n = ::read(fd, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int err = errno;
      ::close(fd);
      return absl::InternalError(StrCat("reading ", path, ": ", std::strerror(err)));
    }
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
    if (out.size() > bytes_max) {
      ::close(fd);
      return absl::InvalidArgumentError(StrCat(path, " is larger than ", bytes_max, " bytes"));
    }
  }
  ::close(fd);
  return out;
}

absl::Status SaveCert(const std::string& path, X509* cert) {
  std::string pem = CertToPem(cert);
  if (pem.empty()) return SslError("encoding a certificate");
  return WriteFileAtomic(path, pem, 0644);
}

absl::Status SaveKey(const std::string& path, EVP_PKEY* key) {
  absl::StatusOr<std::string> pem = KeyToPem(key);
  if (!pem.ok()) return pem.status();
  absl::Status s = WriteFileAtomic(path, *pem, 0600);
  OPENSSL_cleanse(pem->data(), pem->size());
  return s;
}

absl::StatusOr<X509Ptr> LoadCert(const std::string& path) {
  absl::StatusOr<std::string> pem = ReadSmallFile(path, kPemBytesMax);
  if (!pem.ok()) return pem.status();
  absl::StatusOr<X509Ptr> cert = CertFromPem(*pem);
  if (!cert.ok()) return absl::InvalidArgumentError(StrCat(path, ": ", cert.status().message()));
  return cert;
}

absl::StatusOr<PkeyPtr> LoadKey(const std::string& path) {
  absl::StatusOr<std::string> pem = ReadSmallFile(path, kPemBytesMax);
  if (!pem.ok()) return pem.status();
  absl::StatusOr<PkeyPtr> key = KeyFromPem(*pem);
  OPENSSL_cleanse(pem->data(), pem->size());
  if (!key.ok()) return absl::InvalidArgumentError(StrCat(path, ": ", key.status().message()));
  return key;
}

}  // namespace atlas::cluster
