#include "atlasd/failpoint.h"

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "atlasd/fatal.h"
#include "socketproto/str.h"

namespace atlas::failpoint {
namespace internal {

std::atomic<bool> any{false};

namespace {
ABSL_CONST_INIT absl::Mutex mu(absl::kConstInit);
// Hits left before the crash.
absl::flat_hash_map<std::string, long> remaining ABSL_GUARDED_BY(mu);
}  // namespace

void Hit(const char* name) {
  absl::MutexLock lock(&mu);
  auto it = remaining.find(name);
  if (it == remaining.end() || --it->second > 0) return;
  std::fprintf(stderr, "atlasd: failpoint %s: crashing (SIGKILL)\n", name);
  std::fflush(stderr);
  std::raise(SIGKILL);
}

}  // namespace internal

void Init() {
  const char* env = std::getenv("ATLAS_FAILPOINTS");
  if (env == nullptr || *env == '\0') return;
  const std::vector<std::string> specs = absl::StrSplit(env, ',', absl::SkipEmpty());
  for (const std::string& spec : specs) {
    // <name>=crash[@N]
    const size_t eq = spec.find('=');
    const std::string name = spec.substr(0, eq);
    const std::string action = eq == std::string::npos ? "" : spec.substr(eq + 1);
    bool known = false;
    for (const char* n : kNames) known = known || name == n;
    long count = 1;
    const size_t at = action.find('@');
    const bool ok = known && action.substr(0, at) == "crash" &&
                    (at == std::string::npos ||
                     (absl::SimpleAtoi(action.substr(at + 1), &count) && count >= 1));
    if (!ok) {
      // A test harness asked for a crash it cannot have: running on would test nothing.
      Fatal(StrCat("ATLAS_FAILPOINTS: bad failpoint '", spec, "' (want <name>=crash[@N]; names: "
                   "ready-before-sync, ready-after-sync, ready-after-send, snapshot-install, "
                   "join-after-certificate)"));
    }
    // Init runs before any thread starts; the lock costs nothing and keeps the rule simple.
    absl::MutexLock lock(&internal::mu);
    internal::remaining[name] = count;
    std::fprintf(stderr, "atlasd: failpoint %s armed: crash on hit %ld\n", name.c_str(), count);
  }
  absl::MutexLock lock(&internal::mu);
  internal::any.store(!internal::remaining.empty());
}

}  // namespace atlas::failpoint
