#include "atlasd/state_machine.h"

#include <cstdio>
#include <cstdlib>

#include "socketproto/str.h"
#include "atlasd/acl.h"
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
  std::fprintf(stderr, "FATAL: corrupt stored state: %.*s\n", static_cast<int>(what.size()),
               what.data());
  std::abort();
}

std::string Key(const std::string& table, const std::string& row) {
  return StrCat(table, ".", row);
}

}  // namespace

bool StateMachine::GetThroughBatch(Cf cf, const std::string& key, std::string* value,
                                   rocksdb::WriteBatchWithIndex* batch) {
  rocksdb::Status s = batch != nullptr
                          ? batch->GetFromBatchAndDB(store_->db(), rocksdb::ReadOptions(),
                                                     store_->cf(cf), key, value)
                          : store_->db()->Get(rocksdb::ReadOptions(), store_->cf(cf), key, value);
  if (s.IsNotFound()) return false;
  if (!s.ok()) CorruptState(StrCat("read failed: ", s.ToString()));
  return true;
}

storage::TableAcl StateMachine::LoadAcl(const std::string& table,
                                        rocksdb::WriteBatchWithIndex* batch) {
  std::string raw;
  if (!GetThroughBatch(Cf::kMeta, storage::TableMetaKey(table, "acl"), &raw, batch)) return {};
  auto acl = storage::DecodeTableAcl(raw);
  if (!acl) CorruptState(StrCat("ACL of table ", table));
  return *acl;
}

storage::TableState StateMachine::LoadState(const std::string& table,
                                            rocksdb::WriteBatchWithIndex* batch) {
  std::string raw;
  if (!GetThroughBatch(Cf::kMeta, storage::TableMetaKey(table, "state"), &raw, batch)) return {};
  auto st = storage::DecodeTableState(raw);
  if (!st) CorruptState(StrCat("state of table ", table));
  return *st;
}

uint64_t StateMachine::CommitIndex(const std::string& table,
                                   rocksdb::WriteBatchWithIndex* batch) {
  return LoadState(table, batch).commit_index;
}

void StateMachine::MarkApplied(const std::string& table, uint64_t slot,
                               rocksdb::WriteBatchWithIndex* batch) {
  storage::TableState state = LoadState(table, batch);
  state.commit_index = slot;
  batch->Put(store_->cf(Cf::kMeta), storage::TableMetaKey(table, "state"),
             storage::EncodeTableState(state));
}

namespace {
// Snapshot format: repeated (u8 column family, len-prefixed key, len-prefixed value) covering
// every key of the table in rows, blobs and meta.
constexpr Cf kSnapshotCfs[] = {Cf::kRows, Cf::kBlobs, Cf::kMeta};

std::pair<std::string, std::string> TableRange(Cf cf, const std::string& table) {
  if (cf == Cf::kMeta) {
    std::string lo = storage::TableMetaKey(table, "");
    std::string hi = lo;
    hi.back() = '\x01';  // "t" 00 <table> 01: just past the table's meta keys
    return {lo, hi};
  }
  return {storage::RowRangeStart(table, ""), storage::RowRangeLimit(table, "")};
}
}  // namespace

std::string StateMachine::SnapshotTable(const std::string& table) {
  std::string out;
  const rocksdb::Snapshot* snap = store_->db()->GetSnapshot();
  for (Cf cf : kSnapshotCfs) {
    auto [lo, hi] = TableRange(cf, table);
    rocksdb::Slice upper(hi);
    rocksdb::ReadOptions ro;
    ro.snapshot = snap;
    ro.iterate_upper_bound = &upper;
    std::unique_ptr<rocksdb::Iterator> it(store_->db()->NewIterator(ro, store_->cf(cf)));
    for (it->Seek(lo); it->Valid(); it->Next()) {
      out.push_back(static_cast<char>(cf));
      storage::PutLengthPrefixed(&out, it->key().ToStringView());
      storage::PutLengthPrefixed(&out, it->value().ToStringView());
    }
  }
  store_->db()->ReleaseSnapshot(snap);
  return out;
}

