// Replica: the pure WPaxos state machine of one node (docs/consensus.md).
//
// A Replica plays every WPaxos role for every Object it knows: Acceptor (promises, accepted
// entries), Learner (commit index, catch-up), and, for the objects it owns, Owner/proposer
// (phase 1 steal, phase 2 with pipelining and batching, read barriers). It does no I/O, reads
// no clock and starts no thread: the host drives it, etcd-raft style:
//
//   replica.Step(msg) / replica.Tick() / replica.Propose(...) / replica.Read(...)
//   while (replica.HasReady()) {
//     Ready rd = replica.TakeReady();
//     1. write rd.snapshots (durably, first), rd.persist and the apply of rd.committed (step 3),
//        which may be one atomic batch; an update with must_sync needs an fsync (group commit)
//     2. send rd.messages: those of type kAccept at once; every other one only once every
//        must_sync update of this Ready and of the Readies before it is durable
//     3. apply rd.committed in order (per object, slots are consecutive)
//     4. take the snapshots asked in rd.snapshot_requests
//     5. serve rd.reads against the applied state; deliver rd.replies (no fsync to wait for)
//     replica.Advance(rd) once its must_sync updates are durable (Readies in order; the host
//     may take and write later Readies meanwhile: pipelined syncs)
//   }
//
// Step 1 before 2 is the Paxos durability contract: a promise or an accepted entry is on disk
// before any other node can learn about it. Accepts are the owner's proposals (its ballot was
// promised durably before it could be elected) and may leave while the owner's own copy is
// still being written: the core counts the owner's own promise or acceptance (its messages to
// itself) only at Advance, so nothing commits on an entry that is not on disk on a whole Q2.
// Hence steps 3 and 5 need no fsync: everything they rest on was chosen, so a crash may lose
// an apply, never its outcome. Step 3 before 5: a read index or an OK reply refers to state
// that must already be applied. If the host crashes anywhere in the loop it restarts from
// what reached its disk (a prefix of its writes), which is always safe:
//   - rebuild PersistentState by ApplyHardStateUpdate over every persisted update;
//   - restore the application from its latest durable snapshot (SnapshotSource), or empty;
//   - construct a new Replica from both: it re-emits, in Ready::committed, every committed slot
//     after that snapshot, so the application converges to its pre-crash state.
// Membership: the host applies committed `atlas.nodes` commands (consensus/membership.h),
// persists each resulting ClusterConfig and calls SetConfig on every change; on restart it
// hands the replica the whole configuration history before serving (docs/consensus.md,
// "Reconfiguration").
// Request ids (RequestId.node = this node, seq unique across restarts) are chosen by the host.
// Commands are opaque bytes; for an OK write reply, the host's apply result of that command is
// the response payload.
//
// Thread-safety: none. One thread (or strand) owns a Replica.
#ifndef ATLAS_CONSENSUS_REPLICA_H_
#define ATLAS_CONSENSUS_REPLICA_H_

#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/container/btree_map.h"
#include "absl/container/btree_set.h"
#include "consensus/message.h"
#include "consensus/object_queue.h"
#include "consensus/object_state.h"
#include "consensus/policy.h"
#include "consensus/quorum.h"
#include "consensus/random.h"
#include "consensus/replica_config.h"
#include "consensus/stored_object.h"
#include "consensus/types.h"

namespace atlas::consensus {

// ---------------------------------------------------------------------------------------------
// Durable state (ObjectHardState, the durable state of one object: consensus/object_state.h).

// What a node reads back on restart: everything ever written through Ready::persist.
using PersistentState = absl::btree_map<ObjectId, ObjectHardState>;

// Incremental update of one object's hard state, in Ready::persist. Apply as: set promised,
// commit_index, truncated_through and the anchor; upsert `entries`; then delete log entries
// <= truncated_through.
struct HardStateUpdate {
  ObjectId object;
  Ballot promised;
  Slot commit_index = 0;
  Slot truncated_through = 0;
  // The truncation the object's previous update carried: log entries in (truncated_from,
  // truncated_through] are to be deleted (so the host keeps no per-object record of it).
  Slot truncated_from = 0;
  std::vector<SlotEntry> entries;
  uint64_t anchor_epoch = 0;   // ObjectHardState::anchor_epoch (always the full current value).
  std::string anchor_config;
  // A promise raised or reported (with the commit index the Promise reports), new entries, or
  // a new anchor (heartbeats report it; reconfiguration settles on it): durable before any
  // message (other than an Accept) of its Ready leaves. Otherwise the commit index and the
  // truncation, derived from chosen values, may reach the disk later.
  bool must_sync = false;
};

// Applies one update to a PersistentState (helper for hosts and the simulator).
void ApplyHardStateUpdate(const HardStateUpdate& update, PersistentState& state);

// ---------------------------------------------------------------------------------------------
// Application hooks.

// An application snapshot of one object, received from a peer: the state after applying every
// slot <= slot. Its bytes are what the host staged (SnapshotSource::StageChunk).
struct Snapshot {
  Slot slot = 0;
  // The committed anchor the sender shipped with it: a snapshot hides the anchor entries below
  // it (0/empty: none).
  uint64_t anchor_epoch = 0;
  std::string anchor_config;
};

// One snapshot's bytes for a transfer, read a chunk at a time: a host streams them from its
// store instead of holding them (a table may be larger than memory). Every read of one reader
// sees the same snapshot, however long the transfer takes.
class SnapshotReader {
 public:
  virtual ~SnapshotReader() = default;
  virtual Slot slot() const = 0;      // the state after applying every slot <= slot
  virtual uint64_t size() const = 0;  // bytes in all
  // Bytes [offset, offset + len), fewer at the end. Reads go forward; an earlier offset than
  // the last read's may cost re-reading from the start.
  virtual std::string Read(uint64_t offset, size_t len) = 0;
};

// A snapshot held in memory: small objects (`atlas.nodes`), tests.
class SnapshotBytes final : public SnapshotReader {
 public:
  SnapshotBytes(Slot slot, std::string data) : slot_(slot), data_(std::move(data)) {}
  Slot slot() const override { return slot_; }
  uint64_t size() const override { return data_.size(); }
  std::string Read(uint64_t offset, size_t len) override {
    return offset < data_.size() ? data_.substr(offset, len) : std::string();
  }

