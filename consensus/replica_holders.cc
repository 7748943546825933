// Replica read leases (docs/consensus.md §Replica read leases): a member that reads an object
// it does not own asks the owner for a lease, and under it answers reads from its own replica.
// The owner grants one only from a confirmation round begun after the ask arrived whose lease
// grants, from a Q2, bind their acceptors against every Prepare (its own next ballot's too):
// no ballot is elected before the holder's lease has ended. From the grant on, the owner
// counts a write chosen only once the holder acked it, or once the holder's lease has ended
// on the owner's clock.
#include <algorithm>
#include <limits>

#include "consensus/replica.h"

namespace atlas::consensus {

void Replica::AskLease(const ObjectId& object, const ObjectState& o) {
  if (!config_.holder_leases || OwnerLeaseMs() <= 0 || mono_ms_ <= boot_ms_ ||
      o.proposer.role != Role::kFollower || LeaseReadsOf(object) == LeaseReads::kOff) {
    return;
  }
  const Ballot owner = o.learner.owner_ballot;
  if (owner.IsZero() || owner.node == config_.id) return;
  // Renewed past its middle, as the owner's lease is, so that reads never wait for it.
  auto held = held_leases_.find(object);
  if (held != held_leases_.end() && held->second.ballot == owner &&
      mono_ms_ < held->second.until_ms - OwnerLeaseMs() / 2) {
    return;
  }
  auto [asked, fresh] = lease_asked_.try_emplace(object, mono_ms_);
  if (!fresh) {
    if (mono_ms_ - asked->second < std::max<int64_t>(OwnerLeaseMs() / 4, 1)) return;
    asked->second = mono_ms_;
  }
  Message m = MessageTo(MessageType::kLeaseRequest, owner.node, object);
  m.ballot = owner;
  m.round = static_cast<uint64_t>(mono_ms_);  // the lease counts from here, on our clock
  m.lease_ms = config_.lease_ms;
  if (auto seen = reads_seen_.find(object); seen != reads_seen_.end()) {
    m.read_rate = seen->second.PerMinute(mono_ms_);
  }
  Send(std::move(m));
}

void Replica::HandleLeaseRequest(const Message& msg) {
  ObjectState& o = Obj(msg.object);
  if (!config_.holder_leases || OwnerLeaseMs() <= 0 || o.proposer.role != Role::kOwner ||
      msg.ballot != o.proposer.ballot || msg.lease_ms != config_.lease_ms ||
      msg.round > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) ||
      !MembersOf(ObjectEpochs(o)).contains(msg.from)) {
    return;  // it reads through us meanwhile, and asks again
  }
  if (LeaseReadsOf(msg.object) == LeaseReads::kAuto &&
      !AutoGrants(msg.object, msg.from, msg.read_rate)) {
    ++probes_.holders_refused;
    return;  // a lease that is not renewed ends by itself: AUTO withdraws it so
  }
  // Any round begun from now on started after the ask: its grants outlast the lease.
  holders_[msg.object].asks[msg.from] = {static_cast<int64_t>(msg.round), o.reads.round + 1};
  NoteInterest(msg.object, o, msg.from);
  work_ = true;
}

// AUTO (docs/consensus.md §Automatic read leases). A holder saves each of its reads a round trip
// to us and costs every write the wait for its ack, up to a round trip more: leases pay once
// reads outnumber writes about twice. A member gets one while the table's reads outnumber its
// writes four times over, and the member's reads the writes that come from it; it keeps it
// while both outnumber them twice (hysteresis: a workload near the line does not make leases
// come and go).
bool Replica::AutoGrants(const ObjectId& object, NodeId from, uint64_t per_minute) {
  if (per_minute == 0) return false;
  AutoLoad& load = auto_load_[object];
  load.reads_of[from] = {per_minute, mono_ms_};
  uint64_t reads = 0;
  if (auto own = reads_seen_.find(object); own != reads_seen_.end()) {
    reads = own->second.PerMinute(mono_ms_);
  }
  for (const auto& [node, report] : load.reads_of) {
    if (mono_ms_ - report.second < 2 * Demand::kDemandWindowMs) reads += report.first;
  }
  auto writes_from = load.writes_from.find(from);
  const uint64_t own_writes =
      writes_from == load.writes_from.end() ? 0 : writes_from->second.PerMinute(mono_ms_);
  const std::vector<NodeId> holders = LeaseHolders(object);
  const bool holds = std::find(holders.begin(), holders.end(), from) != holders.end();
  auto dominate = [holds](uint64_t r, uint64_t w) { return r >= (holds ? 2 : 4) * w; };
  return dominate(reads, load.writes.PerMinute(mono_ms_)) && dominate(per_minute, own_writes);
}

void Demand::Add(int64_t mono_ms, uint64_t n) {
  if (mono_ms - start_ms >= kDemandWindowMs) {
    before = mono_ms - start_ms < 2 * kDemandWindowMs ? now : 0;
    now = 0;
    start_ms = mono_ms;
  }
  now += n;
}

