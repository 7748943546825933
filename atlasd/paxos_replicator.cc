#include "atlasd/paxos_replicator.h"

#include <cstdio>
#include <cstdlib>

#include "absl/strings/numbers.h"
#include "atlasd/cluster/members.h"
#include "atlasd/failpoint.h"
#include "atlasd/logging.h"
#include "socketproto/str.h"
#include "spdlog/spdlog.h"
#include "storage/keys.h"
#include "storage/paxos_state.h"

namespace atlas {

// The application side of snapshots: an object's state in RocksDB *is* its snapshot, taken as
// of the object's durable commit index (written in the same batch as every apply).
// `atlas.nodes` is the exception: its state is the ClusterConfig, kept in node metadata.
class PaxosReplicator::Snapshots final : public consensus::SnapshotSource {
 public:
  Snapshots(StateMachine* sm, const consensus::ClusterConfig* membership)
      : sm_(sm), membership_(membership) {}
  std::optional<consensus::Snapshot> LatestSnapshot(const consensus::ObjectId& object) override {
    consensus::Snapshot snap;
    snap.slot = sm_->CommitIndex(object, nullptr);
    // While the Replica is constructed only the slot is needed; building every table's bytes
    // there would read the whole database at start-up.
    if (slot_only_) return snap;
    snap.data = object == consensus::kMembershipObject
                    ? consensus::EncodeClusterConfig(*membership_)
                    : sm_->SnapshotObject(object);
    return snap;
  }
  bool slot_only_ = true;

