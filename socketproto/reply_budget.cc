#include "socketproto/reply_budget.h"

#include <utility>
#include <vector>

namespace atlas::socketproto {

bool ReplyBudget::FitsLocked(size_t bytes) const {
  // Alone, any reply fits: a value larger than the budget must still be readable.
  return used_ == 0 || used_ + bytes <= bytes_max_;
}

std::vector<ReplyBudget::Go> ReplyBudget::WakeLocked() {
  std::vector<Go> run;
  // First in, first served: a large reservation is not starved by a stream of small ones.
  while (!waiters_.empty() && FitsLocked(waiters_.front().bytes)) {
    used_ += waiters_.front().bytes;
    run.push_back(std::move(waiters_.front().go));
    waiters_.pop_front();
  }
  return run;
}

void ReplyBudget::Reserve(size_t bytes, Go go) {
  bool granted = false, closed = false;
  {
    absl::MutexLock lock(&mu_);
    if (closed_) {
      closed = true;
    } else if (waiters_.empty() && FitsLocked(bytes)) {
      used_ += bytes;
      granted = true;
    } else {
      waiters_.push_back({bytes, std::move(go)});
    }
  }
  if (closed) return go(false);
  if (granted) go(true);
}

void ReplyBudget::Queued(size_t bytes, size_t reserved) {
  std::vector<Go> run;
  {
    absl::MutexLock lock(&mu_);
    used_ = used_ + bytes >= reserved ? used_ + bytes - reserved : 0;
    if (reserved > bytes) run = WakeLocked();
  }
  for (Go& go : run) go(true);
}

void ReplyBudget::Written(size_t bytes) {
  std::vector<Go> run;
  {
    absl::MutexLock lock(&mu_);
    used_ = used_ >= bytes ? used_ - bytes : 0;
    run = WakeLocked();
  }
  for (Go& go : run) go(true);
}

void ReplyBudget::Close() {
  std::deque<Waiter> failed;
  {
    absl::MutexLock lock(&mu_);
    closed_ = true;
    failed.swap(waiters_);
  }
  for (Waiter& w : failed) w.go(false);
}

size_t ReplyBudget::used() const {
  absl::MutexLock lock(&mu_);
  return used_;
}

size_t ReplyBudget::waiting() const {
  absl::MutexLock lock(&mu_);
  return waiters_.size();
}

}  // namespace atlas::socketproto
