// The request → response logic of the node's HTTPS port (bootstrap, health, metrics), kept
// free of I/O so it can be unit-tested and fuzzed without sockets or TLS. The Beast server in
// https_server.h only moves bytes in and out of it. Endpoints and JSON schemas:
// docs/cluster-bootstrap.md §Endpoints.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "atlasd/cluster/ca_rotation.h"
#include "atlasd/cluster/pki.h"

namespace atlas::cluster {

// Who may see the console (setting console-access): anyone who reaches the HTTPS port (as
// /metrics), only clients with a certificate of the cluster CA, or nobody.
enum class ConsoleAccess { kOpen, kClientCert, kOff };

struct HttpRequest {
  std::string method;  // "GET", "POST", ...
  std::string target;  // origin-form, e.g. "/v1/join" (a query string is ignored)
  std::string body;
  std::string peer;    // the client's address (rate limits, logs); "" when unknown
  bool client_certified = false;  // it presented a certificate the cluster CA signed
  std::shared_ptr<X509> client_cert = nullptr;  // that certificate, when client_certified
};

struct HttpResponse {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  std::string allow;  // the Allow header of a 405
};

inline constexpr std::string_view kPrometheusContentType = "text/plain; version=0.0.4";

// Bounds on the strings of a join request (JSON has none of its own).
inline constexpr size_t kRegionBytesMax = 64;
inline constexpr size_t kNodeNameBytesMax = 255;
inline constexpr size_t kAdvertiseBytesMax = 261;  // 255-byte host name, ':', 5-digit port

struct HealthInfo {
  uint64_t node_id = 0;
  std::string status;  // e.g. "ACTIVE", "CATCHING_UP", "CLOCK_OFFSET"
  std::string zone;
  std::string clock;           // ok | unknown | offset ("" when not known: no cluster)
  double clock_offset_ms = 0;  // this node's clock minus its peers'
  std::string reason;          // why it does not serve, when it does not
};

struct Member {
  uint64_t id = 0;
  std::string region;
  std::string addr;  // host the peer transport dials
  uint16_t port = 0;

  bool operator==(const Member&) const = default;
};

// A join request after the secret, the CSR and the fields below have been validated.
struct JoinRequest {
  std::string region;
  std::string advertise;  // "host:port" the new node's peer transport listens on
  std::string node_name;
  std::string key_fingerprint;  // PublicKeyFingerprint of the CSR's key
  std::string token_hash;       // JoinTokenHash of the secret the joiner presented
  // The joiner promotes itself once it runs (POST /v1/promote): it may join as a learner
  // (docs/cluster.md §Learners). A release before learners does not ask.
  bool learner = false;
};

// What the cluster decided about a joiner (the real handler gets the node id from a consensus
// decision on atlas.nodes).
struct JoinDecision {
  uint64_t node_id = 0;
  std::string cluster_id;
  int fn = 0;
  int fz = 0;
  std::vector<Member> members;
  // The replicated membership (consensus::EncodeClusterConfig) the joiner starts from; it then
  // follows `atlas.nodes` like every member.
  std::string config;
  std::string previous_config;  // the membership before it ("" when none)
};

using JoinDone = std::function<void(absl::StatusOr<JoinDecision>)>;
// Asynchronous: must call `done` exactly once, from any thread. An error status becomes the
// HTTP status (InvalidArgument 400, PermissionDenied 403, AlreadyExists/FailedPrecondition 409,
// Unavailable 503, others 500) with the status message as the JSON error.
using JoinHandler = std::function<void(const JoinRequest&, JoinDone done)>;

// One join attempt, for the daemon's log and metrics. `outcome`: accepted | rate_limited |
// bad_token | invalid | refused (the cluster said no: a reused address, a quorum) | not_signer.
struct JoinAttempt {
  std::string source;
  std::string outcome;
  std::string detail;
};

// Everything HandleHttpRequest needs. Shared, immutable after construction (the CAs change
// inside `cas`); it must outlive pending join handlers, hence the shared_ptr in
// HandleHttpRequest.
struct HttpHandlerContext {
  // The cluster CAs. The signer's key is needed to answer joins and renewals; a member
  // without it answers 503.
  std::shared_ptr<TrustedCas> cas;
  // Whether a presented join secret (hex) admits a join now: OK, or PermissionDenied with why
  // (the replicated token registry, docs/cluster-bootstrap.md §Join tokens). Null: compare with
  // `join_secret`.
  std::function<absl::Status(const std::string& secret)> authorize;
  // Without `authorize`: the one join secret (hex, as in the token). Empty: every join is
  // refused with 403.
  std::string join_secret;
  // Attempts per source and in all (null: unlimited); beyond them 429.
  std::shared_ptr<class JoinLimiter> join_limiter;
  std::function<int64_t()> now_ms;  // the limiter's monotonic clock (null: steady_clock)
  std::function<void(const JoinAttempt&)> on_join_attempt;  // null: not reported
  std::function<HealthInfo()> health;    // null: {"node_id":0,"status":"UNKNOWN","zone":""}
  std::function<std::string()> metrics;  // null: /metrics is 404
  JoinHandler join;                      // null: joins answer 503
  // The operator's console (GET /, /console/*, /v1/status, /v1/tables...; docs/console.md)
  // and who may see it. Null: those paths are 404.
  std::function<void(const HttpRequest&, std::function<void(HttpResponse)>)> console;
  ConsoleAccess console_access = ConsoleAccess::kOpen;
  // POST /v1/renew (docs/security.md §Certificates): whether node `id` is a member now, and
  // how long the certificates this node signs (joins, renewals) are valid.
  std::function<bool(uint64_t id)> is_member;
  int64_t node_cert_validity_seconds = kNodeValiditySeconds;
  // POST /v1/promote (docs/cluster.md §Learners): learner `id`, presenting its certificate,
  // asks to vote; `done` gets the membership it votes in. Any member answers. Null: 503.
  std::function<void(uint64_t id, JoinDone done)> promote;
};

// Computes the response to one request and passes it to `reply` exactly once: synchronously
// for everything except a join that reached the JoinHandler, which replies from whatever thread
// the handler calls `done` on. Never throws; any input yields a well-formed response.
void HandleHttpRequest(const HttpRequest& request,
                       const std::shared_ptr<const HttpHandlerContext>& context,
                       std::function<void(HttpResponse)> reply);

// The registry's name for a join secret: hex SHA-256 of its hex text (consensus::JoinTokenRecord).
std::string JoinTokenHash(std::string_view secret);

// A console request target, parsed (no I/O, fuzzed): what the console is asked for.
struct ConsoleRoute {
  enum class Kind { kNone, kAsset, kStatus, kTables, kTable } kind = Kind::kNone;
  std::string path;        // without the query
  size_t limit = 20;       // kTables: ?limit=<n>, 1..kConsoleTablesMax
  std::string table;       // kTable
  std::string error;       // non-empty: answer 400 with it
};
inline constexpr size_t kConsoleTablesMax = 200;
ConsoleRoute ParseConsoleTarget(std::string_view target);

// JSON helpers shared with the client (and tests).
std::string JsonError(std::string_view message);
HttpResponse ErrorResponse(int status, std::string_view message);

}  // namespace atlas::cluster
