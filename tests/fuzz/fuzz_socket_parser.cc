// libFuzzer target for the untrusted side of the socket protocol (shared/spec/protocol.md §1-§5):
// socketproto::FrameParser, ParseCommand and the Reply formatter with SanitizeMessage.
//
// Input layout (so that the fuzzer also chooses how the stream is cut into reads):
//   byte 0       header: bits 0-2 = k, the number of chunk-size bytes that follow;
//                        bits 3-4 = limits profile (kProfiles below); bits 5-7 ignored.
//   bytes 1..k   chunk sizes, used cyclically, each `b + 1` bytes (1..256).
//                k == 0 feeds the stream one byte at a time.
//   the rest     the client byte stream: handshake line, then command frames.
// Seed files in tests/fuzz/corpus/socket_parser/ start with a printable header, e.g. ' ' (0x20:
// byte-at-a-time, default limits) or '#' (0x23: three chunk-size bytes follow).
//
// Invariants (each failure prints what broke and aborts, which libFuzzer reports as a crash):
//   - the parser never buffers more than max_line_bytes + 2 * max_blob_bytes + 1 bytes;
//   - kNeedMore consumes all input; frames hold no LF and are never blank;
//   - a blob frame's line announces exactly that many bytes, within the blob limit;
//   - one chunk and many chunks give the same frames, the same fatal error, the same leftover;
//   - ParseError messages are non-empty; a sanitized message is valid UTF-8 without CR, LF,
//     C0, DEL, C1, U+2028 or U+2029, never longer than its input, and sanitizing is idempotent;
//   - every reply is exactly one frame (one LF, at the end, after CR) carrying the request tag;
//   - accepted keys pass ValidateKey; KEY PUT values are the verbatim tail of the line;
//     WORM EXPIRES timestamps survive FormatRfc3339Ms / ParseRfc3339Ms.
#include <algorithm>
#include <charconv>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <variant>
#include <vector>

#include "socketproto/command.h"
#include "socketproto/formatter.h"
#include "socketproto/frame_parser.h"
#include "socketproto/limits.h"
#include "socketproto/str.h"
#include "tests/fuzz/fuzz_check.h"

