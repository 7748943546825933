// The joining side of bootstrap (docs/cluster-bootstrap.md §The join exchange): a new node, given
// `https://host:port` of any member and a join token, proves it holds the secret and gets its
// node id, certificate, the CA and the member list.
//
// Server authentication is by pinning, never by system roots: the TLS handshake succeeds only
// if the server's chain contains a certificate whose SHA-256 fingerprint equals the token's,
// and the server's leaf verifies against that certificate. Host names are not checked: the
// pin already names the one CA that may vouch for the server, and every member's certificate
// from that CA is equally entitled to answer, whatever name or address we dialled it by. The
// secret is sent only after that check, so a wrong server never sees it.
//
// Synchronous (it runs once, at first start); each call owns a private io_context. Thread-safe.
#pragma once

#include <chrono>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "atlasd/cluster/http_handler.h"
#include "atlasd/cluster/join_token.h"
#include "atlasd/cluster/pki.h"

namespace atlas::cluster {

// One HTTPS request to a server that must present the CA with fingerprint `ca_fingerprint`
// (lowercase hex). `url` is "https://host:port" (a trailing "/" is allowed, nothing else).
// Errors: InvalidArgument (bad URL), Unavailable (resolve/connect/I/O), Unauthenticated (the
// server failed the pin), DeadlineExceeded (the whole exchange took longer than `timeout`).
// Any HTTP status is a successful result. Response bodies are capped at 1 MiB. With
// `client_cert` and `client_key`, the client presents them (a certificate renewal).
absl::StatusOr<HttpResponse> PinnedHttpsRequest(std::string_view url,
                                                std::string_view ca_fingerprint,
                                                std::string_view method, std::string_view target,
                                                std::string_view body,
                                                std::chrono::milliseconds timeout,
                                                X509* client_cert = nullptr,
                                                EVP_PKEY* client_key = nullptr);
// The same, accepting a server that presents any of these CAs (a CA rotation).
absl::StatusOr<HttpResponse> PinnedHttpsRequest(std::string_view url,
                                                const std::vector<std::string>& ca_fingerprints,
                                                std::string_view method, std::string_view target,
                                                std::string_view body,
                                                std::chrono::milliseconds timeout,
                                                X509* client_cert = nullptr,
                                                EVP_PKEY* client_key = nullptr);

struct JoinOptions {
  std::string url;  // https://host:port of any member that holds the CA key
  JoinToken token;
  std::string region;
  std::string advertise;  // host:port this node's peer transport listens on
  std::string node_name;
  SubjectAltNames sans;  // names this node's certificate should carry
  // Where the key of this join is kept across attempts ("" = a new key each time). A joiner
  // that dies after the cluster certified it retries with the same key and gets the same id.
  std::string key_file;
  std::chrono::milliseconds timeout{30'000};
};

struct JoinResult {
  JoinDecision decision;  // node id, cluster id, Fn/Fz, members
  PkeyPtr key;            // this node's new private key
  X509Ptr cert;           // its certificate, verified against `ca`
  ClusterCa ca;           // the cluster's CAs (no key), one with the token's fingerprint
};

// Generates a key and CSR, POSTs /v1/join, and checks the answer: the returned CA has the
// token's fingerprint, the certificate chains to it, certifies our key and names our node id.
// A 403 becomes PermissionDenied carrying the server's message; other refusals map back from
// their HTTP status (400 InvalidArgument, 409 FailedPrecondition, 503 Unavailable, else
// Internal).
absl::StatusOr<JoinResult> JoinCluster(const JoinOptions& options);

// A learner asks to vote (POST /v1/promote at `url`, any member), presenting its certificate;
// answered once atlas.nodes ordered it, with the memberships its node starts from
// (consensus::EncodeClusterConfig). Errors map back from the HTTP status like JoinCluster's;
// NotFound: this node is no member any more.
struct PromoteResult {
  std::string config;
  std::string previous_config;  // "" when none
};
absl::StatusOr<PromoteResult> PromoteLearner(const std::string& url, const ClusterCa& ca,
                                             X509* cert, EVP_PKEY* key,
                                             std::chrono::milliseconds timeout);

// File names under the data dir (docs/cluster-bootstrap.md §PKI layout).
inline constexpr std::string_view kCaCertFile = "ca.pem";
inline constexpr std::string_view kCaKeyFile = "ca-key.pem";
// The new CA's key during a CA rotation (atlasd/cluster/ca_rotation.h).
inline constexpr std::string_view kCaNextKeyFile = "ca-next-key.pem";
inline constexpr std::string_view kNodeCertFile = "node.pem";
inline constexpr std::string_view kNodeKeyFile = "node-key.pem";
// The key of a join in progress (JoinOptions::key_file); removed once the node has its identity.
inline constexpr std::string_view kJoinKeyFile = "join-key.pem";

// Writes ca.pem, node.pem (0644) and node-key.pem (0600) under `data_dir`: everything a
// restart needs from the PKI, so the token is never needed again.
absl::Status SaveJoinCredentials(const std::string& data_dir, const JoinResult& result);

}  // namespace atlas::cluster