 private:
  Slot slot_;
  std::string data_;
};

// Implemented by the host; the core stays pure and treats snapshot bytes as opaque.
class SnapshotSource {
 public:
  virtual ~SnapshotSource() = default;
  // The slot of the latest durable snapshot of `object` (0: none was taken).
  virtual Slot LatestSnapshotSlot(const ObjectId& object) = 0;
  // That snapshot's bytes, to send to a learner (never null for an object with a snapshot).
  virtual std::unique_ptr<SnapshotReader> OpenSnapshot(const ObjectId& object) = 0;
  // A chunk of a snapshot of `object` a peer is sending: the host keeps the bytes (on disk; a
  // table may be larger than memory) until a Ready installs them. Chunks come in order; offset
  // 0 starts a new transfer and drops what was staged before. Staged bytes are scratch, not
  // state: a restart may lose them (the transfer then starts over).
  virtual void StageChunk(const ObjectId& object, uint64_t offset, std::string_view bytes) = 0;
  // Whether the `total` bytes staged for `object` decode as one of its snapshots: the learner
  // installs only those, and asks again for the others (a peer's bug must not stop this node).
  virtual bool StagedDecodes(const ObjectId& object, uint64_t total) = 0;
  // The staged transfer of `object` was abandoned: its bytes may go.
  virtual void DropStaged(const ObjectId& object) = 0;
};

// The durable log, for entries the Replica no longer holds in memory: with a LogSource, an
// object's applied entries leave RAM once written (Advance), and catch-up and the few paths
// that look at committed slots read them back from here (docs/consensus.md §Ready contract).
class LogSource {
 public:
  virtual ~LogSource() = default;
  // The entry written for `slot` through earlier Readys (synced or not), or nullopt.
  virtual std::optional<LogEntry> Entry(const ObjectId& object, Slot slot) = 0;
};

// ---------------------------------------------------------------------------------------------
// Ready.

enum class ReplyCode {
  kOk,
  kNotOwner,            // Could not route to an owner.
  kQuorumUnavailable,   // Live nodes cannot form Q1/Q2; detail says why.
  kTimeout,             // No outcome within request_timeout_ticks.
  kBusy,                // A bounded queue is full.
};
const char* ReplyCodeName(ReplyCode code);

struct Reply {
  RequestId id;
  ObjectId object;
  bool is_read = false;
  ReplyCode code = ReplyCode::kOk;
  // For a failed write: true when the command was certainly not executed (safe to retry); false
  // when the outcome is unknown (it may still commit later).
  bool definite = false;
  std::string detail;
};

struct CommittedEntry {
  ObjectId object;
  Slot slot = 0;
  Batch commands;  // Empty for a no-op slot (and for an anchor slot: the core keeps those).
};

// A linearizable read is ready: serve it from the applied state of `object` (already applied
// through at least the read index when this is delivered).
struct ReadState {
  RequestId id;
  ObjectId object;
};

struct SnapshotRequest {
  ObjectId object;
  Slot slot = 0;  // Snapshot the state as of exactly this slot (just applied).
};

// Ownership changes on this node (WPaxos phase 1 and its outcomes), for the host's logs and
// metrics. Informational: nothing in the Ready contract depends on them.
enum class OwnershipEventKind {
  kPhase1Started,  // Prepares sent with `ballot`, for `reason`.
  kElected,        // Phase 1 won: this node owns the object at `ballot` from slot `slot` on.
  kPreempted,      // Phase 1 at `ballot` lost; `other` is the highest ballot known.
  kSteppedDown,    // Owned at `ballot`, no longer; `other` is the highest ballot known.
  kMoveSuggested,  // As owner, the migration policy asked `target` to steal the object.
};
enum class StealReason {
  kRequest,   // A client request (`request`) found no owner it could reach.
  kMove,      // TABLE MOVE to this node.
  kMoveHint,  // The owner's migration policy (or a TABLE MOVE elsewhere) asked us.
  kRetry,     // Queued work or a deferred steal, after backoff.
  kSweep,     // Re-anchoring an ownerless object after a membership change.
};
const char* OwnershipEventName(OwnershipEventKind kind);
const char* StealReasonName(StealReason reason);

struct OwnershipEvent {
  OwnershipEventKind kind = OwnershipEventKind::kPhase1Started;
  ObjectId object;
  Ballot ballot;
  Ballot other;
  StealReason reason = StealReason::kRequest;
  RequestId request;         // kRequest steals: the request that started it.
  NodeId target = kNoNode;   // kMoveSuggested.
  Slot slot = 0;             // kElected: the first slot this owner proposes.
};

struct Ready {
  uint64_t number = 0;  // 1, 2, ... in TakeReady order (Advance releases by it)
  std::vector<HardStateUpdate> persist;
  std::vector<Message> messages;
  // Install durably before `persist`, from the bytes staged for the object, before the next
  // Step (which may stage a new transfer of it).
  std::vector<std::pair<ObjectId, Snapshot>> snapshots;
  std::vector<CommittedEntry> committed;
  std::vector<SnapshotRequest> snapshot_requests;
  std::vector<ReadState> reads;
  std::vector<Reply> replies;
  std::vector<OwnershipEvent> ownership;
  // Objects whose owner read lease was extended (LocalReadWindow moved on).
  std::vector<ObjectId> leases;
};

// How long this node may answer reads of an object from its applied state with no round
// (Replica::LocalReadWindow), on the host's monotonic clock (SetClock).
struct LocalReadWindow {
  static constexpr int64_t kForever = INT64_MAX;
  int64_t until_ms = 0;              // Reads invoked before this; 0: none.
  int64_t renew_at_ms = kForever;    // From here on, a read should also renew the lease.
};

// ---------------------------------------------------------------------------------------------

// TABLE READS AUTO (docs/consensus.md §Automatic read leases): events of one kind (reads
// asked here, writes proposed here) in two windows of kDemandWindowMs, for a rate that forgets
// the past within two windows.
struct Demand {
  static constexpr int64_t kDemandWindowMs = 2'000;
  int64_t start_ms = 0;
  uint64_t now = 0, before = 0;
  void Add(int64_t mono_ms, uint64_t n);
  uint64_t PerMinute(int64_t mono_ms) const;
};
struct AutoLoad {  // Owner side, per AUTO object.
  Demand writes;                                  // commands we proposed
  absl::btree_map<NodeId, Demand> writes_from;    // the same by the node they came from
  absl::btree_map<NodeId, std::pair<uint64_t, int64_t>> reads_of;  // reported: rate, when
};

class Replica {
 public:
  // `restart` is the PersistentState written through earlier Readys (empty for a new node).
  // `snapshots` must outlive the Replica; `policy` decides forwarding vs stealing.
  // `log` (may be null: every entry stays in memory until truncated) must outlive it too.
  Replica(ReplicaConfig config, PersistentState restart, SnapshotSource* snapshots,
          std::unique_ptr<MigrationPolicy> policy, uint64_t seed, LogSource* log = nullptr);

  Replica(const Replica&) = delete;
  Replica& operator=(const Replica&) = delete;

