#include "atlasd/node/node_loop.h"

#include <pthread.h>

#include <algorithm>

#include "atlasd/failpoint.h"
#include "atlasd/fatal.h"
#include "socketproto/str.h"
#include "spdlog/spdlog.h"

namespace atlas {
namespace {

// The node thread's clock is the one leases are judged by (a read checks it on the client
// thread that parsed it).
int64_t MonotonicMs() { return LeaseClockMs(); }

int64_t WallUs() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// What a received message weighs in the queue: its values and snapshot bytes.
size_t WeightOf(const consensus::Message& m) {
  size_t bytes = m.object.size() + m.snapshot.size() + m.anchor_config.size();
  for (const consensus::Command& c : m.commands) bytes += c.data.size();
  for (const consensus::SlotEntry& e : m.entries) {
    for (const consensus::Command& c : e.entry.value) bytes += c.data.size();
  }
  return bytes;
}

// A request's share of the queue's byte limit beyond its payload (the closure, the bookkeeping).
constexpr size_t kEventOverheadBytes = 256;

}  // namespace

// The host's world in the daemon: the peer transport, the cluster runtime, the WatchHub, and
// failpoints (which kill the process; they never return).
class NodeLoop::IO final : public HostIO {
 public:
  explicit IO(NodeLoop* loop) : loop_(loop), options_(&loop->options_) {}
  void Send(std::vector<consensus::Message> messages) override {
    if (options_->send) {
      options_->send(std::move(messages));
    } else {
      spdlog::debug("dropping {} messages: no peer transport", messages.size());
    }
  }
  void MembershipChanged(const consensus::ClusterConfig& current,
                         const consensus::ClusterConfig& previous) override {
    {
      // Before the callback: what it starts (a join's answer) reads these copies.
      absl::MutexLock lock(&loop_->stats_mu_);
      loop_->stats_.membership = current;
      loop_->stats_.previous = previous;
    }
    if (options_->on_membership) options_->on_membership(current);
  }
  void TablesChanged(std::vector<std::pair<std::string, uint64_t>> changes,
                     bool everything) override {
    if (options_->on_changes) options_->on_changes(std::move(changes), everything);
  }
  bool Crash(const char* point) override {
    failpoint::Hit(point);
    return false;
  }
  void RequestSync(bool overlap) override { loop_->RequestSync(overlap); }

