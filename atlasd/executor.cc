#include "atlasd/executor.h"

#include <algorithm>
#include <random>

#include "socketproto/str.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_replace.h"
#include "absl/container/flat_hash_set.h"
#include "absl/synchronization/mutex.h"
#include "atlasd/acl.h"
#include "atlasd/logging.h"
#include "atlasd/state_machine.h"
#include "storage/keys.h"

namespace atlas {

using socketproto::Reply;
namespace sp = socketproto;

// The tables a connection read with the backup right, so that each is logged once.
struct Executor::BackupAudit {
  absl::Mutex mu;
  absl::flat_hash_set<std::string> tables ABSL_GUARDED_BY(mu);
};

struct Executor::Call {
  sp::Request request;
  std::optional<std::string> principal;
  bool admin = false;
  bool backup = false;  // a backup-users (or admin-users) principal: may read every table
  uint64_t connection_id = 0;
  std::shared_ptr<BackupAudit> audit;  // the connection's, for reads only `backup` allowed
  std::shared_ptr<sp::OutputStream> stream;  // the connection's (WATCH)
  std::shared_ptr<sp::ReplyBudget> budget;   // the connection's reply memory
  size_t reserved = 0;                       // bytes this call holds in `budget`
  std::function<void(Reply)> done;
  Reply reply;
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
};

namespace {

// Tables logged per connection under the backup right; after that, reads go unlogged (a
// connection that reads that many tables has been on the record for a while).
constexpr size_t kAuditTablesMax = 100'000;

std::string ReservedError(std::string_view table) {
  return StrCat("table '", table, "' is reserved");
}

proto::Perm ToProto(sp::Perm p) {
  switch (p) {
    case sp::Perm::kRead: return proto::READ;
    case sp::Perm::kWrite: return proto::WRITE;
    case sp::Perm::kOwner: return proto::OWNER;
  }
  return proto::READ;
}

std::string_view PermText(storage::AclPerm p) {
  switch (p) {
    case storage::AclPerm::kRead: return "READ";
    case storage::AclPerm::kWrite: return "WRITE";
    case storage::AclPerm::kOwner: return "OWNER";
  }
  return "?";
}

bool IsTokenCommand(const sp::Command& command) {
  return std::holds_alternative<sp::TokenCreate>(command) ||
         std::holds_alternative<sp::TokenList>(command) ||
         std::holds_alternative<sp::TokenRevoke>(command);
}

std::string TimeText(int64_t ms) { return ms == 0 ? "never" : sp::FormatRfc3339Ms(ms); }

// A TOKEN line: `TOKEN id=<id> created=<t> expires=<t|never> uses=<n>/<max|unlimited>
// status=<s>` (TOKEN CREATE adds `token=<token>`).
std::string TokenLine(const TokenView& t) {
  std::string line = StrCat("TOKEN id=", t.id, " created=", TimeText(t.created_ms),
                            " expires=", TimeText(t.expires_ms), " uses=", t.uses, "/",
                            t.uses_max == 0 ? "unlimited" : StrCat(t.uses_max),
                            " status=", absl::StrReplaceAll(t.status, {{" ", "-"}}));
  if (!t.token.empty()) StrAppend(&line, " token=", t.token);
  return line;
}

// Commands that read or change tables' data, placement or watches (not the session's or the
// cluster's own introspection).
bool ServesData(const sp::Command& command) {
  return !(std::holds_alternative<sp::PrincipalAssume>(command) ||
           std::holds_alternative<sp::PrincipalWhoami>(command) ||
           std::holds_alternative<sp::NodeList>(command) ||
           std::holds_alternative<sp::NodeInfo>(command) ||
           std::holds_alternative<sp::NodePing>(command) ||
           std::holds_alternative<sp::NodeLeave>(command) ||
           std::holds_alternative<sp::QuorumInfo>(command) ||
           std::holds_alternative<sp::TableInfo>(command) ||
           std::holds_alternative<sp::TableList>(command) ||
           std::holds_alternative<sp::Unwatch>(command) || IsTokenCommand(command));
}

// Where a SCAN resumes: AFTER may name a key of another table, which then either precedes the
// whole range (no effect) or follows it (nothing left).
enum class AfterPos { kNone, kBefore, kInside, kPast };

}  // namespace

Executor::Executor(storage::Store* store, Replicator* replicator, NodeIdentity self,
                   ExecutorOptions options)
    : store_(store),
      replicator_(replicator),
      self_(std::move(self)),
      options_(std::move(options)),
      started_(std::chrono::steady_clock::now()) {}

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
    absl::MutexLock lock(&call.audit->mu);
    if (call.audit->tables.size() < kAuditTablesMax) first = call.audit->tables.insert(table).second;
  }
  if (first) {
    LogEvent(spdlog::level::info, "backup read",
             {{"principal", call.principal.value_or("")}, {"table", table},
              {"connection", StrCat(call.connection_id)},
              {"right", call.admin ? "admin-users" : "backup-users"}});
  }
  return true;
}

