// Q2 first (docs/consensus.md §Q2 first): an owner sends each Accept at once only to the Q2 it
// waits for (the nearest live one, itself first) and to members that recently forwarded or
// read; the other members learn the same Accepts in batches, at most one tick later. Which
// nodes get an Accept when is a matter of message delay, which Paxos tolerates: safety rests
// on the commit rule alone (a slot commits on acks from a Q2 of the object's configurations),
// and a lazy member's ack counts like any other if it arrives while the slot is in flight.
#include <algorithm>

#include "consensus/membership.h"
#include "consensus/replica.h"

namespace atlas::consensus {

NodeSet Replica::EagerTargets(const ObjectId& object, const ObjectState& o,
                              const NodeSet& members) const {
  // Membership changes reach every member at once: a member that missed one cannot learn it
  // from the nodes it added (its transport and core refuse them as strangers), so a lazy one
  // whose owner died before its flush could be stuck on the old configuration.
  if (!config_.q2_first || object == kMembershipObject) return members;
  NodeSet eager{config_.id};
  const NodeSet live = LiveNodes();
  const ZoneId zone = ZoneOf(config_.id);
  for (uint64_t epoch : ObjectEpochs(o)) {
    auto q2 = configs_.at(epoch).quorums.ChooseQ2(zone, live, config_.id);
    if (!q2.ok()) return members;  // no live Q2: everyone, and let the acks decide
    eager.insert(q2->begin(), q2->end());
  }
  if (auto l = lazy_.find(object); l != lazy_.end()) {
    for (const auto& [node, until] : l->second.interested) {
      if (until > now_) eager.insert(node);
    }
  }
  for (NodeId node : LeaseHolders(object)) eager.insert(node);  // writes wait for their acks
  NodeSet out;
  std::set_intersection(eager.begin(), eager.end(), members.begin(), members.end(),
                        std::inserter(out, out.end()));
  return out;
}

void Replica::DeferToLazy(const ObjectId& object, ObjectState& o, Slot first, Slot last,
                          const NodeSet& eager) {
  LazyLearners& l = lazy_[object];
  // One range, sent to everyone outside one eager set: a new ballot or target set starts anew.
  if (l.first != 0 && (l.ballot != o.proposer.ballot || l.eager != eager)) FlushLazy(object, o);
  l.ballot = o.proposer.ballot;
  l.eager = eager;
  if (l.first == 0) {
    l.first = first;
    l.since = now_;
  }
  l.last = last;
  if (config_.test_count_lazy_as_acked) {
    // The bug: the lazy members' acks taken for granted before they even got the entry.
    for (NodeId node : MembersOf(ObjectEpochs(o))) {
      if (eager.contains(node)) continue;
      for (Slot s = first; s <= last; ++s) {
        o.proposer.in_flight[s].acks.insert(node);
        o.proposer.chosen.insert(s);
      }
    }
  }
  if (l.last - l.first + 1 >= config_.window_slots) FlushLazy(object, o);
}

void Replica::FlushLazy(const ObjectId& object, ObjectState& o) {
  auto it = lazy_.find(object);
  if (it == lazy_.end() || (it->second.first == 0 && !it->second.notice_owed)) return;
  LazyLearners& l = it->second;
  const bool notice_owed = l.notice_owed;
  l.notice_owed = false;
  // A lost ownership's Accepts and notices are moot: a later ballot re-proposes whatever may
  // be chosen, and announces its own commits.
  if (o.proposer.role != Role::kOwner) {
    l.first = l.last = 0;
    TruncateLog(object, o);
    return;
  }
  const NodeSet members = MembersOf(ObjectEpochs(o));
  const NodeSet reached = SendLazyRange(object, o, l, members);
  TruncateLog(object, o);  // what the range held back from a snapshot may go now
  if (!notice_owed) return;
  // The deferred notice, to whoever is lazy now and got no Accept above (those carry the
  // commit index): a member eager when the range was buffered may be lazy by now.
  NodeSet to;
  for (NodeId node : LazyOf(object, o, members)) {
    if (!reached.contains(node)) to.insert(node);
  }
  SendTo(to, CommitNotice(object, o), /*include_self=*/false);
}

NodeSet Replica::SendLazyRange(const ObjectId& object, ObjectState& o, LazyLearners& l,
                               const NodeSet& members) {
  const Slot first = l.first, last = l.last;
  l.first = l.last = 0;
  if (log_ != nullptr) evict_due_.insert(object);  // what it held in memory may go now
  if (first == 0 || o.proposer.ballot != l.ballot) return {};
  Message m = ProposerMessage(MessageType::kAccept, object, o);
  for (Slot s = std::max(first, o.hard.truncated_through + 1); s <= last; ++s) {
    if (auto f = o.proposer.in_flight.find(s); f != o.proposer.in_flight.end()) {
      m.entries.push_back({s, LogEntry{l.ballot, f->second.value}});
    } else if (auto e = o.hard.log.find(s); e != o.hard.log.end() && e->second.ballot == l.ballot) {
      m.entries.push_back({s, e->second});
    }
  }
  if (m.entries.empty()) return {};
  ++probes_.lazy_flushes;
  NodeSet reached;
  for (NodeId node : members) {
    if (node == config_.id || l.eager.contains(node)) continue;
    m.to = node;
    Send(m);
    reached.insert(node);
  }
  return reached;
}

NodeSet Replica::LazyOf(const ObjectId& object, const ObjectState& o,
                        const NodeSet& members) const {
  const NodeSet eager = EagerTargets(object, o, members);
  NodeSet lazy;
  for (NodeId node : members) {
    if (!eager.contains(node)) lazy.insert(node);
  }
  return lazy;
}

void Replica::NoteInterest(const ObjectId& object, ObjectState& o, NodeId node) {
  if (!config_.q2_first || node == config_.id || o.proposer.role != Role::kOwner) return;
  consensus::Tick& until = lazy_[object].interested[node];
  const bool was_eager = until > now_;
  until = now_ + config_.interest_ticks;
  // Catch it up before anything it asked for can answer it (a read index, its command's commit).
  if (!was_eager) FlushLazy(object, o);
}

void Replica::TickLazy(bool all) {
  for (auto it = lazy_.begin(); it != lazy_.end();) {
    auto obj = objects_.find(it->first);
    const bool due = all || now_ - it->second.since >= config_.lazy_flush_ticks;
    if (obj != objects_.end() && due) FlushLazy(it->first, Wake(it->first, obj->second));
    absl::erase_if(it->second.interested, [this](const auto& kv) { return kv.second <= now_; });
    const bool idle = it->second.first == 0 && !it->second.notice_owed;
    it = idle && it->second.interested.empty() ? lazy_.erase(it) : std::next(it);
  }
}

}  // namespace atlas::consensus
