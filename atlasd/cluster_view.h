// What the executor asks of the cluster for NODE / QUORUM / TABLE commands (shared/spec/protocol.md
// §5): the member list with liveness and RTT, pings over the peer channel, and the quorums a
// table's owner uses. Implemented by ClusterNode (cluster_node.h); null in tests that run the
// executor without a cluster.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "atlasd/cluster/ca_rotation.h"
#include "atlasd/node_report.h"
#include "consensus/membership.h"

namespace atlas {

struct NodeView {
  uint64_t id = 0;
  std::string region;
  std::string name;
  std::string addr;
  int port = 0;
  std::string status;  // ACTIVE | SUSPECT | DOWN | LEFT
  bool learner = false;  // a member in no quorum yet (docs/cluster.md §Learners)
  double rtt_ms = 0;
  bool self = false;
  // As the node itself reports them (its ping answers; for self, this node's own figures).
  // Unknown until a ping to it succeeded: `reported` false.
  bool reported = false;
  std::vector<std::pair<uint64_t, double>> rtts;  // its smoothed RTT to each peer, by id
  uint64_t owned_tables = 0;
  std::string version;
  uint64_t uptime_s = 0;
  std::string clock;           // its ClockState: ok | unknown | offset ("" when not reported)
  double clock_offset_ms = 0;  // its clock minus its peers' (median)
  LoadTotals load;             // its socket commands since it started
  int64_t cert_not_after_ms = 0;     // its node certificate's expiry (unix ms; 0: unknown)
  std::vector<OwnershipMove> moves;  // its last ownership wins, oldest first
};

// A join token as TOKEN LIST shows it (the secret itself is never stored: only its hash).
struct TokenView {
  std::string id;          // the first 12 hex digits of its secret's hash
  int64_t created_ms = 0;
  int64_t expires_ms = 0;  // 0: never
  uint32_t uses = 0;
  uint32_t uses_max = 0;   // 0: unlimited
  std::string status;      // active | expired | revoked | used up
  std::string token;       // TOKEN CREATE only: the token to hand to the new node
};

struct QuorumView {
  std::vector<uint64_t> q1;
  std::vector<uint64_t> q2;
};

class ClusterView {
 public:
  virtual ~ClusterView() = default;
  // Every member (and members that left), sorted by id.
  virtual std::vector<NodeView> Nodes() = 0;
  // The replicated membership as this node has applied it (Fn/Fz, zones), and the cluster's id.
  virtual consensus::ClusterConfig Membership() = 0;
  virtual std::string ClusterId() = 0;
  // One round trip over the peer channel to `id` (self: through the node thread). `done` runs
  // on some other thread.
  virtual void Ping(uint64_t id, std::function<void(absl::StatusOr<double>)> done) = 0;
  // The quorums the owner of `table` uses now: Q1 for a steal and Q2 for accepts, chosen from
  // the live members nearest the owner.
  virtual void Quorums(const std::string& table,
                       std::function<void(absl::StatusOr<QuorumView>)> done) = 0;
  // Moves `table` to node `target`; `done` once the move completed or timed out.
  virtual void MoveTable(const std::string& table, uint64_t target,
                         std::function<void(absl::Status)> done) = 0;
  // Sets Fn/Fz through `atlas.nodes` (QUORUM SET), up or down; refused (FailedPrecondition,
  // with the reason) when the live members could not form the new quorums.
  virtual void SetQuorum(int fn, int fz, std::function<void(absl::Status)> done) = 0;
  // Removes member `id` through `atlas.nodes` (NODE LEAVE); `done` once the change committed.
  virtual void RemoveNode(uint64_t id, std::function<void(absl::Status)> done) = 0;
  // Why this node must not serve data commands now (its clock is off: docs/consensus.md
  // §Time), or nullopt.
  virtual std::optional<std::string> ServingProblem() = 0;
  // Join tokens, replicated in `atlas.nodes` (docs/cluster-bootstrap.md §Join tokens): a new
  // one valid for `ttl_ms` (0: no expiry) and `uses` joins (0: unlimited); the list; revoking.
  virtual void CreateToken(int64_t ttl_ms, uint32_t uses,
                           std::function<void(absl::StatusOr<TokenView>)> done) = 0;
  virtual std::vector<TokenView> Tokens() = 0;
  virtual void RevokeToken(const std::string& id, std::function<void(absl::Status)> done) = 0;
  // The cluster CAs (docs/security.md §Rotating the CA): where a rotation stands, and starting
  // one (only on the member holding the CA key; `done` once its first step committed).
  virtual cluster::RotationStatus CaStatus() = 0;
  virtual void RotateCa(std::function<void(absl::StatusOr<cluster::RotationStatus>)> done) = 0;
};

}  // namespace atlas
