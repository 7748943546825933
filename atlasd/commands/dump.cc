// TABLE DUMP: a table's rows page by page, every page read from one snapshot of the store taken
// by the first page after the table's read barrier (docs/protocol.md §NODE, QUORUM, TABLE). The
// snapshot is the connection's until the last page, another table's dump or the disconnect.
#include <memory>

#include "atlasd/commands/call.h"
#include "socketproto/str.h"
#include "storage/keys.h"

namespace atlas {

namespace sp = socketproto;

namespace {

constexpr uint64_t kPageRowsDefault = 1000;
// A page ends before the row that would take its values past this (a page has at least one
// row, however large): what one page holds in the connection's reply budget.
constexpr size_t kPageBytes = size_t{4} << 20;
// A ROW line and a BLOB header, beyond the key and the value.
constexpr size_t kRowFrameBytes = 200;

// How many rows the page has, the bytes its reply needs, and whether rows follow it.
struct PagePlan {
  uint64_t rows = 0;
  size_t bytes = 256;
  bool more = false;
};

// The snapshot's rows of the table from the first one after `after` (all: none given).
std::unique_ptr<storage::Cursor> RowsFrom(storage::Reader& reader, const std::string& table,
                                          const std::optional<std::string>& after) {
  const std::string start = storage::RowRangeStart(table, "");
  std::unique_ptr<storage::Cursor> it =
      reader.Scan(storage::Cf::kRows, start, storage::RowRangeLimit(table, ""));
  if (!after) {
    it->Seek(start);
    return it;
  }
  const std::string from = storage::RowKey(table, after->substr(table.size() + 1));
  it->Seek(from);
  if (it->Valid() && it->key() == from) it->Next();
  return it;
}

absl::StatusOr<PagePlan> PlanPage(storage::Cursor& it, size_t key_bytes, uint64_t limit,
                                  int64_t now_ms) {
  PagePlan plan;
  for (; it.Valid(); it.Next()) {
    if (storage::ExpiredRecord(it.value(), now_ms)) continue;
    std::optional<storage::RowRecord> rec = storage::DecodeRowRecord(it.value());
    if (!rec) return absl::DataLossError(StrCat("corrupt row record ", it.key()));
    const size_t cost = rec->size + key_bytes + it.key().size() + kRowFrameBytes;
    if (plan.rows == limit || (plan.rows > 0 && plan.bytes + cost > kPageBytes)) {
      plan.more = true;
      break;
    }
    ++plan.rows;
    plan.bytes += cost;
  }
  if (absl::Status s = it.status(); !s.ok()) return s;
  return plan;
}

}  // namespace

void Executor::Run(const CallPtr& call, const sp::TableDump& c) {
  if (c.after && std::string_view(*c.after).substr(0, c.after->find('.')) != c.table) {
    return call->Warn(StrCat("AFTER names a key of another table than '", c.table, "'"));
  }
  ConnectionState& conn = *call->connection;
  DumpSnapshot snap;
  if (c.at) {
    absl::MutexLock lock(&conn.mu);
    if (conn.dump && conn.dump->table == c.table && conn.dump->revision == *c.at) snap = *conn.dump;
  }
  if (c.at && !snap.reader) {
    return call->Warn(StrCat("no dump of '", c.table, "' at revision ", *c.at,
                             " on this connection: begin again with TABLE DUMP ", c.table));
  }
  if (!c.at) {
    // Around the block cache: a dump reads each row once.
    snap.reader = store_->BulkSnapshot();
    absl::StatusOr<storage::TableState> st = storage::TableStateIn(*snap.reader, c.table);
    if (!st.ok()) return call->Warn(StrCat("internal error: ", st.status().message()));
    snap.table = c.table;
    snap.revision = st->revision;
    absl::MutexLock lock(&conn.mu);
    conn.dump = snap;  // (another table's dump on this connection ends here)
  }
  DumpPage(call, c, snap);
}

void Executor::DumpPage(const CallPtr& call, const sp::TableDump& c, const DumpSnapshot& snap) {
  const int64_t now_ms = WallNowMs();  // one instant decides which rows have expired
  const uint64_t limit = std::min(c.limit.value_or(kPageRowsDefault), options_.scan_keys_max);
  std::unique_ptr<storage::Cursor> it = RowsFrom(*snap.reader, c.table, c.after);
  absl::StatusOr<PagePlan> plan = PlanPage(*it, c.table.size() + 1, limit, now_ms);
  if (!plan.ok()) return call->Warn(StrCat("internal error: ", plan.status().message()));
  // The page's bytes are the call's before any value is read.
  Reserve(call, plan->bytes, [this, call, c, snap, plan = *plan, now_ms] {
    sp::Reply& reply = call->reply;
    reply.buffer().reserve(plan.bytes);
    reply.Line(StrCat("DUMP table=", c.table, " rev=", snap.revision, " rows=", plan.rows,
                      " more=", plan.more ? 1 : 0));
    std::unique_ptr<storage::Cursor> it = RowsFrom(*snap.reader, c.table, c.after);
    const size_t row_offset = c.table.size() + 1;
    for (uint64_t n = 0; n < plan.rows && it->Valid(); it->Next()) {
      if (storage::ExpiredRecord(it->value(), now_ms)) continue;
      std::optional<storage::RowRecord> rec = storage::DecodeRowRecord(it->value());
      if (!rec) return call->Warn(StrCat("internal error: corrupt row record ", it->key()));
      const std::string_view row = it->key().substr(row_offset);
      absl::StatusOr<std::string> value = storage::ReadValueIn(*snap.reader, c.table, row, *rec);
      if (!value.ok()) return call->Warn(StrCat("internal error: ", value.status().message()));
      reply.Line(RowLine(StrCat(c.table, ".", row), *rec));
      reply.Blob(*value);
      ++n;
    }
    if (!plan.more) {  // the last page: the snapshot goes
      absl::MutexLock lock(&call->connection->mu);
      std::optional<DumpSnapshot>& held = call->connection->dump;
      if (held && held->reader == snap.reader) held.reset();
    }
    call->Ok();
  });
}

}  // namespace atlas
