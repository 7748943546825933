// CheckInvariants: what must hold of a node's state between steps (docs/consensus.md,
// "Invariants"), checked by the simulator after every Step and Tick. Only local facts are
// checked here; the simulator checks what needs history or other nodes (a promise never goes
// back, one value per slot, a commit index only over values a Q2 accepted).
#include "consensus/replica.h"

#include <algorithm>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"

namespace atlas::consensus {

std::vector<std::string> Replica::CheckInvariants(std::vector<CheckedObject>* checked) {
  if (!checking_) {
    checking_ = true;
    for (const auto& [object, stored] : objects_) check_list_.push_back(object);
  }
  // In object order, so that the report does not depend on the order of the touches. The
  // list keeps its capacity: it is refilled at every step.
  if (check_list_.size() > 1) std::sort(check_list_.begin(), check_list_.end());
  std::vector<std::string> out;
  if (checked != nullptr) checked->clear();
  for (const ObjectId& object : check_list_) {
    ObjectState& o = Stored(object);
    o.bookkeeping.queued_check = false;
    CheckObject(object, o, out);
    if (checked != nullptr) checked->emplace_back(object, &o.hard);
  }
  check_list_.clear();
  auto fail = [&](auto&&... parts) {
    out.push_back(absl::StrCat("node ", config_.id, ": ", parts...));
  };
  if (!local_.empty()) fail("messages to self left undelivered");
  if (deadlines_.size() != pending_.size()) {
    fail(deadlines_.size(), " deadlines for ", pending_.size(), " requests in progress");
  }
  for (RequestId id : reads_indexed_) {
    if (!pending_.contains(id)) fail("indexed read ", id.ToString(), " unknown");
  }
  if (serving_count_ > config_.snapshots_served_max) {
    fail(serving_count_, " snapshots held for transfers, max ", config_.snapshots_served_max);
  }
  return out;
}

void Replica::CheckObject(const ObjectId& object, const ObjectState& o,
                          std::vector<std::string>& out) const {
  auto fail = [&](auto&&... parts) {
    out.push_back(absl::StrCat("node ", config_.id, " object ", object, ": ", parts...));
  };
  const ObjectHardState& h = o.hard;
  // Learner: the application never runs ahead of the chosen prefix, and the log is truncated
  // only below a snapshot the application holds.
  if (o.learner.applied > h.commit_index) {
    fail("applied ", o.learner.applied, " > commit index ", h.commit_index);
  }
  if (h.truncated_through > o.learner.applied) {
    fail("log truncated through ", h.truncated_through, " > applied ", o.learner.applied);
  }
  if (!h.log.empty() && h.log.begin()->first <= h.truncated_through) {
    fail("log entry ", h.log.begin()->first, " <= truncated_through ", h.truncated_through);
  }
  // Every committed slot above the truncation point is in the log (catch-up and apply read
  // them from there); with a LogSource, applied ones may be only on disk (EvictApplied). Its
  // ends here; the simulator checks each slot as it gets committed.
  const Slot held = log_ == nullptr ? h.truncated_through
                                    : std::max(h.truncated_through, o.learner.applied);
  if (h.commit_index > held &&
      (h.log.empty() || (log_ == nullptr && h.log.begin()->first != held + 1) ||
       !h.log.contains(held + 1) || h.log.rbegin()->first < h.commit_index)) {
    fail("log does not hold the committed slots (", held, ", ", h.commit_index, "]");
  }
  // Anchors are found among committed entries before they are applied and leave memory.
  if (o.learner.anchor_scanned < o.learner.applied) {
    fail("applied ", o.learner.applied, " past the anchor scan ", o.learner.anchor_scanned);
  }
  // The Ready contract: a changed hard state is in the next Ready (CollectPersist).
  if (o.acceptor.dirty && !o.bookkeeping.queued_collect) {
    fail("hard state changed but not queued for the next Ready");
  }
  if (o.acceptor.deferred_anchor != 0 && o.acceptor.deferred_ballot > h.promised) {
    fail("anchor ack deferred for ballot ", o.acceptor.deferred_ballot.ToString(),
         " above the promise ", h.promised.ToString());
  }
  CheckProposer(object, o, out);
}

void Replica::CheckProposer(const ObjectId& object, const ObjectState& o,
                            std::vector<std::string>& out) const {
  auto fail = [&](auto&&... parts) {
    out.push_back(absl::StrCat("node ", config_.id, " object ", object, ": ", parts...));
  };
  const internal::ProposerState& p = o.proposer;
  const ObjectHardState& h = o.hard;
  const bool follower = p.role == Role::kFollower;
  if (follower) {
    if (!p.in_flight.empty() || !p.chosen.empty() || !p.promises.empty() ||
        !p.recovered.empty() || p.anchor_slot != 0 || !p.joint.empty()) {
      fail("a follower holds proposer state");
    }
  } else {
    // Our acceptor promised our own ballot (Prepare to self); a higher promise steps us down.
    if (p.ballot.node != config_.id || p.ballot < h.promised) {
      fail(p.role == Role::kOwner ? "owner" : "candidate", " ballot ", p.ballot.ToString(),
           " vs promise ", h.promised.ToString());
    }
  }
  if (p.role == Role::kCandidate && (!p.in_flight.empty() || !p.chosen.empty())) {
    fail("a candidate has slots in flight");
  }
  if (!p.in_flight.empty()) {
    // Phase 2 runs only above the chosen prefix, below the next slot to propose.
    if (p.in_flight.begin()->first <= h.commit_index) {
      fail("slot ", p.in_flight.begin()->first, " in flight <= commit index ", h.commit_index);
    }
    if (p.in_flight.rbegin()->first >= p.next_slot) {
      fail("slot ", p.in_flight.rbegin()->first, " in flight >= next slot ", p.next_slot);
    }
  }
  for (Slot s : p.chosen) {
    if (!p.in_flight.contains(s)) fail("chosen slot ", s, " not in flight");
  }
  if (p.anchor_slot != 0 && !p.in_flight.contains(p.anchor_slot)) {
    fail("anchor slot ", p.anchor_slot, " not in flight");
  }
  if ((!o.reads.active && !o.reads.in_round.empty()) ||
      (o.reads.active && p.role != Role::kOwner)) {
    fail("read round active=", o.reads.active, " with ", o.reads.in_round.size(),
         " reads, role ", static_cast<int>(p.role));
  }
}

}  // namespace atlas::consensus
