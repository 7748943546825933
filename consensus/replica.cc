#include "consensus/replica.h"

#include <algorithm>
#include <iterator>
#include <utility>

#include "absl/strings/str_cat.h"
#include "consensus/check.h"

namespace atlas::consensus {

namespace {
// An anchor entry: a batch of exactly one reserved command {kNoNode, epoch} whose data is the
// EncodeQuorumConfig of C_epoch. Client request ids never use kNoNode.
bool IsAnchor(const Batch& batch) { return batch.size() == 1 && batch[0].id.node == kNoNode; }
}  // namespace

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
                 std::unique_ptr<MigrationPolicy> policy, uint64_t seed)
    : config_(std::move(config)),
      snapshots_(snapshots),
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
}

void Replica::Restore(const ObjectId& object, ObjectHardState hard) {
  active_.insert(object);
  ObjectState& o = objects_[object];
  o.hard = std::move(hard);
  if (config_.test_forget_promises_on_restart) o.hard.promised = Ballot{};
  std::optional<Snapshot> snap = snapshots_->LatestSnapshot(object);
  o.learner.applied = snap ? snap->slot : 0;
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
  o.learner.anchor_scanned = o.hard.commit_index;  // The persisted anchor is as of commit_index.
  if (o.hard.anchor_epoch != 0) LearnConfig(o.hard.anchor_epoch, o.hard.anchor_config);
  if (o.learner.applied < o.hard.commit_index) work_ = true;
  // CollectReady re-emits its committed slots, the indexes count it. (Not the heartbeat list:
  // the first heartbeat is a full one, or the rolling window reaches it.)
  o.bookkeeping.queued_collect = true;
  collect_.push_back(object);
  o.bookkeeping.queued_index = true;
  reindex_.push_back(object);
}

// ---------------------------------------------------------------------------------------------
// Small helpers.

Replica::ObjectState& Replica::Obj(const ObjectId& object) {
  // Whatever touches an object may have given it a timer: Tick looks at it (NeedsTick).
  active_.insert(object);
  auto it = objects_.find(object);
  if (it != objects_.end()) {
    Touch(object, it->second);
    return it->second;
  }
  ObjectState& o = objects_[object];
  // A new object's ballots also start above anything used before a restart.
  o.proposer.ballot = Ballot{restart_counter_floor_, kNoNode};
  Touch(object, o);
  return o;
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
}

void Replica::RefreshIndexes() const {
  for (const ObjectId& object : reindex_) {
    auto it = objects_.find(object);
    if (it == objects_.end()) continue;
    const ObjectState& o = it->second;
    o.bookkeeping.queued_index = false;
    if (o.bookkeeping.indexed_held) {
      auto c = anchor_counts_.find(o.bookkeeping.indexed_anchor);
      if (--c->second == 0) anchor_counts_.erase(c);
    }
    o.bookkeeping.indexed_held = Held(o);
    if (o.bookkeeping.indexed_held) {
      o.bookkeeping.indexed_anchor = o.hard.anchor_epoch;
      ++anchor_counts_[o.bookkeeping.indexed_anchor];
    }
    // Sweep's static conditions; the timed ones (backoff, owner heard) are checked there.
    // "Unfinished": slots an owner left accepted but not known committed (a removed owner
    // that handed over): nobody else would complete them without client traffic.
    const bool unfinished = o.hard.log.upper_bound(o.hard.commit_index) != o.hard.log.end() &&
                            o.learner.known_commit <= o.hard.commit_index;
    const bool sweep = o.proposer.role == Role::kFollower && o.bookkeeping.indexed_held &&
                       (NeedsAnchor(o) || unfinished);
    if (sweep != o.bookkeeping.indexed_sweep) {
      if (sweep) {
        sweep_.insert(object);
      } else {
        sweep_.erase(object);
      }
      o.bookkeeping.indexed_sweep = sweep;
    }
    const bool lagging =
        o.learner.applied < o.learner.known_commit || o.learner.applied < o.hard.commit_index;
    if (lagging != o.bookkeeping.indexed_lagging) {
      lagging_ = lagging ? lagging_ + 1 : lagging_ - 1;
      o.bookkeeping.indexed_lagging = lagging;
    }
  }
  reindex_.clear();
}

