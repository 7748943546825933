// NodeHost: everything a node does between the consensus core and the disk (docs/design.md
// §The node). It owns the node's consensus::Replica and runs the Ready contract of
// consensus/replica.h (the Ready runner is in ready.cc):
//   1. stage snapshots, hard-state updates and the apply of committed entries in ONE WriteSet;
//      send the Ready's Accepts (the owner's proposals may travel while its own copy is
//      written); write the WriteSet;
//   2. publish what changed (WATCH revisions, membership), release read barriers whose index
//      is applied, and answer proposals, reads and membership changes: all of it rests on
//      chosen values, which a Q2 (this node's part included) holds durably already;
//   3. once the Ready's promises and accepted entries are synced (pipelined syncs: a syncer
//      fsyncs for every Ready written meanwhile, HostIO::RequestSync / Synced), send its other
//      messages and Advance the core, which only then counts this node's own acks.
// Snapshots and membership changes are written synced, in line.
// Around it: group routing (GroupRoutes: which consensus object governs a table, retries when a
// table moved), membership persistence (MembershipState), and request bookkeeping.
//
// No threads, clocks or sockets inside: the daemon's NodeLoop (node_loop.h) drives it from one
// thread with real time, RocksDB and gRPC; the simulator (tests/sim/simulator.cc) drives the
// very same code with simulated time, an in-memory store and a simulated network. Time comes in
// through SetTime (a monotonic clock for timers, the wall clock the owner stamps with).
//
// Thread-compatible: one thread (or the simulator) owns a NodeHost.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "absl/container/btree_map.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "atlasd/acl_cache.h"
#include "atlasd/node/local_reads.h"
#include "atlasd/node/group_routes.h"
#include "atlasd/node/membership_state.h"
#include "atlasd/node_report.h"
#include "atlasd/replicator.h"
#include "atlasd/state_machine.h"
#include "consensus/membership.h"
#include "consensus/replica.h"
#include "proto/command.pb.h"
#include "storage/store.h"

