// Phase 2 (WPaxos §4.2): the owner runs phase 2 on a Q2 closest-first; Accept goes to every
// replica so remote ones also learn the value, and the nearest Q2 answers first. Batching and
// pipelining (window_slots in flight); the commit index advances over Q2-accepted slots in
// order and reaches the learners on the next Accept, or in a commit notice once nothing is in
// flight (docs/consensus.md, "Protocol as built").
#include "consensus/replica.h"

#include <algorithm>
#include <utility>

#include "consensus/check.h"

namespace atlas::consensus {

void Replica::FlushProposals(const ObjectId& object, ObjectState& o) {
  if (o.proposer.role != Role::kOwner) return;
  if (o.proposer.anchor_slot != 0) return;  // Nothing after our anchor until it commits.
  Message m = ProposerMessage(MessageType::kAccept, object, o);
  if (NeedsAnchor(o)) {
    // Re-anchor in C_L once every earlier slot is committed here, so the Accept's commit index
    // lets acceptors certify the prefix (they ack an anchor only with everything before it).
    if (o.hard.commit_index + 1 != o.proposer.next_slot || !o.proposer.in_flight.empty()) return;
    if (o.proposer.proposals.empty() && !TakeReanchorTurn(object)) return;
    const ConfigInfo& c = Latest();
    const Slot s = o.proposer.next_slot++;
    // The commands waiting ride in the anchor's own slot (first after it): one commit, not two,
    // for a table's first write after a change. The slot commits in the joint quorums the
    // anchor needs; the host applies it without the anchor command.
    Batch anchor{Command{RequestId{kNoNode, latest_epoch_}, c.encoded}};
    TakeProposals(o, anchor);
    o.proposer.anchor_slot = s;
    o.proposer.in_flight[s] = InFlight{anchor, {}, now_};
    m.entries.push_back({s, LogEntry{o.proposer.ballot, std::move(anchor)}});
    FlushLazy(object, o);  // an anchor's ack needs the whole prefix: the lazy get it first
    SendTo(MembersOf(ObjectEpochs(o)), m, /*include_self=*/true);
    return;
  }
  if (o.proposer.proposals.empty()) return;
  while (!o.proposer.proposals.empty() && o.proposer.in_flight.size() < config_.window_slots) {
    Batch batch;
    TakeProposals(o, batch);
    const Slot s = o.proposer.next_slot++;
    o.proposer.in_flight[s] = InFlight{batch, {}, now_};
    m.entries.push_back({s, LogEntry{o.proposer.ballot, std::move(batch)}});
  }
  if (m.entries.empty()) return;
  NoteProposed(object, m);
  const NodeSet members = MembersOf(ObjectEpochs(o));
  const NodeSet eager = EagerTargets(object, o, members);
  SendTo(eager, m, /*include_self=*/true);
  if (eager.size() < members.size()) {
    DeferToLazy(object, o, m.entries.front().slot, m.entries.back().slot, eager);
  }
  // Under load the commit index rides on the next Accept instead of a message of its own:
  // this one stands in for the commit notice when it reaches everyone the notice would.
  if (m.commit_index > o.proposer.last_commit_sent) {
    const NodeSet notified = MembersOf(NoticeEpochs(o));
    if (std::includes(eager.begin(), eager.end(), notified.begin(), notified.end())) {
      o.proposer.last_commit_sent = m.commit_index;
    }
  }
}

void Replica::TakeProposals(ObjectState& o, Batch& batch) {
  if (o.proposer.proposals.empty()) return;
  // WPaxos orders; the owner also dates: every command gets the owner's clock, never below a
  // stamp the object already carries (docs/consensus.md §Time).
  const int64_t stamp = std::max(o.proposer.last_stamp_ms, wall_ms_);
  o.proposer.last_stamp_ms = stamp;
  while (!o.proposer.proposals.empty() && batch.size() < config_.batch_commands_max) {
    o.forwarding.queued_routes.erase(o.proposer.proposals.front().id);
    batch.push_back(std::move(o.proposer.proposals.front()));
    batch.back().stamp_ms = stamp;
    o.proposer.proposals.pop_front();
  }
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
    // A slot the owner reports chosen (its commit index covers it, in this ballot) is only
    // learned: nobody waits for an ack, and a chosen value needs no synced write here — a Q2
    // holds it durably (docs/consensus.md §Q2 first: lazy members learn most entries so).
    if (e.slot <= msg.commit_index) {
      auto it = o.hard.log.find(e.slot);
      if (e.slot > o.hard.commit_index && (it == o.hard.log.end() || !(it->second == e.entry))) {
        PutEntry(o, e.slot, e.entry);
      }
      continue;
    }
    // A slot we already know chosen keeps its value: any later ballot re-proposes that value.
    // Ours is re-stamped with the new ballot all the same: the ack must be backed by what is
    // on disk, and the commit index that told us it was chosen may not be yet (seed 10230).
    if (e.slot <= o.hard.commit_index) {
      std::optional<LogEntry> mine = EntryAt(msg.object, o, e.slot);  // applied: from disk
      if (mine && mine->ballot < e.entry.ballot && mine->value == e.entry.value) {
        PutEntry(o, e.slot, LogEntry{e.entry.ballot, std::move(mine->value)});
      }
      continue;
    }
    auto it = o.hard.log.find(e.slot);
    if (it != o.hard.log.end() && it->second == e.entry) continue;
    PutEntry(o, e.slot, e.entry);
  }
  bool anchor = false;
  for (const SlotEntry& e : msg.entries) anchor = anchor || IsAnchor(e.entry.value);
  // With an anchor, learn the piggybacked commit index first: it may complete the prefix.
  if (anchor) LearnUpTo(msg.object, o, msg.ballot, msg.commit_index, msg.from);
  bool accepted = false;  // anything this Accept asks us to accept (and ack, now or later)
  for (const SlotEntry& e : msg.entries) {
    if (e.slot <= msg.commit_index) continue;  // learned above
    accepted = true;
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
  // An ack (now, or a deferred anchor's later) leaves only once what it vouches for is
  // durable, new entries or not (an identical copy may have been learned, unsynced, first).
  if (accepted && !config_.test_ack_unsynced_accepts) {
    o.acceptor.must_sync = true;
    MarkDirty(o);
  }
  if (!r.slots.empty()) {
    r.ok = true;
    r.ballot = msg.ballot;
    Send(std::move(r));
  }
  if (!anchor) LearnUpTo(msg.object, o, msg.ballot, msg.commit_index, msg.from);
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
  AdvanceOwnerCommit(msg.object, o);
}

void Replica::AdvanceOwnerCommit(const ObjectId& object, ObjectState& o) {
  while (o.proposer.chosen.contains(o.hard.commit_index + 1)) {
    const Slot s = o.hard.commit_index + 1;
    auto it = o.proposer.in_flight.find(s);
    ATLAS_CHECK(it != o.proposer.in_flight.end());
    // Judged now, not at ack time: the configurations needed may have grown since (a newer
    // epoch from SetConfig, an anchor learned by catch-up). A superset is always safe.
    if (!IsQ2In(ObjectEpochs(o), it->second.acks)) break;
    if (HoldersMissing(object, it->second.acks, IsAnchor(it->second.value))) {
      ++probes_.commits_held_for_holders;  // Tick looks again as their leases end
      break;
    }
    LogEntry chosen{o.proposer.ballot, std::move(it->second.value)};
    auto local = o.hard.log.find(s);
    if (local == o.hard.log.end() || !(local->second == chosen)) PutEntry(o, s, std::move(chosen));
    o.hard.commit_index = s;
    o.proposer.steal_attempts = 0;  // Our ballot committed: the duel that won it is over.
    o.proposer.chosen.erase(s);
    o.proposer.in_flight.erase(it);
    MarkDirty(o);
    ScanAnchors(o);
  }
}

Replica::EpochSet Replica::NoticeEpochs(const ObjectState& o) const {
  EpochSet epochs = ObjectEpochs(o);
  epochs.insert(latest_epoch_);
  if (latest_epoch_ > 1) epochs.insert(latest_epoch_ - 1);
  return epochs;
}

Message Replica::CommitNotice(const ObjectId& object, const ObjectState& o) const {
  Message m = MessageTo(MessageType::kCommit, kNoNode, object);
  m.ballot = o.proposer.ballot;
  m.commit_index = o.hard.commit_index;
  return m;
}

void Replica::SendCommitNotice(const ObjectId& object, ObjectState& o, bool lazy_may_wait) {
  o.proposer.last_commit_sent = o.hard.commit_index;
  NodeSet to = MembersOf(NoticeEpochs(o));
  if (lazy_may_wait && config_.q2_first) {
    // The lazy members hear of it with their next batch, which carries the commit index: an
    // idle owner's every write would otherwise cost them a message each.
    const NodeSet lazy = LazyOf(object, o, MembersOf(ObjectEpochs(o)));
    if (!lazy.empty()) {
      for (NodeId node : lazy) to.erase(node);
      LazyLearners& l = lazy_[object];
      if (l.first == 0 && !l.notice_owed) l.since = now_;
      l.notice_owed = true;
    }
  } else {
    FlushLazy(object, o);  // the entries before the commit index that covers them
  }
  SendTo(to, CommitNotice(object, o), /*include_self=*/false);
}

}  // namespace atlas::consensus
