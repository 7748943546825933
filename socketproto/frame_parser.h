// Incremental framing of the client byte stream (shared/spec/protocol.md §1, §3, KEY BLOB SET).
//
// Pure: bytes in, frames out; no I/O, so it can be fuzzed (tests/fuzz/fuzz_socket_parser.cc).
// A frame is one command line plus, when that line is a well-formed `KEY BLOB SET <key> <n>`,
// exactly n raw payload bytes. The parser has to recognise blob announcements itself because
// the payload is not line-framed: everything else about a line is left to ParseCommand.
//
// Not thread-safe; one parser per connection.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "socketproto/limits.h"

namespace atlas::socketproto {

struct Frame {
  std::string line;                 // without the "\r\n" / "\n" terminator
  std::optional<std::string> blob;  // the payload, when the line announced one
  // A `TXN <n>` line: the n frames after it (shared/spec/transactions.md §3), or, when they
  // were over a limit, none and `body_error` saying which (they were read and dropped).
  std::vector<Frame> body = {};
  std::string body_error = {};
};

// The most commands one TXN may hold (the contract asks for at least 10,000).
inline constexpr uint64_t kTxnCommandsMax = 100'000;

enum class ParseStatus {
  kFrame,     // *frame holds a complete frame
  kNeedMore,  // all input consumed; feed more bytes
  kFatal,     // stream can no longer be framed: send ERROR FATAL <error> and close
};

class FrameParser {
 public:
  explicit FrameParser(const Limits& limits) : limits_(limits) {}

  // Until the handshake is done, lines are returned without looking for blob announcements.
  void set_handshake_done() { handshake_done_ = true; }

  // Consumes bytes from the front of *input. Blank lines are skipped (shared/spec/protocol.md §3).
  // A TXN line and the n frames after it come out as one frame.
  ParseStatus Next(std::string_view* input, Frame* frame, std::string* error);

  // Bytes buffered inside the parser (a partial line or payload, a transaction's frames so
  // far): at most max_line_bytes + 2 × max_blob_bytes + 1 (a transaction's frames, and the
  // payload of the next one being read).
  size_t buffered_bytes() const { return line_.size() + payload_.size() + txn_held_bytes_; }

 private:
  // One line, with its payload when it announces one.
  ParseStatus NextLine(std::string_view* input, Frame* frame, std::string* error);
  // Whether a line opens a transaction: sets txn_ (false with *error when its count is bad).
  bool InspectTxn(Frame& frame, std::string* error);

  // Decides whether a finished line announces a payload. Returns false on a bad length.
  bool InspectLine(std::string* error);

  Limits limits_;
  bool handshake_done_ = false;
  std::string line_;
  bool in_payload_ = false;
  uint64_t payload_remaining_ = 0;
  std::string payload_;
  std::string pending_line_;  // the line that announced the payload being read
  // The transaction being gathered: its TXN frame, and how many frames it still takes.
  std::optional<Frame> txn_;
  uint64_t txn_remaining_ = 0;
  uint64_t txn_bytes_ = 0;       // its frames' bytes so far, kept or dropped
  uint64_t txn_held_bytes_ = 0;  // those kept
};

// Splits a line into whitespace-separated tokens, remembering where each starts so a command
// can take "the rest of the line" verbatim (KEY PUT values keep inner runs of spaces).
struct Token {
  std::string_view text;
  size_t offset;  // into the line
};
bool IsAsciiSpace(char c);
std::vector<Token> Tokenize(std::string_view line, size_t max_tokens = SIZE_MAX);

// Splits an optional `[ID:<id>]` prefix off a line. Returns false (with *error) when the line
// starts with "[ID:" but the tag is malformed.
bool SplitRequestId(std::string_view line, std::optional<std::string>* id, std::string_view* rest,
                    std::string* error);

}  // namespace atlas::socketproto