namespace atlas {

// Ownership on this node, from the core's Ready::ownership events (GET /metrics, NODE INFO).
struct OwnershipStats {
  uint64_t owned = 0;            // tables and groups this node owns now (not atlas.nodes)
  uint64_t phase1_started = 0;   // steals started
  uint64_t elected = 0;          // steals won
  uint64_t preempted = 0;        // steals lost
  uint64_t stepped_down = 0;     // ownership lost to another node's ballot
  uint64_t moves_suggested = 0;  // migration hints this node's policy sent as owner
};

// What the host does with the world outside the node: the network and the host's observers.
class HostIO {
 public:
  virtual ~HostIO() = default;
  // Ready::messages, after their Ready is durable. Must not block.
  virtual void Send(std::vector<consensus::Message> messages) = 0;
  // A membership change was applied and made durable (and once at start): the configuration
  // now and the one before it (epoch 0: none). Must not block.
  virtual void MembershipChanged(const consensus::ClusterConfig& current,
                                 const consensus::ClusterConfig& previous) = 0;
  // Tables whose revision moved (with the new revision), once durable; `everything` when
  // snapshots or adopts replaced tables wholesale (WATCH). Must not block.
  virtual void TablesChanged(std::vector<std::pair<std::string, uint64_t>> changes,
                             bool everything) = 0;
  // Pipelined syncs: run Store::Sync soon and hand its result to NodeHost::Synced on the
  // node's thread. Must not block, except that with nothing else to do the host may sync on
  // the caller's stack — never when `overlap`: the caller is about to send, and the fsync
  // should run beside that.
  virtual void RequestSync(bool overlap) = 0;
  // A named point in the Ready loop (failpoints: "ready-before-sync", "ready-after-sync",
  // "ready-after-send", "snapshot-install"). True: the node crashes here (the simulator stops
  // processing; the daemon's failpoints kill the process and never return).
  virtual bool Crash(const char* point) = 0;
};

struct NodeHostOptions {
  consensus::NodeId node_id = 1;
  // The membership to start from when the store has none yet (see MembershipState::Load).
  consensus::ClusterConfig membership;
  std::optional<consensus::ClusterConfig> previous_membership;
  consensus::QuorumSpec quorum;
  absl::btree_map<std::pair<consensus::ZoneId, consensus::ZoneId>, int64_t> distance;
  int64_t tick_ms = 5;  // one consensus tick of the caller's time
  // The wall clock when this incarnation starts (unix µs). Its request and forward sequence
  // numbers start above it, so they grow across restarts: forwards of a new incarnation are
  // never taken for duplicates of the last one's.
  uint64_t start_wall_us = 0;
  bool sync = true;     // fsync promises and accepted entries (the durability contract)
  // Pipelined syncs: the next Readies are prepared and written while one is synced (by
  // HostIO::RequestSync). Off: synced in line on the node's thread.
  bool pipeline = true;
  ChangeHistory change_history;  // row changes kept per table (WATCH)
  bool may_own = true;  // until SetClock says otherwise
  // Owner read leases (consensus::ReplicaConfig::lease_ms, clock_drift_ppm); 0: off.
  int64_t read_lease_ms = 0;
  // Catch-up this node sends, all learners together (ReplicaConfig::catchup_bytes_per_tick);
  // 0: no limit.
  uint64_t catchup_bytes_per_second = 0;
  // A received snapshot is installed in writes of about this size (docs/storage.md §Snapshots).
  size_t install_part_bytes = size_t{16} << 20;
  int64_t clock_drift_ppm = 10'000;
  uint64_t replica_seed = 0;  // the core's seeded randomness (0: node_id)
  // The migration policy: access counting with these windows (default: half a second), or,
  // with static_owner set, the Multi-Paxos baseline in which that node owns every object.
  std::optional<consensus::AccessCountingPolicy::Options> policy;
  consensus::NodeId static_owner = 0;
  // Overrides of the core's defaults (tests, the simulator's randomised configurations); the
  // id, topology, quorum and epoch are filled in from the membership.
  std::optional<consensus::ReplicaConfig> replica;
  // TEST ONLY bug switches, each breaking one step of the Ready contract's safety argument so
  // that the simulator is shown to catch it (docs/consensus.md, "Simulator and checkers").
  bool test_send_before_persist = false;  // messages leave before their Ready is durable
  bool test_reuse_sequence_numbers = false;  // every incarnation numbers from 1 again
  // A snapshot sent in chunks reads the live store, not one store snapshot: a transfer under
  // writes mixes states.
  bool test_snapshot_unpinned = false;
  // A received snapshot is installed in parts with no redo marker: a crash between parts
  // leaves tables half replaced under the old hard state.
  bool test_install_without_marker = false;
  // The state machine's record caches (table and object records, row records), shared with
  // the previous incarnation: they keep records of Readies that a crash stopped before they
  // reached the disk (atlasd/meta_cache.h).
  std::shared_ptr<MetaCache> test_meta_cache, test_row_cache;
  // The bound of each record cache (StateMachine; RecordCacheBytes of the memory budget).
  size_t record_cache_bytes = kDefaultMetaCacheBytes;
  // The client threads' ACLs (not owned; null: none), invalidated once an ACL change is durable.
  AclCache* acls = nullptr;
  // TEST ONLY: tables stay in local_reads() after the node lost what made those reads safe
  // (NodeHost::RefreshLocalReads does nothing).
  bool test_keep_local_reads = false;
};

// A table's TABLE READS setting as the core takes it (Replica::SetLeaseReads).
inline consensus::LeaseReads LeaseReadsMode(bool local, bool automatic) {
  if (!local) return consensus::LeaseReads::kOff;
  return automatic ? consensus::LeaseReads::kAuto : consensus::LeaseReads::kLocal;
}

class NodeHost {
 public:
  // The outcome of a write: its apply result, or why it was not ordered.
  using Done = std::function<void(ApplyResult)>;
  using ReadDone = std::function<void(absl::Status)>;
  struct MembershipResult {
    std::string result;  // a join: the allocated node id
    consensus::ClusterConfig config;
  };
  using MembershipDone = std::function<void(absl::StatusOr<MembershipResult>)>;

  // Loads the durable Paxos state and membership from `store` (restart), or starts from the
  // options' membership (a new node). `store` and `io` must outlive the host.
  static absl::StatusOr<std::unique_ptr<NodeHost>> Start(storage::Store* store, HostIO* io,
                                                         NodeHostOptions options);
  ~NodeHost();

  // Time: `now_ms` of a monotonic clock (timers), `wall_ms` of the wall clock (the owner's
  // stamps), and whether this node may own objects (its clock is trusted). Call before the
  // other calls of each pass; the host then runs the ticks and timers that fell due.
  void SetTime(int64_t now_ms, int64_t wall_ms, bool may_own);
  // Bytes of queued events not run yet (consensus::Replica::SetInboundBacklog).
  void SetBacklog(uint64_t bytes) { replica_->SetInboundBacklog(bytes); }

  void Propose(proto::Command cmd, Done done);
  void ReadBarrier(const std::string& table, const std::string& key, ReadDone done);
  void ProposeMembership(std::string command, MembershipDone done);
  void Deliver(const consensus::Message& message);
  // Explicit ownership move of `table` (TABLE MOVE): steal it here, or hint `target` to.
  void Move(const std::string& table, consensus::NodeId target);
  ObjectInfo Describe(const std::string& table);
  // The last slot of `object` applied to the store (convergence checks, introspection).
  uint64_t AppliedIndex(const std::string& object);