 private:
  StateMachine* sm_;
  const consensus::ClusterConfig* membership_;  // the node thread's applied membership
};

namespace {
// Ticks run in one wake-up of the node thread at most (see Run).
constexpr int kTicksPerWakeupMax = 4;
// A command that reached a log which no longer (or not yet) governs its table is retried with
// the newer routing this many times, backing off from 5 ms to 320 ms (~2.5 s in all).
constexpr int kMoveRetries = 10;
std::chrono::milliseconds MoveBackoff(int attempt) {
  return std::chrono::milliseconds(5 << std::min(attempt, 6));
}

const std::string kMembershipKey = storage::NodeMetaKey("cluster_config");
const std::string kPreviousMembershipKey = storage::NodeMetaKey("cluster_config_previous");
}  // namespace

absl::StatusOr<std::unique_ptr<PaxosReplicator>> PaxosReplicator::Start(
    storage::Store* store, PaxosReplicatorOptions options) {
  auto state = storage::LoadPersistentState(store);
  if (!state.ok()) return state.status();
  auto r = std::unique_ptr<PaxosReplicator>(new PaxosReplicator(store, options));
  for (const auto& [object, hard] : *state) r->truncated_[object] = hard.truncated_through;

  // The membership: the replicated copy if this node has one, else the starting one (persisted
  // now, so that a restart never depends on how the node was first started).
  auto stored = store->Get(storage::Cf::kMeta, kMembershipKey);
  if (!stored.ok()) return stored.status();
  auto stored_previous = store->Get(storage::Cf::kMeta, kPreviousMembershipKey);
  if (!stored_previous.ok()) return stored_previous.status();
  if (stored->has_value()) {
    auto decoded = consensus::DecodeClusterConfig(**stored);
    if (!decoded.ok()) return decoded.status();
    r->membership_ = *decoded;
    if (stored_previous->has_value()) {
      auto previous = consensus::DecodeClusterConfig(**stored_previous);
      if (!previous.ok()) return previous.status();
      r->previous_ = *previous;
    }
  } else {
    r->membership_ = options.membership;
    if (r->membership_.members.empty()) {
      r->membership_.epoch = 1;
      r->membership_.next_id = options.node_id + 1;
      r->membership_.quorum = options.quorum;
      r->membership_.members[options.node_id] = {options.node_id, 1, ""};
    }
    rocksdb::WriteBatch batch;
    batch.Put(store->cf(storage::Cf::kMeta), kMembershipKey,
              consensus::EncodeClusterConfig(r->membership_));
    if (options.previous_membership && options.previous_membership->epoch > 0) {
      r->previous_ = *options.previous_membership;
      batch.Put(store->cf(storage::Cf::kMeta), kPreviousMembershipKey,
                consensus::EncodeClusterConfig(r->previous_));
    }
    if (absl::Status s = store->Write(&batch, /*sync=*/true); !s.ok()) return s;
  }
  r->shared_membership_ = r->membership_;
  r->shared_previous_ = r->previous_;

  consensus::ReplicaConfig config;
  config.id = options.node_id;
  // Grows across restarts (next_seq_ is the start time in µs): forwards of this incarnation are
  // never taken for duplicates of the last one's.
  config.forward_seq_base = r->next_seq_;
  config.epoch = r->membership_.epoch;
  config.topology = r->TopologyOf(r->membership_);
  config.quorum = r->membership_.quorum;
  // Tick counts for a 5 ms tick: heartbeats 250 ms (4 per peer timeout; each costs every peer
  // a message, the bulk of an idle node's CPU), peers suspect after 1 s, resend after 200 ms,
  // client requests time out after 10 s.
  const int64_t per_second = 1000 / std::max<int64_t>(1, options.tick.count());
  config.heartbeat_ticks = per_second / 4;
  config.peer_timeout_ticks = per_second;
  config.resend_ticks = per_second / 5;
  config.request_timeout_ticks = 10 * per_second;
  config.steal_backoff_ticks = per_second / 10;
  // Half-second windows: a table follows a new hot zone about a second after the shift (two
  // windows of 2x dominance), while an even split between zones never reaches 2x.
  consensus::AccessCountingPolicy::Options policy_options;
  policy_options.window_ticks = per_second / 2;
  auto policy = std::make_unique<consensus::AccessCountingPolicy>(policy_options);
  r->policy_ = policy.get();
  // TABLE PIN survives restarts: pinned tables are kept out of automatic moves again.
  {
    const std::string prefix("t\0", 2);
    std::unique_ptr<rocksdb::Iterator> it(
        store->db()->NewIterator(rocksdb::ReadOptions(), store->cf(storage::Cf::kMeta)));
    for (it->Seek(prefix); it->Valid() && it->key().starts_with(prefix); it->Next()) {
      std::string_view k = it->key().ToStringView();
      if (k.size() <= 8 || k.substr(k.size() - 6) != std::string_view("\0state", 6)) continue;
      auto st = storage::DecodeTableState(it->value().ToStringView());
      if (!st || st->pinned_region.empty()) continue;
      r->Pin(std::string(k.substr(2, k.size() - 8)), st->pinned_region);
    }
  }
  r->replica_ = std::make_unique<consensus::Replica>(
      config, std::move(*state), r->snapshots_.get(), std::move(policy),
      /*seed=*/options.node_id);
  r->snapshots_->slot_only_ = false;
  // The configuration before the latest one: joint quorums of a change still settling use it.
  if (r->previous_.epoch > 0 && r->previous_.epoch < r->membership_.epoch) {
    r->replica_->SetConfig(r->previous_.epoch, r->TopologyOf(r->previous_),
                           r->previous_.quorum);
  }
  if (options.on_membership) options.on_membership(r->membership_);
  r->thread_ = std::thread([p = r.get()] { p->Run(); });
  return r;
}

// The core names zones by number; operators know them by region ("zone 3107 has 0/1" becomes
// "zone eu-west has 0/1").
std::string PaxosReplicator::NameZones(const std::string& text) const {
  std::string out;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t z = text.find("zone ", pos);
    if (z == std::string::npos) break;
    size_t d = z + 5, e = d;
    while (e < text.size() && text[e] >= '0' && text[e] <= '9') ++e;
    out.append(text, pos, d - pos);
    pos = d;
    if (e == d) continue;
    uint64_t zone = 0;
    std::string region;
    if (absl::SimpleAtoi(text.substr(d, e - d), &zone)) {
      for (const auto& [id, m] : membership_.members) {
        if (m.zone != zone) continue;
        if (auto a = cluster::DecodeMemberAddress(m.address)) region = a->region;
      }
    }
    out.append(region.empty() ? text.substr(d, e - d) : region);
    pos = e;
  }
  out.append(text, pos, std::string::npos);
  return out;
}

