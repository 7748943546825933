// Owner read leases (docs/consensus.md §Owner read leases): an acceptor that acks a Confirm
// asking for a lease promises no other node's ballot for lease_ms of its own clock; once a Q2
// of the object's configurations granted it in one round, the owner answers reads without a
// round until the round's start plus the lease shortened by the clock-drift bound, since no
// Q1 without one of those acceptors exists.
#include <algorithm>

#include "consensus/replica.h"

namespace atlas::consensus {

int64_t Replica::OwnerLeaseMs() const {
  // The acceptor's lease_ms of its clock lasts at least lease_ms / (1 + drift) of real time;
  // the owner's clock may run slow by (1 - drift): it counts lease_ms * (1 - d) / (1 + d).
  // Both clocks are read in whole milliseconds (a grant may start up to 1 ms early on the
  // acceptor's, a read be judged up to 1 ms late on the owner's): 2 ms less again.
  constexpr int64_t kMillion = 1'000'000;
  const int64_t d = std::clamp<int64_t>(config_.clock_drift_ppm, 0, kMillion - 1);
  return std::max<int64_t>(config_.lease_ms * (kMillion - d) / (kMillion + d) - 2, 0);
}

int64_t Replica::RestartGuardMs() const {
  return config_.restart_guard_ms >= 0 ? config_.restart_guard_ms : config_.lease_ms;
}

Message Replica::ConfirmMessage(const ObjectId& object, const ObjectState& o) const {
  Message m = ProposerMessage(MessageType::kConfirm, object, o);
  m.round = o.reads.round;
  m.lease_ms = OwnerLeaseMs() > 0 ? config_.lease_ms : 0;
  auto l = leases_.find(object);
  m.holders = m.lease_ms > 0 && l != leases_.end() && l->second.round == o.reads.round &&
              l->second.holders;
  return m;
}

const Replica::OwnerLeaseState* Replica::CurrentLease(const ObjectId& object,
                                                      const ObjectState& o) const {
  if (o.proposer.role != Role::kOwner) return nullptr;
  auto it = leases_.find(object);
  if (it == leases_.end() || it->second.until_ms == 0 || it->second.ballot != o.proposer.ballot ||
      it->second.epochs != ObjectEpochs(o)) {
    return nullptr;
  }
  return &it->second;
}

const Replica::OwnerLeaseState* Replica::HeldLease(const ObjectId& object,
                                                   const ObjectState& o) const {
  const OwnerLeaseState* l = CurrentLease(object, o);
  return l != nullptr && mono_ms_ < l->until_ms ? l : nullptr;
}

bool Replica::LeaseBlocksPrepare(const Message& msg, const ObjectState& o) {
  if (msg.ballot <= o.hard.promised) return false;
  // A restarted acceptor forgot the leases it granted; the only one that may still run is
  // that of the promise it restarted with, so other nodes wait out the longest lease it may
  // have granted (a promise made since, with a higher counter, is covered by grants_).
  const int64_t guard_end = std::max<int64_t>(boot_ms_, 0) + RestartGuardMs();
  // With replica read leases that exception goes where members other than the owner may hold
  // one (holders are members): a lease we granted may have bound us for holders, whom the
  // owner's next ballot must wait out too.
  const bool holders_possible =
      config_.holder_leases && MembersOf(ObjectEpochs(o)).size() > 1;
  const bool restarting = mono_ms_ < guard_end && !o.hard.promised.IsZero() &&
                          o.hard.promised.counter <= restart_counter_floor_ &&
                          (holders_possible || msg.from != o.hard.promised.node);
  // The holder itself may re-steal: it stepped down (and stopped reading) before asking. Not
  // past a grant that bound us for replica lease holders: they read on until it ends.
  auto it = grants_.find(msg.object);
  const bool granted = it != grants_.end() && mono_ms_ < it->second.until_ms &&
                       msg.from != it->second.ballot.node;
  const bool holders = it != grants_.end() && mono_ms_ < it->second.holders_until_ms;
  if (!restarting && !granted && !holders) return false;
  LeaseGrant& g = grants_[msg.object];
  if (restarting && g.until_ms < guard_end) {
    if (g.ballot.IsZero()) g.ballot = o.hard.promised;
    g.until_ms = guard_end;
  }
  // Grant no more leases below it, so that the steal waits at most one lease.
  g.held = std::max(g.held, msg.ballot);
  return true;
}

int64_t Replica::GrantLease(const Message& confirm) {
  // Exactly the length asked for, never longer than our own setting (our restart guard
  // covers no more), and none to an owner a held Prepare is waiting to replace.
  if (confirm.lease_ms <= 0 || confirm.lease_ms > config_.lease_ms) return 0;
  LeaseGrant& g = grants_[confirm.object];
  if (confirm.ballot < g.held) return 0;
  if (mono_ms_ >= g.until_ms || g.ballot != confirm.ballot) {
    // A newer ballot's Confirm: its owner was elected, so any older lease we granted ended.
    g.ballot = confirm.ballot;
    g.until_ms = 0;
  }
  g.until_ms = std::max(g.until_ms, mono_ms_ + confirm.lease_ms);
  if (confirm.holders) g.holders_until_ms = std::max(g.holders_until_ms, g.until_ms);
  return confirm.lease_ms;
}

void Replica::NoteRoundForLease(const ObjectId& object, const ObjectState& o) {
  if (config_.lease_ms <= 0) return;
  OwnerLeaseState& l = leases_[object];
  if (l.ballot != o.proposer.ballot) {
    l = OwnerLeaseState();
    l.ballot = o.proposer.ballot;
  }
  l.round = o.reads.round;
  l.round_sent_ms = mono_ms_;  // No acceptor can ack before the Confirm leaves, after this.
  l.grants.clear();
  l.holders = HoldersWanted(object);
  l.holder_grants.clear();
}

void Replica::NoteLeaseGrant(const ObjectId& object, ObjectState& o, const Message& ack) {
  auto it = leases_.find(object);
  if (it == leases_.end()) return;
  OwnerLeaseState& l = it->second;
  if (l.ballot != o.proposer.ballot || l.round != ack.round || ack.lease_ms != config_.lease_ms) {
    return;
  }
  // Only grants that say they bind against every Prepare count for lease holders.
  if (l.holders && ack.holders && l.holder_grants.insert(ack.from).second &&
      IsQ2In(ObjectEpochs(o), l.holder_grants)) {
    RecordHolders(object, o, l.round);
  }
  if (!l.grants.insert(ack.from).second) return;
  const EpochSet epochs = ObjectEpochs(o);
  if (!IsQ2In(epochs, l.grants)) return;
  const int64_t until = l.round_sent_ms + OwnerLeaseMs();
  if (until <= l.until_ms && l.epochs == epochs) return;
  l.until_ms = std::max(l.until_ms, until);
  l.epochs = epochs;
  ++probes_.leases_granted;
  ready_.leases.push_back(object);
  work_ = true;
}

void Replica::DropExpiredLeases() {
  // A grant whose Prepare still waits is kept until that Prepare is promised, or for one
  // more lease (the stealer gave up).
  absl::erase_if(grants_, [this](const auto& g) {
    if (g.second.until_ms > mono_ms_ || g.second.holders_until_ms > mono_ms_) return false;
    const ObjectState* o = FindObj(g.first);
    return g.second.held.IsZero() || (o != nullptr && o->hard.promised >= g.second.held) ||
           mono_ms_ >= g.second.until_ms + config_.lease_ms;
  });
  absl::erase_if(leases_, [this](const auto& l) {
    const ObjectState* o = FindObj(l.first);
    return l.second.until_ms <= mono_ms_ &&
           (o == nullptr || o->proposer.role != Role::kOwner || !o->reads.active);
  });
  DropExpiredHolders();
}

std::optional<std::pair<Ballot, int64_t>> Replica::OwnerLease(const ObjectId& object) const {
  const ObjectState* o = FindObj(object);
  const OwnerLeaseState* l = o == nullptr ? nullptr : CurrentLease(object, *o);
  if (l == nullptr) return std::nullopt;
  return std::make_pair(l->ballot, l->until_ms);
}

}  // namespace atlas::consensus
