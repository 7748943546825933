// The reply memory of one connection, bounded in bytes (docs/design.md §Limits,
// docs/security.md). Counts the bytes queued for the client and not yet written, plus the bytes
// running commands have reserved for the replies they are building. A command that is about to
// read a large value (or list many keys) reserves its reply's size first and waits while the
// connection is over its budget; a reply larger than the whole budget runs only when nothing
// else holds any. So a client that sends a thousand tagged reads of a large value and never
// reads the answers costs the server one budget, not a thousand values.
//
// Thread-safe. Waiters run on the thread that frees the room (a write completion) or on the
// caller's thread when the room is there at once.
#pragma once

#include <cstddef>
#include <deque>
#include <functional>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace atlas::socketproto {

class ReplyBudget {
 public:
  // Called with true once the reservation holds, or false when the connection closed first
  // (the command should answer without building its reply: nobody will read it).
  using Go = std::function<void(bool)>;

  explicit ReplyBudget(size_t bytes_max) : bytes_max_(bytes_max) {}

  // Reserves `bytes` for a reply under construction; runs `go` when they fit.
  void Reserve(size_t bytes, Go go);
  // A reply of `bytes` was queued for writing; it had reserved `reserved` of them (0 if none).
  void Queued(size_t bytes, size_t reserved);
  // `bytes` of queued replies reached the socket.
  void Written(size_t bytes);
  // The connection is gone: waiting reservations fail, later ones fail at once.
  void Close();

  // Reserved plus queued bytes; over bytes_max the session stops reading new commands.
  size_t used() const;
  size_t bytes_max() const { return bytes_max_; }
  size_t waiting() const;

 private:
  struct Waiter {
    size_t bytes;
    Go go;
  };
  bool FitsLocked(size_t bytes) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Grants waiting reservations that fit now, in order; returns them to run outside the lock.
  std::vector<Go> WakeLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const size_t bytes_max_;
  mutable absl::Mutex mu_;
  size_t used_ ABSL_GUARDED_BY(mu_) = 0;
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
  std::deque<Waiter> waiters_ ABSL_GUARDED_BY(mu_);
};

}  // namespace atlas::socketproto
