// A blocking client connection to atlasd's Unix socket (docs/protocol.md). Used by the atlas
// REPL, atlas-bench and the integration tests.
//
// Not thread-safe: one connection per thread.
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
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

 private:
  explicit Connection(int fd) : fd_(fd) {}
  absl::StatusOr<std::string> ReadLine();
  absl::StatusOr<std::string> ReadExactly(size_t n);
  absl::Status Fill();

  int fd_;
  std::string buf_;
  size_t pos_ = 0;
  std::string welcome_;
  std::vector<ReplyFrame> stash_;  // frames of other tags read while waiting
};

// The request id of a command line, if it has a well-formed [ID:x] prefix.
std::optional<std::string> RequestIdOf(std::string_view line);

}  // namespace atlas::client
