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

// Allocations of 1 MiB and more (write batches, received batches of catch-up, snapshot chunks)
// get pages of their own, given back when freed. glibc's default raises its mmap threshold to
// up to 32 MiB once such a block is freed, after which they came from the heap and its holes
// stayed: a joining node's RSS peaked ~200 MB above its heap (docs/storage.md §Memory). Fixing
// the threshold also fixes the heap's trim threshold at its 128 KiB default (PUTs lost 13% to
// brk calls): it is set to 128 MiB. Call before any thread starts; MALLOC_MMAP_THRESHOLD_ or
// MALLOC_TRIM_THRESHOLD_ in the environment win.
void TuneAllocator();
inline constexpr int kMmapThresholdBytes = 1 << 20;
inline constexpr int kTrimThresholdBytes = 128 << 20;

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
