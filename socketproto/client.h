// The client side of atlasd's socket protocol (docs/protocol.md; docs/clients.md): a blocking
// connection with the handshake, tagged pipelining and blobs; the frame decoder a non-blocking
// client feeds (atlas-bench); and what applications build on it: transactions, read-modify-
// write with IF REV and retries, WATCH events, row descriptions, and errors as absl::Status
// codes. Used by the atlas REPL, atlas-bench and the tests; tools/python/atlas_client.py is
// the same for Python scripts.
//
// Not thread-safe: one connection per thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"

namespace atlas::client {

// One server frame: `[ID:x] ` prefix split off; `BLOB n` frames carry their payload.
struct ReplyFrame {
  std::optional<std::string> id;
  std::string text;                // the line without prefix and terminator
  std::optional<std::string> blob; // payload of a `BLOB n` or `EVENT r PUT k n` frame
  bool IsFinal() const;            // OK or ERROR ...
  bool IsError() const { return text.rfind("ERROR ", 0) == 0; }
  bool IsFatal() const { return text.rfind("ERROR FATAL", 0) == 0; }
};

// Decodes the frame at the front of `in` into *out: the bytes it took (line, terminator and
// payload), or 0 when `in` does not hold a whole frame yet. DataLoss for a payload length that
// is not a number (the stream cannot be framed after it).
absl::StatusOr<size_t> DecodeFrame(std::string_view in, ReplyFrame* out);

// A reply as a status: OK when it ends in OK, else the ERROR's text with a code a program can
// act on: FailedPrecondition (an IF REV condition failed), PermissionDenied (an ACL, a WORM
// retention), Unavailable (no quorum, a timeout, an unknown outcome, a busy node: a write may
// have applied), InvalidArgument (the command itself: usage, names, limits), Aborted (ERROR
// FATAL: the connection is closed).
absl::Status StatusOf(const std::vector<ReplyFrame>& reply);

class Connection {
 public:
  // Connects and performs the handshake (WELCOME / HELLO 1.0 <client_id> / READY).
  static absl::StatusOr<std::unique_ptr<Connection>> Open(
      const std::string& socket_path, const std::string& client_id = "clientId=atlas",
      std::chrono::milliseconds timeout = std::chrono::milliseconds(0));
  ~Connection();

  const std::string& welcome() const { return welcome_; }

  // Writes raw bytes (a command line must end in "\r\n" or "\n").
  absl::Status Send(std::string_view bytes);
  // Reads the next frame.
  absl::StatusOr<ReplyFrame> Read();
  // Sends `line` (+ "\r\n", + `blob` bytes if given) and reads every frame of its reply, up to
  // and including the final OK / ERROR. For a tagged line, frames with other tags that arrive
  // meanwhile are kept for later Read() calls.
  absl::StatusOr<std::vector<ReplyFrame>> Call(std::string_view line,
                                               std::optional<std::string_view> blob = {});
  // Reads frames until the final frame of request `id` (nullopt: untagged).
  absl::StatusOr<std::vector<ReplyFrame>> ReadReply(const std::optional<std::string>& id);

  int fd() const { return fd_; }
  // Whether Read() has a whole frame without waiting for the socket (one read earlier).
  bool HasFrame() const;

 private:
  explicit Connection(int fd) : fd_(fd) {}
  absl::Status Fill();

  int fd_;
  std::string buf_;
  size_t pos_ = 0;
  std::string welcome_;
  std::vector<ReplyFrame> stash_;  // frames of other tags read while waiting
};

// The request id of a command line, if it has a well-formed [ID:x] prefix.
std::optional<std::string> RequestIdOf(std::string_view line);

// A row as `KEY INFO` and `TABLE DUMP` describe it: `ROW key=... rev=... size=...
// worm_until=... expires=...` (instants in unix ms, 0 for `-`).
struct RowInfo {
  std::string key;
  uint64_t revision = 0;
  uint64_t size = 0;
  int64_t worm_until_ms = 0;
  int64_t expires_ms = 0;
};
std::optional<RowInfo> ParseRowInfo(std::string_view line);

// One page of `TABLE DUMP`: the table's revision that every page of the dump shows, whether
// rows follow (the next page: `TABLE DUMP <t> AT <revision> AFTER <last key>`), and the rows
// with their values. DataLoss when `reply` is not such a page.
struct DumpPage {
  uint64_t revision = 0;
  bool more = false;
  std::vector<std::pair<RowInfo, std::string>> rows;
};
absl::StatusOr<DumpPage> ParseDumpPage(std::vector<ReplyFrame> reply);

// The options of a write (KEY BLOB SET: the value goes as exact bytes).
struct PutOptions {
  std::optional<uint64_t> if_rev;  // IF REV: only if the row is at this revision (0: absent)
  int64_t worm_until_ms = 0;       // WORM EXPIRES (0: none)
  int64_t expire_at_ms = 0;        // EXPIRE AT (0: never)
};
// A write as the line of a KEY BLOB SET (its payload is the value).
std::string PutLine(std::string_view key, size_t value_bytes, const PutOptions& options = {});

// Commands applied together, all or none, within one table or TABLE GROUP (`TXN <n>`).
class Txn {
 public:
  Txn& Get(std::string_view key);   // KEY BLOB GET: a BLOB frame, or EMPTY
  Txn& Info(std::string_view key);  // KEY INFO: a ROW frame, or NOT_FOUND
  Txn& Put(std::string_view key, std::string_view value, const PutOptions& options = {});
  Txn& Del(std::string_view key, std::optional<uint64_t> if_rev = std::nullopt);
  size_t size() const { return commands_; }
  // The commands as they follow the `TXN <size()>` line (for a caller that pipelines).
  const std::string& body() const { return body_; }
  // Sends it; the reply is the reads' frames in order, then OK (or the one ERROR of a
  // transaction refused as a whole).
  absl::StatusOr<std::vector<ReplyFrame>> Commit(Connection& conn) const;

 private:
  std::string body_;
  size_t commands_ = 0;
};

// Read-modify-write of one row: reads its value and revision in one transaction, asks
// `update` for the new value (nullopt: delete the row), and writes that `IF REV` the revision
// it read. When another writer got there first, it reads again and retries, up to `attempts`
// times (then FailedPrecondition). Returns the value written (nullopt: deleted); any other
// error as StatusOf gives it.
using UpdateFn = std::function<std::optional<std::string>(const std::optional<std::string>&)>;
absl::StatusOr<std::optional<std::string>> Update(Connection& conn, std::string_view key,
                                                  const UpdateFn& update, int attempts = 16);

// A WATCH stream's event frame: `EVENT <rev> PUT <key> <n>` (+ value) or `EVENT <rev> DEL <key>`.
struct WatchEvent {
  uint64_t revision = 0;
  bool del = false;
  std::string key;
  std::string value;
};
std::optional<WatchEvent> ParseWatchEvent(const ReplyFrame& frame);

}  // namespace atlas::client
