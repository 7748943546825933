// Linearizability checker for a key-value history (Wing & Gong 1993, with Lowe's 2017
// memoization), partitioned per key: a KV history is linearizable iff each key's sub-history
// is (locality, Herlihy & Wing 1990). Written for the atlasd simulator; see docs/consensus.md.
#ifndef ATLAS_TESTS_SIM_LINEARIZABILITY_H_
#define ATLAS_TESTS_SIM_LINEARIZABILITY_H_

#include <cstdint>
#include <string>
#include <vector>

namespace atlas::sim {

// One client operation on one key. Times are positions in a total order of history events.
struct Operation {
  std::string key;
  bool is_write = false;
  std::string value;      // Written value, or the value a read returned ("" = absent).
  uint64_t invoke = 0;
  uint64_t ret = 0;       // Ignored when !completed.
  bool completed = true;  // False: outcome unknown (the write may or may not have happened).
  int client = 0;
  // A compare-and-set (KEY SET ... IF REV, with the revision read together with `expected`):
  // sets `value` if the key holds `expected` ("" = absent). `cas_applied`: it did; false:
  // refused, so the key held something else. With an unknown outcome (!completed) it is
  // ignored: the operation applied where the key held `expected`, or had no effect.
  bool is_cas = false;
  std::string expected = {};
  bool cas_applied = true;
};

struct LinearizabilityResult {
  bool ok = true;
  bool inconclusive = false;  // The search bound was hit for some key.
  std::string detail;         // Offending key and a short excerpt when !ok.
  uint64_t steps = 0;
};

// Reads that failed must not be passed in. Writes and compare-and-sets with an unknown
// outcome are passed with completed=false. `max_steps` bounds the search per key.
LinearizabilityResult CheckLinearizable(const std::vector<Operation>& history,
                                        uint64_t max_steps = 2'000'000);

}  // namespace atlas::sim

#endif  // ATLAS_TESTS_SIM_LINEARIZABILITY_H_
