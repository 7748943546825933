// Response frames (shared/spec/protocol.md §3). Every frame of a tagged command carries the tag, so
// a formatter is created per request with its optional id and appends to one buffer; the session
// writes that buffer in one piece, which keeps frames of different commands from interleaving.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace atlas::socketproto {

enum class ErrorLevel { kWarn, kFatal };

// Replaces control characters (C0, DEL, U+0085, U+2028, U+2029) by spaces so that a message
// can never inject a frame; invalid UTF-8 bytes are replaced too.
std::string SanitizeMessage(std::string_view message);

class Reply {
 public:
  explicit Reply(std::optional<std::string> id = std::nullopt) : id_(std::move(id)) {}

  // A text frame: `[ID:x] <line>\r\n`. The caller guarantees `line` has no CR/LF.
  Reply& Line(std::string_view line);
  Reply& Ok() { return Line("OK"); }
  // `ERROR <LEVEL> <message>` with the message sanitised.
  Reply& Error(ErrorLevel level, std::string_view message);
  Reply& Warn(std::string_view message) { return Error(ErrorLevel::kWarn, message); }
  // `BLOB <n>\r\n` followed by the raw bytes (no terminator), as KEY BLOB GET replies.
  Reply& Blob(std::string_view bytes);
  // A header line whose last token is the payload's length, then the raw bytes (a WATCH
  // `EVENT <rev> PUT <key> <length>`). The caller guarantees `header` has no CR/LF.
  Reply& Payload(std::string_view header, std::string_view bytes);

  const std::optional<std::string>& id() const { return id_; }
  // An ERROR frame was added (for metrics: the command failed).
  bool failed() const { return failed_; }
  std::string& buffer() { return out_; }
  std::string Take() { return std::move(out_); }
  // Bytes this reply reserved in its connection's ReplyBudget before it was built (released
  // when the reply is queued: from then on its real size counts).
  size_t reserved() const { return reserved_; }
  void set_reserved(size_t bytes) { reserved_ = bytes; }

 private:
  void Prefix();
  std::optional<std::string> id_;
  std::string out_;
  bool failed_ = false;
  size_t reserved_ = 0;
};

}  // namespace atlas::socketproto