bool Executor::IsAdmin(const std::optional<std::string>& principal) const {
  return principal && std::find(options_.admin_users.begin(), options_.admin_users.end(),
                                *principal) != options_.admin_users.end();
}

absl::StatusOr<storage::TableAcl> Executor::LoadAcl(const std::string& table) {
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

std::vector<std::string> CommandNames() {
  static_assert(std::variant_size_v<sp::Command> == 28, "name the new command here");
  return {"KEY GET",     "KEY PUT",    "KEY DEL",          "KEY BLOB SET",    "KEY BLOB GET",
          "SCAN",        "COUNT",      "SAMPLE",           "PRINCIPAL ASSUME", "PRINCIPAL WHOAMI",
          "ACL GRANT",   "ACL REVOKE", "ACL LIST",         "NODE LIST",       "NODE INFO",
          "NODE PING",   "NODE LEAVE", "QUORUM INFO",      "TABLE INFO",      "TABLE MOVE",
          "TABLE PIN",   "TABLE GROUP", "TABLE LIST",      "WATCH",           "UNWATCH",
          "TOKEN CREATE", "TOKEN LIST", "TOKEN REVOKE"};
}

void Executor::Execute(sp::Request request, sp::SessionContext& ctx,
                       std::function<void(Reply)> done) {
  if (options_.principal_mode == PrincipalMode::kPeercred && !ctx.principal &&
      !ctx.peer_user.empty()) {
    ctx.principal = ctx.peer_user;  // peercred: the Unix user is who you are
  }
  auto call = std::make_shared<Call>();
  call->metrics = options_.metrics;
  call->started = std::chrono::steady_clock::now();
  call->reply = Reply(request.id);
  call->done = std::move(done);
  call->principal = ctx.principal;
  call->connection_id = ctx.connection_id;
  call->stream = ctx.stream;
  call->budget = ctx.budget;
  call->request = std::move(request);
  sp::Command& command = call->request.command;

  if (auto* unwatch = std::get_if<sp::Unwatch>(&command)) {
    // The UNWATCH's OK follows the watch's own final OK.
    if (options_.watch && options_.watch->Cancel(call->connection_id, unwatch->id, [call] {
          call->reply.Ok();
          call->Finish();
        })) {
      return;
    }
    call->Warn(StrCat("no WATCH tagged '", unwatch->id, "' on this connection"));
    return;
  }

  // Session commands: answered right here, on the session's strand.
  if (auto* assume = std::get_if<sp::PrincipalAssume>(&command)) {
    if (options_.principal_mode == PrincipalMode::kPeercred && assume->name != ctx.peer_user &&
        !IsAdmin(ctx.peer_user)) {
      call->Warn(StrCat("permission denied for principal '", ctx.peer_user,
                              "': PRINCIPAL ASSUME (principal-mode peercred: only admin-users may "
                              "assume another principal)"));
      return;
    }
    ctx.principal = assume->name;
    call->reply.Ok();
    call->Finish();
    return;
  }
  if (std::holds_alternative<sp::PrincipalWhoami>(command)) {
    call->reply.Line(StrCat("PRINCIPAL ", ctx.principal ? *ctx.principal : "(none)")).Ok();
    call->Finish();
    return;
  }
  if (auto* put = std::get_if<sp::KeyPut>(&command); put && put->principal) {
    // Acting as another principal for one command follows the PRINCIPAL ASSUME rules.
    if (options_.principal_mode == PrincipalMode::kPeercred && *put->principal != ctx.peer_user &&
        !IsAdmin(ctx.peer_user)) {
      call->Warn(StrCat("permission denied for principal '", ctx.peer_user,
                              "': KEY PUT PRINCIPAL (principal-mode peercred: only admin-users "
                              "may act as another principal)"));
      return;
    }
    call->principal = put->principal;
  }
  call->admin = IsAdmin(call->principal);
  call->backup = call->admin || IsBackup(call->principal);
  if (call->backup) {
    // Per-connection state lives in the session's context, which outlives this call.
    if (!ctx.handler_state) ctx.handler_state = std::make_shared<BackupAudit>();
    call->audit = std::static_pointer_cast<BackupAudit>(ctx.handler_state);
  }

  // A node whose clock is off serves no data (docs/consensus.md §Time); the cluster commands
  // stay, so that operators can see why.
  if (options_.cluster && ServesData(command)) {
    if (std::optional<std::string> problem = options_.cluster->ServingProblem()) {
      call->Warn(*problem);
      return;
    }
  }

  // Only regions that have members can hold a table.
  if (auto* pin = std::get_if<sp::TablePin>(&command); pin && pin->region &&
                                                        !RegionHasMembers(*pin->region)) {
    call->Warn(StrCat("unknown region '", *pin->region, "'"));
    return;
  }

  // Writes: build the replicated command.
  proto::Command cmd;
  cmd.set_principal(call->principal.value_or(""));
  cmd.set_admin(call->admin);
  bool is_write = true;
  std::string_view write_table;
  std::visit(
      [&](auto& c) {
        using T = std::decay_t<decltype(c)>;
        if constexpr (std::is_same_v<T, sp::KeyPut>) {
          write_table = c.key.table();
          auto* p = cmd.mutable_put();
          p->set_row(std::string(c.key.row()));
          p->set_value(std::move(c.value));
          if (c.worm && c.worm->kind == sp::Worm::Kind::kTtl) p->set_worm_ttl_ms(c.worm->ttl_ms);
          if (c.worm && c.worm->kind == sp::Worm::Kind::kExpires) {
            p->set_worm_expires_ms(c.worm->expires_ms);
          }
        } else if constexpr (std::is_same_v<T, sp::KeyBlobSet>) {
          write_table = c.key.table();
          auto* p = cmd.mutable_put();
          p->set_row(std::string(c.key.row()));
          p->set_value(std::move(c.value));
        } else if constexpr (std::is_same_v<T, sp::KeyDel>) {
          write_table = c.key.table();
          cmd.mutable_del()->set_row(std::string(c.key.row()));
        } else if constexpr (std::is_same_v<T, sp::AclGrant> || std::is_same_v<T, sp::AclRevoke>) {
          write_table = c.table;
          auto* a = cmd.mutable_acl();
          a->set_principal(c.principal);
          a->set_perm(ToProto(c.perm));
          a->set_grant(std::is_same_v<T, sp::AclGrant>);
        } else if constexpr (std::is_same_v<T, sp::TablePin>) {
          write_table = c.table;
          cmd.mutable_placement()->set_pinned_region(c.region.value_or(""));
        } else if constexpr (std::is_same_v<T, sp::TableGroup>) {
          write_table = c.table;
          cmd.mutable_placement()->set_group(c.group.value_or(""));
        } else {
          is_write = false;
        }
      },
      command);
  if (is_write) {
    if (sp::IsReservedTable(write_table)) {
      call->Warn(ReservedError(write_table));
      return;
    }
    cmd.set_table(std::string(write_table));
    Write(call, std::move(cmd));
    return;
  }
  if (IsTokenCommand(command)) return Tokens(call);
  // Cluster commands report this node's view of the cluster; they need no read barrier (and
  // must work when quorums do not).
  if (std::holds_alternative<sp::NodeList>(command) ||
      std::holds_alternative<sp::NodeInfo>(command) ||
      std::holds_alternative<sp::NodePing>(command) ||
      std::holds_alternative<sp::NodeLeave>(command) ||
      std::holds_alternative<sp::QuorumInfo>(command) ||
      std::holds_alternative<sp::TableInfo>(command) ||
      std::holds_alternative<sp::TableList>(command)) {
    return Read(call);
  }
  // Reads see every write acknowledged before them.
  std::string table;
  std::visit(
      [&](const auto& c) {
        if constexpr (requires { c.key; }) {
          table = std::string(c.key.table());
        } else if constexpr (requires { c.range; }) {
          table = c.range.table;
        } else if constexpr (requires { c.table; }) {
          table = c.table;
        }
      },
      command);
  replicator_->ReadBarrier(table, [this, call](absl::Status s) {
    if (!s.ok()) {
      call->Warn(ToStd(s.message()));
      return;
    }
    if (options_.post_read) {
      options_.post_read([this, call] { Read(call); });
    } else {
      Read(call);
    }
  });
}

void Executor::Write(std::shared_ptr<Call> call, proto::Command cmd) {
  replicator_->Propose(std::move(cmd), [call](ApplyResult r) {
    if (r.ok) {
      call->reply.Ok();
    } else {
      call->reply.Warn(r.error);
    }
    call->Finish();
  });
}

void Executor::Read(std::shared_ptr<Call> call_ptr) {
  Call& call = *call_ptr;
  sp::Command& command = call.request.command;
  auto check_read = [&](const std::string& table) -> bool {
    auto acl = LoadAcl(table);
    if (!acl.ok()) {
      call.Warn(StrCat("internal error: ", acl.status().message()));
      return false;
    }
    if (!MayRead(call, *acl, table)) {
      call.Warn(PermissionDenied(call.principal, "READ", table));
      return false;
    }
    return true;
  };
  auto internal = [&](const absl::Status& s) {
    call.Warn(StrCat("internal error: ", s.message()));
  };

  if (auto* watch = std::get_if<sp::Watch>(&command)) {
    const std::string& table = watch->range.table;
    if (options_.watch == nullptr || !call.stream) return call.Warn("WATCH is not available here");
    // (The backup right reads tables for dumps; it does not cover WATCH streams.)
    auto acl = LoadAcl(table);
    if (!acl.ok()) return internal(acl.status());
    if (!AclAllows(*acl, call.principal, call.admin, AclOp::kRead)) {
      return call.Warn(PermissionDenied(call.principal, "READ", table));
    }
    // After the read barrier: the revision includes every write acknowledged before WATCH.
    absl::StatusOr<RevisionRange> revs = TableRevisions(store_, table);
    if (!revs.ok()) return internal(revs.status());
    uint64_t after = revs->latest;
    if (watch->from) {
      if (*watch->from > revs->latest) {
        return call.Warn(StrCat("revision ", *watch->from, " is ahead of table '", table,
                                "' (latest ", revs->latest, ")"));
      }
      if (*watch->from < revs->resumable_from) {
        return call.Warn(StrCat("revision ", *watch->from, " compacted; latest snapshot is ",
                                revs->resumable_from));
      }
      after = *watch->from;
    }
    WatchHub::Spec spec;
    spec.table = table;
    spec.row_prefix = watch->range.row_prefix;
    spec.after = after;
    spec.latest = revs->latest;
    spec.tag = call.request.id;
    spec.connection_id = call.connection_id;
    spec.principal = call.principal;
    spec.admin = call.admin;
    spec.stream = call.stream;
    spec.end = [call_ptr](std::optional<std::string> error) {
      if (error) return call_ptr->Warn(*error);
      call_ptr->reply.Ok();
      call_ptr->Finish();
    };
    absl::Status s = options_.watch->Add(std::move(spec));
    if (!s.ok()) return call.Warn(ToStd(s.message()));
    return;  // the hub ends the request (UNWATCH, disconnect, or an error)
  }
  if (auto* get = std::get_if<sp::KeyGet>(&command)) {
    if (!check_read(std::string(get->key.table()))) return;
    return ReadRow(call_ptr, get->key, /*blob=*/false, 0);
  }
  if (auto* bget = std::get_if<sp::KeyBlobGet>(&command)) {
    if (!check_read(std::string(bget->key.table()))) return;
    return ReadRow(call_ptr, bget->key, /*blob=*/true, 0);
  }
  if (auto* scan = std::get_if<sp::Scan>(&command)) {
    const std::string& table = scan->range.table;
    if (!check_read(table)) return;
    std::optional<std::string> after_row;
    if (scan->after) {
      std::string_view a = *scan->after;
      std::string_view at = a.substr(0, a.find('.'));
      if (at < table) {
        // precedes the range: no effect
      } else if (at > table) {
        call.reply.Line("KEYS:0").Ok();
        return call.Finish();
      } else {
        after_row = std::string(a.substr(a.find('.') + 1));
      }
    }
    uint64_t limit = scan->limit.value_or(options_.scan_keys_max);
    if (!call.reserved) {
      // Up to `limit` keys: room for them first (a SCAN without LIMIT runs alone).
      return Reserve(call_ptr, KeysReplyBytes(limit), [this, call_ptr] { Read(call_ptr); });
    }
    std::vector<std::string> keys;
    bool truncated = false;
    absl::Status s = store_->ForEachRow(table, scan->range.row_prefix, after_row,
                                        [&](std::string_view row) {
                                          if (keys.size() >= limit) {
                                            truncated = true;
                                            return false;
                                          }
                                          keys.push_back(StrCat(table, ".", row));
                                          return true;
                                        });
    if (!s.ok()) return internal(s);
    if (truncated && !scan->limit) {
      return call.Warn(StrCat("scan too large: more than ", options_.scan_keys_max,
                                    " keys; page with LIMIT <n> AFTER <key>"));
    }
    call.reply.Line(StrCat("KEYS:", keys.size()));
    for (const auto& k : keys) call.reply.Line(k);
    call.reply.Ok();
    return call.Finish();
  }
  if (auto* count = std::get_if<sp::Count>(&command)) {
    if (!check_read(count->range.table)) return;
    uint64_t n = 0;
    absl::Status s = store_->ForEachRow(count->range.table, count->range.row_prefix, std::nullopt,
                                        [&](std::string_view) {
                                          ++n;
                                          return true;
                                        });
    if (!s.ok()) return internal(s);
    call.reply.Line(StrCat("COUNT:", n)).Ok();
    return call.Finish();
  }
  if (auto* sample = std::get_if<sp::Sample>(&command)) {
    const std::string& table = sample->range.table;
    if (!check_read(table)) return;
    uint64_t n = std::min<uint64_t>(sample->n, options_.scan_keys_max);
    if (!call.reserved) {
      return Reserve(call_ptr, KeysReplyBytes(n), [this, call_ptr] { Read(call_ptr); });
    }
    // Reservoir sampling (Algorithm R): one pass, every key equally likely, O(n) memory.
    thread_local std::mt19937_64 rng{std::random_device{}()};
    std::vector<std::string> reservoir;
    uint64_t seen = 0;
    absl::Status s = store_->ForEachRow(table, sample->range.row_prefix, std::nullopt,
                                        [&](std::string_view row) {
                                          ++seen;
                                          if (reservoir.size() < n) {
                                            reservoir.push_back(StrCat(table, ".", row));
                                          } else if (n > 0) {
                                            uint64_t j = rng() % seen;
                                            if (j < n) reservoir[j] = StrCat(table, ".", row);
                                          }
                                          return true;
                                        });
    if (!s.ok()) return internal(s);
    std::sort(reservoir.begin(), reservoir.end());
    call.reply.Line(StrCat("KEYS:", reservoir.size()));
    for (const auto& k : reservoir) call.reply.Line(k);
    call.reply.Ok();
    return call.Finish();
  }
  if (auto* list = std::get_if<sp::AclList>(&command)) {
    auto acl = LoadAcl(list->table);
    if (!acl.ok()) return internal(acl.status());
    if (!AclAllows(*acl, call.principal, call.admin, AclOp::kAdminister) &&
        !MayRead(call, *acl, list->table)) {
      return call.Warn(PermissionDenied(call.principal, "ACL LIST", list->table));
    }
    if (!call.reserved && acl->grants.size() > 64) {
      return Reserve(call_ptr, KeysReplyBytes(acl->grants.size()),
                     [this, call_ptr] { Read(call_ptr); });
    }
    for (const auto& g : acl->grants) {
      call.reply.Line(StrCat("ACL ", g.principal, " ", PermText(g.perm)));
    }
    call.reply.Ok();
    return call.Finish();
  }
  if (std::holds_alternative<sp::NodeList>(command)) {
    for (const NodeView& n : Nodes()) call.reply.Line(NodeLine(n, false));
    call.reply.Ok();
    return call.Finish();
  }
  if (auto* info = std::get_if<sp::NodeInfo>(&command)) {
    for (const NodeView& n : Nodes()) {
      if (n.id != info->id) continue;
      call.reply.Line(NodeLine(n, true)).Ok();
      return call.Finish();
    }
    return call.Warn(StrCat("unknown node ", info->id));
  }
  if (auto* ping = std::get_if<sp::NodePing>(&command)) {
    uint64_t id = ping->id;
    auto pong = [call_ptr, id](absl::StatusOr<double> ms) {
      if (!ms.ok()) return call_ptr->Warn(ToStd(ms.status().message()));
      call_ptr->reply.Line(absl::StrFormat("PONG node=%d rtt_ms=%.3f", id, *ms)).Ok();
      call_ptr->Finish();
    };
    if (options_.cluster) return options_.cluster->Ping(id, std::move(pong));
    if (id != self_.id) return call.Warn(StrCat("unknown node ", id));
    // One node: the round trip is through this node's own command path.
    auto t0 = std::chrono::steady_clock::now();
    replicator_->Ping([pong, t0]() {
      pong(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0)
               .count());
    });
    return;
  }
  if (auto* leave = std::get_if<sp::NodeLeave>(&command)) {
    // Membership is the cluster's business: with admin-users set, only they may change it.
    if (!options_.admin_users.empty() && !call.admin) {
      return call.Warn(PermissionDenied(call.principal, "NODE LEAVE", "atlas.nodes"));
    }
    if (!options_.cluster) return call.Warn("NODE LEAVE: this node runs without a cluster");
    options_.cluster->RemoveNode(leave->id, [call_ptr](absl::Status s) {
      if (!s.ok()) return call_ptr->Warn(ToStd(s.message()));
      call_ptr->reply.Ok();
      call_ptr->Finish();
    });
    return;
  }
  if (auto* qinfo = std::get_if<sp::QuorumInfo>(&command)) {
    if (!options_.cluster) {
      std::string member = StrCat("id=", self_.id, " region=", self_.region,
                                  " addr=", self_.addr, " port=", self_.port);
      call.reply.Line("Q1 size=1").Line(member).Line("Q2 size=1").Line(member).Ok();
      return call.Finish();
    }
    std::vector<NodeView> nodes = Nodes();
    // A grouped table's quorums are its group's object's.
    std::string object = qinfo->table;
    if (auto raw = store_->Get(storage::Cf::kMeta, storage::TableMetaKey(object, "state"));
        raw.ok() && raw->has_value()) {
      if (auto st = storage::DecodeTableState(**raw)) {
        object = StateMachine::ObjectOf(qinfo->table, st->group);
      }
    }
    options_.cluster->Quorums(object, [call_ptr, nodes](absl::StatusOr<QuorumView> q) {
      if (!q.ok()) return call_ptr->Warn(ToStd(q.status().message()));
      auto lines = [&](const char* name, const std::vector<uint64_t>& ids) {
        call_ptr->reply.Line(StrCat(name, " size=", ids.size()));
        for (uint64_t id : ids) {
          NodeView v;
          for (const NodeView& n : nodes) {
            if (n.id == id) v = n;
          }
          call_ptr->reply.Line(StrCat("id=", id, " region=", v.region, " addr=", v.addr,
                                      " port=", v.port));
        }
      };
      lines("Q1", q->q1);
      lines("Q2", q->q2);
      call_ptr->reply.Ok();
      call_ptr->Finish();
    });
    return;
  }
  if (auto* list = std::get_if<sp::TableList>(&command)) {
    // Every table with replicated state on this node: its meta "state" key. A table created a
    // moment ago through another node may not be here yet (this is the node's view, like NODE).
    const uint64_t limit = std::min(list->limit.value_or(options_.scan_keys_max),
                                    options_.scan_keys_max);
    if (!call.reserved) {
      return Reserve(call_ptr, KeysReplyBytes(limit), [this, call_ptr] { Read(call_ptr); });
    }
    std::vector<std::string> names;
    absl::Status s = ForEachTable(list->after, [&](std::string_view name) {
      if (names.size() >= limit) return false;
      if (!sp::IsReservedTable(name)) names.emplace_back(name);
      return true;
    });
    if (!s.ok()) return internal(s);
    call.reply.Line(StrCat("TABLES:", names.size()));
    for (const std::string& n : names) call.reply.Line(n);
    call.reply.Ok();
    return call.Finish();
  }
  if (auto* tinfo = std::get_if<sp::TableInfo>(&command)) {
    auto state = LoadTableState(tinfo->table);
    if (!state.ok()) return internal(state.status());
    storage::TableState st = *state;
    // The row count is the table's data (COUNT needs READ): only principals that may read it
    // see it; others get "rows=-" and the placement, which is the cluster's business.
    auto acl = LoadAcl(tinfo->table);
    if (!acl.ok()) return internal(acl.status());
    std::string rows = "-";
    if (MayRead(call, *acl, tinfo->table)) {
      uint64_t n = 0;
      absl::Status s = store_->ForEachRow(tinfo->table, "", std::nullopt, [&](std::string_view) {
        ++n;
        return true;
      });
      if (!s.ok()) return internal(s);
      rows = StrCat(n);
    }
    std::string table = tinfo->table;
    std::vector<NodeView> nodes = Nodes();
    replicator_->Describe(table, [call_ptr, table, nodes, rows, st](ObjectInfo info) {
      std::string region = "-";
      for (const NodeView& n : nodes) {
        if (n.id == info.owner) region = n.region;
      }
      call_ptr->reply
          .Line(StrCat("TABLE name=", table, " owner=", info.owner, " region=", region,
                       " ballot=", info.ballot, " rows=", rows,
                       " group=", st.group.empty() ? "-" : st.group,
                       " pinned=", st.pinned_region.empty() ? "-" : st.pinned_region))
          .Ok();
      call_ptr->Finish();
    });
    return;
  }
  if (auto* move = std::get_if<sp::TableMove>(&command)) {
    // Placement is the table's administration, like PIN and GROUP (which the state machine
    // checks the same way): OWNER or an admin user. Checked after the read barrier, so the
    // ACL is the one in force.
    auto acl = LoadAcl(move->table);
    if (!acl.ok()) return internal(acl.status());
    if (!AclAllows(*acl, call.principal, call.admin, AclOp::kAdminister)) {
      return call.Warn(PermissionDenied(call.principal, "TABLE MOVE", move->table));
    }
    auto state = LoadTableState(move->table);
    if (!state.ok()) return internal(state.status());
    // The target is a node id, or a region: then its live member nearest to us (this node if
    // it is in that region).
    uint64_t target = 0;
    std::vector<NodeView> nodes = Nodes();
    uint64_t as_id = 0;
    if (absl::SimpleAtoi(move->target, &as_id)) {
      for (const NodeView& n : nodes) {
        if (n.id == as_id && n.status != "LEFT") target = n.id;
      }
    } else {
      double best = 0;
      for (const NodeView& n : nodes) {
        if (n.region != move->target || n.status == "LEFT" || n.status == "DOWN") continue;
        double d = n.self ? -1 : n.rtt_ms;
        if (target == 0 || d < best) target = n.id, best = d;
      }
    }
    if (target == 0) return call.Warn(StrCat("unknown region or node '", move->target, "'"));
    // A move never breaks a pin: the pinned region is where the table's owner must live.
    if (!state->pinned_region.empty()) {
      for (const NodeView& n : nodes) {
        if (n.id != target || n.region == state->pinned_region) continue;
        return call.Warn(StrCat("table '", move->table, "' is pinned to region '",
                                state->pinned_region, "'; move it within that region, or TABLE PIN ",
                                move->table, " NONE first"));
      }
    }
    if (!options_.cluster) {
      call.reply.Ok();  // one node: already owned here
      return call.Finish();
    }
    options_.cluster->MoveTable(move->table, target, [call_ptr](absl::Status s) {
      if (!s.ok()) return call_ptr->Warn(ToStd(s.message()));
      call_ptr->reply.Ok();
      call_ptr->Finish();
    });
    return;
  }
  call.Warn("not implemented: command");
}

