// Tests of the WGL linearizability checker itself (tests/sim/linearizability.h).
#include <catch2/catch.hpp>

#include "tests/sim/linearizability.h"

namespace atlas::sim {
namespace {

Operation Put(const std::string& v, uint64_t inv, uint64_t ret, bool completed = true) {
  return Operation{"k", true, v, inv, ret, completed, 0};
}
Operation Get(const std::string& v, uint64_t inv, uint64_t ret) {
  return Operation{"k", false, v, inv, ret, true, 1};
}

TEST_CASE("sequential history is linearizable", "[lin]") {
  REQUIRE(CheckLinearizable({Put("1", 1, 2), Get("1", 3, 4), Put("2", 5, 6), Get("2", 7, 8)}).ok);
}

TEST_CASE("a stale read after a completed write is caught", "[lin]") {
  auto r = CheckLinearizable({Put("1", 1, 2), Put("2", 3, 4), Get("1", 5, 6)});
  REQUIRE_FALSE(r.ok);
  REQUIRE(r.detail.find("key k") == 0);
}

TEST_CASE("concurrent operations may take either order", "[lin]") {
  REQUIRE(CheckLinearizable({Put("1", 1, 4), Get("1", 2, 3), Get("", 0, 5)}).ok);
  REQUIRE(CheckLinearizable({Put("1", 1, 10), Put("2", 2, 9), Get("2", 3, 4), Get("1", 5, 6)}).ok);
  REQUIRE_FALSE(
      CheckLinearizable({Put("1", 1, 10), Put("2", 2, 9), Get("2", 3, 4), Get("1", 5, 6),
                         Get("2", 7, 8)}).ok);
}

TEST_CASE("a write with unknown outcome may or may not take effect", "[lin]") {
  REQUIRE(CheckLinearizable({Put("1", 1, 0, false), Get("", 2, 3), Get("1", 4, 5)}).ok);
  REQUIRE(CheckLinearizable({Put("1", 1, 0, false), Get("", 2, 3)}).ok);
  REQUIRE_FALSE(CheckLinearizable({Put("1", 1, 0, false), Get("1", 2, 3), Get("", 4, 5)}).ok);
}

Operation Cas(const std::string& from, const std::string& to, uint64_t inv, uint64_t ret,
              bool applied = true, bool completed = true) {
  Operation op{"k", false, to, inv, ret, completed, 2};
  op.is_cas = true;
  op.expected = from;
  op.cas_applied = applied;
  return op;
}

TEST_CASE("compare-and-set: applied only from its expected value, refused only from another",
          "[lin]") {
  REQUIRE(CheckLinearizable({Put("1", 1, 2), Cas("1", "2", 3, 4), Get("2", 5, 6)}).ok);
  REQUIRE(CheckLinearizable({Cas("", "1", 1, 2), Get("1", 3, 4)}).ok);  // from absent
  // Applied although the key held something else: two increments from the same value.
  REQUIRE_FALSE(CheckLinearizable({Put("1", 1, 2), Cas("1", "2", 3, 4), Cas("1", "3", 5, 6)}).ok);
  // Refused although the key held the expected value.
  REQUIRE_FALSE(CheckLinearizable({Put("1", 1, 2), Cas("1", "2", 3, 4, false)}).ok);
  REQUIRE(CheckLinearizable({Put("1", 1, 2), Put("x", 3, 4), Cas("1", "2", 5, 6, false)}).ok);
  // Applied concurrently with a put: only before it (after it the key holds "x").
  REQUIRE(CheckLinearizable({Put("1", 1, 2), Cas("1", "2", 3, 10), Put("x", 4, 9),
                             Get("x", 11, 12)}).ok);
  REQUIRE_FALSE(CheckLinearizable({Put("1", 1, 2), Cas("1", "2", 3, 10), Put("x", 4, 9),
                                   Get("2", 11, 12)}).ok);
  // Unknown outcome: dropped unless a read returned its value; then it applied.
  REQUIRE(CheckLinearizable({Put("1", 1, 2), Cas("1", "2", 3, 0, true, false), Get("1", 4, 5)}).ok);
  REQUIRE(CheckLinearizable({Put("1", 1, 2), Cas("1", "2", 3, 0, true, false), Get("2", 4, 5)}).ok);
  REQUIRE_FALSE(CheckLinearizable({Put("1", 1, 2), Put("x", 3, 4),
                                   Cas("1", "2", 5, 0, true, false), Get("2", 6, 7)}).ok);
}

TEST_CASE("a write of unknown outcome that nothing read may explain a refused compare-and-set",
          "[lin]") {
  // The simulator's seed 2998 (--cas-percent 50): a put timed out, a read-modify-write read
  // the key absent, the put then took effect and was overwritten before anyone read it, and
  // the compare-and-set from absent was refused. Linearizable; dropping the unknown put (as
  // when nothing observes it) made it look otherwise.
  REQUIRE(CheckLinearizable({Put("1", 1, 0, false), Get("", 2, 3), Cas("", "2", 4, 5, false),
                             Put("3", 6, 7), Get("3", 8, 9)}).ok);
  // Without the unknown put nothing explains the refusal.
  REQUIRE_FALSE(CheckLinearizable({Get("", 2, 3), Cas("", "2", 4, 5, false)}).ok);
  // A compare-and-set of unknown outcome may explain a refusal too (it applied, unseen) ...
  REQUIRE(CheckLinearizable({Put("1", 1, 2), Cas("1", "2", 3, 0, true, false),
                             Cas("1", "3", 4, 5, false), Put("4", 6, 7), Get("4", 8, 9)}).ok);
  // ... or not have happened at all, even where it would have applied.
  REQUIRE(CheckLinearizable({Put("1", 1, 2), Cas("1", "2", 3, 0, true, false),
                             Cas("x", "3", 4, 5, false), Get("1", 6, 7)}).ok);
  // An applied compare-and-set observes its expected value: the unknown write that gave it
  // happened.
  REQUIRE(CheckLinearizable({Put("1", 1, 0, false), Cas("1", "2", 2, 3), Get("2", 4, 5)}).ok);
}

TEST_CASE("a lost acknowledged write is caught", "[lin]") {
  REQUIRE_FALSE(CheckLinearizable({Put("1", 1, 2), Get("", 3, 4)}).ok);
}

}  // namespace
}  // namespace atlas::sim
