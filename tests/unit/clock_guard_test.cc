// ClockGuard (atlasd/clock_guard.h): when this node's clock may stamp commands
// (docs/consensus.md §Time).
#include <catch2/catch.hpp>

#include "atlasd/clock_guard.h"

namespace atlas {
namespace {

constexpr int64_t kMax = 500, kStale = 6000;

TEST_CASE("clock guard: alone a node trusts its clock, with peers it waits for evidence") {
  ClockGuard g(kMax, kStale);
  CHECK(g.state() == ClockState::kUnknown);
  g.SetPeers({});
  CHECK(g.Evaluate(0) == ClockState::kTrusted);
  g.SetPeers({2, 3});
  CHECK(g.Evaluate(0) == ClockState::kTrusted);  // no evidence: keeps its state
  ClockGuard fresh(kMax, kStale);
  fresh.SetPeers({2, 3});
  CHECK(fresh.Evaluate(0) == ClockState::kUnknown);
  fresh.Sample(2, 12.0, 1.0, 0);
  CHECK(fresh.Evaluate(0) == ClockState::kTrusted);
}

TEST_CASE("clock guard: the majority of fresh evidence decides, uncertain samples count for "
          "nothing") {
  ClockGuard g(kMax, kStale);
  g.SetPeers({2, 3});
  // Peers 2 and 3 both read our clock as two hours ahead of theirs.
  g.Sample(2, -7'200'000, 1, 0);
  g.Sample(3, -7'199'000, 1, 0);
  CHECK(g.Evaluate(0) == ClockState::kOffset);
  CHECK(g.offset_ms() > 7'199'000);
  REQUIRE(g.Problem());
  CHECK(g.Problem()->starts_with("clock offset: this node's clock is 7200.000 s ahead"));
  CHECK(g.Problem()->find("ahead of its peers' (max-clock-offset 500 ms)") != std::string::npos);

  // One peer far, one near: the far one is the odd one out, not us.
  g.Sample(3, 100, 1, 10);
  CHECK(g.Evaluate(10) == ClockState::kTrusted);
  CHECK_FALSE(g.Problem());

  // A sample whose round trip makes it inconclusive (450 ± 100 around the 500 ms bound).
  ClockGuard u(kMax, kStale);
  u.SetPeers({2});
  u.Sample(2, 450, 200, 0);
  CHECK(u.Evaluate(0) == ClockState::kUnknown);
  u.Sample(2, -650, 200, 1);  // 650 - 100 > 500: certainly too far
  CHECK(u.Evaluate(1) == ClockState::kOffset);
  CHECK(u.Problem()->find("behind") == std::string::npos);  // we are ahead: the peer is behind us
}

TEST_CASE("clock guard: stale evidence and departed peers do not count") {
  ClockGuard g(kMax, kStale);
  g.SetPeers({2, 3});
  g.Sample(2, 10, 1, 0);
  CHECK(g.Evaluate(0) == ClockState::kTrusted);
  g.Sample(3, -9'000, 1, 7000);  // only 3's is fresh at 7000 (2's is 7 s old)
  CHECK(g.Evaluate(7000) == ClockState::kOffset);
  g.SetPeers({2});  // 3 left the cluster: its sample goes with it
  g.Sample(2, 10, 1, 7000);
  CHECK(g.Evaluate(7000) == ClockState::kTrusted);
  g.Sample(9, -9'000, 1, 7000);  // not a member: ignored
  CHECK(g.Evaluate(7000) == ClockState::kTrusted);
}

TEST_CASE("clock guard: in a cluster of two a bad clock stops both (nobody can tell who is "
          "wrong)") {
  ClockGuard a(kMax, kStale), b(kMax, kStale);
  a.SetPeers({2});
  b.SetPeers({1});
  a.Sample(2, 3'600'000, 1, 0);
  b.Sample(1, -3'600'000, 1, 0);
  CHECK(a.Evaluate(0) == ClockState::kOffset);
  CHECK(b.Evaluate(0) == ClockState::kOffset);
}

}  // namespace
}  // namespace atlas
