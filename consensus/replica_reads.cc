// Linearizable reads: the owner confirms its ballot with a Q2 round batched across all reads
// that arrived before the round started; a read is served once the applied state reaches the
// commit index the round saw (docs/consensus.md, "Read path").
#include "consensus/replica.h"

#include <utility>
#include <vector>

#include "absl/container/btree_map.h"
#include "consensus/check.h"

namespace atlas::consensus {

void Replica::Read(const ObjectId& object, RequestId id, std::string_view key) {
  if (Admit(object, id, /*is_read=*/true) == nullptr) return;
  if (config_.test_unsafe_local_reads) {
    SetReadIndex(id, 0);
    return;
  }
  if (config_.holder_leases) {
    NoteReads(object, 1);
    ObjectState& o = Obj(object);
    if (std::optional<Slot> index = HolderReadIndex(object, o, key)) {
      ++probes_.reads_on_holder_lease;
      SetReadIndex(id, *index);
    } else {
      RouteRead(object, id);
    }
    AskLease(object, Obj(object));
  } else {
    RouteRead(object, id);
  }
  DrainLocal();
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

void Replica::HandleReadIndexRequest(const Message& msg) {
  ObjectState& o = Obj(msg.object);
  for (RequestId id : msg.request_ids) {
    PendingRead r{id, msg.from};
    if (o.proposer.role == Role::kFollower || o.reads.waiting.size() >= config_.reads_max) {
      RejectRead(msg.object, o, r);
      continue;
    }
    NoteAccess(msg.object, o, msg.from);
    NoteInterest(msg.object, o, msg.from);  // it reads once it applied up to the read index
    o.reads.waiting.push_back(r);
    work_ = true;
  }
}

void Replica::HandleReadIndexResponse(const Message& msg) {
  ObjectState& o = Obj(msg.object);
  ObserveBallot(o, msg.ballot);
  NoteDisowned(o, msg);
  // The read index is the owner's commit index (slots it saw chosen in its ballot): learn it,
  // rather than wait for the commit notice that a busy owner leaves to its next Accept.
  if (msg.ok) LearnUpTo(msg.object, o, msg.ballot, msg.slot, msg.from);
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

void Replica::StartReadRound(const ObjectId& object, ObjectState& o) {
  if (o.proposer.role != Role::kOwner || o.reads.waiting.empty()) return;
  if (o.hard.commit_index < o.reads.ready_slot) return;
  const bool every_q1 = InEveryQ1(ObjectEpochs(o));
  const OwnerLeaseState* lease = every_q1 ? nullptr : HeldLease(object, o);
  // In every Q1, no other node can be elected without our promise, and we have given none
  // (we still own the object); under our lease, none without a promise its holders withhold.
  if (every_q1 || lease != nullptr) {
    ++(every_q1 ? probes_.reads_without_round : probes_.reads_on_lease);
    std::vector<PendingRead> reads = std::move(o.reads.waiting);
    o.reads.waiting.clear();
    AnswerReads(object, o, reads, o.hard.commit_index);
    // Renew a lease past its middle while reads keep coming, so that they never wait for it.
    if (lease != nullptr && !o.reads.active && mono_ms_ >= RenewAtMs(*lease)) {
      BeginReadRound(object, o, {});
    }
    return;
  }
  if (o.reads.active) return;
  std::vector<PendingRead> reads = std::move(o.reads.waiting);
  o.reads.waiting.clear();
  BeginReadRound(object, o, std::move(reads));
}

void Replica::BeginReadRound(const ObjectId& object, ObjectState& o,
                             std::vector<PendingRead> reads) {
  o.reads.active = true;
  ++o.reads.round;
  o.reads.in_round = std::move(reads);
  o.reads.acks.clear();
  o.reads.read_index = o.hard.commit_index;
  o.reads.sent = now_;
  ++probes_.read_rounds;
  NoteRoundForLease(object, o);
  SendTo(MembersOf(ObjectEpochs(o)), ConfirmMessage(object, o), /*include_self=*/true);
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
    r.lease_ms = GrantLease(msg);
    r.holders = msg.holders && r.lease_ms > 0;
  }
  Send(std::move(r));
}

void Replica::HandleConfirmAck(const Message& msg) {
  ObjectState& o = Obj(msg.object);
  if (!msg.ok) return HandleRejection(msg, o, Role::kOwner);
  if (o.proposer.role != Role::kOwner || msg.ballot != o.proposer.ballot) return;
  // Grants count until they form a Q2 of their own, also after the round's acks did.
  if (msg.lease_ms > 0) NoteLeaseGrant(msg.object, o, msg);
  if (!o.reads.active || msg.round != o.reads.round) return;
  o.reads.acks.insert(msg.from);
  if (!IsQ2In(ObjectEpochs(o), o.reads.acks)) return;
  o.reads.active = false;
  std::vector<PendingRead> reads = std::move(o.reads.in_round);
  o.reads.in_round.clear();
  AnswerReads(msg.object, o, reads, o.reads.read_index);
}

void Replica::AnswerReads(const ObjectId& object, const ObjectState& o,
                          const std::vector<PendingRead>& reads, Slot index) {
  absl::btree_map<NodeId, std::vector<RequestId>> remote;
  for (const PendingRead& r : reads) {
    if (r.origin == config_.id) {
      SetReadIndex(r.id, index);
    } else {
      remote[r.origin].push_back(r.id);
    }
  }
  for (auto& [origin, ids] : remote) {
    Message m = MessageTo(MessageType::kReadIndexResponse, origin, object);
    m.ok = true;
    m.ballot = o.proposer.ballot;
    m.slot = index;
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

}  // namespace atlas::consensus
