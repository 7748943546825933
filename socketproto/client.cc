#include "socketproto/client.h"

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstring>

#include "socketproto/command.h"
#include "socketproto/frame_parser.h"
#include "socketproto/str.h"

namespace atlas::client {

bool ReplyFrame::IsFinal() const { return text == "OK" || IsError(); }

std::optional<std::string> RequestIdOf(std::string_view line) {
  std::optional<std::string> id;
  std::string_view rest;
  std::string err;
  if (!socketproto::SplitRequestId(line, &id, &rest, &err)) return std::nullopt;
  return id;
}

absl::StatusOr<std::unique_ptr<Connection>> Connection::Open(const std::string& path,
                                                             const std::string& client_id,
                                                             std::chrono::milliseconds timeout) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof addr.sun_path) {
    return absl::InvalidArgumentError(StrCat("socket path too long: ", path));
  }
  std::memcpy(addr.sun_path, path.data(), path.size());
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return absl::UnavailableError(StrCat("socket: ", std::strerror(errno)));
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    int e = errno;
    ::close(fd);
    return absl::UnavailableError(StrCat("cannot connect to ", path, ": ", std::strerror(e)));
  }
  if (timeout.count() > 0) {
    timeval tv{static_cast<time_t>(timeout.count() / 1000),
               static_cast<suseconds_t>((timeout.count() % 1000) * 1000)};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  }
  auto conn = std::unique_ptr<Connection>(new Connection(fd));
  auto welcome = conn->Read();
  if (!welcome.ok()) return welcome.status();
  if (welcome->text.rfind("WELCOME ", 0) != 0) {
    return absl::UnavailableError(StrCat("unexpected greeting: ", welcome->text.substr(0, 200)));
  }
  conn->welcome_ = welcome->text;
  if (auto s = conn->Send(StrCat("HELLO 1.0 ", client_id, "\r\n")); !s.ok()) return s;
  auto ready = conn->Read();
  if (!ready.ok()) return ready.status();
  if (ready->text != "READY") {
    return absl::UnavailableError(StrCat("handshake refused: ", ready->text.substr(0, 200)));
  }
  return conn;
}

Connection::~Connection() { ::close(fd_); }

absl::Status Connection::Send(std::string_view bytes) {
  while (!bytes.empty()) {
    ssize_t n = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      return absl::UnavailableError(StrCat("send: ", std::strerror(errno)));
    }
    bytes.remove_prefix(static_cast<size_t>(n));
  }
  return absl::OkStatus();
}

absl::Status Connection::Fill() {
  if (pos_ > 0 && pos_ == buf_.size()) {
    buf_.clear();
    pos_ = 0;
  } else if (pos_ > (1 << 20)) {
    buf_.erase(0, pos_);
    pos_ = 0;
  }
  char tmp[64 * 1024];
  for (;;) {
    ssize_t n = ::recv(fd_, tmp, sizeof tmp, 0);
    if (n > 0) {
      buf_.append(tmp, static_cast<size_t>(n));
      return absl::OkStatus();
    }
    if (n == 0) return absl::UnavailableError("connection closed by server");
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      return absl::DeadlineExceededError("timed out waiting for the server");
    }
    return absl::UnavailableError(StrCat("recv: ", std::strerror(errno)));
  }
}