// TABLE PIN: the automatic migration policy moves a pinned object only within its region's
// zone (explicit TABLE MOVE still works); "" unpins.
void PaxosReplicator::Pin(const std::string& object, const std::string& region) {
  if (region.empty()) {
    policy_->Unrestrict(object);
  } else {
    policy_->RestrictZones(object, {cluster::ZoneOfRegion(region)});
  }
}

consensus::Topology PaxosReplicator::TopologyOf(const consensus::ClusterConfig& config) const {
  consensus::Topology t = config.ToTopology(options_.distance);
  if (t.zone_of.empty()) t.zone_of[options_.node_id] = 1;
  return t;
}

PaxosReplicator::PaxosReplicator(storage::Store* store, PaxosReplicatorOptions options)
    : store_(store),
      options_(options),
      state_machine_(store, options.change_history),
      snapshots_(std::make_unique<Snapshots>(&state_machine_, &membership_)),
      may_own_(options.may_own) {
  // Request ids must not repeat across restarts (the core deduplicates forwarded requests by
  // id), so the sequence starts from the wall clock in microseconds.
  next_seq_ = static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::microseconds>(
                                        std::chrono::system_clock::now().time_since_epoch())
                                        .count());
}

PaxosReplicator::~PaxosReplicator() { Shutdown(); }

bool PaxosReplicator::Post(std::function<void()> fn) {
  std::lock_guard<std::mutex> lock(mu_);
  if (stopping_ || events_.size() >= options_.queue_events_max) return false;
  events_.push_back(std::move(fn));
  cv_.notify_one();
  return true;
}

void PaxosReplicator::Propose(proto::Command cmd, Done done) {
  auto shared_done = std::make_shared<Done>(std::move(done));
  bool posted = Post([this, cmd = std::move(cmd), shared_done]() mutable {
    // The proposing node stamps the command; never decreasing, so WORM retention cannot be
    // shortened by a clock step backwards. Replicas judge retention by this stamp alone.
    auto now_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                      std::chrono::system_clock::now().time_since_epoch())
                      .count();
    last_timestamp_ms_ = std::max<int64_t>(last_timestamp_ms_, now_ms);
    cmd.set_timestamp_ms(last_timestamp_ms_);
    Submit(std::move(cmd), std::move(*shared_done), 0);
  });
  if (!posted) {
    ApplyResult r;
    r.ok = false;
    r.error = "overloaded: replication queue full, retry later";
    (*shared_done)(std::move(r));
  }
}

const StateMachine::Route& PaxosReplicator::RouteOf(const std::string& table) {
  auto it = routes_.find(table);
  if (it != routes_.end()) return it->second;
  if (routes_.size() >= 65536) routes_.clear();  // bounded; misses just read RocksDB
  return routes_.emplace(table, state_machine_.RouteOf(table)).first->second;
}

void PaxosReplicator::Submit(proto::Command cmd, Done done, int attempt, bool adopt) {
  const StateMachine::Route& route = RouteOf(cmd.table());
  std::string object = route.object;
  if (route.pending && !adopt) MaybeAdopt(cmd.table());
  consensus::RequestId id = NextRequestId();
  replica_->Propose(object, cmd.SerializeAsString(), id);
  writes_[id.seq] = PendingWrite{std::move(done), std::nullopt, std::move(cmd), attempt, adopt};
}

void PaxosReplicator::MaybeAdopt(const std::string& table) {
  if (adopting_.contains(table)) return;
  std::optional<proto::Command> adopt = state_machine_.BuildAdopt(table);
  if (!adopt) return;
  adopting_.insert(table);
  adopt->set_timestamp_ms(last_timestamp_ms_);
  Submit(std::move(*adopt), [](ApplyResult) {}, 0, /*adopt=*/true);
}

void PaxosReplicator::IssueRead(const std::string& table,
                                std::function<void(absl::Status)> done, int attempt) {
  const StateMachine::Route& route = RouteOf(table);
  std::string object = route.object;
  if (route.pending) MaybeAdopt(table);
  consensus::RequestId id = NextRequestId();
  reads_[id.seq] = PendingRead{std::move(done), table, object, attempt};
  replica_->Read(object, id);
}