 private:
  NodeLoop* loop_;
  const NodeLoopOptions* options_;
};

absl::StatusOr<std::unique_ptr<NodeLoop>> NodeLoop::Start(storage::Store* store,
                                                          NodeLoopOptions options) {
  auto loop = std::unique_ptr<NodeLoop>(new NodeLoop(std::move(options)));
  NodeHostOptions host_options = loop->options_.host;
  host_options.tick_ms = loop->options_.tick.count();
  host_options.start_wall_us = static_cast<uint64_t>(WallUs());
  auto host = NodeHost::Start(store, loop->io_.get(), std::move(host_options));
  if (!host.ok()) return host.status();
  loop->host_ = std::move(*host);
  loop->local_reads_ = loop->host_->local_reads();
  loop->store_ = store;
  loop->PublishStats();
  loop->sync_thread_ = std::thread([l = loop.get()] {
    pthread_setname_np(pthread_self(), "atlas-sync");
    l->SyncLoop();
  });
  loop->thread_ = std::thread([l = loop.get()] {
    pthread_setname_np(pthread_self(), "atlas-node");  // for top -H, perf and gdb
    l->Run();
  });
  return loop;
}

NodeLoop::NodeLoop(NodeLoopOptions options)
    : options_(std::move(options)),
      io_(std::make_unique<IO>(this)),
      may_own_(options_.host.may_own) {}

NodeLoop::~NodeLoop() { Shutdown(); }

bool NodeLoop::Post(size_t bytes, std::function<void()> fn) {
  bytes += kEventOverheadBytes;
  absl::MutexLock lock(&mu_);
  if (stopping_ || events_.size() >= options_.queue_events_max ||
      events_bytes_ + bytes > options_.queue_bytes_max) {
    return false;
  }
  events_bytes_ += bytes;
  events_.emplace_back(bytes, std::move(fn));
  return true;
}

void NodeLoop::Run() {
  std::deque<std::pair<size_t, std::function<void()>>> batch;
  uint64_t batch_bytes = 0;
  for (;;) {
    const int64_t host_wake_ms = host_->NextWorkAtMs();
    {
      absl::MutexLock lock(&mu_);
      const int64_t wake_ms =
          timers_.empty() ? host_wake_ms : std::min(host_wake_ms, timers_.begin()->first);
      // A timer set meanwhile for earlier than `wake_ms` wakes the thread too.
      auto woken = [this, wake_ms]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return stopping_ || !events_.empty() ||
               (!timers_.empty() && timers_.begin()->first < wake_ms);
      };
      const int64_t sleep_ms = wake_ms - MonotonicMs();
      if (sleep_ms > 0) {
        mu_.AwaitWithTimeout(absl::Condition(&woken), absl::Milliseconds(sleep_ms));
      }
      // On shutdown, finish what was queued (in-flight commands commit or fail) and stop.
      if (stopping_ && events_.empty() && timers_.empty() && host_->Idle()) return;
      batch.swap(events_);
      batch_bytes = events_bytes_;
      events_bytes_ = 0;
      TakeDueTimers(MonotonicMs(), batch);
    }
    Pass(batch, batch_bytes);
  }
}

void NodeLoop::TakeDueTimers(int64_t now_ms,
                             std::deque<std::pair<size_t, std::function<void()>>>& batch) {
  auto end = stopping_ ? timers_.end() : timers_.upper_bound(now_ms);
  for (auto it = timers_.begin(); it != end; ++it) batch.emplace_back(0, std::move(it->second));
  timers_.erase(timers_.begin(), end);
}

void NodeLoop::Pass(std::deque<std::pair<size_t, std::function<void()>>>& batch,
                    uint64_t backlog) {
  host_->SetBacklog(backlog);  // before the ticks: their catch-up retries look at it
  const uint64_t skipped = host_->ticks_skipped();
  host_->SetTime(MonotonicMs(), WallUs() / 1000, may_own_.load());
  if (host_->ticks_skipped() != skipped && MonotonicMs() - last_skip_warning_ms_ > 10'000) {
    last_skip_warning_ms_ = MonotonicMs();
    spdlog::warn("node thread behind the clock: {} tick(s) skipped so far (overloaded; "
                 "timeouts stretch accordingly)",
                 host_->ticks_skipped());
  }
  size_t since_ready = 0;
  for (auto& [bytes, fn] : batch) {
    backlog -= bytes;
    host_->SetBacklog(backlog);
    fn();
    since_ready += bytes;
    if (since_ready >= options_.ready_event_bytes_max) {
      host_->ProcessReady();
      since_ready = 0;
    }
  }
  batch.clear();
  host_->ProcessReady();
  PublishStats();
}

void NodeLoop::PublishStats() {
  absl::MutexLock lock(&stats_mu_);
  stats_.ownership = host_->ownership();
  if (stats_.moves_version != host_->moves_version()) {
    stats_.moves_version = host_->moves_version();
    stats_.moves.assign(host_->recent_moves().begin(), host_->recent_moves().end());
  }
  const consensus::Probes& p = host_->replica().probes();
  stats_.reads.rounds = p.read_rounds;
  stats_.reads.lease_grants = p.leases_granted;
  stats_.reads.prepares_held = p.prepares_held;
  stats_.reads.replica_lease = p.reads_on_holder_lease;
  stats_.reads.replica_lease_grants = p.holders_granted;
  stats_.reads.replica_lease_refusals = p.holders_refused;
  stats_.readies = host_->readies();
  stats_.ticks_skipped = host_->ticks_skipped();
  stats_.objects = {host_->replica().ObjectCount(), host_->replica().ObjectsAtRest(),
                    p.objects_rested};
}

