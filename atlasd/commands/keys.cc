// KEY GET, KEY PUT (KEY SET), KEY DEL, KEY BLOB SET, KEY BLOB GET (shared/spec/protocol.md §5),
// KEY INFO and IF REV (shared/spec/transactions.md §1-2).
#include "atlasd/commands/call.h"
#include "socketproto/str.h"

namespace atlas {

namespace sp = socketproto;

void Executor::Run(const CallPtr& call, const sp::KeyGet& c) {
  ReadRow(call, c.key, /*blob=*/false, 0);
}

void Executor::Run(const CallPtr& call, const sp::KeyBlobGet& c) {
  ReadRow(call, c.key, /*blob=*/true, 0);
}

void Executor::Run(const CallPtr& call, const sp::KeyInfo& c) {
  auto rec = store_->GetRow(c.key.table(), c.key.row());
  if (!rec.ok()) return call->Warn(StrCat("internal error: ", rec.status().message()));
  if (!rec->has_value()) {
    call->reply.Line("NOT_FOUND");
    return call->Ok();
  }
  const storage::RowRecord& r = **rec;
  auto instant = [](int64_t ms) { return ms > 0 ? sp::FormatRfc3339Ms(ms) : std::string("-"); };
  call->reply.Line(StrCat("ROW key=", c.key.full, " rev=", r.revision, " size=", r.size,
                          " worm_until=", instant(r.worm_until_ms), " expires=",
                          instant(r.expires_ms)));
  call->Ok();
}

void Executor::ReadRow(const CallPtr& call, const sp::Key& key, bool blob, int attempt) {
  const std::string table(key.table());
  auto rec = store_->GetRow(table, key.row());
  if (!rec.ok()) return call->Warn(StrCat("internal error: ", rec.status().message()));
  if (!rec->has_value()) {
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
  cmd->set_table(std::string(c.key.table()));
  proto::Put* put = cmd->mutable_put();
  put->set_row(std::string(c.key.row()));
  put->set_value(std::move(c.value));
  SetWriteOptions(c.worm, c.if_rev, put);
  return std::nullopt;
}

std::optional<std::string> Executor::Build(Call&, sp::KeyBlobSet& c, proto::Command* cmd) {
  cmd->set_table(std::string(c.key.table()));
  proto::Put* put = cmd->mutable_put();
  put->set_row(std::string(c.key.row()));
  put->set_value(std::move(c.value));
  SetWriteOptions(c.worm, c.if_rev, put);
  return std::nullopt;
}

std::optional<std::string> Executor::Build(Call&, sp::KeyDel& c, proto::Command* cmd) {
  cmd->set_table(std::string(c.key.table()));
  cmd->mutable_del()->set_row(std::string(c.key.row()));
  if (c.if_rev) cmd->mutable_del()->set_if_rev(*c.if_rev);
  return std::nullopt;
}

void Executor::SetWriteOptions(const std::optional<sp::Worm>& worm,
                               std::optional<uint64_t> if_rev, proto::Put* put) {
  if (worm && worm->kind == sp::Worm::Kind::kTtl) put->set_worm_ttl_ms(worm->ttl_ms);
  if (worm && worm->kind == sp::Worm::Kind::kExpires) put->set_worm_expires_ms(worm->expires_ms);
  if (if_rev) put->set_if_rev(*if_rev);
}

}  // namespace atlas
