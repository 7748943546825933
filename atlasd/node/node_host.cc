#include "atlasd/node/node_host.h"

#include <algorithm>

#include "absl/strings/numbers.h"
#include "atlasd/cluster/members.h"
#include "atlasd/fatal.h"
#include "atlasd/logging.h"
#include "socketproto/str.h"
#include "spdlog/spdlog.h"
#include "storage/paxos_state.h"

namespace atlas {

// The application side of snapshots: an object's state in the store *is* its snapshot, taken as
// of the object's durable commit index (written in the same batch as every apply).
// `atlas.nodes` is the exception: its state is the ClusterConfig, kept in node metadata.
class NodeHost::Snapshots final : public consensus::SnapshotSource {
 public:
  Snapshots(StateMachine* sm, const MembershipState* membership)
      : sm_(sm), membership_(membership) {}
  std::optional<consensus::Snapshot> LatestSnapshot(const consensus::ObjectId& object) override {
    consensus::Snapshot snap;
    snap.slot = sm_->CommitIndex(object, nullptr);
    // While the Replica is constructed only the slot is needed; building every table's bytes
    // there would read the whole database at start-up.
    if (slot_only_) return snap;
    snap.data = object == consensus::kMembershipObject
                    ? consensus::EncodeClusterConfig(membership_->current())
                    : sm_->SnapshotObject(object);
    return snap;
  }
  bool slot_only_ = true;

 private:
  StateMachine* sm_;
  const MembershipState* membership_;
};

namespace {
// Ticks run in one pass at most when the caller fell behind the clock (see SetTime).
constexpr int kTicksPerPassMax = 4;
}  // namespace

absl::StatusOr<std::unique_ptr<NodeHost>> NodeHost::Start(storage::Store* store, HostIO* io,
                                                          NodeHostOptions options) {
  auto state = storage::LoadPersistentState(*store);
  if (!state.ok()) return state.status();
  auto h = std::unique_ptr<NodeHost>(new NodeHost(store, io, options));
  for (const auto& [object, hard] : *state) h->truncated_[object] = hard.truncated_through;
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
  // TABLE PIN survives restarts: pinned tables are kept out of automatic moves again.
  absl::Status pins = store->ForEachTable(std::nullopt, [&](std::string_view table) {
    absl::StatusOr<storage::TableState> st = store->LoadTableState(table);
    if (st.ok() && !st->pinned_region.empty()) h->Pin(std::string(table), st->pinned_region);
    return true;
  });
  if (!pins.ok()) return pins;
  h->replica_ = std::make_unique<consensus::Replica>(
      h->CoreConfig(), std::move(*state), h->snapshots_.get(), std::move(policy),
      options.replica_seed != 0 ? options.replica_seed : options.node_id);
  h->snapshots_->slot_only_ = false;
  // The configuration before the latest one: joint quorums of a change still settling use it.
  const consensus::ClusterConfig& previous = h->membership_.previous();
  if (previous.epoch > 0 && previous.epoch < h->membership_.current().epoch) {
    h->replica_->SetConfig(previous.epoch, previous.ToTopology(options.distance), previous.quorum);
  }
  io->MembershipChanged(h->membership_.current(), h->membership_.previous());
  return h;
}

NodeHost::NodeHost(storage::Store* store, HostIO* io, NodeHostOptions options)
    : store_(store),
      io_(io),
      options_(std::move(options)),
      state_machine_(store, options_.change_history),
      routes_(&state_machine_),
      snapshots_(std::make_unique<Snapshots>(&state_machine_, &membership_)),
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
  if (options_.replica) return config;
  // Tick counts for the tick length: heartbeats 250 ms (4 per peer timeout; each costs every
  // peer a message, the bulk of an idle node's CPU), peers suspect after 1 s, resend after
  // 200 ms, client requests time out after 10 s.
  const int64_t per_second = 1000 / std::max<int64_t>(1, options_.tick_ms);
  config.heartbeat_ticks = per_second / 4;
  config.peer_timeout_ticks = per_second;
  config.resend_ticks = per_second / 5;
  config.request_timeout_ticks = 10 * per_second;
  config.steal_backoff_ticks = per_second / 10;
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
  replica_->SetClock(wall_ms, may_own);
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
}

