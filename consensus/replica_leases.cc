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
  constexpr int64_t kMillion = 1'000'000;
  const int64_t d = std::clamp<int64_t>(config_.clock_drift_ppm, 0, kMillion - 1);
  return config_.lease_ms * (kMillion - d) / (kMillion + d);
}

bool Replica::LeaseHolds(const ObjectId& object, const ObjectState& o) const {
  if (config_.lease_ms <= 0 || o.proposer.role != Role::kOwner) return false;
  auto it = leases_.find(object);
  return it != leases_.end() && it->second.ballot == o.proposer.ballot &&
         mono_ms_ < it->second.until_ms && it->second.epochs == ObjectEpochs(o);
}

bool Replica::LeaseBlocksPrepare(const Message& msg, const ObjectState& o) {
  if (config_.lease_ms <= 0 || msg.ballot <= o.hard.promised) return false;
  // A restarted acceptor forgot the leases it granted; the only one that may still run is
  // its latest promise's, so other nodes wait out one lease from our start.
  if (mono_ms_ < std::max<int64_t>(boot_ms_, 0) + config_.lease_ms &&
      !o.hard.promised.IsZero() && msg.from != o.hard.promised.node) {
    return true;
  }
  auto it = grants_.find(msg.object);
  if (it == grants_.end() || mono_ms_ >= it->second.until_ms) return false;
  // The holder itself may re-steal: it stepped down (and stopped reading) before asking.
  if (msg.from == it->second.ballot.node) return false;
  it->second.held = true;  // Extend no more, so that the steal waits at most one lease.
  return true;
}

bool Replica::GrantLease(const Message& confirm) {
  if (config_.lease_ms <= 0) return false;
  LeaseGrant& g = grants_[confirm.object];
  const bool live = mono_ms_ < g.until_ms;
  if (live && g.held) return false;
  if (!live || g.ballot != confirm.ballot) {
    // A newer ballot's Confirm: its owner was elected, so any older lease we granted ended.
    g = LeaseGrant{confirm.ballot, 0, false};
  }
  g.until_ms = std::max(g.until_ms, mono_ms_ + config_.lease_ms);
  return true;
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
}

void Replica::NoteLeaseGrant(const ObjectId& object, const ObjectState& o, const Message& ack) {
  auto it = leases_.find(object);
  if (it == leases_.end()) return;
  OwnerLeaseState& l = it->second;
  if (l.ballot != o.proposer.ballot || l.round != ack.round) return;
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
  absl::erase_if(grants_, [this](const auto& g) { return g.second.until_ms <= mono_ms_; });
  absl::erase_if(leases_, [this](const auto& l) {
    const ObjectState* o = FindObj(l.first);
    return l.second.until_ms <= mono_ms_ &&
           (o == nullptr || o->proposer.role != Role::kOwner || !o->reads.active);
  });
}

std::optional<std::pair<Ballot, int64_t>> Replica::OwnerLease(const ObjectId& object) const {
  const ObjectState* o = FindObj(object);
  auto it = leases_.find(object);
  if (o == nullptr || it == leases_.end() || o->proposer.role != Role::kOwner ||
      it->second.ballot != o->proposer.ballot || it->second.epochs != ObjectEpochs(*o) ||
      it->second.until_ms == 0) {
    return std::nullopt;
  }
  return std::make_pair(it->second.ballot, it->second.until_ms);
}

}  // namespace atlas::consensus
