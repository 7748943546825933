// Phase 1 (WPaxos §4.2): a candidate steals an object with a ballot above every promise,
// acceptors promise and report what they accepted, and a Q1 of promises makes the candidate
// the owner, which re-proposes what phase 1 recovered. Also stepping down, and the acceptor's
// one check of every proposer message (docs/consensus.md, "Protocol as built").
#include "consensus/replica.h"

#include <algorithm>
#include <utility>
#include <vector>

namespace atlas::consensus {

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
    if (LeaseBlocksPrepare(msg, o)) {
      // No answer: the candidate resends its Prepare (resend_ticks) until the lease is over.
      ++probes_.prepares_held;
      return;
    }
    Promise(msg.object, o, msg.ballot);
    // The reply reports our commit index, and the stealer learns the slots under it instead of
    // re-proposing them: it must still be ours after a crash (a commit index is otherwise
    // written without sync), so the reply waits for a synced write of it.
    o.acceptor.must_sync = true;
    MarkDirty(o);
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

void Replica::Promise(const ObjectId& object, ObjectState& o, Ballot b) {
  if (b <= o.hard.promised) return;
  o.hard.promised = b;
  o.acceptor.must_sync = true;
  MarkDirty(o);
  ObserveBallot(o, b);
  // Our own acceptor promised someone else: our ballot can no longer gather a quorum that
  // includes us, and continuing would duel forever (WPaxos §4.2: adopt the higher ballot).
  if (o.proposer.role != Role::kFollower && b > o.proposer.ballot) StepDown(object, o);
}

void Replica::ObserveBallot(ObjectState& o, Ballot b) {
  // The node of the highest ballot seen is our best guess of the owner (it may still be
  // stealing); forwards address that exact ballot.
  if (b > o.learner.owner_ballot) o.learner.owner_ballot = b;
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

void Replica::BecomeOwner(const ObjectId& object, ObjectState& o) {
  o.proposer.role = Role::kOwner;
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
  // The duel is over once our ballot commits (AdvanceOwnerCommit), or now if nothing is left
  // to commit: until then a preemption counts as a lost duel (StepDown).
  if (m.entries.empty() && !NeedsAnchor(o)) o.proposer.steal_attempts = 0;
  // Reads wait for the recovered prefix: the new owner catches up before it serves reads.
  o.reads.ready_slot = top;
  OwnershipEvent e;
  e.kind = OwnershipEventKind::kElected;
  e.object = object;
  e.ballot = o.proposer.ballot;
  e.slot = base + 1;
  ready_.ownership.push_back(std::move(e));
  if (!m.entries.empty()) {
    SendTo(MembersOf(ObjectEpochs(o)), m, /*include_self=*/true);
  } else {
    AnnounceElection(object, o);
  }
  if (o.proposer.recovered_commit > o.hard.commit_index) {
    RequestCatchup(object, o, o.proposer.recovered_commit_from);
  }
  o.proposer.last_commit_sent = 0;
  work_ = true;
}

// An election with nothing to re-propose sends no Accept, and a Q1 may leave members out (with
// Fn=0 it is one node): an old owner that held our Prepare for its lease would otherwise go on
// taking itself for the owner, and be shown as such, until the next write.
void Replica::AnnounceElection(const ObjectId& object, const ObjectState& o) {
  SendToSilent(MembersOf(ObjectEpochs(o)), o.proposer.promises, CommitNotice(object, o));
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
  const bool unsettled = o.proposer.role == Role::kOwner &&
                         (o.hard.commit_index < o.reads.ready_slot ||
                          o.proposer.anchor_slot != 0 || NeedsAnchor(o));
  if (o.proposer.role == Role::kCandidate || unsettled) {
    // Preempted in phase 1, or as an owner before it committed what phase 1 recovered and
    // its anchor: a lost duel either way. Without the backoff, an owner preempted at once
    // stole straight back (seed 305086: ten nodes duelled after a restart of all).
    ++probes_.steals_preempted;
    ++o.proposer.steal_attempts;
    // Randomized exponential backoff so duelling stealers separate (seeded, deterministic).
    const consensus::Tick base = config_.steal_backoff_ticks;
    const consensus::Tick cap = base << std::min(o.proposer.steal_attempts, 5);
    o.proposer.backoff_until = now_ + rng_.Range(base / 2, cap);
  }
  if (o.proposer.role == Role::kOwner && !o.proposer.in_flight.empty()) {
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
  leases_.erase(object);
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

}  // namespace atlas::consensus
