// Learner: the commit index from commit notices and Accepts, and catch-up from a peer (log
// entries in bursts, or a snapshot in chunks when the peer truncated its log) for a learner
// that fell behind (docs/consensus.md, "Protocol as built").
#include "consensus/replica.h"

#include <algorithm>
#include <iterator>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "consensus/check.h"
#include "consensus/membership.h"

namespace atlas::consensus {

// ---------------------------------------------------------------------------------------------
// Commit index.

void Replica::HandleCommit(const Message& msg) {
  if (ReportLeavesAtRest(msg.object, msg.commit_index, msg.from, msg.ballot)) return;
  ObjectState& o = Obj(msg.object);
  ObserveBallot(o, msg.ballot);
  if (msg.ballot == o.learner.owner_ballot) o.learner.owner_heard = now_;
  // A higher ballot's owner was elected by a Q1, which shares a node with each of our Q2s.
  if (o.proposer.role != Role::kFollower && msg.ballot > o.proposer.ballot) {
    StepDown(msg.object, o);
  }
  LearnUpTo(msg.object, o, msg.ballot, msg.commit_index, msg.from);
}

void Replica::HandleHeartbeat(const Message& msg) {
  const bool member = KnownNode(msg.from);  // else a newcomer: FromNewcomer
  if (member) {
    uint64_t& w = settle_witness_[msg.from];
    w = std::max(w, std::min(msg.epoch, msg.anchor_epoch));
  }
  NoteReports(msg);
  if (member && !directory_.wanted) CompareDigest(msg);  // a joiner lacks them all anyway
}

void Replica::NoteReports(const Message& msg) {
  const bool member = KnownNode(msg.from);  // else a newcomer: FromNewcomer
  for (const auto& [object, commit_index] : msg.commit_indexes) {
    if (!member && object != kMembershipObject) continue;
    // The directory will report an object it has not reached yet: created now, it would
    // wait awake in the catch-up queue (a 200,000-table join held ~100,000 of them).
    if (directory_.wanted && object > directory_.cursor && object != kMembershipObject &&
        !objects_.contains(object)) {
      continue;
    }
    NoteReport(object, commit_index, msg.from);
  }
}

void Replica::NoteReport(const ObjectId& object, Slot commit_index, NodeId from, bool grace) {
  if (ReportLeavesAtRest(object, commit_index, from)) return;
  ObjectState& o = Obj(object);
  NoteCommitIndex(o, commit_index, from);
  if (commit_index > o.hard.commit_index) RequestCatchup(object, o, from, grace);
}

// ---------------------------------------------------------------------------------------------
// The directory: a node that started empty asks a peer which objects exist, a page at a time.
// Heartbeats would tell it too, but in rolling windows of heartbeat_objects_max per peer and
// heartbeat: a million tables in ~16 minutes. A report only makes the learner ask; what it
// learns still comes from catch-up (chosen entries), so a wrong report costs a request.

void Replica::ContinueDirectoryScan() {
  if (!directory_.wanted || catchup_queue_.size() >= config_.directory_objects_max) return;
  if (directory_.sent >= 0 && now_ - directory_.sent < config_.resend_ticks &&
      Alive(directory_.from)) {
    return;  // a page is on its way
  }
  // Each page from the next live peer: the peer that reports an object also serves its
  // catch-up, so the pages spread that work over the peers instead of loading one of them.
  NodeSet peers = LiveNodes();
  peers.erase(config_.id);
  if (peers.empty()) return;  // alone, or no peer heard of yet: Tick tries again
  auto next = peers.upper_bound(directory_.from);
  const NodeId peer = next != peers.end() ? *next : *peers.begin();
  directory_.from = peer;
  directory_.sent = now_;
  Send(MessageTo(MessageType::kDirectoryRequest, peer, directory_.cursor));
}

void Replica::HandleDirectoryRequest(const Message& msg) {
  Message r = ReplyTo(msg, MessageType::kDirectory);
  auto it = msg.object.empty() ? objects_.begin() : objects_.upper_bound(msg.object);
  for (; it != objects_.end() && r.commit_indexes.size() < config_.directory_objects_max; ++it) {
    std::optional<ObjectState> resting;
    const Slot commit = Peek(it->second, resting).hard.commit_index;
    if (commit > 0) r.commit_indexes.push_back({it->first, commit});
  }
  r.ok = it == objects_.end();
  Send(std::move(r));
}

void Replica::HandleDirectory(const Message& msg) {
  // A late or repeated page (we asked another peer since, or have moved past it) is dropped.
  if (!directory_.wanted || msg.from != directory_.from || msg.object != directory_.cursor) {
    return;
  }
  ++probes_.directory_pages;
  probes_.directory_reports += msg.commit_indexes.size();
  directory_.sent = -1;
  for (const auto& [object, commit_index] : msg.commit_indexes) {
    // The lazy flush the grace waits for is no concern of a node that holds nothing yet.
    if (object > directory_.cursor) NoteReport(object, commit_index, msg.from, /*grace=*/false);
  }
  if (!msg.commit_indexes.empty()) {
    directory_.cursor = std::max(directory_.cursor, msg.commit_indexes.back().first);
  }
  if (msg.ok) {
    directory_.wanted = false;
  } else {
    ContinueDirectoryScan();
  }
}

void Replica::NoteCommitIndex(ObjectState& o, Slot commit_index, NodeId from) {
  if (from == config_.id) return;
  // The best-informed peer now reports less: it restarted and lost a commit index it had not
  // synced (docs/consensus.md §Ready contract). Stop asking it for what it no longer knows
  // committed; any peer reporting more takes its place.
  if (from == o.learner.known_commit_from && commit_index < o.learner.known_commit) {
    o.learner.known_commit = commit_index;
    return;
  }
  // An equally informed peer replaces one that went silent (crashed, or removed and stopped),
  // and the owner any other: a peer that restarted with no commit at all reports nothing
  // (digests leave such objects out), so it would be asked for ever (simulator, seed 799).
  if (commit_index > o.learner.known_commit ||
      (commit_index == o.learner.known_commit && o.learner.known_commit_from != from &&
       (!Alive(o.learner.known_commit_from) || from == o.learner.owner_ballot.node))) {
    o.learner.known_commit = commit_index;
    o.learner.known_commit_from = from;
  }
}

void Replica::LearnUpTo(const ObjectId& object, ObjectState& o, Ballot ballot, Slot commit_index,
                        NodeId from) {
  NoteCommitIndex(o, commit_index, from);
  if (commit_index > o.learner.notice_commit) {
    o.learner.notice_commit = commit_index;
    o.learner.notice_ballot = ballot;
  }
  // The owner of `ballot` proposed at most one value per slot, and it only reports slots it saw
  // chosen; so a local entry accepted in that same ballot is the chosen value.
  bool advanced = false;
  while (o.hard.commit_index < commit_index) {
    auto it = o.hard.log.find(o.hard.commit_index + 1);
    if (it == o.hard.log.end() || it->second.ballot != ballot) break;
    ++o.hard.commit_index;
    advanced = true;
  }
  if (advanced) {
    MarkDirty(o);
    ScanAnchors(o);
  }
  if (o.hard.commit_index < commit_index) RequestCatchup(object, o, from);
}

// ---------------------------------------------------------------------------------------------
// Catch-up: the learner.

void Replica::RequestCatchup(const ObjectId& object, ObjectState& o, NodeId from, bool grace) {
  if (from == config_.id || from == kNoNode) return;
  // An eager peer's heartbeat may report slots whose Accepts are still on their way to us (a
  // lazy flush, docs/consensus.md §Q2 first); asked at once, that peer may have truncated them
  // already and answer with a whole snapshot (which also ends this node's WATCH streams). A
  // candidate or owner gets no flush, nor does anyone for the membership object (never lazy):
  // they ask at once. (A member behind on the membership may have moments to reach the only
  // peer that can teach it.)
  if (grace && o.transfer.partial == nullptr && o.proposer.role == Role::kFollower &&
      object != kMembershipObject) {
    if (o.learner.behind_since < 0 || o.learner.behind_at != o.hard.commit_index) {
      o.learner.behind_since = now_;  // behind anew, or progress since: the grace restarts
      o.learner.behind_at = o.hard.commit_index;
    }
    if (now_ - o.learner.behind_since < config_.catchup_grace_ticks) return;  // Tick asks later
  }
  // A transfer the log overtook (entries past its slot arrived meanwhile) is moot: naming it
  // would have the sender serve its chunks, which are ignored here, for ever (simulator,
  // seed 439 of the NodeHost simulator).
  if (o.transfer.partial != nullptr && o.transfer.partial->slot <= o.hard.commit_index) {
    o.transfer.partial.reset();
    snapshots_->DropStaged(object);
  }
  // A snapshot transfer in progress continues from the peer sending it while that peer lives
  // (switching peers starts the transfer over). Otherwise remember the best-informed peer we
  // heard of; Tick retries from it.
  if (o.transfer.partial != nullptr && Alive(o.transfer.partial->from)) {
    from = o.transfer.partial->from;
  } else if (o.hard.commit_index < o.learner.known_commit && from != o.learner.known_commit_from &&
             o.learner.known_commit_from != kNoNode &&
             (Alive(o.learner.known_commit_from) || !Alive(from))) {
    from = o.learner.known_commit_from;
  }
  // Never keep asking a peer that went silent (it may have crashed or left): any live peer
  // holds the chosen prefix up to its own commit index, and a learner holding a catch-up slot
  // (catchups_max) on a dead peer would starve the others.
  if (!Alive(from)) {
    for (NodeId node : LiveNodes()) {
      if (node != config_.id) {
        from = node;
        break;
      }
    }
  }
  // A chunk takes longer than a log tail to arrive (the sender may first build the snapshot):
  // retry a transfer less eagerly.
  const consensus::Tick retry =
      o.transfer.partial != nullptr ? config_.resend_ticks * 2 : config_.resend_ticks / 2;
  if (o.learner.catchup_sent >= 0 && now_ - o.learner.catchup_sent < retry) return;
  if (!catching_up_.contains(object)) {
    // An anchor's ack waiting for this catch-up holds its owner's writes back: it goes ahead
    // of the queue, into up to catchups_max more slots.
    const bool urgent = o.acceptor.deferred_anchor != 0;
    const size_t slots = urgent ? 2 * config_.catchups_max : config_.catchups_max;
    if (catching_up_.size() >= slots) {  // StartQueuedCatchups asks later
      catchup_queue_.Push(object);
      ++probes_.catchups_queued;
      return;
    }
    catching_up_.insert(object);
  }
  if (config_.catchup_backlog_max != 0 && inbound_backlog_ > config_.catchup_backlog_max &&
      object != kMembershipObject) {
    ++probes_.catchups_held;  // It keeps its slot; Tick asks again.
    return;
  }
  o.learner.catchup_sent = now_;
  Message m = MessageTo(MessageType::kCatchupRequest, from, object);
  m.slot = o.hard.commit_index + 1;
  if (o.transfer.partial != nullptr) {
    if (o.transfer.partial->from == from) {
      ContinueTransfer(*o.transfer.partial, m);
    } else {
      o.transfer.partial.reset();  // Another peer: its snapshot differs; start over.
    }
  }
  Send(std::move(m));
}

void Replica::StartQueuedCatchups() {
  while (catching_up_.size() < config_.catchups_max && !catchup_queue_.empty()) {
    const ObjectId object = *catchup_queue_.Pop();
    if (!objects_.contains(object)) continue;
    ObjectState& o = Obj(object);  // touched, and on Tick's list again: retries are its job
    if (Behind(o)) {
      RequestCatchup(object, o, o.learner.known_commit_from, /*grace=*/false);  // waited
    }
  }
}

void Replica::ContinueTransfer(const PartialSnapshot& partial, Message& request) {
  request.snapshot_slot = partial.slot;
  request.snapshot_offset = partial.received;
  request.snapshot_total = partial.total;  // Peers check offset <= total on every message.
}

void Replica::HandleCatchupResponse(const Message& msg) {
  ObjectState& o = Obj(msg.object);
  o.learner.catchup_sent = -1;
  NoteCommitIndex(o, msg.commit_index, msg.from);
  const bool snapshot = msg.snapshot_slot > o.hard.commit_index && o.transfer.install == nullptr;
  if (snapshot) {
    if (!TakeSnapshotChunk(msg, o)) return;
    if (!snapshots_->StagedDecodes(msg.object, msg.snapshot_total)) {
      ++probes_.snapshots_refused;  // Tick asks again, from the first chunk.
      return;
    }
    InstallSnapshot(o, Snapshot{msg.snapshot_slot, msg.anchor_epoch, msg.anchor_config});
  }
  const Ballot learned_max = LearnCatchupEntries(msg, o);
  // A value chosen in a higher ballot (or a snapshot past our commit) means someone completed
  // phase 1 above us: we are no longer the owner, and must not announce this commit index
  // under our ballot — a learner holding our unchosen proposal for such a slot would take the
  // notice as confirming it (found by the simulator, seed 309931).
  if (o.proposer.role != Role::kFollower && (learned_max > o.proposer.ballot || snapshot)) {
    ++probes_.steals_preempted_by_learning;
    ObserveBallot(o, learned_max);
    StepDown(msg.object, o, /*announce=*/false);
  }
  if (o.proposer.role == Role::kOwner) {
    // Slots learned here are chosen; an in-flight proposal at such a slot never reached a Q2
    // (else phase 1 of whoever chose it would have found it), so drop it.
    auto& in_flight = o.proposer.in_flight;
    auto& chosen = o.proposer.chosen;
    in_flight.erase(in_flight.begin(), in_flight.upper_bound(o.hard.commit_index));
    chosen.erase(chosen.begin(), chosen.upper_bound(o.hard.commit_index));
    AdvanceOwnerCommit(msg.object, o);
  }
  if (o.learner.notice_commit > o.hard.commit_index) {
    LearnUpTo(msg.object, o, o.learner.notice_ballot, o.learner.notice_commit, msg.from);
  }
  NoteCommitIndex(o, msg.commit_index, msg.from);
  // More of this burst is on its way: ask again after its last part (Tick retries if it is lost).
  if (msg.round > 0 && msg.entries.size() > 0 && !snapshot) {
    o.learner.catchup_sent = now_;
    return;
  }
  if (msg.commit_index > o.hard.commit_index) {
    // No grace: the lazy flush it waits for is no help to a learner this far behind (it
    // restarted with every answer, and held each learner to one burst per grace period).
    RequestCatchup(msg.object, o, msg.from, /*grace=*/false);
  } else if (!Behind(o)) {
    // Caught up: the slot goes to the queue now (Step starts it), not at this object's next
    // tick (freed once per 5 ms tick, 4 slots caught up ~800 objects a second).
    catching_up_.erase(msg.object);
  }
}

bool Replica::TakeSnapshotChunk(const Message& msg, ObjectState& o) {
  // Chunks come one per request, in order; anything else (a duplicate, a chunk of another
  // snapshot) restarts the transfer or is ignored. The host stages the bytes: a snapshot may
  // be larger than memory.
  ++probes_.snapshot_chunks;
  std::unique_ptr<PartialSnapshot>& partial = o.transfer.partial;
  // A first chunk starts a transfer, unless it is a late copy of the one under way.
  const bool same_transfer =
      partial != nullptr && partial->slot == msg.snapshot_slot && partial->from == msg.from;
  if (msg.snapshot_offset == 0 && !same_transfer) {
    partial = std::make_unique<PartialSnapshot>(
        PartialSnapshot{msg.snapshot_slot, msg.snapshot_total, 0, msg.from});
  }
  if (partial == nullptr || partial->slot != msg.snapshot_slot ||
      partial->total != msg.snapshot_total || partial->from != msg.from ||
      partial->received != msg.snapshot_offset ||
      msg.snapshot_offset + msg.snapshot.size() > msg.snapshot_total) {
    return false;
  }
  snapshots_->StageChunk(msg.object, msg.snapshot_offset, msg.snapshot);
  partial->received += msg.snapshot.size();
  if (partial->received == partial->total) {
    partial.reset();
    return true;
  }
  // Ask for the next chunk right away (Tick retries if it is lost).
  Message m = ReplyTo(msg, MessageType::kCatchupRequest);
  m.slot = o.hard.commit_index + 1;
  ContinueTransfer(*partial, m);
  o.learner.catchup_sent = now_;
  Send(std::move(m));
  return false;
}

void Replica::InstallSnapshot(ObjectState& o, Snapshot snapshot) {
  // Entries <= snapshot.slot are chosen; everything we accepted there is superseded.
  const Slot s = snapshot.slot;
  o.hard.log.erase(o.hard.log.begin(), o.hard.log.upper_bound(s));
  for (auto it = o.acceptor.dirty_slots.begin(); it != o.acceptor.dirty_slots.end();) {
    it = *it <= s ? o.acceptor.dirty_slots.erase(it) : std::next(it);
  }
  o.hard.commit_index = s;
  o.hard.truncated_through = s;
  o.learner.applied = s;
  o.learner.snapshot_slot = s;
  o.learner.snapshot_asked = s;
  o.learner.applied_bytes = 0;
  ++probes_.snapshots_installed;
  // The sender's anchor is committed (a fact cluster-wide), possibly at a slot we lack yet.
  if (snapshot.anchor_epoch > o.hard.anchor_epoch) {
    o.hard.anchor_epoch = snapshot.anchor_epoch;
    o.hard.anchor_config = snapshot.anchor_config;
    o.acceptor.must_sync = true;
    LearnConfig(snapshot.anchor_epoch, snapshot.anchor_config);
  }
  o.learner.anchor_scanned = std::max(o.learner.anchor_scanned, s);
  o.transfer.install = std::make_unique<Snapshot>(std::move(snapshot));
  MarkDirty(o);
}

bool Replica::ResumeInstall(const ObjectId& object, Snapshot snapshot) {
  ObjectState& o = Obj(object);
  if (snapshot.slot <= o.hard.commit_index) return false;
  ++probes_.installs_resumed;
  InstallSnapshot(o, std::move(snapshot));
  return true;
}

Ballot Replica::LearnCatchupEntries(const Message& msg, ObjectState& o) {
  bool advanced = false;
  Ballot learned_max;
  for (const SlotEntry& e : msg.entries) {
    if (e.slot != o.hard.commit_index + 1) continue;
    PutEntry(o, e.slot, e.entry);
    o.hard.commit_index = e.slot;
    learned_max = std::max(learned_max, e.entry.ballot);
    ++probes_.catchup_entries;
    advanced = true;
  }
  if (advanced) {
    MarkDirty(o);
    ScanAnchors(o);
  }
  return learned_max;
}

// ---------------------------------------------------------------------------------------------
// Catch-up: the peer that answers.

void Replica::HandleCatchupRequest(const Message& msg) {
  ObjectState& o = Obj(msg.object);
  if (o.hard.commit_index < msg.slot) return;
  if (!CatchupBudgetLeft()) {
    WaitForCatchupBudget(msg);
    return;
  }
  Message r = CatchupResponse(msg, o);
  Slot start = msg.slot;
  if (!ServeSnapshotChunk(msg, o, r, start)) return;
  if (CrossedRetry(o, msg.from, start, 0)) return;
  SendCatchupBurst(msg, o, std::move(r), start);
}

Message Replica::CatchupResponse(const Message& request, const ObjectState& o) {
  Message r = ReplyTo(request, MessageType::kCatchupResponse);
  r.commit_index = o.hard.commit_index;
  // A snapshot hides the anchor entries below it: ship the committed anchor alongside.
  r.anchor_epoch = o.hard.anchor_epoch;
  r.anchor_config = o.hard.anchor_config;
  return r;
}

bool Replica::ServeSnapshotChunk(const Message& msg, ObjectState& o, Message& r, Slot& start) {
  internal::TransferState& t = o.transfer;
  // The snapshot to (continue to) ship, if any. Every chunk of a transfer comes from the same
  // snapshot (`serving`), and the log after it is kept until the last chunk left (Advance), so
  // the learner then continues with log entries instead of starting over. A request continuing
  // a snapshot we no longer hold gets ours from offset 0; a held snapshot older than our log's
  // start (we installed a newer one meanwhile) is replaced.
  if (t.serving != nullptr && t.serving->slot() < o.hard.truncated_through) {
    t.serving.reset();
    --serving_count_;
  }
  if (start <= o.hard.truncated_through && t.serving == nullptr) {
    // All slots taken: a learner in a transfer asks again within two resend intervals
    // (RequestCatchup), so one silent for three has finished elsewhere or gone; its slot must
    // not block this learner until the idle sweep (simulator, random limits: seed 439).
    if (serving_count_ >= config_.snapshots_served_max) {
      DropIdleTransfers(3 * config_.resend_ticks);
    }
    if (serving_count_ >= config_.snapshots_served_max) return false;  // The learner retries.
    t.serving = snapshots_->OpenSnapshot(msg.object);
    ATLAS_CHECK(t.serving != nullptr && t.serving->slot() >= o.hard.truncated_through);
    ++serving_count_;
  }
  if (t.serving == nullptr ||
      (start > o.hard.truncated_through && msg.snapshot_slot != t.serving->slot())) {
    return true;  // Log entries only.
  }
  t.serving_touched = now_;
  SnapshotReader& snap = *t.serving;
  const uint64_t offset =
      msg.snapshot_slot == snap.slot() && msg.snapshot_offset <= snap.size()
          ? msg.snapshot_offset
          : 0;
  if (CrossedRetry(o, msg.from, msg.slot, offset)) return false;
  const size_t len = std::min<uint64_t>(config_.snapshot_chunk_bytes, snap.size() - offset);
  r.snapshot_slot = snap.slot();
  r.snapshot_offset = offset;
  r.snapshot_total = snap.size();
  r.snapshot = snap.Read(offset, len);
  if (r.snapshot.size() != len) {
    // A reader whose store moved under it (the host's bug switch test_snapshot_unpinned; a
    // read error is the host's fatal): let it go, the learner's retry opens a new one.
    t.serving.reset();
    --serving_count_;
    return false;
  }
  SpendCatchupBudget(len);
  if (offset + len < snap.size()) {
    Send(std::move(r));  // Entries follow with the last chunk.
    return false;
  }
  // Last chunk: the transfer is over (a lost last chunk restarts it), so the log may be
  // truncated again.
  t.serving.reset();
  --serving_count_;
  start = r.snapshot_slot + 1;
  return true;
}

void Replica::SendCatchupBurst(const Message& msg, const ObjectState& o, Message first,
                               Slot start) {
  // Up to catchup_burst responses answer one request, so a learner far behind gets that many
  // times more per round trip; `round` counts the responses still following in the burst.
  std::vector<Message> burst;
  for (size_t i = 0; i < config_.catchup_burst &&
                     (i == 0 || (start <= o.hard.commit_index && CatchupBudgetLeft()));
       ++i) {
    Message part = i == 0 ? std::move(first) : CatchupResponse(msg, o);
    size_t bytes = 0;
    for (; start <= o.hard.commit_index && part.entries.size() < config_.catchup_entries_max &&
           (part.entries.empty() || bytes < config_.catchup_bytes_max);
         ++start) {
      std::optional<LogEntry> e = EntryAt(msg.object, o, start);  // applied ones: from disk
      ATLAS_CHECK(e.has_value());
      for (const Command& c : e->value) bytes += c.data.size();
      part.entries.push_back({start, std::move(*e)});
    }
    SpendCatchupBudget(bytes);
    burst.push_back(std::move(part));
  }
  for (size_t i = 0; i < burst.size(); ++i) {
    burst[i].round = burst.size() - 1 - i;
    Send(std::move(burst[i]));
  }
}

bool Replica::CatchupBudgetLeft() {
  const int64_t rate = static_cast<int64_t>(config_.catchup_bytes_per_tick);
  if (rate == 0) return true;
  // Full: one burst (a larger snapshot chunk still goes while the budget is above zero).
  const int64_t full = static_cast<int64_t>(config_.catchup_burst * config_.catchup_bytes_max);
  // (Elapsed ticks capped: a budget full for weeks must not overflow.)
  const int64_t ticks = std::min<int64_t>(now_ - catchup_budget_at_, full / rate + 1);
  catchup_budget_ = catchup_budget_ >= full - ticks * rate ? full : catchup_budget_ + ticks * rate;
  catchup_budget_at_ = now_;
  return catchup_budget_ > 0;
}

void Replica::SpendCatchupBudget(size_t bytes) {
  if (config_.catchup_bytes_per_tick != 0) catchup_budget_ -= static_cast<int64_t>(bytes);
}

void Replica::WaitForCatchupBudget(const Message& request) {
  ++probes_.catchups_throttled;
  // A learner's retry replaces its request waiting for the same object.
  for (Message& waiting : catchup_waiting_) {
    if (waiting.from == request.from && waiting.object == request.object) {
      waiting = request;
      return;
    }
  }
  if (catchup_waiting_.size() < config_.catchup_waiting_max) catchup_waiting_.push_back(request);
}

void Replica::ServeWaitingCatchups() {
  while (!catchup_waiting_.empty() && CatchupBudgetLeft()) {
    const Message request = std::move(catchup_waiting_.front());
    catchup_waiting_.pop_front();
    HandleCatchupRequest(request);
  }
}

bool Replica::CrossedRetry(ObjectState& o, NodeId learner, Slot slot, uint64_t offset) {
  if (o.transfer.served_to == learner && o.transfer.served_slot == slot &&
      o.transfer.served_offset == offset && o.transfer.served_at >= 0 &&
      now_ - o.transfer.served_at < config_.resend_ticks) {
    return true;
  }
  o.transfer.served_to = learner;
  o.transfer.served_slot = slot;
  o.transfer.served_offset = offset;
  o.transfer.served_at = now_;
  return false;
}

}  // namespace atlas::consensus
