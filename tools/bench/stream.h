// A non-blocking byte stream (Unix or TCP socket) with read and write buffers, shared by the
// line-protocol drivers (atlasd, Redis). Writes never block on a full socket without also reading:
// a deep pipeline of large GETs could otherwise deadlock, the server waiting for us to read its
// replies while we wait for it to read our requests.
#pragma once

#include <chrono>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "tools/bench/driver.h"

namespace atlas::bench {

class Stream {
 public:
  Stream() = default;
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;
  ~Stream();

  // `address` containing '/' is a Unix socket path, otherwise host:port (TCP, no Nagle).
  absl::Status Connect(const std::string& address, Clock::time_point deadline);

  std::string& out() { return out_; }
  // Unread input; Consume() what was parsed.
  std::string_view in() const { return std::string_view(in_).substr(in_pos_); }
  void Consume(size_t n);

  // Writes all of out(), reading whatever arrives meanwhile.
  absl::Status Flush(Clock::time_point deadline);
  // Waits for more input until `deadline`: OK also when nothing came (in() unchanged); an error
  // on EOF or a socket error.
  absl::Status Receive(Clock::time_point deadline);

 private:
  absl::Status ReadAvailable();  // reads until EAGAIN

  int fd_ = -1;
  std::string out_;
  std::string in_;
  size_t in_pos_ = 0;
};

}  // namespace atlas::bench
