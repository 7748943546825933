// The command table: one row per alternative of socketproto::Command, in the variant's order,
// with what the server and the client both need to know about a command (docs/design.md
// §The command table). The executor's dispatch and metrics, the parser's usage errors and the
// atlas REPL's help, completion and suggestions all derive from it, so a command is described
// once. The server's own half of a command (its ACL operation and handler) is in
// atlasd/executor.cc and atlasd/commands/.
//
// Pure constexpr data: no allocation, usable in static_asserts and `if constexpr`.
#pragma once

#include <array>
#include <cstddef>
#include <string_view>
#include <type_traits>
#include <variant>

#include "socketproto/command.h"

namespace atlas::socketproto {

// How a command runs, which decides the executor's path for it.
enum class CommandKind {
  kSession,  // this connection's own state (principal, watches): answered at once
  kRead,     // reads a table after its read barrier: sees every write acknowledged before it
  kWrite,    // changes a table through its log: OK once committed and applied
  kCluster,  // this node's view of the cluster: no read barrier, answers without quorums
  kAdmin,    // changes the cluster itself (membership, a table's owner, join tokens); one that
             // names a table passes its read barrier first, so the ACL it checks is in force
  kStream,   // WATCH: after the table's read barrier, frames until UNWATCH or disconnect
};

struct CommandInfo {
  size_t index;           // the alternative of Command this row describes
  std::string_view name;  // "KEY GET": metrics label, help topic, completion
  CommandKind kind;
  // Reads or changes a table's data, ACL, placement or watches. A node whose clock is off
  // refuses these (docs/consensus.md §Time); the others let operators see why.
  bool serves_data;
  std::string_view syntax;  // what the parser reports as `usage: <syntax>`
  std::string_view help;    // one line: what `help <command>` in atlas says it does
};

// A second name for a command (same alternative, same parser branch).
struct CommandAlias {
  std::string_view name;
  size_t index;
};

namespace internal {
template <typename T, typename Variant>
struct AlternativeIndex;
template <typename T, typename... Ts>
struct AlternativeIndex<T, std::variant<Ts...>> {
  static constexpr size_t value = [] {
    constexpr bool same[] = {std::is_same_v<T, Ts>...};
    for (size_t i = 0; i < sizeof...(Ts); ++i) {
      if (same[i]) return i;
    }
    return sizeof...(Ts);
  }();
};
}  // namespace internal

// The position of command type T in Command.
template <typename T>
inline constexpr size_t kCommandIndex = internal::AlternativeIndex<T, Command>::value;

inline constexpr std::array<CommandInfo, 36> kCommands = {{
    {.index = kCommandIndex<KeyGet>,
     .name = "KEY GET",
     .kind = CommandKind::kRead,
     .serves_data = true,
     .syntax = "KEY GET <key>",
     .help = "The value of a row: VALUE:<v>, or NOT_FOUND. Linearizable."},
    {.index = kCommandIndex<KeyPut>,
     .name = "KEY PUT",
     .kind = CommandKind::kWrite,
     .serves_data = true,
     .syntax = "KEY PUT <key> [PRINCIPAL <name>] [WORM TTL <duration> | WORM EXPIRES <rfc3339>] "
               "[EXPIRE <duration> | EXPIRE AT <rfc3339>] [IF REV <r>] <value>",
     .help = "Stores the rest of the line exactly. WORM makes the row immutable until then; "
             "EXPIRE removes it then; IF REV writes only if the row is at revision r (0: "
             "absent). KEY SET is the same."},
    {.index = kCommandIndex<KeyDel>,
     .name = "KEY DEL",
     .kind = CommandKind::kWrite,
     .serves_data = true,
     .syntax = "KEY DEL <key> [IF REV <r>]",
     .help = "Deletes a row (OK if it was not there); IF REV: only if it is at revision r."},
    {.index = kCommandIndex<KeyBlobSet>,
     .name = "KEY BLOB SET",
     .kind = CommandKind::kWrite,
     .serves_data = true,
     .syntax = "KEY BLOB SET <key> [IF REV <r>] [WORM TTL <duration> | WORM EXPIRES <rfc3339>] "
               "[EXPIRE <duration> | EXPIRE AT <rfc3339>] <length>",
     .help = "Stores the <length> raw bytes after the line as the value. In atlas: KEY BLOB SET "
             "<key> @<file> sends a file."},
    {.index = kCommandIndex<KeyBlobGet>,
     .name = "KEY BLOB GET",
     .kind = CommandKind::kRead,
     .serves_data = true,
     .syntax = "KEY BLOB GET <key>",
     .help = "Any value as bytes: a preview here, or saved with atlas --out FILE. EMPTY when "
             "none."},
    {.index = kCommandIndex<KeyInfo>,
     .name = "KEY INFO",
     .kind = CommandKind::kRead,
     .serves_data = true,
     .syntax = "KEY INFO <key>",
     .help = "A row's revision, size, WORM retention and expiry: ROW key=... rev=..., or "
             "NOT_FOUND. Linearizable."},
    {.index = kCommandIndex<Txn>,
     .name = "TXN",
     .kind = CommandKind::kWrite,
     .serves_data = true,
     .syntax = "TXN <n>, then n lines of KEY GET|INFO|PUT|SET|DEL|BLOB SET|BLOB GET",
     .help = "The next n commands as one transaction, all or none, in one table or TABLE "
             "GROUP: their data frames, then one OK. In atlas also BEGIN ... COMMIT (or ABORT)."},
    {.index = kCommandIndex<Scan>,
     .name = "SCAN",
     .kind = CommandKind::kRead,
     .serves_data = true,
     .syntax = "SCAN <table>[.<row-prefix>] [LIMIT <n>] [AFTER <key>]",
     .help = "Keys in byte order: KEYS:<n> then the keys."},
    {.index = kCommandIndex<Count>,
     .name = "COUNT",
     .kind = CommandKind::kRead,
     .serves_data = true,
     .syntax = "COUNT <table>[.<row-prefix>]",
     .help = "How many rows: COUNT:<n>."},
    {.index = kCommandIndex<Sample>,
     .name = "SAMPLE",
     .kind = CommandKind::kRead,
     .serves_data = true,
     .syntax = "SAMPLE <table>[.<row-prefix>] <n>",
     .help = "Up to n keys chosen uniformly at random."},
    {.index = kCommandIndex<PrincipalAssume>,
     .name = "PRINCIPAL ASSUME",
     .kind = CommandKind::kSession,
     .serves_data = false,
     .syntax = "PRINCIPAL ASSUME <name>",
     .help = "Act as <name> on this connection (peercred mode: admin users only)."},
    {.index = kCommandIndex<PrincipalWhoami>,
     .name = "PRINCIPAL WHOAMI",
     .kind = CommandKind::kSession,
     .serves_data = false,
     .syntax = "PRINCIPAL WHOAMI",
     .help = "The connection's principal, or (none)."},
    {.index = kCommandIndex<AclGrant>,
     .name = "ACL GRANT",
     .kind = CommandKind::kWrite,
     .serves_data = true,
     .syntax = "ACL GRANT <table> <principal> PERMS <READ|WRITE|OWNER>",
     .help = "Grants a permission. Once a table has an OWNER only owners (and admin users) may "
             "grant."},
    {.index = kCommandIndex<AclRevoke>,
     .name = "ACL REVOKE",
     .kind = CommandKind::kWrite,
     .serves_data = true,
     .syntax = "ACL REVOKE <table> <principal> PERMS <READ|WRITE|OWNER>",
     .help = "Revokes it."},
    {.index = kCommandIndex<AclList>,
     .name = "ACL LIST",
     .kind = CommandKind::kRead,
     .serves_data = true,
     .syntax = "ACL LIST <table>",
     .help = "The grants: ACL <principal> <PERM> per line."},
    {.index = kCommandIndex<NodeList>,
     .name = "NODE LIST",
     .kind = CommandKind::kCluster,
     .serves_data = false,
     .syntax = "NODE LIST",
     .help = "Every member: id, region, status, RTT from this node, address."},
    {.index = kCommandIndex<NodeInfo>,
     .name = "NODE INFO",
     .kind = CommandKind::kCluster,
     .serves_data = false,
     .syntax = "NODE INFO <id>",
     .help = "One member, with its own report: owned tables, version, uptime, its RTT to each "
             "peer."},
    {.index = kCommandIndex<NodePing>,
     .name = "NODE PING",
     .kind = CommandKind::kCluster,
     .serves_data = false,
     .syntax = "NODE PING <id>",
     .help = "A round trip over the peer channel: PONG node=<id> rtt_ms=<ms>."},
    {.index = kCommandIndex<NodeLeave>,
     .name = "NODE LEAVE",
     .kind = CommandKind::kAdmin,
     .serves_data = false,
     .syntax = "NODE LEAVE <id>",
     .help = "Removes a member through consensus; OK once every table has settled. Stop it after."},
    {.index = kCommandIndex<QuorumInfo>,
     .name = "QUORUM INFO",
     .kind = CommandKind::kCluster,
     .serves_data = false,
     .syntax = "QUORUM INFO <table>",
     .help = "The Q1 and Q2 the table's owner uses now."},
    {.index = kCommandIndex<QuorumSet>,
     .name = "QUORUM SET",
     .kind = CommandKind::kAdmin,
     .serves_data = false,
     .syntax = "QUORUM SET <Fn> <Fz>",
     .help = "Changes the node failures tolerated per zone (Fn) and zone failures tolerated "
             "(Fz), up or down, through consensus; refused with the reason when the live "
             "members cannot form the new quorums."},
    {.index = kCommandIndex<TableInfo>,
     .name = "TABLE INFO",
     .kind = CommandKind::kCluster,
     .serves_data = false,
     .syntax = "TABLE INFO <table>",
     .help = "Owner, region, ballot, rows, group, pin."},
    {.index = kCommandIndex<TableMove>,
     .name = "TABLE MOVE",
     .kind = CommandKind::kAdmin,
     .serves_data = true,
     .syntax = "TABLE MOVE <table> <region|node-id>",
     .help = "Hands the table to a node; OK once moved."},
    {.index = kCommandIndex<TablePin>,
     .name = "TABLE PIN",
     .kind = CommandKind::kWrite,
     .serves_data = true,
     .syntax = "TABLE PIN <table> <region|NONE>",
     .help = "Keeps the automatic policy from moving it."},
    {.index = kCommandIndex<TableGroup>,
     .name = "TABLE GROUP",
     .kind = CommandKind::kWrite,
     .serves_data = true,
     .syntax = "TABLE GROUP <table> <group|NONE>",
     .help = "Tables of one group share one owner and move together."},
    {.index = kCommandIndex<TableReads>,
     .name = "TABLE READS",
     .kind = CommandKind::kWrite,
     .serves_data = true,
     .syntax = "TABLE READS <table> <LOCAL|OWNER|AUTO>",
     .help = "LOCAL: members answer reads from their own replica, under a lease; AUTO: where "
             "reads dominate."},
    {.index = kCommandIndex<TableList>,
     .name = "TABLE LIST",
     .kind = CommandKind::kCluster,
     .serves_data = false,
     .syntax = "TABLE LIST [LIMIT <n>] [AFTER <table>]",
     .help = "The tables this node holds."},
    {.index = kCommandIndex<TableDump>,
     .name = "TABLE DUMP",
     .kind = CommandKind::kRead,
     .serves_data = true,
     .syntax = "TABLE DUMP <table> [AT <rev> [AFTER <key>]] [LIMIT <n>]",
     .help = "A page of rows with revision, retention, expiry and value, every page from one "
             "snapshot at revision <rev> (what atlas dump reads)."},
    {.index = kCommandIndex<Watch>,
     .name = "WATCH",
     .kind = CommandKind::kStream,
     .serves_data = true,
     .syntax = "WATCH <table>[.<row-prefix>] [FROM <revision>]",
     .help = "WATCHING <rev>, then EVENT <rev> PUT <key> <n> + bytes / EVENT <rev> DEL <key> as "
             "rows change, until UNWATCH <id> (tag it: [ID:<id>] WATCH ...). In atlas they print "
             "as they arrive; Ctrl-C or Enter ends the watch."},
    {.index = kCommandIndex<Unwatch>,
     .name = "UNWATCH",
     .kind = CommandKind::kSession,
     .serves_data = false,
     .syntax = "UNWATCH <id>",
     .help = "Ends the WATCH tagged [ID:<id>] on this connection."},
    {.index = kCommandIndex<TokenCreate>,
     .name = "TOKEN CREATE",
     .kind = CommandKind::kAdmin,
     .serves_data = false,
     .syntax = "TOKEN CREATE [TTL <duration>|TTL NEVER] [USES <n>]",
     .help = "A new join token (default: valid 24h, any number of joins). atlas token create "
             "prints it."},
    {.index = kCommandIndex<TokenList>,
     .name = "TOKEN LIST",
     .kind = CommandKind::kCluster,
     .serves_data = false,
     .syntax = "TOKEN LIST",
     .help = "Every join token: id, created, expires, uses, status."},
    {.index = kCommandIndex<TokenRevoke>,
     .name = "TOKEN REVOKE",
     .kind = CommandKind::kAdmin,
     .serves_data = false,
     .syntax = "TOKEN REVOKE <id>",
     .help = "No node joins with that token any more."},
    {.index = kCommandIndex<NodeStatus>,
     .name = "NODE STATUS",
     .kind = CommandKind::kCluster,
     .serves_data = false,
     .syntax = "NODE STATUS",
     .help = "The cluster as this node sees it, as one JSON document in a BLOB (what atlas "
             "status and the console's /v1/status show)."},
    {.index = kCommandIndex<CaStatus>,
     .name = "CA STATUS",
     .kind = CommandKind::kCluster,
     .serves_data = false,
     .syntax = "CA STATUS",
     .help = "The cluster CAs: the one that signs, those trusted, a rotation's phase and the "
             "members it waits for."},
    {.index = kCommandIndex<CaRotate>,
     .name = "CA ROTATE",
     .kind = CommandKind::kAdmin,
     .serves_data = false,
     .syntax = "CA ROTATE",
     .help = "Replaces the cluster CA while the cluster runs: every node trusts both, renews "
             "from the new one, then the old one goes (on the node holding the CA key)."},
}};

inline constexpr std::array<CommandAlias, 1> kCommandAliases = {{
    {"KEY SET", kCommandIndex<KeyPut>},
}};

namespace internal {
constexpr bool RowsInVariantOrder() {
  for (size_t i = 0; i < kCommands.size(); ++i) {
    if (kCommands[i].index != i) return false;
  }
  return true;
}
constexpr bool NamesUnique() {
  for (size_t i = 0; i < kCommands.size(); ++i) {
    for (size_t j = 0; j < i; ++j) {
      if (kCommands[i].name == kCommands[j].name) return false;
    }
    for (const CommandAlias& alias : kCommandAliases) {
      if (alias.name == kCommands[i].name) return false;
    }
  }
  return true;
}
}  // namespace internal

static_assert(kCommands.size() == std::variant_size_v<Command>,
              "every alternative of Command needs its row in kCommands");
static_assert(internal::RowsInVariantOrder(), "kCommands lists Command's alternatives in order");
static_assert(internal::NamesUnique(), "a command name names one command");

// The row of command type T, or of the command a Request holds.
template <typename T>
constexpr const CommandInfo& InfoOf() {
  static_assert(kCommandIndex<T> < kCommands.size(), "not an alternative of Command");
  return kCommands[kCommandIndex<T>];
}
constexpr const CommandInfo& InfoOf(const Command& command) { return kCommands[command.index()]; }

}  // namespace atlas::socketproto
