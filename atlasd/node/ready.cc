// NodeHost's Ready runner (node_host.h, the contract of consensus/replica.h): stage one Ready's
// snapshots, hard state and applies in one WriteSet, write it, start its fsync and send its
// Accepts meanwhile, publish what
// changed and answer the requests it settled; its other messages and its Advance wait for the
// sync of what they rest on (pipelined syncs, docs/design.md).
#include <algorithm>
#include <chrono>

#include "atlasd/fatal.h"
#include "atlasd/logging.h"
#include "atlasd/node/node_host.h"
#include "atlasd/snapshot_stream.h"
#include "socketproto/str.h"
#include "spdlog/spdlog.h"
#include "storage/keys.h"
#include "storage/paxos_state.h"

namespace atlas {

bool NodeHost::ProcessReady() {
  while (replica_->HasReady()) {
    consensus::Ready rd = replica_->TakeReady();
    ++readies_;
    if (observe_ready) observe_ready(rd);
    std::unique_ptr<storage::WriteSet> writes = store_->NewWriteSet();
    Applied applied;
    if (!Stage(rd, *writes, applied)) return false;
    // Before any message leaves: the tables this Ready's promises give away are no longer
    // read locally.
    RefreshLocalReads(rd, applied);
    bool must_sync = false;
    for (const consensus::HardStateUpdate& u : rd.persist) must_sync = must_sync || u.must_sync;
    // Snapshots and membership changes are rare and change every table: synced in line, as
    // is everything that must be durable when syncs are not pipelined.
    const bool in_line = !rd.snapshots.empty() || applied.everything ||
                         applied.membership_changed || (!options_.pipeline && must_sync);
    if (!Write(*writes, in_line)) return false;
    for (const consensus::ObjectId& object : reclaim_) {
      auto [lo, hi] = storage::StagedRange(object);
      store_->Reclaim(storage::Cf::kMeta, std::move(lo), std::move(hi));
    }
    reclaim_.clear();
    if (!SendEarly(rd, must_sync && !in_line)) return false;
    // Applies and answers rest on chosen values only (consensus/replica.h): no fsync to wait
    // for.
    Publish(applied);
    NoteExpiringTables();
    for (const consensus::OwnershipEvent& e : rd.ownership) NoteOwnership(e);
    AnswerClients(rd);
    DropWritten(rd);
    if (!Hold(std::move(rd), must_sync)) return false;
  }
  return true;
}

// What a Ready wrote is in the store now; waiting for its sync it keeps only what Release
// needs (messages, and Advance's object names and numbers). Catch-up's entries would otherwise
// be held by every Ready waiting for the fsync, twice (persisted and applied).
void NodeHost::DropWritten(consensus::Ready& rd) {
  for (consensus::HardStateUpdate& u : rd.persist) {
    std::vector<consensus::SlotEntry>().swap(u.entries);
  }
  for (consensus::CommittedEntry& c : rd.committed) consensus::Batch().swap(c.commands);
}

// The owner's Accepts leave at once (consensus/replica.h); the bug switch sends everything.
// With an fsync to wait for (`unsynced`), it starts first, on the syncer, and runs while they
// leave: sends cost the node thread more than the disk's latency.
bool NodeHost::SendEarly(consensus::Ready& rd, bool unsynced) {
  std::vector<consensus::Message> early;
  auto later = std::stable_partition(
      rd.messages.begin(), rd.messages.end(), [this](const consensus::Message& m) {
        return options_.test_send_before_persist || m.type == consensus::MessageType::kAccept;
      });
  early.assign(std::make_move_iterator(rd.messages.begin()), std::make_move_iterator(later));
  rd.messages.erase(rd.messages.begin(), later);
  if (early.empty()) return true;
  if (unsynced && options_.sync) StartSync(/*overlap=*/true);
  io_->Send(std::move(early));
  return !io_->Crash("ready-after-send");
}

// Writes one Ready's WriteSet: synced when `in_line` (then every write before it is durable
// too, a write-ahead log's order), else left to the next Sync.
bool NodeHost::Write(storage::WriteSet& writes, bool in_line) {
  const bool sync = in_line && options_.sync;
  bool synced = false;
  if (writes.Count() > 0) {
    if (io_->Crash("ready-before-sync")) return false;
    absl::Status s = store_->Commit(writes, sync);
    // After a failed synced write the disk state is unknown: never acknowledge on it.
    if (!s.ok()) Fatal(StrCat("persisting consensus state failed: ", s.ToString()));
    synced = sync;
  } else if (sync && store_->commits() > synced_through_) {
    absl::StatusOr<uint64_t> s = store_->Sync();
    if (!s.ok()) Fatal(StrCat("syncing consensus state failed: ", s.status().ToString()));
    synced = true;
  }
  if (synced || !options_.sync) synced_through_ = store_->commits();
  return !synced || !io_->Crash("ready-after-sync");
}

// The rest of the Ready's messages, and its Advance, wait for the syncs they rest on: its own
// write if it carries a promise or an accepted entry, else the last one before it that did.
bool NodeHost::Hold(consensus::Ready rd, bool must_sync) {
  if (must_sync && options_.sync) must_sync_through_ = store_->commits();
  if (unsynced_.empty() && must_sync_through_ <= synced_through_) return Release(rd);
  unsynced_.push_back({std::move(rd), must_sync_through_});
  if (must_sync_through_ <= synced_through_) return ReleaseSynced();
  StartSync(/*overlap=*/false);
  return true;
}

void NodeHost::StartSync(bool overlap) {
  if (sync_requested_) return;
  sync_requested_ = true;
  io_->RequestSync(overlap);
}

bool NodeHost::Synced(uint64_t through) {
  sync_requested_ = false;
  synced_through_ = std::max(synced_through_, through);
  if (io_->Crash("ready-after-sync")) return false;
  if (!ReleaseSynced()) return false;
  if (!unsynced_.empty()) StartSync(/*overlap=*/false);
  return ProcessReady();
}

bool NodeHost::ReleaseSynced() {
  while (!unsynced_.empty() && unsynced_.front().wait_for <= synced_through_) {
    consensus::Ready rd = std::move(unsynced_.front().rd);
    unsynced_.pop_front();
    if (!Release(rd)) return false;
  }
  return true;
}

bool NodeHost::Release(consensus::Ready& rd) {
  if (!Send(rd)) return false;
  replica_->Advance(rd);
  return true;
}

// Everything of one Ready in one WriteSet: snapshots, hard-state updates, and the apply of
// committed entries (one atomic write, so a crash keeps all of it or none).
bool NodeHost::Stage(const consensus::Ready& rd, storage::WriteSet& writes, Applied& applied) {
  if (!InstallSnapshots(rd, writes, applied)) return false;
  for (const consensus::HardStateUpdate& u : rd.persist) {
    if (absl::Status s = storage::AddHardStateUpdate(u, writes); !s.ok()) {
      Fatal(StrCat("writing the hard state of ", u.object, ": ", s.ToString()));
    }
  }
  for (const consensus::CommittedEntry& e : rd.committed) {
    if (e.object == consensus::kMembershipObject) {
      ApplyMembership(e, writes, applied);
    } else {
      ApplyEntry(e, writes, applied);
    }
  }
  state_machine_.FlushMeta(&writes);
  return true;
}

bool NodeHost::InstallSnapshots(const consensus::Ready& rd, storage::WriteSet& writes,
                                Applied& applied) {
  if (rd.snapshots.empty()) return true;
  applied.everything = true;
  routes_.ForgetAll();
  for (const auto& [object, snap] : rd.snapshots) {
    if (object == consensus::kMembershipObject) {
      std::unique_ptr<storage::Reader> reader = store_->BulkReader();
      StagedSnapshot staged(reader.get(), object);
      if (!membership_.Install(ReadWhole(staged), writes)) {
        Fatal("undecodable membership snapshot");
      }
      applied.membership_changed = true;
    } else {
      const auto start = std::chrono::steady_clock::now();
      if (!InstallStaged(object, snap)) return false;
      applied.installed.push_back(object);
      spdlog::info("installed a snapshot of {} at slot {} in {} ms", object, snap.slot,
                   std::chrono::duration_cast<std::chrono::milliseconds>(
                       std::chrono::steady_clock::now() - start).count());
    }
    DropStagedChunks(object, writes);
    writes.Delete(storage::Cf::kMeta, storage::InstallingKey(object));
  }
  // Only now (an install's parts flush the record cache): an object's applied slot must not
  // reach the disk before the hard state that covers it, in this Ready's own write.
  for (const auto& [object, snap] : rd.snapshots) state_machine_.MarkApplied(object, snap.slot);
  return true;
}

// Writes a staged snapshot's tables in parts of about install_part_bytes ahead of the Ready's
// own write: a table larger than memory is never held whole. A marker written first has a
// restart redo the install (ResumeInstall) until that write, which deletes it, is durable.
bool NodeHost::InstallStaged(const consensus::ObjectId& object, const consensus::Snapshot& snap) {
  std::unique_ptr<storage::Reader> reader = store_->BulkReader();
  StagedSnapshot staged(reader.get(), object);
  std::unique_ptr<storage::WriteSet> part = store_->NewWriteSet();
  if (!options_.test_install_without_marker) {
    part->Put(storage::Cf::kMeta, storage::InstallingKey(object),
              storage::EncodeInstalling(snap));
  }
  bool crashed = false;
  auto write = [&](storage::WriteSet& w) {
    if (crashed) return;
    if (absl::Status s = store_->Commit(w, /*sync=*/false); !s.ok()) {
      Fatal(StrCat("installing a snapshot of ", object, ": ", s.ToString()));
    }
    w.Clear();
    crashed = io_->Crash("snapshot-install");  // a part and the marker written, not the rest
  };
  auto spill = [&](storage::WriteSet& w) {
    if (w.Bytes() >= options_.install_part_bytes) write(w);
  };
  if (!state_machine_.InstallObjectSnapshot(object, staged, DecodedHeads(object), part.get(),
                                            spill)) {
    Fatal(StrCat("undecodable snapshot of ", object));
  }
  write(*part);
  // The staged copy goes with the Ready's write; a large one's space is compacted away after.
  if (staged.bytes() >= kReclaimBytesMin) reclaim_.push_back(object);
  return !crashed;
}

void NodeHost::ApplyMembership(const consensus::CommittedEntry& e, storage::WriteSet& writes,
                               Applied& applied) {
  state_machine_.MarkApplied(e.object, e.slot);
  for (const consensus::Command& c : e.commands) {
    absl::StatusOr<std::string> r = membership_.Apply(c.data, c.stamp_ms, writes);
    if (r.ok()) applied.membership_changed = true;
    // Every node applies (and refuses) the same commands; the proposer reports it.
    if (!r.ok()) spdlog::debug("membership change refused: {}", r.status().message());
    if (c.id.node != options_.node_id) continue;
    auto it = membership_writes_.find(c.id.seq);
    if (it != membership_writes_.end()) it->second.result = std::move(r);
  }
}

void NodeHost::ApplyEntry(const consensus::CommittedEntry& e, storage::WriteSet& writes,
                          Applied& applied) {
  if (e.commands.empty()) state_machine_.MarkApplied(e.object, e.slot);
  for (const consensus::Command& c : e.commands) {
    proto::Command cmd;
    ApplyResult r;
    // A table's own object carries only its commands; a group's, its members'.
    if (!cmd.ParseFromString(c.data) ||
        (cmd.table() != e.object && !StateMachine::IsGroupObject(e.object))) {
      // Every replica fails the same undecodable command the same way.
      state_machine_.MarkApplied(e.object, e.slot);
      r = {false, "internal error: undecodable command", e.slot};
    } else {
      // Judged at the owner's stamp (docs/consensus.md §Time); unstamped entries (from a node
      // that predates stamps) keep the proposer's time.
      if (c.stamp_ms > 0) cmd.set_timestamp_ms(c.stamp_ms);
      if (cmd.has_placement() || cmd.has_adopt()) routes_.Forget(cmd.table());
      // Only the node that proposed a transaction answers its reads.
      r = state_machine_.Apply(cmd, e.object, e.slot, &writes, c.id.node == options_.node_id);
      if (r.table_revision > 0) applied.changes.emplace_back(cmd.table(), r.table_revision);
      for (auto& change : r.changes) applied.changes.push_back(std::move(change));
      if (cmd.has_adopt()) applied.everything = true;
      if (r.ok && cmd.has_acl()) applied.acls.push_back(cmd.table());
      if (r.ok && cmd.has_placement() && cmd.placement().has_pinned_region()) {
        Pin(e.object, cmd.placement().pinned_region());
      }
      // Keyed by the table: a grouped table's object is its group's, which never asks.
      if (r.ok && cmd.has_placement() && cmd.placement().has_local_reads()) {
        replica_->SetLeaseReads(cmd.table(), LeaseReadsMode(cmd.placement().local_reads(),
                                                            cmd.placement().auto_reads()));
      }
    }
    if (c.id.node != options_.node_id) continue;
    auto it = writes_.find(c.id.seq);
    if (it != writes_.end()) it->second.result = std::move(r);
  }
}

void NodeHost::Publish(Applied& applied) {
  if (options_.acls != nullptr) {
    if (applied.everything) {
      options_.acls->InvalidateAll();
    } else if (!applied.acls.empty()) {
      options_.acls->Invalidate(applied.acls);
    }
  }
  if (!applied.changes.empty() || applied.everything) {
    io_->TablesChanged(std::move(applied.changes), applied.everything);
  }
  if (applied.membership_changed) InstallMembership();
  // A snapshot brings a table's TABLE READS mode without the entry that set it.
  for (const std::string& object : applied.installed) {
    if (StateMachine::IsGroupObject(object)) continue;  // a group's object never asks
    absl::StatusOr<storage::TableState> st = store_->LoadTableState(object);
    if (st.ok()) replica_->SetLeaseReads(object, LeaseReadsMode(st->local_reads, st->auto_reads));
  }
}

void NodeHost::InstallMembership() {
  const consensus::ClusterConfig& config = membership_.current();
  spdlog::info("membership epoch {}: {} node(s), Fn={} Fz={}", config.epoch,
               config.members.size(), config.quorum.fn, config.quorum.fz);
  consensus::Topology topology = config.ToTopology(options_.distance);
  if (topology.zone_of.empty()) topology.zone_of[options_.node_id] = 1;
  replica_->SetConfig(config.epoch, std::move(topology), config.quorum);
  io_->MembershipChanged(config, membership_.previous());
}

bool NodeHost::Send(consensus::Ready& rd) {
  if (rd.messages.empty()) return true;
  io_->Send(std::move(rd.messages));
  rd.messages.clear();
  return !io_->Crash("ready-after-send");
}

void NodeHost::AnswerClients(const consensus::Ready& rd) {
  for (const consensus::ReadState& rs : rd.reads) ReleaseRead(rs);
  for (const consensus::Reply& reply : rd.replies) {
    std::string detail = NameZones(reply.detail.empty() ? reply.object : reply.detail);
    if (reply.code != consensus::ReplyCode::kOk) {
      LogEvent(spdlog::level::debug, reply.is_read ? "read failed" : "write failed",
               {{"table", reply.object}, {"request", reply.id.ToString()},
                {"code", consensus::ReplyCodeName(reply.code)},
                {"outcome", reply.is_read || reply.definite ? "not executed" : "unknown"},
                {"detail", detail}});
    }
    if (reply.is_read) {
      AnswerRead(reply, detail);
    } else if (reply.object == consensus::kMembershipObject) {
      AnswerMembership(reply);
    } else {
      AnswerWrite(reply, detail);
    }
  }
}

// A read barrier is released once its index is applied here. It covers the object it ran on;
// the table must still be governed there (and its adopt applied), else the read goes again to
// where the table is now.
void NodeHost::ReleaseRead(const consensus::ReadState& rs) {
  auto it = reads_.find(rs.id.seq);
  if (it == reads_.end()) return;
  PendingRead read = std::move(it->second);
  reads_.erase(it);
  const StateMachine::Route& route = routes_.Of(read.table);
  if (route.object == read.object && route.live) {
    if (LocalReads::Window w = LocalWindow(read.table); w.until_ms != 0) {
      local_reads_->Set(read.table, w);
    }
    read.done(absl::OkStatus());
  } else if (read.attempt < GroupRoutes::kRetries) {
    After(GroupRoutes::BackoffMs(read.attempt), [this, read = std::move(read)]() mutable {
      IssueRead(read.table, read.key, std::move(read.done), read.attempt + 1);
    });
  } else {
    read.done(absl::UnavailableError(
        StrCat("table '", read.table, "' is changing group; retry")));
  }
}

LocalReads::Window NodeHost::LocalWindow(const std::string& table) {
  const StateMachine::Route& route = routes_.Of(table);
  if (route.object != table || !route.live) return {};
  return replica_->LocalReads(table);
}

// Only the objects this Ready touched can have changed their answer: a promise to a higher
// ballot is persisted (rd.persist) and steps the owner down (rd.ownership); an anchor or a
// group move is committed (rd.committed); a lease is extended (rd.leases). Membership changes
// and snapshots change every object's answer.
void NodeHost::RefreshLocalReads(const consensus::Ready& rd, const Applied& applied) {
  if (options_.test_keep_local_reads || local_reads_->size() == 0) return;
  if (applied.everything || applied.membership_changed) {
    local_reads_->Update([this](const std::string& table) { return LocalWindow(table); });
    return;
  }
  // A table's window is rewritten only when it moved (a lease extended, or it ended): the
  // renewal a client thread already asked for stays asked, and readers meet no writer lock
  // on every commit.
  auto recheck = [this](const std::string& object) {
    const int64_t until = local_reads_->Until(object);
    if (until == 0) return;
    const LocalReads::Window w = LocalWindow(object);
    if (w.until_ms != until) local_reads_->Set(object, w);
  };
  for (const consensus::ObjectId& object : rd.leases) recheck(object);
  for (const consensus::HardStateUpdate& u : rd.persist) recheck(u.object);
  for (const consensus::CommittedEntry& e : rd.committed) recheck(e.object);
  for (const consensus::OwnershipEvent& e : rd.ownership) recheck(e.object);
}

void NodeHost::AnswerRead(const consensus::Reply& reply, const std::string& detail) {
  auto it = reads_.find(reply.id.seq);
  if (it == reads_.end()) return;
  ReadDone done = std::move(it->second.done);
  reads_.erase(it);
  switch (reply.code) {
    case consensus::ReplyCode::kOk: done(absl::OkStatus()); break;
    case consensus::ReplyCode::kTimeout:
      done(absl::DeadlineExceededError(StrCat("timeout: read of ", reply.object)));
      break;
    case consensus::ReplyCode::kQuorumUnavailable:
      done(absl::UnavailableError(detail));  // already "quorum unavailable: <why>"
      break;
    default:
      done(absl::UnavailableError(StrCat(consensus::ReplyCodeName(reply.code), ": ", detail)));
  }
}

void NodeHost::AnswerMembership(const consensus::Reply& reply) {
  auto it = membership_writes_.find(reply.id.seq);
  if (it == membership_writes_.end()) return;
  PendingMembership m = std::move(it->second);
  membership_writes_.erase(it);
  if (reply.code == consensus::ReplyCode::kOk && m.result) {
    if (m.result->ok()) {
      m.done(MembershipResult{**m.result, membership_.current()});
    } else {
      m.done(m.result->status());
    }
    return;
  }
  m.done(absl::UnavailableError(
      StrCat("membership change not ordered: ", consensus::ReplyCodeName(reply.code),
             reply.detail.empty() ? "" : StrCat(": ", reply.detail))));
}

void NodeHost::AnswerWrite(const consensus::Reply& reply, const std::string& detail) {
  auto it = writes_.find(reply.id.seq);
  if (it == writes_.end()) return;
  PendingWrite w = std::move(it->second);
  writes_.erase(it);
  if (w.adopt) adopting_.erase(w.cmd.table());
  const bool applied = reply.code == consensus::ReplyCode::kOk && w.result.has_value();
  // Refused without effect by a log that does not govern the table: the routing here was
  // stale (or the adopt is still on its way); go again with the newer one. An adopt is
  // idempotent (only the first of its interval in a log counts), so it is retried whatever
  // stopped it, e.g. a forward rejected with an unknown outcome.
  if ((applied ? w.result->moved : w.adopt) && w.attempt < GroupRoutes::kRetries) {
    Retry(std::move(w));
    return;
  }
  if (applied && w.result->ok && w.result->sealed && !w.adopt && AdoptAfterSeal(w)) return;
  ApplyResult r;
  if (applied) {
    r = std::move(*w.result);
  } else {
    r.ok = false;
    r.outcome_unknown = !reply.definite;
    switch (reply.code) {
      case consensus::ReplyCode::kTimeout:
        r.error = StrCat("timeout: write to ", reply.object,
                         reply.definite ? " (not applied)" : " (outcome unknown)");
        break;
      case consensus::ReplyCode::kQuorumUnavailable:
        r.error = detail;  // already "quorum unavailable: <why>"
        break;
      case consensus::ReplyCode::kBusy: r.error = StrCat("overloaded: ", detail); break;
      default: r.error = StrCat(consensus::ReplyCodeName(reply.code), ": ", detail);
    }
  }
  w.done(std::move(r));
}

void NodeHost::Retry(PendingWrite w) {
  After(GroupRoutes::BackoffMs(w.attempt), [this, w = std::move(w)]() mutable {
    w.cmd.set_timestamp_ms(StampNow());
    if (w.adopt) adopting_.insert(w.cmd.table());
    Submit(std::move(w.cmd), std::move(w.done), w.attempt + 1, w.adopt);
  });
}

// TABLE GROUP sealed the table's old log; it is answered once the new log has adopted it.
// False when there is no adopt to wait for (answer now).
bool NodeHost::AdoptAfterSeal(PendingWrite& w) {
  const std::string table = w.cmd.table();
  std::optional<proto::Command> adopt = state_machine_.BuildAdopt(table);
  if (!adopt || adopting_.contains(table)) return false;
  adopting_.insert(table);
  adopt->set_timestamp_ms(StampNow());
  Submit(std::move(*adopt),
         [done = std::move(w.done), table](ApplyResult r) {
           if (!r.ok) {
             r.error = StrCat("table '", table, "' left its old log but joining the new one "
                              "did not complete (", r.error,
                              "); the next command on it completes the move");
           }
           done(std::move(r));
         },
         0, /*adopt=*/true);
  return true;
}

void NodeHost::NoteOwnership(const consensus::OwnershipEvent& e) {
  using Kind = consensus::OwnershipEventKind;
  const bool counted = e.object != consensus::kMembershipObject;
  const char* what = consensus::OwnershipEventName(e.kind);
  switch (e.kind) {
    case Kind::kPhase1Started:
      ++ownership_.phase1_started;
      LogEvent(spdlog::level::debug, what,
               {{"table", e.object}, {"ballot", e.ballot.ToString()},
                {"reason", consensus::StealReasonName(e.reason)},
                {"request", e.reason == consensus::StealReason::kRequest ? e.request.ToString()
                                                                         : "-"}});
      break;
    case Kind::kElected:
      ++ownership_.elected;
      if (counted) {
        ++ownership_.owned;
        if (moves_.size() == OwnershipMove::kRecentMoves) moves_.pop_front();
        moves_.push_back({e.object, e.ballot.ToString(), wall_ms_});
      }
      LogEvent(spdlog::level::info, what,
               {{"table", e.object}, {"ballot", e.ballot.ToString()},
                {"first_slot", std::to_string(e.slot)}});
      break;
    case Kind::kPreempted:
      ++ownership_.preempted;
      LogEvent(spdlog::level::debug, what,
               {{"table", e.object}, {"ballot", e.ballot.ToString()},
                {"by_ballot", e.other.ToString()}});
      break;
    case Kind::kSteppedDown:
      ++ownership_.stepped_down;
      if (counted) --ownership_.owned;
      LogEvent(spdlog::level::info, what,
               {{"table", e.object}, {"ballot", e.ballot.ToString()},
                {"by_ballot", e.other.ToString()}});
      break;
    case Kind::kMoveSuggested:
      ++ownership_.moves_suggested;
      LogEvent(spdlog::level::info, what,
               {{"table", e.object}, {"ballot", e.ballot.ToString()},
                {"to_node", std::to_string(e.target)}});
      break;
  }
}

}  // namespace atlas
