// The tables this node answers reads of from its own applied state, with no read barrier
// (docs/consensus.md §Reads without a round, §Owner read leases): the client threads look here
// before they ask the node thread for a barrier.
//
// The node thread adds a table when a barrier read of it completes while the core gives it a
// Replica::LocalReads window, and updates or takes out every table whose window changed
// before each Ready's messages leave (NodeHost::RefreshLocalReads, which re-checks the objects
// the Ready touched, or all after a membership change or snapshot): the promise that ends an
// owner's claim leaves the node only after its tables left this set, so a read that still found
// its table here was invoked before any other node could be elected. A window that rests on a
// lease ends by itself: a read is local only if it was invoked before `until` on LeaseClockMs.
// Bounded: at most kTablesMax tables (the others take the barrier). Thread-safe.
#pragma once

#include <time.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/container/node_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "consensus/replica.h"

namespace atlas {

// The clock leases are judged by, on the node thread (NodeHost::SetTime) and the client
// threads alike: CLOCK_BOOTTIME, monotonic and still counting while the machine is suspended
// (a suspended owner must wake up with its lease over).
inline int64_t LeaseClockMs() {
  timespec ts{};
  clock_gettime(CLOCK_BOOTTIME, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000 + ts.tv_nsec / 1'000'000;
}

class LocalReads {
 public:
  static constexpr size_t kTablesMax = 65'536;
  using Window = consensus::LocalReadWindow;
  enum class Answer { kBarrier, kLocal, kLocalAndRenew };

  // Whether a read of `table` invoked at `now_ms` may be answered locally; kLocalAndRenew
  // once per window past its renewal point (the caller then asks for a barrier in the
  // background, which renews the lease).
  Answer Check(const std::string& table, int64_t now_ms) const {
    {
      absl::ReaderMutexLock lock(&mu_);
      auto it = tables_.find(table);
      if (it == tables_.end() || now_ms >= it->second.window.until_ms) return Answer::kBarrier;
      it->second.reads.fetch_add(1, std::memory_order_relaxed);
      if (now_ms < it->second.window.renew_at_ms) return Answer::kLocal;
    }
    absl::MutexLock lock(&mu_);
    auto it = tables_.find(table);
    if (it == tables_.end() || now_ms >= it->second.window.until_ms) return Answer::kBarrier;
    if (now_ms < it->second.window.renew_at_ms) return Answer::kLocal;
    it->second.window.renew_at_ms = Window::kForever;
    return Answer::kLocalAndRenew;
  }
  // Until when `table` is read locally; 0 if it is not in the set.
  int64_t Until(const std::string& table) const {
    absl::ReaderMutexLock lock(&mu_);
    auto it = tables_.find(table);
    return it == tables_.end() ? 0 : it->second.window.until_ms;
  }
  // Node thread. Calls `note(table, n)` for every table Check answered n > 0 reads of locally
  // since the last call (TABLE READS AUTO weighs them: Replica::NoteReads).
  void TakeReads(const std::function<void(const std::string&, uint64_t)>& note) {
    absl::ReaderMutexLock lock(&mu_);
    for (auto& [table, entry] : tables_) {
      if (uint64_t n = entry.reads.exchange(0, std::memory_order_relaxed); n > 0) note(table, n);
    }
  }
  size_t size() const {
    absl::ReaderMutexLock lock(&mu_);
    return tables_.size();
  }

  // Node thread. Sets the table's window (a window of 0 takes it out).
  void Set(const std::string& table, Window window) {
    absl::MutexLock lock(&mu_);
    if (window.until_ms == 0) {
      tables_.erase(table);
    } else if (tables_.size() < kTablesMax || tables_.contains(table)) {
      tables_[table].window = window;
    }
  }
  // Replaces every table's window by `window_of(table)`.
  void Update(const std::function<Window(const std::string&)>& window_of) {
    absl::MutexLock lock(&mu_);
    absl::erase_if(tables_, [&window_of](auto& t) {
      t.second.window = window_of(t.first);
      return t.second.window.until_ms == 0;
    });
  }

 private:
  struct Entry {
    Window window;
    mutable std::atomic<uint64_t> reads{0};  // counted under the reader lock
  };
  mutable absl::Mutex mu_;
  // Nodes stay put: readers count into an entry while others are added.
  mutable absl::node_hash_map<std::string, Entry> tables_ ABSL_GUARDED_BY(mu_);
};

}  // namespace atlas
