// Executes the socket commands of shared/spec/protocol.md §5 on this node. A command's row in the
// command table (socketproto/command_table.h) decides its path: session commands are answered
// at once; writes are proposed through the Replicator; reads, WATCH and TABLE MOVE first pass
// their table's read barrier; cluster commands answer from the node's view of the cluster.
// Who may run each command is one rule per command (kRules, executor.cc), checked before its
// handler runs; the handlers are in atlasd/commands/, one file per family of commands.
// Implements socketproto::CommandHandler.
//
// Thread-safe: Execute runs on session strands of any io thread.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "atlasd/acl_cache.h"
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
  // The cluster for NODE / QUORUM / TABLE MOVE; null: this node is the whole cluster.
  ClusterView* cluster = nullptr;
  // Where each command's latency and outcome go (null: nowhere). Indexed as CommandNames().
  CommandMetrics* metrics = nullptr;
  // WATCH delivery (null: WATCH is refused).
  WatchHub* watch = nullptr;
  // Tables' ACLs in memory, kept coherent by the node (NodeHostOptions::acls); null: each
  // check reads the store.
  AclCache* acls = nullptr;
};

// The name of each socket command, in the order of socketproto::Command's alternatives (the
// command table's): the metrics' `command` label.
std::vector<std::string> CommandNames();

class Executor final : public socketproto::CommandHandler {
 public:
  Executor(storage::Store* store, Replicator* replicator, NodeIdentity self,
           ExecutorOptions options);

  void Execute(socketproto::Request request, socketproto::SessionContext& ctx,
               std::function<void(socketproto::Reply)> done) override;

 private:
  struct Call;  // one request in progress (atlasd/commands/call.h)
  using CallPtr = std::shared_ptr<Call>;
  // A snapshot of the store that the pages of one TABLE DUMP read, and the table's revision in it.
  struct DumpSnapshot {
    std::string table;
    uint64_t revision = 0;
    std::shared_ptr<storage::Reader> reader;
  };
  struct ConnectionState;

  // The executor's paths (executor.cc). Start takes a command down the path of its kind;
  // Resume runs a command's checks and handler, at once or after its read barrier (again
  // after a reply budget reservation).
  template <typename T>
  void Start(const CallPtr& call, socketproto::SessionContext& ctx, T& command);
  void Resume(const CallPtr& call);
  template <typename T>
  void RunChecked(const CallPtr& call, const T& command);
  // Settles who the call acts as (the command's own PRINCIPAL option, or the connection's
  // principal) and with which rights. False (and the call answered) when that is refused.
  bool Authenticate(Call& call, socketproto::SessionContext& ctx);
  // The command's access rule (kRules) for `table`; false (and the call answered) if denied.
  bool Permitted(Call& call, const std::string& table);
  // `key`: the one row the command reads ("table.row"), or empty (Replicator::ReadBarrier).
  void AfterBarrier(const CallPtr& call, const std::string& table, const std::string& key);
  template <typename T>
  void Propose(const CallPtr& call, T& command);
  void Write(const CallPtr& call, proto::Command cmd);
  // Runs `then` once `bytes` of the connection's reply budget are the call's.
  void Reserve(const CallPtr& call, size_t bytes, std::function<void()> then);
  // Reserves `bytes`, then runs the command again (checks included) with them.
  void ReserveThenResume(const CallPtr& call, size_t bytes);
  // The largest reply listing `keys` keys.
  static size_t KeysReplyBytes(uint64_t keys);

