// The cluster PKI: one ECDSA P-256 cluster CA per cluster, one node certificate per node
// signed by it. Specified in docs/cluster-bootstrap.md (PKI layout, certificate profiles).
//
// Every OpenSSL object is owned by a std::unique_ptr with a custom deleter, so no path leaks.
// Functions are thread-safe as long as no two threads mutate the same object; signing with a
// shared CA key from several threads is fine (OpenSSL 3 EVP_PKEY signing is read-only).
#pragma once

#include <openssl/evp.h>
#include <openssl/x509.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace atlas::cluster {

struct PkeyDeleter {
  void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
};
struct X509Deleter {
  void operator()(X509* p) const { X509_free(p); }
};
struct X509ReqDeleter {
  void operator()(X509_REQ* p) const { X509_REQ_free(p); }
};
using PkeyPtr = std::unique_ptr<EVP_PKEY, PkeyDeleter>;
using X509Ptr = std::unique_ptr<X509, X509Deleter>;
using X509ReqPtr = std::unique_ptr<X509_REQ, X509ReqDeleter>;

// Validity periods. Certificates are back-dated by kClockSkewSeconds so a node whose clock
// lags the CA's a little can still use a certificate issued a moment ago.
inline constexpr int64_t kCaValiditySeconds = int64_t{10} * 365 * 24 * 3600;
inline constexpr int64_t kNodeValiditySeconds = int64_t{365} * 24 * 3600;
inline constexpr int64_t kClockSkewSeconds = 300;

// A CSR may name at most this many subject alternative names; more is refused (put a limit on
// everything a stranger can send).
inline constexpr size_t kSansMax = 32;

// Subject alternative names: DNS host names and IP literals (IPv4 dotted or IPv6 text).
struct SubjectAltNames {
  std::vector<std::string> dns;
  std::vector<std::string> ips;

  bool operator==(const SubjectAltNames&) const = default;
};

// The cluster CA. `key` is null on members that only hold the CA certificate. During a CA
// rotation (docs/security.md §Rotating the CA) a second CA is trusted too: `cert` signs,
// `also_trusted` is only accepted.
struct ClusterCa {
  X509Ptr cert;
  PkeyPtr key;
  std::vector<X509Ptr> also_trusted;
};

// A node's private key and the certificate signing request that carries its public key.
struct NodeKeyAndCsr {
  PkeyPtr key;
  X509ReqPtr csr;
};

// A node certificate's subject CN, "atlasd-node-<id>": the node id the peer transport
// (atlasd/peer_transport.cc) reads from a mutual-TLS peer's certificate. The CA writes it, so
// a node cannot claim another's id.
inline constexpr std::string_view kNodeCommonNamePrefix = "atlasd-node-";
std::string NodeCommonName(uint64_t node_id);

// Creates a fresh cluster CA: ECDSA P-256 key, self-signed certificate with
// subject CN="atlasd cluster <cluster_id>", basicConstraints critical CA:TRUE, pathlen:0,
// keyUsage keyCertSign+cRLSign, valid for kCaValiditySeconds (from `not_before_s`, unix s, when
// that is later than kClockSkewSeconds ago: a rotation's new CA is always the younger one).
absl::StatusOr<ClusterCa> CreateClusterCa(std::string_view cluster_id, int64_t not_before_s = 0);

// Creates a node key (ECDSA P-256) and a CSR for it with subject CN="atlasd-node" and the
// given subject alternative names (validated as in ValidateSans).
// `key`: the key to certify (its owner keeps a reference); null makes a new P-256 key.
absl::StatusOr<NodeKeyAndCsr> CreateNodeCsr(const SubjectAltNames& sans, EVP_PKEY* key = nullptr);

// SHA-256 of a public key (its SubjectPublicKeyInfo), lowercase hex; "" on failure. A signer
// recognises a joiner that retries with the key it already certified by it.
std::string PublicKeyFingerprint(EVP_PKEY* key);

// Checks what a signer must check before trusting anything in a CSR from the network: the
// CSR's self-signature verifies, its key is ECDSA P-256 or P-384, and its SANs (if any) are
// well-formed DNS names / IP addresses, at most kSansMax of them, nothing else (no URIs,
// e-mail addresses, wildcards or other names). Returns the SANs on success.
absl::StatusOr<SubjectAltNames> ValidateCsr(X509_REQ* csr);

// The names a node is reached by, for its certificate: the host part of each "host:port" or
// "[v6]:port" address, as an IP or a DNS name; wildcard addresses (0.0.0.0, ::), duplicates
// and names that are not valid are left out.
SubjectAltNames HostSans(const std::vector<std::string>& addresses);

// Checks SAN syntax: DNS names are LDH labels (RFC 1123), 1..63 bytes each, 253 bytes total,
// no wildcard; IPs parse with inet_pton. InvalidArgument names the offending entry.
absl::Status ValidateSans(const SubjectAltNames& sans);

