// The state a Replica keeps for each object (docs/consensus.md, "Code layout"): the durable
// hard state, then one part per WPaxos role. Everything in `internal` is the Replica's own
// (consensus/replica.h); it lives here, outside the class, so that each part is a plain struct
// with default member initializers.
#ifndef ATLAS_CONSENSUS_OBJECT_STATE_H_
#define ATLAS_CONSENSUS_OBJECT_STATE_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/btree_map.h"
#include "absl/container/btree_set.h"
#include "consensus/types.h"

namespace atlas::consensus {

struct Snapshot;  // consensus/replica.h
class SnapshotReader;

// The durable acceptor/learner state of one object.
struct ObjectHardState {
  Ballot promised;                           // Acceptor: highest ballot promised.
  Slot commit_index = 0;                     // Learner: every slot <= is chosen.
  Slot truncated_through = 0;                // Log compacted through here (after a snapshot).
  absl::btree_map<Slot, LogEntry> log;       // Accepted (and committed) entries.
  // The object's anchor: the configuration of the latest anchor entry <= commit_index
  // (docs/consensus.md, "Reconfiguration"); 0/empty = none (a fresh object).
  uint64_t anchor_epoch = 0;
  std::string anchor_config;                 // EncodeQuorumConfig bytes.

  friend bool operator==(const ObjectHardState&, const ObjectHardState&) = default;
};

// A FIFO of commands that allocates nothing while empty (std::deque allocates on
// construction: a cost per object when a node holds a million of them).
class CommandQueue {
 public:
  CommandQueue() = default;
  CommandQueue(const CommandQueue&) = default;
  CommandQueue& operator=(const CommandQueue&) = default;
  CommandQueue(CommandQueue&& other) noexcept { swap(other); }
  CommandQueue& operator=(CommandQueue&& other) noexcept {
    CommandQueue moved(std::move(other));
    swap(moved);
    return *this;
  }
  bool empty() const { return head_ == items_.size(); }
  size_t size() const { return items_.size() - head_; }
  Command& front() { return items_[head_]; }
  void push_back(Command cmd) { items_.push_back(std::move(cmd)); }
  void pop_front() {
    if (++head_ == items_.size()) {
      items_.clear();
      head_ = 0;
    } else if (head_ >= 64 && 2 * head_ >= items_.size()) {
      items_.erase(items_.begin(), items_.begin() + static_cast<std::ptrdiff_t>(head_));
      head_ = 0;
    }
  }
  void swap(CommandQueue& other) noexcept {
    items_.swap(other.items_);
    std::swap(head_, other.head_);
  }
  std::vector<Command>::iterator begin() {
    return items_.begin() + static_cast<std::ptrdiff_t>(head_);
  }
  std::vector<Command>::iterator end() { return items_.end(); }
  friend bool operator==(const CommandQueue&, const CommandQueue&) = default;

 private:
  std::vector<Command> items_;
  size_t head_ = 0;
};

namespace internal {

// WPaxos §4.2: a node is a follower of an object, a candidate running phase 1 for it, or its
// owner running phase 2.
enum class Role { kFollower, kCandidate, kOwner };
using EpochSet = absl::btree_set<uint64_t>;

struct InFlight {
  Batch value;
  NodeSet acks;
  Tick sent_tick = 0;

  friend bool operator==(const InFlight&, const InFlight&) = default;
};

// Sequence numbers seen from one origin: all < next, plus `above`.
struct ForwardWindow {
  uint64_t next = 1;
  absl::btree_set<uint64_t> above;

  friend bool operator==(const ForwardWindow&, const ForwardWindow&) = default;
};

struct PendingRead {
  RequestId id;
  NodeId origin = kNoNode;

