// Executes the socket commands of docs/protocol.md §5 on this node: reads from the store after
// a read barrier, writes through the Replicator, cluster commands from the node's view of the
// cluster. Implements socketproto::CommandHandler.
//
// Thread-safe: Execute runs on session strands of any io thread.
#pragma once

#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "atlasd/cluster_view.h"
#include "atlasd/metrics.h"
#include "atlasd/replicator.h"
#include "atlasd/watch_hub.h"
#include "socketproto/server.h"
#include "storage/store.h"

namespace atlas {

enum class PrincipalMode { kAssume, kPeercred };

// How this node appears in NODE / QUORUM / TABLE replies.
struct NodeIdentity {
  uint64_t id = 1;
  std::string region = "local";
  std::string name;
  std::string addr = "127.0.0.1";
  int port = 7400;
  std::string version = "0.1.0";
};

struct ExecutorOptions {
  PrincipalMode principal_mode = PrincipalMode::kAssume;
  std::vector<std::string> admin_users;
  // Principals that may read every table (rows, ACLs, row counts) for backups, whatever its
  // ACL; each table read only by this right is logged once per connection ("backup read").
  // admin-users have this right too (they could grant it to themselves anyway).
  std::vector<std::string> backup_users;
  // SCAN without LIMIT returns at most this many keys (the reply is built in memory).
  uint64_t scan_keys_max = 1'000'000;
  // Runs a read on a client-serving thread once its read barrier passed. The barrier completes
  // on the replication thread, which must not be held up by large reads. Default: inline.
  std::function<void(std::function<void()>)> post_read;
  // The cluster for NODE / QUORUM / TABLE MOVE; null: this node is the whole cluster.
  ClusterView* cluster = nullptr;
  // Where each command's latency and outcome go (null: nowhere). Indexed as CommandNames().
  CommandMetrics* metrics = nullptr;
  // WATCH delivery (null: WATCH is refused).
  WatchHub* watch = nullptr;
};

// The name of each socket command, in the order of socketproto::Command's alternatives.
std::vector<std::string> CommandNames();

class Executor final : public socketproto::CommandHandler {
 public:
  Executor(storage::Store* store, Replicator* replicator, NodeIdentity self,
           ExecutorOptions options);

  void Execute(socketproto::Request request, socketproto::SessionContext& ctx,
               std::function<void(socketproto::Reply)> done) override;

 private:
  struct Call;  // one request in progress
  struct BackupAudit;
  void Read(std::shared_ptr<Call> call);
  void Write(std::shared_ptr<Call> call, proto::Command cmd);
  // TOKEN CREATE / LIST / REVOKE.
  void Tokens(std::shared_ptr<Call> call);
  // KEY GET / KEY BLOB GET after the ACL check: reserves the value's size, then reads it.
  void ReadRow(std::shared_ptr<Call> call, const socketproto::Key& key, bool blob, int attempt);
  // Runs `then` once `bytes` of the connection's reply budget are the call's.
  void Reserve(std::shared_ptr<Call> call, size_t bytes, std::function<void()> then);
  // The largest reply listing `keys` keys.
  static size_t KeysReplyBytes(uint64_t keys);

  bool IsAdmin(const std::optional<std::string>& principal) const;
  bool IsBackup(const std::optional<std::string>& principal) const;
  // READ per the table's ACL, or by the backup right (audited).
  bool MayRead(Call& call, const storage::TableAcl& acl, const std::string& table);
  // The principal a command acts as: its own PRINCIPAL option or the connection's.
  std::optional<std::string> EffectivePrincipal(const socketproto::SessionContext& ctx) const;
  absl::StatusOr<storage::TableAcl> LoadAcl(const std::string& table);
  absl::StatusOr<storage::TableState> LoadTableState(const std::string& table);
  std::string NodeLine(const NodeView& node, bool detailed);
  std::vector<NodeView> Nodes();
  bool RegionHasMembers(const std::string& region);
  uint64_t OwnedTables();
  // Calls fn(table) for each table with replicated state on this node, in byte order, after
  // `after` if given, until fn returns false.
  absl::Status ForEachTable(const std::optional<std::string>& after,
                            const std::function<bool(std::string_view)>& fn);

  storage::Store* store_;
  Replicator* replicator_;
  NodeIdentity self_;
  ExecutorOptions options_;
  std::chrono::steady_clock::time_point started_;
};

}  // namespace atlas
