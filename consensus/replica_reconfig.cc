// Reconfiguration (docs/consensus.md, "Reconfiguration"): the configuration history, the
// quorums each object needs (joint until it is anchored in the latest configuration), anchor
// entries, the epoch fence, Settled(), and the sweeper that re-anchors ownerless objects.
#include "consensus/replica.h"

#include <algorithm>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "consensus/check.h"
#include "consensus/membership.h"
#include "consensus/quorum.h"

namespace atlas::consensus {

// ---------------------------------------------------------------------------------------------
// Configurations.

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
  held_leases_.clear();  // replica read leases are for one configuration (rule 4)
  // Quorums of every object now include C_L: re-send what is in flight at once, in the new
  // epoch (acceptors that know it fence the old one), and owners re-anchor (FlushProposals).
  // NeedsAnchor changed for all objects (indexes, CollectReady): every one wakes, and rests
  // again once re-anchored. Those awake now at once (their messages go out again); those at
  // rest have nothing in flight, and wake a few per tick (WakeForConfig).
  for (const ObjectId& object : awake_) {
    ObjectState& o = Stored(object);
    Touch(object, o);
    if (o.proposer.role == Role::kCandidate) o.proposer.phase1_sent = now_ - config_.resend_ticks;
    for (auto& [slot, f] : o.proposer.in_flight) f.sent_tick = now_ - config_.resend_ticks;
    if (o.reads.active) o.reads.sent = now_ - config_.resend_ticks;
  }
  config_waking_ = true;
  config_wake_cursor_.clear();
  WakeForConfig();
  work_ = true;
}

void Replica::WakeForConfig() {
  if (!config_waking_) return;
  auto it = objects_.lower_bound(config_wake_cursor_);
  for (size_t n = 0; it != objects_.end() && n < config_.config_wakes_per_tick; ++it, ++n) {
    if (it->second.state() != nullptr) continue;  // awake: touched at SetConfig or since
    Touch(it->first, Wake(it->first, it->second));
    work_ = true;
  }
  if (it == objects_.end()) {
    config_waking_ = false;
  } else {
    config_wake_cursor_ = it->first;
  }
}

bool Replica::TakeReanchorTurn(const ObjectId& object) {
  if (reanchoring_.contains(object)) return true;
  if (reanchoring_.size() < config_.reanchors_max && reanchor_queue_.empty()) {
    reanchoring_.insert(object);
    return true;
  }
  reanchor_queue_.Push(object);
  return false;
}

