#include "atlasd/cluster/join_limiter.h"

#include <algorithm>

namespace atlas::cluster {

bool JoinLimiter::Take(Bucket& b, double per_minute, int64_t now_ms) {
  b.tokens = std::min(per_minute,
                      b.tokens + per_minute * static_cast<double>(now_ms - b.at_ms) / 60'000.0);
  b.at_ms = now_ms;
  if (b.tokens < 1) return false;
  b.tokens -= 1;
  return true;
}

bool JoinLimiter::Allow(const std::string& source, int64_t now_ms) {
  absl::MutexLock lock(&mu_);
  if (!started_) {
    started_ = true;
    total_ = {limits_.total_per_minute, now_ms};
  }
  auto it = sources_.find(source);
  if (it == sources_.end()) {
    if (sources_.size() >= limits_.sources_max) {
      // Forget the source heard from least recently (its bucket has refilled the most).
      auto victim = std::min_element(sources_.begin(), sources_.end(), [](auto& a, auto& b) {
        return a.second.at_ms < b.second.at_ms;
      });
      sources_.erase(victim);
    }
    it = sources_.emplace(source, Bucket{limits_.per_source_per_minute, now_ms}).first;
  }
  // A refused attempt costs the total nothing: one noisy source cannot starve the others.
  if (!Take(it->second, limits_.per_source_per_minute, now_ms)) return false;
  return Take(total_, limits_.total_per_minute, now_ms);
}

}  // namespace atlas::cluster