void NodeLoop::Propose(proto::Command cmd, Done done) {
  auto shared_done = std::make_shared<Done>(std::move(done));
  const size_t bytes = cmd.ByteSizeLong();
  bool posted = Post(bytes, [this, cmd = std::move(cmd), shared_done]() mutable {
    host_->Propose(std::move(cmd), std::move(*shared_done));
  });
  if (!posted) {
    ApplyResult r;
    r.ok = false;
    r.error = "overloaded: replication queue full, retry later";
    (*shared_done)(std::move(r));
  }
}

void NodeLoop::ReadBarrier(const std::string& table, const std::string& key,
                           std::function<void(absl::Status)> done) {
  auto shared_done = std::make_shared<std::function<void(absl::Status)>>(std::move(done));
  bool posted = Post(table.size() + key.size(), [this, table, key, shared_done] {
    host_->ReadBarrier(table, key, std::move(*shared_done));
  });
  if (!posted) (*shared_done)(absl::UnavailableError("overloaded: replication queue full"));
}

bool NodeLoop::ReadsLocally(const std::string& table) {
  switch (local_reads_->Check(table, LeaseClockMs())) {
    case LocalReads::Answer::kBarrier: return false;
    case LocalReads::Answer::kLocal:
      local_reads_answered_.fetch_add(1, std::memory_order_relaxed);
      return true;
    case LocalReads::Answer::kLocalAndRenew:
      local_reads_answered_.fetch_add(1, std::memory_order_relaxed);
      // The lease is past its middle: a barrier read in the background renews it, so that
      // reads that keep coming never wait for the round.
      ReadBarrier(table, "", [](absl::Status) {});
      return true;
  }
  return false;
}

void NodeLoop::Ping(std::function<void()> done) {
  auto shared_done = std::make_shared<std::function<void()>>(std::move(done));
  if (!Post(0, [shared_done] { (*shared_done)(); })) (*shared_done)();
}

void NodeLoop::Describe(const std::string& table, std::function<void(ObjectInfo)> done) {
  auto shared_done = std::make_shared<std::function<void(ObjectInfo)>>(std::move(done));
  bool posted = Post(table.size(), [this, table, shared_done] {
    (*shared_done)(host_->Describe(table));
  });
  if (!posted) (*shared_done)(ObjectInfo{});
}

void NodeLoop::Deliver(std::vector<consensus::Message> messages) {
  // A full queue drops a part like a lossy network would; WPaxos retransmits. A large batch
  // (catch-up bursts) is queued in parts of about ready_event_bytes_max, so that Pass makes a
  // Ready between them.
  std::vector<consensus::Message> part;
  size_t bytes = 0;
  auto post = [&] {
    Post(bytes, [this, ms = std::move(part)] {
      for (const consensus::Message& m : ms) host_->Deliver(m);
    });
    part.clear();
    bytes = 0;
  };
  for (consensus::Message& m : messages) {
    const size_t weight = WeightOf(m);
    if (!part.empty() && bytes + weight > options_.ready_event_bytes_max) post();
    bytes += weight;
    part.push_back(std::move(m));
  }
  if (!part.empty()) post();
}

void NodeLoop::ProposeMembership(std::string command, MembershipDone done) {
  auto shared_done = std::make_shared<MembershipDone>(std::move(done));
  const size_t bytes = command.size();
  bool posted = Post(bytes, [this, command = std::move(command), shared_done]() mutable {
    host_->ProposeMembership(std::move(command), std::move(*shared_done));
  });
  if (!posted) (*shared_done)(absl::UnavailableError("overloaded: replication queue full"));
}

bool NodeLoop::Inspect(std::function<void(const consensus::Replica&)> fn) {
  return Post(0, [this, fn = std::move(fn)] { fn(host_->replica()); });
}

