// NodeLoop: the daemon's node thread (docs/design.md §Threads). It owns the NodeHost and drives
// it with real time: every pass hands it the clocks, runs the requests other threads queued,
// and processes Readies until the core has nothing more; between passes it sleeps until the
// next tick or timer is due, or a request arrives. The host's I/O goes to the peer transport
// (Send), the cluster runtime (membership) and the WatchHub (table changes); failpoints crash
// the process at the host's crash points.
//
// It implements the Replicator seam for the executor. Thread-safe: every public method may be
// called from any thread; the NodeHost is touched only by the node thread.
#pragma once

#include <atomic>
#include <chrono>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "atlasd/node/node_host.h"
#include "atlasd/replicator.h"

namespace atlas {

struct NodeLoopOptions {
  NodeHostOptions host;  // start_wall_us is filled in from the wall clock
  std::chrono::milliseconds tick{5};
  // Requests queued for the node thread at once: beyond either limit they are refused
  // ("overloaded") and messages dropped like a lossy network would (WPaxos resends).
  size_t queue_events_max = 65536;
  size_t queue_bytes_max = size_t{256} << 20;
  // Events a Ready follows from, at most (in their queued bytes; one event may exceed it): a
  // long queue of large messages (catch-up entries) becomes several Readies, so that no one
  // write batch holds them all, three times over (log, row, WATCH change).
  size_t ready_event_bytes_max = size_t{8} << 20;
  // One-shot timers pending at once (After); beyond it they are refused.
  size_t timers_max = 4096;
  // Sends Ready::messages to their nodes (the peer transport); null in a one-node cluster.
  // Node thread, after the Ready was made durable; must not block.
  std::function<void(std::vector<consensus::Message>)> send;
  // Node thread, after a membership change was made durable (and once at start). Must not
  // block.
  std::function<void(const consensus::ClusterConfig&)> on_membership;
  // Node thread, the tables whose revision moved once durable (HostIO::TablesChanged; the
  // WatchHub queues it). Must not block.
  std::function<void(std::vector<std::pair<std::string, uint64_t>>, bool everything)>
      on_changes;
};

class NodeLoop final : public Replicator {
 public:
  using MembershipResult = NodeHost::MembershipResult;
  using MembershipDone = NodeHost::MembershipDone;

  // Loads the node's durable state from `store` and starts the node thread.
  static absl::StatusOr<std::unique_ptr<NodeLoop>> Start(storage::Store* store,
                                                         NodeLoopOptions options);
  ~NodeLoop() override;

  // Replicator.
  void Propose(proto::Command cmd, Done done) override;
  void ReadBarrier(const std::string& table, const std::string& key,
                   std::function<void(absl::Status)> done) override;
  bool ReadsLocally(const std::string& table) override;
  void Ping(std::function<void()> done) override;
  void Describe(const std::string& table, std::function<void(ObjectInfo)> done) override;
  // Stops taking requests, finishes the queued and in-flight ones, joins the node thread.
  void Shutdown() override;

  // Messages from a peer, one batch as it arrived (already validated by the transport): one
  // event, so a batch costs the node thread one queue operation.
  void Deliver(std::vector<consensus::Message> messages);
  // Orders a membership command (consensus/membership.h encoders) in `atlas.nodes`; `done`
  // gets its result and the membership right after it, or why it was refused or not ordered.
  void ProposeMembership(std::string command, MembershipDone done);
  // Runs `fn` with the core on the node thread (NODE/QUORUM commands, tests); false when the
  // queue is full or stopping.
  bool Inspect(std::function<void(const consensus::Replica&)> fn);
  // Explicit ownership move of `table` (TABLE MOVE): steal it here, or hint `target` to.
  void Move(const std::string& table, consensus::NodeId target);
  // Runs `fn` on the node thread once `delay` has passed: a wait that holds no thread. When
  // the loop stops, pending timers run at once, so a chain of waits ends with it (its next
  // After or request is refused). False (and `fn` not run) when stopping or timers_max are
  // pending.
  bool After(std::chrono::milliseconds delay, std::function<void()> fn);
  // Whether this node's clock may stamp commands, i.e. whether it may own objects
  // (ClusterNode's ClockGuard; consensus::Replica::SetClock).
  void SetMayOwn(bool may_own);

