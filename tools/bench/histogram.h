// A fixed-size log-linear latency histogram (in the spirit of HdrHistogram): every power of two
// is split into 2^(SubBits-1) linear buckets, so any recorded value is reported within
// 2^-(SubBits-1) of itself, from 1 ns to hours, in O(1) per Record(). Histogram (1/64, 1.6%,
// 30 KiB) is for run totals; CoarseHistogram (1/16, 6%, 8 KiB) for the per-second time series,
// where hundreds of them are kept.
//
// Not thread-safe: one per worker thread, merged at the end.
#pragma once

#include <algorithm>
#include <array>
#include <bit>
#include <cstdint>
#include <limits>

namespace atlas::bench {

template <int SubBits>
class BasicHistogram {
 public:
  void Record(uint64_t value) {
    ++counts_[Index(value)];
    ++count_;
    sum_ += value;
    min_ = std::min(min_, value);
    max_ = std::max(max_, value);
  }

  void Merge(const BasicHistogram& other) {
    for (size_t i = 0; i < counts_.size(); ++i) counts_[i] += other.counts_[i];
    count_ += other.count_;
    sum_ += other.sum_;
    min_ = std::min(min_, other.min_);
    max_ = std::max(max_, other.max_);
  }

  uint64_t count() const { return count_; }
  uint64_t min() const { return count_ == 0 ? 0 : min_; }
  uint64_t max() const { return max_; }
  double mean() const { return count_ == 0 ? 0 : static_cast<double>(sum_) / count_; }

  // The smallest recorded value v such that at least q (0..1) of all values are <= v, reported
  // as the middle of its bucket and clamped to [min, max].
  uint64_t Quantile(double q) const {
    if (count_ == 0) return 0;
    auto rank = static_cast<uint64_t>(q * static_cast<double>(count_) + 0.5);
    rank = std::clamp<uint64_t>(rank, 1, count_);
    uint64_t seen = 0;
    for (size_t i = 0; i < counts_.size(); ++i) {
      seen += counts_[i];
      if (seen >= rank) {
        uint64_t lo = LowerBound(i), hi = LowerBound(i + 1) - 1;
        return std::clamp(lo + (hi - lo) / 2, min(), max_);
      }
    }
    return max_;
  }

 private:
  static constexpr int kSubBits = SubBits;
  static constexpr uint64_t kSubBuckets = uint64_t{1} << kSubBits;
  static constexpr uint64_t kHalf = kSubBuckets / 2;
  // Values below kSubBuckets are exact; above, each power of two has kHalf buckets.
  static constexpr size_t kBuckets = kSubBuckets + (64 - kSubBits) * kHalf + 1;

  static size_t Index(uint64_t v) {
    if (v < kSubBuckets) return static_cast<size_t>(v);
    int msb = 63 - std::countl_zero(v);
    int shift = msb - (kSubBits - 1);  // >= 1
    uint64_t mantissa = v >> shift;    // in [kHalf, kSubBuckets)
    return static_cast<size_t>(kSubBuckets + (shift - 1) * kHalf + (mantissa - kHalf));
  }
  static uint64_t LowerBound(size_t index) {
    if (index < kSubBuckets) return index;
    size_t k = index - kSubBuckets;
    int shift = static_cast<int>(k / kHalf) + 1;
    if (shift + kSubBits > 64) return std::numeric_limits<uint64_t>::max();
    return (kHalf + k % kHalf) << shift;
  }

  std::array<uint64_t, kBuckets> counts_{};
  uint64_t count_ = 0;
  uint64_t sum_ = 0;
  uint64_t min_ = std::numeric_limits<uint64_t>::max();
  uint64_t max_ = 0;
};

using Histogram = BasicHistogram<7>;
using CoarseHistogram = BasicHistogram<5>;

}  // namespace atlas::bench