size_t Executor::KeysReplyBytes(uint64_t keys) {
  // A line per key: "[ID:<64>] " + key + CRLF; plus the header and OK.
  constexpr uint64_t kLineBytesMax = 74 + sp::kMaxKeyBytes + 2;
  return static_cast<size_t>(std::min<uint64_t>(keys, uint64_t{1} << 32) * kLineBytesMax + 256);
}

void Executor::Reserve(std::shared_ptr<Call> call, size_t bytes, std::function<void()> then) {
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

void Executor::ReadRow(std::shared_ptr<Call> call, const sp::Key& key, bool blob, int attempt) {
  const std::string table(key.table());
  auto rec = store_->GetRow(table, key.row());
  if (!rec.ok()) return call->Warn(StrCat("internal error: ", rec.status().message()));
  if (!rec->has_value()) {
    call->reply.Line(blob ? "EMPTY" : "NOT_FOUND").Ok();
    return call->Finish();
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
    call->reply.Blob(*value).Ok();
  } else {
    call->reply.buffer().reserve(value->size() + 16);
    call->reply.Line(StrCat("VALUE:", *value)).Ok();
  }
  call->Finish();
}

void Executor::Tokens(std::shared_ptr<Call> call) {
  // Join tokens are cluster authority: with admin-users set, only they manage them.
  if (!options_.admin_users.empty() && !call->admin) {
    return call->Warn(PermissionDenied(call->principal, "TOKEN", "atlas.nodes"));
  }
  if (!options_.cluster) return call->Warn("TOKEN: this node runs without a cluster");
  const sp::Command& command = call->request.command;
  if (const auto* create = std::get_if<sp::TokenCreate>(&command)) {
    options_.cluster->CreateToken(create->ttl_ms, create->uses,
                                  [call](absl::StatusOr<TokenView> t) {
                                    if (!t.ok()) return call->Warn(ToStd(t.status().message()));
                                    call->reply.Line(TokenLine(*t)).Ok();
                                    call->Finish();
                                  });
    return;
  }
  if (const auto* revoke = std::get_if<sp::TokenRevoke>(&command)) {
    options_.cluster->RevokeToken(revoke->id, [call](absl::Status s) {
      if (!s.ok()) return call->Warn(ToStd(s.message()));
      call->reply.Ok();
      call->Finish();
    });
    return;
  }
  for (const TokenView& t : options_.cluster->Tokens()) call->reply.Line(TokenLine(t));
  call->reply.Ok();
  call->Finish();
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

bool Executor::RegionHasMembers(const std::string& region) {
  for (const NodeView& n : Nodes()) {
    if (n.region == region && n.status != "LEFT") return true;
  }
  return false;
}

std::string Executor::NodeLine(const NodeView& node, bool detailed) {
  std::string line = StrCat("NODE id=", node.id, " region=", node.region, " status=", node.status,
                            absl::StrFormat(" rtt_ms=%.3f", node.rtt_ms), " addr=", node.addr,
                            " port=", node.port);
  if (detailed) {
    StrAppend(&line, " name=", node.name.empty() ? "-" : node.name);
    if (node.reported) {
      // The node's own figures: from its last ping answer, or this node's.
      StrAppend(&line, " owned_tables=", node.owned_tables, " version=", node.version,
                " uptime_s=", node.uptime_s, " rtts=");
      if (node.rtts.empty()) StrAppend(&line, "-");
      for (size_t i = 0; i < node.rtts.size(); ++i) {
        StrAppend(&line, i ? "," : "", node.rtts[i].first,
                  absl::StrFormat(":%.3f", node.rtts[i].second));
      }
      if (!node.clock.empty()) {
        StrAppend(&line, " clock=", node.clock,
                  absl::StrFormat(" clock_offset_ms=%.3f", node.clock_offset_ms));
      }
    } else if (node.self) {  // No cluster runtime (executor tests): one node owns every table.
      auto uptime = std::chrono::duration_cast<std::chrono::seconds>(
                        std::chrono::steady_clock::now() - started_)
                        .count();
      StrAppend(&line, " owned_tables=", OwnedTables(), " version=", self_.version,
                " uptime_s=", uptime, " rtts=-");
    } else {
      StrAppend(&line, " owned_tables=-", " version=-", " uptime_s=-", " rtts=-");
    }
  }
  return line;
}

uint64_t Executor::OwnedTables() {
  // Every table with replicated state has been written; on one node this node owns them all.
  uint64_t n = 0;
  ForEachTable(std::nullopt, [&](std::string_view) {
    ++n;
    return true;
  }).IgnoreError();  // NODE INFO shows what it counted
  return n;
}

absl::Status Executor::ForEachTable(const std::optional<std::string>& after,
                                    const std::function<bool(std::string_view)>& fn) {
  return store_->ForEachTable(after, fn);
}

}  // namespace atlas