// Signs `csr` with the CA into the certificate of node `node_id`: subject CN=NodeCommonName(id)
// and subject alternative names chosen here, never by the requester: the DNS name
// NodeCommonName(id) and `hosts` (the addresses the node is reached at, validated as in
// ValidateSans; a host name with the node-name prefix is refused). The CSR must pass
// ValidateCsr (proof of possession, key type); its subject and names are ignored. A random
// 127-bit serial, basicConstraints critical CA:FALSE, keyUsage digitalSignature, extended key
// usage serverAuth+clientAuth (the same certificate serves HTTPS, and both ends of mutual-TLS
// gRPC), valid for `validity_seconds`. FailedPrecondition when the CA has no key.
absl::StatusOr<X509Ptr> SignNodeCsr(X509_REQ* csr, const ClusterCa& ca, uint64_t node_id,
                                    const SubjectAltNames& hosts,
                                    int64_t validity_seconds = kNodeValiditySeconds);

// The node a certificate identifies, from its subject common names and DNS alternative names
// (as a TLS peer presents them): exactly one CN, "atlasd-node-<id>" with 0 < id < 2^32, and no
// other node name among the DNS names. nullopt: the certificate names no node, or two. Both
// ends of a peer connection identify each other with this (atlasd/peer_transport.cc).
std::optional<uint64_t> NodeIdOfIdentity(const std::vector<std::string_view>& common_names,
                                         const std::vector<std::string_view>& dns_names);

// SHA-256 over the certificate's DER encoding, lowercase hex (64 characters). This is what
// a join token pins.
std::string Fingerprint(X509* cert);

// The subject alternative names a certificate carries (DNS and IP entries only).
SubjectAltNames CertSans(X509* cert);

// The subject's commonName, or "" when absent.
std::string CertCommonName(X509* cert);

// When the certificate starts and stops being valid (notBefore, notAfter), unix ms; 0 when it
// cannot be read.
int64_t CertNotBeforeMs(X509* cert);
int64_t CertNotAfterMs(X509* cert);

// The node a certificate names (NodeIdOfIdentity over its CN and DNS names), and in `hosts`
// its other names (when `hosts` is not null): what a renewed certificate keeps. nullopt: it names
// no node, or two.
std::optional<uint64_t> NodeOfCert(X509* cert, SubjectAltNames* hosts);

enum class Purpose { kAny, kServer, kClient };

// Verifies that `leaf` chains to `ca` with `ca` as the only trust anchor (no system roots, no
// intermediates), is within its validity period, and (unless kAny) is fit for `purpose`.
// PermissionDenied with OpenSSL's reason otherwise.
absl::Status VerifyChain(X509* leaf, X509* ca, Purpose purpose = Purpose::kAny);

// The CA of `ca` (its signer or one also trusted) that `leaf` chains to, null when none.
X509* IssuingCa(X509* leaf, const ClusterCa& ca, Purpose purpose = Purpose::kAny);
// OK when `leaf` chains to a CA of `ca`; otherwise the signer's VerifyChain error.
absl::Status VerifyToCluster(X509* leaf, const ClusterCa& ca, Purpose purpose = Purpose::kAny);
// The fingerprints of every CA of `ca`, the signer first.
std::vector<std::string> CaFingerprints(const ClusterCa& ca);
// Every CA of `ca`, the signer first (ca.pem's contents).
std::string CasToPem(const ClusterCa& ca);
// A PEM bundle of 1 to `count_max` certificates, in order.
absl::StatusOr<std::vector<X509Ptr>> CertsFromPem(std::string_view pem, size_t count_max = 8);
// A certificate as base64 DER (one line; what atlas.nodes replicates) and back.
std::string CertToBase64(X509* cert);
absl::StatusOr<X509Ptr> CertFromBase64(std::string_view text);

// PEM text conversions. Parsing is bounded by the input size and never trusts it further.
std::string CertToPem(X509* cert);
std::string CsrToPem(X509_REQ* csr);
absl::StatusOr<std::string> KeyToPem(EVP_PKEY* key);  // PKCS#8, unencrypted
absl::StatusOr<X509Ptr> CertFromPem(std::string_view pem);
absl::StatusOr<X509ReqPtr> CsrFromPem(std::string_view pem);
absl::StatusOr<PkeyPtr> KeyFromPem(std::string_view pem);

// Writes `contents` to `path` atomically (temporary file in the same directory, fsync,
// rename, fsync of the directory) with permission bits `mode`, applied at creation so a
// private key is never readable by others, not even for an instant.
absl::Status WriteFileAtomic(const std::string& path, std::string_view contents, unsigned mode);
absl::StatusOr<std::string> ReadSmallFile(const std::string& path, size_t bytes_max = 1 << 20);

// File helpers: certificates are written 0644, keys 0600.
absl::Status SaveCert(const std::string& path, X509* cert);
absl::Status SaveKey(const std::string& path, EVP_PKEY* key);
absl::StatusOr<X509Ptr> LoadCert(const std::string& path);
absl::StatusOr<PkeyPtr> LoadKey(const std::string& path);

// The last OpenSSL error queue entry as text (and clears the queue), for status messages.
std::string OpenSslError();

}  // namespace atlas::cluster