  // Copies as of the node thread's last pass.
  consensus::ClusterConfig Membership() const;
  consensus::ClusterConfig PreviousMembership() const;
  OwnershipStats ownership() const;
  std::vector<OwnershipMove> recent_moves() const;  // NodeHost::recent_moves
  // How this node's linearizable reads were ordered (GET /metrics, docs/metrics.md).
  struct ReadStats {
    uint64_t rounds = 0;         // confirmation rounds run as owner (lease renewals included)
    uint64_t lease_grants = 0;   // a Q2 granted (or renewed) this owner's read lease
    uint64_t prepares_held = 0;  // Prepares this acceptor held until a lease it granted ended
    uint64_t local = 0;          // reads answered on the client thread (LocalReads)
    uint64_t replica_lease = 0;  // reads answered from this replica under a replica lease
    uint64_t replica_lease_grants = 0;  // replica read leases this owner granted or renewed
    uint64_t replica_lease_refusals = 0;  // asks for one this owner refused (AUTO)
  };
  ReadStats reads() const;
  struct ObjectStats {
    size_t held = 0;     // consensus objects (tables) this node holds
    size_t at_rest = 0;  // of them, idle ones kept in their compact form
    uint64_t rested = 0;  // times an object went to rest (only grows)
  };
  ObjectStats objects() const;
  uint64_t readies() const;
  // Ticks not run because the node thread fell behind the clock (overload).
  uint64_t ticks_skipped() const;

 private:
  class IO;
  struct Stats {
    consensus::ClusterConfig membership, previous;  // set by IO::MembershipChanged
    OwnershipStats ownership;
    std::vector<OwnershipMove> moves;
    uint64_t moves_version = 0;
    ReadStats reads;
    ObjectStats objects;
    uint64_t readies = 0, ticks_skipped = 0;
  };
  explicit NodeLoop(NodeLoopOptions options);

  // Runs `fn` on the node thread; false (and `fn` not run) when the queue is full or stopping.
  bool Post(size_t bytes, std::function<void()> fn);
  // Pipelined syncs: the syncer thread runs Store::Sync whenever the host asks for one and
  // hands the result to NodeHost::Synced (through the queue, past its limits: the node cannot
  // stop or make progress without it).
  void RequestSync(bool overlap);
  void SyncLoop();
  void SyncAndPost();  // Store::Sync, then NodeHost::Synced through the queue
  void Run();
  // Moves the timers due by `now_ms` (all of them when stopping) into `batch`.
  void TakeDueTimers(int64_t now_ms, std::deque<std::pair<size_t, std::function<void()>>>& batch)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // `backlog`: the batch's queued bytes (the events' sum, timers weigh nothing).
  void Pass(std::deque<std::pair<size_t, std::function<void()>>>& batch, uint64_t backlog);
  void PublishStats();

  NodeLoopOptions options_;
  std::unique_ptr<IO> io_;
  std::unique_ptr<NodeHost> host_;  // node thread only
  std::shared_ptr<const LocalReads> local_reads_;  // the host's; set before the thread starts
  std::atomic<uint64_t> local_reads_answered_{0};
  std::atomic<bool> may_own_;
  int64_t last_skip_warning_ms_ = 0;  // node thread

  mutable absl::Mutex mu_;
  std::deque<std::pair<size_t, std::function<void()>>> events_ ABSL_GUARDED_BY(mu_);
  size_t events_bytes_ ABSL_GUARDED_BY(mu_) = 0;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::multimap<int64_t, std::function<void()>> timers_ ABSL_GUARDED_BY(mu_);  // by due ms

  mutable absl::Mutex stats_mu_;
  Stats stats_ ABSL_GUARDED_BY(stats_mu_);
  std::thread thread_;

  storage::Store* store_ = nullptr;
  absl::Mutex sync_mu_;
  bool sync_wanted_ ABSL_GUARDED_BY(sync_mu_) = false;
  bool sync_stop_ ABSL_GUARDED_BY(sync_mu_) = false;
  std::thread sync_thread_;
};

}  // namespace atlas
