// Vocabulary types of the WPaxos consensus core (docs/consensus.md, "Model").
// Names follow the WPaxos paper (Ailijiang et al., TPDS 2019): a cluster of Nodes grouped in
// Zones; each Object (a table or a group of tables) has its own Paxos log of Slots, ordered by
// the Owner that holds the highest Ballot.
#ifndef ATLAS_CONSENSUS_TYPES_H_
#define ATLAS_CONSENSUS_TYPES_H_

#include <compare>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/container/btree_set.h"

namespace atlas::consensus {

using NodeId = uint32_t;  // 0 is never a valid node id.
using ZoneId = uint32_t;
using Slot = uint64_t;    // Log positions start at 1; 0 means "none".
using Tick = int64_t;     // Logical time: the core only counts Tick() calls.
using ObjectId = std::string;
using NodeSet = absl::btree_set<NodeId>;

inline constexpr NodeId kNoNode = 0;

// WPaxos §3: ballots are (counter, node id), totally ordered; the node id breaks ties so two
// nodes never use the same ballot.
struct Ballot {
  uint64_t counter = 0;
  NodeId node = kNoNode;

  bool IsZero() const { return counter == 0 && node == kNoNode; }
  friend auto operator<=>(const Ballot&, const Ballot&) = default;
  std::string ToString() const { return std::to_string(counter) + "." + std::to_string(node); }
};

// Identifies one client request cluster-wide: the node that accepted it from the client and a
// sequence number unique on that node.
struct RequestId {
  NodeId node = kNoNode;
  uint64_t seq = 0;

  friend auto operator<=>(const RequestId&, const RequestId&) = default;
  std::string ToString() const { return std::to_string(node) + ":" + std::to_string(seq); }
};

// An opaque application command (e.g. an encoded KV write) tagged with its request.
struct Command {
  RequestId id;
  std::string data;
  // The owner's wall-clock time when it gave the command a slot (unix ms; 0: unstamped, from
  // a node that predates stamps). Part of the chosen value, so every replica judges time-bound
  // rules (WORM retention) by the same stamp (docs/consensus.md §Time).
  int64_t stamp_ms = 0;

  friend bool operator==(const Command&, const Command&) = default;
};

// The value of one slot: a batch of commands (WPaxos batches many commands per phase-2 round).
// An empty batch is a no-op, used to fill gaps found during phase-1 recovery.
using Batch = std::vector<Command>;

// One acceptor log record: the value accepted for a slot and the ballot it was accepted in.
struct LogEntry {
  Ballot ballot;
  Batch value;

  friend bool operator==(const LogEntry&, const LogEntry&) = default;
};

}  // namespace atlas::consensus

#endif  // ATLAS_CONSENSUS_TYPES_H_