void PaxosReplicator::After(std::chrono::milliseconds delay, std::function<void()> fn) {
  timers_.emplace_back(std::chrono::steady_clock::now() + delay, std::move(fn));
}

void PaxosReplicator::ReadBarrier(const std::string& table,
                                  std::function<void(absl::Status)> done) {
  auto shared_done = std::make_shared<std::function<void(absl::Status)>>(std::move(done));
  bool posted = Post([this, table, shared_done] { IssueRead(table, std::move(*shared_done), 0); });
  if (!posted) (*shared_done)(absl::UnavailableError("overloaded: replication queue full"));
}

void PaxosReplicator::Ping(std::function<void()> done) {
  auto shared_done = std::make_shared<std::function<void()>>(std::move(done));
  if (!Post([shared_done] { (*shared_done)(); })) (*shared_done)();
}

void PaxosReplicator::Describe(const std::string& table, std::function<void(ObjectInfo)> done) {
  auto shared_done = std::make_shared<std::function<void(ObjectInfo)>>(std::move(done));
  bool posted = Post([this, name = table, shared_done] {
    // A grouped table is described by its group's object.
    std::string table = RouteOf(name).object;
    ObjectInfo info;
    consensus::Ballot b = replica_->Promised(table);
    info.owner = replica_->IsOwner(table) ? options_.node_id : replica_->BelievedOwner(table);
    info.ballot = b.ToString();
    info.commit_index = replica_->CommitIndex(table);
    (*shared_done)(std::move(info));
  });
  if (!posted) (*shared_done)(ObjectInfo{});
}

void PaxosReplicator::ProposeMembership(
    std::string command, std::function<void(absl::StatusOr<MembershipResult>)> done) {
  auto shared_done =
      std::make_shared<std::function<void(absl::StatusOr<MembershipResult>)>>(std::move(done));
  bool posted = Post([this, command = std::move(command), shared_done]() mutable {
    consensus::RequestId id = NextRequestId();
    membership_writes_[id.seq] = PendingMembership{std::move(*shared_done), std::nullopt};
    replica_->Propose(consensus::kMembershipObject, std::move(command), id);
  });
  if (!posted) (*shared_done)(absl::UnavailableError("overloaded: replication queue full"));
}

consensus::ClusterConfig PaxosReplicator::Membership() const {
  std::lock_guard<std::mutex> lock(membership_mu_);
  return shared_membership_;
}

consensus::ClusterConfig PaxosReplicator::PreviousMembership() const {
  std::lock_guard<std::mutex> lock(membership_mu_);
  return shared_previous_;
}

bool PaxosReplicator::Inspect(std::function<void(const consensus::Replica&)> fn) {
  return Post([this, fn = std::move(fn)] { fn(*replica_); });
}

void PaxosReplicator::SetMayOwn(bool may_own) {
  if (may_own_.exchange(may_own) == may_own) return;
  Post([] {});  // wake the node thread: it hands the clock to the core on every pass
}

void PaxosReplicator::Move(const std::string& table, consensus::NodeId target) {
  Post([this, name = table, target] {
    std::string table = RouteOf(name).object;  // a grouped table moves with its group
    if (target == options_.node_id) {
      replica_->Steal(table);
    } else {
      replica_->Move(table, target);
    }
  });
}

absl::StatusOr<std::string> PaxosReplicator::ApplyMembership(const std::string& command,
                                                             int64_t stamp_ms,
                                                             rocksdb::WriteBatchWithIndex* wb) {
  consensus::ClusterConfig before = membership_;
  absl::StatusOr<std::string> result =
      consensus::ApplyMembershipCommand(membership_, command, stamp_ms);
  if (result.ok()) {
    wb->Put(store_->cf(storage::Cf::kMeta), kMembershipKey,
            consensus::EncodeClusterConfig(membership_));
    // Only a new configuration has a predecessor (token changes keep the epoch).
    if (membership_.epoch != before.epoch) {
      previous_ = std::move(before);
      wb->Put(store_->cf(storage::Cf::kMeta), kPreviousMembershipKey,
              consensus::EncodeClusterConfig(previous_));
    }
    membership_changed_ = true;
  }
  return result;
}

