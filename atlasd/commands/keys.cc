// KEY GET, KEY PUT (KEY SET), KEY DEL, KEY BLOB SET, KEY BLOB GET (shared/spec/protocol.md §5),
// KEY INFO, IF REV and TXN (shared/spec/transactions.md §1-3).
#include <set>

#include "atlasd/commands/call.h"
#include "atlasd/state_machine.h"
#include "socketproto/str.h"

namespace atlas {

namespace sp = socketproto;

void Executor::Run(const CallPtr& call, const sp::KeyGet& c) {
  ReadRow(call, c.key, /*blob=*/false, 0);
}

void Executor::Run(const CallPtr& call, const sp::KeyBlobGet& c) {
  ReadRow(call, c.key, /*blob=*/true, 0);
}

std::string RowLine(std::string_view key, const storage::RowRecord& r) {
  auto instant = [](int64_t ms) { return ms > 0 ? sp::FormatRfc3339Ms(ms) : std::string("-"); };
  return StrCat("ROW key=", key, " rev=", r.revision, " size=", r.size, " worm_until=",
                instant(r.worm_until_ms), " expires=", instant(r.expires_ms));
}

namespace {

// The options of KEY PUT and KEY BLOB SET that reach the replicated command.
template <typename T>  // KeyPut, KeyBlobSet
void SetWriteOptions(const T& c, proto::Put* put) {
  if (c.worm && c.worm->kind == sp::Worm::Kind::kTtl) put->set_worm_ttl_ms(c.worm->ttl_ms);
  if (c.worm && c.worm->kind == sp::Worm::Kind::kExpires) {
    put->set_worm_expires_ms(c.worm->expires_ms);
  }
  if (c.expire && c.expire->kind == sp::Expiry::Kind::kTtl) put->set_expire_ttl_ms(c.expire->ttl_ms);
  if (c.expire && c.expire->kind == sp::Expiry::Kind::kAt) put->set_expire_at_ms(c.expire->at_ms);
  if (c.if_rev) put->set_if_rev(*c.if_rev);
}

// Which object a table's commands go to, as this node last applied it.
std::string ObjectOfTable(storage::Store& store, const std::string& table) {
  absl::StatusOr<storage::TableState> st = store.LoadTableState(table);
  return StateMachine::ObjectOf(table, st.ok() ? st->group : "");
}

// A row command as the replicated one (inside a transaction, a read is a proto::Read).
template <typename T>
void BuildRowCommand(T& command, proto::Command* op) {
  op->set_table(std::string(command.key.table()));
  const std::string row(command.key.row());
  if constexpr (std::is_same_v<T, sp::KeyPut> || std::is_same_v<T, sp::KeyBlobSet>) {
    proto::Put* put = op->mutable_put();
    put->set_row(row);
    put->set_value(std::move(command.value));
    SetWriteOptions(command, put);
  } else if constexpr (std::is_same_v<T, sp::KeyDel>) {
    op->mutable_del()->set_row(row);
    if (command.if_rev) op->mutable_del()->set_if_rev(*command.if_rev);
  } else {
    op->mutable_read()->set_row(row);
    op->mutable_read()->set_kind(std::is_same_v<T, sp::KeyInfo>      ? proto::Read::INFO
                                 : std::is_same_v<T, sp::KeyBlobGet> ? proto::Read::BLOB
                                                                     : proto::Read::GET);
  }
}

}  // namespace

void Executor::Run(const CallPtr& call, const sp::KeyInfo& c) {
  auto rec = store_->GetRow(c.key.table(), c.key.row());
  if (!rec.ok()) return call->Warn(StrCat("internal error: ", rec.status().message()));
  const bool found = rec->has_value() && !storage::Expired(**rec, WallNowMs());
  call->reply.Line(found ? RowLine(c.key.full, **rec) : "NOT_FOUND");
  call->Ok();
}

std::optional<std::string> Executor::Build(Call&, sp::Txn& c, proto::Command* cmd) {
  // One consensus object holds the whole transaction: one table, or tables of one group. The
  // owner checks it again when it applies (the grouping may change meanwhile).
  const std::string first(std::visit([](auto& op) { return op.key.table(); }, c.ops.front()));
  const std::string object = ObjectOfTable(*store_, first);
  std::set<std::string> checked = {first};  // each table's object read once
  for (sp::TxnCommand& op : c.ops) {
    const std::string table(std::visit([](auto& o) { return o.key.table(); }, op));
    if (checked.insert(table).second && ObjectOfTable(*store_, table) != object) {
      return StrCat("transaction spans '", first, "' and '", table,
                    "', which are not in one group");
    }
    std::visit([&](auto& o) { BuildRowCommand(o, cmd->mutable_txn()->add_ops()); }, op);
  }
  cmd->set_table(first);  // routes the entry to the object's log
  return std::nullopt;
}

void Executor::AnswerReads(const CallPtr& call, std::vector<TxnRead> reads) {
  size_t bytes = 256;
  for (const TxnRead& r : reads) bytes += r.value.size() + r.key.size() + 160;
  auto shared = std::make_shared<std::vector<TxnRead>>(std::move(reads));
  Reserve(call, bytes, [call, shared] {
    for (const TxnRead& r : *shared) {
      if (r.kind == proto::Read::INFO) {
        call->reply.Line(r.row ? RowLine(r.key, *r.row) : "NOT_FOUND");
      } else if (r.kind == proto::Read::BLOB) {
        if (r.row) {
          call->reply.Blob(r.value);
        } else {
          call->reply.Line("EMPTY");
        }
      } else {
        call->reply.Line(r.row ? StrCat("VALUE:", r.value) : "NOT_FOUND");
      }
    }
    call->Ok();
  });
}

void Executor::ReadRow(const CallPtr& call, const sp::Key& key, bool blob, int attempt) {
  const std::string table(key.table());
  auto rec = store_->GetRow(table, key.row());
  if (!rec.ok()) return call->Warn(StrCat("internal error: ", rec.status().message()));
  if (!rec->has_value() || storage::Expired(**rec, WallNowMs())) {
    call->reply.Line(blob ? "EMPTY" : "NOT_FOUND");
    return call->Ok();
  }
  if (!blob && (*rec)->binary) return call->Warn("value is binary; use KEY BLOB GET");
  // The value's bytes are reserved in the connection's budget before they are read: the record
  // says how many. (Read again once the room is there: the row may have changed meanwhile.)
  const size_t bytes = (*rec)->size + key.full.size() + 128;
  if (call->reserved < bytes) {
    return Reserve(call, bytes,
                   [this, call, key, blob, attempt] { ReadRow(call, key, blob, attempt); });
  }
  auto value = store_->ReadValue(table, key.row(), **rec);
  // A concurrent overwrite can change a chunked value between its record and its chunks.
  if (absl::IsAborted(value.status()) && attempt < 5) return ReadRow(call, key, blob, attempt + 1);
  if (!value.ok()) return call->Warn(StrCat("internal error: ", value.status().message()));
  if (blob) {
    call->reply.Blob(*value);
  } else {
    call->reply.buffer().reserve(value->size() + 16);
    call->reply.Line(StrCat("VALUE:", *value));
  }
  call->Ok();
}

std::optional<std::string> Executor::Build(Call&, sp::KeyPut& c, proto::Command* cmd) {
  BuildRowCommand(c, cmd);
  return std::nullopt;
}

std::optional<std::string> Executor::Build(Call&, sp::KeyBlobSet& c, proto::Command* cmd) {
  BuildRowCommand(c, cmd);
  return std::nullopt;
}

std::optional<std::string> Executor::Build(Call&, sp::KeyDel& c, proto::Command* cmd) {
  BuildRowCommand(c, cmd);
  return std::nullopt;
}


}  // namespace atlas
