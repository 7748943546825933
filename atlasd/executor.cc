// The executor's machinery: each command's path by its kind, its access rule, the read
// barrier, the write path, reply budget reservations, and what the handlers share. The
// handlers themselves are in atlasd/commands/.
#include "atlasd/executor.h"

#include <algorithm>
#include <array>
#include <type_traits>

#include "atlasd/acl.h"
#include "atlasd/commands/call.h"
#include "atlasd/logging.h"
#include "consensus/check.h"
#include "socketproto/command_table.h"
#include "socketproto/str.h"
#include "storage/keys.h"

namespace atlas {

namespace sp = socketproto;

namespace {

// Who may run a command. Checked after the read barrier (for commands that pass one) and
// before the handler, so a read is checked against the ACL in force.
enum class Access {
  kAnyone,            // the connection's own state, or this node's view of the cluster
  kRead,              // READ on the table, or the backup right (audited)
  kReadLive,          // READ on the table: the backup right serves dumps, not WATCH streams
  kReadOrAdminister,  // READ (or the backup right), or the right to administer the table
  kAdminister,        // OWNER on the table, or an admin user
  kClusterAdmin,      // admin-users, when configured (else the socket is the trust boundary)
  kAtApply,           // decided by the state machine on every replica when the command applies
};

struct Rule {
  size_t index;  // the alternative of socketproto::Command
  Access access;
  // What a refusal names: `permission denied ...: <op> on <table>` (for kAtApply: what the
  // state machine names).
  std::string_view op;
};

template <typename T>
constexpr size_t kIndex = sp::kCommandIndex<T>;

// In the order of socketproto::Command's alternatives, like the command table.
constexpr std::array<Rule, sp::kCommands.size()> kRules = {{
    {kIndex<sp::KeyGet>, Access::kRead, "READ"},
    {kIndex<sp::KeyPut>, Access::kAtApply, "WRITE"},
    {kIndex<sp::KeyDel>, Access::kAtApply, "WRITE"},
    {kIndex<sp::KeyBlobSet>, Access::kAtApply, "WRITE"},
    {kIndex<sp::KeyBlobGet>, Access::kRead, "READ"},
    {kIndex<sp::KeyInfo>, Access::kRead, "READ"},
    {kIndex<sp::Txn>, Access::kAtApply, "WRITE"},  // each command's own, when applied
    {kIndex<sp::Scan>, Access::kRead, "READ"},
    {kIndex<sp::Count>, Access::kRead, "READ"},
    {kIndex<sp::Sample>, Access::kRead, "READ"},
    {kIndex<sp::PrincipalAssume>, Access::kAnyone, ""},  // peercred: its handler decides
    {kIndex<sp::PrincipalWhoami>, Access::kAnyone, ""},
    {kIndex<sp::AclGrant>, Access::kAtApply, "ACL GRANT"},
    {kIndex<sp::AclRevoke>, Access::kAtApply, "ACL REVOKE"},
    {kIndex<sp::AclList>, Access::kReadOrAdminister, "ACL LIST"},
    {kIndex<sp::NodeList>, Access::kAnyone, ""},
    {kIndex<sp::NodeInfo>, Access::kAnyone, ""},
    {kIndex<sp::NodePing>, Access::kAnyone, ""},
    {kIndex<sp::NodeLeave>, Access::kClusterAdmin, "NODE LEAVE"},
    {kIndex<sp::QuorumInfo>, Access::kAnyone, ""},
    {kIndex<sp::QuorumSet>, Access::kClusterAdmin, "QUORUM SET"},
    {kIndex<sp::TableInfo>, Access::kAnyone, ""},  // the row count needs READ: see its handler
    {kIndex<sp::TableMove>, Access::kAdminister, "TABLE MOVE"},
    {kIndex<sp::TablePin>, Access::kAtApply, "TABLE placement"},
    {kIndex<sp::TableGroup>, Access::kAtApply, "TABLE placement"},
    {kIndex<sp::TableReads>, Access::kAtApply, "TABLE placement"},
    {kIndex<sp::TableList>, Access::kAnyone, ""},  // names are not access controlled
    {kIndex<sp::TableDump>, Access::kRead, "READ"},
    {kIndex<sp::Watch>, Access::kReadLive, "READ"},
    {kIndex<sp::Unwatch>, Access::kAnyone, ""},  // the connection's own watches
    {kIndex<sp::TokenCreate>, Access::kClusterAdmin, "TOKEN"},
    {kIndex<sp::TokenList>, Access::kClusterAdmin, "TOKEN"},
    {kIndex<sp::TokenRevoke>, Access::kClusterAdmin, "TOKEN"},
    {kIndex<sp::NodeStatus>, Access::kAnyone, ""},
    {kIndex<sp::CaStatus>, Access::kAnyone, ""},  // fingerprints are public (every handshake)
    {kIndex<sp::CaRotate>, Access::kClusterAdmin, "CA ROTATE"},
}};

constexpr bool RulesInVariantOrder() {
  for (size_t i = 0; i < kRules.size(); ++i) {
    if (kRules[i].index != i) return false;
  }
  return true;
}
static_assert(RulesInVariantOrder(), "kRules lists socketproto::Command's alternatives in order");

// Writes are decided where they apply; every other command's rule is checked here.
constexpr bool WritesCheckedAtApply() {
  for (size_t i = 0; i < kRules.size(); ++i) {
    if ((sp::kCommands[i].kind == sp::CommandKind::kWrite) !=
        (kRules[i].access == Access::kAtApply)) {
      return false;
    }
  }
  return true;
}
static_assert(WritesCheckedAtApply(),
              "a write's access is the state machine's, and only a write's");

// Tables logged per connection under the backup right; after that, reads go unlogged (a
// connection that reads that many tables has been on the record for a while).
constexpr size_t kAuditTablesMax = 100'000;

// A command that names a table: by a key, a range, or the table itself.
template <typename T>
concept HasKey = requires(const T& c) {
  c.key.table();
};
template <typename T>
concept HasRange = requires(const T& c) {
  c.range.table;
};
template <typename T>
concept HasTable = requires(const T& c) {
  c.table;
};
template <typename T>
concept NamesTable = HasKey<T> || HasRange<T> || HasTable<T>;

template <NamesTable T>
std::string TableOf(const T& c) {
  if constexpr (HasKey<T>) {
    return std::string(c.key.table());
  } else if constexpr (HasRange<T>) {
    return c.range.table;
  } else {
    return c.table;
  }
}

// The one row a read returns, when it returns no more ("table.row"; Replicator::ReadBarrier):
// a lease holder's barrier then waits only for writes that may change it. KEY GET and
// KEY INFO show a row's own record; everything else reads more (a scan, a blob's chunks).
template <typename T>
std::string RowKeyOf(const T& c) {
  if constexpr (std::is_same_v<T, sp::KeyGet> || std::is_same_v<T, sp::KeyInfo>) {
    return c.key.full;
  } else {
    return {};
  }
}

// Reads and WATCH see every write acknowledged before them; TABLE MOVE checks the ACL in force.
template <typename T>
constexpr bool NeedsBarrier() {
  constexpr sp::CommandKind kind = sp::InfoOf<T>().kind;
  if constexpr (kind == sp::CommandKind::kAdmin) return NamesTable<T>;
  return kind == sp::CommandKind::kRead || kind == sp::CommandKind::kStream;
}

}  // namespace

std::vector<std::string> CommandNames() {
  std::vector<std::string> names;
  for (const sp::CommandInfo& c : sp::kCommands) names.emplace_back(c.name);
  return names;
}

Executor::Executor(storage::Store* store, Replicator* replicator, NodeIdentity self,
                   ExecutorOptions options)
    : store_(store),
      replicator_(replicator),
      self_(std::move(self)),
      options_(std::move(options)),
      started_(std::chrono::steady_clock::now()) {}

void Executor::Execute(sp::Request request, sp::SessionContext& ctx,
                       std::function<void(sp::Reply)> done) {
  if (options_.principal_mode == PrincipalMode::kPeercred && !ctx.principal &&
      !ctx.peer_user.empty()) {
    ctx.principal = ctx.peer_user;  // peercred: the Unix user is who you are
  }
  auto call = std::make_shared<Call>();
  call->metrics = options_.metrics;
  call->started = std::chrono::steady_clock::now();
  call->reply = sp::Reply(request.id);
  call->done = std::move(done);
  call->principal = ctx.principal;
  call->connection_id = ctx.connection_id;
  call->stream = ctx.stream;
  call->budget = ctx.budget;
  call->request = std::move(request);
  std::visit([&](auto& command) { Start(call, ctx, command); }, call->request.command);
}

template <typename T>
void Executor::Start(const CallPtr& call, sp::SessionContext& ctx, T& command) {
  constexpr sp::CommandInfo kInfo = sp::InfoOf<T>();
  if constexpr (kInfo.kind == sp::CommandKind::kSession) {
    return Run(call, ctx, command);  // on the session's strand, while `ctx` is valid
  } else {
    if (!Authenticate(*call, ctx)) return;
    // A node whose clock is off serves no data (docs/consensus.md §Time); the cluster commands
    // stay, so that operators can see why.
    if (kInfo.serves_data && options_.cluster) {
      if (std::optional<std::string> problem = options_.cluster->ServingProblem()) {
        return call->Warn(*problem);
      }
    }
    if constexpr (kInfo.kind == sp::CommandKind::kWrite) {
      return Propose(call, command);
    } else if constexpr (NeedsBarrier<T>()) {
      // A dump's later pages read the snapshot its first page took after the barrier.
      if constexpr (std::is_same_v<T, sp::TableDump>) {
        if (command.at) return RunChecked(call, command);
      }
      return AfterBarrier(call, TableOf(command), RowKeyOf(command));
    } else {
      // Cluster commands report this node's view; they need no read barrier (and must work
      // when quorums do not).
      return RunChecked(call, command);
    }
  }
}

void Executor::Resume(const CallPtr& call) {
  std::visit(
      [&](const auto& command) {
        using T = std::decay_t<decltype(command)>;
        constexpr sp::CommandKind kind = sp::InfoOf<T>().kind;
        if constexpr (kind == sp::CommandKind::kSession || kind == sp::CommandKind::kWrite) {
          ATLAS_CHECK(false);  // session commands and writes run from Start only
        } else {
          RunChecked(call, command);
        }
      },
      call->request.command);
}

template <typename T>
void Executor::RunChecked(const CallPtr& call, const T& command) {
  if constexpr (sp::InfoOf<T>().kind == sp::CommandKind::kStream) {
    if (options_.watch == nullptr || !call->stream) {
      return call->Warn(StrCat(sp::InfoOf<T>().name, " is not available here"));
    }
  }
  std::string table;
  if constexpr (NamesTable<T>) table = TableOf(command);
  if (!Permitted(*call, table)) return;
  Run(call, command);
}

bool Executor::Authenticate(Call& call, sp::SessionContext& ctx) {
  if (auto* put = std::get_if<sp::KeyPut>(&call.request.command); put && put->principal) {
    // Acting as another principal for one command follows the PRINCIPAL ASSUME rules.
    if (options_.principal_mode == PrincipalMode::kPeercred && *put->principal != ctx.peer_user &&
        !IsAdmin(ctx.peer_user)) {
      call.Warn(StrCat("permission denied for principal '", ctx.peer_user,
                       "': KEY PUT PRINCIPAL (principal-mode peercred: only admin-users "
                       "may act as another principal)"));
      return false;
    }
    call.principal = put->principal;
  }
  call.admin = IsAdmin(call.principal);
  call.backup = call.admin || IsBackup(call.principal);
  // Per-connection state lives in the session's context, which outlives this call.
  if (!ctx.handler_state) ctx.handler_state = std::make_shared<ConnectionState>();
  call.connection = std::static_pointer_cast<ConnectionState>(ctx.handler_state);
  return true;
}

bool Executor::Permitted(Call& call, const std::string& table) {
  const Rule& rule = kRules[call.request.command.index()];
  if (rule.access == Access::kAnyone || rule.access == Access::kAtApply) return true;
  if (rule.access == Access::kClusterAdmin) {
    // The cluster's own authority: with admin-users set, only they have it.
    if (options_.admin_users.empty() || call.admin) return true;
    call.Warn(PermissionDenied(call.principal, rule.op, "atlas.nodes"));
    return false;
  }
  absl::StatusOr<storage::TableAcl> acl = LoadAcl(table);
  if (!acl.ok()) {
    call.Warn(StrCat("internal error: ", acl.status().message()));
    return false;
  }
  bool allowed = false;
  switch (rule.access) {
    case Access::kRead:
      allowed = MayRead(call, *acl, table);
      break;
    case Access::kReadLive:
      allowed = AclAllows(*acl, call.principal, call.admin, AclOp::kRead);
      break;
    case Access::kReadOrAdminister:
      allowed = AclAllows(*acl, call.principal, call.admin, AclOp::kAdminister) ||
                MayRead(call, *acl, table);
      break;
    case Access::kAdminister:
      allowed = AclAllows(*acl, call.principal, call.admin, AclOp::kAdminister);
      break;
    default:
      break;
  }
  if (!allowed) {
    call.Warn(PermissionDenied(call.principal, rule.op, table));
    return false;
  }
  call.acl = *std::move(acl);
  return true;
}

void Executor::AfterBarrier(const CallPtr& call, const std::string& table,
                            const std::string& key) {
  // Answered here, on the thread that parsed it, when the node reads the table from its own
  // applied state (docs/consensus.md §Reads without a round).
  if (replicator_->ReadsLocally(table)) return Resume(call);
  replicator_->ReadBarrier(table, key, [this, call](absl::Status s) {
    if (!s.ok()) return call->Warn(ToStd(s.message()));
    // The barrier completes on the replication thread, which large reads must not hold up:
    // the read goes on on the thread that serves its connection.
    if (call->stream) {
      call->stream->Post([this, call] { Resume(call); });
    } else {
      Resume(call);
    }
  });
}

template <typename T>
void Executor::Propose(const CallPtr& call, T& command) {
  proto::Command cmd;
  cmd.set_principal(call->principal.value_or(""));
  cmd.set_admin(call->admin);
  if (std::optional<std::string> refusal = Build(*call, command, &cmd)) {
    return call->Warn(*refusal);
  }
  if (sp::IsReservedTable(cmd.table())) {
    return call->Warn(StrCat("table '", cmd.table(), "' is reserved"));
  }
  Write(call, std::move(cmd));
}

void Executor::Write(const CallPtr& call, proto::Command cmd) {
  replicator_->Propose(std::move(cmd), [this, call](ApplyResult r) {
    if (!r.ok) return call->Warn(r.error);
    if (!r.reads.empty()) return AnswerReads(call, std::move(r.reads));
    call->Ok();
  });
}

size_t Executor::KeysReplyBytes(uint64_t keys) {
  // A line per key: "[ID:<64>] " + key + CRLF; plus the header and OK.
  constexpr uint64_t kLineBytesMax = 74 + sp::kMaxKeyBytes + 2;
  return static_cast<size_t>(std::min<uint64_t>(keys, uint64_t{1} << 32) * kLineBytesMax + 256);
}

void Executor::Reserve(const CallPtr& call, size_t bytes, std::function<void()> then) {
  if (!call->budget || bytes <= call->reserved) {
    call->reserved = std::max(call->reserved, bytes);
    return then();
  }
  // A call reserves once, or grows its reservation (a value that grew while it waited).
  call->budget->Reserve(bytes - call->reserved, [call, bytes, then = std::move(then)](bool ok) {
    if (!ok) return call->Warn("connection closed");  // nobody reads this reply
    call->reserved = bytes;
    then();
  });
}

void Executor::ReserveThenResume(const CallPtr& call, size_t bytes) {
  Reserve(call, bytes, [this, call] { Resume(call); });
}

bool Executor::IsAdmin(const std::optional<std::string>& principal) const {
  return principal && std::find(options_.admin_users.begin(), options_.admin_users.end(),
                                *principal) != options_.admin_users.end();
}

bool Executor::IsBackup(const std::optional<std::string>& principal) const {
  return principal && std::find(options_.backup_users.begin(), options_.backup_users.end(),
                                *principal) != options_.backup_users.end();
}

bool Executor::MayRead(Call& call, const storage::TableAcl& acl, const std::string& table) {
  if (AclAllows(acl, call.principal, call.admin, AclOp::kRead)) return true;
  if (!call.backup) return false;
  // Allowed by the backup right alone: on the record, once per connection and table.
  bool first = false;
  {
    absl::MutexLock lock(&call.connection->mu);
    if (call.connection->audited.size() < kAuditTablesMax) {
      first = call.connection->audited.insert(table).second;
    }
  }
  if (first) {
    LogEvent(spdlog::level::info, "backup read",
             {{"principal", call.principal.value_or("")},
              {"table", table},
              {"connection", StrCat(call.connection_id)},
              {"right", call.admin ? "admin-users" : "backup-users"}});
  }
  return true;
}

absl::StatusOr<storage::TableAcl> Executor::LoadAcl(const std::string& table) {
  if (options_.acls != nullptr) {
    return options_.acls->Get(table, [this](const std::string& t) { return ReadAcl(t); });
  }
  return ReadAcl(table);
}

absl::StatusOr<storage::TableAcl> Executor::ReadAcl(const std::string& table) {
  auto raw = store_->Get(storage::Cf::kMeta, storage::TableMetaKey(table, "acl"));
  if (!raw.ok()) return raw.status();
  if (!raw->has_value()) return storage::TableAcl{};
  auto acl = storage::DecodeTableAcl(**raw);
  if (!acl) return absl::DataLossError(StrCat("corrupt ACL of table ", table));
  return *acl;
}

absl::StatusOr<storage::TableState> Executor::LoadTableState(const std::string& table) {
  auto raw = store_->Get(storage::Cf::kMeta, storage::TableMetaKey(table, "state"));
  if (!raw.ok()) return raw.status();
  if (!raw->has_value()) return storage::TableState{};
  auto decoded = storage::DecodeTableState(**raw);
  if (!decoded) return absl::DataLossError(StrCat("corrupt state of table ", table));
  return *decoded;
}

std::vector<NodeView> Executor::Nodes() {
  if (options_.cluster) return options_.cluster->Nodes();
  NodeView self;
  self.id = self_.id;
  self.region = self_.region;
  self.name = self_.name;
  self.addr = self_.addr;
  self.port = self_.port;
  self.status = "ACTIVE";
  self.self = true;
  return {self};
}

absl::Status Executor::ForEachTable(const std::optional<std::string>& after,
                                    const std::function<bool(std::string_view)>& fn) {
  return store_->ForEachTable(after, fn);
}

}  // namespace atlas
