#include "atlasd/heap_trimmer.h"

#include <malloc.h>
#include <pthread.h>

#include <cstdlib>

#include "spdlog/spdlog.h"

namespace atlas {

void TuneAllocator() {
  if (std::getenv("MALLOC_MMAP_THRESHOLD_") == nullptr) {
    mallopt(M_MMAP_THRESHOLD, kMmapThresholdBytes);
  }
  if (std::getenv("MALLOC_TRIM_THRESHOLD_") == nullptr) {
    mallopt(M_TRIM_THRESHOLD, kTrimThresholdBytes);
  }
}

HeapTrimmer::HeapTrimmer(std::function<uint64_t()> rested, uint64_t after,
                         absl::Duration interval)
    : rested_(std::move(rested)), after_(after), interval_(interval) {
  thread_ = std::thread([this] {
    pthread_setname_np(pthread_self(), "atlas-trim");
    Run();
  });
}

HeapTrimmer::~HeapTrimmer() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  thread_.join();
}

uint64_t HeapTrimmer::trims() const {
  absl::MutexLock lock(&mu_);
  return trims_;
}

void HeapTrimmer::Run() {
  uint64_t at_last_trim = 0;
  for (;;) {
    {
      absl::MutexLock lock(&mu_);
      mu_.AwaitWithTimeout(absl::Condition(&stopping_), interval_);
      if (stopping_) return;
    }
    const uint64_t rested = rested_();
    if (rested - at_last_trim < after_) continue;
    at_last_trim = rested;
    const struct mallinfo2 before = mallinfo2();
    malloc_trim(0);
    spdlog::debug("heap trimmed after {} tables rested ({} MB free in the heap before)",
                  rested, before.fordblks >> 20);
    absl::MutexLock lock(&mu_);
    ++trims_;
  }
}

}  // namespace atlas