bool StateMachine::InstallSnapshot(const std::string& table, std::string_view snapshot,
                                   rocksdb::WriteBatchWithIndex* batch) {
  for (Cf cf : kSnapshotCfs) {
    auto [lo, hi] = TableRange(cf, table);
    rocksdb::Slice upper(hi);
    rocksdb::ReadOptions ro;
    ro.iterate_upper_bound = &upper;
    std::vector<std::string> doomed;  // collected first: the batch must not change under it
    {
      std::unique_ptr<rocksdb::Iterator> it(batch->NewIteratorWithBase(
          store_->cf(cf), store_->db()->NewIterator(ro, store_->cf(cf))));
      for (it->Seek(lo); it->Valid() && it->key().compare(upper) < 0; it->Next()) {
        doomed.push_back(it->key().ToString());
      }
    }
    for (const auto& k : doomed) batch->Delete(store_->cf(cf), k);
  }
  while (!snapshot.empty()) {
    auto cf = static_cast<uint8_t>(snapshot[0]);
    snapshot.remove_prefix(1);
    std::string_view key, value;
    if (cf >= static_cast<uint8_t>(Cf::kCount) || !storage::GetLengthPrefixed(&snapshot, &key) ||
        !storage::GetLengthPrefixed(&snapshot, &value)) {
      return false;
    }
    batch->Put(store_->cf(static_cast<Cf>(cf)), key, value);
  }
  return true;
}

void StateMachine::DropChunks(const std::string& table, const std::string& row,
                              const RowRecord& old, rocksdb::WriteBatchWithIndex* batch) {
  for (uint32_t i = 0; i < old.chunk_count(); ++i) {
    batch->Delete(store_->cf(Cf::kBlobs), storage::BlobChunkKey(table, row, i));
  }
}

ApplyResult StateMachine::Apply(const proto::Command& cmd, uint64_t slot,
                                rocksdb::WriteBatchWithIndex* batch) {
  ApplyResult result;
  const std::string& table = cmd.table();
  if (socketproto::IsReservedTable(table)) {
    result = {false, StrCat("table '", table, "' is reserved")};
  } else {
    switch (cmd.op_case()) {
      case proto::Command::kPut: result = ApplyPut(cmd, slot, batch); break;
      case proto::Command::kDel: result = ApplyDel(cmd, batch); break;
      case proto::Command::kAcl: result = ApplyAcl(cmd, batch); break;
      case proto::Command::kPlacement: result = ApplyPlacement(cmd, batch); break;
      case proto::Command::OP_NOT_SET: result = {false, "empty command"}; break;
    }
  }
  storage::TableState state = LoadState(table, batch);
  state.commit_index = slot;
  // Placement changes were written by ApplyPlacement into the same key; re-read keeps them.
  batch->Put(store_->cf(Cf::kMeta), storage::TableMetaKey(table, "state"),
             storage::EncodeTableState(state));
  result.revision = slot;
  return result;
}

