// The replicated member list: the system object `atlas.nodes` (docs/consensus.md,
// "Membership"). Its committed commands are applied, in slot order, by every node through
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

  friend bool operator==(const Member&, const Member&) = default;
};

struct ClusterConfig {
  uint64_t epoch = 0;        // +1 per applied change.
  NodeId next_id = 1;        // Next id to allocate; ids are never reused.
  QuorumSpec quorum;
  absl::btree_map<NodeId, Member> members;

  // Placement for QuorumSystem; `distance` comes from the failure detector's RTT samples.
  Topology ToTopology(const absl::btree_map<std::pair<ZoneId, ZoneId>, int64_t>& distance) const;
  friend bool operator==(const ClusterConfig& a, const ClusterConfig& b) {
    return a.epoch == b.epoch && a.next_id == b.next_id && a.quorum.fn == b.quorum.fn &&
           a.quorum.fz == b.quorum.fz && a.members == b.members;
  }
};

// Command encoders (the bytes proposed to `atlas.nodes`). `expected_epoch` is the epoch the
// change applies to (the proposer's current ClusterConfig::epoch).
std::string EncodeJoin(ZoneId zone, const std::string& address, uint64_t expected_epoch);
std::string EncodeLeave(NodeId id, uint64_t expected_epoch);
std::string EncodeSetQuorum(QuorumSpec quorum, uint64_t expected_epoch);

// Applies one committed command. On success returns the result text (for a join: the allocated
// node id); on a rejected command (invalid, one that would leave no possible quorum, or one
// whose expected epoch is not config.epoch: "membership changed concurrently: epoch is X,
// expected Y") returns an error and leaves `config` unchanged. Deterministic: same config +
// command, same outcome.
absl::StatusOr<std::string> ApplyMembershipCommand(ClusterConfig& config,
                                                   const std::string& command);

// Snapshot encoding of a ClusterConfig (for log compaction and catch-up).
std::string EncodeClusterConfig(const ClusterConfig& config);
absl::StatusOr<ClusterConfig> DecodeClusterConfig(const std::string& data);

}  // namespace atlas::consensus

#endif  // ATLAS_CONSENSUS_MEMBERSHIP_H_
