// Messages exchanged between replicas (docs/consensus.md, "Protocol as built"). One flat struct
// keeps the core free of any serialization library; proto/ converts it to the wire format and must
// validate untrusted input before handing it to Replica::Step.
#ifndef ATLAS_CONSENSUS_MESSAGE_H_
#define ATLAS_CONSENSUS_MESSAGE_H_

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "consensus/types.h"

namespace atlas::consensus {

enum class MessageType {
  kPrepare,          // Phase 1a (steal): ballot, commit_index of the stealer.
  kPromise,          // Phase 1b: ok, ballot (promised), commit_index, entries above it.
  kAccept,           // Phase 2a: ballot, entries (slot, value), commit_index piggyback.
  kAccepted,         // Phase 2b: ok, ballot, slots accepted.
  kCommit,           // Commit notice / owner heartbeat: ballot, commit_index.
  kConfirm,          // Read barrier round: ballot, round.
  kConfirmAck,       // ok, ballot, round.
  kForward,          // Non-owner -> owner: ballot believed, commands (writes).
  kForwardReject,    // Owner -> origin: request ids not taken, ok=definitely-not-executed.
  kReadIndexRequest,   // Non-owner -> owner: read ids.
  kReadIndexResponse,  // Owner -> origin: ok, read ids, read_index.
  kCatchupRequest,   // Learner -> peer: slot = first slot wanted.
  kCatchupResponse,  // snapshot (optional), committed entries, commit_index.
  kHeartbeat,        // Liveness, commit indexes that moved, a digest of a range of objects.
  kMoveHint,         // Owner -> node in the dominating zone: please steal (migration policy).
  kDirectoryRequest,  // A node that started empty -> peer: the objects after `object` ("": all).
  kDirectory,         // commit_indexes of the next objects; object: the cursor; ok: last page.
  kRangeRequest,  // A heartbeat's digest differed: ours, and our commit indexes in its range.
  kRange,         // The reply: the commit indexes of the range (owners re-announce theirs).
  // Replica read leases (docs/consensus.md §Replica read leases):
  kLeaseRequest,  // Member -> owner: ballot believed, round = the asker's clock when it asked.
  kLeaseGrant,    // Owner -> asker: ballot, round echoed, lease_ms, commit_index to apply first.
};

const char* MessageTypeName(MessageType type);

// What a node holds of the objects in [lo, hi] (docs/consensus.md §Idle objects): how many
// it holds with a commit index, and an order-free hash of each one's commit index and the
// owner it believes in. Nodes whose digests of a range agree have nothing to tell each other
// about it. lo empty: no digest.
struct RangeDigest {
  ObjectId lo;
  ObjectId hi;
  uint64_t count = 0;
  uint64_t hash = 0;
  bool operator==(const RangeDigest&) const = default;
};

struct SlotEntry {
  Slot slot = 0;
  LogEntry entry;
};

inline constexpr Slot kNotOwning = 1;
inline constexpr int64_t kLeaseMsMax = 60'000;  // Longest read lease a message may carry.

struct Message {
  MessageType type = MessageType::kHeartbeat;
  NodeId from = kNoNode;
  NodeId to = kNoNode;
  ObjectId object;
  Ballot ballot;
  bool ok = false;
  // Confirm: the read lease the owner asks for, in ms of the acceptor's clock (0: none);
  // ConfirmAck: the lease granted, that long or 0 (docs/consensus.md §Owner read leases).
  int64_t lease_ms = 0;
  // Confirm: the owner has (or is granting) replica read leases, so the lease asked for binds
  // the acceptor against every Prepare, the owner's own too; ConfirmAck: such a grant was made.
  bool holders = false;
  // Also, in a ForwardReject / rejecting ReadIndexResponse: kNotOwning when the sender does not
  // own the object at all (so the origin stops forwarding to it).
  Slot slot = 0;
  Slot commit_index = 0;
  uint64_t round = 0;  // Confirm/ConfirmAck: the read round. CatchupResponse: parts still following.
  // LeaseRequest: the asker's reads of the object per minute, for an AUTO owner to weigh.
  uint64_t read_rate = 0;
  uint64_t seq = 0;  // Forward: per (origin, addressed ballot) sequence number, from 1.
  std::vector<SlotEntry> entries;
  std::vector<Slot> slots;
  Batch commands;
  std::vector<RequestId> request_ids;
  // Catch-up snapshot: the application state after applying every slot <= snapshot_slot.
  Slot snapshot_slot = 0;
  std::string snapshot;
  // Snapshots travel in chunks (ReplicaConfig::snapshot_chunk_bytes): this chunk starts at
  // byte snapshot_offset of a snapshot of snapshot_total bytes. A CatchupRequest continuing a
  // transfer names the snapshot (snapshot_slot) and the next offset it wants.
  uint64_t snapshot_offset = 0;
  uint64_t snapshot_total = 0;
  // Heartbeat, RangeRequest, Range: (object, commit_index) pairs, sorted by object.
  std::vector<std::pair<ObjectId, Slot>> commit_indexes;
  // Heartbeat: the sender's digest of its next range of objects. RangeRequest: the receiver's
  // digest of that range; Range: the range answered.
  RangeDigest digest;
  // Reconfiguration (docs/consensus.md, "Reconfiguration").
  // Prepare/Accept/Confirm and Heartbeat: the sender's latest configuration epoch (the fence);
  // a rejected Promise/Accepted/ConfirmAck (ok=false): the rejecting acceptor's latest epoch.
  // 0 is read as 1 (a peer that predates reconfiguration runs the initial configuration).
  uint64_t epoch = 0;
  // Promise and CatchupResponse: the sender's committed anchor of `object` (epoch and the
  // EncodeQuorumConfig bytes; 0/empty = none). Heartbeat: anchor_epoch = the lowest anchor
  // epoch over every object the sender holds (its latest epoch if it holds none).
  uint64_t anchor_epoch = 0;
  std::string anchor_config;

  // One line, deterministic; used for simulator traces.
  std::string DebugString() const;
  // The snapshot-transfer fields agree (offset <= total, the chunk fits). Receivers refuse a
  // message without it (proto/peer_convert.cc); the simulator checks every message sent.
  bool SnapshotFieldsConsistent() const {
    return snapshot_offset <= snapshot_total &&
           snapshot.size() <= snapshot_total - snapshot_offset;
  }
};

}  // namespace atlas::consensus

#endif  // ATLAS_CONSENSUS_MESSAGE_H_