uint64_t Demand::PerMinute(int64_t mono_ms) const {
  const int64_t age = mono_ms - start_ms;
  if (age >= 2 * kDemandWindowMs) return 0;
  if (age >= kDemandWindowMs) return now * 60'000 / static_cast<uint64_t>(age + 1);
  return (now + before) * 60'000 / static_cast<uint64_t>(kDemandWindowMs + age + 1);
}

LeaseReads Replica::LeaseReadsOf(const ObjectId& object) const {
  if (config_.lease_reads_everywhere != LeaseReads::kOff) return config_.lease_reads_everywhere;
  auto it = lease_reads_.find(object);
  return it == lease_reads_.end() ? LeaseReads::kOff : it->second;
}

void Replica::SetLeaseReads(const ObjectId& object, LeaseReads mode) {
  if (mode == LeaseReads::kOff) {
    lease_reads_.erase(object);
  } else {
    lease_reads_[object] = mode;
  }
  if (mode != LeaseReads::kAuto) {
    reads_seen_.erase(object);
    auto_load_.erase(object);
  }
}

void Replica::NoteReads(const ObjectId& object, uint64_t n) {
  if (n > 0 && LeaseReadsOf(object) == LeaseReads::kAuto) reads_seen_[object].Add(mono_ms_, n);
}

void Replica::NoteProposed(const ObjectId& object, const Message& accept) {
  if (LeaseReadsOf(object) != LeaseReads::kAuto) return;
  AutoLoad& load = auto_load_[object];
  for (const SlotEntry& e : accept.entries) {
    load.writes.Add(mono_ms_, e.entry.value.size());
    for (const Command& c : e.entry.value) load.writes_from[c.id.node].Add(mono_ms_, 1);
  }
}

bool Replica::MayGrantHolders(const ObjectState& o) const {
  // Not while a new configuration is being anchored: its quorums need not meet the grants
  // of the old one, so the anchor waits for every holder's lease to end instead (rule 8).
  return o.proposer.role == Role::kOwner && may_own_ &&
         o.hard.commit_index >= o.reads.ready_slot && o.proposer.anchor_slot == 0 &&
         !NeedsAnchor(o) && ObjectEpochs(o).size() == 1;
}

void Replica::StartHolderRound(const ObjectId& object, ObjectState& o) {
  auto it = holders_.find(object);
  if (it == holders_.end() || o.reads.active || !MayGrantHolders(o)) return;
  // One round per ask: a round that binds no Q2 (an acceptor holding a Prepare grants none)
  // is not repeated until the member asks again. An owner that is a Q2 on its own would
  // otherwise start rounds without end, none of them leaving the node (seed 2029).
  for (const auto& [node, ask] : it->second.asks) {
    if (ask.round > o.reads.round) return BeginReadRound(object, o, {});
  }
}

void Replica::RecordHolders(const ObjectId& object, ObjectState& o, uint64_t round) {
  auto it = holders_.find(object);
  if (it == holders_.end() || !MayGrantHolders(o)) return;
  Holders& h = it->second;
  // Holders are members (of the one configuration now): the binds that protect them come
  // from a Q2 of it, and an object with one member needs none (LeaseBlocksPrepare).
  const NodeSet members = MembersOf(ObjectEpochs(o));
  for (auto ask = h.asks.begin(); ask != h.asks.end();) {
    const NodeId node = ask->first;
    if (!members.contains(node) || node == config_.id) {
      ask = h.asks.erase(ask);
      continue;
    }
    if (ask->second.round > round) {
      ++ask;
      continue;
    }
    // Its lease ends by asked + lease_ms / (1 + drift) in real time, and it asked before we
    // got the ask: lease_ms (+ 2 ms of clock resolution) of our clock is at least that long.
    int64_t& until = h.until[node];
    until = std::max(until, mono_ms_ + config_.lease_ms + 2);
    Message grant = MessageTo(MessageType::kLeaseGrant, node, object);
    grant.ballot = o.proposer.ballot;
    grant.round = static_cast<uint64_t>(ask->second.asked_ms);
    grant.lease_ms = config_.lease_ms;
    grant.commit_index = o.hard.commit_index;  // everything chosen without its ack
    Send(std::move(grant));
    // What is in flight now commits only with its ack: it gets those entries at once.
    Message accept = ProposerMessage(MessageType::kAccept, object, o);
    accept.to = node;
    for (const auto& [slot, f] : o.proposer.in_flight) {
      if (!f.acks.contains(node)) accept.entries.push_back({slot, {o.proposer.ballot, f.value}});
    }
    if (!accept.entries.empty()) Send(std::move(accept));
    ++probes_.holders_granted;
    ask = h.asks.erase(ask);
  }
}