ApplyResult StateMachine::ApplyPut(const proto::Command& cmd, uint64_t slot,
                                   rocksdb::WriteBatchWithIndex* batch) {
  const std::string& table = cmd.table();
  const proto::Put& put = cmd.put();
  std::optional<std::string> principal;
  if (!cmd.principal().empty()) principal = cmd.principal();
  if (!AclAllows(LoadAcl(table, batch), principal, cmd.admin(), AclOp::kWrite)) {
    return {false, PermissionDenied(principal, "WRITE", table)};
  }
  const std::string row_key = storage::RowKey(table, put.row());
  std::string raw;
  if (GetThroughBatch(Cf::kRows, row_key, &raw, batch)) {
    auto old = storage::DecodeRowRecord(raw);
    if (!old) CorruptState(StrCat("row ", Key(table, put.row())));
    // WPaxos replicas agree on this because the timestamp is the proposer's, in the command.
    if (old->worm_until_ms > cmd.timestamp_ms()) {
      return {false, StrCat("row '", Key(table, put.row()), "' is WORM-protected until ",
                                  socketproto::FormatRfc3339Ms(old->worm_until_ms))};
    }
    DropChunks(table, put.row(), *old, batch);
  }
  RowRecord rec;
  rec.size = put.value().size();
  rec.revision = slot;
  rec.binary = put.value().find_first_of("\r\n") != std::string::npos;
  if (put.worm_ttl_ms() > 0) rec.worm_until_ms = cmd.timestamp_ms() + put.worm_ttl_ms();
  if (put.worm_expires_ms() > cmd.timestamp_ms()) rec.worm_until_ms = put.worm_expires_ms();
  if (put.value().size() <= storage::kInlineValueBytesMax) {
    rec.inline_value = put.value();
  } else {
    rec.chunked = true;
    std::string_view v = put.value();
    for (uint32_t i = 0; i < rec.chunk_count(); ++i) {
      batch->Put(store_->cf(Cf::kBlobs), storage::BlobChunkKey(table, put.row(), i),
                 v.substr(size_t{i} * storage::kBlobChunkBytes, storage::kBlobChunkBytes));
    }
  }
  batch->Put(store_->cf(Cf::kRows), row_key, storage::EncodeRowRecord(rec));
  return {};
}

ApplyResult StateMachine::ApplyDel(const proto::Command& cmd,
                                   rocksdb::WriteBatchWithIndex* batch) {
  const std::string& table = cmd.table();
  const std::string& row = cmd.del().row();
  std::optional<std::string> principal;
  if (!cmd.principal().empty()) principal = cmd.principal();
  if (!AclAllows(LoadAcl(table, batch), principal, cmd.admin(), AclOp::kWrite)) {
    return {false, PermissionDenied(principal, "WRITE", table)};
  }
  const std::string row_key = storage::RowKey(table, row);
  std::string raw;
  if (!GetThroughBatch(Cf::kRows, row_key, &raw, batch)) return {};  // deleting nothing is OK
  auto old = storage::DecodeRowRecord(raw);
  if (!old) CorruptState(StrCat("row ", Key(table, row)));
  if (old->worm_until_ms > cmd.timestamp_ms()) {
    return {false, StrCat("row '", Key(table, row), "' is WORM-protected until ",
                                socketproto::FormatRfc3339Ms(old->worm_until_ms))};
  }
  DropChunks(table, row, *old, batch);
  batch->Delete(store_->cf(Cf::kRows), row_key);
  return {};
}

ApplyResult StateMachine::ApplyAcl(const proto::Command& cmd,
                                   rocksdb::WriteBatchWithIndex* batch) {
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
  batch->Put(store_->cf(Cf::kMeta), storage::TableMetaKey(table, "acl"),
             storage::EncodeTableAcl(acl));
  return {};
}

ApplyResult StateMachine::ApplyPlacement(const proto::Command& cmd,
                                         rocksdb::WriteBatchWithIndex* batch) {
  const std::string& table = cmd.table();
  std::optional<std::string> principal;
  if (!cmd.principal().empty()) principal = cmd.principal();
  // Placement is administration: on a table with an ACL it needs OWNER (or an admin).
  if (!AclAllows(LoadAcl(table, batch), principal, cmd.admin(), AclOp::kAdminister)) {
    return {false, PermissionDenied(principal, "TABLE placement", table)};
  }
  storage::TableState state = LoadState(table, batch);
  if (cmd.placement().has_pinned_region()) state.pinned_region = cmd.placement().pinned_region();
  if (cmd.placement().has_group()) state.group = cmd.placement().group();
  batch->Put(store_->cf(Cf::kMeta), storage::TableMetaKey(table, "state"),
             storage::EncodeTableState(state));
  return {};
}

}  // namespace atlas