namespace {

// The frame at the front of `in`: its line (without terminator), its tag if any, the text after
// the tag, and its payload's length; nullopt until the line is whole. DataLoss for a payload
// length that is not a number.
struct FrameHead {
  std::string_view line;
  std::optional<std::string> id;
  std::string_view text;
  bool has_payload = false;  // BLOB or EVENT ... PUT (a payload of 0 bytes is one too)
  size_t payload = 0;
  size_t bytes = 0;  // line, terminator and payload
};

absl::StatusOr<std::optional<FrameHead>> ParseHead(std::string_view in) {
  const size_t nl = in.find('\n');
  if (nl == std::string_view::npos) return std::nullopt;
  FrameHead h;
  h.line = in.substr(0, nl);
  if (!h.line.empty() && h.line.back() == '\r') h.line.remove_suffix(1);
  std::string err;
  h.text = h.line;
  if (socketproto::SplitRequestId(h.line, &h.id, &h.text, &err) && h.id) {
    if (!h.text.empty() && h.text.front() == ' ') h.text.remove_prefix(1);
  } else {
    h.id.reset();
    h.text = h.line;
  }
  // `BLOB <n>` and a WATCH's `EVENT <rev> PUT <key> <n>` carry n raw bytes after the line.
  const bool event_put = h.text.starts_with("EVENT ") && h.text.find(" PUT ") != h.text.npos;
  h.has_payload = h.text.starts_with("BLOB ") || event_put;
  if (h.has_payload) {
    std::string_view n = h.text.substr(h.text.rfind(' ') + 1);
    auto [p, ec] = std::from_chars(n.data(), n.data() + n.size(), h.payload);
    // (A length no buffer could hold is as malformed as one that is not a number.)
    if (ec != std::errc() || p != n.data() + n.size() || h.payload > (size_t{1} << 48)) {
      return absl::DataLossError(StrCat("malformed frame: ", h.text.substr(0, 200)));
    }
  }
  h.bytes = nl + 1 + h.payload;
  return h;
}

}  // namespace

absl::StatusOr<size_t> DecodeFrame(std::string_view in, ReplyFrame* out) {
  absl::StatusOr<std::optional<FrameHead>> head = ParseHead(in);
  if (!head.ok()) return head.status();
  if (!*head || in.size() < (*head)->bytes) return 0;
  const FrameHead& h = **head;
  ReplyFrame f;
  f.id = h.id;
  f.text = std::string(h.text);
  if (h.has_payload) f.blob = std::string(in.substr(h.bytes - h.payload, h.payload));
  *out = std::move(f);
  return h.bytes;
}

bool Connection::HasFrame() const {
  if (!stash_.empty()) return true;
  absl::StatusOr<std::optional<FrameHead>> head = ParseHead(std::string_view(buf_).substr(pos_));
  // (A malformed frame: Read() says so at once.)
  return !head.ok() || (*head && buf_.size() - pos_ >= (*head)->bytes);
}

absl::StatusOr<ReplyFrame> Connection::Read() {
  if (!stash_.empty()) {
    ReplyFrame f = std::move(stash_.front());
    stash_.erase(stash_.begin());
    return f;
  }
  for (;;) {
    ReplyFrame f;
    absl::StatusOr<size_t> used = DecodeFrame(std::string_view(buf_).substr(pos_), &f);
    if (!used.ok()) return used.status();
    if (*used > 0) {
      pos_ += *used;
      return f;
    }
    if (auto s = Fill(); !s.ok()) return s;
  }
}

absl::StatusOr<std::vector<ReplyFrame>> Connection::ReadReply(
    const std::optional<std::string>& id) {
  std::vector<ReplyFrame> frames;
  // Frames with other tags read while waiting for `id` go back to the stash afterwards.
  std::vector<ReplyFrame> others;
  std::vector<ReplyFrame> stash = std::move(stash_);
  stash_.clear();
  size_t si = 0;
  for (;;) {
    ReplyFrame f;
    if (si < stash.size()) {
      f = std::move(stash[si++]);
    } else {
      auto r = Read();
      if (!r.ok()) return r.status();
      f = std::move(*r);
    }
    // A FATAL error is untagged when the tag itself could not be read; it ends everything.
    bool mine = f.id == id || (f.IsFatal() && !f.id);
    if (!mine) {
      others.push_back(std::move(f));
      continue;
    }
    bool final = f.IsFinal();
    frames.push_back(std::move(f));
    if (final) break;
  }
  for (; si < stash.size(); ++si) others.push_back(std::move(stash[si]));
  stash_ = std::move(others);
  return frames;
}

absl::StatusOr<std::vector<ReplyFrame>> Connection::Call(std::string_view line,
                                                         std::optional<std::string_view> blob) {
  std::string out(line);
  out += "\r\n";
  if (blob) out.append(*blob);
  if (auto s = Send(out); !s.ok()) return s;
  return ReadReply(RequestIdOf(line));
}

