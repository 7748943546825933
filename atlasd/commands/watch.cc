// WATCH and UNWATCH: a table's row changes as they commit (docs/watch.md).
#include "atlasd/commands/call.h"
#include "atlasd/state_machine.h"
#include "socketproto/str.h"

namespace atlas {

namespace sp = socketproto;

void Executor::Run(const CallPtr& call, const sp::Watch& c) {
  const std::string& table = c.range.table;
  // After the read barrier: the revision includes every write acknowledged before WATCH.
  absl::StatusOr<RevisionRange> revs = TableRevisions(store_, table);
  if (!revs.ok()) return call->Warn(StrCat("internal error: ", revs.status().message()));
  uint64_t after = revs->latest;
  if (c.from) {
    if (*c.from > revs->latest) {
      return call->Warn(StrCat("revision ", *c.from, " is ahead of table '", table, "' (latest ",
                               revs->latest, ")"));
    }
    if (*c.from < revs->resumable_from) {
      return call->Warn(
          StrCat("revision ", *c.from, " compacted; latest snapshot is ", revs->resumable_from));
    }
    after = *c.from;
  }
  WatchHub::Spec spec;
  spec.table = table;
  spec.row_prefix = c.range.row_prefix;
  spec.after = after;
  spec.latest = revs->latest;
  spec.tag = call->request.id;
  spec.connection_id = call->connection_id;
  spec.principal = call->principal;
  spec.admin = call->admin;
  spec.stream = call->stream;
  spec.end = [call](std::optional<std::string> error) {
    if (error) return call->Warn(*error);
    call->Ok();
  };
  absl::Status s = options_.watch->Add(std::move(spec));
  if (!s.ok()) return call->Warn(ToStd(s.message()));
  // The hub ends the request (UNWATCH, disconnect, or an error).
}

void Executor::Run(const CallPtr& call, sp::SessionContext&, const sp::Unwatch& c) {
  // The UNWATCH's OK follows the watch's own final OK.
  if (options_.watch && options_.watch->Cancel(call->connection_id, c.id, [call] { call->Ok(); })) {
    return;
  }
  call->Warn(StrCat("no WATCH tagged '", c.id, "' on this connection"));
}

}  // namespace atlas
