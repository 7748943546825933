// Replica: construction, the Step dispatch, the Ready batch, and the helpers every role uses
// (docs/consensus.md, "Code layout"). Each role has its own file: replica_phase1.cc,
// replica_phase2.cc, replica_learner.cc, replica_reads.cc, replica_routing.cc,
// replica_reconfig.cc, replica_time.cc.
#include "consensus/replica.h"

#include <algorithm>
#include <iterator>
#include <optional>
#include <utility>
#include <vector>

#include "consensus/check.h"
#include "consensus/membership.h"

namespace atlas::consensus {

const char* ReplyCodeName(ReplyCode code) {
  switch (code) {
    case ReplyCode::kOk: return "OK";
    case ReplyCode::kNotOwner: return "NOT_OWNER";
    case ReplyCode::kQuorumUnavailable: return "QUORUM_UNAVAILABLE";
    case ReplyCode::kTimeout: return "TIMEOUT";
    case ReplyCode::kBusy: return "BUSY";
  }
  return "?";
}

const char* OwnershipEventName(OwnershipEventKind kind) {
  switch (kind) {
    case OwnershipEventKind::kPhase1Started: return "phase1 started";
    case OwnershipEventKind::kElected: return "owner elected";
    case OwnershipEventKind::kPreempted: return "phase1 preempted";
    case OwnershipEventKind::kSteppedDown: return "owner stepped down";
    case OwnershipEventKind::kMoveSuggested: return "move suggested";
  }
  return "?";
}

const char* StealReasonName(StealReason reason) {
  switch (reason) {
    case StealReason::kRequest: return "request";
    case StealReason::kMove: return "move";
    case StealReason::kMoveHint: return "move-hint";
    case StealReason::kRetry: return "retry";
    case StealReason::kSweep: return "sweep";
  }
  return "?";
}

void ApplyHardStateUpdate(const HardStateUpdate& update, PersistentState& state) {
  ObjectHardState& h = state[update.object];
  h.promised = update.promised;
  h.commit_index = update.commit_index;
  h.truncated_through = update.truncated_through;
  h.anchor_epoch = update.anchor_epoch;
  h.anchor_config = update.anchor_config;
  for (const SlotEntry& e : update.entries) h.log[e.slot] = e.entry;
  h.log.erase(h.log.begin(), h.log.upper_bound(h.truncated_through));
}

Replica::Replica(ReplicaConfig config, PersistentState restart, SnapshotSource* snapshots,
                 std::unique_ptr<MigrationPolicy> policy, uint64_t seed, LogSource* log)
    : config_(std::move(config)),
      snapshots_(snapshots),
      log_(log),
      policy_(std::move(policy)),
      rng_(seed) {
  ATLAS_CHECK(config_.id != kNoNode);
  ATLAS_CHECK(config_.epoch >= 1);
  // A removed node may restart before its removal settles: it need not be a member.
  AddConfig(config_.epoch, config_.topology, config_.quorum);
  latest_epoch_ = config_.epoch;
  ATLAS_CHECK(snapshots_ != nullptr && policy_ != nullptr);
  ATLAS_CHECK(config_.window_slots > 0 && config_.batch_commands_max > 0);
  ATLAS_CHECK(config_.heartbeat_full_every > 0);
  for (auto& [object, hard] : restart) Restore(object, std::move(hard));
  // A node that starts with no object in a cluster (it joins, or lost its disk) learns which
  // objects exist from a peer's directory, not from heartbeats' rolling windows
  // (docs/consensus.md §Q2 first). A node that starts alone has nobody to ask.
  directory_.wanted = config_.directory_objects_max > 0 &&
                      config_.topology.zone_of.size() > 1 &&
                      std::all_of(objects_.begin(), objects_.end(), [](const auto& kv) {
                        return kv.first == kMembershipObject;
                      });
}

void Replica::Restore(const ObjectId& object, ObjectHardState hard) {
  ObjectState& o = Create(object);
  o.hard = std::move(hard);
  o.acceptor.truncated_persisted = o.hard.truncated_through;
  if (config_.test_forget_promises_on_restart) o.hard.promised = Ballot{};
  o.learner.applied = snapshots_->LatestSnapshotSlot(object);
  o.learner.snapshot_slot = o.learner.applied;
  o.learner.snapshot_asked = o.learner.applied;
  // The host installs/takes snapshots durably before the truncation that relies on them is
  // persisted (Ready contract), so the log always covers (applied, commit_index].
  ATLAS_CHECK(o.learner.applied >= o.hard.truncated_through);
  ATLAS_CHECK(o.learner.applied <= o.hard.commit_index);
  // Any ballot we create from now on is above everything this node promised before.
  restart_counter_floor_ = std::max(restart_counter_floor_, o.hard.promised.counter);
  for (const auto& [slot, entry] : o.hard.log) {
    restart_counter_floor_ = std::max(restart_counter_floor_, entry.ballot.counter);
    for (const Command& c : entry.value) {
      o.proposer.last_stamp_ms = std::max(o.proposer.last_stamp_ms, c.stamp_ms);
    }
  }
  o.learner.owner_ballot = o.hard.promised;
  o.proposer.ballot = o.hard.promised;
  // A tail this node proposed may hold values it acknowledged before the restart without
  // writing their commit (it need not be durable): take the object again to commit them, so
  // that every replica applies them without waiting for the next command on the object.
  if (o.hard.promised.node == config_.id && !o.hard.log.empty() &&
      o.hard.log.rbegin()->first > o.hard.commit_index) {
    o.proposer.want_steal = true;
  }
  o.learner.anchor_scanned = o.hard.commit_index;  // The persisted anchor is as of commit_index.
  EvictApplied(object, o);  // read from the store at start-up, and on disk
  if (o.hard.anchor_epoch != 0) LearnConfig(o.hard.anchor_epoch, o.hard.anchor_config);
  Reindex(object, o);
  // An object with work left is listed for CollectReady (which re-emits its committed slots)
  // and Tick; the others rest at once, so that a node restarting with a million tables never
  // holds a million full states. (Not the heartbeat list: the first heartbeat is a full one,
  // or the rolling window reaches it.)
  if (o.learner.applied < o.hard.commit_index || NeedsTick(object, o)) {
    work_ = true;
    active_.insert(object);
    o.bookkeeping.queued_collect = true;
    collect_.push_back(object);
  } else if (TryRest(object, objects_.find(object)->second)) {
    awake_.erase(object);
  }
}

// ---------------------------------------------------------------------------------------------
// Objects and their work lists.

Replica::ObjectState& Replica::Obj(const ObjectId& object) {
  // Whatever touches an object may have given it a timer: Tick looks at it (NeedsTick).
  active_.insert(object);
  auto it = objects_.find(object);
  if (it != objects_.end()) {
    ObjectState& o = Wake(object, it->second);
    Touch(object, o);
    return o;
  }
  ObjectState& o = Create(object);
  // A new object's ballots also start above anything used before a restart.
  o.proposer.ballot = Ballot{restart_counter_floor_, kNoNode};
  Touch(object, o);
  return o;
}

Replica::ObjectState& Replica::Create(const ObjectId& object) {
  awake_.insert(object);
  return objects_[object].Wake(std::make_unique<ObjectState>());
}

const Replica::ObjectState* Replica::FindObj(const ObjectId& object) const {
  auto it = objects_.find(object);
  return it == objects_.end() ? nullptr : &Wake(object, it->second);
}

void Replica::Touch(const ObjectId& object, ObjectState& o) {
  if (!o.bookkeeping.queued_collect) {
    o.bookkeeping.queued_collect = true;
    collect_.push_back(object);
  }
  if (!o.bookkeeping.queued_heartbeat) {
    o.bookkeeping.queued_heartbeat = true;
    heartbeat_changed_.push_back(object);
  }
  if (!o.bookkeeping.queued_index) {
    o.bookkeeping.queued_index = true;
    reindex_.push_back(object);
  }
  if (checking_ && !o.bookkeeping.queued_check) {
    o.bookkeeping.queued_check = true;
    check_list_.push_back(object);
  }
}

void Replica::PutEntry(ObjectState& o, Slot slot, LogEntry entry) {
  for (const Command& c : entry.value) {
    o.proposer.last_stamp_ms = std::max(o.proposer.last_stamp_ms, c.stamp_ms);
  }
  o.hard.log[slot] = std::move(entry);
  o.acceptor.dirty_slots.insert(slot);
  MarkDirty(o);
}

std::optional<LogEntry> Replica::EntryAt(const ObjectId& object, const ObjectState& o,
                                         Slot slot) const {
  if (auto it = o.hard.log.find(slot); it != o.hard.log.end()) return it->second;
  // Only applied entries leave memory (EvictApplied); below the truncation point there is none.
  if (log_ == nullptr || slot <= o.hard.truncated_through || slot > o.hard.commit_index) {
    return std::nullopt;
  }
  std::optional<LogEntry> e = log_->Entry(object, slot);
  ATLAS_CHECK(e.has_value());  // written before it was evicted, deleted only by truncation
  return e;
}

std::optional<LogEntry> Replica::Entry(const ObjectId& object, Slot slot) const {
  const ObjectState* o = FindObj(object);
  return o == nullptr ? std::nullopt : EntryAt(object, *o, slot);
}

size_t Replica::EntriesInMemory(const ObjectId& object) const {
  const ObjectState* o = FindObj(object);
  return o == nullptr ? 0 : o->hard.log.size();
}

void Replica::EvictApplied(const ObjectId& object, ObjectState& o) {
  if (log_ == nullptr) return;
  Slot through = o.learner.applied;
  // The bug switch also lets accepted entries go: a Promise no longer reports them.
  if (config_.test_evict_accepted && !o.hard.log.empty()) through = o.hard.log.rbegin()->first;
  // Accepts still waiting for lazy members are read from memory when they leave.
  if (auto l = lazy_.find(object); l != lazy_.end() && l->second.first != 0) {
    through = std::min(through, l->second.first - 1);
  }
  // (A btree: an erase invalidates every iterator but the one it returns.)
  for (auto it = o.hard.log.begin(); it != o.hard.log.end() && it->first <= through;) {
    // A dirty entry is not written yet: it stays until a Ready carried it (CollectPersist).
    it = o.acceptor.dirty_slots.contains(it->first) ? std::next(it) : o.hard.log.erase(it);
  }
}

void Replica::MarkDirty(ObjectState& o) {
  o.acceptor.dirty = true;
  work_ = true;
}

// ---------------------------------------------------------------------------------------------
// Messages.

void Replica::Send(Message msg) {
  msg.from = config_.id;
  if (msg.to != config_.id) {
    ready_.messages.push_back(std::move(msg));
    return;
  }
  const bool own_ack = msg.type == MessageType::kPromise || msg.type == MessageType::kAccepted;
  if (own_ack && !config_.test_count_own_ack_before_persist) {
    // What it vouches for is in the Ready being collected (readies_taken_ + 1).
    held_.emplace_back(readies_taken_ + 1, std::move(msg));
  } else {
    local_.push_back(std::move(msg));
  }
}

void Replica::Broadcast(const Message& msg, bool include_self) {
  EpochSet epochs{latest_epoch_};
  if (latest_epoch_ > 1) epochs.insert(latest_epoch_ - 1);
  SendTo(MembersOf(epochs), msg, include_self);
}

void Replica::SendTo(const NodeSet& nodes, const Message& msg, bool include_self) {
  for (NodeId node : nodes) {
    if (node == config_.id && !include_self) continue;
    Message m = msg;
    m.to = node;
    Send(std::move(m));
  }
}

void Replica::SendToSilent(const NodeSet& nodes, const NodeSet& answered, Message msg) {
  for (NodeId node : nodes) {
    if (answered.contains(node)) continue;
    msg.to = node;
    Send(msg);
  }
}

Message Replica::MessageTo(MessageType type, NodeId to, const ObjectId& object) {
  Message m;
  m.type = type;
  m.to = to;
  m.object = object;
  return m;
}

Message Replica::ReplyTo(const Message& msg, MessageType type) {
  return MessageTo(type, msg.from, msg.object);
}

Message Replica::ProposerMessage(MessageType type, const ObjectId& object,
                                 const ObjectState& o) const {
  Message m = MessageTo(type, kNoNode, object);
  m.ballot = o.proposer.ballot;
  m.epoch = latest_epoch_;  // The fence: acceptors in a newer epoch refuse us.
  // Prepare and Accept carry our commit index (from an Accept, acceptors learn the chosen
  // prefix); Confirm does not.
  if (type != MessageType::kConfirm) m.commit_index = o.hard.commit_index;
  return m;
}

void Replica::DrainLocal() {
  // Bounded: self-messages only ever produce a finite cascade (prepare->promise->accept...).
  while (!local_.empty()) {
    Message msg = std::move(local_.front());
    local_.pop_front();
    Step(msg);
  }
}

bool Replica::Alive(NodeId node) const {
  if (node == config_.id) return true;
  auto it = heard_.find(node);
  return it != heard_.end() && now_ - it->second <= config_.peer_timeout_ticks;
}

NodeSet Replica::LiveNodes() const {
  NodeSet live;
  for (const auto& [epoch, c] : configs_) {
    for (const auto& [node, zone] : c.quorums.topology().zone_of) {
      if (Alive(node)) live.insert(node);
    }
  }
  return live;
}

ZoneId Replica::ZoneOf(NodeId node) const {
  // Newest configuration first: a removed node keeps the zone it last had.
  for (auto it = configs_.rbegin(); it != configs_.rend(); ++it) {
    auto z = it->second.quorums.topology().zone_of.find(node);
    if (z != it->second.quorums.topology().zone_of.end()) return z->second;
  }
  return 0;
}

// ---------------------------------------------------------------------------------------------
// Step: one handler per message type.

void Replica::Step(const Message& msg) {
  if (msg.to != config_.id) return;
  // Not a member of any configuration we know (and not one added since): ignored.
  if (!KnownNode(msg.from) && !FromNewcomer(msg)) return;
  heard_[msg.from] = now_;
  switch (msg.type) {
    case MessageType::kPrepare: HandlePrepare(msg); break;
    case MessageType::kPromise: HandlePromise(msg); break;
    case MessageType::kAccept: HandleAccept(msg); break;
    case MessageType::kAccepted: HandleAccepted(msg); break;
    case MessageType::kCommit: HandleCommit(msg); break;
    case MessageType::kConfirm: HandleConfirm(msg); break;
    case MessageType::kConfirmAck: HandleConfirmAck(msg); break;
    case MessageType::kForward: HandleForward(msg); break;
    case MessageType::kForwardReject: HandleForwardReject(msg); break;
    case MessageType::kReadIndexRequest: HandleReadIndexRequest(msg); break;
    case MessageType::kReadIndexResponse: HandleReadIndexResponse(msg); break;
    case MessageType::kCatchupRequest: HandleCatchupRequest(msg); break;
    case MessageType::kCatchupResponse: HandleCatchupResponse(msg); break;
    case MessageType::kHeartbeat: HandleHeartbeat(msg); break;
    case MessageType::kMoveHint: HandleMoveHint(msg); break;
    case MessageType::kDirectoryRequest: HandleDirectoryRequest(msg); break;
    case MessageType::kDirectory: HandleDirectory(msg); break;
    case MessageType::kRangeRequest: HandleRangeRequest(msg); break;
    case MessageType::kRange: HandleRange(msg); break;
    case MessageType::kLeaseRequest: HandleLeaseRequest(msg); break;
    case MessageType::kLeaseGrant: HandleLeaseGrant(msg); break;
  }
  if (msg.from != config_.id) DrainLocal();
  // Here, not in the handlers: starting a catch-up may wake objects, so no handler's
  // references to object state are alive.
  StartQueuedCatchups();
}

// ---------------------------------------------------------------------------------------------
// Ready.

bool Replica::Quiet() const {
  // Accepts or a notice waiting for lazy members leave after lazy_flush_ticks, not at the next
  // heartbeat.
  const bool lazy_waiting = std::any_of(lazy_.begin(), lazy_.end(), [](const auto& kv) {
    return kv.second.first != 0 || kv.second.notice_owed;
  });
  return active_.empty() && pending_.empty() && deadlines_.empty() && local_.empty() &&
         held_.empty() && catchup_waiting_.empty() && !lazy_waiting;
}

consensus::Tick Replica::TicksToHeartbeat() const {
  if (last_heartbeat_ < 0) return 1;
  return std::max<consensus::Tick>(1, config_.heartbeat_ticks - (now_ - last_heartbeat_));
}

bool Replica::HasReady() const {
  return work_ || !ready_.messages.empty() || !ready_.replies.empty() || !ready_.persist.empty() ||
         !ready_.ownership.empty();
}

void Replica::TakeCollect(std::vector<ObjectId>& due, bool keep) {
  std::vector<ObjectId> more;
  if (keep) {
    more = collect_;
  } else {
    more.swap(collect_);
    for (const ObjectId& object : more) {
      Stored(object).bookkeeping.queued_collect = false;
    }
  }
  std::sort(more.begin(), more.end());
  std::vector<ObjectId> merged;
  merged.reserve(due.size() + more.size());
  std::set_union(due.begin(), due.end(), more.begin(), more.end(), std::back_inserter(merged));
  due.swap(merged);
}

void Replica::CollectReady() {
  // Only objects touched since the last collection can have anything to collect; in object
  // order, as a walk over every object would.
  std::vector<ObjectId> due;
  TakeCollect(due);
  for (const ObjectId& object : due) CollectOwnerWork(object, Stored(object));
  DrainLocal();
  // And whatever the messages to self touched, which stay listed for the next collection:
  // the first pass above has not seen them.
  TakeCollect(due, /*keep=*/true);
  for (const ObjectId& object : due) CollectCommitted(object, Stored(object));
  CollectReads();
  TakeCollect(due, /*keep=*/true);
  for (const ObjectId& object : due) CollectPersist(object, Stored(object));
}

void Replica::CollectOwnerWork(const ObjectId& object, ObjectState& o) {
  if (o.proposer.role == Role::kOwner && o.proposer.anchor_slot == 0 && !NeedsAnchor(o) &&
      !IsMember(o.hard.anchor_epoch, config_.id) && o.hard.anchor_epoch != 0 &&
      o.hard.anchor_epoch == latest_epoch_) {
    StepDown(object, o);  // Re-anchored in a configuration without us: hand it over.
  }
  FlushProposals(object, o);
  StartReadRound(object, o);
  StartHolderRound(object, o);
  SendDeferredAnchorAck(object, o);
}

void Replica::CollectCommitted(const ObjectId& object, ObjectState& o) {
  // With slots still in flight, their commit (or the next Accept) follows within a round trip
  // and carries this commit index: no message of its own. An idle pipeline announces it now.
  if (o.proposer.role == Role::kOwner && o.hard.commit_index > o.proposer.last_commit_sent &&
      o.proposer.in_flight.empty()) {
    SendCommitNotice(object, o, /*lazy_may_wait=*/true);
  }
  if (o.transfer.install != nullptr) {
    ready_.snapshots.push_back({object, std::move(*o.transfer.install)});
    o.transfer.install.reset();
  }
  for (Slot s = o.learner.applied + 1; s <= o.hard.commit_index; ++s) {
    std::optional<LogEntry> e = EntryAt(object, o, s);
    ATLAS_CHECK(e.has_value());
    for (const Command& cmd : e->value) {
      if (cmd.id.node != config_.id) continue;
      auto p = pending_.find(cmd.id);
      if (p != pending_.end() && !p->second.is_read) {
        FinishRequest(cmd.id, ReplyCode::kOk, true, "");
      }
    }
    // Anchors are the core's: the host applies the commands after it (none: a no-op).
    if (IsAnchor(e->value)) e->value.erase(e->value.begin());
    for (const Command& cmd : e->value) o.learner.applied_bytes += cmd.data.size();
    ready_.committed.push_back({object, s, std::move(e->value)});
    o.learner.applied = s;
  }
  // Every snapshot_interval_slots slots, or sooner when they are large (the log on disk
  // would otherwise hold a table's large values a second time).
  if (o.learner.applied > o.learner.snapshot_asked &&
      (o.learner.applied >= o.learner.snapshot_asked + config_.snapshot_interval_slots ||
       o.learner.applied_bytes >= config_.snapshot_interval_bytes)) {
    o.learner.snapshot_asked = o.learner.applied;
    o.learner.applied_bytes = 0;
    ready_.snapshot_requests.push_back({object, o.learner.applied});
  }
}

void Replica::CollectReads() {
  for (auto it = reads_indexed_.begin(); it != reads_indexed_.end();) {
    const RequestId id = *it;
    auto p = pending_.find(id);
    ATLAS_CHECK(p != pending_.end());
    const ObjectState* o = FindObj(p->second.object);
    if (o != nullptr && o->learner.applied >= p->second.read_index) {
      ready_.reads.push_back({id, p->second.object});
      deadlines_.erase({p->second.deadline, id});
      pending_.erase(p);
      it = reads_indexed_.erase(it);
    } else {
      ++it;
    }
  }
}

void Replica::CollectPersist(const ObjectId& object, ObjectState& o) {
  if (!o.acceptor.dirty) return;
  HardStateUpdate u;
  u.object = object;
  u.promised = o.hard.promised;
  u.commit_index = o.hard.commit_index;
  u.truncated_through = o.hard.truncated_through;
  u.truncated_from = o.acceptor.truncated_persisted;
  o.acceptor.truncated_persisted = o.hard.truncated_through;
  u.anchor_epoch = o.hard.anchor_epoch;
  u.anchor_config = o.hard.anchor_config;
  for (Slot s : o.acceptor.dirty_slots) {
    auto it = o.hard.log.find(s);
    if (it != o.hard.log.end()) u.entries.push_back({s, it->second});
  }
  // Entries need the fsync only when accepted (HandleAccept raises must_sync with its ack);
  // chosen ones learned from a commit-covered Accept, a catch-up or the owner's own commit rest
  // on a Q2's durable copies, and RocksDB's WAL keeps a prefix of what is written unsynced.
  u.must_sync = o.acceptor.must_sync;
  ready_.persist.push_back(std::move(u));
  o.acceptor.must_sync = false;
  o.acceptor.dirty = false;
  o.acceptor.dirty_slots.clear();
}

Ready Replica::TakeReady() {
  CollectReady();
  work_ = false;
  Ready out = std::move(ready_);
  ready_ = Ready{};
  out.number = ++readies_taken_;
  return out;
}

void Replica::Advance(const Ready& ready) {
  // The node's own promises and acceptances persisted by this Ready count now.
  while (!held_.empty() && held_.front().first <= ready.number) {
    local_.push_back(std::move(held_.front().second));
    held_.pop_front();
  }
  if (!local_.empty()) {
    DrainLocal();
    work_ = true;
  }
  // Applied entries this Ready wrote (or an earlier one did) are on disk: they leave memory,
  // as do those a lazy flush no longer needs.
  for (const CommittedEntry& c : ready.committed) evict_due_.insert(c.object);
  for (const ObjectId& object : evict_due_) {
    if (auto it = objects_.find(object); it != objects_.end()) {
      EvictApplied(object, Wake(object, it->second));
    }
  }
  evict_due_.clear();
  // The host durably took these snapshots: the log below them may go (bounded memory).
  for (const SnapshotRequest& req : ready.snapshot_requests) {
    ObjectState& o = Obj(req.object);
    const Slot previous = o.learner.snapshot_slot;
    o.learner.snapshot_slot = std::max(previous, req.slot);
    const Slot tail = config_.log_tail_slots;
    Slot through = o.learner.snapshot_slot > tail ? o.learner.snapshot_slot - tail : 0;
    // Snapshots asked for by bytes may come sooner than every log_tail_slots slots: the tail
    // is then what was applied since the previous one (about snapshot_interval_bytes).
    through = std::max(through, std::min(previous, o.learner.snapshot_slot));
    o.learner.truncate_wanted = std::max(o.learner.truncate_wanted, through);
    TruncateLog(req.object, o);
  }
}

void Replica::TruncateLog(const ObjectId& object, ObjectState& o) {
  Slot through = o.learner.truncate_wanted;
  // A learner receiving our snapshot continues with the log after it.
  if (o.transfer.serving != nullptr) through = std::min(through, o.transfer.serving->slot());
  // Accepts still waiting for lazy members are read from the log when they leave (FlushLazy
  // truncates once they left).
  if (auto l = lazy_.find(object); l != lazy_.end() && l->second.first != 0) {
    through = std::min(through, l->second.first - 1);
  }
  if (through <= o.hard.truncated_through) return;
  o.hard.truncated_through = through;
  o.hard.log.erase(o.hard.log.begin(), o.hard.log.upper_bound(through));
  for (auto it = o.acceptor.dirty_slots.begin(); it != o.acceptor.dirty_slots.end();) {
    it = *it <= through ? o.acceptor.dirty_slots.erase(it) : std::next(it);
  }
  MarkDirty(o);
}

// ---------------------------------------------------------------------------------------------
// Introspection.

bool Replica::IsOwner(const ObjectId& object) const {
  const ObjectState* o = FindObj(object);
  return o != nullptr && o->proposer.role == Role::kOwner;
}

LocalReadWindow Replica::LocalReads(const ObjectId& object) const {
  const ObjectState* o = FindObj(object);
  if (o != nullptr && o->proposer.role == Role::kFollower) {
    // A lease holder, once it applied everything it accepted (docs/consensus.md §Replica read
    // leases).
    std::optional<Slot> index = HolderReadIndex(object, *o);
    if (!index || o->learner.applied < *index) return {};
    if (config_.test_holder_reads_expired) return {LocalReadWindow::kForever, 0};
    const int64_t until = held_leases_.at(object).until_ms;
    return {until, until - OwnerLeaseMs() / 2};
  }
  if (o == nullptr || !may_own_ || o->proposer.role != Role::kOwner ||
      o->hard.commit_index < o->reads.ready_slot || o->learner.applied < o->reads.ready_slot) {
    return {};
  }
  if (InEveryQ1(ObjectEpochs(*o))) return {LocalReadWindow::kForever, LocalReadWindow::kForever};
  const OwnerLeaseState* lease = HeldLease(object, *o);
  if (lease == nullptr) return {};
  return {lease->until_ms, RenewAtMs(*lease)};
}

NodeId Replica::BelievedOwner(const ObjectId& object) const {
  const ObjectState* o = FindObj(object);
  if (o == nullptr) return kNoNode;
  if (o->proposer.role == Role::kOwner) return config_.id;
  return o->learner.owner_ballot.node;
}

Ballot Replica::Promised(const ObjectId& object) const {
  const ObjectState* o = FindObj(object);
  return o == nullptr ? Ballot{} : o->hard.promised;
}

Slot Replica::CommitIndex(const ObjectId& object) const {
  const ObjectState* o = FindObj(object);
  return o == nullptr ? 0 : o->hard.commit_index;
}

uint64_t Replica::AnchorEpoch(const ObjectId& object) const {
  const ObjectState* o = FindObj(object);
  return o == nullptr ? 0 : o->hard.anchor_epoch;
}

Slot Replica::AppliedIndex(const ObjectId& object) const {
  const ObjectState* o = FindObj(object);
  return o == nullptr ? 0 : o->learner.applied;
}

size_t Replica::LaggingObjects() const {
  RefreshIndexes();
  return lagging_;
}

std::optional<ObjectId> Replica::ForEachObject(
    const ObjectId& after, size_t max,
    const std::function<void(const ObjectId&, const ObjectSummary&)>& fn) const {
  std::optional<ObjectState> held;
  size_t visited = 0;
  for (auto it = after.empty() ? objects_.begin() : objects_.upper_bound(after);
       it != objects_.end(); ++it) {
    if (visited++ == max) return std::prev(it)->first;
    const ObjectState& o = Peek(it->second, held);
    const NodeId owner =
        o.proposer.role == Role::kOwner ? config_.id : o.learner.owner_ballot.node;
    fn(it->first, ObjectSummary{owner, o.hard.promised, o.hard.commit_index});
  }
  return std::nullopt;
}

std::vector<ObjectId> Replica::Objects() const {
  std::vector<ObjectId> out;
  for (const auto& [object, stored] : objects_) out.push_back(object);
  return out;
}

}  // namespace atlas::consensus