void PaxosReplicator::InstallMembership(const consensus::ClusterConfig& config) {
  {
    std::lock_guard<std::mutex> lock(membership_mu_);
    shared_membership_ = config;
    shared_previous_ = previous_;
  }
  replica_->SetConfig(config.epoch, TopologyOf(config), config.quorum);
  if (options_.on_membership) options_.on_membership(config);
}

void PaxosReplicator::Deliver(consensus::Message message) {
  // A full queue drops the message like a lossy network would; WPaxos retransmits.
  Post([this, m = std::move(message)] { replica_->Step(m); });
}

void PaxosReplicator::Shutdown() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
    cv_.notify_all();
  }
  if (thread_.joinable()) thread_.join();
}

void PaxosReplicator::Run() {
  auto next_tick = std::chrono::steady_clock::now() + options_.tick;
  auto last_skip_warning = std::chrono::steady_clock::time_point{};
  std::deque<std::function<void()>> batch;
  for (;;) {
    // An idle node sleeps until its next heartbeat instead of waking every tick (15 idle
    // daemons on 2 cores spent most of it switching threads); the ticks it slept through run
    // on waking, before any new event, so the core's clock is right when the event lands.
    const bool quiet = timers_.empty() && !replica_->HasReady() && replica_->Quiet();
    auto wake = next_tick;
    if (quiet) wake += (replica_->TicksToHeartbeat() - 1) * options_.tick;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait_until(lock, wake, [this] { return stopping_ || !events_.empty(); });
      // On shutdown, finish what was queued (in-flight commands commit or fail) and stop.
      if (stopping_ && events_.empty() && writes_.empty() && reads_.empty() &&
          membership_writes_.empty() && timers_.empty()) {
        return;
      }
      batch.swap(events_);
    }
    replica_->SetClock(std::chrono::duration_cast<std::chrono::milliseconds>(
                           std::chrono::system_clock::now().time_since_epoch())
                           .count(),
                       may_own_.load());
    if (quiet) {
      // Quiet ticks only count time (and send the heartbeat when it is due): cheap, uncapped.
      const auto now = std::chrono::steady_clock::now();
      while (now >= next_tick && replica_->Quiet()) {
        replica_->Tick();
        next_tick += options_.tick;
      }
    }
    for (auto& fn : batch) fn();
    batch.clear();
    if (!timers_.empty()) {
      auto now = std::chrono::steady_clock::now();
      std::vector<std::function<void()>> due;
      std::erase_if(timers_, [&](auto& t) {
        if (t.first > now) return false;
        due.push_back(std::move(t.second));
        return true;
      });
      for (auto& fn : due) fn();
    }
    // Catch up on missed ticks, but not without bound: if Ticks fall behind the clock (an
    // overloaded node thread), logical time runs slower rather than the thread doing nothing
    // but Ticks. The core's timeouts are in ticks, and its safety never depends on time.
    auto now = std::chrono::steady_clock::now();
    for (int n = 0; now >= next_tick; ++n) {
      if (n == kTicksPerWakeupMax) {
        ticks_skipped_ += (now - next_tick) / options_.tick + 1;
        next_tick = now + options_.tick;
        if (now - last_skip_warning > std::chrono::seconds(10)) {
          last_skip_warning = now;
          spdlog::warn("node thread behind the clock: {} tick(s) skipped so far (overloaded; "
                       "timeouts stretch accordingly)",
                       ticks_skipped_.load());
        }
        break;
      }
      replica_->Tick();
      next_tick += options_.tick;
    }
    ProcessReady();
  }
}

PaxosReplicator::OwnershipStats PaxosReplicator::ownership() const {
  return {owned_.load(), phase1_started_.load(), elected_.load(), preempted_.load(),
          stepped_down_.load(), moves_suggested_.load()};
}

