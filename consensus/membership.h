// The replicated member list: the system object `atlas.nodes` (docs/consensus.md,
// "Reconfiguration"). Its committed commands are applied, in slot order, by every node through
// ApplyMembershipCommand, so every node derives the same ClusterConfig, and node ids are
// allocated inside the decision: two simultaneous joiners are ordered by the log and get
// different ids.
//
// Each applied change is a new configuration epoch; the host hands it to its Replica with
// Replica::SetConfig (docs/consensus.md, "Reconfiguration"). Commands carry the epoch they
// expect to change (optimistic concurrency): a change is proposed only when the proposer sees
// its current epoch settled (Replica::Settled), and two concurrent changes cannot both apply,
// so no epoch is skipped before it settled.
#ifndef ATLAS_CONSENSUS_MEMBERSHIP_H_
#define ATLAS_CONSENSUS_MEMBERSHIP_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/container/btree_map.h"
#include "absl/status/statusor.h"
#include "consensus/quorum.h"
#include "consensus/types.h"

namespace atlas::consensus {

inline constexpr char kMembershipObject[] = "atlas.nodes";

struct Member {
  NodeId id = kNoNode;
  ZoneId zone = 0;
  std::string address;  // Opaque to the core (e.g. host:port).
  // A learner is a member that takes no part in any quorum: a joiner is one until its node
  // starts and asks to vote (`promote`), so a join whose node never starts wedges nothing
  // (docs/cluster.md §Learners). Not in ToTopology; adding one makes no new epoch.
  bool learner = false;

  friend bool operator==(const Member&, const Member&) = default;
};

// A join token the cluster accepts (docs/cluster-bootstrap.md §Join tokens). Only the hash of
// its secret is replicated; the host computes it (the core has no hash function).
struct JoinTokenRecord {
  std::string secret_hash;  // hex SHA-256 of the secret; its first 12 digits are the token's id
  int64_t created_ms = 0;   // unix ms (the owner's stamp of the command that created it)
  int64_t expires_ms = 0;   // 0: never
  uint32_t uses_max = 0;    // 0: unlimited
  uint32_t uses = 0;        // joins it admitted
  bool revoked = false;

  std::string Id() const { return secret_hash.substr(0, 12); }
  // "active", "expired", "revoked" or "used up", at `now_ms` (0: expiry not judged).
  std::string Status(int64_t now_ms) const;
  friend bool operator==(const JoinTokenRecord&, const JoinTokenRecord&) = default;
};

// Tokens kept: creating one more drops the oldest that no longer admits anyone (then, if all
// still do, the command is refused).
inline constexpr size_t kJoinTokensMax = 256;

struct ClusterConfig {
  uint64_t epoch = 0;        // +1 per applied change of the members or Fn/Fz.
  NodeId next_id = 1;        // Next id to allocate; ids are never reused.
  QuorumSpec quorum;
  absl::btree_map<NodeId, Member> members;
  // Join tokens by secret hash. Changing them is not a new configuration (the epoch stays):
  // no quorum depends on them. Empty in clusters created before tokens were replicated: then
  // the signer's token file is the one token (docs/cluster-bootstrap.md §Upgrades).
  absl::btree_map<std::string, JoinTokenRecord> tokens;
  // The cluster CAs every node trusts, each a certificate in base64 DER (opaque here); the
  // first signs new node certificates (docs/security.md §Rotating the CA). Empty until the
  // first rotation: each node's ca.pem is then the one CA. Not a new configuration either.
  std::vector<std::string> trust;

  // Placement for QuorumSystem (the voters); `distance` comes from the failure detector's RTT
  // samples.
  Topology ToTopology(const absl::btree_map<std::pair<ZoneId, ZoneId>, int64_t>& distance) const;
  friend bool operator==(const ClusterConfig& a, const ClusterConfig& b) {
    return a.epoch == b.epoch && a.next_id == b.next_id && a.quorum.fn == b.quorum.fn &&
           a.quorum.fz == b.quorum.fz && a.members == b.members && a.tokens == b.tokens &&
           a.trust == b.trust;
  }
};

// Command encoders (the bytes proposed to `atlas.nodes`). `expected_epoch` is the epoch the
// change applies to (the proposer's current ClusterConfig::epoch).
// `token_hash`: the join token the joiner presented ("" only while the cluster has no tokens).
std::string EncodeJoin(ZoneId zone, const std::string& address, uint64_t expected_epoch,
                       const std::string& token_hash = "");
// A join as a learner: the same rules, checked against the expected epoch, but no quorum
// changes, so it makes no new one (concurrent learner joins both apply, in slot order). What
// could make a refused one valid later (its address freed) or an applied one apply twice (the
// learner gone) is a `leave` or `promote`, which make a new epoch: replayed on a later
// membership (a joiner catching up the log behind its join answer) it changes nothing. A
// release before learners refuses the command: only proposed once every member said it reads
// it (docs/cluster.md §Learners).
std::string EncodeJoinLearner(ZoneId zone, const std::string& address, uint64_t expected_epoch,
                              const std::string& token_hash = "");
// Makes learner `id` a voter: a new epoch, like a join before learners.
std::string EncodePromote(NodeId id, uint64_t expected_epoch);
// Removes a member (a learner too: a new epoch with the same quorums).
std::string EncodeLeave(NodeId id, uint64_t expected_epoch);
std::string EncodeSetQuorum(QuorumSpec quorum, uint64_t expected_epoch);
// Token changes need no expected epoch: they commute with membership changes.
std::string EncodeTokenCreate(const std::string& secret_hash, int64_t expires_ms,
                              uint32_t uses_max);
std::string EncodeTokenRevoke(const std::string& id);
// Replaces ClusterConfig::trust (1 to kTrustedCasMax certificates, the signer first).
std::string EncodeTrust(const std::vector<std::string>& certs);
inline constexpr size_t kTrustedCasMax = 4;
inline constexpr size_t kTrustedCaBytesMax = 8192;

// Applies one committed command at `now_ms` (the owner's stamp of its entry; 0 when unstamped,
// then token expiry is not judged). On success returns the result text (for a join: the
// allocated node id); on a rejected command (invalid, one that would leave no possible quorum,
// a join whose token does not admit it, or one whose expected epoch is not config.epoch:
// "membership changed concurrently: epoch is X, expected Y") returns an error and leaves
// `config` unchanged. Deterministic: same config + command + time, same outcome.
absl::StatusOr<std::string> ApplyMembershipCommand(ClusterConfig& config,
                                                   const std::string& command,
                                                   int64_t now_ms = 0);
// Whether a join presenting `token_hash` would be admitted at `now_ms`: OK, or why not
// (PermissionDenied). What ApplyMembershipCommand checks; the signer asks it first.
absl::Status CheckJoinToken(const ClusterConfig& config, const std::string& token_hash,
                            int64_t now_ms);

// Snapshot encoding of a ClusterConfig (for log compaction and catch-up).
std::string EncodeClusterConfig(const ClusterConfig& config);
absl::StatusOr<ClusterConfig> DecodeClusterConfig(const std::string& data);

}  // namespace atlas::consensus

#endif  // ATLAS_CONSENSUS_MEMBERSHIP_H_
