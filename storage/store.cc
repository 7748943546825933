// Typed reads over any Store (store.h); the engines are in rocks_store.cc and mem_store.cc.
#include "storage/store.h"

#include "absl/strings/numbers.h"
#include "fmt/format.h"
#include "storage/keys.h"

namespace atlas::storage {

absl::StatusOr<std::optional<RowRecord>> Store::GetRow(std::string_view table,
                                                       std::string_view row) {
  auto raw = Get(Cf::kRows, RowKey(table, row));
  if (!raw.ok()) return raw.status();
  if (!raw->has_value()) return std::optional<RowRecord>();
  auto rec = DecodeRowRecord(**raw);
  if (!rec) return absl::DataLossError(fmt::format("corrupt row record for {}.{}", table, row));
  return std::optional<RowRecord>(std::move(*rec));
}

absl::StatusOr<std::string> ReadValueIn(Reader& reader, std::string_view table,
                                        std::string_view row, const RowRecord& record) {
  if (!record.chunked) return record.inline_value;
  std::string out;
  out.reserve(record.size);
  for (uint32_t i = 0; i < record.chunk_count(); ++i) {
    auto chunk = reader.Get(Cf::kBlobs, BlobChunkKey(table, row, i));
    if (!chunk.ok()) return chunk.status();
    if (!chunk->has_value()) {
      if (out.size() != record.size) return absl::AbortedError("value changed while reading");
      return absl::DataLossError(fmt::format("missing chunk {} of {}.{}", i, table, row));
    }
    out.append(**chunk);
  }
  if (out.size() != record.size) return absl::AbortedError("value changed while reading");
  return out;
}

absl::StatusOr<std::string> Store::ReadValue(std::string_view table, std::string_view row,
                                             const RowRecord& record) {
  if (!record.chunked) return record.inline_value;
  // One snapshot so that a concurrent overwrite cannot mix chunks of two values; the row may
  // still have been overwritten between its record and this snapshot (Aborted: callers retry).
  std::unique_ptr<Reader> snap = Snapshot();
  return ReadValueIn(*snap, table, row, record);
}

absl::StatusOr<TableState> TableStateIn(Reader& reader, std::string_view table) {
  auto raw = reader.Get(Cf::kMeta, TableMetaKey(table, "state"));
  if (!raw.ok()) return raw.status();
  if (!raw->has_value()) return TableState{};
  auto st = DecodeTableState(**raw);
  if (!st) return absl::DataLossError(fmt::format("corrupt state of table {}", table));
  return *st;
}

absl::Status Store::ForEachRow(std::string_view table, std::string_view row_prefix,
                               const std::optional<std::string>& after_row,
                               const std::function<bool(std::string_view row)>& fn,
                               int64_t now_ms) {
  const std::string start = RowRangeStart(table, row_prefix);
  const std::string limit = RowRangeLimit(table, row_prefix);
  std::unique_ptr<Cursor> it = Scan(Cf::kRows, start, limit);
  const size_t row_offset = table.size() + 1;
  if (after_row) {
    const std::string after = RowKey(table, *after_row);
    it->Seek(after > start ? after : start);
    if (it->Valid() && it->key() == after) it->Next();
  } else {
    it->Seek(start);
  }
  for (; it->Valid(); it->Next()) {
    if (now_ms > 0 && ExpiredRecord(it->value(), now_ms)) continue;
    if (!fn(it->key().substr(row_offset))) break;
  }
  return it->status();
}

absl::Status Store::ForEachTable(const std::optional<std::string>& after,
                                 const std::function<bool(std::string_view table)>& fn) {
  const std::string start = after ? TableMetaKey(*after, "\x01") : TableMetaKey("", "");
  std::unique_ptr<Cursor> it = Scan(Cf::kMeta, TableMetaPrefix(), TableMetaLimit());
  for (it->Seek(start); it->Valid(); it->Next()) {
    std::optional<std::string_view> table = TableOfStateKey(it->key());
    if (!table || (after && *table <= *after)) continue;
    if (!fn(*table)) break;
  }
  return it->status();
}

absl::StatusOr<TableState> Store::LoadTableState(std::string_view table) {
  return TableStateIn(*this, table);
}

absl::StatusOr<TableAcl> Store::LoadTableAcl(std::string_view table) {
  auto raw = Get(Cf::kMeta, TableMetaKey(table, "acl"));
  if (!raw.ok()) return raw.status();
  if (!raw->has_value()) return TableAcl{};
  auto acl = DecodeTableAcl(**raw);
  if (!acl) return absl::DataLossError(fmt::format("corrupt ACL of table {}", table));
  return *acl;
}

absl::StatusOr<std::optional<std::string>> Store::GetNodeMeta(std::string_view field) {
  return Get(Cf::kMeta, NodeMetaKey(field));
}

absl::StatusOr<bool> CheckFormat(Reader& store, const std::string& dir) {
  absl::StatusOr<std::optional<std::string>> text = store.Get(Cf::kMeta, NodeMetaKey("format"));
  if (!text.ok()) return text.status();
  int format = 1;  // a data directory from before formats were recorded
  if (text->has_value() && !absl::SimpleAtoi(**text, &format)) {
    return absl::DataLossError(fmt::format("data directory {}: unreadable format '{}'", dir,
                                           **text));
  }
  if (format > kFormatVersion) {
    return absl::FailedPreconditionError(fmt::format(
        "data directory {} is in format {}, which a newer atlasd wrote; this atlasd reads formats "
        "{} to {}. Run that newer release on it (to go back, `atlas dump` with the newer one "
        "and `atlas restore` into a fresh directory here: docs/operations.md §Rolling upgrades)",
        dir, format, kFormatVersionMin, kFormatVersion));
  }
  if (format < kFormatVersionMin) {
    return absl::FailedPreconditionError(fmt::format(
        "data directory {} is in format {}, older than this atlasd reads ({} to {}): upgrade "
        "through a release that reads both (docs/operations.md §Rolling upgrades)",
        dir, format, kFormatVersionMin, kFormatVersion));
  }
  return !text->has_value() || format != kFormatVersion;
}

absl::Status DeleteAllIn(WriteSet& writes, Cf cf, std::string_view lo, std::string_view hi) {
  std::vector<std::string> doomed;
  {
    std::unique_ptr<Cursor> it = writes.Scan(cf, lo, hi);
    for (it->Seek(lo); it->Valid(); it->Next()) doomed.emplace_back(it->key());
    if (absl::Status s = it->status(); !s.ok()) return s;
  }
  for (const std::string& key : doomed) writes.Delete(cf, key);
  return absl::OkStatus();
}

void PutNodeMeta(WriteSet& writes, std::string_view field, std::string_view value) {
  writes.Put(Cf::kMeta, NodeMetaKey(field), value);
}

}  // namespace atlas::storage