  // Runs the Ready loop until the core has nothing more. False when HostIO::Crash stopped it
  // (the node is to be thrown away; what was not committed is lost).
  bool ProcessReady();
  // Store::Sync made the first `through` commits durable (after HostIO::RequestSync): releases
  // the Readies that waited for it, in order, then runs the Ready loop. False: crashed.
  bool Synced(uint64_t through);
  // Readies written whose messages and Advance wait for a sync.
  size_t unsynced_readies() const { return unsynced_.size(); }

  // Nothing is due before the next heartbeat: the caller may sleep until then.
  bool Quiet() const;
  // When (in SetTime's now_ms) the next tick or timer is due: the caller sleeps until then
  // unless a request arrives.
  int64_t NextWorkAtMs() const;
  // No request of any kind is in progress (a clean shutdown may stop).
  bool Idle() const;

  const consensus::Replica& replica() const { return *replica_; }
  // The core's invariants over the objects touched since the last call (simulator, tests).
  std::vector<std::string> CheckInvariants(
      std::vector<consensus::Replica::CheckedObject>* touched) {
    return replica_->CheckInvariants(touched);
  }
  const consensus::ClusterConfig& membership() const { return membership_.current(); }
  const consensus::ClusterConfig& previous_membership() const { return membership_.previous(); }
  uint64_t readies() const { return readies_; }
  uint64_t ticks_skipped() const { return ticks_skipped_; }
  const OwnershipStats& ownership() const { return ownership_; }
  // The last OwnershipMove::kRecentMoves tables this node won, oldest first; the version
  // changes with every win (NodeLoop copies them only then).
  const std::deque<OwnershipMove>& recent_moves() const { return moves_; }
  uint64_t moves_version() const { return ownership_.elected; }
  // The tables whose reads need no barrier; shared with the client threads (thread-safe).
  std::shared_ptr<const LocalReads> local_reads() const { return local_reads_; }

  // Observers of each Ready before it is processed (the simulator's checkers). Test only.
  std::function<void(const consensus::Ready&)> observe_ready;

 private:
  struct PendingWrite {
    Done done;
    std::optional<ApplyResult> result;  // set when the command is applied
    proto::Command cmd;                 // kept to retry it elsewhere when its table moved
    int attempt = 0;
    bool adopt = false;
  };
  struct PendingRead {
    ReadDone done;
    std::string table;
    std::string key;  // "table.row", or empty: the whole table
    std::string object;
    int attempt = 0;
  };
  struct PendingMembership {
    MembershipDone done;
    std::optional<absl::StatusOr<std::string>> result;  // set when applied
  };
  // What one Ready's apply produced, for the steps after the commit.
  struct Applied {
    std::vector<std::pair<std::string, uint64_t>> changes;  // WATCH
    bool everything = false;
    bool membership_changed = false;
    std::vector<std::string> acls;  // tables whose ACL changed
    std::vector<std::string> installed;  // objects a snapshot replaced
  };
  class Snapshots;
  class Log;
  // A Ready whose messages and Advance wait until commit number `wait_for` is synced.
  struct Unsynced {
    consensus::Ready rd;
    uint64_t wait_for = 0;
  };

  NodeHost(storage::Store* store, HostIO* io, NodeHostOptions options);
  consensus::ReplicaConfig CoreConfig() const;
  consensus::RequestId NextRequestId() { return {options_.node_id, next_seq_++}; }
  int64_t StampNow();  // never decreasing

  // Ready steps (the contract above). Those returning bool return false when the node crashed.
  bool Stage(const consensus::Ready& rd, storage::WriteSet& writes, Applied& applied);
  bool InstallStaged(const consensus::ObjectId& object, const consensus::Snapshot& snap);
  std::optional<SnapshotHeads> DecodedHeads(const consensus::ObjectId& object);
  // Objects whose staged snapshot the Ready being written deletes, large enough that their
  // space is compacted away at once (Store::Reclaim) rather than whenever compaction comes.
  static constexpr uint64_t kReclaimBytesMin = uint64_t{64} << 20;
  std::vector<consensus::ObjectId> reclaim_;
  absl::Status ResumeInstalls(
      const std::vector<std::pair<consensus::ObjectId, consensus::Snapshot>>& installs);
  bool InstallSnapshots(const consensus::Ready& rd, storage::WriteSet& writes,
                        Applied& applied);
  void ApplyEntry(const consensus::CommittedEntry& e, storage::WriteSet& writes,
                  Applied& applied);
  void ApplyMembership(const consensus::CommittedEntry& e, storage::WriteSet& writes,
                       Applied& applied);
  bool SendEarly(consensus::Ready& rd, bool unsynced);
  void StartSync(bool overlap);
  bool Write(storage::WriteSet& writes, bool in_line);
  void DropWritten(consensus::Ready& rd);
  bool Hold(consensus::Ready rd, bool must_sync);
  bool ReleaseSynced();
  bool Release(consensus::Ready& rd);
  void Publish(Applied& applied);
  bool Send(consensus::Ready& rd);
  void AnswerClients(const consensus::Ready& rd);
  void ReleaseRead(const consensus::ReadState& rs);
  // How long reads of `table` may be answered locally (LocalReads); {} if not at all.
  LocalReads::Window LocalWindow(const std::string& table);
  // Updates the windows of the tables this Ready may have changed (drops those that ended).
  // Before any message of the Ready leaves.
  void RefreshLocalReads(const consensus::Ready& rd, const Applied& applied);
  void AnswerRead(const consensus::Reply& reply, const std::string& detail);
  void AnswerMembership(const consensus::Reply& reply);
  void AnswerWrite(const consensus::Reply& reply, const std::string& detail);
  void NoteOwnership(const consensus::OwnershipEvent& event);