namespace atlas::socketproto {
namespace {

// Small limits so that short inputs reach the "too large" paths.
struct Profile {
  size_t max_line_bytes;
  size_t max_blob_bytes;
};
constexpr Profile kProfiles[] = {{4096, 65536}, {64, 1024}, {8, 16}, {4096, 0}};

// What the parser produced: a frame, or the fatal error that ended the stream.
struct Event {
  bool fatal = false;
  std::string line;
  std::optional<std::string> blob;
  std::string error;
  bool operator==(const Event&) const = default;
};

struct Outcome {
  std::vector<Event> events;
  size_t leftover_bytes = 0;  // buffered_bytes() at the end, when no fatal error ended it
  bool operator==(const Outcome&) const = default;
};

// Runs `stream` through one parser, cut into chunks of the given sizes (cyclic; empty: 1 byte).
Outcome RunFramer(std::string_view stream, const Limits& limits, const std::vector<size_t>& sizes) {
  // A line, a transaction's frames (at most max_blob_bytes) and the payload being read.
  const size_t bound = limits.max_line_bytes + 2 * limits.max_blob_bytes + 1;
  FrameParser parser(limits);
  Outcome out;
  bool handshake_done = false;
  size_t pos = 0, chunk_index = 0;
  while (pos < stream.size()) {
    size_t n = sizes.empty() ? 1 : sizes[chunk_index++ % sizes.size()];
    std::string_view chunk = stream.substr(pos, n);
    pos += chunk.size();
    for (;;) {
      Frame frame;
      std::string error;
      ParseStatus st = parser.Next(&chunk, &frame, &error);
      FUZZ_CHECK(parser.buffered_bytes() <= bound);
      if (st == ParseStatus::kNeedMore) {
        FUZZ_CHECK(chunk.empty());
        break;
      }
      if (st == ParseStatus::kFatal) {
        FUZZ_CHECK(!error.empty());
        out.events.push_back(Event{true, "", std::nullopt, std::move(error)});
        return out;
      }
      FUZZ_CHECK(frame.line.find('\n') == std::string::npos);
      FUZZ_CHECK(frame.line.size() <= limits.max_line_bytes);
      FUZZ_CHECK(!frame.blob || frame.blob->size() <= limits.max_blob_bytes);
      FUZZ_CHECK(!frame.blob || handshake_done);
      out.events.push_back(Event{false, std::move(frame.line), std::move(frame.blob), ""});
      if (!handshake_done) {
        handshake_done = true;
        parser.set_handshake_done();
      }
    }
  }
  out.leftover_bytes = parser.buffered_bytes();
  return out;
}

bool IsBlank(std::string_view s) {
  for (char c : s) {
    if (!IsAsciiSpace(c)) return false;
  }
  return true;
}

void CheckTokens(std::string_view line) {
  for (const Token& t : Tokenize(line)) {
    FUZZ_CHECK(!t.text.empty());
    FUZZ_CHECK(line.substr(t.offset, t.text.size()) == t.text);
    for (char c : t.text) FUZZ_CHECK(!IsAsciiSpace(c));
  }
}

void CheckSanitized(std::string_view in) {
  std::string s = SanitizeMessage(in);
  FUZZ_CHECK(s.size() <= in.size());
  FUZZ_CHECK(IsValidUtf8(s));
  for (size_t i = 0; i < s.size(); ++i) {
    auto c = static_cast<unsigned char>(s[i]);
    FUZZ_CHECK(c >= 0x20 && c != 0x7F);
    // C1 controls incl. U+0085 are C2 80..C2 9F; U+2028 / U+2029 are E2 80 A8 / E2 80 A9.
    if (c == 0xC2) FUZZ_CHECK(static_cast<unsigned char>(s[i + 1]) >= 0xA0);
    if (c == 0xE2 && static_cast<unsigned char>(s[i + 1]) == 0x80) {
      auto c3 = static_cast<unsigned char>(s[i + 2]);
      FUZZ_CHECK(c3 != 0xA8 && c3 != 0xA9);
    }
  }
  FUZZ_CHECK(SanitizeMessage(s) == s);
}

// A reply to one request must be exactly one frame of that request.
void CheckOneFrame(const std::optional<std::string>& id, const std::string& bytes) {
  FUZZ_CHECK(bytes.size() >= 2 && bytes.substr(bytes.size() - 2) == "\r\n");
  FUZZ_CHECK(bytes.find('\n') == bytes.size() - 1);
  FUZZ_CHECK(bytes.find('\r') == bytes.size() - 2);
  if (id) FUZZ_CHECK(bytes.rfind("[ID:" + *id + "] ", 0) == 0);
}

void CheckError(const std::optional<std::string>& id, ErrorLevel level, std::string_view msg) {
  CheckSanitized(msg);
  std::string out = Reply(id).Error(level, msg).Take();
  CheckOneFrame(id, out);
  std::string_view want = level == ErrorLevel::kWarn ? "ERROR WARN " : "ERROR FATAL ";
  FUZZ_CHECK(out.find(want) == (id ? id->size() + 6 : 0));
}

void CheckKey(const Key& key) {
  FUZZ_CHECK(ValidateKey(key.full).empty());
  FUZZ_CHECK(!key.table().empty() && !key.row().empty());
}

void CheckRequest(const Request& req, const Frame& frame) {
  std::visit(
      [&](const auto& cmd) {
        using T = std::decay_t<decltype(cmd)>;
        if constexpr (std::is_same_v<T, KeyGet> || std::is_same_v<T, KeyDel> ||
                      std::is_same_v<T, KeyBlobGet>) {
          CheckKey(cmd.key);
        } else if constexpr (std::is_same_v<T, KeyPut>) {
          CheckKey(cmd.key);
          FUZZ_CHECK(!cmd.value.empty() && !IsAsciiSpace(cmd.value[0]));
          FUZZ_CHECK(frame.line.size() >= cmd.value.size() &&
                     frame.line.compare(frame.line.size() - cmd.value.size(), cmd.value.size(),
                                        cmd.value) == 0);
          if (cmd.principal) FUZZ_CHECK(ValidatePrincipal(*cmd.principal).empty());
          if (cmd.worm && cmd.worm->kind == Worm::Kind::kExpires) {
            std::optional<int64_t> back = ParseRfc3339Ms(FormatRfc3339Ms(cmd.worm->expires_ms));
            FUZZ_CHECK(back && *back == cmd.worm->expires_ms);
          }
          if (cmd.worm && cmd.worm->kind == Worm::Kind::kTtl) FUZZ_CHECK(cmd.worm->ttl_ms > 0);
        } else if constexpr (std::is_same_v<T, KeyBlobSet>) {
          CheckKey(cmd.key);
          FUZZ_CHECK(frame.blob && cmd.value == *frame.blob);
          std::string out = Reply(req.id).Blob(cmd.value).Take();
          FUZZ_CHECK(out.size() >= cmd.value.size() &&
                     out.compare(out.size() - cmd.value.size(), cmd.value.size(), cmd.value) == 0);
          CheckOneFrame(req.id, out.substr(0, out.size() - cmd.value.size()));
        } else if constexpr (std::is_same_v<T, Scan> || std::is_same_v<T, Count> ||
                             std::is_same_v<T, Sample>) {
          FUZZ_CHECK(ValidateTableName(cmd.range.table).empty());
        } else if constexpr (std::is_same_v<T, PrincipalAssume>) {
          FUZZ_CHECK(ValidatePrincipal(cmd.name).empty());
        } else if constexpr (std::is_same_v<T, AclGrant> || std::is_same_v<T, AclRevoke>) {
          FUZZ_CHECK(ValidateTableName(cmd.table).empty());
          FUZZ_CHECK(ValidatePrincipal(cmd.principal).empty());
          CheckOneFrame(req.id, Reply(req.id).Line(PermName(cmd.perm)).Take());
        } else if constexpr (std::is_same_v<T, AclList> || std::is_same_v<T, QuorumInfo> ||
                             std::is_same_v<T, TableInfo> || std::is_same_v<T, TableMove>) {
          FUZZ_CHECK(ValidateTableName(cmd.table).empty());
        } else if constexpr (std::is_same_v<T, TablePin> || std::is_same_v<T, TableGroup> ||
                             std::is_same_v<T, TableReads>) {
          FUZZ_CHECK(ValidateTableName(cmd.table).empty());
        }
      },
      req.command);
  CheckOneFrame(req.id, Reply(req.id).Ok().Take());
}

// The length n when `line` reads `[ID:<anything>] KEY BLOB SET <key> [options] <n>` (any
// tag, even a malformed one, as long as it is closed by ']'), or an untagged one, with n a
// decimal number as the last word; nullopt otherwise.
std::optional<uint64_t> BlobAnnouncement(std::string_view line) {
  while (!line.empty() && IsAsciiSpace(line.front())) line.remove_prefix(1);
  if (line.size() >= 4 && EqualsIgnoreCase(line.substr(0, 4), "[ID:")) {
    size_t close = line.find(']');
    if (close == std::string_view::npos) return std::nullopt;
    line.remove_prefix(close + 1);
  }
  std::vector<Token> t = Tokenize(line);
  if (t.size() < 5 || !EqualsIgnoreCase(t[0].text, "KEY") || !EqualsIgnoreCase(t[1].text, "BLOB") ||
      !EqualsIgnoreCase(t[2].text, "SET")) {
    return std::nullopt;
  }
  uint64_t n = 0;
  std::string_view len = t.back().text;
  auto [ptr, ec] = std::from_chars(len.data(), len.data() + len.size(), n);
  if (ec != std::errc() || ptr != len.data() + len.size()) return std::nullopt;
  return n;
}

void CheckCommandFrame(const Frame& frame) {
  FUZZ_CHECK(!IsBlank(frame.line));
  CheckTokens(frame.line);
  std::optional<std::string> tag;
  std::string_view rest;
  std::string tag_error;
  bool tag_ok = SplitRequestId(frame.line, &tag, &rest, &tag_error);
  FUZZ_CHECK(tag_ok || !tag_error.empty());
  std::optional<uint64_t> announced = BlobAnnouncement(frame.line);
  if (frame.blob) {
    // The framer only reads a payload after a `KEY BLOB SET <key> <n>` line with n = its size.
    FUZZ_CHECK(announced && *announced == frame.blob->size());
  } else if (announced && !tag_ok) {
    // A blob announced behind a malformed tag still has its payload on the wire: framing the
    // next line from that payload would execute the blob's bytes as commands (smuggling). The
    // stream must be framed with the payload, or end with ERROR FATAL like a bad length does.
    std::fprintf(stderr, "blob of %llu bytes announced behind a bad tag (%s) was not framed\n",
                 static_cast<unsigned long long>(*announced), tag_error.c_str());
    FUZZ_CHECK(!"payload of a KEY BLOB SET with a malformed [ID:] tag is parsed as commands");
  }
  auto parsed = ParseCommand(frame);
  if (const auto* err = std::get_if<ParseError>(&parsed)) {
    FUZZ_CHECK(!err->message.empty());
    FUZZ_CHECK(!err->id || (tag_ok && err->id == tag));
    CheckError(err->id, ErrorLevel::kWarn, err->message);
    return;
  }
  const Request& req = std::get<Request>(parsed);
  FUZZ_CHECK(tag_ok && req.id == tag);
  CheckRequest(req, frame);
}

void FuzzOne(const uint8_t* data, size_t size) {
  if (size == 0) return;
  const uint8_t header = data[0];
  const size_t k = std::min<size_t>(header & 7, size - 1);
  const Profile& profile = kProfiles[(header >> 3) & 3];
  std::vector<size_t> sizes;
  for (size_t i = 0; i < k; ++i) sizes.push_back(size_t{data[1 + i]} + 1);
  std::string_view stream(reinterpret_cast<const char*>(data) + 1 + k, size - 1 - k);

  Limits limits;
  limits.max_line_bytes = profile.max_line_bytes;
  limits.max_blob_bytes = profile.max_blob_bytes;

  Outcome whole = RunFramer(stream, limits, {stream.size() + 1});
  Outcome pieces = RunFramer(stream, limits, sizes);
  if (!(whole == pieces)) {
    std::fprintf(stderr, "one chunk: %zu events, many chunks: %zu events\n", whole.events.size(),
                 pieces.events.size());
  }
  FUZZ_CHECK(whole == pieces);

  for (size_t i = 0; i < whole.events.size(); ++i) {
    const Event& e = whole.events[i];
    if (e.fatal) {
      CheckError(std::nullopt, ErrorLevel::kFatal, e.error);
      continue;
    }
    Frame frame{e.line, e.blob};
    if (i == 0) {
      CheckTokens(frame.line);  // the handshake line, which the session checks itself
    } else {
      CheckCommandFrame(frame);
    }
    // Untrusted bytes quoted back in an error must never break framing.
    CheckError(std::nullopt, ErrorLevel::kWarn, frame.line);
    if (frame.blob) CheckSanitized(*frame.blob);
  }
}

}  // namespace
}  // namespace atlas::socketproto

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  atlas::socketproto::FuzzOne(data, size);
  return 0;
}
