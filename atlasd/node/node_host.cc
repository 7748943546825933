#include "atlasd/node/node_host.h"

#include <algorithm>

#include "absl/strings/numbers.h"
#include "atlasd/cluster/members.h"
#include "atlasd/fatal.h"
#include "atlasd/snapshot_stream.h"
#include "socketproto/str.h"
#include "spdlog/spdlog.h"
#include "storage/keys.h"
#include "storage/paxos_state.h"

namespace atlas {

// The application side of snapshots: an object's state in the store *is* its snapshot, taken as
// of the object's durable commit index (written in the same batch as every apply), and read
// for a transfer from a store snapshot a chunk at a time (atlasd/snapshot_stream.h).
// `atlas.nodes` is the exception: its state is the ClusterConfig, kept in node metadata.
// A snapshot a peer sends is staged in the store a chunk at a time (storage/keys.h) and read
// back twice in pieces to install (docs/storage.md §Snapshots): never held whole.
class NodeHost::Snapshots final : public consensus::SnapshotSource {
 public:
  Snapshots(storage::Store* store, StateMachine* sm, const MembershipState* membership,
            bool test_unpinned)
      : store_(store), sm_(sm), membership_(membership), test_unpinned_(test_unpinned) {}
  consensus::Slot LatestSnapshotSlot(const consensus::ObjectId& object) override {
    return sm_->CommitIndex(object, nullptr);
  }
  std::unique_ptr<consensus::SnapshotReader> OpenSnapshot(
      const consensus::ObjectId& object) override {
    if (object == consensus::kMembershipObject) {
      return std::make_unique<consensus::SnapshotBytes>(
          sm_->CommitIndex(object, nullptr), consensus::EncodeClusterConfig(membership_->current()));
    }
    return sm_->OpenObjectSnapshot(object, test_unpinned_);
  }
  // Unsynced: staged bytes are scratch until the Ready that installs them (which is synced).
  void StageChunk(const consensus::ObjectId& object, uint64_t offset,
                  std::string_view bytes) override {
    std::unique_ptr<storage::WriteSet> writes = store_->NewWriteSet();
    if (offset == 0) {
      DropStagedChunks(object, *writes);
      decoded_.erase(object);
    }
    writes->Put(storage::Cf::kMeta, storage::StagedChunkKey(object, offset), bytes);
    Commit(*writes);
  }
  bool StagedDecodes(const consensus::ObjectId& object, uint64_t total) override {
    std::unique_ptr<storage::Reader> reader = store_->BulkReader();
    StagedSnapshot staged(reader.get(), object);
    if (object == consensus::kMembershipObject) {
      std::string data = ReadWhole(staged);
      return data.size() == total && consensus::DecodeClusterConfig(data).ok();
    }
    std::optional<SnapshotHeads> heads = StateMachine::ReadSnapshotHeads(staged);
    if (!heads) return false;
    decoded_[object] = std::move(*heads);  // the install needs them: one pass fewer
    return true;
  }
  void DropStaged(const consensus::ObjectId& object) override {
    decoded_.erase(object);
    std::unique_ptr<storage::WriteSet> writes = store_->NewWriteSet();
    DropStagedChunks(object, *writes);
    Commit(*writes);
  }

  // What StagedDecodes read of the snapshot staged for `object`, if it is still held.
  std::optional<SnapshotHeads> TakeHeads(const consensus::ObjectId& object) {
    auto it = decoded_.find(object);
    if (it == decoded_.end()) return std::nullopt;
    SnapshotHeads heads = std::move(it->second);
    decoded_.erase(it);
    return heads;
  }

 private:
  void Commit(storage::WriteSet& writes) {
    if (absl::Status s = store_->Commit(writes, /*sync=*/false); !s.ok()) {
      Fatal(StrCat("staging a snapshot failed: ", s.ToString()));
    }
  }

