// SCAN, COUNT, SAMPLE: keys of a table or row prefix, after the READ check (shared/spec/protocol.md
// §5). Replies that list keys reserve their size in the connection's budget first.
#include <algorithm>
#include <random>

#include "atlasd/commands/call.h"
#include "socketproto/str.h"

namespace atlas {

namespace sp = socketproto;

namespace {

// Sends `KEYS:<n>` and the keys.
void ReplyKeys(sp::Reply& reply, const std::vector<std::string>& keys) {
  reply.Line(StrCat("KEYS:", keys.size()));
  for (const auto& k : keys) reply.Line(k);
}

}  // namespace

void Executor::Run(const CallPtr& call, const sp::Scan& c) {
  const std::string& table = c.range.table;
  // AFTER may name a key of another table, which then either precedes the whole range (no
  // effect) or follows it (nothing left).
  std::optional<std::string> after_row;
  if (c.after) {
    std::string_view a = *c.after;
    std::string_view at = a.substr(0, a.find('.'));
    if (at > table) {
      call->reply.Line("KEYS:0");
      return call->Ok();
    }
    if (at == table) after_row = std::string(a.substr(a.find('.') + 1));
  }
  uint64_t limit = c.limit.value_or(options_.scan_keys_max);
  // Up to `limit` keys: room for them first (a SCAN without LIMIT runs alone).
  if (!call->reserved) return ReserveThenResume(call, KeysReplyBytes(limit));
  std::vector<std::string> keys;
  bool truncated = false;
  absl::Status s =
      store_->ForEachRow(table, c.range.row_prefix, after_row, [&](std::string_view row) {
        if (keys.size() >= limit) {
          truncated = true;
          return false;
        }
        keys.push_back(StrCat(table, ".", row));
        return true;
      }, WallNowMs());
  if (!s.ok()) return call->Warn(StrCat("internal error: ", s.message()));
  if (truncated && !c.limit) {
    return call->Warn(StrCat("scan too large: more than ", options_.scan_keys_max,
                             " keys; page with LIMIT <n> AFTER <key>"));
  }
  ReplyKeys(call->reply, keys);
  call->Ok();
}

void Executor::Run(const CallPtr& call, const sp::Count& c) {
  uint64_t n = 0;
  absl::Status s =
      store_->ForEachRow(c.range.table, c.range.row_prefix, std::nullopt, [&](std::string_view) {
        ++n;
        return true;
      }, WallNowMs());
  if (!s.ok()) return call->Warn(StrCat("internal error: ", s.message()));
  call->reply.Line(StrCat("COUNT:", n));
  call->Ok();
}

void Executor::Run(const CallPtr& call, const sp::Sample& c) {
  const std::string& table = c.range.table;
  uint64_t n = std::min<uint64_t>(c.n, options_.scan_keys_max);
  if (!call->reserved) return ReserveThenResume(call, KeysReplyBytes(n));
  // Reservoir sampling (Algorithm R): one pass, every key equally likely, O(n) memory.
  thread_local std::mt19937_64 rng{std::random_device{}()};
  std::vector<std::string> reservoir;
  uint64_t seen = 0;
  absl::Status s =
      store_->ForEachRow(table, c.range.row_prefix, std::nullopt, [&](std::string_view row) {
        ++seen;
        if (reservoir.size() < n) {
          reservoir.push_back(StrCat(table, ".", row));
        } else if (n > 0) {
          uint64_t j = rng() % seen;
          if (j < n) reservoir[j] = StrCat(table, ".", row);
        }
        return true;
      }, WallNowMs());
  if (!s.ok()) return call->Warn(StrCat("internal error: ", s.message()));
  std::sort(reservoir.begin(), reservoir.end());
  ReplyKeys(call->reply, reservoir);
  call->Ok();
}

}  // namespace atlas
