// LD_PRELOAD shim for tests: shifts this process's wall clock (CLOCK_REALTIME, gettimeofday,
// time) by ATLAS_TEST_CLOCK_SHIFT_MS milliseconds, as a node whose clock runs ahead or behind;
// and makes its monotonic clocks run ATLAS_TEST_CLOCK_RATE_PPM parts per million fast (or,
// below 0, slow) from the process's start, as a node whose oscillator drifts (the read
// leases' clock-rate bound, docs/consensus.md §Replica read leases).
#include <dlfcn.h>
#include <sys/time.h>

#include <atomic>
#include <cstdlib>
#include <ctime>

namespace {

long long RatePpm() {
  static const long long ppm = [] {
    const char* s = getenv("ATLAS_TEST_CLOCK_RATE_PPM");
    return s ? atoll(s) : 0LL;
  }();
  return ppm;
}

bool Monotonic(clockid_t clock) {
  return clock == CLOCK_MONOTONIC || clock == CLOCK_MONOTONIC_RAW ||
         clock == CLOCK_MONOTONIC_COARSE || clock == CLOCK_BOOTTIME;
}

long long ShiftNs() {
  static long long shift = -1;
  if (shift == -1) {
    const char* s = getenv("ATLAS_TEST_CLOCK_SHIFT_MS");
    shift = s ? atoll(s) * 1000000LL : 0;
  }
  return shift;
}

void Shift(timespec* ts) {
  long long ns = (long long)ts->tv_sec * 1000000000LL + ts->tv_nsec + ShiftNs();
  ts->tv_sec = (time_t)(ns / 1000000000LL);
  ts->tv_nsec = (long)(ns % 1000000000LL);
}

// Scales the time since the clock's first reading in this process.
void Scale(clockid_t clock, timespec* ts) {
  static std::atomic<long long> base[16];  // zero-initialized: no reading yet
  if (clock < 0 || clock >= 16) return;
  long long ns = (long long)ts->tv_sec * 1000000000LL + ts->tv_nsec;
  long long expected = 0;
  base[clock].compare_exchange_strong(expected, ns);
  const long long b = base[clock].load();
  if (ns <= b) return;
  const long long d = ns - b;
  ns = b + d + d / 1000000LL * RatePpm() + (d % 1000000LL) * RatePpm() / 1000000LL;
  ts->tv_sec = (time_t)(ns / 1000000000LL);
  ts->tv_nsec = (long)(ns % 1000000000LL);
}

}  // namespace

extern "C" {

int clock_gettime(clockid_t clock, timespec* ts) noexcept {
  using Fn = int (*)(clockid_t, timespec*);
  static Fn real = reinterpret_cast<Fn>(dlsym(RTLD_NEXT, "clock_gettime"));
  int r = real(clock, ts);
  if (r == 0 && (clock == CLOCK_REALTIME || clock == CLOCK_REALTIME_COARSE)) Shift(ts);
  if (r == 0 && Monotonic(clock) && RatePpm() != 0) Scale(clock, ts);
  return r;
}

int gettimeofday(timeval* tv, void*) noexcept {
  timespec ts;
  if (clock_gettime(CLOCK_REALTIME, &ts) != 0) return -1;
  tv->tv_sec = ts.tv_sec;  // glibc declares tv non-null
  tv->tv_usec = ts.tv_nsec / 1000;
  return 0;
}

time_t time(time_t* out) noexcept {
  timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  if (out) *out = ts.tv_sec;
  return ts.tv_sec;
}

}  // extern "C"
