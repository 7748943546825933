// Rate limits on join attempts (docs/cluster-bootstrap.md §Threat model): a token bucket per
// source address and one for the whole port, so that guessing a join token, or flooding the
// signer with CSRs to verify, is slow from one address and bounded from many. Thread-safe.
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace atlas::cluster {

struct JoinLimits {
  double per_source_per_minute = 10;  // and a burst of as many
  double total_per_minute = 120;
  size_t sources_max = 4096;  // remembered; beyond it the fullest buckets are forgotten
};

class JoinLimiter {
 public:
  explicit JoinLimiter(JoinLimits limits = {}) : limits_(limits) {}
  // Takes one attempt from `source`'s bucket and the total one at `now_ms` (a monotonic
  // clock); false when either is empty.
  bool Allow(const std::string& source, int64_t now_ms);

 private:
  struct Bucket {
    double tokens = 0;
    int64_t at_ms = 0;
  };
  static bool Take(Bucket& b, double per_minute, int64_t now_ms);

  const JoinLimits limits_;
  absl::Mutex mu_;
  std::map<std::string, Bucket> sources_ ABSL_GUARDED_BY(mu_);
  Bucket total_ ABSL_GUARDED_BY(mu_);
  bool started_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace atlas::cluster