bool NodeHost::Quiet() const {
  return timers_.empty() && !replica_->HasReady() && replica_->Quiet();
}

// An idle node sleeps until its next heartbeat instead of waking every tick (15 idle daemons
// on 2 cores spent most of it switching threads); the ticks it slept through run on waking
// (SetTime), before any new request, so the core's clock is right when the request lands.
int64_t NodeHost::NextWorkAtMs() const {
  int64_t due = next_tick_ms_;
  if (Quiet()) due += (replica_->TicksToHeartbeat() - 1) * options_.tick_ms;
  if (!timers_.empty()) due = std::min(due, timers_.begin()->first);
  return due;
}

bool NodeHost::Idle() const {
  return writes_.empty() && reads_.empty() && membership_writes_.empty() && timers_.empty();
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

void NodeHost::ReadBarrier(const std::string& table, ReadDone done) {
  IssueRead(table, std::move(done), 0);
}

void NodeHost::IssueRead(const std::string& table, ReadDone done, int attempt) {
  const StateMachine::Route& route = routes_.Of(table);
  const std::string object = route.object;
  if (route.pending) MaybeAdopt(table);
  consensus::RequestId id = NextRequestId();
  reads_[id.seq] = PendingRead{std::move(done), table, object, attempt};
  replica_->Read(object, id);
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

// The core names zones by number; operators know them by region ("zone 3107 has 0/1" becomes
// "zone eu-west has 0/1").
std::string NodeHost::NameZones(const std::string& text) const {
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
      for (const auto& [id, m] : membership_.current().members) {
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

// --- The Ready loop -------------------------------------------------------------------------

bool NodeHost::ProcessReady() {
  while (replica_->HasReady()) {
    consensus::Ready rd = replica_->TakeReady();
    ++readies_;
    if (observe_ready) observe_ready(rd);
    std::unique_ptr<storage::WriteSet> writes = store_->NewWriteSet();
    Applied applied;
    if (!Stage(rd, *writes, applied)) return false;
    // The bug switches move a step before the commit that its safety depends on.
    if (options_.test_send_before_persist && !Send(rd)) return false;
    if (options_.test_reply_before_persist) {
      for (const consensus::Reply& reply : rd.replies) {
        if (!reply.is_read) AnswerWrite(reply, reply.detail);
      }
    }
    if (!Commit(*writes)) return false;
    Publish(applied);
    for (const consensus::OwnershipEvent& e : rd.ownership) NoteOwnership(e);
    // Only now, with the Ready durable, may other nodes learn of its promises and accepts.
    if (!Send(rd)) return false;
    AnswerClients(rd);
    replica_->Advance(rd);
  }
  return true;
}

// Everything of one Ready that must be durable before anything leaves the node, in one
// WriteSet: snapshots, hard-state updates, and the apply of committed entries.
bool NodeHost::Stage(const consensus::Ready& rd, storage::WriteSet& writes, Applied& applied) {
  if (!InstallSnapshots(rd, writes, applied)) return false;
  for (const consensus::HardStateUpdate& u : rd.persist) {
    consensus::Slot& truncated = truncated_[u.object];
    storage::AddHardStateUpdate(u, truncated, writes);
    truncated = std::max(truncated, u.truncated_through);
  }
  for (const consensus::CommittedEntry& e : rd.committed) {
    if (e.object == consensus::kMembershipObject) {
      ApplyMembership(e, writes, applied);
    } else {
      ApplyEntry(e, writes, applied);
    }
  }
  return true;
}

bool NodeHost::InstallSnapshots(const consensus::Ready& rd, storage::WriteSet& writes,
                                Applied& applied) {
  if (rd.snapshots.empty()) return true;
  applied.everything = true;
  routes_.ForgetAll();
  for (const auto& [object, snap] : rd.snapshots) {
    if (object == consensus::kMembershipObject) {
      if (!membership_.Install(snap.data, writes)) Fatal("undecodable membership snapshot");
      applied.membership_changed = true;
      state_machine_.MarkApplied(object, snap.slot, &writes);
      continue;
    }
    if (!state_machine_.InstallObjectSnapshot(object, snap.data, snap.slot, &writes)) {
      Fatal(StrCat("undecodable snapshot of ", object));
    }
    if (io_->Crash("snapshot-install")) return false;
  }
  return true;
}

void NodeHost::ApplyMembership(const consensus::CommittedEntry& e, storage::WriteSet& writes,
                               Applied& applied) {
  state_machine_.MarkApplied(e.object, e.slot, &writes);
  for (const consensus::Command& c : e.commands) {
    absl::StatusOr<std::string> r = membership_.Apply(c.data, c.stamp_ms, writes);
    if (r.ok()) applied.membership_changed = true;
    // Every node applies (and refuses) the same commands; the proposer reports it.
    if (!r.ok()) spdlog::debug("membership change refused: {}", r.status().message());
    if (c.id.node != options_.node_id) continue;
    auto it = membership_writes_.find(c.id.seq);
    if (it != membership_writes_.end()) it->second.result = std::move(r);
  }
}

void NodeHost::ApplyEntry(const consensus::CommittedEntry& e, storage::WriteSet& writes,
                          Applied& applied) {
  if (e.commands.empty()) state_machine_.MarkApplied(e.object, e.slot, &writes);
  for (const consensus::Command& c : e.commands) {
    proto::Command cmd;
    ApplyResult r;
    // A table's own object carries only its commands; a group's, its members'.
    if (!cmd.ParseFromString(c.data) ||
        (cmd.table() != e.object && !StateMachine::IsGroupObject(e.object))) {
      // Every replica fails the same undecodable command the same way.
      state_machine_.MarkApplied(e.object, e.slot, &writes);
      r = {false, "internal error: undecodable command", e.slot};
    } else {
      // Judged at the owner's stamp (docs/consensus.md §Time); unstamped entries (from a node
      // that predates stamps) keep the proposer's time.
      if (c.stamp_ms > 0) cmd.set_timestamp_ms(c.stamp_ms);
      if (cmd.has_placement() || cmd.has_adopt()) routes_.Forget(cmd.table());
      r = state_machine_.Apply(cmd, e.object, e.slot, &writes);
      if (r.table_revision > 0) applied.changes.emplace_back(cmd.table(), r.table_revision);
      if (cmd.has_adopt()) applied.everything = true;
      if (r.ok && cmd.has_placement() && cmd.placement().has_pinned_region()) {
        Pin(e.object, cmd.placement().pinned_region());
      }
    }
    if (c.id.node != options_.node_id) continue;
    auto it = writes_.find(c.id.seq);
    if (it != writes_.end()) it->second.result = std::move(r);
  }
}

bool NodeHost::Commit(storage::WriteSet& writes) {
  if (writes.Count() == 0) return true;
  if (io_->Crash("ready-before-sync")) return false;
  absl::Status s = store_->Commit(writes, options_.sync);
  // After a failed synced write the disk state is unknown: never acknowledge on it.
  if (!s.ok()) Fatal(StrCat("persisting consensus state failed: ", s.ToString()));
  return !io_->Crash("ready-after-sync");
}

void NodeHost::Publish(Applied& applied) {
  if (!applied.changes.empty() || applied.everything) {
    io_->TablesChanged(std::move(applied.changes), applied.everything);
  }
  if (applied.membership_changed) InstallMembership();
}

void NodeHost::InstallMembership() {
  const consensus::ClusterConfig& config = membership_.current();
  spdlog::info("membership epoch {}: {} node(s), Fn={} Fz={}", config.epoch,
               config.members.size(), config.quorum.fn, config.quorum.fz);
  consensus::Topology topology = config.ToTopology(options_.distance);
  if (topology.zone_of.empty()) topology.zone_of[options_.node_id] = 1;
  replica_->SetConfig(config.epoch, std::move(topology), config.quorum);
  io_->MembershipChanged(config, membership_.previous());
}

bool NodeHost::Send(consensus::Ready& rd) {
  if (rd.messages.empty()) return true;
  io_->Send(std::move(rd.messages));
  rd.messages.clear();
  return !io_->Crash("ready-after-send");
}

void NodeHost::AnswerClients(const consensus::Ready& rd) {
  for (const consensus::ReadState& rs : rd.reads) ReleaseRead(rs);
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
      AnswerRead(reply, detail);
    } else if (reply.object == consensus::kMembershipObject) {
      AnswerMembership(reply);
    } else {
      AnswerWrite(reply, detail);
    }
  }
}

// A read barrier is released once its index is applied here. It covers the object it ran on;
// the table must still be governed there (and its adopt applied), else the read goes again to
// where the table is now.
void NodeHost::ReleaseRead(const consensus::ReadState& rs) {
  auto it = reads_.find(rs.id.seq);
  if (it == reads_.end()) return;
  PendingRead read = std::move(it->second);
  reads_.erase(it);
  const StateMachine::Route& route = routes_.Of(read.table);
  if (route.object == read.object && route.live) {
    read.done(absl::OkStatus());
  } else if (read.attempt < GroupRoutes::kRetries) {
    After(GroupRoutes::BackoffMs(read.attempt), [this, read = std::move(read)]() mutable {
      IssueRead(read.table, std::move(read.done), read.attempt + 1);
    });
  } else {
    read.done(absl::UnavailableError(
        StrCat("table '", read.table, "' is changing group; retry")));
  }
}

void NodeHost::AnswerRead(const consensus::Reply& reply, const std::string& detail) {
  auto it = reads_.find(reply.id.seq);
  if (it == reads_.end()) return;
  ReadDone done = std::move(it->second.done);
  reads_.erase(it);
  switch (reply.code) {
    case consensus::ReplyCode::kOk: done(absl::OkStatus()); break;
    case consensus::ReplyCode::kTimeout:
      done(absl::DeadlineExceededError(StrCat("timeout: read of ", reply.object)));
      break;
    case consensus::ReplyCode::kQuorumUnavailable:
      done(absl::UnavailableError(detail));  // already "quorum unavailable: <why>"
      break;
    default:
      done(absl::UnavailableError(StrCat(consensus::ReplyCodeName(reply.code), ": ", detail)));
  }
}

void NodeHost::AnswerMembership(const consensus::Reply& reply) {
  auto it = membership_writes_.find(reply.id.seq);
  if (it == membership_writes_.end()) return;
  PendingMembership m = std::move(it->second);
  membership_writes_.erase(it);
  if (reply.code == consensus::ReplyCode::kOk && m.result) {
    if (m.result->ok()) {
      m.done(MembershipResult{**m.result, membership_.current()});
    } else {
      m.done(m.result->status());
    }
    return;
  }
  m.done(absl::UnavailableError(
      StrCat("membership change not ordered: ", consensus::ReplyCodeName(reply.code),
             reply.detail.empty() ? "" : StrCat(": ", reply.detail))));
}

void NodeHost::AnswerWrite(const consensus::Reply& reply, const std::string& detail) {
  auto it = writes_.find(reply.id.seq);
  if (it == writes_.end()) return;
  PendingWrite w = std::move(it->second);
  writes_.erase(it);
  if (w.adopt) adopting_.erase(w.cmd.table());
  const bool applied = reply.code == consensus::ReplyCode::kOk && w.result.has_value();
  // Refused without effect by a log that does not govern the table: the routing here was
  // stale (or the adopt is still on its way); go again with the newer one. An adopt is
  // idempotent (only the first of its interval in a log counts), so it is retried whatever
  // stopped it, e.g. a forward rejected with an unknown outcome.
  if ((applied ? w.result->moved : w.adopt) && w.attempt < GroupRoutes::kRetries) {
    Retry(std::move(w));
    return;
  }
  if (applied && w.result->ok && w.result->sealed && !w.adopt && AdoptAfterSeal(w)) return;
  ApplyResult r;
  if (applied) {
    r = std::move(*w.result);
  } else {
    r.ok = false;
    r.outcome_unknown = !reply.definite;
    switch (reply.code) {
      case consensus::ReplyCode::kTimeout:
        r.error = StrCat("timeout: write to ", reply.object,
                         reply.definite ? " (not applied)" : " (outcome unknown)");
        break;
      case consensus::ReplyCode::kQuorumUnavailable:
        r.error = detail;  // already "quorum unavailable: <why>"
        break;
      case consensus::ReplyCode::kBusy: r.error = StrCat("overloaded: ", detail); break;
      default: r.error = StrCat(consensus::ReplyCodeName(reply.code), ": ", detail);
    }
  }
  w.done(std::move(r));
}

void NodeHost::Retry(PendingWrite w) {
  After(GroupRoutes::BackoffMs(w.attempt), [this, w = std::move(w)]() mutable {
    w.cmd.set_timestamp_ms(StampNow());
    if (w.adopt) adopting_.insert(w.cmd.table());
    Submit(std::move(w.cmd), std::move(w.done), w.attempt + 1, w.adopt);
  });
}

// TABLE GROUP sealed the table's old log; it is answered once the new log has adopted it.
// False when there is no adopt to wait for (answer now).
bool NodeHost::AdoptAfterSeal(PendingWrite& w) {
  const std::string table = w.cmd.table();
  std::optional<proto::Command> adopt = state_machine_.BuildAdopt(table);
  if (!adopt || adopting_.contains(table)) return false;
  adopting_.insert(table);
  adopt->set_timestamp_ms(StampNow());
  Submit(std::move(*adopt),
         [done = std::move(w.done), table](ApplyResult r) {
           if (!r.ok) {
             r.error = StrCat("table '", table, "' left its old log but joining the new one "
                              "did not complete (", r.error,
                              "); the next command on it completes the move");
           }
           done(std::move(r));
         },
         0, /*adopt=*/true);
  return true;
}

void NodeHost::NoteOwnership(const consensus::OwnershipEvent& e) {
  using Kind = consensus::OwnershipEventKind;
  const bool counted = e.object != consensus::kMembershipObject;
  const char* what = consensus::OwnershipEventName(e.kind);
  switch (e.kind) {
    case Kind::kPhase1Started:
      ++ownership_.phase1_started;
      LogEvent(spdlog::level::debug, what,
               {{"table", e.object}, {"ballot", e.ballot.ToString()},
                {"reason", consensus::StealReasonName(e.reason)},
                {"request", e.reason == consensus::StealReason::kRequest ? e.request.ToString()
                                                                         : "-"}});
      break;
    case Kind::kElected:
      ++ownership_.elected;
      if (counted) ++ownership_.owned;
      LogEvent(spdlog::level::info, what,
               {{"table", e.object}, {"ballot", e.ballot.ToString()},
                {"first_slot", std::to_string(e.slot)}});
      break;
    case Kind::kPreempted:
      ++ownership_.preempted;
      LogEvent(spdlog::level::debug, what,
               {{"table", e.object}, {"ballot", e.ballot.ToString()},
                {"by_ballot", e.other.ToString()}});
      break;
    case Kind::kSteppedDown:
      ++ownership_.stepped_down;
      if (counted) --ownership_.owned;
      LogEvent(spdlog::level::info, what,
               {{"table", e.object}, {"ballot", e.ballot.ToString()},
                {"by_ballot", e.other.ToString()}});
      break;
    case Kind::kMoveSuggested:
      ++ownership_.moves_suggested;
      LogEvent(spdlog::level::info, what,
               {{"table", e.object}, {"ballot", e.ballot.ToString()},
                {"to_node", std::to_string(e.target)}});
      break;
  }
}

}  // namespace atlas
