#include "tools/bench/stream.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "absl/status/statusor.h"
#include "socketproto/str.h"

namespace atlas::bench {
namespace {

absl::Status Errno(std::string_view what) {
  return absl::UnavailableError(StrCat(what, ": ", std::strerror(errno)));
}

int MillisUntil(Clock::time_point deadline) {
  auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now()).count();
  return static_cast<int>(std::clamp<int64_t>(left, 0, 1 << 30));
}

// Waits for `events` on `fd`; false on timeout.
absl::StatusOr<bool> WaitFor(int fd, short events, Clock::time_point deadline, short* revents) {
  for (;;) {
    pollfd p{fd, events, 0};
    int n = ::poll(&p, 1, MillisUntil(deadline));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Errno("poll");
    *revents = p.revents;
    return n > 0;
  }
}

}  // namespace

Stream::~Stream() {
  if (fd_ >= 0) ::close(fd_);
}

absl::Status Stream::Connect(const std::string& address, Clock::time_point deadline) {
  int fd = -1;
  if (address.find('/') != std::string::npos) {
    sockaddr_un sa{};
    sa.sun_family = AF_UNIX;
    if (address.size() >= sizeof sa.sun_path) {
      return absl::InvalidArgumentError(StrCat("socket path too long: ", address));
    }
    std::memcpy(sa.sun_path, address.data(), address.size());
    fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return Errno("socket");
    if (::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) {
      auto s = Errno(StrCat("connect ", address));
      ::close(fd);
      return s;
    }
  } else {
    size_t colon = address.rfind(':');
    if (colon == std::string::npos) {
      return absl::InvalidArgumentError(StrCat("expected host:port or a socket path: ", address));
    }
    std::string host = address.substr(0, colon), port = address.substr(colon + 1);
    if (host.size() > 2 && host.front() == '[' && host.back() == ']') {
      host = host.substr(1, host.size() - 2);
    }
    addrinfo hints{};
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* res = nullptr;
    if (int rc = ::getaddrinfo(host.c_str(), port.c_str(), &hints, &res); rc != 0) {
      return absl::UnavailableError(StrCat("resolve ", address, ": ", ::gai_strerror(rc)));
    }
    absl::Status last = absl::UnavailableError(StrCat("connect ", address, ": no address"));
    for (addrinfo* ai = res; ai != nullptr && fd < 0; ai = ai->ai_next) {
      fd = ::socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
      if (fd < 0) continue;
      if (::connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
        last = Errno(StrCat("connect ", address));
        ::close(fd);
        fd = -1;
      }
    }
    ::freeaddrinfo(res);
    if (fd < 0) return last;
    // Requests are flushed as whole pipelines: Nagle would only add delay.
    int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  }
  (void)deadline;  // connect() to a local listener does not block for long
  ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
  fd_ = fd;
  return absl::OkStatus();
}

void Stream::Consume(size_t n) {
  in_pos_ += n;
  if (in_pos_ == in_.size()) {
    in_.clear();
    in_pos_ = 0;
  } else if (in_pos_ > (size_t{1} << 16) && in_pos_ * 2 > in_.size()) {
    in_.erase(0, in_pos_);  // keep the buffer from growing while replies trickle in
    in_pos_ = 0;
  }
}

absl::Status Stream::ReadAvailable() {
  for (;;) {
    size_t old = in_.size();
    in_.resize(old + 65536);
    ssize_t n = ::read(fd_, in_.data() + old, 65536);
    in_.resize(old + static_cast<size_t>(std::max<ssize_t>(n, 0)));
    if (n > 0) {
      if (n < 65536) return absl::OkStatus();
      continue;
    }
    if (n == 0) return absl::UnavailableError("connection closed by the server");
    if (errno == EAGAIN || errno == EWOULDBLOCK) return absl::OkStatus();
    if (errno != EINTR) return Errno("read");
  }
}

absl::Status Stream::Flush(Clock::time_point deadline) {
  size_t done = 0;
  while (done < out_.size()) {
    ssize_t n = ::send(fd_, out_.data() + done, out_.size() - done, MSG_NOSIGNAL);
    if (n > 0) {
      done += static_cast<size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) return Errno("send");
    short revents = 0;
    auto ready = WaitFor(fd_, POLLIN | POLLOUT, deadline, &revents);
    if (!ready.ok()) return ready.status();
    if (!*ready) return absl::DeadlineExceededError("send: timed out");
    if (revents & (POLLIN | POLLHUP | POLLERR)) {
      if (auto s = ReadAvailable(); !s.ok()) return s;
    }
  }
  out_.clear();
  return absl::OkStatus();
}

absl::Status Stream::Receive(Clock::time_point deadline) {
  short revents = 0;
  auto ready = WaitFor(fd_, POLLIN, deadline, &revents);
  if (!ready.ok()) return ready.status();
  if (!*ready) return absl::OkStatus();
  return ReadAvailable();
}

}  // namespace atlas::bench
