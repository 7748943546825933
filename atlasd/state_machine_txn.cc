// TXN (shared/spec/transactions.md §3): a transaction's commands are applied all or none, as
// one entry of one object's log. First every command is checked against the state the
// commands before it would leave (rows, revisions, WORM, ACLs), writing nothing; only if none
// is refused are they applied, in order, each taking its own table revision.
#include <map>

#include "atlasd/acl.h"
#include "atlasd/fatal.h"
#include "atlasd/state_machine.h"
#include "socketproto/command.h"
#include "socketproto/str.h"
#include "storage/keys.h"

namespace atlas {

using storage::Cf;
using storage::RowRecord;

namespace {

const std::string& RowOf(const proto::Command& op) {
  if (op.has_put()) return op.put().row();
  if (op.has_del()) return op.del().row();
  return op.read().row();
}

std::optional<std::string> PrincipalOf(const proto::Command& cmd) {
  if (cmd.principal().empty()) return std::nullopt;
  return cmd.principal();
}

}  // namespace

ApplyResult StateMachine::ApplyTxn(const proto::Command& cmd, const std::string& object,
                                   uint64_t slot, storage::WriteSet* batch, bool with_reads) {
  std::optional<ApplyResult> not_governed;
  if (std::optional<std::string> why = TxnRefused(cmd, object, slot, batch, &not_governed)) {
    return {false, StrCat("transaction aborted: ", *why)};
  }
  if (not_governed) return *not_governed;
  ApplyResult result;
  for (const proto::Command& op : cmd.txn().ops()) {
    const storage::TableState state = LoadState(op.table(), batch);
    const int64_t now_ms = std::max(state.clock_ms, cmd.timestamp_ms());
    if (op.has_read()) {
      if (with_reads) result.reads.push_back(ReadInTxn(op, now_ms, batch));
      continue;
    }
    const uint64_t revision = state.revision + 1;
    ApplyResult r = op.has_put() ? ApplyPut(op, cmd, now_ms, revision, batch)
                                 : ApplyDel(op, cmd, now_ms, batch);
    // TxnRefused allowed each command against the very state it meets here: a refusal now
    // is a bug in one of the two. Every replica meets it alike; the entry is not half-done
    // silently.
    if (!r.ok) {
      result.ok = false;
      result.error = StrCat("internal error: a checked transaction command was refused (",
                            r.error, ")");
    }
    Settle(op, slot, now_ms, r, batch);
    if (r.table_revision == 0) continue;
    if (!result.changes.empty() && result.changes.back().first == op.table()) {
      result.changes.back().second = r.table_revision;
    } else {
      result.changes.emplace_back(op.table(), r.table_revision);
    }
  }
  return result;
}

std::optional<std::string> StateMachine::TxnRefused(const proto::Command& cmd,
                                                    const std::string& object, uint64_t slot,
                                                    storage::WriteSet* batch,
                                                    std::optional<ApplyResult>* not_governed) {
  if (cmd.txn().ops_size() == 0) return "a transaction needs at least one command";
  // What the commands before the current one leave: rows by key (nullopt: absent), tables.
  std::map<std::string, std::optional<RowRecord>> rows;
  std::map<std::string, storage::TableState> tables;
  const std::optional<std::string> principal = PrincipalOf(cmd);
  uint64_t read_bytes = 0;
  for (const proto::Command& op : cmd.txn().ops()) {
    const std::string& table = op.table();
    if (socketproto::IsReservedTable(table)) return StrCat("table '", table, "' is reserved");
    if (!op.has_put() && !op.has_del() && !op.has_read()) return "not a row command";
    auto [t, fresh] = tables.try_emplace(table);
    if (fresh) {
      *not_governed = NotGoverned(op, object, table, slot, batch);
      if (*not_governed) return std::nullopt;
      t->second = LoadState(table, batch);
    }
    storage::TableState& state = t->second;
    const bool read = op.has_read();
    if (!AclAllows(LoadAcl(table, batch), principal, cmd.admin(),
                   read ? AclOp::kRead : AclOp::kWrite)) {
      return PermissionDenied(principal, read ? "READ" : "WRITE", table);
    }
    const std::string key = StrCat(table, ".", RowOf(op));
    auto r = rows.find(key);
    if (r == rows.end()) r = rows.emplace(key, LoadRow(table, RowOf(op), batch)).first;
    std::optional<RowRecord>& row = r->second;
    const int64_t now_ms = std::max(state.clock_ms, cmd.timestamp_ms());
    const bool live = row && !storage::Expired(*row, now_ms);  // expired: gone for all
    if (read) {
      if (live && row->binary && op.read().kind() == proto::Read::GET) {
        return StrCat("value of '", key, "' is binary; use KEY BLOB GET");
      }
      if (live && op.read().kind() != proto::Read::INFO) read_bytes += row->size;
      if (read_bytes > kTxnReadBytesMax) {
        return StrCat("transaction too large: its reads return more than ", kTxnReadBytesMax,
                      " bytes");
      }
      continue;
    }
    if (op.has_del() && op.del().only_expired() && (!row || live)) continue;  // a no-op
    if (auto why = WriteRefused(op, now_ms, live ? &*row : nullptr)) return why;
    if (op.has_put()) {
      RowRecord next;
      next.revision = ++state.revision;
      next.size = op.put().value().size();
      next.binary = op.put().value().find_first_of("\r\n") != std::string::npos;
      next.worm_until_ms = WormUntil(op.put(), now_ms);
      next.expires_ms = ExpiresAt(op.put(), now_ms);
      row = std::move(next);
    } else if (row) {
      ++state.revision;
      row.reset();
    }
  }
  return std::nullopt;
}

TxnRead StateMachine::ReadInTxn(const proto::Command& op, int64_t now_ms,
                                storage::WriteSet* batch) {
  TxnRead r;
  r.kind = op.read().kind();
  r.key = StrCat(op.table(), ".", op.read().row());
  r.row = LoadRow(op.table(), op.read().row(), batch);
  if (r.row && storage::Expired(*r.row, now_ms)) r.row.reset();
  if (!r.row || r.kind == proto::Read::INFO) return r;
  if (!r.row->chunked) {
    r.value = r.row->inline_value;
    return r;
  }
  r.value.reserve(r.row->size);
  for (uint32_t i = 0; i < r.row->chunk_count(); ++i) {
    std::string chunk;
    if (!GetThroughBatch(Cf::kBlobs, storage::BlobChunkKey(op.table(), op.read().row(), i),
                         &chunk, batch)) {
      Fatal(StrCat("corrupt stored state: chunk ", i, " of row ", r.key, " is missing"));
    }
    r.value += chunk;
  }
  return r;
}

}  // namespace atlas
