#include "tools/atlas/connection.h"

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstring>

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
  auto welcome = conn->ReadLine();
  if (!welcome.ok()) return welcome.status();
  if (welcome->rfind("WELCOME ", 0) != 0) {
    return absl::UnavailableError(StrCat("unexpected greeting: ", *welcome));
  }
  conn->welcome_ = *welcome;
  if (auto s = conn->Send(StrCat("HELLO 1.0 ", client_id, "\r\n")); !s.ok()) return s;
  auto ready = conn->ReadLine();
  if (!ready.ok()) return ready.status();
  if (*ready != "READY") return absl::UnavailableError(StrCat("handshake refused: ", *ready));
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

absl::StatusOr<std::string> Connection::ReadLine() {
  for (;;) {
    size_t nl = buf_.find('\n', pos_);
    if (nl != std::string::npos) {
      size_t end = nl > pos_ && buf_[nl - 1] == '\r' ? nl - 1 : nl;
      std::string line = buf_.substr(pos_, end - pos_);
      pos_ = nl + 1;
      return line;
    }
    if (auto s = Fill(); !s.ok()) return s;
  }
}

absl::StatusOr<std::string> Connection::ReadExactly(size_t n) {
  while (buf_.size() - pos_ < n) {
    if (auto s = Fill(); !s.ok()) return s;
  }
  std::string out = buf_.substr(pos_, n);
  pos_ += n;
  return out;
}

absl::StatusOr<ReplyFrame> Connection::Read() {
  if (!stash_.empty()) {
    ReplyFrame f = std::move(stash_.front());
    stash_.erase(stash_.begin());
    return f;
  }
  auto line = ReadLine();
  if (!line.ok()) return line.status();
  ReplyFrame f;
  std::string_view rest;
  std::string err;
  std::optional<std::string> id;
  if (socketproto::SplitRequestId(*line, &id, &rest, &err) && id) {
    f.id = id;
    if (!rest.empty() && rest.front() == ' ') rest.remove_prefix(1);
    f.text = std::string(rest);
  } else {
    f.text = std::move(*line);
  }
  // `BLOB <n>` and a WATCH's `EVENT <rev> PUT <key> <n>` carry n raw bytes after the line.
  const bool event_put = f.text.rfind("EVENT ", 0) == 0 &&
                         f.text.find(" PUT ") != std::string::npos;
  if (f.text.rfind("BLOB ", 0) == 0 || event_put) {
    std::string_view n = std::string_view(f.text).substr(f.text.rfind(' ') + 1);
    size_t len = 0;
    auto [p, ec] = std::from_chars(n.data(), n.data() + n.size(), len);
    if (ec != std::errc() || p != n.data() + n.size()) {
      return absl::DataLossError(StrCat("malformed frame: ", f.text));
    }
    auto payload = ReadExactly(len);
    if (!payload.ok()) return payload.status();
    f.blob = std::move(*payload);
  }
  return f;
}

absl::StatusOr<std::vector<ReplyFrame>> Connection::ReadReply(const std::optional<std::string>& id) {
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

}  // namespace atlas::client