void Replica::HandleLeaseGrant(const Message& msg) {
  // Only the answer to an ask of this incarnation: our clock only grows across restarts.
  if (!config_.holder_leases || msg.lease_ms != config_.lease_ms ||
      msg.round > static_cast<uint64_t>(mono_ms_) || msg.round <= static_cast<uint64_t>(
                                                         std::max<int64_t>(boot_ms_, 0))) {
    return;
  }
  ObjectState& o = Obj(msg.object);
  if (o.proposer.role != Role::kFollower) return;
  ObserveBallot(o, msg.ballot);
  // The owner's lease arithmetic, counted from our ask: it ends before every grant that
  // recorded us, and before the owner stops waiting for our acks.
  const int64_t until = static_cast<int64_t>(msg.round) + OwnerLeaseMs();
  ReplicaLease& l = held_leases_[msg.object];
  if (until > l.until_ms) l = {msg.ballot, until, msg.commit_index};
  LearnUpTo(msg.object, o, msg.ballot, msg.commit_index, msg.from);
  ready_.leases.push_back(msg.object);
  work_ = true;
}

bool Replica::HoldersWanted(const ObjectId& object) const {
  auto it = holders_.find(object);
  return it != holders_.end() && (!it->second.asks.empty() || !LeaseHolders(object).empty());
}

bool Replica::HoldersMissing(const ObjectId& object, const NodeSet& acks, bool anchor) const {
  if (config_.test_commit_without_holders) return false;
  auto it = holders_.find(object);
  if (it == holders_.end()) return false;
  for (const auto& [node, until] : it->second.until) {
    if (mono_ms_ < until && (anchor || !acks.contains(node))) return true;
  }
  return false;
}

std::optional<Slot> Replica::HolderReadIndex(const ObjectId& object, const ObjectState& o,
                                             std::string_view key) const {
  if (o.proposer.role != Role::kFollower) return std::nullopt;
  auto it = held_leases_.find(object);
  if (it == held_leases_.end()) return std::nullopt;
  if (mono_ms_ >= it->second.until_ms && !config_.test_holder_reads_expired) return std::nullopt;
  // An entry we accepted may be counted chosen at any moment: the read waits for its commit.
  // Only for one that may write what it reads: while our lease holds, a slot counts chosen only
  // with our ack of the value we then hold in it (no other ballot is elected meanwhile), so the
  // others leave the key as it is.
  Slot index = std::max(it->second.index, o.hard.commit_index);
  for (auto e = o.hard.log.upper_bound(index); e != o.hard.log.end(); ++e) {
    if (key.empty() || MayWrite(e->second.value, key)) index = e->first;
  }
  return index;
}

bool Replica::MayWrite(const Batch& batch, std::string_view key) const {
  if (config_.test_holder_reads_skip_accepted) return false;
  if (!config_.may_write) return true;
  return std::any_of(batch.begin(), batch.end(),
                     [&](const Command& c) { return config_.may_write(c, key); });
}

void Replica::DropExpiredHolders() {
  if (!config_.test_holder_reads_expired) {
    absl::erase_if(held_leases_, [this](const auto& l) { return l.second.until_ms <= mono_ms_; });
  }
  absl::erase_if(lease_asked_,
                 [this](const auto& a) { return mono_ms_ - a.second >= config_.lease_ms; });
  auto forgotten = [this](const auto& d) {
    return mono_ms_ - d.second.start_ms >= 2 * Demand::kDemandWindowMs;
  };
  absl::erase_if(reads_seen_, forgotten);
  absl::erase_if(auto_load_, [this, &forgotten](auto& l) {
    absl::erase_if(l.second.writes_from, forgotten);
    absl::erase_if(l.second.reads_of, [this](const auto& r) {
      return mono_ms_ - r.second.second >= 2 * Demand::kDemandWindowMs;
    });
    return l.second.writes_from.empty() && l.second.reads_of.empty() &&
           mono_ms_ - l.second.writes.start_ms >= 2 * Demand::kDemandWindowMs;
  });
  absl::erase_if(holders_, [this](auto& h) {
    absl::erase_if(h.second.until, [this](const auto& u) { return u.second <= mono_ms_; });
    const ObjectState* o = FindObj(h.first);
    if (o == nullptr || o->proposer.role != Role::kOwner) h.second.asks.clear();
    return h.second.until.empty() && h.second.asks.empty();
  });
}

std::optional<std::pair<Ballot, int64_t>> Replica::HolderLease(const ObjectId& object) const {
  auto it = held_leases_.find(object);
  if (it == held_leases_.end() || it->second.until_ms <= mono_ms_) return std::nullopt;
  return std::make_pair(it->second.ballot, it->second.until_ms);
}

std::vector<NodeId> Replica::LeaseHolders(const ObjectId& object) const {
  std::vector<NodeId> out;
  auto it = holders_.find(object);
  if (it == holders_.end()) return out;
  for (const auto& [node, until] : it->second.until) {
    if (mono_ms_ < until) out.push_back(node);
  }
  return out;
}

}  // namespace atlas::consensus