  // Delivers one message from the network. Messages not addressed to this node are ignored.
  void Step(const Message& msg);
  // Advances logical time by one tick: retransmissions, heartbeats, timeouts, backoff.
  void Tick();
  // Client write: `command` is opaque; `id.node` must be this node. Replied through Ready.
  void Propose(const ObjectId& object, std::string command, RequestId id);
  // Linearizable read barrier; Ready::reads says when to read the applied state. A `key`
  // (ReplicaConfig::may_write) says the read is of that alone: a lease holder then waits
  // only for what may write it.
  void Read(const ObjectId& object, RequestId id, std::string_view key = {});
  // Explicit ownership move: steal `object` to this node now (TABLE MOVE to here).
  void Steal(const ObjectId& object);
  // The host's wall clock (unix ms), which the owner stamps the commands it orders with, and
  // whether this node may own objects: only while the host trusts its clock (its offset from
  // its peers is known and within the cluster's bound). When that ends, the objects this node
  // owns are handed back (stepped down) and steals wait until it may own again. Call before
  // every batch of Step/Tick/Propose (docs/consensus.md §Time).
  // `mono_ms` is the host's monotonic clock, read after every event of the batch arrived: the
  // owner judges its read leases by it, the acceptor the leases it granted.
  void SetClock(int64_t wall_ms, int64_t mono_ms, bool may_own);
  // The bytes of messages the host has received and not stepped yet. While they are over
  // catchup_backlog_max this learner asks for no more catch-up (Tick asks again once they are
  // under it): a node that applies slower than its peers send would otherwise queue the
  // difference, and ask again for answers that sit in its own queue.
  void SetInboundBacklog(uint64_t bytes) { inbound_backlog_ = bytes; }
  // Whether this node asks for replica read leases on `object` when it serves reads of it,
  // and, owning it, whom it grants them to (TABLE READS; docs/consensus.md §Replica read
  // leases). Needs holder_leases.
  void SetLeaseReads(const ObjectId& object, LeaseReads mode);
  // Reads of `object` the host answered without Read (LocalReads windows): AUTO weighs them.
  void NoteReads(const ObjectId& object, uint64_t n);
  // Ask `target` to steal `object` (TABLE MOVE elsewhere); a hint, not a guarantee.
  void Move(const ObjectId& object, NodeId target);

  // The host's latest configuration, from every applied `atlas.nodes` change (and, on restart,
  // the whole history before serving). Epochs only grow; an epoch already known is ignored, an
  // older unknown one is added to the history (joint quorums may need it).
  void SetConfig(uint64_t epoch, Topology topology, QuorumSpec quorum);
  // True iff this node sees epoch L settled: nodes of C_{L-1} reporting latest epoch >= L and
  // every held object anchored at >= L contain a Q1 and a Q2 of C_{L-1}. Only then may the
  // host propose the next membership change (with expected epoch L). True at the first epoch.
  bool Settled() const;
  uint64_t epoch() const { return latest_epoch_; }

  // After a restart, before anything else: the host was installing `snapshot` of `object`
  // (from the bytes it staged) when the node stopped, and had not written the hard state that
  // goes with it. The next Ready hands the install out again. False if this node's state is
  // already at or past it (nothing to redo).
  bool ResumeInstall(const ObjectId& object, Snapshot snapshot);

  bool HasReady() const;
  // Nothing can happen on this node until the next heartbeat unless a message or request
  // arrives: no object has a timer, no request is in progress. A host with no Ready waiting
  // may then sleep until the heartbeat and run the ticks it slept through in one go.
  bool Quiet() const;
  // Ticks until the next heartbeat (>= 1).
  consensus::Tick TicksToHeartbeat() const;
  Ready TakeReady();
  // Acknowledges that every step of the Ready contract was done for `ready` and the Readies
  // before it (their must_sync updates are durable): the node's own promises and acceptances
  // made in them count from now on.
  void Advance(const Ready& ready);
  // Readies taken whose Advance is still due for the node's own acks held back.
  bool HoldsOwnAcks() const { return !held_.empty(); }

  // Introspection (tests, QUORUM INFO, the simulator's checkers).
  NodeId id() const { return config_.id; }
  bool IsOwner(const ObjectId& object) const;
  // Until when this node may answer reads of `object` from its applied state with no round at
  // all (docs/consensus.md §Reads without a round): it owns the object with a trusted clock,
  // it applied what its election recovered, and either every phase-1 quorum of the object's
  // configurations includes it (kForever: no other node can be elected without first getting
  // its promise, which ends this), or its read lease holds. The host asks after every Ready,
  // before its messages leave.
  LocalReadWindow LocalReads(const ObjectId& object) const;
  // The owner's read lease of `object` (ballot, until on this node's clock), if it has one.
  std::optional<std::pair<Ballot, int64_t>> OwnerLease(const ObjectId& object) const;
  // The replica read lease this node holds for `object` (the owner's ballot, until on this
  // node's clock), if one has not ended (docs/consensus.md §Replica read leases).
  std::optional<std::pair<Ballot, int64_t>> HolderLease(const ObjectId& object) const;
  // Owner: the members whose acks writes of `object` wait for (leases not ended on our clock).
  std::vector<NodeId> LeaseHolders(const ObjectId& object) const;
  NodeId BelievedOwner(const ObjectId& object) const;
  Ballot Promised(const ObjectId& object) const;
  Slot CommitIndex(const ObjectId& object) const;
  Slot AppliedIndex(const ObjectId& object) const;
  // Objects whose applied state is behind a commit index some peer reported (catch-up still
  // to do): the node reports CATCHING_UP, not ACTIVE, while this is non-zero.
  size_t LaggingObjects() const;
  std::vector<ObjectId> Objects() const;
  // Held objects in order after `after` ("": from the first), at most `max` of them, with who
  // owns each as far as this node knows, its promised ballot and commit index (the console's
  // table list, walked in slices). Objects at rest stay at rest. Returns the last one visited
  // when `max` stopped the walk, nullopt at the end.
  struct ObjectSummary {
    NodeId owner = kNoNode;
    Ballot promised;
    Slot commit_index = 0;
  };
  std::optional<ObjectId> ForEachObject(
      const ObjectId& after, size_t max,
      const std::function<void(const ObjectId&, const ObjectSummary&)>& fn) const;
  size_t ObjectCount() const { return objects_.size(); }
  size_t ObjectsAtRest() const;  // Held in their compact encoding (replica_rest.cc).
  size_t ObjectsToTick() const { return active_.size(); }  // Tick's list (NeedsTick)
  size_t CatchupsQueued() const { return catchup_queue_.size(); }  // waiting for a slot
  // Started empty and still reading a peer's directory: not caught up, whatever else says so.
  bool ScanningDirectory() const { return directory_.wanted; }
  size_t ReanchorsStarted() const { return reanchoring_.size(); }  // idle, with a turn
  size_t BytesAtRest() const;    // Their encodings' total size (walks every object: tests).
  const Probes& probes() const { return probes_; }
  // An object's entry at `slot`, from memory or the LogSource (nullopt: none, or truncated).
  std::optional<LogEntry> Entry(const ObjectId& object, Slot slot) const;
  // Entries of `object` held in memory (the rest of its log is on disk).
  size_t EntriesInMemory(const ObjectId& object) const;
  const QuorumSystem& quorums() const { return Latest().quorums; }
  absl::Status QuorumStatus() const;  // Latest configuration, from the peers heard recently.
  // The object's own (possibly joint) quorums, from the peers heard recently.
  absl::Status QuorumStatus(const ObjectId& object) const;
  uint64_t AnchorEpoch(const ObjectId& object) const;

