// Must NOT compile under clang's -Werror=thread-safety: it reads a guarded member without its
// mutex. The thread_safety_check_rejects test proves the check over the daemon's sources is
// live by asserting that clang rejects this file. Never built into a binary.
#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace atlas::fixture {

class Counter {
 public:
  void Add() {
    absl::MutexLock lock(&mu_);
    ++count_;  // fine: under mu_
  }
  int Racy() const { return count_; }  // the bug the check must catch: no lock

 private:
  mutable absl::Mutex mu_;
  int count_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace atlas::fixture