  // The handlers, one overload per alternative of socketproto::Command, by family in
  // atlasd/commands/<family>.cc (a command without one does not compile). Session commands
  // get the connection's context; writes fill in the replicated command, or return why it is
  // refused; the others answer `call`, at once or later, after the command's access check.
  // keys.cc
  void Run(const CallPtr& call, const socketproto::KeyGet& c);
  void Run(const CallPtr& call, const socketproto::KeyBlobGet& c);
  std::optional<std::string> Build(Call& call, socketproto::KeyPut& c, proto::Command* cmd);
  std::optional<std::string> Build(Call& call, socketproto::KeyBlobSet& c, proto::Command* cmd);
  std::optional<std::string> Build(Call& call, socketproto::KeyDel& c, proto::Command* cmd);
  void Run(const CallPtr& call, const socketproto::KeyInfo& c);
  std::optional<std::string> Build(Call& call, socketproto::Txn& c, proto::Command* cmd);
  // A transaction's read frames, then OK, once the reply budget has room for them.
  void AnswerReads(const CallPtr& call, std::vector<TxnRead> reads);
  // KEY GET / KEY BLOB GET: reserves the value's size, then reads it.
  void ReadRow(const CallPtr& call, const socketproto::Key& key, bool blob, int attempt);
  // scans.cc
  void Run(const CallPtr& call, const socketproto::Scan& c);
  void Run(const CallPtr& call, const socketproto::Count& c);
  void Run(const CallPtr& call, const socketproto::Sample& c);
  // acl.cc
  void Run(const CallPtr& call, socketproto::SessionContext& ctx,
           const socketproto::PrincipalAssume& c);
  void Run(const CallPtr& call, socketproto::SessionContext& ctx,
           const socketproto::PrincipalWhoami& c);
  std::optional<std::string> Build(Call& call, socketproto::AclGrant& c, proto::Command* cmd);
  std::optional<std::string> Build(Call& call, socketproto::AclRevoke& c, proto::Command* cmd);
  void Run(const CallPtr& call, const socketproto::AclList& c);
  // node.cc
  void Run(const CallPtr& call, const socketproto::NodeList& c);
  void Run(const CallPtr& call, const socketproto::NodeInfo& c);
  void Run(const CallPtr& call, const socketproto::NodePing& c);
  void Run(const CallPtr& call, const socketproto::NodeLeave& c);
  void Run(const CallPtr& call, const socketproto::QuorumInfo& c);
  void Run(const CallPtr& call, const socketproto::QuorumSet& c);
  std::string NodeLine(const NodeView& node, bool detailed);
  uint64_t OwnedTables();
  // table.cc
  void Run(const CallPtr& call, const socketproto::TableInfo& c);
  void Run(const CallPtr& call, const socketproto::TableMove& c);
  std::optional<std::string> Build(Call& call, socketproto::TablePin& c, proto::Command* cmd);
  std::optional<std::string> Build(Call& call, socketproto::TableGroup& c, proto::Command* cmd);
  std::optional<std::string> Build(Call& call, socketproto::TableReads& c, proto::Command* cmd);
  void Run(const CallPtr& call, const socketproto::TableList& c);
  bool RegionHasMembers(const std::string& region);
  // dump.cc
  void Run(const CallPtr& call, const socketproto::TableDump& c);
  void DumpPage(const CallPtr& call, const socketproto::TableDump& c, const DumpSnapshot& snap);
  // watch.cc
  void Run(const CallPtr& call, const socketproto::Watch& c);
  void Run(const CallPtr& call, socketproto::SessionContext& ctx, const socketproto::Unwatch& c);
  // token.cc
  void Run(const CallPtr& call, const socketproto::TokenCreate& c);
  void Run(const CallPtr& call, const socketproto::TokenList& c);
  void Run(const CallPtr& call, const socketproto::TokenRevoke& c);
  void Run(const CallPtr& call, const socketproto::CaStatus& c);
  void Run(const CallPtr& call, const socketproto::CaRotate& c);
  void Run(const CallPtr& call, const socketproto::NodeStatus& c);

  // What the handlers share (executor.cc).
  bool IsAdmin(const std::optional<std::string>& principal) const;
  bool IsBackup(const std::optional<std::string>& principal) const;
  // READ per the table's ACL, or by the backup right (audited).
  bool MayRead(Call& call, const storage::TableAcl& acl, const std::string& table);
  absl::StatusOr<storage::TableAcl> LoadAcl(const std::string& table);  // through options_.acls
  absl::StatusOr<storage::TableAcl> ReadAcl(const std::string& table);  // from the store
  absl::StatusOr<storage::TableState> LoadTableState(const std::string& table);
  std::vector<NodeView> Nodes();
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