const Replica::ObjectState* Replica::FindObj(const ObjectId& object) const {
  auto it = objects_.find(object);
  return it == objects_.end() ? nullptr : &it->second;
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

absl::Status Replica::QuorumStatus() const { return CheckAvailableIn({latest_epoch_}); }

absl::Status Replica::QuorumStatus(const ObjectId& object) const {
  const ObjectState* o = FindObj(object);
  if (o == nullptr) {
    ObjectState fresh;
    return CheckAvailableIn(ObjectEpochs(fresh));
  }
  return CheckAvailableIn(ObjectEpochs(*o));
}

absl::Status Replica::CheckAvailableIn(const EpochSet& epochs) const {
  const NodeSet live = LiveNodes();
  const ZoneId zone = ZoneOf(config_.id);
  for (uint64_t e : epochs) {
    const ConfigInfo* c = FindConfig(e);
    if (c == nullptr) {
      return absl::UnavailableError(absl::StrCat(
          "quorum unavailable: configuration epoch ", e, " is not known to this node yet"));
    }
    absl::Status s = c->quorums.CheckAvailable(zone, live);
    if (!s.ok()) {
      if (epochs.size() == 1) return s;
      return absl::UnavailableError(absl::StrCat(s.message(), " (in epoch ", e,
                                                 " of a joint quorum)"));
    }
  }
  return absl::OkStatus();
}

// ---------------------------------------------------------------------------------------------
// Configurations (docs/consensus.md, "Reconfiguration").

void Replica::AddConfig(uint64_t epoch, Topology topology, QuorumSpec quorum) {
  if (configs_.contains(epoch)) return;
  std::string encoded = EncodeQuorumConfig(epoch, topology, quorum);
  configs_.emplace(epoch, ConfigInfo{QuorumSystem(std::move(topology), quorum),
                                     std::move(encoded)});
}

void Replica::LearnConfig(uint64_t epoch, const std::string& encoded) {
  if (configs_.contains(epoch)) return;
  uint64_t e = 0;
  Topology t;
  QuorumSpec q;
  // Undecodable: the epoch stays unknown, so no quorum in it can form (the safe direction).
  if (!DecodeQuorumConfig(encoded, e, t, q) || e != epoch) return;
  t.distance = Latest().quorums.topology().distance;  // Only orders zones.
  AddConfig(epoch, std::move(t), q);
}

void Replica::SetConfig(uint64_t epoch, Topology topology, QuorumSpec quorum) {
  ATLAS_CHECK(epoch >= 1);
  AddConfig(epoch, std::move(topology), quorum);
  if (epoch <= latest_epoch_) return;
  latest_epoch_ = epoch;
  // Quorums of every object now include C_L: re-send what is in flight at once, in the new
  // epoch (acceptors that know it fence the old one), and owners re-anchor (FlushProposals).
  for (auto& [object, o] : objects_) {
    Touch(object, o);  // NeedsAnchor changed for all of them (indexes, CollectReady).
    if (o.proposer.role == Role::kCandidate) o.proposer.phase1_sent = now_ - config_.resend_ticks;
    for (auto& [slot, f] : o.proposer.in_flight) f.sent_tick = now_ - config_.resend_ticks;
    if (o.reads.active) o.reads.sent = now_ - config_.resend_ticks;
  }
  work_ = true;
}

const Replica::ConfigInfo* Replica::FindConfig(uint64_t epoch) const {
  auto it = configs_.find(epoch);
  return it == configs_.end() ? nullptr : &it->second;
}

bool Replica::IsMember(uint64_t epoch, NodeId node) const {
  const ConfigInfo* c = FindConfig(epoch);
  return c != nullptr && c->quorums.topology().zone_of.contains(node);
}

bool Replica::KnownNode(NodeId node) const {
  for (const auto& [epoch, c] : configs_) {
    if (c.quorums.topology().zone_of.contains(node)) return true;
  }
  return false;
}

Replica::EpochSet Replica::ObjectEpochs(const ObjectState& o) const {
  const uint64_t l = latest_epoch_;
  if (config_.test_latest_config_only) return {l};
  EpochSet out;
  const uint64_t a = std::max(o.hard.anchor_epoch, o.proposer.adopted);
  if (a == l) {
    out.insert(l);
  } else {
    // Not anchored at L (yet): its values may have been chosen in its anchor's configuration,
    // and (when it has none, or an older one) in C_{L-1}, the last one that could choose
    // without C_L. Asking C_{L-1} also for a stale anchor is stronger than needed by the lead's
    // rule and closes the case "anchored at L-1 elsewhere, our copy still at an older anchor".
    if (a != 0) out.insert(a);
    if (l > 1) out.insert(l - 1);
    out.insert(l);
  }
  if (o.proposer.role != Role::kFollower) {
    out.insert(o.proposer.joint.begin(), o.proposer.joint.end());
  }
  return out;
}

bool Replica::IsQ1In(const EpochSet& epochs, const NodeSet& nodes) const {
  for (uint64_t e : epochs) {
    const ConfigInfo* c = FindConfig(e);
    if (c == nullptr || !c->quorums.IsQ1(nodes)) return false;
  }
  return true;
}

bool Replica::IsQ2In(const EpochSet& epochs, const NodeSet& nodes) const {
  for (uint64_t e : epochs) {
    const ConfigInfo* c = FindConfig(e);
    if (c == nullptr || !c->quorums.IsQ2(nodes)) return false;
  }
  return true;
}

NodeSet Replica::MembersOf(const EpochSet& epochs) const {
  NodeSet out;
  for (uint64_t e : epochs) {
    const ConfigInfo* c = FindConfig(e);
    if (c == nullptr) continue;
    for (const auto& [node, zone] : c->quorums.topology().zone_of) out.insert(node);
  }
  return out;
}

bool Replica::NeedsAnchor(const ObjectState& o) const {
  if (config_.test_latest_config_only) return false;
  // No anchor means "written in the initial configuration only" (ObjectEpochs gives {1} at
  // epoch 1), so a cluster that never reconfigured pays nothing for anchors.
  return std::max<uint64_t>({o.hard.anchor_epoch, o.proposer.adopted, 1}) < latest_epoch_;
}

bool Replica::Held(const ObjectState& o) const {
  return o.hard.commit_index > 0 || !o.hard.log.empty();
}

uint64_t Replica::AnchorFloor() const {
  RefreshIndexes();
  if (anchor_counts_.empty()) return latest_epoch_;
  return std::min(latest_epoch_, anchor_counts_.begin()->first);
}

bool Replica::Fenced(const Message& msg) const {
  return std::max<uint64_t>(msg.epoch, 1) < latest_epoch_;
}

void Replica::NoteFence(const Message& reply) {
  fenced_epoch_ = std::max(fenced_epoch_, reply.epoch);
}

bool Replica::Settled() const {
  const uint64_t l = latest_epoch_;
  if (l <= 1) return true;
  const ConfigInfo* prev = FindConfig(l - 1);
  if (prev == nullptr) return false;  // The host must SetConfig the history; until then, no.
  NodeSet s;
  for (const auto& [node, zone] : prev->quorums.topology().zone_of) {
    if (node == config_.id) {
      if (AnchorFloor() >= l) s.insert(node);
      continue;
    }
    auto it = settle_witness_.find(node);
    if (it != settle_witness_.end() && it->second >= l) s.insert(node);
  }
  return prev->quorums.IsQ1(s) && prev->quorums.IsQ2(s);
}

void Replica::ScanAnchors(ObjectState& o) {
  Slot from = std::max(o.learner.anchor_scanned, o.hard.truncated_through) + 1;
  for (auto it = o.hard.log.lower_bound(from);
       it != o.hard.log.end() && it->first <= o.hard.commit_index; ++it) {
    if (!IsAnchor(it->second.value)) continue;
    const Command& a = it->second.value[0];
    if (a.id.seq >= o.hard.anchor_epoch) {
      o.hard.anchor_epoch = a.id.seq;
      o.hard.anchor_config = a.data;
      LearnConfig(a.id.seq, a.data);
      MarkDirty(o);
    }
  }
  o.learner.anchor_scanned = std::max(o.learner.anchor_scanned, o.hard.commit_index);
  if (o.proposer.anchor_slot != 0 && o.hard.commit_index >= o.proposer.anchor_slot) {
    // Our anchor committed: every earlier slot is committed too, so only the base quorums
    // matter from here on.
    o.proposer.anchor_slot = 0;
    o.proposer.joint.clear();
    o.proposer.adopted = 0;
    if (o.hard.anchor_epoch == latest_epoch_) ++probes_.reanchors_committed;
  }
}

void Replica::Send(Message msg) {
  msg.from = config_.id;
  if (msg.to == config_.id) {
    local_.push_back(std::move(msg));
  } else {
    ready_.messages.push_back(std::move(msg));
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

void Replica::PutEntry(ObjectState& o, Slot slot, LogEntry entry) {
  for (const Command& c : entry.value) {
    o.proposer.last_stamp_ms = std::max(o.proposer.last_stamp_ms, c.stamp_ms);
  }
  o.hard.log[slot] = std::move(entry);
  o.acceptor.dirty_slots.insert(slot);
  MarkDirty(o);
}

void Replica::MarkDirty(ObjectState& o) {
  o.acceptor.dirty = true;
  work_ = true;
}

void Replica::Promise(const ObjectId& object, ObjectState& o, Ballot b) {
  if (b <= o.hard.promised) return;
  o.hard.promised = b;
  MarkDirty(o);
  ObserveBallot(o, b);
  // Our own acceptor promised someone else: our ballot can no longer gather a quorum that
  // includes us, and continuing would duel forever (WPaxos §4.2: adopt the higher ballot).
  if (o.proposer.role != Role::kFollower && b > o.proposer.ballot) StepDown(object, o);
}

// A rejection from the node we believe owns the object, saying it does not own it (it
// restarted, or stepped down without anyone stealing since): forwarding there again would only
// be rejected again, so the next routing steals (Decide treats that owner as gone).
void Replica::NoteDisowned(ObjectState& o, const Message& msg) {
  if (msg.slot == kNotOwning && !msg.ok && msg.type == MessageType::kReadIndexResponse) {
    if (o.learner.owner_ballot.node == msg.from) o.learner.disowned = o.learner.owner_ballot;
  } else if (msg.slot == kNotOwning && msg.type == MessageType::kForwardReject) {
    if (o.learner.owner_ballot.node == msg.from) o.learner.disowned = o.learner.owner_ballot;
  }
}

void Replica::ObserveBallot(ObjectState& o, Ballot b) {
  // The node of the highest ballot seen is our best guess of the owner (it may still be
  // stealing); forwards address that exact ballot.
  if (b > o.learner.owner_ballot) o.learner.owner_ballot = b;
}

bool Replica::IsOwner(const ObjectId& object) const {
  const ObjectState* o = FindObj(object);
  return o != nullptr && o->proposer.role == Role::kOwner;
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

std::vector<ObjectId> Replica::Objects() const {
  std::vector<ObjectId> out;
  for (const auto& [object, o] : objects_) out.push_back(object);
  return out;
}

// ---------------------------------------------------------------------------------------------
// Client requests and routing.

void Replica::Propose(const ObjectId& object, std::string command, RequestId id) {
  ATLAS_CHECK(id.node == config_.id);
  ATLAS_CHECK(!pending_.contains(id));
  if (pending_.size() >= config_.pending_requests_max) {
    ready_.replies.push_back({id, object, false, ReplyCode::kBusy, true, "too many requests"});
    return;
  }
  PendingRequest& p = pending_[id];
  p.object = object;
  p.command = command;
  p.deadline = now_ + config_.request_timeout_ticks;
  deadlines_.insert({p.deadline, id});
  RouteWrite(object, Command{id, std::move(command)});
  DrainLocal();
}

void Replica::Read(const ObjectId& object, RequestId id) {
  ATLAS_CHECK(id.node == config_.id);
  ATLAS_CHECK(!pending_.contains(id));
  if (pending_.size() >= config_.pending_requests_max) {
    ready_.replies.push_back({id, object, true, ReplyCode::kBusy, true, "too many requests"});
    return;
  }
  PendingRequest& p = pending_[id];
  p.object = object;
  p.is_read = true;
  p.deadline = now_ + config_.request_timeout_ticks;
  deadlines_.insert({p.deadline, id});
  if (config_.test_unsafe_local_reads) {
    SetReadIndex(id, 0);
    return;
  }
  RouteRead(object, id);
  DrainLocal();
}

void Replica::Steal(const ObjectId& object) {
  ObjectState& o = Obj(object);
  o.proposer.backoff_until = 0;
  StartSteal(object, StealReason::kMove);
  DrainLocal();
}

void Replica::SetClock(int64_t wall_ms, bool may_own) {
  wall_ms_ = wall_ms;
  if (may_own == may_own_) return;
  may_own_ = may_own;
  if (may_own) return;
  // An owner whose clock is no longer trusted must not stamp another command: hand every
  // object back, so that nodes with trusted clocks steal them.
  std::vector<ObjectId> held;
  for (const auto& [object, o] : objects_) {
    if (o.proposer.role != Role::kFollower) held.push_back(object);
  }
  for (const ObjectId& object : held) StepDown(object, Obj(object));
  DrainLocal();
}

void Replica::Move(const ObjectId& object, NodeId target) {
  if (target == config_.id) {
    Steal(object);
    return;
  }
  Send(MessageTo(MessageType::kMoveHint, target, object));
}

RouteDecision Replica::Decide(const ObjectId& object, const ObjectState& o) {
  RouteContext ctx;
  ctx.self = config_.id;
  ctx.self_zone = ZoneOf(config_.id);
  ctx.believed_owner = o.learner.owner_ballot.node;
  ctx.owner_alive = ctx.believed_owner != kNoNode && Alive(ctx.believed_owner) &&
                   o.learner.disowned != o.learner.owner_ballot;
  if (!IsMember(latest_epoch_, config_.id)) {
    // Removed: we may still accept for old anchors, but never own anything again.
    return ctx.believed_owner != kNoNode && ctx.believed_owner != config_.id
               ? RouteDecision::kForward
               : RouteDecision::kReject;
  }
  return policy_->Route(object, ctx);
}

void Replica::FinishRequest(RequestId id, ReplyCode code, bool definite, std::string detail) {
  auto it = pending_.find(id);
  if (it == pending_.end()) return;
  ready_.replies.push_back({id, it->second.object, it->second.is_read, code, definite,
                            std::move(detail)});
  deadlines_.erase({it->second.deadline, id});
  reads_indexed_.erase(id);
  pending_.erase(it);
}

void Replica::RejectCommand(const ObjectId& object, ObjectState& o, const Command& cmd,
                            bool definite, uint64_t route) {
  if (cmd.id.node == config_.id) {
    auto it = pending_.find(cmd.id);
    if (it == pending_.end()) return;
    if (definite && ++it->second.attempts <= config_.route_attempts_max) {
      RouteWrite(object, cmd);
    } else {
      FinishRequest(cmd.id, ReplyCode::kNotOwner, definite, "ownership changed");
    }
    return;
  }
  Message m = MessageTo(MessageType::kForwardReject, cmd.id.node, object);
  m.ok = definite;
  m.round = route;
  m.ballot = o.learner.owner_ballot;
  m.slot = o.proposer.role == Role::kFollower ? kNotOwning : 0;
  m.request_ids.push_back(cmd.id);
  Send(std::move(m));
}

void Replica::RejectQueued(const ObjectId& object, ObjectState& o, const Command& cmd) {
  uint64_t route = 0;
  if (auto it = o.forwarding.queued_routes.find(cmd.id); it != o.forwarding.queued_routes.end()) {
    route = it->second;
    o.forwarding.queued_routes.erase(it);
  }
  RejectCommand(object, o, cmd, /*definite=*/true, route);
}

void Replica::RouteWrite(const ObjectId& object, Command cmd, uint64_t route) {
  ObjectState& o = Obj(object);
  if (cmd.id.node == config_.id) {
    // Each routing of our own command is a new attempt: only a rejection of the current
    // attempt may trigger another, so duplicated rejections never fork the command.
    auto p = pending_.find(cmd.id);
    if (p == pending_.end()) return;  // Already answered.
    route = ++p->second.route;
    p->second.forwarded_to = kNoNode;
  }
  if (o.proposer.role == Role::kFollower) {
    switch (Decide(object, o)) {
      case RouteDecision::kForward:
        ForwardWrite(object, o, std::move(cmd), route);
        return;
      case RouteDecision::kReject:
        FinishRequest(cmd.id, ReplyCode::kNotOwner, true, "no owner known for " + object);
        return;
      case RouteDecision::kSteal:
        break;
    }
  }
  if (o.proposer.proposals.size() >= config_.proposals_max) {
    if (cmd.id.node == config_.id) {
      FinishRequest(cmd.id, ReplyCode::kBusy, true, "proposal queue full");
    } else {
      RejectCommand(object, o, cmd, true, route);
    }
    return;
  }
  if (cmd.id.node != config_.id) o.forwarding.queued_routes[cmd.id] = route;
  if (o.proposer.role == Role::kOwner) NoteAccess(object, o, cmd.id.node);
  const RequestId id = cmd.id;
  o.proposer.proposals.push_back(std::move(cmd));
  work_ = true;
  if (o.proposer.role == Role::kFollower) StartSteal(object, StealReason::kRequest, id);
}

void Replica::ForwardWrite(const ObjectId& object, ObjectState& o, Command cmd, uint64_t route) {
  if (o.forwarding.forward_ballot != o.learner.owner_ballot) {
    o.forwarding.forward_ballot = o.learner.owner_ballot;
    o.forwarding.forward_seq = config_.forward_seq_base;
  }
  Message m = MessageTo(MessageType::kForward, o.learner.owner_ballot.node, object);
  m.ballot = o.learner.owner_ballot;
  m.round = route;
  m.seq = ++o.forwarding.forward_seq;
  if (cmd.id.node == config_.id) {
    if (auto p = pending_.find(cmd.id); p != pending_.end()) p->second.forwarded_to = m.to;
  }
  m.commands.push_back(std::move(cmd));
  ++probes_.forwards;
  Send(std::move(m));
}

bool Replica::ForwardSeen(const ObjectState& o, NodeId origin, uint64_t seq) const {
  auto it = o.forwarding.windows.find(origin);
  if (it == o.forwarding.windows.end()) return false;
  return seq < it->second.next || it->second.above.contains(seq);
}

bool Replica::TakeForward(ObjectState& o, NodeId origin, uint64_t seq) {
  if (seq == 0 || ForwardSeen(o, origin, seq)) return false;
  ForwardWindow& w = o.forwarding.windows[origin];
  if (seq >= w.next + config_.forward_window_max) {
    // A new incarnation of the origin (its numbers start from its start time), or the first
    // forward of this window: start the window just below `seq`. Numbers under the new start
    // count as seen (never proposed twice: `next` only grows); a few below stay open for the
    // new incarnation's forwards that overtook each other.
    const uint64_t start = seq - std::min<uint64_t>(seq, config_.forward_reorder_slack);
    if (start > w.next) {
      w.next = start;
      w.above.erase(w.above.begin(), w.above.lower_bound(start));
    }
  }
  w.above.insert(seq);
  while (w.above.contains(w.next)) w.above.erase(w.next++);
  if (w.above.size() > config_.forward_window_max) {
    // Bound memory: treat the oldest gap as delivered. A forward that arrives in it later is
    // dropped as a duplicate; its origin times out with an unknown outcome (never a double).
    w.next = *w.above.begin();
    while (w.above.contains(w.next)) w.above.erase(w.next++);
  }
  return true;
}

void Replica::RouteRead(const ObjectId& object, RequestId id) {
  ObjectState& o = Obj(object);
  if (auto p = pending_.find(id); p != pending_.end()) p->second.forwarded_to = kNoNode;
  if (o.proposer.role == Role::kFollower) {
    switch (Decide(object, o)) {
      case RouteDecision::kForward: {
        Message m = MessageTo(MessageType::kReadIndexRequest, o.learner.owner_ballot.node, object);
        m.ballot = o.learner.owner_ballot;
        m.request_ids.push_back(id);
        if (auto p = pending_.find(id); p != pending_.end()) p->second.forwarded_to = m.to;
        ++probes_.forwards;
        Send(std::move(m));
        return;
      }
      case RouteDecision::kReject:
        FinishRequest(id, ReplyCode::kNotOwner, true, "no owner known for " + object);
        return;
      case RouteDecision::kSteal:
        break;
    }
  }
  if (o.reads.waiting.size() >= config_.reads_max) {
    FinishRequest(id, ReplyCode::kBusy, true, "read queue full");
    return;
  }
  if (o.proposer.role == Role::kOwner) NoteAccess(object, o, config_.id);
  o.reads.waiting.push_back({id, config_.id});
  work_ = true;
  if (o.proposer.role == Role::kFollower) StartSteal(object, StealReason::kRequest, id);
}

void Replica::NoteAccess(const ObjectId& object, ObjectState& o, NodeId from) {
  if (o.proposer.role != Role::kOwner) return;
  const ZoneId zone = ZoneOf(from);
  o.forwarding.last_from_zone[zone] = from;
  std::optional<ZoneId> move = policy_->RecordAccess(object, ZoneOf(config_.id), zone, now_);
  if (!move || *move == ZoneOf(config_.id)) return;
  auto it = o.forwarding.last_from_zone.find(*move);
  if (it == o.forwarding.last_from_zone.end()) return;
  ++probes_.moves_suggested;
  OwnershipEvent e;
  e.kind = OwnershipEventKind::kMoveSuggested;
  e.object = object;
  e.ballot = o.proposer.ballot;
  e.target = it->second;
  ready_.ownership.push_back(std::move(e));
  Send(MessageTo(MessageType::kMoveHint, it->second, object));
}

// ---------------------------------------------------------------------------------------------
// Step: one handler per message type.

void Replica::Step(const Message& msg) {
  if (msg.to != config_.id) return;
  if (!KnownNode(msg.from)) return;  // Not a member of any configuration we know.
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
  }
  if (msg.from != config_.id) DrainLocal();
}

// ---------------------------------------------------------------------------------------------
// Phase 1 (steal). WPaxos §4.2.

void Replica::StartSteal(const ObjectId& object, StealReason reason, RequestId request) {
  ObjectState& o = Obj(object);
  if (o.proposer.role != Role::kFollower) return;
  if (!IsMember(latest_epoch_, config_.id)) return;  // Removed nodes never own.
  if (!may_own_) {
    // No trusted clock to stamp with (yet): try again later (SetClock).
    o.proposer.want_steal = true;
    o.proposer.backoff_until =
        std::max(o.proposer.backoff_until, now_ + config_.steal_backoff_ticks);
    return;
  }
  if (now_ < o.proposer.backoff_until || fenced_epoch_ > latest_epoch_) {
    // Fenced: an acceptor knows a newer epoch; we cannot win before our host's SetConfig.
    if (fenced_epoch_ > latest_epoch_ && now_ >= o.proposer.backoff_until) {
      o.proposer.backoff_until = now_ + config_.steal_backoff_ticks;
    }
    o.proposer.want_steal = true;
    return;
  }
  o.proposer.want_steal = false;
  const uint64_t counter =
      std::max({o.hard.promised.counter, o.learner.owner_ballot.counter, o.proposer.ballot.counter,
                restart_counter_floor_}) + 1;
  o.proposer.ballot = Ballot{counter, config_.id};
  o.proposer.role = Role::kCandidate;
  o.forwarding.window_ballot = o.proposer.ballot;
  o.forwarding.windows.clear();
  o.proposer.promises.clear();
  o.proposer.recovered.clear();
  o.proposer.recovered_commit = 0;
  o.proposer.recovered_commit_from = kNoNode;
  o.proposer.joint.clear();
  o.proposer.adopted = 0;
  o.proposer.anchor_slot = 0;
  o.proposer.phase1_sent = now_;
  ++probes_.steals_started;
  OwnershipEvent e;
  e.kind = OwnershipEventKind::kPhase1Started;
  e.object = object;
  e.ballot = o.proposer.ballot;
  e.reason = reason;
  e.request = request;
  ready_.ownership.push_back(std::move(e));
  policy_->Reset(object);
  Message m = ProposerMessage(MessageType::kPrepare, object, o);
  SendTo(MembersOf(ObjectEpochs(o)), m, /*include_self=*/true);
}

void Replica::HandlePrepare(const Message& msg) {
  ObjectState& o = Obj(msg.object);
  Message r = ReplyTo(msg, MessageType::kPromise);
  if (!AcceptorRefuses(msg, o, r)) {
    Promise(msg.object, o, msg.ballot);
    r.ok = true;
    r.ballot = msg.ballot;
    r.commit_index = o.hard.commit_index;
    r.anchor_epoch = o.hard.anchor_epoch;
    r.anchor_config = o.hard.anchor_config;
    // Every accepted entry above our commit index: the stealer must re-propose the
    // highest-ballot value of each such slot (WPaxos §4.2, phase-1 recovery).
    for (auto it = o.hard.log.upper_bound(o.hard.commit_index); it != o.hard.log.end(); ++it) {
      r.entries.push_back({it->first, it->second});
    }
  }
  Send(std::move(r));
}

bool Replica::AcceptorRefuses(const Message& msg, const ObjectState& o, Message& reply) {
  if (Fenced(msg)) {
    // The epoch fence: nothing for a proposer that has not applied our latest epoch.
    ++probes_.fence_rejections;
    reply.ballot = o.hard.promised;
    reply.epoch = latest_epoch_;
    return true;
  }
  if (msg.ballot < o.hard.promised) {
    reply.ballot = o.hard.promised;
    return true;
  }
  return false;
}

// A refused Promise (role kCandidate), Accepted or ConfirmAck (kOwner): a newer epoch fences
// us, a higher ballot preempts us; either way a proposer in `role` steps down.
void Replica::HandleRejection(const Message& msg, ObjectState& o, Role role) {
  if (msg.epoch > latest_epoch_) {
    NoteFence(msg);
    if (o.proposer.role == role) StepDown(msg.object, o);
    return;
  }
  ObserveBallot(o, msg.ballot);
  if (o.proposer.role == role && msg.ballot > o.proposer.ballot) StepDown(msg.object, o);
}

void Replica::HandlePromise(const Message& msg) {
  ObjectState& o = Obj(msg.object);
  if (!msg.ok) return HandleRejection(msg, o, Role::kCandidate);
  if (o.proposer.role != Role::kCandidate || msg.ballot != o.proposer.ballot) return;
  o.proposer.promises.insert(msg.from);
  if (msg.commit_index > o.proposer.recovered_commit) {
    o.proposer.recovered_commit = msg.commit_index;
    o.proposer.recovered_commit_from = msg.from;
  }
  const EpochSet before = ObjectEpochs(o);
  if (msg.anchor_epoch != 0 && !config_.test_latest_config_only) {
    // Values may have been chosen in the responder's anchor configuration: need its Q1 too.
    // A newer anchor than ours becomes our view (entries below it arrive by catch-up).
    LearnConfig(msg.anchor_epoch, msg.anchor_config);
    o.proposer.joint.insert(msg.anchor_epoch);
    o.proposer.adopted = std::max(o.proposer.adopted, msg.anchor_epoch);
  }
  for (const SlotEntry& e : msg.entries) {
    if (IsAnchor(e.entry.value) && !config_.test_latest_config_only) {
      // A possibly chosen anchor: slots after it may be chosen in its configuration.
      LearnConfig(e.entry.value[0].id.seq, e.entry.value[0].data);
      o.proposer.joint.insert(e.entry.value[0].id.seq);
    }
    auto it = o.proposer.recovered.find(e.slot);
    if (it == o.proposer.recovered.end() || e.entry.ballot > it->second.ballot) {
      o.proposer.recovered[e.slot] = e.entry;
    }
  }
  const EpochSet need = ObjectEpochs(o);
  if (need != before) {
    // More configurations to hear from: ask their members now.
    Message m = ProposerMessage(MessageType::kPrepare, msg.object, o);
    for (NodeId node : MembersOf(need)) {
      if (o.proposer.promises.contains(node) || MembersOf(before).contains(node)) continue;
      m.to = node;
      Send(m);
    }
  }
  if (IsQ1In(need, o.proposer.promises)) {
    if (need.size() > 1) ++probes_.joint_phase1;
    BecomeOwner(msg.object, o);
  }
}

void Replica::BecomeOwner(const ObjectId& object, ObjectState& o) {
  o.proposer.role = Role::kOwner;
  o.proposer.steal_attempts = 0;
  ++probes_.steals_won;
  ObserveBallot(o, o.proposer.ballot);
  policy_->Reset(object);
  // Slots <= recovered_commit are chosen somewhere: learn them (catch-up), never re-propose,
  // because acceptors that already know them committed did not report them. Slots above were
  // reported by every Q1 acceptor: re-propose the highest-ballot value, or a no-op for a gap.
  const Slot base = std::max(o.proposer.recovered_commit, o.hard.commit_index);
  Slot top = base;
  if (!o.proposer.recovered.empty()) top = std::max(top, o.proposer.recovered.rbegin()->first);
  Message m = ProposerMessage(MessageType::kAccept, object, o);
  for (Slot s = base + 1; s <= top; ++s) {
    Batch value;
    auto it = o.proposer.recovered.find(s);
    if (it != o.proposer.recovered.end()) {
      value = it->second.value;
      ++probes_.recovered_uncommitted;
    } else {
      ++probes_.recovered_noop;
    }
    o.proposer.in_flight[s] = InFlight{value, {}, now_};
    m.entries.push_back({s, LogEntry{o.proposer.ballot, std::move(value)}});
  }
  o.proposer.recovered.clear();
  o.proposer.next_slot = top + 1;
  // Reads wait for the recovered prefix: the new owner catches up before it serves reads.
  o.reads.ready_slot = top;
  OwnershipEvent e;
  e.kind = OwnershipEventKind::kElected;
  e.object = object;
  e.ballot = o.proposer.ballot;
  e.slot = base + 1;
  ready_.ownership.push_back(std::move(e));
  if (!m.entries.empty()) SendTo(MembersOf(ObjectEpochs(o)), m, /*include_self=*/true);
  if (o.proposer.recovered_commit > o.hard.commit_index) {
    RequestCatchup(object, o, o.proposer.recovered_commit_from);
  }
  o.proposer.last_commit_sent = 0;
  work_ = true;
}

void Replica::StepDown(const ObjectId& object, ObjectState& o, bool announce) {
  if (o.proposer.role != Role::kFollower) {
    OwnershipEvent e;
    e.kind = o.proposer.role == Role::kOwner ? OwnershipEventKind::kSteppedDown
                                    : OwnershipEventKind::kPreempted;
    e.object = object;
    e.ballot = o.proposer.ballot;
    e.other = std::max(o.learner.owner_ballot, o.hard.promised);
    ready_.ownership.push_back(std::move(e));
  }
  if (o.proposer.role == Role::kCandidate) {
    ++probes_.steals_preempted;
    ++o.proposer.steal_attempts;
    // Randomized exponential backoff so duelling stealers separate (seeded, deterministic).
    const consensus::Tick base = config_.steal_backoff_ticks;
    const consensus::Tick cap = base << std::min(o.proposer.steal_attempts, 5);
    o.proposer.backoff_until = now_ + rng_.Range(base / 2, cap);
  } else if (o.proposer.role == Role::kOwner && !o.proposer.in_flight.empty()) {
    ++probes_.steal_during_phase2;
  }
  if (announce && o.proposer.role == Role::kOwner &&
      o.hard.commit_index > o.proposer.last_commit_sent && latest_epoch_ > 1) {
    // Announce what we committed before letting go: a removed owner may be stopped next, and
    // then nobody else could tell the learners.
    SendCommitNotice(object, o);
  }
  o.proposer.role = Role::kFollower;
  o.proposer.joint.clear();
  o.proposer.adopted = 0;
  o.proposer.anchor_slot = 0;
  o.proposer.in_flight.clear();
  o.proposer.chosen.clear();
  o.proposer.promises.clear();
  o.proposer.recovered.clear();
  o.reads.active = false;
  policy_->Reset(object);
  // Never-proposed commands are certainly not executed: re-route ours, hand others back.
  CommandQueue proposals;
  proposals.swap(o.proposer.proposals);
  std::vector<PendingRead> reads = std::move(o.reads.in_round);
  reads.insert(reads.end(), o.reads.waiting.begin(), o.reads.waiting.end());
  o.reads.in_round.clear();
  o.reads.waiting.clear();
  if (now_ < o.proposer.backoff_until && o.learner.owner_ballot.node == config_.id) {
    // Nobody better known yet: keep the work queued until the backoff ends.
    o.proposer.proposals = std::move(proposals);
    o.reads.waiting = std::move(reads);
    o.proposer.want_steal = true;
    return;
  }
  for (Command& cmd : proposals) RejectQueued(object, o, cmd);
  for (const PendingRead& r : reads) RejectRead(object, o, r);
}

void Replica::RejectRead(const ObjectId& object, ObjectState& o, const PendingRead& r) {
  if (r.origin == config_.id) {
    auto it = pending_.find(r.id);
    if (it == pending_.end()) return;
    if (++it->second.attempts <= config_.route_attempts_max) {
      RouteRead(object, r.id);
    } else {
      FinishRequest(r.id, ReplyCode::kNotOwner, true, "ownership changed");
    }
    return;
  }
  Message m = MessageTo(MessageType::kReadIndexResponse, r.origin, object);
  m.ok = false;
  m.ballot = o.learner.owner_ballot;
  m.slot = o.proposer.role == Role::kFollower ? kNotOwning : 0;
  m.request_ids.push_back(r.id);
  Send(std::move(m));
}

// ---------------------------------------------------------------------------------------------
// Phase 2. WPaxos §4.2: the owner runs phase 2 on a Q2 closest-first; Accept goes to every
// replica so remote ones also learn the value, and the nearest Q2 answers first.

void Replica::FlushProposals(const ObjectId& object, ObjectState& o) {
  if (o.proposer.role != Role::kOwner) return;
  if (o.proposer.anchor_slot != 0) return;  // Nothing after our anchor until it commits.
  Message m = ProposerMessage(MessageType::kAccept, object, o);
  if (NeedsAnchor(o)) {
    // Re-anchor in C_L once every earlier slot is committed here, so the Accept's commit index
    // lets acceptors certify the prefix (they ack an anchor only with everything before it).
    if (o.hard.commit_index + 1 != o.proposer.next_slot || !o.proposer.in_flight.empty()) return;
    const ConfigInfo& c = Latest();
    const Slot s = o.proposer.next_slot++;
    Batch anchor{Command{RequestId{kNoNode, latest_epoch_}, c.encoded}};
    o.proposer.anchor_slot = s;
    o.proposer.in_flight[s] = InFlight{anchor, {}, now_};
    m.entries.push_back({s, LogEntry{o.proposer.ballot, std::move(anchor)}});
    SendTo(MembersOf(ObjectEpochs(o)), m, /*include_self=*/true);
    return;
  }
  if (o.proposer.proposals.empty()) return;
  // WPaxos orders; the owner also dates: every command gets the owner's clock, never below a
  // stamp the object already carries (docs/consensus.md §Time).
  const int64_t stamp = std::max(o.proposer.last_stamp_ms, wall_ms_);
  o.proposer.last_stamp_ms = stamp;
  while (!o.proposer.proposals.empty() && o.proposer.in_flight.size() < config_.window_slots) {
    Batch batch;
    while (!o.proposer.proposals.empty() && batch.size() < config_.batch_commands_max) {
      o.forwarding.queued_routes.erase(o.proposer.proposals.front().id);
      batch.push_back(std::move(o.proposer.proposals.front()));
      batch.back().stamp_ms = stamp;
      o.proposer.proposals.pop_front();
    }
    const Slot s = o.proposer.next_slot++;
    o.proposer.in_flight[s] = InFlight{batch, {}, now_};
    m.entries.push_back({s, LogEntry{o.proposer.ballot, std::move(batch)}});
  }
  if (!m.entries.empty()) SendTo(MembersOf(ObjectEpochs(o)), m, /*include_self=*/true);
}

void Replica::HandleAccept(const Message& msg) {
  ObjectState& o = Obj(msg.object);
  Message r = ReplyTo(msg, MessageType::kAccepted);
  if (AcceptorRefuses(msg, o, r)) {
    for (const SlotEntry& e : msg.entries) r.slots.push_back(e.slot);
    Send(std::move(r));
    return;
  }
  Promise(msg.object, o, msg.ballot);
  ObserveBallot(o, msg.ballot);
  if (msg.ballot == o.learner.owner_ballot) o.learner.owner_heard = now_;
  for (const SlotEntry& e : msg.entries) {
    ATLAS_CHECK(e.entry.ballot == msg.ballot);
    // A slot we already know chosen keeps its value: any later ballot re-proposes that value.
    if (e.slot <= o.hard.commit_index) continue;
    auto it = o.hard.log.find(e.slot);
    if (it != o.hard.log.end() && it->second == e.entry) continue;
    PutEntry(o, e.slot, e.entry);
  }
  bool anchor = false;
  for (const SlotEntry& e : msg.entries) anchor = anchor || IsAnchor(e.entry.value);
  // With an anchor, learn the piggybacked commit index first: it may complete the prefix.
  if (anchor) LearnUpTo(msg.object, o, msg.ballot, msg.commit_index, msg.from);
  for (const SlotEntry& e : msg.entries) {
    if (IsAnchor(e.entry.value) && e.slot > o.hard.commit_index + 1 &&
        !config_.test_latest_config_only) {
      // An anchor certifies the prefix: ack it only once every earlier slot is committed here,
      // so any Q1 of its configuration finds a node reporting commit >= slot-1.
      o.acceptor.deferred_anchor = e.slot;
      o.acceptor.deferred_ballot = msg.ballot;
      o.acceptor.deferred_to = msg.from;
      ++probes_.anchor_acks_deferred;
      RequestCatchup(msg.object, o, msg.from);
      continue;
    }
    r.slots.push_back(e.slot);
  }
  r.ok = true;
  r.ballot = msg.ballot;
  Send(std::move(r));
  if (!anchor) LearnUpTo(msg.object, o, msg.ballot, msg.commit_index, msg.from);
}

void Replica::SendDeferredAnchorAck(const ObjectId& object, ObjectState& o) {
  if (o.acceptor.deferred_anchor == 0) return;
  const Slot s = o.acceptor.deferred_anchor;
  auto it = o.hard.log.find(s);
  if (o.hard.promised != o.acceptor.deferred_ballot || it == o.hard.log.end() ||
      it->second.ballot != o.acceptor.deferred_ballot || o.hard.commit_index >= s) {
    // Superseded (or committed: the owner no longer needs our ack).
    o.acceptor.deferred_anchor = 0;
    return;
  }
  if (o.hard.commit_index + 1 < s) return;
  Message r = MessageTo(MessageType::kAccepted, o.acceptor.deferred_to, object);
  r.ok = true;
  r.ballot = o.acceptor.deferred_ballot;
  r.slots.push_back(s);
  o.acceptor.deferred_anchor = 0;
  Send(std::move(r));
}

void Replica::HandleAccepted(const Message& msg) {
  ObjectState& o = Obj(msg.object);
  if (!msg.ok) return HandleRejection(msg, o, Role::kOwner);
  if (o.proposer.role != Role::kOwner || msg.ballot != o.proposer.ballot) return;
  for (Slot s : msg.slots) {
    auto it = o.proposer.in_flight.find(s);
    if (it == o.proposer.in_flight.end()) continue;
    it->second.acks.insert(msg.from);
    o.proposer.chosen.insert(s);  // Acked; whether a joint Q2 is what AdvanceOwnerCommit decides.
  }
  AdvanceOwnerCommit(o);
}

void Replica::AdvanceOwnerCommit(ObjectState& o) {
  while (o.proposer.chosen.contains(o.hard.commit_index + 1)) {
    const Slot s = o.hard.commit_index + 1;
    auto it = o.proposer.in_flight.find(s);
    ATLAS_CHECK(it != o.proposer.in_flight.end());
    // Judged now, not at ack time: the configurations needed may have grown since (a newer
    // epoch from SetConfig, an anchor learned by catch-up). A superset is always safe.
    if (!IsQ2In(ObjectEpochs(o), it->second.acks)) break;
    LogEntry chosen{o.proposer.ballot, std::move(it->second.value)};
    auto local = o.hard.log.find(s);
    if (local == o.hard.log.end() || !(local->second == chosen)) PutEntry(o, s, std::move(chosen));
    o.hard.commit_index = s;
    o.proposer.chosen.erase(s);
    o.proposer.in_flight.erase(it);
    MarkDirty(o);
    ScanAnchors(o);
  }
}

void Replica::SendCommitNotice(const ObjectId& object, ObjectState& o) {
  Message m = MessageTo(MessageType::kCommit, kNoNode, object);
  m.ballot = o.proposer.ballot;
  m.commit_index = o.hard.commit_index;
  EpochSet epochs = ObjectEpochs(o);
  epochs.insert(latest_epoch_);
  if (latest_epoch_ > 1) epochs.insert(latest_epoch_ - 1);
  SendTo(MembersOf(epochs), m, /*include_self=*/false);
  o.proposer.last_commit_sent = o.hard.commit_index;
}

// ---------------------------------------------------------------------------------------------
// Learner.

void Replica::HandleCommit(const Message& msg) {
  ObjectState& o = Obj(msg.object);
  ObserveBallot(o, msg.ballot);
  if (msg.ballot == o.learner.owner_ballot) o.learner.owner_heard = now_;
  LearnUpTo(msg.object, o, msg.ballot, msg.commit_index, msg.from);
}

void Replica::NoteCommitIndex(ObjectState& o, Slot commit_index, NodeId from) {
  if (from == config_.id) return;
  // An equally informed peer replaces one that went silent (crashed, or removed and stopped).
  if (commit_index > o.learner.known_commit ||
      (commit_index == o.learner.known_commit && o.learner.known_commit_from != from &&
       !Alive(o.learner.known_commit_from))) {
    o.learner.known_commit = commit_index;
    o.learner.known_commit_from = from;
  }
}

void Replica::LearnUpTo(const ObjectId& object, ObjectState& o, Ballot ballot, Slot commit_index,
                        NodeId from) {
  NoteCommitIndex(o, commit_index, from);
  if (commit_index > o.learner.notice_commit) {
    o.learner.notice_commit = commit_index;
    o.learner.notice_ballot = ballot;
  }
  // The owner of `ballot` proposed at most one value per slot, and it only reports slots it saw
  // chosen; so a local entry accepted in that same ballot is the chosen value.
  bool advanced = false;
  while (o.hard.commit_index < commit_index) {
    auto it = o.hard.log.find(o.hard.commit_index + 1);
    if (it == o.hard.log.end() || it->second.ballot != ballot) break;
    ++o.hard.commit_index;
    advanced = true;
  }
  if (advanced) {
    MarkDirty(o);
    ScanAnchors(o);
  }
  if (o.hard.commit_index < commit_index) RequestCatchup(object, o, from);
}

void Replica::RequestCatchup(const ObjectId& object, ObjectState& o, NodeId from) {
  if (from == config_.id || from == kNoNode) return;
  // A snapshot transfer in progress continues from the peer sending it while that peer lives
  // (switching peers starts the transfer over). Otherwise remember the best-informed peer we
  // heard of; Tick retries from it.
  if (o.transfer.partial != nullptr && Alive(o.transfer.partial->from)) {
    from = o.transfer.partial->from;
  } else if (o.hard.commit_index < o.learner.known_commit && from != o.learner.known_commit_from &&
             o.learner.known_commit_from != kNoNode &&
             (Alive(o.learner.known_commit_from) || !Alive(from))) {
    from = o.learner.known_commit_from;
  }
  // Never keep asking a peer that went silent (it may have crashed or left): any live peer
  // holds the chosen prefix up to its own commit index, and a learner holding a catch-up slot
  // (catchups_max) on a dead peer would starve the others.
  if (!Alive(from)) {
    for (NodeId node : LiveNodes()) {
      if (node != config_.id) {
        from = node;
        break;
      }
    }
  }
  // A chunk takes longer than a log tail to arrive (the sender may first build the snapshot):
  // retry a transfer less eagerly.
  const consensus::Tick retry =
      o.transfer.partial != nullptr ? config_.resend_ticks * 2 : config_.resend_ticks / 2;
  if (o.learner.catchup_sent >= 0 && now_ - o.learner.catchup_sent < retry) return;
  if (!catching_up_.contains(object)) {
    if (catching_up_.size() >= config_.catchups_max) return;  // Tick asks again later.
    catching_up_.insert(object);
  }
  o.learner.catchup_sent = now_;
  Message m = MessageTo(MessageType::kCatchupRequest, from, object);
  m.slot = o.hard.commit_index + 1;
  if (o.transfer.partial != nullptr) {
    if (o.transfer.partial->from == from) {
      ContinueTransfer(*o.transfer.partial, m);
    } else {
      o.transfer.partial.reset();  // Another peer: its snapshot differs; start over.
    }
  }
  Send(std::move(m));
}

void Replica::ContinueTransfer(const PartialSnapshot& partial, Message& request) {
  request.snapshot_slot = partial.slot;
  request.snapshot_offset = partial.data.size();
  request.snapshot_total = partial.total;  // Peers check offset <= total on every message.
}

void Replica::HandleCatchupRequest(const Message& msg) {
  ObjectState& o = Obj(msg.object);
  if (o.hard.commit_index < msg.slot) return;
  Message r = CatchupResponse(msg, o);
  Slot start = msg.slot;
  if (!ServeSnapshotChunk(msg, o, r, start)) return;
  if (CrossedRetry(o, msg.from, start, 0)) return;
  SendCatchupBurst(msg, o, std::move(r), start);
}

Message Replica::CatchupResponse(const Message& request, const ObjectState& o) {
  Message r = ReplyTo(request, MessageType::kCatchupResponse);
  r.commit_index = o.hard.commit_index;
  // A snapshot hides the anchor entries below it: ship the committed anchor alongside.
  r.anchor_epoch = o.hard.anchor_epoch;
  r.anchor_config = o.hard.anchor_config;
  return r;
}

bool Replica::ServeSnapshotChunk(const Message& msg, ObjectState& o, Message& r, Slot& start) {
  internal::TransferState& t = o.transfer;
  // The snapshot to (continue to) ship, if any. Every chunk of a transfer comes from the same
  // snapshot (`serving`), and the log after it is kept until the last chunk left (Advance), so
  // the learner then continues with log entries instead of starting over. A request continuing
  // a snapshot we no longer hold gets ours from offset 0; a held snapshot older than our log's
  // start (we installed a newer one meanwhile) is replaced.
  if (t.serving != nullptr && t.serving->slot < o.hard.truncated_through) {
    t.serving.reset();
    --serving_count_;
  }
  if (start <= o.hard.truncated_through && t.serving == nullptr) {
    if (serving_count_ >= config_.snapshots_served_max) return false;  // The learner retries.
    std::optional<Snapshot> snap = snapshots_->LatestSnapshot(msg.object);
    ATLAS_CHECK(snap.has_value() && snap->slot >= o.hard.truncated_through);
    t.serving = std::make_unique<Snapshot>(std::move(*snap));
    ++serving_count_;
  }
  if (t.serving == nullptr ||
      (start > o.hard.truncated_through && msg.snapshot_slot != t.serving->slot)) {
    return true;  // Log entries only.
  }
  t.serving_touched = now_;
  const Snapshot& snap = *t.serving;
  const uint64_t offset =
      msg.snapshot_slot == snap.slot && msg.snapshot_offset <= snap.data.size()
          ? msg.snapshot_offset
          : 0;
  if (CrossedRetry(o, msg.from, msg.slot, offset)) return false;
  const size_t len = std::min<size_t>(config_.snapshot_chunk_bytes, snap.data.size() - offset);
  r.snapshot_slot = snap.slot;
  r.snapshot_offset = offset;
  r.snapshot_total = snap.data.size();
  r.snapshot = snap.data.substr(offset, len);
  if (offset + len < snap.data.size()) {
    Send(std::move(r));  // Entries follow with the last chunk.
    return false;
  }
  // Last chunk: the transfer is over (a lost last chunk restarts it), so the log may be
  // truncated again.
  t.serving.reset();
  --serving_count_;
  start = r.snapshot_slot + 1;
  return true;
}

void Replica::SendCatchupBurst(const Message& msg, const ObjectState& o, Message first,
                               Slot start) {
  // Up to catchup_burst responses answer one request, so a learner far behind gets that many
  // times more per round trip; `round` counts the responses still following in the burst.
  std::vector<Message> burst;
  for (size_t i = 0; i < config_.catchup_burst && (i == 0 || start <= o.hard.commit_index); ++i) {
    Message part = i == 0 ? std::move(first) : CatchupResponse(msg, o);
    size_t bytes = 0;
    for (; start <= o.hard.commit_index && part.entries.size() < config_.catchup_entries_max &&
           (part.entries.empty() || bytes < config_.catchup_bytes_max);
         ++start) {
      auto it = o.hard.log.find(start);
      ATLAS_CHECK(it != o.hard.log.end());
      for (const Command& c : it->second.value) bytes += c.data.size();
      part.entries.push_back({start, it->second});
    }
    burst.push_back(std::move(part));
  }
  for (size_t i = 0; i < burst.size(); ++i) {
    burst[i].round = burst.size() - 1 - i;
    Send(std::move(burst[i]));
  }
}

bool Replica::CrossedRetry(ObjectState& o, NodeId learner, Slot slot, uint64_t offset) {
  if (o.transfer.served_to == learner && o.transfer.served_slot == slot &&
      o.transfer.served_offset == offset && o.transfer.served_at >= 0 &&
      now_ - o.transfer.served_at < config_.resend_ticks) {
    return true;
  }
  o.transfer.served_to = learner;
  o.transfer.served_slot = slot;
  o.transfer.served_offset = offset;
  o.transfer.served_at = now_;
  return false;
}

void Replica::HandleCatchupResponse(const Message& msg) {
  ObjectState& o = Obj(msg.object);
  o.learner.catchup_sent = -1;
  const bool snapshot = msg.snapshot_slot > o.hard.commit_index && o.transfer.install == nullptr;
  if (snapshot) {
    std::string data;
    if (!TakeSnapshotChunk(msg, o, data)) return;
    InstallSnapshot(msg, o, std::move(data));
  }
  const Ballot learned_max = LearnCatchupEntries(msg, o);
  // A value chosen in a higher ballot (or a snapshot past our commit) means someone completed
  // phase 1 above us: we are no longer the owner, and must not announce this commit index
  // under our ballot — a learner holding our unchosen proposal for such a slot would take the
  // notice as confirming it (found by the simulator, seed 309931).
  if (o.proposer.role != Role::kFollower && (learned_max > o.proposer.ballot || snapshot)) {
    ++probes_.steals_preempted_by_learning;
    ObserveBallot(o, learned_max);
    StepDown(msg.object, o, /*announce=*/false);
  }
  if (o.proposer.role == Role::kOwner) {
    // Slots learned here are chosen; an in-flight proposal at such a slot never reached a Q2
    // (else phase 1 of whoever chose it would have found it), so drop it.
    auto& in_flight = o.proposer.in_flight;
    auto& chosen = o.proposer.chosen;
    in_flight.erase(in_flight.begin(), in_flight.upper_bound(o.hard.commit_index));
    chosen.erase(chosen.begin(), chosen.upper_bound(o.hard.commit_index));
    AdvanceOwnerCommit(o);
  }
  if (o.learner.notice_commit > o.hard.commit_index) {
    LearnUpTo(msg.object, o, o.learner.notice_ballot, o.learner.notice_commit, msg.from);
  }
  NoteCommitIndex(o, msg.commit_index, msg.from);
  // More of this burst is on its way: ask again after its last part (Tick retries if it is lost).
  if (msg.round > 0 && msg.entries.size() > 0 && !snapshot) {
    o.learner.catchup_sent = now_;
    return;
  }
  if (msg.commit_index > o.hard.commit_index) RequestCatchup(msg.object, o, msg.from);
}

bool Replica::TakeSnapshotChunk(const Message& msg, ObjectState& o, std::string& data) {
  // Chunks come one per request, in order; anything else (a duplicate, a chunk of another
  // snapshot) restarts the transfer or is ignored.
  ++probes_.snapshot_chunks;
  std::unique_ptr<PartialSnapshot>& partial = o.transfer.partial;
  // A first chunk starts a transfer, unless it is a late copy of the one under way.
  const bool same_transfer =
      partial != nullptr && partial->slot == msg.snapshot_slot && partial->from == msg.from;
  if (msg.snapshot_offset == 0 && !same_transfer) {
    partial = std::make_unique<PartialSnapshot>(
        PartialSnapshot{msg.snapshot_slot, msg.snapshot_total, "", msg.from});
  }
  if (partial == nullptr || partial->slot != msg.snapshot_slot ||
      partial->total != msg.snapshot_total || partial->from != msg.from ||
      partial->data.size() != msg.snapshot_offset ||
      msg.snapshot_offset + msg.snapshot.size() > msg.snapshot_total) {
    return false;
  }
  partial->data.append(msg.snapshot);
  if (partial->data.size() == partial->total) {
    data = std::move(partial->data);
    partial.reset();
    return true;
  }
  // Ask for the next chunk right away (Tick retries if it is lost).
  Message m = ReplyTo(msg, MessageType::kCatchupRequest);
  m.slot = o.hard.commit_index + 1;
  ContinueTransfer(*partial, m);
  o.learner.catchup_sent = now_;
  Send(std::move(m));
  return false;
}

void Replica::InstallSnapshot(const Message& msg, ObjectState& o, std::string data) {
  // Entries <= snapshot_slot are chosen; everything we accepted there is superseded.
  const Slot s = msg.snapshot_slot;
  o.hard.log.erase(o.hard.log.begin(), o.hard.log.upper_bound(s));
  for (auto it = o.acceptor.dirty_slots.begin(); it != o.acceptor.dirty_slots.end();) {
    it = *it <= s ? o.acceptor.dirty_slots.erase(it) : std::next(it);
  }
  o.hard.commit_index = s;
  o.hard.truncated_through = s;
  o.learner.applied = s;
  o.learner.snapshot_slot = s;
  o.learner.snapshot_asked = s;
  o.transfer.install = std::make_unique<Snapshot>(Snapshot{s, std::move(data)});
  ++probes_.snapshots_installed;
  // The sender's anchor is committed (a fact cluster-wide), possibly at a slot we lack yet.
  if (msg.anchor_epoch > o.hard.anchor_epoch) {
    o.hard.anchor_epoch = msg.anchor_epoch;
    o.hard.anchor_config = msg.anchor_config;
    LearnConfig(msg.anchor_epoch, msg.anchor_config);
  }
  o.learner.anchor_scanned = std::max(o.learner.anchor_scanned, s);
  MarkDirty(o);
}

Ballot Replica::LearnCatchupEntries(const Message& msg, ObjectState& o) {
  bool advanced = false;
  Ballot learned_max;
  for (const SlotEntry& e : msg.entries) {
    if (e.slot != o.hard.commit_index + 1) continue;
    PutEntry(o, e.slot, e.entry);
    o.hard.commit_index = e.slot;
    learned_max = std::max(learned_max, e.entry.ballot);
    ++probes_.catchup_entries;
    advanced = true;
  }
  if (advanced) {
    MarkDirty(o);
    ScanAnchors(o);
  }
  return learned_max;
}

void Replica::HandleHeartbeat(const Message& msg) {
  uint64_t& w = settle_witness_[msg.from];
  w = std::max(w, std::min(msg.epoch, msg.anchor_epoch));
  for (const auto& [object, commit_index] : msg.commit_indexes) {
    ObjectState& o = Obj(object);
    NoteCommitIndex(o, commit_index, msg.from);
    if (commit_index > o.hard.commit_index) RequestCatchup(object, o, msg.from);
  }
}

// ---------------------------------------------------------------------------------------------
// Linearizable reads: the owner confirms its ballot with a Q2 round batched across all reads
// that arrived before the round started (docs/consensus.md, "Read path").

void Replica::StartReadRound(const ObjectId& object, ObjectState& o) {
  if (o.proposer.role != Role::kOwner || o.reads.active || o.reads.waiting.empty()) return;
  if (o.hard.commit_index < o.reads.ready_slot) return;
  o.reads.active = true;
  ++o.reads.round;
  o.reads.in_round = std::move(o.reads.waiting);
  o.reads.waiting.clear();
  o.reads.acks.clear();
  o.reads.read_index = o.hard.commit_index;
  o.reads.sent = now_;
  ++probes_.read_rounds;
  Message m = ProposerMessage(MessageType::kConfirm, object, o);
  m.round = o.reads.round;
  SendTo(MembersOf(ObjectEpochs(o)), m, /*include_self=*/true);
}

void Replica::HandleConfirm(const Message& msg) {
  ObjectState& o = Obj(msg.object);
  Message r = ReplyTo(msg, MessageType::kConfirmAck);
  r.round = msg.round;
  if (!AcceptorRefuses(msg, o, r)) {
    // Acking binds us like an Accept would: we promise not to join a lower ballot.
    Promise(msg.object, o, msg.ballot);
    ObserveBallot(o, msg.ballot);
    r.ok = true;
    r.ballot = msg.ballot;
  }
  Send(std::move(r));
}

void Replica::HandleConfirmAck(const Message& msg) {
  ObjectState& o = Obj(msg.object);
  if (!msg.ok) return HandleRejection(msg, o, Role::kOwner);
  if (o.proposer.role != Role::kOwner || !o.reads.active || msg.round != o.reads.round ||
      msg.ballot != o.proposer.ballot) {
    return;
  }
  o.reads.acks.insert(msg.from);
  if (!IsQ2In(ObjectEpochs(o), o.reads.acks)) return;
  o.reads.active = false;
  absl::btree_map<NodeId, std::vector<RequestId>> remote;
  for (const PendingRead& r : o.reads.in_round) {
    if (r.origin == config_.id) {
      SetReadIndex(r.id, o.reads.read_index);
    } else {
      remote[r.origin].push_back(r.id);
    }
  }
  o.reads.in_round.clear();
  for (auto& [origin, ids] : remote) {
    Message m = MessageTo(MessageType::kReadIndexResponse, origin, msg.object);
    m.ok = true;
    m.ballot = o.proposer.ballot;
    m.slot = o.reads.read_index;
    m.request_ids = std::move(ids);
    Send(std::move(m));
  }
  work_ = true;
}

void Replica::SetReadIndex(RequestId id, Slot index) {
  auto it = pending_.find(id);
  if (it == pending_.end() || !it->second.is_read) return;
  it->second.read_index = index;
  reads_indexed_.insert(id);
  work_ = true;
}

void Replica::HandleReadIndexRequest(const Message& msg) {
  ObjectState& o = Obj(msg.object);
  for (RequestId id : msg.request_ids) {
    PendingRead r{id, msg.from};
    if (o.proposer.role == Role::kFollower || o.reads.waiting.size() >= config_.reads_max) {
      RejectRead(msg.object, o, r);
      continue;
    }
    NoteAccess(msg.object, o, msg.from);
    o.reads.waiting.push_back(r);
    work_ = true;
  }
}

void Replica::HandleReadIndexResponse(const Message& msg) {
  ObjectState& o = Obj(msg.object);
  ObserveBallot(o, msg.ballot);
  NoteDisowned(o, msg);
  for (RequestId id : msg.request_ids) {
    if (msg.ok) {
      SetReadIndex(id, msg.slot);
      continue;
    }
    auto it = pending_.find(id);
    if (it == pending_.end() || !it->second.is_read || reads_indexed_.contains(id)) continue;
    if (++it->second.attempts <= config_.route_attempts_max) {
      RouteRead(msg.object, id);
    } else {
      FinishRequest(id, ReplyCode::kNotOwner, true, "owner rejected the read");
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Forwarding and migration.

void Replica::HandleForward(const Message& msg) {
  ObjectState& o = Obj(msg.object);
  // Taken only by the exact ballot the origin addressed. A ballot is held for one interval,
  // and within it each (origin, seq) is taken at most once, so a duplicated or delayed
  // forward never proposes a command twice.
  const bool take = o.proposer.role != Role::kFollower && msg.ballot == o.proposer.ballot;
  if (take) {
    if (!TakeForward(o, msg.from, msg.seq)) return;  // Duplicate.
    for (const Command& cmd : msg.commands) RouteWrite(msg.object, cmd, msg.round);
    return;
  }
  // Certainly never proposed here iff the addressed ballot is our latest one (its forward
  // window is still here, from this incarnation) and this forward was never taken.
  const bool definite = msg.ballot == o.forwarding.window_ballot && msg.ballot.node == config_.id &&
                        msg.ballot.counter > restart_counter_floor_ &&
                        !ForwardSeen(o, msg.from, msg.seq);
  for (const Command& cmd : msg.commands) {
    ++probes_.forward_rejects;
    RejectCommand(msg.object, o, cmd, definite, msg.round);
  }
}

void Replica::HandleForwardReject(const Message& msg) {
  ObjectState& o = Obj(msg.object);
  ObserveBallot(o, msg.ballot);
  NoteDisowned(o, msg);
  for (RequestId id : msg.request_ids) {
    auto it = pending_.find(id);
    if (it == pending_.end() || it->second.is_read) continue;
    if (msg.round != it->second.route) continue;  // Answers an older attempt.
    if (msg.ok && ++it->second.attempts <= config_.route_attempts_max) {
      RouteWrite(msg.object, Command{id, it->second.command});
    } else {
      FinishRequest(id, ReplyCode::kNotOwner, msg.ok,
                    msg.ok ? "forward rejected" : "forward rejected; outcome unknown");
    }
  }
}

void Replica::HandleMoveHint(const Message& msg) {
  ObjectState& o = Obj(msg.object);
  if (o.proposer.role == Role::kFollower) StartSteal(msg.object, StealReason::kMoveHint);
}

// ---------------------------------------------------------------------------------------------
// Time.

uint64_t Replica::HeartbeatCycle() const {
  const size_t n = objects_.size();
  const size_t max = std::max<size_t>(config_.heartbeat_objects_max, 1);
  if (n <= max) return config_.heartbeat_full_every;
  return std::max<uint64_t>(config_.heartbeat_full_every, (n + max - 1) / max);
}

void Replica::DropIdleTransfers() {
  if (serving_count_ == 0) return;
  for (auto& [object, o] : objects_) {
    if (o.transfer.serving != nullptr &&
        now_ - o.transfer.serving_touched > config_.snapshot_serve_idle_ticks) {
      o.transfer.serving.reset();  // The learner finished or went away; free the memory.
      --serving_count_;
    }
  }
}

void Replica::SendHeartbeat() {
  Message hb;
  hb.type = MessageType::kHeartbeat;
  hb.epoch = latest_epoch_;
  hb.anchor_epoch = AnchorFloor();  // With epoch: our settle report (Settled()).
  DropIdleTransfers();
  // Heartbeats carry the commit indexes that moved since the previous heartbeat (objects
  // touched since), plus a re-announcement of every object once per cycle (covers lost
  // heartbeats and restarted peers): all of them every heartbeat_full_every-th time for a
  // small node, a rolling window for a large one. Their size follows activity, not tables.
  std::vector<ObjectId> changed;
  changed.swap(heartbeat_changed_);
  for (const ObjectId& object : changed) {
    objects_.find(object)->second.bookkeeping.queued_heartbeat = false;
  }
  std::sort(changed.begin(), changed.end());
  std::vector<ObjectId> announce;  // Owned objects re-announced after this heartbeat.
  auto add = [&hb](const ObjectId& object, ObjectState& o) {
    hb.commit_indexes.push_back({object, o.hard.commit_index});
    o.learner.heartbeat_commit = o.hard.commit_index;
  };
  auto add_changed = [&] {
    for (const ObjectId& object : changed) {
      ObjectState& o = objects_.find(object)->second;
      if (o.hard.commit_index != o.learner.heartbeat_commit) add(object, o);
    }
  };
  const size_t n = objects_.size();
  if (n <= config_.heartbeat_objects_max) {
    if (heartbeats_sent_++ % config_.heartbeat_full_every == 0) {
      for (auto& [object, o] : objects_) {
        add(object, o);
        if (o.proposer.role == Role::kOwner) announce.push_back(object);
      }
    } else {
      add_changed();
    }
  } else {
    ++heartbeats_sent_;
    const uint64_t cycle = HeartbeatCycle();
    const size_t window = static_cast<size_t>((n + cycle - 1) / cycle);
    auto it = objects_.lower_bound(heartbeat_cursor_);
    for (size_t i = 0; i < window; ++i, ++it) {
      if (it == objects_.end()) it = objects_.begin();
      add(it->first, it->second);
      if (it->second.proposer.role == Role::kOwner) announce.push_back(it->first);
    }
    heartbeat_cursor_ = it == objects_.end() ? ObjectId{} : it->first;
    add_changed();
  }
  Broadcast(hb, /*include_self=*/false);
  // Owners re-announce (ballot, commit index) once per cycle: followers that missed a notice
  // or restarted learn the owner here; new commits are announced as they happen.
  for (const ObjectId& object : announce) SendCommitNotice(object, objects_.find(object)->second);
}

void Replica::Tick() {
  ++now_;
  if (last_heartbeat_ < 0 || now_ - last_heartbeat_ >= config_.heartbeat_ticks) {
    last_heartbeat_ = now_;
    SendHeartbeat();
    Sweep();
    CheckForwardTargets();
    if (latest_epoch_ > settled_epoch_ && Settled()) {
      settled_epoch_ = latest_epoch_;
      if (latest_epoch_ > 1) ++probes_.settles_reached;
    }
  }
  // Timers of the objects that may have one (`active_`, see NeedsTick): a node may hold a great
  // many tables, and idle ones cost nothing here. Over a copy: handlers below may touch (and
  // so activate) other objects.
  const std::vector<ObjectId> due(active_.begin(), active_.end());
  for (const ObjectId& object : due) {
    ObjectState& o = objects_.find(object)->second;
    Touch(object, o);
    TickObject(object, o);
    if (!NeedsTick(object, o)) active_.erase(object);
  }
  // Request deadlines.
  while (!deadlines_.empty() && deadlines_.begin()->first <= now_) {
    const RequestId id = deadlines_.begin()->second;
    auto p = pending_.find(id);
    absl::Status quorum = p == pending_.end() ? QuorumStatus() : QuorumStatus(p->second.object);
    if (!quorum.ok()) {
      FinishRequest(id, ReplyCode::kQuorumUnavailable, false, std::string(quorum.message()));
    } else {
      FinishRequest(id, ReplyCode::kTimeout, false, "request timed out");
    }
  }
  DrainLocal();
}

void Replica::TickObject(const ObjectId& object, ObjectState& o) {
  if (o.learner.known_commit > o.hard.commit_index || o.transfer.partial != nullptr) {
    RequestCatchup(object, o, o.learner.known_commit_from);
  } else if (!catching_up_.empty()) {
    catching_up_.erase(object);
  }
  switch (o.proposer.role) {
    case Role::kCandidate:
      if (now_ - o.proposer.phase1_sent >= config_.resend_ticks) {
        o.proposer.phase1_sent = now_;
        Message m = ProposerMessage(MessageType::kPrepare, object, o);
        SendToSilent(MembersOf(ObjectEpochs(o)), o.proposer.promises, m);
      }
      break;
    case Role::kOwner:
      TickOwner(object, o);
      break;
    case Role::kFollower:
      TickFollower(object, o);
      break;
  }
}

void Replica::TickOwner(const ObjectId& object, ObjectState& o) {
  // Retransmit unacknowledged phase-2 slots (messages may be lost), one Accept per acceptor.
  absl::btree_map<NodeId, Message> resend;
  std::optional<NodeSet> members_cache;  // Built only when something is resent.
  auto members = [&]() -> const NodeSet& {
    if (!members_cache) members_cache = MembersOf(ObjectEpochs(o));
    return *members_cache;
  };
  for (auto& [slot, f] : o.proposer.in_flight) {
    if (now_ - f.sent_tick < config_.resend_ticks) continue;
    f.sent_tick = now_;
    ++probes_.accept_resends;
    for (NodeId node : members()) {
      if (f.acks.contains(node)) continue;
      auto [it, fresh] = resend.try_emplace(node);
      if (fresh) {
        it->second = ProposerMessage(MessageType::kAccept, object, o);
        it->second.to = node;
      }
      it->second.entries.push_back({slot, LogEntry{o.proposer.ballot, f.value}});
    }
  }
  for (auto& [node, m] : resend) Send(std::move(m));
  if (o.reads.active && now_ - o.reads.sent >= config_.resend_ticks) {
    o.reads.sent = now_;
    Message m = ProposerMessage(MessageType::kConfirm, object, o);
    m.round = o.reads.round;
    SendToSilent(members(), o.reads.acks, m);
  }
  if (o.proposer.recovered_commit > o.hard.commit_index) {
    RequestCatchup(object, o, o.proposer.recovered_commit_from);
  }
}

void Replica::TickFollower(const ObjectId& object, ObjectState& o) {
  if (!o.proposer.want_steal && o.proposer.proposals.empty() && o.reads.waiting.empty()) return;
  if (now_ < o.proposer.backoff_until) return;
  // The backoff after a lost steal is over: route the queued work again (which may steal), or
  // retry the deferred steal.
  o.proposer.want_steal = false;
  CommandQueue proposals;
  proposals.swap(o.proposer.proposals);
  std::vector<PendingRead> reads = std::move(o.reads.waiting);
  o.reads.waiting.clear();
  const bool any = !proposals.empty() || !reads.empty();
  for (Command& cmd : proposals) {
    if (cmd.id.node == config_.id) {
      RouteWrite(object, std::move(cmd));
    } else {
      RejectQueued(object, o, cmd);
    }
  }
  for (const PendingRead& r : reads) {
    if (r.origin == config_.id) {
      RouteRead(object, r.id);
    } else {
      RejectRead(object, o, r);
    }
  }
  if (!any) StartSteal(object, StealReason::kRetry);
}

bool Replica::NeedsTick(const ObjectId& object, const ObjectState& o) const {
  // Exactly the conditions under which TickObject may act.
  if (o.transfer.partial != nullptr || o.learner.known_commit > o.hard.commit_index) return true;
  if (catching_up_.contains(object)) return true;
  switch (o.proposer.role) {
    case Role::kCandidate: return true;
    case Role::kOwner:
      return !o.proposer.in_flight.empty() || o.reads.active ||
             o.proposer.recovered_commit > o.hard.commit_index;
    case Role::kFollower:
      return o.proposer.want_steal || !o.proposer.proposals.empty() || !o.reads.waiting.empty();
  }
  return true;
}

void Replica::CheckForwardTargets() {
  std::vector<std::pair<RequestId, bool>> stale;  // (id, is_read)
  for (const auto& [id, p] : pending_) {
    if (p.forwarded_to == kNoNode || Alive(p.forwarded_to)) continue;
    if (p.is_read && reads_indexed_.contains(id)) continue;  // Only waiting to apply.
    stale.emplace_back(id, p.is_read);
  }
  for (const auto& [id, is_read] : stale) {
    auto p = pending_.find(id);
    if (p == pending_.end()) continue;
    const NodeId dead = p->second.forwarded_to;
    if (is_read) {
      // A read has no effect: ask again (now stealing, or forwarding to a newer owner).
      ++p->second.attempts;
      RouteRead(p->second.object, id);
    } else {
      FinishRequest(id, ReplyCode::kTimeout, false,
                    "owner node " + std::to_string(dead) +
                        " stopped answering; outcome unknown");
    }
  }
}

void Replica::Sweep() {
  // Settling needs every object re-anchored in C_L, including ones nobody writes: steal those
  // whose owner is gone (or unknown) so the new owner re-anchors them. Bounded per heartbeat;
  // StartSteal's backoff spaces retries.
  if (config_.test_latest_config_only || latest_epoch_ <= 1) return;
  if (!IsMember(latest_epoch_, config_.id)) return;
  RefreshIndexes();
  std::vector<ObjectId> steal;
  for (const ObjectId& object : sweep_) {  // Followers holding an unanchored/unfinished object.
    if (steal.size() >= config_.sweep_steals_max) break;
    const ObjectState& o = objects_.find(object)->second;
    if (now_ < o.proposer.backoff_until) continue;
    // An owner re-announces itself every heartbeat cycle; one alive but silent for longer has
    // stepped down (or lost the object) and will not re-anchor it.
    const NodeId owner = o.learner.owner_ballot.node;
    const bool owner_active =
        // (A removed node never owns again: not active, whatever it says.)
        owner != kNoNode && owner != config_.id && IsMember(latest_epoch_, owner) &&
        Alive(owner) && o.learner.owner_heard >= 0 &&
        now_ - o.learner.owner_heard <=
            2 * static_cast<consensus::Tick>(HeartbeatCycle()) * config_.heartbeat_ticks;
    if (owner_active) continue;
    steal.push_back(object);
  }
  for (const ObjectId& object : steal) {
    ++probes_.sweeper_steals;
    StartSteal(object, StealReason::kSweep);
  }
}

// ---------------------------------------------------------------------------------------------
// Ready.

bool Replica::Quiet() const {
  return active_.empty() && pending_.empty() && deadlines_.empty() && local_.empty();
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
      objects_.find(object)->second.bookkeeping.queued_collect = false;
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
  for (const ObjectId& object : due) CollectOwnerWork(object, objects_.find(object)->second);
  DrainLocal();
  // And whatever the messages to self touched, which stay listed for the next collection:
  // the first pass above has not seen them.
  TakeCollect(due, /*keep=*/true);
  for (const ObjectId& object : due) CollectCommitted(object, objects_.find(object)->second);
  CollectReads();
  TakeCollect(due, /*keep=*/true);
  for (const ObjectId& object : due) CollectPersist(object, objects_.find(object)->second);
}

void Replica::CollectOwnerWork(const ObjectId& object, ObjectState& o) {
  if (o.proposer.role == Role::kOwner && o.proposer.anchor_slot == 0 && !NeedsAnchor(o) &&
      !IsMember(o.hard.anchor_epoch, config_.id) && o.hard.anchor_epoch != 0 &&
      o.hard.anchor_epoch == latest_epoch_) {
    StepDown(object, o);  // Re-anchored in a configuration without us: hand it over.
  }
  FlushProposals(object, o);
  StartReadRound(object, o);
  SendDeferredAnchorAck(object, o);
}

void Replica::CollectCommitted(const ObjectId& object, ObjectState& o) {
  if (o.proposer.role == Role::kOwner && o.hard.commit_index > o.proposer.last_commit_sent) {
    SendCommitNotice(object, o);
  }
  if (o.transfer.install != nullptr) {
    ready_.snapshots.push_back({object, std::move(*o.transfer.install)});
    o.transfer.install.reset();
  }
  for (Slot s = o.learner.applied + 1; s <= o.hard.commit_index; ++s) {
    auto it = o.hard.log.find(s);
    ATLAS_CHECK(it != o.hard.log.end());
    for (const Command& cmd : it->second.value) {
      if (cmd.id.node != config_.id) continue;
      auto p = pending_.find(cmd.id);
      if (p != pending_.end() && !p->second.is_read) {
        FinishRequest(cmd.id, ReplyCode::kOk, true, "");
      }
    }
    // Anchors are the core's: the host applies an empty batch (a no-op).
    ready_.committed.push_back(
        {object, s, IsAnchor(it->second.value) ? Batch{} : it->second.value});
    o.learner.applied = s;
  }
  if (o.learner.applied >= o.learner.snapshot_asked + config_.snapshot_interval_slots) {
    o.learner.snapshot_asked = o.learner.applied;
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
  u.anchor_epoch = o.hard.anchor_epoch;
  u.anchor_config = o.hard.anchor_config;
  for (Slot s : o.acceptor.dirty_slots) {
    auto it = o.hard.log.find(s);
    if (it != o.hard.log.end()) u.entries.push_back({s, it->second});
  }
  ready_.persist.push_back(std::move(u));
  o.acceptor.dirty = false;
  o.acceptor.dirty_slots.clear();
}

Ready Replica::TakeReady() {
  CollectReady();
  work_ = false;
  Ready out = std::move(ready_);
  ready_ = Ready{};
  return out;
}

void Replica::Advance(const Ready& ready) {
  // The host durably took these snapshots: the log below them may go (bounded memory).
  for (const SnapshotRequest& req : ready.snapshot_requests) {
    ObjectState& o = Obj(req.object);
    o.learner.snapshot_slot = std::max(o.learner.snapshot_slot, req.slot);
    const Slot tail = config_.log_tail_slots;
    Slot through = o.learner.snapshot_slot > tail ? o.learner.snapshot_slot - tail : 0;
    // A learner receiving our snapshot continues with the log after it.
    if (o.transfer.serving != nullptr) through = std::min(through, o.transfer.serving->slot);
    if (through > o.hard.truncated_through) {
      o.hard.truncated_through = through;
      o.hard.log.erase(o.hard.log.begin(), o.hard.log.upper_bound(through));
      for (auto it = o.acceptor.dirty_slots.begin(); it != o.acceptor.dirty_slots.end();) {
        it = *it <= through ? o.acceptor.dirty_slots.erase(it) : std::next(it);
      }
      MarkDirty(o);
    }
  }
}

}  // namespace atlas::consensus
