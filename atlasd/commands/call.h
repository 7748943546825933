// One socket command in progress, as the executor and its handlers (atlasd/commands/) see it.
// Internal to the executor: included by executor.cc and the handler files only.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "absl/container/flat_hash_set.h"
#include "absl/synchronization/mutex.h"
#include "atlasd/executor.h"
#include "socketproto/command.h"
#include "socketproto/formatter.h"
#include "socketproto/server.h"
#include "storage/records.h"

namespace atlas {

// This node's clock, which decides for its readers when a row has expired (docs/protocol.md
// §Expiring rows).
inline int64_t WallNowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// KEY INFO's answer for a row that exists (and TABLE DUMP's line before each value).
std::string RowLine(std::string_view key, const storage::RowRecord& r);

// What the executor keeps per connection, in its SessionContext.
struct Executor::ConnectionState {
  absl::Mutex mu;
  // The tables it read with the backup right, so that each is logged once.
  absl::flat_hash_set<std::string> audited ABSL_GUARDED_BY(mu);
  // Its table dump in progress (atlasd/commands/dump.cc): one at a time.
  std::optional<DumpSnapshot> dump ABSL_GUARDED_BY(mu);
};

// Owned by shared pointers: the handler's callbacks (read barrier, replication, cluster, reply
// budget) keep it alive until Finish, which runs exactly once.
struct Executor::Call {
  socketproto::Request request;
  std::optional<std::string> principal;
  bool admin = false;
  bool backup = false;  // a backup-users (or admin-users) principal: may read every table
  uint64_t connection_id = 0;
  std::shared_ptr<ConnectionState> connection;
  std::shared_ptr<socketproto::OutputStream> stream;  // the connection's (WATCH)
  std::shared_ptr<socketproto::ReplyBudget> budget;   // the connection's reply memory
  size_t reserved = 0;                                // bytes this call holds in `budget`
  // The table's ACL as the command's access check loaded it (commands that check one).
  std::optional<storage::TableAcl> acl;
  std::function<void(socketproto::Reply)> done;
  socketproto::Reply reply;
  CommandMetrics* metrics = nullptr;
  std::chrono::steady_clock::time_point started;

  void Finish() {
    reply.set_reserved(reserved);
    if (metrics) {
      metrics->Observe(request.command.index(), std::chrono::steady_clock::now() - started,
                       reply.failed());
    }
    done(std::move(reply));
  }
  void Warn(std::string_view msg) {
    reply.Warn(msg);
    Finish();
  }
  void Ok() {
    reply.Ok();
    Finish();
  }
};

}  // namespace atlas