  // Routing (docs/design.md §Groups).
  void Submit(proto::Command cmd, Done done, int attempt, bool adopt = false);
  // The owner's expirer (atlasd/node/expirer.cc).
  absl::Status LoadExpiringTables();
  void NoteExpiringTables();
  void ArmExpirer(int64_t delay_ms);  // the next round, if there are expiring tables
  void RunExpirer();                  // the round, when it is due (SetTime)
  void ExpireDue();
  // The rows of `table` due for removal now, in expiry order from index key `from` on, a
  // batch at most, and the key after the last; false when no index entry is left from there.
  bool DueRows(const std::string& table, const std::string& from, std::vector<std::string>* due,
               std::string* next);
  void ProposeRemovals(const std::string& table, std::vector<std::string> rows, std::string next);
  void MaybeAdopt(const std::string& table);
  void IssueRead(const std::string& table, const std::string& key, ReadDone done, int attempt);
  void After(int64_t delay_ms, std::function<void()> fn);
  void RunTimers();
  std::string NameZones(const std::string& text) const;
  void Pin(const std::string& object, const std::string& region);
  void InstallMembership();
  void Retry(PendingWrite w);
  bool AdoptAfterSeal(PendingWrite& w);

  storage::Store* store_;
  HostIO* io_;
  NodeHostOptions options_;
  StateMachine state_machine_;
  MembershipState membership_;
  GroupRoutes routes_;
  std::unique_ptr<Snapshots> snapshots_;
  std::unique_ptr<Log> log_;  // applied log entries, read back from the store
  std::unique_ptr<consensus::Replica> replica_;
  std::shared_ptr<LocalReads> local_reads_ = std::make_shared<LocalReads>();
  // The expirer: tables with rows that expire, those with removals in flight, where the next
  // batch of a table whose last one just committed starts, and when its next round is due
  // (-1: none; every kExpireEveryMs while there are expiring tables, at once after a batch).
  static constexpr int64_t kExpireEveryMs = 500;
  std::set<std::string> expiring_;
  std::set<std::string> expiring_busy_;
  std::map<std::string, std::string> expire_from_;
  int64_t expire_at_ms_ = -1;
  consensus::AccessCountingPolicy* policy_ = nullptr;  // owned by replica_; null: static

  uint64_t next_seq_;
  int64_t now_ms_ = 0;
  int64_t wall_ms_ = 0;
  bool clock_started_ = false;
  int64_t next_tick_ms_ = 0;
  int64_t last_stamp_ms_ = 0;
  int64_t next_reads_note_ms_ = 0;  // SetTime: LocalReads::TakeReads
  int64_t restart_guard_ms_ = -1;  // consensus::ReplicaConfig::restart_guard_ms (Start)
  absl::flat_hash_map<uint64_t, PendingWrite> writes_;  // by RequestId::seq
  absl::flat_hash_map<uint64_t, PendingRead> reads_;
  absl::flat_hash_map<uint64_t, PendingMembership> membership_writes_;
  absl::flat_hash_set<std::string> adopting_;  // tables whose adopt this node has in flight
  std::multimap<int64_t, std::function<void()>> timers_;  // by due time (now_ms)
  std::deque<Unsynced> unsynced_;  // oldest first
  uint64_t synced_through_ = 0;     // Store::commits() known durable
  uint64_t must_sync_through_ = 0;  // the last commit carrying a promise or accepted entries
  bool sync_requested_ = false;
  uint64_t readies_ = 0;
  uint64_t ticks_skipped_ = 0;
  OwnershipStats ownership_;
  std::deque<OwnershipMove> moves_;
};

}  // namespace atlas
