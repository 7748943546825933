// Gives the heap's free pages back to the system after many idle tables rested (docs/consensus.md
// §Cost per object). A table awake holds ~1 KB; when it rests that memory is freed between
// long-lived allocations (the object map's nodes), and glibc keeps such holes in its heap
// instead of returning them, so RSS stayed at its peak. A thread of its own: malloc_trim walks
// the whole heap (tens of milliseconds for a GB), which the node thread must not wait for.
#pragma once

#include <cstdint>
#include <functional>
#include <thread>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace atlas {

class HeapTrimmer {
 public:
  // ~16 MB of awake state freed, on average.
  static constexpr uint64_t kAfterRests = 16384;
  // Every `interval`, trims if `rested()` (a count that only grows) moved by `after` or more.
  HeapTrimmer(std::function<uint64_t()> rested, uint64_t after, absl::Duration interval);
  ~HeapTrimmer();
  uint64_t trims() const;

 private:
  void Run();

  const std::function<uint64_t()> rested_;
  const uint64_t after_;
  const absl::Duration interval_;
  mutable absl::Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  uint64_t trims_ ABSL_GUARDED_BY(mu_) = 0;
  std::thread thread_;
};

}  // namespace atlas