  friend bool operator==(const PendingRead&, const PendingRead&) = default;
};

// In every part below, small fields come last so that they share padding: an idle object must
// not grow (a node may hold a million of them).

// Acceptor, volatile: what the next Ready must persist, and an anchor ack held back.
struct AcceptorState {
  absl::btree_set<Slot> dirty_slots;  // Log entries changed since the last Ready.
  // An anchor entry accepted while we lacked an earlier committed slot; acked once we caught
  // up (an anchor certifies the whole prefix before it).
  Ballot deferred_ballot;
  Slot deferred_anchor = 0;
  NodeId deferred_to = kNoNode;
  Slot truncated_persisted = 0;  // hard.truncated_through as of the last update collected
  bool dirty = false;  // The hard state changed since the last Ready.
  // ... and what changed must be on disk before a message reports it: a promise raised or
  // reported, an entry accepted (acked), an anchor learned (HardStateUpdate::must_sync).
  bool must_sync = false;

  friend bool operator==(const AcceptorState&, const AcceptorState&) = default;
};

// Learner, volatile: how far the application is, and what owners and peers told us.
struct LearnerState {
  Slot applied = 0;        // Handed to the host through Ready::committed. <= commit_index.
  Slot snapshot_slot = 0;  // Latest application snapshot we know of.
  Slot snapshot_asked = 0;
  uint64_t applied_bytes = 0;  // Command bytes applied since snapshot_asked.
  Slot truncate_wanted = 0;    // The log may go through here once nothing holds it (TruncateLog).
  Ballot owner_ballot;     // Highest ballot seen from an owner (Accept/Commit).
  Ballot disowned;         // owner_ballot's node told us it does not own the object.
  Tick owner_heard = -1;   // Last Accept/Commit of owner_ballot (sweeper).
  Tick catchup_sent = -1;
  // Behind a reported commit index since, at our commit index then: what a lazy flush carries
  // gets ReplicaConfig::catchup_grace_ticks to arrive before catch-up asks a peer for it.
  Tick behind_since = -1;
  Slot behind_at = 0;
  Ballot notice_ballot;    // Latest commit notice: (ballot, commit_index).
  Slot notice_commit = 0;
  Slot heartbeat_commit = 0;  // Commit index in our previous heartbeat.
  // Highest commit index some peer reported, and that peer: catch-up is retried from Tick
  // until we reach it (a request may be rate-limited, lost, or sent to a lagging peer).
  Slot known_commit = 0;
  Slot anchor_scanned = 0;  // Log scanned for anchor entries through here.
  NodeId known_commit_from = kNoNode;

  friend bool operator==(const LearnerState&, const LearnerState&) = default;
};

// Learner: a snapshot being received in chunks, staged by the host (`received` bytes so far;
// `total` bytes when complete).
struct PartialSnapshot {
  Slot slot = 0;
  uint64_t total = 0;
  uint64_t received = 0;
  NodeId from = kNoNode;
};

// Snapshot transfers, both directions. Pointers rather than optionals: transfers are rare.
struct TransferState {
  std::unique_ptr<Snapshot> install;  // Received by catch-up, not yet handed out.
  std::unique_ptr<PartialSnapshot> partial;
  // Sender: the snapshot this node is transferring to learners, kept so that every chunk
  // comes from the same snapshot, and the log after it is not truncated meanwhile.
  std::unique_ptr<SnapshotReader> serving;
  Tick serving_touched = 0;
  // The last catch-up answer sent (learner, first slot, chunk offset, when): a retry that
  // crossed it in flight is not answered again, so a slow link does not fill with copies.
  Slot served_slot = 0;
  uint64_t served_offset = 0;
  Tick served_at = -1;
  NodeId served_to = kNoNode;