  // Checks the invariants of this node's state (docs/consensus.md, "Invariants") for every
  // object touched since the previous call (every object on the first call), and the node's
  // own; returns one line per violation, none if all hold. Cheap enough for every step of a
  // test or the simulator: call it after the host's Ready loop (HasReady() false). `checked`,
  // if not null, receives the objects looked at (sorted) with their hard state (valid until
  // the replica next changes), for the caller's checks across calls and nodes. The list of
  // touched objects is kept only once this was called.
  using CheckedObject = std::pair<ObjectId, const ObjectHardState*>;
  std::vector<std::string> CheckInvariants(std::vector<CheckedObject>* checked = nullptr);

 private:
  using Role = internal::Role;
  using EpochSet = internal::EpochSet;
  using InFlight = internal::InFlight;
  using ForwardWindow = internal::ForwardWindow;
  using PendingRead = internal::PendingRead;
  using PartialSnapshot = internal::PartialSnapshot;
  using ObjectState = internal::ObjectState;
  struct ConfigInfo {
    QuorumSystem quorums;
    std::string encoded;  // EncodeQuorumConfig: what an anchor entry carries.
  };
  struct PendingRequest {
    ObjectId object;
    bool is_read = false;
    std::string command;  // Kept to re-route a write that was certainly not executed.
    consensus::Tick deadline = 0;
    Slot read_index = 0;
    int attempts = 0;
    uint64_t route = 0;  // Current routing attempt; stale rejections are ignored.
    NodeId forwarded_to = kNoNode;  // The owner our current attempt was forwarded to.
  };

  // A client request in progress from now on, with its deadline; null (and a kBusy reply
  // queued) when pending_requests_max are already in progress.
  PendingRequest* Admit(const ObjectId& object, RequestId id, bool is_read);

  // replica.cc: objects, messages, the Ready batch.
  // Rebuilds an object from its persisted hard state and the host's latest snapshot.
  void Restore(const ObjectId& object, ObjectHardState hard);
  ObjectState& Obj(const ObjectId& object);
  ObjectState& Create(const ObjectId& object);  // A new object, awake (listed in awake_).
  // Does not Touch; wakes a resting object (that does not change it: hence const).
  const ObjectState* FindObj(const ObjectId& object) const;
  // Everything that may change an object goes through Touch (Obj does it): the object joins
  // the work lists of CollectReady, of the next heartbeat and of the indexes, so that none of
  // them has to visit every object (a node may hold a million tables).
  void Touch(const ObjectId& object, ObjectState& o);
  void PutEntry(ObjectState& o, Slot slot, LogEntry entry);
  std::optional<LogEntry> EntryAt(const ObjectId& object, const ObjectState& o, Slot slot) const;
  // Drops applied entries that are written (not dirty) and not waiting for lazy members.
  void EvictApplied(const ObjectId& object, ObjectState& o);
  void MarkDirty(ObjectState& o);
  void Send(Message msg);
  void Broadcast(const Message& msg, bool include_self);  // Members of C_{L-1} and C_L.
  void SendTo(const NodeSet& nodes, const Message& msg, bool include_self);
  // Resends `msg` to the nodes of `nodes` that have not answered yet.
  void SendToSilent(const NodeSet& nodes, const NodeSet& answered, Message msg);
  // A message of `type` about `object` to `to` (Send fills in `from`).
  static Message MessageTo(MessageType type, NodeId to, const ObjectId& object);
  // The answer of `type` to `msg`: to its sender, about its object.
  static Message ReplyTo(const Message& msg, MessageType type);
  // A candidate's or owner's Prepare, Accept or Confirm: its ballot, our latest epoch (the
  // fence), and, but for Confirm, our commit index.
  Message ProposerMessage(MessageType type, const ObjectId& object, const ObjectState& o) const;
  void DrainLocal();
  bool Alive(NodeId node) const;
  NodeSet LiveNodes() const;
  ZoneId ZoneOf(NodeId node) const;
  void CollectReady();
  // CollectReady's passes over the objects touched since the last one: the owner's queued
  // work (proposals, read rounds, anchor acks), then committed slots and snapshots for the
  // host, reads whose index is applied, and last the hard state to persist.
  void CollectOwnerWork(const ObjectId& object, ObjectState& o);
  void CollectCommitted(const ObjectId& object, ObjectState& o);
  void CollectReads();
  void CollectPersist(const ObjectId& object, ObjectState& o);
  // Merges collect_ into `due` (sorted, without duplicates); empties it unless `keep`.
  void TakeCollect(std::vector<ObjectId>& due, bool keep = false);

  // replica_phase1.cc: stealing, promises, becoming owner, stepping down.
  void StartSteal(const ObjectId& object, StealReason reason, RequestId request = {});
  void HandlePrepare(const Message& msg);
  // The acceptor's one check of a Prepare, Accept or Confirm: true (and `reply` filled with
  // our promise, plus our epoch if fenced) if it comes from an older epoch (the fence) or is
  // below our promise (WPaxos §4.2: never join a ballot lower than one promised).
  bool AcceptorRefuses(const Message& msg, const ObjectState& o, Message& reply);
  // Acceptor: raise our promise to `b` (no-op if not higher); steps down a lower proposer.
  void Promise(const ObjectId& object, ObjectState& o, Ballot b);
  void ObserveBallot(ObjectState& o, Ballot b);
  void HandlePromise(const Message& msg);
  void HandleRejection(const Message& msg, ObjectState& o, Role role);
  void BecomeOwner(const ObjectId& object, ObjectState& o);
  // A commit notice of the new ballot to the members outside its Q1 (replica_phase1.cc).
  void AnnounceElection(const ObjectId& object, const ObjectState& o);
  // `announce`: send the commit notice of what we committed before letting go (never when we
  // learned that a higher ballot chose values: our commit index is no longer ours to announce).
  void StepDown(const ObjectId& object, ObjectState& o, bool announce = true);

  // replica_phase2.cc: proposals, accepts, the owner's commit index.
  void FlushProposals(const ObjectId& object, ObjectState& o);
  void HandleAccept(const Message& msg);
  void HandleAccepted(const Message& msg);
  void AdvanceOwnerCommit(const ObjectId& object, ObjectState& o);
  // `lazy_may_wait`: the members outside the eager set (docs/consensus.md §Q2 first) get it
  // with their next lazy flush (at most lazy_flush_ticks later); only the idle pipeline's
  // notice does that.
  void SendCommitNotice(const ObjectId& object, ObjectState& o, bool lazy_may_wait = false);
  Message CommitNotice(const ObjectId& object, const ObjectState& o) const;  // Commit(ballot, ci)
  // The configurations a commit notice reaches: the object's, C_L and C_{L-1}.
  EpochSet NoticeEpochs(const ObjectState& o) const;