void PaxosReplicator::NoteOwnership(const consensus::OwnershipEvent& e) {
  using Kind = consensus::OwnershipEventKind;
  const bool counted = e.object != consensus::kMembershipObject;
  const char* what = consensus::OwnershipEventName(e.kind);
  switch (e.kind) {
    case Kind::kPhase1Started:
      ++phase1_started_;
      if (e.reason == consensus::StealReason::kRequest) {
        LogEvent(spdlog::level::debug, what,
                 {{"table", e.object}, {"ballot", e.ballot.ToString()},
                  {"reason", consensus::StealReasonName(e.reason)},
                  {"request", e.request.ToString()}});
      } else {
        LogEvent(spdlog::level::debug, what,
                 {{"table", e.object}, {"ballot", e.ballot.ToString()},
                  {"reason", consensus::StealReasonName(e.reason)}});
      }
      break;
    case Kind::kElected:
      ++elected_;
      if (counted) ++owned_;
      LogEvent(spdlog::level::info, what,
               {{"table", e.object}, {"ballot", e.ballot.ToString()},
                {"first_slot", std::to_string(e.slot)}});
      break;
    case Kind::kPreempted:
      ++preempted_;
      LogEvent(spdlog::level::debug, what,
               {{"table", e.object}, {"ballot", e.ballot.ToString()},
                {"by_ballot", e.other.ToString()}});
      break;
    case Kind::kSteppedDown:
      ++stepped_down_;
      if (counted) --owned_;
      LogEvent(spdlog::level::info, what,
               {{"table", e.object}, {"ballot", e.ballot.ToString()},
                {"by_ballot", e.other.ToString()}});
      break;
    case Kind::kMoveSuggested:
      ++moves_suggested_;
      LogEvent(spdlog::level::info, what,
               {{"table", e.object}, {"ballot", e.ballot.ToString()},
                {"to_node", std::to_string(e.target)}});
      break;
  }
}