  storage::Store* store_;
  StateMachine* sm_;
  const MembershipState* membership_;
  bool test_unpinned_;
  // Per object whose snapshot was checked and awaits its install (the next Ready's): a few
  // bytes per table.
  std::map<consensus::ObjectId, SnapshotHeads> decoded_;
};

std::optional<SnapshotHeads> NodeHost::DecodedHeads(const consensus::ObjectId& object) {
  return snapshots_->TakeHeads(object);
}

// The log column family, for the entries the core let go of once applied (consensus::LogSource):
// catch-up reads them from here, so RAM holds only what is not applied yet.
class NodeHost::Log final : public consensus::LogSource {
 public:
  // Entries read back are mostly catch-up's, read once: around the block cache.
  explicit Log(storage::Store* store) : reader_(store->BulkReader()) {}
  std::optional<consensus::LogEntry> Entry(const consensus::ObjectId& object,
                                           consensus::Slot slot) override {
    absl::StatusOr<std::optional<std::string>> v =
        reader_->Get(storage::Cf::kLog, storage::LogKey(object, slot));
    if (!v.ok()) Fatal(StrCat("reading the log of ", object, ": ", v.status().ToString()));
    if (!v->has_value()) return std::nullopt;
    std::optional<consensus::LogEntry> e = storage::DecodeLogEntry(**v);
    if (!e) Fatal(StrCat("the log entry ", object, "@", slot, " is unreadable"));
    return e;
  }