  // replica_lazy.cc: Q2 first (docs/consensus.md §Q2 first).
  struct LazyLearners {
    Ballot ballot;             // The ownership whose Accepts wait here,
    NodeSet eager;             // the members that already got them,
    Slot first = 0, last = 0;  // and their slots (first == 0: none wait),
    consensus::Tick since = 0;  // waiting since;
    bool notice_owed = false;   // a commit notice deferred for them, due with the range.
    absl::btree_map<NodeId, consensus::Tick> interested;  // Forwarded or read: eager until.
  };
  // Who gets an owner's Accept at once: its nearest live Q2 (itself first) in every
  // configuration of the object, plus the interested members; everyone when no Q2 is live.
  NodeSet EagerTargets(const ObjectId& object, const ObjectState& o, const NodeSet& members) const;
  void DeferToLazy(const ObjectId& object, ObjectState& o, Slot first, Slot last,
                   const NodeSet& eager);
  // Sends the waiting Accepts to the members outside `eager`: every tick, before anything that
  // carries the commit index to them (a notice, a heartbeat, an anchor), and when full.
  void FlushLazy(const ObjectId& object, ObjectState& o);
  // Truncates the log through learner.truncate_wanted (a snapshot covers it), as far as a
  // transfer being served and Accepts waiting for lazy members allow.
  void TruncateLog(const ObjectId& object, ObjectState& o);
  // The buffered range's Accepts (then none wait), to its lazy members: those it reached.
  NodeSet SendLazyRange(const ObjectId& object, ObjectState& o, LazyLearners& l,
                        const NodeSet& members);
  void NoteInterest(const ObjectId& object, ObjectState& o, NodeId node);
  NodeSet LazyOf(const ObjectId& object, const ObjectState& o, const NodeSet& members) const;
  // Flushes the ranges waiting lazy_flush_ticks, or every range (`all`: before a heartbeat).
  void TickLazy(bool all);

  // replica_learner.cc: commit notices and catch-up.
  void HandleCommit(const Message& msg);
  void HandleHeartbeat(const Message& msg);
  // A peer reports `object` committed up to `commit_index`: learn that, catch up if behind.
  // `grace`: a follower first waits catchup_grace_ticks for a lazy flush (RequestCatchup).
  void NoteReport(const ObjectId& object, Slot commit_index, NodeId from, bool grace = true);
  // NoteReport for each of a heartbeat's, RangeRequest's or Range's commit indexes.
  void NoteReports(const Message& msg);
  void HandleDirectoryRequest(const Message& msg);
  void HandleDirectory(const Message& msg);
  void ContinueDirectoryScan();  // asks for the next page when the catch-up queue is short

  // replica_digest.cc: idle objects, compared by range digests instead of listed.
  // The owner this node vouches for: itself if it owns the object, else the one it believes
  // in (none if that is itself or one that disowned the object).
  Ballot ClaimedOwner(const ObjectState& o) const;
  // The digest of our objects in [lo, hi] (the first directory_objects_max of them); with
  // `entries`, their commit indexes too.
  RangeDigest DigestRange(const ObjectId& lo, const ObjectId& hi,
                          std::vector<std::pair<ObjectId, Slot>>* entries = nullptr);
  // This heartbeat's range: the cycle's next window, or everything on a small node when `full`
  // (every heartbeat_full_every-th heartbeat, as SendHeartbeat counts them).
  void AddHeartbeatDigest(Message& hb, bool full);
  void CompareDigest(const Message& msg);  // a member's heartbeat: agree, or ask for the range
  void HandleRangeRequest(const Message& msg);
  void HandleRange(const Message& msg);
  void ReannounceTo(const ObjectId& object, NodeId node);  // an owned object's commit notice
  // `owner`'s digest of a range holding `object` agreed with ours within SilenceTicks: it
  // still claims what we believe (Sweep: an owner alive and silent has not stepped down).
  bool OwnerAgreed(NodeId owner, const ObjectId& object) const;
  void PruneAgreed();  // forgets agreements older than SilenceTicks
  // Two digest cycles: how long an owner may go unheard and unconfirmed.
  consensus::Tick SilenceTicks() const;
  void NoteCommitIndex(ObjectState& o, Slot commit_index, NodeId from);
  void LearnUpTo(const ObjectId& object, ObjectState& o, Ballot ballot, Slot commit_index,
                 NodeId from);
  void RequestCatchup(const ObjectId& object, ObjectState& o, NodeId from, bool grace = true);
  // A peer reported more than this learner holds, or a snapshot transfer is under way.
  static bool Behind(const ObjectState& o) {
    return o.transfer.partial != nullptr || o.learner.known_commit > o.hard.commit_index;
  }
  // Gives the free catch-up slots to the objects queued for one, oldest first.
  void StartQueuedCatchups();
  // replica_reconfig.cc: true if an idle owned object may propose its anchor now; else it
  // is queued, and StartQueuedReanchors gives it a turn.
  bool TakeReanchorTurn(const ObjectId& object);
  void WakeForConfig();
  void StartQueuedReanchors();
  static void ContinueTransfer(const PartialSnapshot& partial, Message& request);
  void HandleCatchupResponse(const Message& msg);
  // Learner: adds the snapshot chunk of `msg` to the transfer under way (or starts one). True
  // once the snapshot is complete (`data`); else the response ends here (the next chunk was
  // asked for, or the chunk belongs to no transfer of ours).
  bool TakeSnapshotChunk(const Message& msg, ObjectState& o);
  void InstallSnapshot(ObjectState& o, Snapshot snapshot);
  // Appends the committed entries of `msg` that continue our log; returns their highest ballot.
  Ballot LearnCatchupEntries(const Message& msg, ObjectState& o);
  void HandleCatchupRequest(const Message& msg);
  // Sender's rate limit (catchup_bytes_per_tick): whether the budget allows an answer now
  // (refilled first), spending it, and the requests waiting for it (served by Tick).
  bool CatchupBudgetLeft();
  void SpendCatchupBudget(size_t bytes);
  void WaitForCatchupBudget(const Message& request);
  void ServeWaitingCatchups();
  // A CatchupResponse to `request`, with our commit index and committed anchor.
  static Message CatchupResponse(const Message& request, const ObjectState& o);
  // Sender: puts the next chunk of our snapshot in `r` if the learner needs one. False if the
  // answer ends there (sent without entries, or not at all); else entries follow from `start`.
  bool ServeSnapshotChunk(const Message& msg, ObjectState& o, Message& r, Slot& start);
  // Sends `first` and up to catchup_burst - 1 more responses with the committed entries from
  // `start` on.
  void SendCatchupBurst(const Message& msg, const ObjectState& o, Message first, Slot start);
  // True if `learner` asked for the same thing (first slot, chunk offset) less than
  // resend_ticks ago: a retry that crossed our answer in flight. Else records this answer.
  bool CrossedRetry(ObjectState& o, NodeId learner, Slot slot, uint64_t offset);