void PaxosReplicator::ProcessReady() {
  while (replica_->HasReady()) {
    consensus::Ready rd = replica_->TakeReady();
    ++readies_;
    rocksdb::WriteBatchWithIndex wb(rocksdb::BytewiseComparator(), 0, /*overwrite_key=*/true);
    std::vector<std::pair<std::string, uint64_t>> changes;  // for WATCH, once durable
    bool everything_changed = !rd.snapshots.empty();
    for (const auto& [object, snap] : rd.snapshots) {
      if (object == consensus::kMembershipObject) {
        auto config = consensus::DecodeClusterConfig(snap.data);
        if (!config.ok()) {
          std::fprintf(stderr, "FATAL: undecodable membership snapshot\n");
          std::abort();
        }
        if (config->epoch > membership_.epoch) {
          previous_ = membership_;
          wb.Put(store_->cf(storage::Cf::kMeta), kPreviousMembershipKey,
                 consensus::EncodeClusterConfig(previous_));
        }
        membership_ = *config;
        membership_changed_ = true;
        wb.Put(store_->cf(storage::Cf::kMeta), kMembershipKey, snap.data);
        state_machine_.MarkApplied(object, snap.slot, &wb);
        continue;
      }
      routes_.clear();
      if (!state_machine_.InstallObjectSnapshot(object, snap.data, snap.slot, &wb)) {
        std::fprintf(stderr, "FATAL: undecodable snapshot of %s\n", object.c_str());
        std::abort();
      }
      failpoint::Hit("snapshot-install");
    }
    for (const consensus::HardStateUpdate& u : rd.persist) {
      consensus::Slot& truncated = truncated_[u.object];
      storage::AddHardStateUpdate(store_, u, truncated, &wb);
      truncated = std::max(truncated, u.truncated_through);
    }
    for (const consensus::CommittedEntry& e : rd.committed) {
      if (e.commands.empty() || e.object == consensus::kMembershipObject) {
        state_machine_.MarkApplied(e.object, e.slot, &wb);
      }
      if (e.object == consensus::kMembershipObject) {
        for (const consensus::Command& c : e.commands) {
          absl::StatusOr<std::string> r = ApplyMembership(c.data, c.stamp_ms, &wb);
          // Every node applies (and refuses) the same commands; the proposer reports it.
          if (!r.ok()) spdlog::debug("membership change refused: {}", r.status().message());
          if (c.id.node != options_.node_id) continue;
          auto it = membership_writes_.find(c.id.seq);
          if (it != membership_writes_.end()) it->second.result = std::move(r);
        }
        continue;
      }
      for (const consensus::Command& c : e.commands) {
        proto::Command cmd;
        ApplyResult r;
        // A table's own object carries only its commands; a group's, its members'.
        if (!cmd.ParseFromString(c.data) ||
            (cmd.table() != e.object && !StateMachine::IsGroupObject(e.object))) {
          // Every replica fails the same undecodable command the same way.
          state_machine_.MarkApplied(e.object, e.slot, &wb);
          r = {false, "internal error: undecodable command", e.slot};
        } else {
          // Judged at the owner's stamp (docs/consensus.md §Time); unstamped entries (from a
          // node that predates stamps) keep the proposer's time.
          if (c.stamp_ms > 0) cmd.set_timestamp_ms(c.stamp_ms);
          if (cmd.has_placement() || cmd.has_adopt()) routes_.erase(cmd.table());
          r = state_machine_.Apply(cmd, e.object, e.slot, &wb);
          if (r.table_revision > 0) changes.emplace_back(cmd.table(), r.table_revision);
          if (cmd.has_adopt()) everything_changed = true;
          if (r.ok && cmd.has_placement() && cmd.placement().has_pinned_region()) {
            Pin(e.object, cmd.placement().pinned_region());
          }
        }
        if (c.id.node == options_.node_id) {
          auto it = writes_.find(c.id.seq);
          if (it != writes_.end()) it->second.result = std::move(r);
        }
      }
    }
    if (wb.GetWriteBatch()->Count() > 0) {
      failpoint::Hit("ready-before-sync");
      absl::Status s = store_->Write(wb.GetWriteBatch(), options_.sync);
      if (!s.ok()) {
        // After a failed synced write the disk state is unknown: never acknowledge on it.
        std::fprintf(stderr, "FATAL: persisting consensus state failed: %s\n",
                     s.ToString().c_str());
        std::abort();
      }
      failpoint::Hit("ready-after-sync");
    }
    if (options_.on_changes && (!changes.empty() || everything_changed)) {
      options_.on_changes(std::move(changes), everything_changed);
    }
    if (membership_changed_) {
      membership_changed_ = false;
      spdlog::info("membership epoch {}: {} node(s), Fn={} Fz={}", membership_.epoch,
                   membership_.members.size(), membership_.quorum.fn, membership_.quorum.fz);
      InstallMembership(membership_);
    }
    for (const consensus::OwnershipEvent& e : rd.ownership) NoteOwnership(e);
    // Only now, with the Ready durable, may other nodes learn of its promises and accepts.
    if (!rd.messages.empty()) {
      if (options_.send) {
        options_.send(std::move(rd.messages));
        failpoint::Hit("ready-after-send");
      } else {
        spdlog::debug("dropping {} messages: no peer transport", rd.messages.size());
      }
    }
    for (const consensus::ReadState& rs : rd.reads) {
      auto it = reads_.find(rs.id.seq);
      if (it == reads_.end()) continue;
      PendingRead read = std::move(it->second);
      reads_.erase(it);
      // The barrier covers the object it ran on; the table must still be governed there (and
      // its adopt applied), else the read goes again to where the table is now.
      const StateMachine::Route& route = RouteOf(read.table);
      if (route.object == read.object && route.live) {
        read.done(absl::OkStatus());
      } else if (read.attempt < kMoveRetries) {
        After(MoveBackoff(read.attempt), [this, read = std::move(read)]() mutable {
          IssueRead(read.table, std::move(read.done), read.attempt + 1);
        });
      } else {
        read.done(absl::UnavailableError(
            StrCat("table '", read.table, "' is changing group; retry")));
      }
    }
    for (const consensus::Reply& reply : rd.replies) {
      std::string detail = NameZones(reply.detail.empty() ? reply.object : reply.detail);
      if (reply.code != consensus::ReplyCode::kOk) {
        LogEvent(spdlog::level::debug, reply.is_read ? "read failed" : "write failed",
                 {{"table", reply.object}, {"request", reply.id.ToString()},
                  {"code", consensus::ReplyCodeName(reply.code)},
                  {"outcome", reply.is_read || reply.definite ? "not executed" : "unknown"},
                  {"detail", detail}});
      }
      if (reply.is_read) {
        auto it = reads_.find(reply.id.seq);
        if (it == reads_.end()) continue;
        auto done = std::move(it->second.done);
        reads_.erase(it);
        switch (reply.code) {
          case consensus::ReplyCode::kOk: done(absl::OkStatus()); break;
          case consensus::ReplyCode::kTimeout:
            done(absl::DeadlineExceededError(StrCat("timeout: read of ", reply.object)));
            break;
          case consensus::ReplyCode::kQuorumUnavailable:
            // The core's detail already reads "quorum unavailable: <why>".
            done(absl::UnavailableError(detail));
            break;
          default:
            done(absl::UnavailableError(
                StrCat(consensus::ReplyCodeName(reply.code), ": ", detail)));
        }
        continue;
      }
      if (reply.object == consensus::kMembershipObject) {
        auto mit = membership_writes_.find(reply.id.seq);
        if (mit == membership_writes_.end()) continue;
        PendingMembership m = std::move(mit->second);
        membership_writes_.erase(mit);
        if (reply.code == consensus::ReplyCode::kOk && m.result) {
          if (m.result->ok()) {
            m.done(MembershipResult{**m.result, membership_});
          } else {
            m.done(m.result->status());
          }
        } else {
          m.done(absl::UnavailableError(
              StrCat("membership change not ordered: ", consensus::ReplyCodeName(reply.code),
                     reply.detail.empty() ? "" : StrCat(": ", reply.detail))));
        }
        continue;
      }
      auto it = writes_.find(reply.id.seq);
      if (it == writes_.end()) continue;
      PendingWrite w = std::move(it->second);
      writes_.erase(it);
      if (w.adopt) adopting_.erase(w.cmd.table());
      const bool applied = reply.code == consensus::ReplyCode::kOk && w.result.has_value();
      // An adopt is idempotent (only the first of its interval in a log counts), so it is
      // retried whatever stopped it, e.g. a forward rejected with an unknown outcome.
      if ((applied ? w.result->moved : w.adopt) && w.attempt < kMoveRetries) {
        // Refused without effect by a log that does not govern the table: the routing here
        // was stale (or the adopt is still on its way). Go again with the newer one.
        After(MoveBackoff(w.attempt), [this, w = std::move(w)]() mutable {
          auto now_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                            std::chrono::system_clock::now().time_since_epoch())
                            .count();
          last_timestamp_ms_ = std::max<int64_t>(last_timestamp_ms_, now_ms);
          w.cmd.set_timestamp_ms(last_timestamp_ms_);
          if (w.adopt) adopting_.insert(w.cmd.table());
          Submit(std::move(w.cmd), std::move(w.done), w.attempt + 1, w.adopt);
        });
        continue;
      }
      if (applied && w.result->ok && w.result->sealed && !w.adopt) {
        // TABLE GROUP sealed the table's old log; answer once the new log has adopted it.
        std::optional<proto::Command> adopt = state_machine_.BuildAdopt(w.cmd.table());
        if (adopt && !adopting_.contains(w.cmd.table())) {
          adopting_.insert(w.cmd.table());
          adopt->set_timestamp_ms(last_timestamp_ms_);
          std::string table = w.cmd.table();
          Submit(std::move(*adopt),
                 [done = std::move(w.done), table](ApplyResult r) {
                   if (!r.ok) {
                     r.error = StrCat("table '", table, "' left its old log but joining the new "
                                      "one did not complete (", r.error,
                                      "); the next command on it completes the move");
                   }
                   done(std::move(r));
                 },
                 0, /*adopt=*/true);
          continue;
        }
      }
      ApplyResult r;
      if (applied) {
        r = std::move(*w.result);
      } else {
        r.ok = false;
        switch (reply.code) {
          case consensus::ReplyCode::kTimeout:
            r.error = StrCat("timeout: write to ", reply.object,
                             reply.definite ? " (not applied)" : " (outcome unknown)");
            break;
          case consensus::ReplyCode::kQuorumUnavailable:
            r.error = detail;  // already "quorum unavailable: <why>"
            break;
          case consensus::ReplyCode::kBusy:
            r.error = StrCat("overloaded: ", detail);
            break;
          default:
            r.error = StrCat(consensus::ReplyCodeName(reply.code), ": ", detail);
        }
      }
      w.done(std::move(r));
    }
    replica_->Advance(rd);
  }
}

}  // namespace atlas
