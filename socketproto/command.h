// The command set of shared/spec/protocol.md §5, parsed from one frame.
//
// Pure and allocation-bounded by the frame size. Validation of keys, table names, principals
// and options happens here so that the executor only sees well-formed commands; every rejection
// carries the exact `ERROR WARN` text that protocol.md promises scripts.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "socketproto/frame_parser.h"

namespace atlas::socketproto {

// Limits of shared/spec/protocol.md §4 and §5.
inline constexpr size_t kMaxKeyBytes = 1024;
inline constexpr size_t kMaxTableBytes = 255;
inline constexpr size_t kMaxPrincipalChars = 256;
// The longest WORM retention, by TTL or EXPIRES: 100 years (365-day years), in milliseconds.
inline constexpr int64_t kRetentionMsMax = int64_t{100} * 365 * 86'400'000;

// A validated `table.row` key (shared/spec/protocol.md §4).
struct Key {
  std::string full;  // "table.row"
  std::string_view table() const { return std::string_view(full).substr(0, full.find('.')); }
  std::string_view row() const { return std::string_view(full).substr(full.find('.') + 1); }
};

// `<table>` or `<table>.<row-prefix>` for SCAN / COUNT / SAMPLE.
struct TableRange {
  std::string table;
  std::string row_prefix;  // may be empty
};

enum class Perm { kRead, kWrite, kOwner };
std::string_view PermName(Perm p);

// WORM retention as written by the client; resolved against the entry's commit timestamp.
struct Worm {
  enum class Kind { kTtl, kExpires } kind;
  int64_t ttl_ms = 0;       // kTtl
  int64_t expires_ms = 0;   // kExpires: unix epoch milliseconds
};

// EXPIRE <duration> or EXPIRE AT <rfc3339>: the row is gone from then on
// (shared/spec/transactions.md §4); resolved against the entry's commit timestamp.
struct Expiry {
  enum class Kind { kTtl, kAt } kind;
  int64_t ttl_ms = 0;  // kTtl
  int64_t at_ms = 0;   // kAt: unix epoch milliseconds
};

struct KeyGet { Key key; };
struct KeyPut {
  Key key;
  std::optional<std::string> principal;
  std::optional<Worm> worm;
  std::string value;
  std::optional<uint64_t> if_rev;  // IF REV <r> (shared/spec/transactions.md §2)
  std::optional<Expiry> expire;
};
struct KeyDel {
  Key key;
  std::optional<uint64_t> if_rev;
};
struct KeyBlobSet {
  Key key;
  std::string value;
  std::optional<uint64_t> if_rev;
  std::optional<Worm> worm;
  std::optional<Expiry> expire;
};
struct KeyBlobGet { Key key; };
// A row's revision, size, retention and expiry: ROW key=... rev=... (shared/spec/transactions.md §1).
struct KeyInfo { Key key; };
// What a transaction may hold, and TXN itself: its commands, applied all or none in one
// consensus object (shared/spec/transactions.md §3). No command in it has a PRINCIPAL option.
using TxnCommand = std::variant<KeyGet, KeyInfo, KeyPut, KeyDel, KeyBlobSet, KeyBlobGet>;
struct Txn { std::vector<TxnCommand> ops; };
struct Scan {
  TableRange range;
  std::optional<uint64_t> limit;
  std::optional<std::string> after;
};
struct Count { TableRange range; };
struct Sample { TableRange range; uint64_t n; };
struct PrincipalAssume { std::string name; };
struct PrincipalWhoami {};
struct AclGrant { std::string table; std::string principal; Perm perm; };
struct AclRevoke { std::string table; std::string principal; Perm perm; };
struct AclList { std::string table; };
struct NodeList {};
struct NodeInfo { uint64_t id; };
struct NodePing { uint64_t id; };
struct NodeLeave { uint64_t id; };  // extension: removes a member (docs/protocol.md)
struct NodeStatus {};  // extension: the cluster as JSON (docs/console.md)
struct QuorumInfo { std::string table; };
// Fn and Fz, changed through consensus in either direction (atlasd's extension).
struct QuorumSet { int fn = 0; int fz = 0; };
struct TableInfo { std::string table; };
// The tables this node holds, in byte order (atlasd's extension: what `atlas dump` walks).
struct TableList {
  std::optional<uint64_t> limit;
  std::optional<std::string> after;
};
// A page of a table's rows with their revisions, retention and expiry, all pages read from one
// snapshot of the table at one revision (atlasd's extension: what `atlas dump` reads). The first
// page takes the snapshot; later pages name its revision (`at`) and the last key of the page
// before (`after`).
struct TableDump {
  std::string table;
  std::optional<uint64_t> at;
  std::optional<std::string> after;
  std::optional<uint64_t> limit;
};
struct TableMove { std::string table; std::string target; };  // region or node id
struct TablePin { std::string table; std::optional<std::string> region; };
struct TableGroup { std::string table; std::optional<std::string> group; };
// Where linearizable reads of the table are answered (docs/consensus.md §Replica read leases):
// LOCAL, every member reads its own replica under a lease; OWNER, through the owner.
struct TableReads {
  enum class Mode { kOwner, kLocal, kAuto };
  std::string table;
  Mode mode = Mode::kOwner;
};
// The table's row changes as they commit, after revision `from` (default: the latest), until
// UNWATCH or disconnect (docs/watch.md).
struct Watch {
  TableRange range;
  std::optional<uint64_t> from;
};
struct Unwatch { std::string id; };  // ends the WATCH tagged [ID:<id>] on this connection
// Join tokens (extension; docs/protocol.md): a new one, the list, revoking one.
struct TokenCreate {
  int64_t ttl_ms = 24 * 3600 * 1000;  // TTL <duration>; 0 with TTL NEVER
  uint32_t uses = 0;                  // USES <n>; 0: unlimited
};
struct TokenList {};
struct TokenRevoke { std::string id; };
// The cluster CAs (extension; docs/security.md §Rotating the CA).
struct CaStatus {};
struct CaRotate {};

using Command =
    std::variant<KeyGet, KeyPut, KeyDel, KeyBlobSet, KeyBlobGet, KeyInfo, Txn, Scan, Count, Sample,
                 PrincipalAssume, PrincipalWhoami, AclGrant, AclRevoke, AclList, NodeList,
                 NodeInfo, NodePing, NodeLeave, QuorumInfo, QuorumSet, TableInfo, TableMove, TablePin,
                 TableGroup, TableReads, TableList, TableDump, Watch, Unwatch, TokenCreate, TokenList, TokenRevoke,
                 NodeStatus, CaStatus, CaRotate>;

struct Request {
  std::optional<std::string> id;  // [ID:<id>]
  Command command;
};

// A command that could not be parsed. The connection stays usable (ERROR WARN).
struct ParseError {
  std::optional<std::string> id;  // set when the tag itself was well-formed
  std::string message;
};

// Parses one frame (after the handshake). `frame.blob` is moved into KEY BLOB SET.
std::variant<Request, ParseError> ParseCommand(Frame frame);

// Validation helpers, exposed for the executor, the client and tests.
// Each returns an empty string when valid, else the reason.
std::string ValidateKey(std::string_view key);        // "table.row"
std::string ValidateTableName(std::string_view table);
std::string ValidatePrincipal(std::string_view name);
bool IsValidUtf8(std::string_view s);
bool IsReservedTable(std::string_view table);  // system tables: names starting with "atlas"

// "90s", "15m", "2h", "7d" (a positive integer and one unit). Returns milliseconds or nullopt.
std::optional<int64_t> ParseDurationMs(std::string_view s);
// RFC 3339 timestamp -> unix epoch milliseconds.
std::optional<int64_t> ParseRfc3339Ms(std::string_view s);
std::string FormatRfc3339Ms(int64_t ms);

}  // namespace atlas::socketproto