void NodeLoop::Move(const std::string& table, consensus::NodeId target) {
  Post(table.size(), [this, table, target] { host_->Move(table, target); });
}

bool NodeLoop::After(std::chrono::milliseconds delay, std::function<void()> fn) {
  absl::MutexLock lock(&mu_);
  if (stopping_ || timers_.size() >= options_.timers_max) return false;
  // +1: the clock is read in whole ms, and a timer must never run before `delay` passed.
  timers_.emplace(MonotonicMs() + delay.count() + 1, std::move(fn));
  return true;
}

void NodeLoop::SetMayOwn(bool may_own) {
  if (may_own_.exchange(may_own) == may_own) return;
  Post(0, [] {});  // wake the node thread: it hands the clock to the host on every pass
}

void NodeLoop::Shutdown() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  // The node thread stops once idle, which takes the syncs of its last Readies: the syncer
  // stops after it.
  if (thread_.joinable()) thread_.join();
  {
    absl::MutexLock lock(&sync_mu_);
    sync_stop_ = true;
  }
  if (sync_thread_.joinable()) sync_thread_.join();
}

void NodeLoop::RequestSync(bool overlap) {
  bool idle = false;
  if (!overlap) {
    absl::MutexLock lock(&mu_);
    idle = events_.empty();
  }
  if (idle) {
    // Nothing to prepare meanwhile: sync here, as without pipelining, and save the two thread
    // hand-offs of the syncer (one client's write waits for them).
    SyncAndPost();
    return;
  }
  absl::MutexLock lock(&sync_mu_);
  sync_wanted_ = true;
}

void NodeLoop::SyncLoop() {
  for (;;) {
    {
      absl::MutexLock lock(&sync_mu_);
      auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(sync_mu_) {
        return sync_wanted_ || sync_stop_;
      };
      sync_mu_.Await(absl::Condition(&ready));
      if (!sync_wanted_) return;  // stopping, nothing asked
      sync_wanted_ = false;
    }
    SyncAndPost();
  }
}

void NodeLoop::SyncAndPost() {
  absl::StatusOr<uint64_t> through = store_->Sync();
  // After a failed fsync the disk state is unknown: never acknowledge on it.
  if (!through.ok()) Fatal(StrCat("syncing consensus state failed: ", through.status().ToString()));
  // Past the queue's limits: the node can neither stop nor make progress without it. Synced
  // runs on the node thread's next pass.
  absl::MutexLock lock(&mu_);
  events_.emplace_back(0, [this, n = *through] { host_->Synced(n); });
}

consensus::ClusterConfig NodeLoop::Membership() const {
  absl::MutexLock lock(&stats_mu_);
  return stats_.membership;
}

consensus::ClusterConfig NodeLoop::PreviousMembership() const {
  absl::MutexLock lock(&stats_mu_);
  return stats_.previous;
}

OwnershipStats NodeLoop::ownership() const {
  absl::MutexLock lock(&stats_mu_);
  return stats_.ownership;
}

std::vector<OwnershipMove> NodeLoop::recent_moves() const {
  absl::MutexLock lock(&stats_mu_);
  return stats_.moves;
}

NodeLoop::ReadStats NodeLoop::reads() const {
  ReadStats r;
  {
    absl::MutexLock lock(&stats_mu_);
    r = stats_.reads;
  }
  r.local = local_reads_answered_.load(std::memory_order_relaxed);
  return r;
}

uint64_t NodeLoop::readies() const {
  absl::MutexLock lock(&stats_mu_);
  return stats_.readies;
}

NodeLoop::ObjectStats NodeLoop::objects() const {
  absl::MutexLock lock(&stats_mu_);
  return stats_.objects;
}

uint64_t NodeLoop::ticks_skipped() const {
  absl::MutexLock lock(&stats_mu_);
  return stats_.ticks_skipped;
}

}  // namespace atlas