void Replica::StartQueuedReanchors() {
  absl::erase_if(reanchoring_, [&](const ObjectId& object) {
    auto it = objects_.find(object);
    const ObjectState* o = it == objects_.end() ? nullptr : it->second.state();
    return o == nullptr || o->proposer.role != Role::kOwner ||
           (o->proposer.anchor_slot == 0 && !NeedsAnchor(*o));
  });
  while (reanchoring_.size() < config_.reanchors_max && !reanchor_queue_.empty()) {
    const ObjectId object = *reanchor_queue_.Pop();
    if (!objects_.contains(object)) continue;
    reanchoring_.insert(object);  // its turn: FlushProposals, in the next CollectReady
    Obj(object);                  // wakes and touches it
    work_ = true;
  }
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

bool Replica::FromNewcomer(const Message& msg) const {
  // A member that missed a membership commit (its owner died before telling it) may have no
  // one left to learn it from but the nodes that commit added: it hears their heartbeats and
  // catches the membership object up from them, and nothing else (docs/consensus.md §Q2 first,
  // "Membership changes reach everyone").
  const bool teaches = msg.type == MessageType::kHeartbeat ||
                       (msg.type == MessageType::kCatchupResponse &&
                        msg.object == kMembershipObject);
  if (!teaches) return false;
  for (const auto& [epoch, c] : configs_) {
    const auto& zone_of = c.quorums.topology().zone_of;
    if (!zone_of.empty() && zone_of.rbegin()->first >= msg.from) return false;
  }
  return true;
}

// ---------------------------------------------------------------------------------------------
// The quorums of an object.

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

bool Replica::InEveryQ1(const EpochSet& epochs) const {
  if (epochs.empty()) return false;
  for (uint64_t e : epochs) {
    const ConfigInfo* c = FindConfig(e);
    if (c == nullptr || !c->quorums.topology().zone_of.contains(config_.id)) return false;
    NodeSet others;
    for (const auto& [node, zone] : c->quorums.topology().zone_of) {
      if (node != config_.id) others.insert(node);
    }
    if (c->quorums.IsQ1(others)) return false;
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

absl::Status Replica::QuorumStatus() const { return CheckAvailableIn({latest_epoch_}); }

absl::Status Replica::QuorumStatus(const ObjectId& object) const {
  const ObjectState* o = FindObj(object);
  if (o == nullptr) {
    ObjectState fresh;
    return CheckAvailableIn(ObjectEpochs(fresh));
  }
  return CheckAvailableIn(ObjectEpochs(*o));
}

// ---------------------------------------------------------------------------------------------
// Anchors, the fence, settling.

bool Replica::IsAnchor(const Batch& batch) {
  // The anchor command first; the commands that were waiting for it may follow.
  return !batch.empty() && batch[0].id.node == kNoNode;
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
      // Heartbeats report it, and a membership change settles on those reports: it must not
      // be lost in a crash once reported (with the commit index it rests on).
      o.acceptor.must_sync = true;
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

bool Replica::Fenced(const Message& msg) const {
  return std::max<uint64_t>(msg.epoch, 1) < latest_epoch_;
}

void Replica::NoteFence(const Message& reply) {
  fenced_epoch_ = std::max(fenced_epoch_, reply.epoch);
}

uint64_t Replica::AnchorFloor() const {
  RefreshIndexes();
  if (anchor_counts_.empty()) return latest_epoch_;
  return std::min(latest_epoch_, anchor_counts_.begin()->first);
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

void Replica::RefreshIndexes() const {
  for (const ObjectId& object : reindex_) {
    auto it = objects_.find(object);
    if (it == objects_.end()) continue;
    const ObjectState& o = Wake(object, it->second);
    o.bookkeeping.queued_index = false;
    Reindex(object, o);
  }
  reindex_.clear();
}

void Replica::Reindex(const ObjectId& object, const ObjectState& o) const {
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

void Replica::Sweep() {
  // Settling needs every object re-anchored in C_L, including ones nobody writes: steal those
  // whose owner is gone (or unknown) so the new owner re-anchors them. Also, in any epoch, the
  // unfinished ones: an owner that crashed may have acknowledged slots whose commit nobody
  // wrote (a commit index need not be durable), and nobody else would apply them without
  // client traffic. Bounded per heartbeat; StartSteal's backoff spaces retries.
  if (config_.test_latest_config_only) return;
  if (!IsMember(latest_epoch_, config_.id)) return;
  RefreshIndexes();
  std::vector<ObjectId> steal;
  // Followers holding an unanchored/unfinished object, from where the last look stopped.
  const size_t looks = std::min(config_.sweep_checks_max, sweep_.size());
  auto it = sweep_.lower_bound(sweep_cursor_);
  for (size_t n = 0; n < looks && steal.size() < config_.sweep_steals_max; ++n, ++it) {
    if (it == sweep_.end()) it = sweep_.begin();
    const ObjectId& object = *it;
    const ObjectState& o = Stored(object);
    if (now_ < o.proposer.backoff_until) continue;
    // An owner's digests vouch for its idle objects every cycle; one alive but neither heard
    // nor vouching for longer has stepped down (or lost the object) and will not re-anchor it.
    const NodeId owner = o.learner.owner_ballot.node;
    const bool owner_active =
        // (A removed node never owns again: not active, whatever it says.)
        owner != kNoNode && owner != config_.id && IsMember(latest_epoch_, owner) &&
        Alive(owner) &&
        ((o.learner.owner_heard >= 0 && now_ - o.learner.owner_heard <= SilenceTicks()) ||
         OwnerAgreed(owner, object));
    if (owner_active || !SweepTurn(object)) continue;
    steal.push_back(object);
  }
  sweep_cursor_ = it == sweep_.end() ? ObjectId{} : *it;
  for (const ObjectId& object : steal) {
    ++probes_.sweeper_steals;
    StartSteal(object, StealReason::kSweep);
  }
}

// After a restart of all, every member found every object ownerless at once, and ten sweepers
// duelled for seconds (seed 305086). So sweeping an object is one live member's turn at a
// time: the highest rendezvous hash of (object, turn, member). Turns follow the wall clock,
// so members agree on them within the clock bound; a member that cannot win in its turn (no
// trusted clock, a partition) hands the object on with the turn.
bool Replica::SweepTurn(const ObjectId& object) const {
  const ConfigInfo* c = FindConfig(latest_epoch_);
  if (c == nullptr) return false;
  const int64_t tick_ms = std::max<int64_t>(config_.tick_ms, 1);
  const consensus::Tick turn_ticks =
      std::max<consensus::Tick>({config_.peer_timeout_ticks, 4 * config_.steal_backoff_ticks, 1});
  const int64_t turn_ms = tick_ms * turn_ticks;
  const int64_t clock_ms = boot_ms_ < 0 ? now_ * tick_ms : wall_ms_;
  const auto turn = static_cast<uint64_t>(clock_ms / turn_ms);
  const uint64_t seed = StableMix(StableHash(object), turn);
  // Until a peer timeout has passed since our start, a member not heard yet counts as alive:
  // after a restart of all, nobody has heard anybody at first.
  const bool starting = now_ < config_.peer_timeout_ticks;
  NodeId best = kNoNode;
  uint64_t best_hash = 0;
  for (const auto& [node, zone] : c->quorums.topology().zone_of) {
    if (!starting && !Alive(node)) continue;
    const uint64_t h = StableMix(seed, node);
    if (best == kNoNode || h > best_hash) {
      best = node;
      best_hash = h;
    }
  }
  return best == config_.id;
}

}  // namespace atlas::consensus
