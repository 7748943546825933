// The WPaxos implementation of the Replicator seam (docs/design.md §Write path): a
// consensus::Replica driven by one node thread, with RocksDB as its durable state and the
// StateMachine as its application.
//
// The node thread runs the Ready contract of consensus/replica.h:
//   1. hard-state updates (promises, accepted entries, commit index) and the apply of committed
//      entries go into ONE RocksDB WriteBatch, written with sync=true;
//   2. only then are messages sent (none leave a one-node cluster; the gRPC transport of
//      «Cluster» plugs in here);
//   3. read barriers and client replies complete after that.
// Everything queued while a batch syncs is handled before the next Ready, so the number of
// fsyncs per second does not grow with the number of clients (group commit).
//
// Thread-safe: every public method may be called from any thread; the Replica and the
// per-request bookkeeping are touched only by the node thread.
#pragma once

#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "atlasd/replicator.h"
#include "atlasd/state_machine.h"
#include "consensus/membership.h"
#include "consensus/replica.h"
#include "storage/store.h"

namespace atlas {

struct PaxosReplicatorOptions {
  consensus::NodeId node_id = 1;
  // The membership to start from when the store has none yet (a new cluster, or what a join
  // answered); afterwards the store's copy of the replicated `atlas.nodes` state wins. Empty
  // members: a one-node cluster of node_id in zone 1 with `quorum`.
  consensus::ClusterConfig membership;
  // The membership before it, if any (joint quorums of a change in progress need it).
  std::optional<consensus::ClusterConfig> previous_membership;
  consensus::QuorumSpec quorum;
  // Zone distances (e.g. RTT in microseconds) for choosing the nearest quorums.
  absl::btree_map<std::pair<consensus::ZoneId, consensus::ZoneId>, int64_t> distance;
  // Called on the node thread after a membership change was applied and made durable (and
  // once at start with the loaded membership). Must not block.
  std::function<void(const consensus::ClusterConfig&)> on_membership;
  // Sends Ready::messages to their nodes (the peer transport); null in a one-node cluster.
  // Called on the node thread after the Ready was made durable; must not block.
  std::function<void(std::vector<consensus::Message>)> send;
  std::chrono::milliseconds tick{5};  // one consensus tick of wall time
  size_t queue_events_max = 65536;    // proposals/reads waiting for the node thread
  bool sync = true;                   // fsync every Ready (the durability contract)
  uint64_t change_history = kDefaultChangeHistory;  // row changes kept per table (WATCH)
  // Whether the node may own objects before SetMayOwn says otherwise (a cluster node starts
  // without: its clock is unknown until it measured its peers').
  bool may_own = true;
  // Called on the node thread after a Ready's applied commands are durable: the tables whose
  // revision moved, with the new revision; `everything` when snapshots (or adopts) replaced
  // tables' states wholesale. Must not block (the WatchHub queues it).
  std::function<void(std::vector<std::pair<std::string, uint64_t>> changes, bool everything)>
      on_changes;
};

class PaxosReplicator final : public Replicator {
 public:
  // Loads the durable Paxos state from `store` and starts the node thread.
  static absl::StatusOr<std::unique_ptr<PaxosReplicator>> Start(storage::Store* store,
                                                               PaxosReplicatorOptions options);
  ~PaxosReplicator() override;

  void Propose(proto::Command cmd, Done done) override;
  void ReadBarrier(const std::string& table, std::function<void(absl::Status)> done) override;
  void Ping(std::function<void()> done) override;
  void Describe(const std::string& table, std::function<void(ObjectInfo)> done) override;
  void Shutdown() override;

  // A message from a peer (already validated by the transport); handled on the node thread.
  void Deliver(consensus::Message message);

  // Orders a membership command (consensus/membership.h encoders) in `atlas.nodes`. `done`
  // gets the command's result (a join: the allocated node id) and the membership right after
  // it, or the reason it was refused or could not be ordered.
  struct MembershipResult {
    std::string result;
    consensus::ClusterConfig config;
  };
  void ProposeMembership(std::string command,
                         std::function<void(absl::StatusOr<MembershipResult>)> done);
  // The replicated membership as applied on this node, and the one before it (thread-safe
  // copies; previous.epoch == 0 when there was none).
  consensus::ClusterConfig Membership() const;
  consensus::ClusterConfig PreviousMembership() const;
  // Runs `fn` with the replica on the node thread (introspection: NODE/QUORUM commands, tests).
  bool Inspect(std::function<void(const consensus::Replica&)> fn);
  // Explicit ownership move of `table` (TABLE MOVE): steal it here, or hint `target` to.
  void Move(const std::string& table, consensus::NodeId target);
  // Whether this node's clock may stamp commands, i.e. whether it may own objects
  // (ClusterNode's ClockGuard; consensus::Replica::SetClock). Any thread.
  void SetMayOwn(bool may_own);

