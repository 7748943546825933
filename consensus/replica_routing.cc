// Routing of client writes: forward to the owner, steal, or queue (MigrationPolicy decides);
// exactly-once forwarding under duplication (per-origin sequence windows); rejections and
// retries; migration hints (docs/consensus.md, "Protocol as built").
#include "consensus/replica.h"

#include <algorithm>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "consensus/check.h"

namespace atlas::consensus {

// ---------------------------------------------------------------------------------------------
// Client requests.

Replica::PendingRequest* Replica::Admit(const ObjectId& object, RequestId id, bool is_read) {
  ATLAS_CHECK(id.node == config_.id);
  ATLAS_CHECK(!pending_.contains(id));
  if (pending_.size() >= config_.pending_requests_max) {
    ready_.replies.push_back({id, object, is_read, ReplyCode::kBusy, true, "too many requests"});
    return nullptr;
  }
  PendingRequest& p = pending_[id];
  p.object = object;
  p.is_read = is_read;
  p.deadline = now_ + config_.request_timeout_ticks;
  deadlines_.insert({p.deadline, id});
  return &p;
}

void Replica::Propose(const ObjectId& object, std::string command, RequestId id) {
  PendingRequest* p = Admit(object, id, /*is_read=*/false);
  if (p == nullptr) return;
  p->command = command;
  RouteWrite(object, Command{id, std::move(command)});
  DrainLocal();
}

void Replica::Steal(const ObjectId& object) {
  ObjectState& o = Obj(object);
  o.proposer.backoff_until = 0;
  StartSteal(object, StealReason::kMove);
  DrainLocal();
}

void Replica::Move(const ObjectId& object, NodeId target) {
  if (target == config_.id) {
    Steal(object);
    return;
  }
  Send(MessageTo(MessageType::kMoveHint, target, object));
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

// ---------------------------------------------------------------------------------------------
// Routing.

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

// ---------------------------------------------------------------------------------------------
// The owner side of forwarding.

void Replica::HandleForward(const Message& msg) {
  ObjectState& o = Obj(msg.object);
  // Taken only by the exact ballot the origin addressed. A ballot is held for one interval,
  // and within it each (origin, seq) is taken at most once, so a duplicated or delayed
  // forward never proposes a command twice.
  const bool take = o.proposer.role != Role::kFollower && msg.ballot == o.proposer.ballot;
  if (take) {
    if (!TakeForward(o, msg.from, msg.seq)) return;  // Duplicate.
    NoteInterest(msg.object, o, msg.from);  // the origin answers its client when it learns
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

// ---------------------------------------------------------------------------------------------
// Migration.

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

void Replica::HandleMoveHint(const Message& msg) {
  ObjectState& o = Obj(msg.object);
  if (o.proposer.role == Role::kFollower) StartSteal(msg.object, StealReason::kMoveHint);
}

}  // namespace atlas::consensus
