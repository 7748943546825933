// Idle objects: anti-entropy by range digests (docs/consensus.md §Idle objects). A heartbeat
// lists the commit indexes that moved since the previous one, and a digest of one range of the
// sender's objects (a rolling window). A receiver whose own digest of that range agrees has
// nothing to learn and sends nothing; one that differs asks for the range, and the two swap
// its commit indexes (owners re-announce theirs). So an idle table costs no traffic at all, and
// a missed notice or a restarted peer is still repaired within one cycle.
#include <algorithm>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "consensus/replica.h"

namespace atlas::consensus {
namespace {

uint64_t DigestPart(const ObjectId& object, Slot commit, const Ballot& owner) {
  uint64_t h = StableMix(StableHash(object), commit);
  h = StableMix(h, owner.counter);
  return StableMix(h, owner.node);
}

}  // namespace

Ballot Replica::ClaimedOwner(const ObjectState& o) const {
  if (o.proposer.role == Role::kOwner) return o.proposer.ballot;
  const Ballot& b = o.learner.owner_ballot;
  // We never claim ourselves owner unless we are; nor one that told us it is not.
  if (b.node == config_.id || b == o.learner.disowned) return Ballot{};
  return b;
}

RangeDigest Replica::DigestRange(const ObjectId& lo, const ObjectId& hi,
                                 std::vector<std::pair<ObjectId, Slot>>* entries) {
  RangeDigest d{lo, hi, 0, 0};
  // Bounded, as any work a peer's message asks for: a range holding more of our objects than
  // that differs from the peer's, and the exchange teaches it the first ones.
  size_t looked = 0;
  for (auto it = objects_.lower_bound(lo);
       it != objects_.end() && it->first <= hi && looked < config_.directory_objects_max;
       ++it, ++looked) {
    std::optional<ObjectState> resting;
    const ObjectState& o = Peek(it->second, resting);
    // An object nothing was committed in (a read of a table nobody created) is not worth a
    // word: a peer may never have heard of it.
    if (o.hard.commit_index == 0) continue;
    const Slot commit = config_.test_digest_without_commit ? 1 : o.hard.commit_index;
    ++d.count;
    d.hash += DigestPart(it->first, commit, ClaimedOwner(o));
    if (entries != nullptr && entries->size() < config_.directory_objects_max) {
      entries->push_back({it->first, o.hard.commit_index});
    }
  }
  return d;
}

void Replica::AddHeartbeatDigest(Message& hb, bool full) {
  if (objects_.empty()) return;
  const size_t n = objects_.size();
  if (n <= config_.heartbeat_objects_max) {
    // A small node: all of it, every heartbeat_full_every-th heartbeat (`full`).
    if (!full) return;
    hb.digest = DigestRange(objects_.begin()->first, objects_.rbegin()->first);
    return;
  }
  // A large one: the next window, to the end of the objects at most (the next starts over).
  const uint64_t cycle = HeartbeatCycle();
  const size_t window = static_cast<size_t>((n + cycle - 1) / cycle);
  auto it = objects_.lower_bound(heartbeat_cursor_);
  if (it == objects_.end()) it = objects_.begin();
  const ObjectId lo = it->first;
  ObjectId hi = lo;
  for (size_t i = 0; i < window && it != objects_.end(); ++i, ++it) hi = it->first;
  heartbeat_cursor_ = it == objects_.end() ? ObjectId{} : it->first;
  hb.digest = DigestRange(lo, hi);
}

void Replica::CompareDigest(const Message& msg) {
  const RangeDigest& theirs = msg.digest;
  if (theirs.lo.empty()) return;
  const RangeDigest ours = DigestRange(theirs.lo, theirs.hi);
  if (ours.count == theirs.count && ours.hash == theirs.hash) {
    // The peer claims what we believe of every object in it: its owned ones included.
    agreed_[msg.from][theirs.lo] = {theirs.hi, now_};
    return;
  }
  ++probes_.digests_differed;
  Message r = ReplyTo(msg, MessageType::kRangeRequest);
  r.digest = DigestRange(theirs.lo, theirs.hi, &r.commit_indexes);
  Send(std::move(r));
}

void Replica::HandleRangeRequest(const Message& msg) {
  if (!KnownNode(msg.from) || msg.digest.lo.empty()) return;
  NoteReports(msg);
  Message r = ReplyTo(msg, MessageType::kRange);
  r.digest = DigestRange(msg.digest.lo, msg.digest.hi, &r.commit_indexes);
  Send(std::move(r));
  // The owners' side of the range: who owns what (a restarted peer, or one that missed a
  // steal, learns it here).
  std::vector<ObjectId> owned;
  auto it = objects_.lower_bound(msg.digest.lo);
  for (size_t looked = 0; it != objects_.end() && it->first <= msg.digest.hi &&
                          looked < config_.directory_objects_max;
       ++it, ++looked) {
    std::optional<ObjectState> resting;
    if (Peek(it->second, resting).proposer.role == Role::kOwner) owned.push_back(it->first);
  }
  for (const ObjectId& object : owned) ReannounceTo(object, msg.from);
}

void Replica::HandleRange(const Message& msg) {
  if (!KnownNode(msg.from)) return;
  ++probes_.ranges_received;
  NoteReports(msg);
}

void Replica::ReannounceTo(const ObjectId& object, NodeId node) {
  StoredObject& s = objects_.find(object)->second;
  std::optional<ObjectState> resting;
  const ObjectState& peeked = Peek(s, resting);
  if (peeked.proposer.last_commit_sent == peeked.hard.commit_index) {
    // Announced already: tell this node again, without waking the object.
    Message m = CommitNotice(object, peeked);
    m.to = node;
    Send(std::move(m));
    return;
  }
  ObjectState& o = Wake(object, s);
  SendCommitNotice(object, o);  // owed to every member anyway
}

bool Replica::OwnerAgreed(NodeId owner, const ObjectId& object) const {
  auto peer = agreed_.find(owner);
  if (peer == agreed_.end()) return false;
  auto it = peer->second.upper_bound(object);
  if (it == peer->second.begin()) return false;
  --it;
  return object <= it->second.first && now_ - it->second.second <= SilenceTicks();
}

void Replica::PruneAgreed() {
  for (auto peer = agreed_.begin(); peer != agreed_.end();) {
    auto& ranges = peer->second;
    for (auto it = ranges.begin(); it != ranges.end();) {
      it = now_ - it->second.second > SilenceTicks() ? ranges.erase(it) : std::next(it);
    }
    peer = ranges.empty() ? agreed_.erase(peer) : std::next(peer);
  }
}

consensus::Tick Replica::SilenceTicks() const {
  return 2 * static_cast<consensus::Tick>(HeartbeatCycle()) * config_.heartbeat_ticks;
}

}  // namespace atlas::consensus
