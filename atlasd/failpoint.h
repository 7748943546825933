// Failpoints: named places in the daemon where a test can make it crash, to prove that a crash
// at the worst moment loses nothing (docs/testing.md, "Failpoints"). Compiled in, off unless
// the environment variable ATLAS_FAILPOINTS is set when atlasd starts:
//
//   ATLAS_FAILPOINTS="<name>=crash[@N][,<name>=crash[@N]...]"   crash on the N-th hit (default 1)
//
// A crash is SIGKILL to ourselves (exactly kill -9: no flush, no destructor, no atexit), after
// one line on stderr. With no failpoint set, a hit costs one relaxed atomic load.
#pragma once

#include <atomic>

namespace atlas::failpoint {

// The names, for the documentation and for Init's check of typos.
inline constexpr const char* kNames[] = {
    "ready-before-sync",       // a Ready (promises, accepts, applied commands) before its fsync
    "ready-after-sync",        // durable, but no message (ack, promise) sent and no client told
    "ready-after-send",        // acks sent, clients not yet told
    "snapshot-install",        // a part of a catch-up snapshot's install written, not all
    "join-after-certificate",  // a joiner holds its signed certificate, nothing written yet
    "join-before-promote",     // a learner saved its identity, has not asked to vote yet
};

// Reads ATLAS_FAILPOINTS; an unknown name or a bad spec is fatal (a test with a typo would
// otherwise pass without ever crashing). Call once, early in main.
void Init();

namespace internal {
extern std::atomic<bool> any;
void Hit(const char* name);
}  // namespace internal

inline void Hit(const char* name) {
  if (internal::any.load(std::memory_order_relaxed)) internal::Hit(name);
}

}  // namespace atlas::failpoint
