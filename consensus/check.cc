#include "consensus/check.h"

#include <cstdio>
#include <cstdlib>

namespace atlas::consensus {

void CheckFailed(const char* file, int line, const char* condition) {
  // stderr is the only output the core ever produces, and only on the way down.
  std::fprintf(stderr, "ATLAS_CHECK failed at %s:%d: %s\n", file, line, condition);
  std::fflush(stderr);
  std::abort();
}

}  // namespace atlas::consensus