 private:
  std::unique_ptr<storage::Reader> reader_;
};

namespace {
// Ticks run in one pass at most when the caller fell behind the clock (see SetTime).
constexpr int kTicksPerPassMax = 4;
}  // namespace

namespace {

// The restart guard of read leases (docs/consensus.md §Owner read leases): the longest
// read-lease this node ever ran with, which bounds what its previous incarnations granted.
// Remembered in the node's metadata; raised, never lowered.
absl::StatusOr<int64_t> RestartGuardMs(storage::Store& store, int64_t read_lease_ms) {
  constexpr std::string_view kField = "read_lease_max_ms";
  absl::StatusOr<std::optional<std::string>> stored = store.GetNodeMeta(kField);
  if (!stored.ok()) return stored.status();
  int64_t longest = 0;
  if (*stored && !absl::SimpleAtoi(**stored, &longest)) {
    return absl::DataLossError(StrCat("node metadata ", kField, " is not a number"));
  }
  if (read_lease_ms <= longest) return longest;
  std::unique_ptr<storage::WriteSet> writes = store.NewWriteSet();
  storage::PutNodeMeta(*writes, kField, StrCat(read_lease_ms));
  if (absl::Status s = store.Commit(*writes, /*sync=*/true); !s.ok()) return s;
  return read_lease_ms;
}

}  // namespace

namespace {
using Installs = std::vector<std::pair<consensus::ObjectId, consensus::Snapshot>>;

// Transfers under way when the node stopped start over: what they staged is garbage, except
// the snapshots whose install a restart redoes.
absl::Status DropStagedTransfers(storage::Store& store, const Installs& installs) {
  auto [lo, hi] = storage::AllStagedRange();
  std::unique_ptr<storage::WriteSet> writes = store.NewWriteSet();
  {
    std::unique_ptr<storage::Cursor> it = store.Scan(storage::Cf::kMeta, lo, hi);
    for (it->Seek(lo); it->Valid(); it->Next()) {
      const bool redone = std::any_of(installs.begin(), installs.end(), [&](const auto& i) {
        return it->key().starts_with(storage::StagedRange(i.first).first);
      });
      if (!redone) writes->Delete(storage::Cf::kMeta, it->key());
    }
    if (absl::Status s = it->status(); !s.ok()) return s;
  }
  return writes->Count() == 0 ? absl::OkStatus() : store.Commit(*writes, /*sync=*/false);
}
}  // namespace

// Installs of staged snapshots a stop interrupted are redone, before anything else can read
// their tables' data: the core hands each out again in its first Ready.
absl::Status NodeHost::ResumeInstalls(const Installs& installs) {
  std::unique_ptr<storage::WriteSet> writes = store_->NewWriteSet();
  for (const auto& [object, snap] : installs) {
    if (replica_->ResumeInstall(object, snap)) {
      spdlog::warn("redoing the install of a snapshot of {} at slot {}", object, snap.slot);
      continue;
    }
    DropStagedChunks(object, *writes);
    writes->Delete(storage::Cf::kMeta, storage::InstallingKey(object));
  }
  return writes->Count() == 0 ? absl::OkStatus() : store_->Commit(*writes, /*sync=*/false);
}

absl::StatusOr<std::unique_ptr<NodeHost>> NodeHost::Start(storage::Store* store, HostIO* io,
                                                          NodeHostOptions options) {
  absl::StatusOr<int64_t> guard = RestartGuardMs(*store, options.read_lease_ms);
  if (!guard.ok()) return guard.status();
  auto h = std::unique_ptr<NodeHost>(new NodeHost(store, io, options));
  h->restart_guard_ms_ = *guard;
  absl::StatusOr<Installs> installs = storage::LoadInstalling(*store);
  if (!installs.ok()) return installs.status();
  if (absl::Status s = DropStagedTransfers(*store, *installs); !s.ok()) return s;
  auto state = storage::LoadPersistentState(*store, [&h](const consensus::ObjectId& object) {
    return h->state_machine_.CommitIndex(object, nullptr);  // applied through (Snapshots)
  });
  if (!state.ok()) return state.status();
  for (const auto& [object, hard] : *state) {
    // The apply of a Ready is committed with its hard state: a store that applied past its
    // commit index is not one this node wrote (or its applies outran their fsync).
    const uint64_t applied = h->state_machine_.CommitIndex(object, nullptr);
    if (applied > hard.commit_index) {
      return absl::DataLossError(StrCat("object ", object, " is applied through slot ", applied,
                                        " but committed only through ", hard.commit_index,
                                        ": the store is inconsistent"));
    }
  }
  if (absl::Status s = h->membership_.Load(*store, options.node_id, options.membership,
                                           options.previous_membership, options.quorum);
      !s.ok()) {
    return s;
  }
  std::unique_ptr<consensus::MigrationPolicy> policy;
  if (options.static_owner != 0) {
    policy = std::make_unique<consensus::StaticPolicy>(options.static_owner);
  } else {
    // Half-second windows: a table follows a new hot zone about a second after the shift (two
    // windows of 2x dominance), while an even split between zones never reaches 2x.
    consensus::AccessCountingPolicy::Options policy_options;
    policy_options.window_ticks = 500 / std::max<int64_t>(1, options.tick_ms);
    auto counting = std::make_unique<consensus::AccessCountingPolicy>(
        options.policy.value_or(policy_options));
    h->policy_ = counting.get();
    policy = std::move(counting);
  }
  // TABLE PIN and TABLE READS survive restarts: pinned tables are kept out of automatic
  // moves again, and members ask for leases on LOCAL tables again.
  std::vector<std::pair<std::string, consensus::LeaseReads>> local_reads;
  absl::Status pins = store->ForEachTable(std::nullopt, [&](std::string_view table) {
    absl::StatusOr<storage::TableState> st = store->LoadTableState(table);
    if (st.ok() && !st->pinned_region.empty()) h->Pin(std::string(table), st->pinned_region);
    if (st.ok() && st->local_reads) {
      local_reads.emplace_back(table, LeaseReadsMode(true, st->auto_reads));
    }
    return true;
  });
  if (!pins.ok()) return pins;
  h->replica_ = std::make_unique<consensus::Replica>(
      h->CoreConfig(), std::move(*state), h->snapshots_.get(), std::move(policy),
      options.replica_seed != 0 ? options.replica_seed : options.node_id, h->log_.get());
  for (const auto& [table, mode] : local_reads) h->replica_->SetLeaseReads(table, mode);
  // The configuration before the latest one: joint quorums of a change still settling use it.
  const consensus::ClusterConfig& previous = h->membership_.previous();
  if (previous.epoch > 0 && previous.epoch < h->membership_.current().epoch) {
    h->replica_->SetConfig(previous.epoch, previous.ToTopology(options.distance), previous.quorum);
  }
  if (absl::Status s = h->ResumeInstalls(*installs); !s.ok()) return s;
  if (absl::Status s = h->LoadExpiringTables(); !s.ok()) return s;
  io->MembershipChanged(h->membership_.current(), h->membership_.previous());
  return h;
}

NodeHost::NodeHost(storage::Store* store, HostIO* io, NodeHostOptions options)
    : store_(store),
      io_(io),
      options_(std::move(options)),
      state_machine_(store, options_.change_history, options_.test_meta_cache,
                     options_.test_row_cache, options_.record_cache_bytes),
      routes_(&state_machine_),
      snapshots_(std::make_unique<Snapshots>(store, &state_machine_, &membership_,
                                               options_.test_snapshot_unpinned)),
      log_(std::make_unique<Log>(store)),
      // Request ids must not repeat across restarts (the core deduplicates forwarded requests
      // by id), so the sequence starts from the wall clock when this incarnation started.
      next_seq_(options_.test_reuse_sequence_numbers ? 1 : options_.start_wall_us) {}

NodeHost::~NodeHost() = default;

consensus::ReplicaConfig NodeHost::CoreConfig() const {
  consensus::ReplicaConfig config = options_.replica.value_or(consensus::ReplicaConfig{});
  const consensus::ClusterConfig& membership = membership_.current();
  config.id = options_.node_id;
  config.forward_seq_base = next_seq_;
  config.epoch = membership.epoch;
  config.topology = membership.ToTopology(options_.distance);
  if (config.topology.zone_of.empty()) config.topology.zone_of[options_.node_id] = 1;
  config.quorum = membership.quorum;
  config.tick_ms = options_.tick_ms;
  config.may_write = &StateMachine::MayWrite;  // the commands are ours (per-key holder reads)
  if (options_.replica) return config;
  config.lease_ms = options_.read_lease_ms;
  config.clock_drift_ppm = options_.clock_drift_ppm;
  config.restart_guard_ms = restart_guard_ms_;
  // Replica read leases ride on the owner's: TABLE READS LOCAL needs nothing more.
  config.holder_leases = options_.read_lease_ms > 0;
  // Tick counts for the tick length: heartbeats 250 ms (4 per peer timeout; each costs every
  // peer a message, the bulk of an idle node's CPU), peers suspect after 1 s, resend after
  // 200 ms, client requests time out after 10 s; members outside the Q2 learn every 50 ms
  // (docs/consensus.md §Q2 first), a member that forwarded or read stays eager for 1 s, and a
  // learner behind waits 100 ms for those batches before it asks for catch-up.
  const int64_t per_second = 1000 / std::max<int64_t>(1, options_.tick_ms);
  config.heartbeat_ticks = per_second / 4;
  config.peer_timeout_ticks = per_second;
  config.resend_ticks = per_second / 5;
  config.request_timeout_ticks = 10 * per_second;
  config.steal_backoff_ticks = per_second / 10;
  config.lazy_flush_ticks = std::max<int64_t>(1, per_second / 20);
  config.interest_ticks = per_second;
  config.catchup_grace_ticks = std::max<int64_t>(1, per_second / 10);
  config.catchup_bytes_per_tick = options_.catchup_bytes_per_second / per_second;
  // Two bursts' worth: a learner's queue holds what it asked for, not its peers' whole rate.
  config.catchup_backlog_max = 2 * config.catchup_burst * config.catchup_bytes_max;
  return config;
}

int64_t NodeHost::StampNow() {
  last_stamp_ms_ = std::max(last_stamp_ms_, wall_ms_);
  return last_stamp_ms_;
}

void NodeHost::SetTime(int64_t now_ms, int64_t wall_ms, bool may_own) {
  if (!clock_started_) {
    clock_started_ = true;
    next_tick_ms_ = now_ms + options_.tick_ms;
  }
  now_ms_ = now_ms;
  wall_ms_ = wall_ms;
  replica_->SetClock(wall_ms, now_ms, may_own);
  // Ticks an idle node slept through only count time (and send the heartbeat when it is
  // due): cheap, uncapped.
  while (now_ms >= next_tick_ms_ && replica_->Quiet()) {
    replica_->Tick();
    next_tick_ms_ += options_.tick_ms;
  }
  // Catch up on missed ticks, but not without bound: if ticks fall behind the clock (an
  // overloaded node), logical time runs slower rather than the node doing nothing but ticks.
  // The core's timeouts are in ticks, and its safety never depends on time.
  for (int n = 0; now_ms >= next_tick_ms_; ++n) {
    if (n == kTicksPerPassMax) {
      ticks_skipped_ += static_cast<uint64_t>((now_ms - next_tick_ms_) / options_.tick_ms + 1);
      next_tick_ms_ = now_ms + options_.tick_ms;
      break;
    }
    replica_->Tick();
    next_tick_ms_ += options_.tick_ms;
  }
  RunTimers();
  // The reads the client threads answered, for TABLE READS AUTO, twice a second.
  if (now_ms >= next_reads_note_ms_) {
    next_reads_note_ms_ = now_ms + 500;
    local_reads_->TakeReads(
        [this](const std::string& table, uint64_t n) { replica_->NoteReads(table, n); });
  }
}

bool NodeHost::Quiet() const {
  return timers_.empty() && unsynced_.empty() && !replica_->HasReady() && replica_->Quiet();
}

// An idle node sleeps until its next heartbeat instead of waking every tick (15 idle daemons
// on 2 cores spent most of it switching threads); the ticks it slept through run on waking
// (SetTime), before any new request, so the core's clock is right when the request lands.
int64_t NodeHost::NextWorkAtMs() const {
  int64_t due = next_tick_ms_;
  if (Quiet()) due += (replica_->TicksToHeartbeat() - 1) * options_.tick_ms;
  if (!timers_.empty()) due = std::min(due, timers_.begin()->first);
  if (expire_at_ms_ >= 0) due = std::min(due, expire_at_ms_);
  return due;
}

bool NodeHost::Idle() const {
  return writes_.empty() && reads_.empty() && membership_writes_.empty() && timers_.empty() &&
         unsynced_.empty();
}

void NodeHost::After(int64_t delay_ms, std::function<void()> fn) {
  timers_.emplace(now_ms_ + delay_ms, std::move(fn));
}

void NodeHost::RunTimers() {
  while (!timers_.empty() && timers_.begin()->first <= now_ms_) {
    std::function<void()> fn = std::move(timers_.begin()->second);
    timers_.erase(timers_.begin());
    fn();
  }
  RunExpirer();
}

void NodeHost::Propose(proto::Command cmd, Done done) {
  // Informational: replicas judge time by the owner's stamp on the entry (docs/consensus.md
  // §Time); this is the fallback for entries of owners that predate stamps.
  cmd.set_timestamp_ms(StampNow());
  Submit(std::move(cmd), std::move(done), 0);
}

void NodeHost::Submit(proto::Command cmd, Done done, int attempt, bool adopt) {
  const StateMachine::Route& route = routes_.Of(cmd.table());
  const std::string object = route.object;
  if (route.pending && !adopt) MaybeAdopt(cmd.table());
  consensus::RequestId id = NextRequestId();
  replica_->Propose(object, cmd.SerializeAsString(), id);
  writes_[id.seq] = PendingWrite{std::move(done), std::nullopt, std::move(cmd), attempt, adopt};
}

void NodeHost::MaybeAdopt(const std::string& table) {
  if (adopting_.contains(table)) return;
  std::optional<proto::Command> adopt = state_machine_.BuildAdopt(table);
  if (!adopt) return;
  adopting_.insert(table);
  adopt->set_timestamp_ms(StampNow());
  Submit(std::move(*adopt), [](ApplyResult) {}, 0, /*adopt=*/true);
}

void NodeHost::ReadBarrier(const std::string& table, const std::string& key, ReadDone done) {
  IssueRead(table, key, std::move(done), 0);
}

void NodeHost::IssueRead(const std::string& table, const std::string& key, ReadDone done,
                         int attempt) {
  const StateMachine::Route& route = routes_.Of(table);
  const std::string object = route.object;
  if (route.pending) MaybeAdopt(table);
  consensus::RequestId id = NextRequestId();
  reads_[id.seq] = PendingRead{std::move(done), table, key, object, attempt};
  replica_->Read(object, id, key);
}

void NodeHost::ProposeMembership(std::string command, MembershipDone done) {
  consensus::RequestId id = NextRequestId();
  membership_writes_[id.seq] = PendingMembership{std::move(done), std::nullopt};
  replica_->Propose(consensus::kMembershipObject, std::move(command), id);
}

void NodeHost::Deliver(const consensus::Message& message) { replica_->Step(message); }

void NodeHost::Move(const std::string& table, consensus::NodeId target) {
  const std::string object = routes_.Of(table).object;  // a grouped table moves with its group
  if (target == options_.node_id) {
    replica_->Steal(object);
  } else {
    replica_->Move(object, target);
  }
}

ObjectInfo NodeHost::Describe(const std::string& table) {
  // A grouped table is described by its group's object.
  const std::string object = routes_.Of(table).object;
  ObjectInfo info;
  info.owner = replica_->IsOwner(object) ? options_.node_id : replica_->BelievedOwner(object);
  info.ballot = replica_->Promised(object).ToString();
  info.commit_index = replica_->CommitIndex(object);
  if (replica_->IsOwner(object)) {
    for (consensus::NodeId n : replica_->LeaseHolders(object)) info.lease_holders.push_back(n);
  } else if (replica_->HolderLease(object)) {
    info.lease_holders.push_back(options_.node_id);
  }
  return info;
}

uint64_t NodeHost::AppliedIndex(const std::string& object) {
  return state_machine_.CommitIndex(object, nullptr);
}

// TABLE PIN: the automatic migration policy moves a pinned object only within its region's
// zone (explicit TABLE MOVE still works); "" unpins. (The static baseline never moves.)
void NodeHost::Pin(const std::string& object, const std::string& region) {
  if (policy_ == nullptr) return;
  if (region.empty()) {
    policy_->Unrestrict(object);
  } else {
    policy_->RestrictZones(object, {cluster::ZoneOfRegion(region)});
  }
}

std::string NodeHost::NameZones(const std::string& text) const {
  return cluster::NameZones(text, membership_.current());
}

}  // namespace atlas