absl::Status StatusOf(const std::vector<ReplyFrame>& reply) {
  if (reply.empty()) return absl::UnavailableError("no reply");
  const std::string& last = reply.back().text;
  if (last == "OK") return absl::OkStatus();
  if (!reply.back().IsError()) return absl::DataLossError(StrCat("not a reply: ", last));
  if (reply.back().IsFatal()) return absl::AbortedError(last);
  const std::string_view msg = std::string_view(last).substr(sizeof("ERROR WARN ") - 1);
  if (msg.find("condition failed") != std::string_view::npos) {
    return absl::FailedPreconditionError(last);
  }
  if (msg.starts_with("permission denied") || msg.find("WORM-protected") != msg.npos) {
    return absl::PermissionDeniedError(last);
  }
  for (std::string_view transient : {"timeout", "quorum unavailable", "overloaded", "NOT_OWNER",
                                     "TIMEOUT", "BUSY", "QUORUM_UNAVAILABLE"}) {
    if (msg.starts_with(transient)) return absl::UnavailableError(last);
  }
  if (msg.find("outcome unknown") != msg.npos) return absl::UnavailableError(last);
  return absl::InvalidArgumentError(last);
}

namespace {

// The value of `name=` among the space-separated fields of `line` ("" when absent).
std::string_view FieldOf(std::string_view line, std::string_view name) {
  for (size_t p = line.find(' '); p != std::string_view::npos; p = line.find(' ', p + 1)) {
    std::string_view rest = line.substr(p + 1);
    if (rest.size() > name.size() && rest.starts_with(name) && rest[name.size()] == '=') {
      rest.remove_prefix(name.size() + 1);
      return rest.substr(0, rest.find(' '));
    }
  }
  return {};
}

std::optional<uint64_t> NumberOf(std::string_view s) {
  uint64_t n = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), n);
  if (ec != std::errc() || p != s.data() + s.size()) return std::nullopt;
  return n;
}

// An instant field: 0 for "-".
std::optional<int64_t> InstantOf(std::string_view s) {
  if (s == "-") return 0;
  return socketproto::ParseRfc3339Ms(s);
}

}  // namespace

std::optional<RowInfo> ParseRowInfo(std::string_view line) {
  if (!line.starts_with("ROW ")) return std::nullopt;
  RowInfo r;
  r.key = std::string(FieldOf(line, "key"));
  std::optional<uint64_t> rev = NumberOf(FieldOf(line, "rev"));
  std::optional<uint64_t> size = NumberOf(FieldOf(line, "size"));
  std::optional<int64_t> worm = InstantOf(FieldOf(line, "worm_until"));
  std::optional<int64_t> expires = InstantOf(FieldOf(line, "expires"));
  if (r.key.empty() || !rev || !size || !worm || !expires) return std::nullopt;
  r.revision = *rev;
  r.size = *size;
  r.worm_until_ms = *worm;
  r.expires_ms = *expires;
  return r;
}

absl::StatusOr<DumpPage> ParseDumpPage(std::vector<ReplyFrame> reply) {
  if (absl::Status s = StatusOf(reply); !s.ok()) return s;
  const std::string& head = reply.front().text;  // DUMP table= rev= rows= more=
  std::optional<uint64_t> rev = NumberOf(FieldOf(head, "rev"));
  std::optional<uint64_t> rows = NumberOf(FieldOf(head, "rows"));
  if (!head.starts_with("DUMP ") || !rev || !rows || reply.size() != 2 * *rows + 2) {
    return absl::DataLossError(StrCat("not a TABLE DUMP page: ", head.substr(0, 200)));
  }
  DumpPage page;
  page.revision = *rev;
  page.more = FieldOf(head, "more") == "1";
  page.rows.reserve(*rows);
  for (size_t i = 1; i + 1 < reply.size(); i += 2) {
    std::optional<RowInfo> row = ParseRowInfo(reply[i].text);
    if (!row || !reply[i + 1].blob) {
      return absl::DataLossError(StrCat("not a dumped row: ", reply[i].text.substr(0, 200)));
    }
    page.rows.emplace_back(std::move(*row), std::move(*reply[i + 1].blob));
  }
  return page;
}

