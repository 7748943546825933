#include "atlasd/state_machine.h"

#include <map>
#include <tuple>

#include "atlasd/acl.h"
#include "atlasd/fatal.h"
#include "atlasd/snapshot_stream.h"
#include "socketproto/str.h"
#include "socketproto/command.h"
#include "storage/coding.h"
#include "storage/keys.h"

namespace atlas {

using storage::Cf;
using storage::RowRecord;

namespace {

// Stored state that does not decode means the database is corrupt. Applying further commands
// on top of it could diverge this replica silently, so stop (style.md: never run on uncertain
// state).
[[noreturn]] void CorruptState(std::string_view what) {
  Fatal(StrCat("corrupt stored state: ", what));
}

std::string Key(const std::string& table, const std::string& row) {
  return StrCat(table, ".", row);
}

}  // namespace

bool StateMachine::GetThroughBatch(Cf cf, const std::string& key, std::string* value,
                                   storage::WriteSet* batch) {
  absl::StatusOr<std::optional<std::string>> got =
      batch != nullptr ? batch->Get(cf, key) : store_->Get(cf, key);
  if (!got.ok()) CorruptState(StrCat("read failed: ", got.status().message()));
  if (!got->has_value()) return false;
  *value = std::move(**got);
  return true;
}

bool StateMachine::GetCached(MetaCache& cache, Cf cf, const std::string& key, std::string* value,
                             storage::WriteSet* batch) {
  if (const MetaCache::Record* held = cache.Find(key)) {
    if (!*held) return false;
    *value = **held;
    return true;
  }
  std::string raw;
  const bool found = GetThroughBatch(cf, key, &raw, batch);
  cache.Fill(key, found ? MetaCache::Record(raw) : std::nullopt);
  if (found) *value = std::move(raw);
  return found;
}

void StateMachine::FlushMeta(storage::WriteSet* batch) {
  meta_->Flush(*batch);
  rows_->Flush(*batch);  // nothing to write: keeps its bound
}

storage::TableAcl StateMachine::LoadAcl(const std::string& table,
                                        storage::WriteSet* batch) {
  std::string raw;
  if (!GetMeta(storage::TableMetaKey(table, "acl"), &raw, batch)) return {};
  auto acl = storage::DecodeTableAcl(raw);
  if (!acl) CorruptState(StrCat("ACL of table ", table));
  return *acl;
}

storage::TableState StateMachine::LoadState(const std::string& table,
                                            storage::WriteSet* batch) {
  std::string raw;
  if (!GetMeta(storage::TableMetaKey(table, "state"), &raw, batch)) return {};
  auto st = storage::DecodeTableState(raw);
  if (!st) CorruptState(StrCat("state of table ", table));
  return *st;
}

void StateMachine::PutState(const std::string& table, const storage::TableState& st) {
  meta_->Put(storage::TableMetaKey(table, "state"), storage::EncodeTableState(st));
}

std::vector<storage::TableInterval> StateMachine::LoadMoves(const std::string& table,
                                                            storage::WriteSet* batch) {
  std::string raw;
  if (!GetMeta(storage::TableMetaKey(table, "moves"), &raw, batch)) {
    return {{table, 0, 0}};  // never moved: one open interval in its own object
  }
  auto moves = storage::DecodeTableMoves(raw);
  if (!moves || moves->empty()) CorruptState(StrCat("moves of table ", table));
  return *moves;
}

std::optional<storage::ObjectMember> StateMachine::LoadMember(
    const std::string& object, const std::string& table, storage::WriteSet* batch) {
  std::string raw;
  if (!GetMeta(storage::ObjectMemberKey(object, table), &raw, batch)) {
    if (object == table) return storage::ObjectMember{0, true, ""};
    return std::nullopt;
  }
  auto m = storage::DecodeObjectMember(raw);
  if (!m) CorruptState(StrCat("member ", table, " of object ", object));
  return *m;
}

std::string StateMachine::ObjectOf(const std::string& table, const std::string& group) {
  return group.empty() ? table : StrCat("@", group);
}

bool StateMachine::MayWrite(const consensus::Command& c, std::string_view key) {
  proto::Command cmd;
  if (c.id.node == consensus::kNoNode || !cmd.ParseFromString(c.data)) return true;
  std::string_view row;
  if (cmd.has_put()) {
    row = cmd.put().row();
  } else if (cmd.has_del()) {
    row = cmd.del().row();
  } else {
    return true;
  }
  const std::string_view table = cmd.table();
  return key.size() == table.size() + 1 + row.size() && key.starts_with(table) &&
         key[table.size()] == '.' && key.ends_with(row);
}

uint64_t StateMachine::CommitIndex(const std::string& object,
                                   storage::WriteSet* batch) {
  std::string raw;
  if (GetMeta(storage::ObjectMetaKey(object, "ci"), &raw, batch)) {
    std::string_view in = raw;
    uint64_t ci;
    if (!storage::GetVarint(&in, &ci) || !in.empty()) CorruptState(StrCat("commit index of ", object));
    return ci;
  }
  if (IsGroupObject(object)) return 0;
  // Stores written before objects had their own record kept it in the table's state.
  storage::TableState st = LoadState(object, batch);
  return st.gen == 0 ? st.commit_index : 0;
}

void StateMachine::MarkApplied(const std::string& object, uint64_t slot) {
  std::string v;
  storage::PutVarint(&v, slot);
  meta_->Put(storage::ObjectMetaKey(object, "ci"), std::move(v));
}

StateMachine::Route StateMachine::RouteOf(const std::string& table) {
  Route r;
  if (IsGroupObject(table) || table.find('.') != std::string::npos) {
    r.object = table;
    return r;
  }
  storage::TableState st = LoadState(table, nullptr);
  r.object = ObjectOf(table, st.group);
  r.pending = st.pending;
  auto member = LoadMember(r.object, table, nullptr);
  r.live = member && member->open && member->gen == st.gen && !st.pending;
  return r;
}

std::optional<proto::Command> StateMachine::BuildAdopt(const std::string& table) {
  storage::TableState st = LoadState(table, nullptr);
  if (!st.pending) return std::nullopt;
  // Sealed and not adopted: nothing changes the table until the adopt applies, so this is
  // exactly its state as of the seal, whichever node builds it.
  proto::Command cmd;
  cmd.set_table(table);
  cmd.mutable_adopt()->set_gen(st.gen + 1);
  cmd.mutable_adopt()->set_snapshot(SnapshotTable(table));
  return cmd;
}

namespace {
// Whether a snapshot entry belongs to `table` (an adopt must not write other tables' keys).
bool InTable(Cf cf, std::string_view key, const std::string& table) {
  if (cf != Cf::kRows && cf != Cf::kBlobs && cf != Cf::kMeta) return false;
  auto [lo, hi] = TableRange(cf, table);
  return key >= std::string_view(lo) && key < std::string_view(hi);
}

// The state of the table whose section `p` is in (default when it has none), reading the
// section to its end; nullopt if it does not decode or holds keys of other tables.
std::optional<storage::TableState> SectionState(SnapshotParser& p, const std::string& table) {
  storage::TableState st;
  const std::string state_key = storage::TableMetaKey(table, "state");
  Cf cf;
  std::string_view key, value;
  while (p.NextEntry(&cf, &key, &value)) {
    if (!InTable(cf, key, table)) return std::nullopt;
    if (cf == Cf::kMeta && key == state_key) {
      auto decoded = storage::DecodeTableState(value);
      if (!decoded) return std::nullopt;
      st = *decoded;
    }
  }
  if (!p.ok()) return std::nullopt;
  return st;
}

// The table state inside a table snapshot held in memory (an adopt's).
std::optional<storage::TableState> SnapshotState(const std::string& table,
                                                 std::string_view snapshot) {
  StringPieces in(snapshot);
  SnapshotParser p(&in, snapshot.size());
  return SectionState(p, table);
}

}  // namespace

std::optional<SnapshotHeads> StateMachine::ReadSnapshotHeads(SnapshotPieces& in) {
  SnapshotParser p(&in);
  SnapshotHeads heads;
  char kind = 0;
  std::string table, member;
  while (p.NextSection(&kind, &table, &member)) {
    if (kind == kSectionMember) {
      if (!storage::DecodeObjectMember(member)) return std::nullopt;
      heads.members.emplace_back(table, member);
      continue;
    }
    std::optional<storage::TableState> st = SectionState(p, table);
    if (!st) return std::nullopt;
    heads.tables[table] = *st;
  }
  if (!p.ok()) return std::nullopt;
  return heads;
}

std::string StateMachine::SnapshotTable(const std::string& table) {
  std::string out;
  std::unique_ptr<storage::Reader> snap = store_->Snapshot();
  TableEntries entries(snap.get(), table);
  while (entries.Next(&out)) {
  }
  return out;
}

bool StateMachine::InstallTable(const std::string& table, const storage::TableState& theirs,
                                SnapshotParser& p, storage::WriteSet* batch, const Spill& spill) {
  const uint64_t revision_before = LoadState(table, batch).revision;
  for (Cf cf : kSnapshotCfs) {
    auto [lo, hi] = TableRange(cf, table);
    DeleteRange(cf, lo, hi, batch);
  }
  // The state record is the caller's to write, after every other entry: a write spilled in
  // parts thus leaves a table without one (never installed) or whole.
  const std::string state_key = storage::TableMetaKey(table, "state");
  const auto [expiry_lo, expiry_hi] = storage::ExpiryRange(table);
  bool expiring = false;
  Cf cf;
  std::string_view key, value;
  while (p.NextEntry(&cf, &key, &value)) {
    if (cf == Cf::kMeta && key == state_key) continue;
    expiring |= cf == Cf::kMeta && key >= expiry_lo && key < expiry_hi;
    batch->Put(cf, key, value);
    if (spill) spill(*batch);
  }
  if (!p.ok()) return false;
  if (expiring) {  // this node's expirer must know of them, should it own the table
    batch->Put(Cf::kMeta, storage::ExpiringTableKey(table), "");
    expiring_.insert(table);
  }
  // The changes between our revision and the snapshot's never passed through here: the
  // history restarts at the snapshot (WATCH ... FROM before it is told it was compacted).
  if (theirs.revision != revision_before) DropChanges(table, batch);
  return true;
}

uint64_t StateMachine::TableBytes(const std::string& table, storage::WriteSet* batch) {
  meta_->Flush(*batch);  // the scan must see every record of the batch
  uint64_t bytes = 0;
  for (Cf cf : kSnapshotCfs) {
    auto [lo, hi] = TableRange(cf, table);
    std::unique_ptr<storage::Cursor> it = batch->Scan(cf, lo, hi);
    for (it->Seek(lo); it->Valid(); it->Next()) {
      bytes += 1 + 10 + it->key().size() + it->value().size();  // as SnapshotTable frames it
    }
  }
  return bytes;
}


std::unique_ptr<SnapshotStream> StateMachine::OpenObjectSnapshot(const std::string& object,
                                                                 bool test_unpinned) {
  // (The bug switch reads the live store instead of the pinned snapshot.)
  std::unique_ptr<storage::Reader> snap =
      test_unpinned ? store_->BulkReader() : store_->BulkSnapshot();
  std::string head;
  std::vector<std::string> governed;
  bool own_seen = false;
  const std::string prefix = storage::ObjectMemberPrefix(object);
  std::unique_ptr<storage::Cursor> it = snap->Scan(Cf::kMeta, prefix, "");
  for (it->Seek(prefix); it->Valid() && it->key().starts_with(prefix); it->Next()) {
    std::string table(it->key().substr(prefix.size()));
    auto m = storage::DecodeObjectMember(it->value());
    if (!m) CorruptState(StrCat("member ", table, " of object ", object));
    head.push_back(kSectionMember);
    storage::PutLengthPrefixed(&head, table);
    storage::PutLengthPrefixed(&head, it->value());
    if (m->open) governed.push_back(table);
    own_seen |= table == object;
  }
  it.reset();
  // A table's own object governs it without a record until it is first sealed.
  if (!own_seen && !IsGroupObject(object)) governed.push_back(object);
  const uint64_t slot = CommitIndex(object, nullptr);
  return std::make_unique<SnapshotStream>(std::move(snap), slot, std::move(head),
                                          std::move(governed));
}

std::string StateMachine::SnapshotObject(const std::string& object) {
  std::unique_ptr<SnapshotStream> stream = OpenObjectSnapshot(object);
  return stream->Read(0, stream->size());
}

bool StateMachine::InstallObjectSnapshot(const std::string& object, SnapshotPieces& snapshot,
                                         std::optional<SnapshotHeads> heads,
                                         storage::WriteSet* batch, const Spill& spill) {
  if (!heads) heads = ReadSnapshotHeads(snapshot);
  if (!heads) return false;
  // The member records are the object's own state: replaced wholesale.
  const std::string prefix = storage::ObjectMemberPrefix(object);
  std::vector<std::string> doomed;
  meta_->Flush(*batch);  // the scan must see every record of the batch
  {
    std::unique_ptr<storage::Cursor> it = batch->Scan(Cf::kMeta, prefix, "");
    for (it->Seek(prefix); it->Valid() && it->key().starts_with(prefix); it->Next()) {
      doomed.emplace_back(it->key());
    }
  }
  for (const auto& k : doomed) meta_->Delete(k);
  for (const auto& [t, record] : heads->members) {
    meta_->Put(storage::ObjectMemberKey(object, t), record);
  }
  // Tables' data may be ahead here (another object's log moved it on): never go back.
  for (auto it = heads->tables.begin(); it != heads->tables.end();) {
    const storage::TableState& theirs = it->second;
    storage::TableState ours = LoadState(it->first, batch);
    const bool newer = std::tuple(theirs.gen, theirs.commit_index, true) >
                       std::tuple(ours.gen, ours.commit_index, ours.whole_slot);
    it = newer ? std::next(it) : heads->tables.erase(it);
  }
  SnapshotParser p(&snapshot);
  char kind = 0;
  std::string table, member;
  while (p.NextSection(&kind, &table, &member)) {
    auto theirs = heads->tables.find(table);
    if (kind != kSectionTable || theirs == heads->tables.end()) continue;
    if (!InstallTable(table, theirs->second, p, batch, spill)) return false;
    // Snapshots are taken between slots: the state includes its last slot whole.
    theirs->second.whole_slot = true;
    PutState(table, theirs->second);
  }
  return p.ok();
}

void StateMachine::DropChunks(const std::string& table, const std::string& row,
                              const RowRecord& old, storage::WriteSet* batch) {
  for (uint32_t i = 0; i < old.chunk_count(); ++i) {
    batch->Delete(Cf::kBlobs, storage::BlobChunkKey(table, row, i));
  }
}

namespace {
std::string DescribeObject(const std::string& object) {
  if (StateMachine::IsGroupObject(object)) return StrCat("group '", object.substr(1), "'");
  return "no group";
}
}  // namespace

// Which object governs a table is decided by that object's own log alone (its member
// records), so refusals are the same on every replica whatever the interleaving of logs. The
// table's data may be ahead of this log on a lagging replica (an adopt from a later interval,
// or a catch-up snapshot, applied first); its entries are then already included and skipped.
std::optional<ApplyResult> StateMachine::NotGoverned(const proto::Command& cmd,
                                                     const std::string& object,
                                                     const std::string& table, uint64_t slot,
                                                     storage::WriteSet* batch) {
  ApplyResult result;
  std::optional<storage::ObjectMember> member = LoadMember(object, table, batch);
  if (!member || !member->open) {
    result.ok = false;
    result.moved = true;
    result.error = member && !member->to.empty()
                       ? StrCat("table '", table, "' moved to ", DescribeObject(member->to),
                                "; retry")
                       : StrCat("table '", table, "' is not in ", DescribeObject(object),
                                " yet; retry");
    return result;
  }
  storage::TableState state = LoadState(table, batch);
  const uint64_t j = member->gen;
  if (state.gen > j || (state.gen == j && (state.commit_index > slot ||
                                            (state.commit_index == slot && state.whole_slot)))) {
    // Superseded here: the table's state already includes this entry. Only a seal changes
    // this object's records; the table's history says whether this entry was it.
    std::vector<storage::TableInterval> moves = LoadMoves(table, batch);
    bool joins = cmd.has_placement() && cmd.placement().has_group();
    if (joins && j < moves.size() && moves[j].object == object && moves[j].end == slot) {
      member->open = false;
      member->to = j + 1 < moves.size() ? moves[j + 1].object : ObjectOf(table, state.group);
      meta_->Put(storage::ObjectMemberKey(object, table), storage::EncodeObjectMember(*member));
      result.sealed = state.pending && state.gen == j;
      return result;
    }
    result.ok = false;
    result.error = StrCat("outcome unknown: table '", table,
                          "' changed group while this command was in flight; check and retry");
    return result;
  }
  if (state.gen < j) CorruptState(StrCat("table ", table, " is behind object ", object));
  return std::nullopt;
}

ApplyResult StateMachine::Apply(const proto::Command& cmd, const std::string& object,
                                uint64_t slot, storage::WriteSet* batch, bool with_reads) {
  ApplyResult result;
  result.revision = slot;
  MarkApplied(object, slot);
  const std::string& table = cmd.table();
  if (socketproto::IsReservedTable(table)) {
    result.ok = false;
    result.error = StrCat("table '", table, "' is reserved");
    return result;
  }
  if (cmd.op_case() == proto::Command::kAdopt) {
    result = ApplyAdopt(cmd, object, slot, batch);
    result.revision = slot;
    return result;
  }
  if (cmd.op_case() == proto::Command::kTxn) {
    result = ApplyTxn(cmd, object, slot, batch, with_reads);
    result.revision = slot;
    return result;
  }
  if (std::optional<ApplyResult> refused = NotGoverned(cmd, object, table, slot, batch)) {
    refused->revision = slot;
    return *refused;
  }
  storage::TableState state = LoadState(table, batch);
  // The time this command is judged at: its stamp, but never before the table's time (a new
  // owner's clock may be a little behind the last one's: docs/consensus.md §Time).
  const int64_t now_ms = std::max(state.clock_ms, cmd.timestamp_ms());
  switch (cmd.op_case()) {
    case proto::Command::kPut:
      result = ApplyPut(cmd, cmd, now_ms, state.revision + 1, batch);
      break;
    case proto::Command::kDel: result = ApplyDel(cmd, cmd, now_ms, batch); break;
    case proto::Command::kAcl: result = ApplyAcl(cmd, batch); break;
    case proto::Command::kPlacement: result = ApplyPlacement(cmd, object, slot, batch); break;
    case proto::Command::kAdopt:  // handled above
    case proto::Command::kTxn:
    case proto::Command::OP_NOT_SET: result = {false, "empty command"}; break;
    case proto::Command::kRead: result = {false, "a read outside a transaction"}; break;
  }
  Settle(cmd, slot, now_ms, result, batch);
  result.revision = slot;
  return result;
}

void StateMachine::Settle(const proto::Command& cmd, uint64_t slot, int64_t now_ms,
                          ApplyResult& result, storage::WriteSet* batch) {
  // Placement changes were written by ApplyPlacement into the same key; re-read keeps them.
  storage::TableState state = LoadState(cmd.table(), batch);
  state.commit_index = slot;
  state.whole_slot = false;
  state.clock_ms = std::max(state.clock_ms, now_ms);
  if (result.ok && result.row_changed) {
    ++state.revision;
    AppendChange(cmd, state, batch);
    result.table_revision = state.revision;
  }
  PutState(cmd.table(), state);
}

void StateMachine::AppendChange(const proto::Command& cmd, storage::TableState& state,
                                storage::WriteSet* batch) {
  storage::RowChange change;
  if (cmd.has_put()) {
    change.row = cmd.put().row();
    change.value = cmd.put().value();
  } else {
    change.del = true;
    change.row = cmd.del().row();
  }
  const std::string record = storage::EncodeRowChange(change);
  const uint64_t before = state.change_bytes;
  state.change_bytes += record.size();
  batch->Put(Cf::kChanges, storage::ChangeKey(cmd.table(), state.revision), record);
  // Trimmed in steps, the oldest changes of a step deleted together and in order: one delete
  // per change, at the far end of the table's history from the append, cost the memtable a
  // full skip-list search each (~17% of PUT throughput at 64 connections; docs/watch.md).
  // A step every trim_step_ changes, and one every 1/16 of the bound in bytes (large values
  // would fill it in a few changes).
  const uint64_t unit = std::max<uint64_t>(change_history_bytes_ / 16, 1);
  const bool count_step = state.revision % trim_step_ == 0;
  const bool bytes_step = change_history_bytes_ > 0 && before / unit != state.change_bytes / unit;
  if (count_step || bytes_step) TrimChanges(cmd.table(), state, count_step, bytes_step, batch);
}

void StateMachine::TrimChanges(const std::string& table, const storage::TableState& state,
                               bool count_step, bool bytes_step, storage::WriteSet* batch) {
  const uint64_t revision = state.revision;
  uint64_t through = count_step && revision > change_history_ ? revision - change_history_ : 0;
  if (bytes_step) {
    // A mark of change_bytes at every such step: the changes up to a mark m hold all but
    // change_bytes - mark(m) of the history's bytes. Drop those up to the newest mark that
    // leaves at least change_history_bytes_ (found among a few dozen small records).
    std::string mark;
    storage::PutVarint(&mark, state.change_bytes);
    batch->Put(Cf::kChanges, storage::ChangeMarkKey(table, revision), mark);
    std::vector<std::string> marks_gone;
    {
      const std::string lo = storage::ChangeMarkKey(table, 0);
      std::unique_ptr<storage::Cursor> it =
          batch->Scan(Cf::kChanges, lo, storage::ChangeMarkLimit(table));
      for (it->Seek(lo); it->Valid(); it->Next()) {
        std::string_view v = it->value();
        uint64_t bytes = 0;
        // (A mark above change_bytes came before a snapshot of another count: kept, it ages.)
        if (!storage::GetVarint(&v, &bytes) || bytes > state.change_bytes ||
            state.change_bytes - bytes < change_history_bytes_) {
          break;
        }
        marks_gone.emplace_back(it->key());
      }
    }
    for (const std::string& key : marks_gone) batch->Delete(Cf::kChanges, key);
    if (!marks_gone.empty()) {
      const std::string_view last = marks_gone.back();
      const std::optional<uint64_t> m = storage::ChangeRevision(table, last.substr(1));
      if (m) through = std::max(through, *m);
    }
  }
  // Deleted from where the last trim ended, in key order: contiguous, so the history never
  // has a gap (a lowered watch-history trims its older changes with the next step).
  const uint64_t trimmed = TrimmedThrough(table, batch);
  if (through <= trimmed) return;
  for (uint64_t r = trimmed + 1; r <= through; ++r) {
    batch->Delete(Cf::kChanges, storage::ChangeKey(table, r));
  }
  std::string record;
  storage::PutVarint(&record, through);
  batch->Put(Cf::kChanges, storage::ChangeTrimKey(table), record);
}

uint64_t StateMachine::TrimmedThrough(const std::string& table, storage::WriteSet* batch) {
  absl::StatusOr<std::optional<std::string>> raw =
      batch->Get(Cf::kChanges, storage::ChangeTrimKey(table));
  if (!raw.ok()) Fatal(StrCat("reading the trim record of ", table, ": ", raw.status().ToString()));
  uint64_t through = 0;
  std::string_view v = raw->value_or("");
  if (raw->has_value() && storage::GetVarint(&v, &through)) return through;
  // No record yet (a history written before it, or the table's first trim): the oldest change
  // there is, found once by a seek.
  const uint64_t oldest = OldestChange(table, batch);
  return oldest > 0 ? oldest - 1 : 0;
}

uint64_t StateMachine::OldestChange(const std::string& table, storage::WriteSet* batch) {
  const std::string lo = storage::ChangeKey(table, 0);
  std::unique_ptr<storage::Cursor> it =
      batch->Scan(Cf::kChanges, lo, storage::ChangeRangeLimit(table));
  it->Seek(lo);
  if (!it->Valid()) return 0;
  return storage::ChangeRevision(table, it->key()).value_or(0);
}

void StateMachine::DropChanges(const std::string& table, storage::WriteSet* batch) {
  DeleteRange(Cf::kChanges, storage::ChangeKey(table, 0), storage::ChangeRangeLimit(table), batch);
  batch->Delete(Cf::kChanges, storage::ChangeTrimKey(table));
  DeleteRange(Cf::kChanges, storage::ChangeMarkKey(table, 0), storage::ChangeMarkLimit(table),
              batch);
}

void StateMachine::DeleteRange(Cf cf, const std::string& lo, const std::string& hi,
                               storage::WriteSet* batch) {
  if (cf == Cf::kMeta) meta_->Flush(*batch);  // the scan must see every record of the batch
  if (absl::Status s = storage::DeleteAllIn(*batch, cf, lo, hi); !s.ok()) {
    Fatal(StrCat("deleting a range of keys: ", s.ToString()));
  }
  // Records deleted (and, by the caller, rewritten) past the caches.
  if (cf == Cf::kMeta) meta_->Clear();
  if (cf == Cf::kRows) rows_->Clear();
}

absl::StatusOr<RevisionRange> TableRevisions(storage::Store* store, const std::string& table) {
  RevisionRange r;
  absl::StatusOr<storage::TableState> st = store->LoadTableState(table);
  if (!st.ok()) return st.status();
  r.latest = st->revision;
  r.resumable_from = r.latest;
  const std::string lo = storage::ChangeKey(table, 0), hi = storage::ChangeRangeLimit(table);
  std::unique_ptr<storage::Cursor> it = store->Scan(Cf::kChanges, lo, hi);
  it->Seek(lo);
  if (it->Valid()) {
    std::optional<uint64_t> first = storage::ChangeRevision(table, it->key());
    if (first && *first >= 1 && *first <= r.latest) r.resumable_from = *first - 1;
  }
  if (absl::Status s = it->status(); !s.ok()) return s;
  return r;
}

ApplyResult StateMachine::ApplyAdopt(const proto::Command& cmd, const std::string& object,
                                     uint64_t slot, storage::WriteSet* batch) {
  const std::string& table = cmd.table();
  const uint64_t k = cmd.adopt().gen();
  std::optional<storage::ObjectMember> member = LoadMember(object, table, batch);
  // The first adopt of interval k in this log is the one; later copies (several nodes may
  // propose it) change nothing.
  if (member && member->gen >= k) return {};
  std::optional<storage::TableState> theirs = SnapshotState(table, cmd.adopt().snapshot());
  if (!theirs || !theirs->pending || theirs->gen + 1 != k ||
      ObjectOf(table, theirs->group) != object) {
    return {false, StrCat("invalid adopt of table '", table, "' into ", object)};
  }
  meta_->Put(storage::ObjectMemberKey(object, table), storage::EncodeObjectMember({k, true, ""}));
  storage::TableState ours = LoadState(table, batch);
  if (ours.gen >= k) return {};  // this replica's state is already from interval k or later
  // The snapshot is the state as of the seal: it includes every entry of the old log up to
  // it, even those this replica has not applied yet (they will be skipped).
  StringPieces in(cmd.adopt().snapshot());
  SnapshotParser p(&in, cmd.adopt().snapshot().size());
  InstallTable(table, *theirs, p, batch, {});
  std::vector<storage::TableInterval> moves = LoadMoves(table, batch);
  if (moves.size() != k) CorruptState(StrCat("moves of table ", table, " in adopt"));
  moves.push_back({object, slot, 0});
  meta_->Put(storage::TableMetaKey(table, "moves"), storage::EncodeTableMoves(moves));
  storage::TableState st = *theirs;
  st.gen = k;
  st.pending = false;
  st.commit_index = slot;
  st.whole_slot = false;  // commands after the adopt in its slot still apply
  PutState(table, st);
  return {};
}

std::optional<std::string> StateMachine::WriteRefused(const proto::Command& cmd, int64_t now_ms,
                                                      const RowRecord* current) {
  const std::string& row = cmd.has_put() ? cmd.put().row() : cmd.del().row();
  const bool has_if_rev = cmd.has_put() ? cmd.put().has_if_rev() : cmd.del().has_if_rev();
  const uint64_t if_rev = cmd.has_put() ? cmd.put().if_rev() : cmd.del().if_rev();
  const uint64_t actual = current != nullptr ? current->revision : 0;
  if (has_if_rev && if_rev != actual) {
    return StrCat("condition failed: '", Key(cmd.table(), row), "' is at revision ", actual);
  }
  // Replicas agree on this: the time is the owner's stamp in the chosen entry.
  if (current != nullptr && current->worm_until_ms > now_ms) {
    return StrCat("row '", Key(cmd.table(), row), "' is WORM-protected until ",
                  socketproto::FormatRfc3339Ms(current->worm_until_ms));
  }
  if (!cmd.has_put()) return std::nullopt;
  const int64_t expires = cmd.put().worm_expires_ms();
  if (expires > now_ms && expires - now_ms > socketproto::kRetentionMsMax) {
    // The same bound as WORM TTL's: a retention nobody could ever lift by mistake is a typo.
    return StrCat("WORM EXPIRES ", socketproto::FormatRfc3339Ms(expires),
                  " is more than 100 years ahead");
  }
  const int64_t gone = ExpiresAt(cmd.put(), now_ms);
  if (gone > 0 && gone < WormUntil(cmd.put(), now_ms)) {
    return StrCat("expiry before the WORM retention of '", Key(cmd.table(), row), "' ends");
  }
  return std::nullopt;
}

int64_t StateMachine::WormUntil(const proto::Put& put, int64_t now_ms) {
  if (put.worm_expires_ms() > now_ms) return put.worm_expires_ms();
  return put.worm_ttl_ms() > 0 ? now_ms + put.worm_ttl_ms() : 0;
}

int64_t StateMachine::ExpiresAt(const proto::Put& put, int64_t now_ms) {
  if (put.expire_at_ms() > 0) return put.expire_at_ms();
  return put.expire_ttl_ms() > 0 ? now_ms + put.expire_ttl_ms() : 0;
}

void StateMachine::IndexExpiry(const std::string& table, const std::string& row,
                               const RowRecord* old, const RowRecord* now,
                               storage::WriteSet* batch) {
  if (old != nullptr && old->expires_ms > 0) {
    if (now != nullptr && now->expires_ms == old->expires_ms) return;
    batch->Delete(Cf::kMeta, storage::ExpiryKey(table, old->expires_ms, row));
  }
  if (now == nullptr || now->expires_ms == 0) return;
  batch->Put(Cf::kMeta, storage::ExpiryKey(table, now->expires_ms, row), "");
  batch->Put(Cf::kMeta, storage::ExpiringTableKey(table), "");
  expiring_.insert(table);
}

std::optional<RowRecord> StateMachine::LoadRow(const std::string& table, const std::string& row,
                                               storage::WriteSet* batch) {
  std::string raw;
  if (!GetCached(*rows_, Cf::kRows, storage::RowKey(table, row), &raw, batch)) {
    return std::nullopt;
  }
  std::optional<RowRecord> rec = storage::DecodeRowRecord(raw);
  if (!rec) CorruptState(StrCat("row ", Key(table, row)));
  return rec;
}

ApplyResult StateMachine::ApplyPut(const proto::Command& cmd, const proto::Command& as,
                                   int64_t now_ms, uint64_t revision, storage::WriteSet* batch) {
  const std::string& table = cmd.table();
  const proto::Put& put = cmd.put();
  std::optional<std::string> principal;
  if (!as.principal().empty()) principal = as.principal();
  if (!AclAllows(LoadAcl(table, batch), principal, as.admin(), AclOp::kWrite)) {
    return {false, PermissionDenied(principal, "WRITE", table)};
  }
  std::optional<RowRecord> old = LoadRow(table, put.row(), batch);
  // An expired row is gone for the conditions too (its removal may not have committed yet).
  const bool live = old && !storage::Expired(*old, now_ms);
  if (auto why = WriteRefused(cmd, now_ms, live ? &*old : nullptr)) return {false, *why};
  if (old) DropChunks(table, put.row(), *old, batch);
  RowRecord rec;
  rec.size = put.value().size();
  rec.revision = revision;
  rec.binary = put.value().find_first_of("\r\n") != std::string::npos;
  rec.worm_until_ms = WormUntil(put, now_ms);
  rec.expires_ms = ExpiresAt(put, now_ms);
  IndexExpiry(table, put.row(), old ? &*old : nullptr, &rec, batch);
  if (put.value().size() <= storage::kInlineValueBytesMax) {
    rec.inline_value = put.value();
  } else {
    rec.chunked = true;
    std::string_view v = put.value();
    for (uint32_t i = 0; i < rec.chunk_count(); ++i) {
      batch->Put(Cf::kBlobs, storage::BlobChunkKey(table, put.row(), i),
                 v.substr(size_t{i} * storage::kBlobChunkBytes, storage::kBlobChunkBytes));
    }
  }
  const std::string row_key = storage::RowKey(table, put.row());
  std::string encoded = storage::EncodeRowRecord(rec);
  batch->Put(Cf::kRows, row_key, encoded);
  rows_->Fill(row_key, std::move(encoded));
  ApplyResult changed;
  changed.row_changed = true;
  return changed;
}

ApplyResult StateMachine::ApplyDel(const proto::Command& cmd, const proto::Command& as,
                                   int64_t now_ms, storage::WriteSet* batch) {
  const std::string& table = cmd.table();
  const std::string& row = cmd.del().row();
  std::optional<std::string> principal;
  if (!as.principal().empty()) principal = as.principal();
  if (!AclAllows(LoadAcl(table, batch), principal, as.admin(), AclOp::kWrite)) {
    return {false, PermissionDenied(principal, "WRITE", table)};
  }
  std::optional<RowRecord> old = LoadRow(table, row, batch);
  const bool live = old && !storage::Expired(*old, now_ms);
  // The owner's removal of an expired row: only if it still is (written again since: kept).
  if (cmd.del().only_expired() && (!old || live)) return {};
  if (auto why = WriteRefused(cmd, now_ms, live ? &*old : nullptr)) return {false, *why};
  if (!old) return {};  // deleting nothing is OK
  DropChunks(table, row, *old, batch);
  IndexExpiry(table, row, &*old, nullptr, batch);
  const std::string row_key = storage::RowKey(table, row);
  batch->Delete(Cf::kRows, row_key);
  rows_->Fill(row_key, std::nullopt);
  ApplyResult changed;
  changed.row_changed = true;
  return changed;
}

ApplyResult StateMachine::ApplyAcl(const proto::Command& cmd,
                                   storage::WriteSet* batch) {
  const std::string& table = cmd.table();
  const proto::AclChange& change = cmd.acl();
  std::optional<std::string> principal;
  if (!cmd.principal().empty()) principal = cmd.principal();
  storage::TableAcl acl = LoadAcl(table, batch);
  if (!AclAllows(acl, principal, cmd.admin(), AclOp::kAdminister)) {
    return {false, PermissionDenied(principal, change.grant() ? "ACL GRANT" : "ACL REVOKE", table)};
  }
  AclApplyChange(&acl, change.principal(), static_cast<storage::AclPerm>(change.perm()),
                 change.grant());
  meta_->Put(storage::TableMetaKey(table, "acl"), storage::EncodeTableAcl(acl));
  return {};
}

ApplyResult StateMachine::ApplyPlacement(const proto::Command& cmd, const std::string& object,
                                         uint64_t slot, storage::WriteSet* batch) {
  const std::string& table = cmd.table();
  std::optional<std::string> principal;
  if (!cmd.principal().empty()) principal = cmd.principal();
  // Placement is administration: on a table with an ACL it needs OWNER (or an admin).
  if (!AclAllows(LoadAcl(table, batch), principal, cmd.admin(), AclOp::kAdminister)) {
    return {false, PermissionDenied(principal, "TABLE placement", table)};
  }
  storage::TableState state = LoadState(table, batch);
  ApplyResult result;
  if (cmd.placement().has_group() && cmd.placement().group() != state.group) {
    // Seal: this interval ends here; the table's next log adopts its state as of now.
    uint64_t bytes = TableBytes(table, batch);
    if (bytes > kAdoptBytesMax) {
      return {false, StrCat("table '", table, "' is too large to change group: ", bytes,
                            " bytes of state, the limit is ", kAdoptBytesMax, " (one log entry)")};
    }
    std::vector<storage::TableInterval> moves = LoadMoves(table, batch);
    if (moves.size() != state.gen + 1 || moves.back().object != object) {
      CorruptState(StrCat("moves of table ", table));
    }
    moves.back().end = slot;
    meta_->Put(storage::TableMetaKey(table, "moves"), storage::EncodeTableMoves(moves));
    state.group = cmd.placement().group();
    state.pending = true;
    meta_->Put(storage::ObjectMemberKey(object, table),
               storage::EncodeObjectMember({state.gen, false, ObjectOf(table, state.group)}));
    result.sealed = true;
  }
  if (cmd.placement().has_pinned_region()) state.pinned_region = cmd.placement().pinned_region();
  if (cmd.placement().has_local_reads()) {
    state.local_reads = cmd.placement().local_reads();
    state.auto_reads = state.local_reads && cmd.placement().auto_reads();
  }
  PutState(table, state);
  return result;
}

}  // namespace atlas