  // replica_reads.cc: the read barrier.
  void RouteRead(const ObjectId& object, RequestId id);
  void RejectRead(const ObjectId& object, ObjectState& o, const PendingRead& r);
  void HandleReadIndexRequest(const Message& msg);
  void HandleReadIndexResponse(const Message& msg);
  void StartReadRound(const ObjectId& object, ObjectState& o);
  // Releases `reads` (local ones, and the answers to other nodes') at `index`.
  void AnswerReads(const ObjectId& object, const ObjectState& o,
                   const std::vector<PendingRead>& reads, Slot index);
  void HandleConfirm(const Message& msg);
  void HandleConfirmAck(const Message& msg);
  void SetReadIndex(RequestId id, Slot index);
  // Starts a confirmation round for `reads` (empty: a lease renewal only).
  void BeginReadRound(const ObjectId& object, ObjectState& o, std::vector<PendingRead> reads);

  // replica_leases.cc: owner read leases (docs/consensus.md §Owner read leases).
  struct OwnerLeaseState {
    Ballot ballot;          // The ownership the lease belongs to.
    EpochSet epochs;        // The configurations whose Q2 granted it.
    int64_t until_ms = 0;   // This node's clock.
    uint64_t round = 0;     // The confirmation round collecting grants,
    int64_t round_sent_ms = 0;  // started then,
    NodeSet grants;         // and the acceptors that granted in it,
    bool holders = false;   // the round binds against every Prepare (replica read leases),
    NodeSet holder_grants;  // and those that granted so.
  };
  struct LeaseGrant {
    Ballot ballot;          // The owner we promised to wait for,
    int64_t until_ms = 0;   // until then (our clock).
    // The highest Prepare we held for it: no lease is granted below it any more, so that the
    // stealer's next resend gets its promise however many reads the owner keeps confirming.
    Ballot held;
    // A grant that covered replica lease holders binds against every Prepare until then.
    int64_t holders_until_ms = 0;
  };
  // lease_ms shortened by the drift bound on both clocks and by the clocks' resolution.
  int64_t OwnerLeaseMs() const;
  int64_t RestartGuardMs() const;
  // A Confirm of ours (with the lease we ask for).
  Message ConfirmMessage(const ObjectId& object, const ObjectState& o) const;
  // The owner's lease of `object` for its ballot and configurations (over or not), or null;
  // HeldLease: only while it holds.
  const OwnerLeaseState* CurrentLease(const ObjectId& object, const ObjectState& o) const;
  const OwnerLeaseState* HeldLease(const ObjectId& object, const ObjectState& o) const;
  // Past its middle a lease is renewed while reads keep coming (so that they never wait for it).
  int64_t RenewAtMs(const OwnerLeaseState& lease) const {
    return lease.until_ms - OwnerLeaseMs() / 2;
  }
  // Acceptor: whether a Prepare that would raise our promise must wait for a lease to end.
  bool LeaseBlocksPrepare(const Message& msg, const ObjectState& o);
  // Acceptor: grants (or extends) the lease a Confirm asks for; the length granted, 0 if none.
  int64_t GrantLease(const Message& confirm);
  void NoteRoundForLease(const ObjectId& object, const ObjectState& o);
  void NoteLeaseGrant(const ObjectId& object, ObjectState& o, const Message& ack);
  void DropExpiredLeases();

  // replica_holders.cc: replica read leases (docs/consensus.md §Replica read leases).
  struct HolderAsk {
    int64_t asked_ms = 0;   // The asker's clock when it asked (echoed in the grant).
    uint64_t round = 0;     // The first confirmation round begun after the ask arrived.
  };
  struct Holders {          // Owner side, per object, across our ballots.
    absl::btree_map<NodeId, int64_t> until;    // Holder -> until when its acks are needed.
    absl::btree_map<NodeId, HolderAsk> asks;   // Members waiting for a grant.
  };
  struct ReplicaLease {     // Holder side.
    Ballot ballot;          // The owner that granted it,
    int64_t until_ms = 0;   // until then (our clock),
    Slot index = 0;         // once we applied this far.
  };
  // Holder: asks the owner we believe in for a lease (or its renewal), at most every quarter
  // lease.
  void AskLease(const ObjectId& object, const ObjectState& o);
  void HandleLeaseRequest(const Message& msg);
  LeaseReads LeaseReadsOf(const ObjectId& object) const;
  // AUTO, owner side: whether `from`, reading `per_minute`, gets (or keeps) a lease.
  bool AutoGrants(const ObjectId& object, NodeId from, uint64_t per_minute);
  void NoteProposed(const ObjectId& object, const Message& accept);
  void HandleLeaseGrant(const Message& msg);
  // Owner: whether asks may be granted now (owner, settled, one configuration).
  bool MayGrantHolders(const ObjectState& o) const;
  // Owner: starts a confirmation round for asks that arrived since the last one began.
  void StartHolderRound(const ObjectId& object, ObjectState& o);
  // Owner: a round begun after the asks got its lease from a Q2 that binds against every
  // Prepare: record the askers as holders and grant them.
  void RecordHolders(const ObjectId& object, ObjectState& o, uint64_t round);
  bool HoldersWanted(const ObjectId& object) const;  // asks waiting, or holders not ended
  // Owner: whether a holder whose lease has not ended is missing from `acks` (for an anchor:
  // whether any holder's lease has not ended; a new configuration starts with none).
  bool HoldersMissing(const ObjectId& object, const NodeSet& acks, bool anchor) const;
  // Holder: the read index a read invoked now may use (its lease holds), else nullopt.
  std::optional<Slot> HolderReadIndex(const ObjectId& object, const ObjectState& o,
                                      std::string_view key = {}) const;
  bool MayWrite(const Batch& batch, std::string_view key) const;
  void DropExpiredHolders();

