// Deterministic pseudo-random numbers for the consensus core (backoff jitter) and the simulator.
// The core never seeds itself: every Rng is constructed from a seed passed in by the caller, so a
// simulator run is a pure function of its seed. See docs/consensus.md, "Purity".
#ifndef ATLAS_CONSENSUS_RANDOM_H_
#define ATLAS_CONSENSUS_RANDOM_H_

#include <cstdint>
#include <string_view>

#include "consensus/check.h"

namespace atlas::consensus {

// SplitMix64's finaliser: every bit of the result depends on every bit of z.
inline uint64_t SplitMixFinish(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

// SplitMix64: used to expand one 64-bit seed into the xoshiro state.
inline uint64_t SplitMix64(uint64_t& state) {
  return SplitMixFinish(state += 0x9e3779b97f4a7c15ULL);
}

// Hashes every node computes alike (absl::Hash is seeded per process), for values nodes
// compare (range digests) or agree on without talking (sweeper turns): FNV-1a over bytes,
// and a splitmix64 finaliser per further field. Changing them changes the digests peers of
// an older version compute.
inline uint64_t StableHash(std::string_view bytes) {
  uint64_t h = 0xcbf29ce484222325ULL;
  for (unsigned char c : bytes) h = (h ^ c) * 0x100000001b3ULL;
  return h;
}

inline uint64_t StableMix(uint64_t h, uint64_t v) {
  return SplitMixFinish(h ^ (v + 0x9e3779b97f4a7c15ULL + (h << 6) + (h >> 2)));
}

// xoshiro256** generator. Not thread-safe; one per owner.
class Rng {
 public:
  explicit Rng(uint64_t seed) {
    uint64_t sm = seed;
    for (uint64_t& word : state_) word = SplitMix64(sm);
  }

  uint64_t Next() {
    const uint64_t result = Rotl(state_[1] * 5, 7) * 9;
    const uint64_t t = state_[1] << 17;
    state_[2] ^= state_[0];
    state_[3] ^= state_[1];
    state_[1] ^= state_[2];
    state_[0] ^= state_[3];
    state_[2] ^= t;
    state_[3] = Rotl(state_[3], 45);
    return result;
  }

  // Uniform in [0, bound). bound must be > 0. The modulo bias is irrelevant for jitter/faults.
  uint64_t Uniform(uint64_t bound) {
    ATLAS_CHECK(bound > 0);
    return Next() % bound;
  }

  // Uniform in [lo, hi] (inclusive).
  int64_t Range(int64_t lo, int64_t hi) {
    ATLAS_CHECK(lo <= hi);
    return lo + static_cast<int64_t>(Uniform(static_cast<uint64_t>(hi - lo) + 1));
  }

  // True with probability p (0 <= p <= 1), decided with 1e-6 resolution.
  bool Chance(double p) {
    if (p <= 0) return false;
    if (p >= 1) return true;
    return Uniform(1000000) < static_cast<uint64_t>(p * 1000000.0);
  }

 private:
  static uint64_t Rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
  uint64_t state_[4];
};

}  // namespace atlas::consensus

#endif  // ATLAS_CONSENSUS_RANDOM_H_