  uint64_t readies() const { return readies_.load(); }
  // Ticks not run because the node thread fell behind the clock (overload).
  uint64_t ticks_skipped() const { return ticks_skipped_.load(); }

  // Ownership on this node, from the core's Ready::ownership events (GET /metrics, NODE INFO).
  struct OwnershipStats {
    uint64_t owned = 0;           // tables and groups this node owns now (not atlas.nodes)
    uint64_t phase1_started = 0;  // steals started
    uint64_t elected = 0;         // steals won
    uint64_t preempted = 0;       // steals lost
    uint64_t stepped_down = 0;    // ownership lost to another node's ballot
    uint64_t moves_suggested = 0; // migration hints this node's policy sent as owner
  };
  OwnershipStats ownership() const;

 private:
  class Snapshots;
  PaxosReplicator(storage::Store* store, PaxosReplicatorOptions options);

  // Runs `fn` on the node thread; false (and `fn` not run) when the queue is full or stopping.
  bool Post(std::function<void()> fn);
  void Run();
  void ProcessReady();
  // Logs one ownership event and counts it.
  void NoteOwnership(const consensus::OwnershipEvent& event);
  // Applies one committed `atlas.nodes` command into `wb`; returns the proposer's outcome.
  absl::StatusOr<std::string> ApplyMembership(const std::string& command, int64_t stamp_ms,
                                              rocksdb::WriteBatchWithIndex* wb);
  void InstallMembership(const consensus::ClusterConfig& config);
  // Groups (docs/consensus.md §Groups), node thread. The table's current route (cached;
  // dropped whenever a placement, adopt or snapshot may have changed it).
  const StateMachine::Route& RouteOf(const std::string& table);
  // Proposes `cmd` to its table's current object. `adopt`: cmd is an adopt this node proposes.
  void Submit(proto::Command cmd, Done done, int attempt, bool adopt = false);
  // The table was sealed here and its adopt has not applied: propose it (once at a time).
  void MaybeAdopt(const std::string& table);
  void IssueRead(const std::string& table, std::function<void(absl::Status)> done, int attempt);
  // Runs `fn` on the node thread after `delay`.
  void After(std::chrono::milliseconds delay, std::function<void()> fn);
  consensus::Topology TopologyOf(const consensus::ClusterConfig& config) const;
  std::string NameZones(const std::string& text) const;
  void Pin(const std::string& object, const std::string& region);
  consensus::RequestId NextRequestId() { return {options_.node_id, next_seq_++}; }

  storage::Store* store_;
  PaxosReplicatorOptions options_;
  StateMachine state_machine_;
  std::unique_ptr<Snapshots> snapshots_;
  std::unique_ptr<consensus::Replica> replica_;
  consensus::AccessCountingPolicy* policy_ = nullptr;  // owned by replica_

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> events_;  // guarded by mu_
  bool stopping_ = false;                     // guarded by mu_

  // Node-thread state.
  uint64_t next_seq_;
  int64_t last_timestamp_ms_ = 0;
  absl::flat_hash_map<consensus::ObjectId, consensus::Slot> truncated_;
  struct PendingWrite {
    Done done;
    std::optional<ApplyResult> result;  // set when the command is applied
    proto::Command cmd;                 // kept to retry it elsewhere when its table moved
    int attempt = 0;
    bool adopt = false;
  };
  absl::flat_hash_map<uint64_t, PendingWrite> writes_;  // by RequestId::seq
  struct PendingRead {
    std::function<void(absl::Status)> done;
    std::string table;
    std::string object;
    int attempt = 0;
  };
  absl::flat_hash_map<uint64_t, PendingRead> reads_;
  absl::flat_hash_map<std::string, StateMachine::Route> routes_;
  absl::flat_hash_set<std::string> adopting_;  // tables whose adopt this node has in flight
  std::vector<std::pair<std::chrono::steady_clock::time_point, std::function<void()>>> timers_;
  struct PendingMembership {
    std::function<void(absl::StatusOr<MembershipResult>)> done;
    std::optional<absl::StatusOr<std::string>> result;  // set when applied
  };
  absl::flat_hash_map<uint64_t, PendingMembership> membership_writes_;
  consensus::ClusterConfig membership_;  // node thread; copied into shared_membership_
  consensus::ClusterConfig previous_;    // node thread: the membership before membership_
  bool membership_changed_ = false;      // applied in the Ready being processed

  mutable std::mutex membership_mu_;
  consensus::ClusterConfig shared_membership_;  // guarded by membership_mu_
  consensus::ClusterConfig shared_previous_;    // guarded by membership_mu_

  std::atomic<bool> may_own_;
  std::atomic<uint64_t> readies_{0};
  std::atomic<uint64_t> ticks_skipped_{0};
  std::atomic<uint64_t> owned_{0}, phase1_started_{0}, elected_{0}, preempted_{0},
      stepped_down_{0}, moves_suggested_{0};  // ticks dropped because the node thread fell behind
  std::thread thread_;
};

}  // namespace atlas