  // replica_routing.cc: routing and forwarding of client writes, migration.
  void FinishRequest(RequestId id, ReplyCode code, bool definite, std::string detail);
  // Requests forwarded to an owner that stopped answering: reads are re-routed, writes fail
  // with an unknown outcome (they may have been taken) instead of waiting for their deadline.
  void CheckForwardTargets();
  RouteDecision Decide(const ObjectId& object, const ObjectState& o);
  // Routes a write: forward, steal or queue. `route` is the origin's attempt number for a
  // command forwarded to us; our own commands get a fresh attempt here.
  void RouteWrite(const ObjectId& object, Command cmd, uint64_t route = 0);
  // Forwards a write to the owner we believe in, addressed to its exact ballot.
  void ForwardWrite(const ObjectId& object, ObjectState& o, Command cmd, uint64_t route);
  // Hands a command back: re-routes our own, or tells the origin (attempt `route`).
  void RejectCommand(const ObjectId& object, ObjectState& o, const Command& cmd, bool definite,
                     uint64_t route);
  // Hands back a command we had queued (looks up the origin's attempt).
  void RejectQueued(const ObjectId& object, ObjectState& o, const Command& cmd);
  void NoteDisowned(ObjectState& o, const Message& msg);
  void HandleForward(const Message& msg);
  bool ForwardSeen(const ObjectState& o, NodeId origin, uint64_t seq) const;
  // Records forward `seq` from `origin` for our current ballot; false if already seen.
  bool TakeForward(ObjectState& o, NodeId origin, uint64_t seq);
  void HandleForwardReject(const Message& msg);
  void NoteAccess(const ObjectId& object, ObjectState& o, NodeId from);
  void HandleMoveHint(const Message& msg);

  // replica_reconfig.cc (docs/consensus.md, "Reconfiguration").
  const ConfigInfo& Latest() const { return configs_.at(latest_epoch_); }
  void AddConfig(uint64_t epoch, Topology topology, QuorumSpec quorum);
  void LearnConfig(uint64_t epoch, const std::string& encoded);
  const ConfigInfo* FindConfig(uint64_t epoch) const;
  bool IsMember(uint64_t epoch, NodeId node) const;
  bool KnownNode(NodeId node) const;
  // A node added by a membership change this one has not learned (its id is above every id
  // we know; ids are never reused): only what teaches us the membership is taken from it.
  bool FromNewcomer(const Message& msg) const;
  // Configurations whose quorums the object needs: {L} once anchored at L, else {A, L-1, L}
  // (A = its anchor, if any); plus, on a candidate/owner, `joint` until its anchor commits.
  EpochSet ObjectEpochs(const ObjectState& o) const;
  bool IsQ1In(const EpochSet& epochs, const NodeSet& nodes) const;
  // Every phase-1 quorum of every configuration in `epochs` includes this node.
  bool InEveryQ1(const EpochSet& epochs) const;
  bool IsQ2In(const EpochSet& epochs, const NodeSet& nodes) const;
  NodeSet MembersOf(const EpochSet& epochs) const;
  absl::Status CheckAvailableIn(const EpochSet& epochs) const;
  // An anchor entry: a batch of exactly one reserved command {kNoNode, epoch} whose data is
  // the EncodeQuorumConfig of C_epoch. Client request ids never use kNoNode.
  static bool IsAnchor(const Batch& batch);
  // Moves queued proposals into `batch` (up to batch_commands_max), stamped with the clock.
  void TakeProposals(ObjectState& o, Batch& batch);
  bool NeedsAnchor(const ObjectState& o) const;
  bool Held(const ObjectState& o) const;
  void ScanAnchors(ObjectState& o);
  void SendDeferredAnchorAck(const ObjectId& object, ObjectState& o);
  bool Fenced(const Message& msg) const;  // A proposer message from an older epoch.
  void NoteFence(const Message& reply);
  uint64_t AnchorFloor() const;  // Lowest anchor epoch over held objects (latest if none).
  // Brings anchor_counts_, sweep_ and lagging_ up to date with the objects touched since.
  void RefreshIndexes() const;
  void Reindex(const ObjectId& object, const ObjectState& o) const;  // one object's part
  void Sweep();
  // Whether this turn of sweeping `object` is ours (one live member's at a time).
  bool SweepTurn(const ObjectId& object) const;

  // replica_rest.cc: objects at rest. An object is stored awake (its state) or at rest (its
  // EncodeAtRest bytes); resting and waking leave it exactly as it was.
  using StoredObject = internal::StoredObject;
  ObjectState& Wake(const ObjectId& object, StoredObject& s) const;
  ObjectState& Stored(const ObjectId& object) const {  // An object this node holds.
    return Wake(object, objects_.find(object)->second);
  }
  // An object's state to read without waking it: its own if awake, else decoded into `held`.
  const ObjectState& Peek(const StoredObject& s, std::optional<ObjectState>& held) const {
    if (s.state() != nullptr) return *s.state();
    held = DecodeAtRest(s.at_rest());
    return *held;
  }
  // Nothing in progress and on no work list: nothing would look at it before a message,
  // request or tick touches it (and so wakes it).
  bool MayRest(const ObjectId& object, const ObjectState& o) const;
  // True if `object` rests and a peer's report of its commit index (a heartbeat's, or with
  // `owner` the commit notice of that owner) changes nothing of it but, for a notice, the time
  // its owner was last heard of (then updated in its encoding). Such reports come once per
  // idle object per heartbeat cycle, and leave it at rest.
  bool ReportLeavesAtRest(const ObjectId& object, Slot commit_index, NodeId from,
                          std::optional<Ballot> owner = std::nullopt);
  // Rests the awake objects that may (up to rest_checks_per_tick looked at per call).
  void RestIdleObjects();
  // Rests `object` if it may and its encoding gives its state back; true if it did (the
  // caller takes it off awake_).
  bool TryRest(const ObjectId& object, StoredObject& s);
  // nullopt: the state holds something the encoding does not carry (it stays awake).
  std::optional<std::string> EncodeAtRest(const ObjectState& o) const;
  ObjectState DecodeAtRest(std::string_view in) const;
  std::string EncodeForgettingPromise(const ObjectState& o) const;  // test_rest_forgets_promise

  // replica_invariants.cc.
  void CheckObject(const ObjectId& object, const ObjectState& o,
                   std::vector<std::string>& out) const;
  void CheckProposer(const ObjectId& object, const ObjectState& o,
                     std::vector<std::string>& out) const;

  // replica_time.cc: timers and heartbeats.
  // One object's timers (resends, catch-up retries, queued work); NeedsTick is true iff it may
  // have any, so Tick can skip the rest.
  void TickObject(const ObjectId& object, ObjectState& o);
  void TickOwner(const ObjectId& object, ObjectState& o);
  void TickFollower(const ObjectId& object, ObjectState& o);
  bool NeedsTick(const ObjectId& object, const ObjectState& o) const;
  // Heartbeats in one digest cycle (see heartbeat_objects_max).
  uint64_t HeartbeatCycle() const;
  void SendHeartbeat();
  // Frees the snapshots held for transfers nobody continued for snapshot_serve_idle_ticks.
  // Frees the snapshots held for transfers nobody asked to continue for `idle` ticks.
  void DropIdleTransfers(consensus::Tick idle);

