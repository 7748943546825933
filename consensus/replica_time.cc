// Time: Tick (retransmissions, catch-up retries, backoff, request deadlines), heartbeats,
// and the host's wall clock (docs/consensus.md, "Time").
#include "consensus/replica.h"

#include <algorithm>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/btree_map.h"
#include "consensus/membership.h"

namespace atlas::consensus {

void Replica::Tick() {
  ++now_;
  const bool heartbeat = last_heartbeat_ < 0 || now_ - last_heartbeat_ >= config_.heartbeat_ticks;
  TickLazy(heartbeat);  // first: a heartbeat's commit indexes cover the waiting Accepts
  if (heartbeat) {
    last_heartbeat_ = now_;
    SendHeartbeat();
    DropExpiredLeases();
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
    ObjectState& o = Stored(object);
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
  ServeWaitingCatchups();
  StartQueuedCatchups();
  ContinueDirectoryScan();
  WakeForConfig();
  StartQueuedReanchors();
  DrainLocal();
  RestIdleObjects();  // last: whatever the above touched is on a work list, and stays awake
}

void Replica::TickObject(const ObjectId& object, ObjectState& o) {
  if (Behind(o)) {
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
  if (holders_.contains(object)) AdvanceOwnerCommit(object, o);  // a holder's lease may end
  if (o.reads.active && now_ - o.reads.sent >= config_.resend_ticks) {
    o.reads.sent = now_;
    SendToSilent(members(), o.reads.acks, ConfirmMessage(object, o));
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
  if (Behind(o) && !catchup_queue_.contains(object)) return true;  // queued: Tick starts it
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

uint64_t Replica::HeartbeatCycle() const {
  const size_t n = objects_.size();
  const size_t max = std::max<size_t>(config_.heartbeat_objects_max, 1);
  if (n <= max) return config_.heartbeat_full_every;
  return std::max<uint64_t>(config_.heartbeat_full_every, (n + max - 1) / max);
}

void Replica::SendHeartbeat() {
  Message hb;
  hb.type = MessageType::kHeartbeat;
  hb.epoch = latest_epoch_;
  hb.anchor_epoch = AnchorFloor();  // With epoch: our settle report (Settled()).
  DropIdleTransfers(config_.snapshot_serve_idle_ticks);
  PruneAgreed();
  ++heartbeats_sent_;
  // Heartbeats carry the commit indexes that moved since the previous heartbeat (objects
  // touched since), every heartbeat_full_every-th one the membership object's too (a member
  // that missed a membership commit learns it from anyone, FromNewcomer), and a digest of one
  // range of objects (replica_digest.cc): their size follows activity, not tables.
  std::vector<ObjectId> changed;
  changed.swap(heartbeat_changed_);
  for (const ObjectId& object : changed) {
    Stored(object).bookkeeping.queued_heartbeat = false;
  }
  const bool full = (heartbeats_sent_ - 1) % config_.heartbeat_full_every == 0;
  if (full && objects_.contains(kMembershipObject)) changed.push_back(kMembershipObject);
  std::sort(changed.begin(), changed.end());
  changed.erase(std::unique(changed.begin(), changed.end()), changed.end());
  for (const ObjectId& object : changed) {
    StoredObject& s = objects_.find(object)->second;
    std::optional<ObjectState> resting;
    const ObjectState& o = Peek(s, resting);
    if (!(full && object == kMembershipObject) &&
        o.hard.commit_index == o.learner.heartbeat_commit) {
      continue;
    }
    hb.commit_indexes.push_back({object, o.hard.commit_index});
    // Spares the next heartbeats reporting it again. A resting object is on no change list
    // (the membership object may be): it need not wake for that.
    if (s.state() != nullptr) s.state()->learner.heartbeat_commit = o.hard.commit_index;
  }
  AddHeartbeatDigest(hb, full);
  Broadcast(hb, /*include_self=*/false);
}

void Replica::DropIdleTransfers(consensus::Tick idle) {
  if (serving_count_ == 0) return;
  for (auto& [object, stored] : objects_) {
    ObjectState* o = stored.state();  // (no snapshot is served for an object at rest)
    if (o != nullptr && o->transfer.serving != nullptr &&
        now_ - o->transfer.serving_touched > idle) {
      o->transfer.serving.reset();  // The learner finished or went away; free the memory.
      --serving_count_;
      TruncateLog(object, *o);  // what the transfer held back from a snapshot may go now
    }
  }
}

void Replica::SetClock(int64_t wall_ms, int64_t mono_ms, bool may_own) {
  wall_ms_ = wall_ms;
  mono_ms_ = std::max(mono_ms_, mono_ms);
  if (boot_ms_ < 0) boot_ms_ = mono_ms;
  if (may_own == may_own_) return;
  may_own_ = may_own;
  if (may_own) return;
  // An owner whose clock is no longer trusted must not stamp another command: hand every
  // object back, so that nodes with trusted clocks steal them.
  std::vector<ObjectId> held;
  for (const auto& [object, stored] : objects_) {
    if (FindObj(object)->proposer.role != Role::kFollower) held.push_back(object);
  }
  for (const ObjectId& object : held) StepDown(object, Obj(object));
  DrainLocal();
}

}  // namespace atlas::consensus