  friend bool operator==(const TransferState&, const TransferState&) = default;
};

// Proposer: phase 1 as a candidate, phase 2 as the owner. A follower has no promises, no
// recovered entries and nothing in flight; a candidate or owner holds a ballot of its own, at
// least its acceptor's promise.
struct ProposerState {
  Ballot ballot;
  NodeSet promises;                           // Phase 1b answers for `ballot`.
  absl::btree_map<Slot, LogEntry> recovered;  // Highest-ballot entry reported per slot.
  Slot recovered_commit = 0;                  // Highest commit index reported in phase 1.
  Tick phase1_sent = 0;
  Tick backoff_until = 0;
  Slot next_slot = 1;
  absl::btree_map<Slot, InFlight> in_flight;  // Phase 2: every slot > commit_index.
  absl::btree_set<Slot> chosen;  // Q2-accepted slots not yet contiguous with commit_index.
  CommandQueue proposals;
  Slot last_commit_sent = 0;
  // Highest command stamp seen in the object's entries: an owner stamps no lower, so stamps
  // do not go back within an ownership (the state machine keeps them monotonic across
  // owners).
  int64_t last_stamp_ms = 0;
  // Reconfiguration. Candidate/owner: configurations found in phase 1 (reported anchors,
  // anchor entries among recovered ones) whose quorums are needed on top of the base ones
  // until our own anchor commits; `adopted` = newest committed anchor reported to us.
  EpochSet joint;
  uint64_t adopted = 0;
  Slot anchor_slot = 0;  // Our anchor entry in flight (no slot after it meanwhile).
  NodeId recovered_commit_from = kNoNode;
  int steal_attempts = 0;
  Role role = Role::kFollower;
  bool want_steal = false;

  friend bool operator==(const ProposerState&, const ProposerState&) = default;
};

// Forwarding of client requests to the owner, and migration.
struct ForwardingState {
  // Origin side: sequence numbers of our Forwards to the ballot `forward_ballot`.
  Ballot forward_ballot;
  uint64_t forward_seq = 0;
  // Owner side: which forward sequence numbers each origin already delivered to our ballot
  // `window_ballot` (exactly-once under network duplication; bounded, see TakeForward).
  Ballot window_ballot;
  absl::btree_map<NodeId, ForwardWindow> windows;
  // Origin's routing attempt of each queued forwarded command, echoed in rejections.
  absl::btree_map<RequestId, uint64_t> queued_routes;
  absl::btree_map<ZoneId, NodeId> last_from_zone;  // Migration target per zone.

  friend bool operator==(const ForwardingState&, const ForwardingState&) = default;
};

// Owner: the read barrier, one Q2 round batched over the reads that arrived before it
// (docs/consensus.md, "Read path").
struct ReadRound {
  std::vector<PendingRead> waiting;
  std::vector<PendingRead> in_round;  // Non-empty exactly while a round is active.
  uint64_t round = 0;
  NodeSet acks;
  Slot read_index = 0;  // The commit index when the round started.
  Tick sent = 0;
  Slot ready_slot = 0;  // The owner serves reads once commit_index >= this.
  bool active = false;

  friend bool operator==(const ReadRound&, const ReadRound&) = default;
};

// Not protocol state: which node-wide work lists hold the object (Touch), and what the
// indexes counted it as (RefreshIndexes).
struct Bookkeeping {
  mutable uint64_t indexed_anchor = 0;
  bool queued_collect = false;
  bool queued_heartbeat = false;
  bool queued_check = false;
  mutable bool queued_index = false;
  mutable bool indexed_held = false;
  mutable bool indexed_sweep = false;
  mutable bool indexed_lagging = false;

  friend bool operator==(const Bookkeeping&, const Bookkeeping&) = default;
};

// The state of one object on this node: the durable part, then one part per role.
struct ObjectState {
  ObjectHardState hard;  // Acceptor + learner, durable (mirrored in Ready::persist).
  AcceptorState acceptor;
  LearnerState learner;
  TransferState transfer;
  ProposerState proposer;
  ForwardingState forwarding;
  ReadRound reads;
  Bookkeeping bookkeeping;

  friend bool operator==(const ObjectState&, const ObjectState&) = default;
};

}  // namespace internal
}  // namespace atlas::consensus

#endif  // ATLAS_CONSENSUS_OBJECT_STATE_H_