  ReplicaConfig config_;
  std::map<uint64_t, ConfigInfo> configs_;  // Every configuration known, by epoch (stable refs).
  uint64_t latest_epoch_ = 0;               // L: the host's latest (SetConfig).
  uint64_t fenced_epoch_ = 0;               // Highest epoch an acceptor fenced us with.
  // Per peer: the highest e such that one of its heartbeats reported latest >= e and every
  // held object anchored at >= e (a true statement once made: both only grow).
  absl::btree_map<NodeId, uint64_t> settle_witness_;
  uint64_t settled_epoch_ = 0;              // For the settles_reached probe.
  SnapshotSource* snapshots_;
  LogSource* log_;  // null: applied entries stay in memory
  std::unique_ptr<MigrationPolicy> policy_;
  Rng rng_;
  consensus::Tick now_ = 0;
  int64_t wall_ms_ = 0;   // SetClock: the host's wall clock
  int64_t mono_ms_ = 0;   // SetClock: the host's monotonic clock
  int64_t boot_ms_ = -1;  // mono_ms_ at the first SetClock (the restart's lease guard)
  absl::btree_map<ObjectId, OwnerLeaseState> leases_;  // Owned objects with a lease round.
  absl::btree_set<ObjectId> evict_due_;  // lazy ranges flushed: their entries may go (Advance)
  absl::btree_map<ObjectId, LazyLearners> lazy_;       // Owned objects with lazy members.
  absl::btree_map<ObjectId, LeaseGrant> grants_;       // Acceptor: leases granted.
  absl::btree_map<ObjectId, Holders> holders_;          // Owner: replica read leases.
  absl::btree_map<ObjectId, ReplicaLease> held_leases_;   // Holder: replica read leases held.
  absl::btree_map<ObjectId, int64_t> lease_asked_;      // Holder: when we last asked.
  absl::btree_map<ObjectId, LeaseReads> lease_reads_;   // SetLeaseReads (kOff: absent)
  absl::btree_map<ObjectId, Demand> reads_seen_;       // AUTO: reads asked here
  absl::btree_map<ObjectId, AutoLoad> auto_load_;     // AUTO: what we saw as owner
  bool may_own_ = true;   // SetClock: the host trusts its clock
  consensus::Tick last_heartbeat_ = -1;
  uint64_t heartbeats_sent_ = 0;
  // Objects this learner is catching up (a request out, or a snapshot partly received);
  // at most catchups_max, so a node far behind on many tables holds a bounded amount.
  absl::btree_set<ObjectId> catching_up_;
  // Objects behind that found every catch-up slot taken, in the order they asked: Tick starts
  // them as slots free (StartQueuedCatchups). They are not in active_: a node that joins
  // behind tens of thousands of tables would otherwise visit every one of them on every tick.
  internal::ObjectQueue catchup_queue_;
  // The directory scan of a node that started empty (ContinueDirectoryScan).
  struct DirectoryScan {
    bool wanted = false;
    NodeId from = kNoNode;  // the peer asked
    ObjectId cursor;        // the last object received ("": none yet)
    consensus::Tick sent = -1;  // a page asked for and not received
  } directory_;
  // Owned objects re-anchoring with no write waiting (at most reanchors_max; entries whose
  // anchor committed are pruned in Tick), and those waiting their turn, oldest first.
  absl::btree_set<ObjectId> reanchoring_;
  internal::ObjectQueue reanchor_queue_;
  // After SetConfig, the objects that were at rest are woken from this one on, a few per
  // tick (WakeForConfig); nothing is in flight for them meanwhile, and a message or request
  // wakes one at once anyway.
  bool config_waking_ = false;
  ObjectId config_wake_cursor_;
  // Objects Tick must look at: every object touched (Obj) since Tick last found it idle.
  absl::btree_set<ObjectId> active_;
  // Work lists (unordered; the flags in ObjectState keep them duplicate-free): objects touched
  // since the last CollectReady, since the last heartbeat, and since the last RefreshIndexes.
  std::vector<ObjectId> collect_;
  std::vector<ObjectId> heartbeat_changed_;
  mutable std::vector<ObjectId> reindex_;
  // Objects touched since the last CheckInvariants (kept only once it was called).
  bool checking_ = false;
  std::vector<ObjectId> check_list_;
  // Indexes over every object, exact after RefreshIndexes: the anchor epochs of held objects
  // (AnchorFloor = the lowest), objects the sweeper may have to steal, lagging objects.
  mutable absl::btree_map<uint64_t, size_t> anchor_counts_;
  mutable absl::btree_set<ObjectId> sweep_;
  ObjectId sweep_cursor_;  // Sweep: where the next look starts.
  mutable size_t lagging_ = 0;
  ObjectId heartbeat_cursor_;  // Rolling digests: where the next window starts.
  // Per peer, the ranges whose digest agreed with ours: lo -> (hi, when) (OwnerAgreed).
  absl::btree_map<NodeId, absl::btree_map<ObjectId, std::pair<ObjectId, consensus::Tick>>>
      agreed_;
  size_t serving_count_ = 0;  // Objects whose snapshot we hold for a transfer (`serving`).
  // Catch-up's rate budget in bytes (below 0 after a large answer: a debt), as of
  // catchup_budget_at_, and the requests waiting for it, oldest first.
  int64_t catchup_budget_ = INT64_MAX;  // full (one burst) at the first refill
  consensus::Tick catchup_budget_at_ = 0;
  std::deque<Message> catchup_waiting_;
  uint64_t inbound_backlog_ = 0;  // SetInboundBacklog
  uint64_t restart_counter_floor_ = 0;  // Ballot counters above this are from this incarnation.
  bool work_ = false;                    // TakeReady has something to collect.
  // Every object this node holds; waking one (FindObj) is not a change, hence mutable.
  mutable absl::btree_map<ObjectId, StoredObject> objects_;
  mutable absl::btree_set<ObjectId> awake_;  // Objects with a decoded state.
  ObjectId rest_cursor_;  // RestIdleObjects: where the next look starts.
  absl::btree_map<ObjectId, consensus::Tick> rest_retry_;  // TryRest: not before then
  absl::btree_map<NodeId, consensus::Tick> heard_;
  absl::btree_map<RequestId, PendingRequest> pending_;
  absl::btree_set<std::pair<consensus::Tick, RequestId>> deadlines_;
  absl::btree_set<RequestId> reads_indexed_;  // Reads whose read index is known.
  std::deque<Message> local_;  // Messages to self, delivered before returning to the host.
  // The acceptor's Promise/Accepted to itself, by the number of the Ready that persists what
  // they vouch for: delivered at that Ready's Advance.
  std::deque<std::pair<uint64_t, Message>> held_;
  uint64_t readies_taken_ = 0;
  Ready ready_;                // Being accumulated.
  mutable Probes probes_;  // Counters: waking (FindObj) counts too.
};

}  // namespace atlas::consensus

#endif  // ATLAS_CONSENSUS_REPLICA_H_