std::string PutLine(std::string_view key, size_t value_bytes, const PutOptions& o) {
  std::string line = StrCat("KEY BLOB SET ", key);
  if (o.if_rev) StrAppend(&line, " IF REV ", *o.if_rev);
  if (o.worm_until_ms > 0) {
    StrAppend(&line, " WORM EXPIRES ", socketproto::FormatRfc3339Ms(o.worm_until_ms));
  }
  if (o.expire_at_ms > 0) {
    StrAppend(&line, " EXPIRE AT ", socketproto::FormatRfc3339Ms(o.expire_at_ms));
  }
  StrAppend(&line, " ", value_bytes);
  return line;
}

Txn& Txn::Get(std::string_view key) {
  StrAppend(&body_, "KEY BLOB GET ", key, "\r\n");
  ++commands_;
  return *this;
}

Txn& Txn::Info(std::string_view key) {
  StrAppend(&body_, "KEY INFO ", key, "\r\n");
  ++commands_;
  return *this;
}

Txn& Txn::Put(std::string_view key, std::string_view value, const PutOptions& options) {
  StrAppend(&body_, PutLine(key, value.size(), options), "\r\n", value);
  ++commands_;
  return *this;
}

Txn& Txn::Del(std::string_view key, std::optional<uint64_t> if_rev) {
  StrAppend(&body_, "KEY DEL ", key);
  if (if_rev) StrAppend(&body_, " IF REV ", *if_rev);
  body_ += "\r\n";
  ++commands_;
  return *this;
}

absl::StatusOr<std::vector<ReplyFrame>> Txn::Commit(Connection& conn) const {
  return conn.Call(StrCat("TXN ", commands_), body_);
}

absl::StatusOr<std::optional<std::string>> Update(Connection& conn, std::string_view key,
                                                  const UpdateFn& update, int attempts) {
  for (int attempt = 0; attempt < attempts; ++attempt) {
    absl::StatusOr<std::vector<ReplyFrame>> read = Txn().Get(key).Info(key).Commit(conn);
    if (!read.ok()) return read.status();
    if (absl::Status s = StatusOf(*read); !s.ok()) return s;
    if (read->size() != 3) return absl::DataLossError("unexpected reply to a read transaction");
    std::optional<std::string> current = (*read)[0].blob;  // EMPTY: none
    std::optional<RowInfo> row = ParseRowInfo((*read)[1].text);
    const uint64_t rev = row ? row->revision : 0;
    std::optional<std::string> next = update(current);
    absl::StatusOr<std::vector<ReplyFrame>> wrote =
        next ? conn.Call(PutLine(key, next->size(), {.if_rev = rev}), *next)
             : conn.Call(StrCat("KEY DEL ", key, " IF REV ", rev));
    if (!wrote.ok()) return wrote.status();
    absl::Status s = StatusOf(*wrote);
    if (s.ok()) return next;
    if (!absl::IsFailedPrecondition(s)) return s;  // else another writer won: read again
  }
  return absl::FailedPreconditionError(
      StrCat("update of '", key, "': still contended after ", attempts, " attempts"));
}

std::optional<WatchEvent> ParseWatchEvent(const ReplyFrame& frame) {
  // EVENT <rev> PUT <key> <n> | EVENT <rev> DEL <key>
  std::vector<std::string_view> f;
  for (std::string_view rest = frame.text; !rest.empty();) {
    size_t sp = rest.find(' ');
    f.push_back(rest.substr(0, sp));
    rest = sp == rest.npos ? std::string_view() : rest.substr(sp + 1);
  }
  if (f.size() < 4 || f[0] != "EVENT" || (f[2] != "PUT" && f[2] != "DEL")) return std::nullopt;
  std::optional<uint64_t> rev = NumberOf(f[1]);
  if (!rev) return std::nullopt;
  WatchEvent e{*rev, f[2] == "DEL", std::string(f[3]), frame.blob.value_or("")};
  return e;
}

}  // namespace atlas::client
