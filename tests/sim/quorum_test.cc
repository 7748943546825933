// Unit tests for flexible grid quorums (consensus/quorum.h, docs/consensus.md "Quorums").
#include <catch2/catch.hpp>

#include <vector>

#include "consensus/policy.h"
#include "consensus/quorum.h"
#include "consensus/random.h"

namespace atlas::consensus {
namespace {

Topology Grid(const std::vector<int>& sizes) {
  Topology t;
  NodeId next = 1;
  for (size_t z = 0; z < sizes.size(); ++z) {
    for (int i = 0; i < sizes[z]; ++i) t.zone_of[next++] = static_cast<ZoneId>(z);
    for (size_t w = 0; w < sizes.size(); ++w) {
      t.distance[{static_cast<ZoneId>(z), static_cast<ZoneId>(w)}] =
          z == w ? 0 : 10 * static_cast<int64_t>(z > w ? z - w : w - z);
    }
  }
  return t;
}

// All nondecreasing size vectors of `zones` zones with sizes in [1, max_size].
void SizeVectors(int zones, int max_size, std::vector<int>& cur,
                 std::vector<std::vector<int>>& out) {
  if (static_cast<int>(cur.size()) == zones) {
    out.push_back(cur);
    return;
  }
  for (int s = cur.empty() ? 1 : cur.back(); s <= max_size; ++s) {
    cur.push_back(s);
    SizeVectors(zones, max_size, cur, out);
    cur.pop_back();
  }
}

TEST_CASE("any Q1 intersects any Q2 for every grid up to 5x5", "[quorum]") {
  // Per-zone counts capture every subset up to symmetry inside a zone (the predicates only see
  // counts). Q1 A and Q2 B disjoint <=> B fits in the complement of A; with monotone
  // predicates it suffices that no A has IsQ1(A) && IsQ2(complement(A)).
  int64_t grids = 0, checked = 0;
  for (int zones = 1; zones <= 5; ++zones) {
    std::vector<std::vector<int>> all;
    std::vector<int> cur;
    SizeVectors(zones, 5, cur, all);
    for (const std::vector<int>& sizes : all) {
      const int max_size = sizes.back();
      for (int fz = 0; fz < zones; ++fz) {
        for (int fn = 0; fn < max_size + 1; ++fn) {
          QuorumSystem q(Grid(sizes), QuorumSpec{fn, fz});
          ++grids;
          std::vector<int> counts(zones, 0);
          while (true) {
            std::vector<int> complement(zones);
            for (int z = 0; z < zones; ++z) complement[z] = sizes[z] - counts[z];
            ++checked;
            if (q.IsQ1Counts(counts) && q.IsQ2Counts(complement)) {
              FAIL("disjoint Q1/Q2 in " << q.Describe());
            }
            // Monotonicity (adding nodes never breaks a quorum).
            for (int z = 0; z < zones; ++z) {
              if (counts[z] < sizes[z]) {
                std::vector<int> more = counts;
                ++more[z];
                if (q.IsQ1Counts(counts)) REQUIRE(q.IsQ1Counts(more));
                if (q.IsQ2Counts(counts)) REQUIRE(q.IsQ2Counts(more));
              }
            }
            int z = 0;
            while (z < zones && counts[z] == sizes[z]) counts[z++] = 0;
            if (z == zones) break;
            ++counts[z];
          }
          // The whole cluster is always both quorums.
          REQUIRE(q.IsQ1Counts(sizes));
          REQUIRE(q.IsQ2Counts(sizes));
        }
      }
    }
  }
  INFO("grids " << grids << " count vectors " << checked);
  REQUIRE(grids > 1000);
}

TEST_CASE("every node subset: Q1 and Q2 intersect (exhaustive up to 12 nodes)", "[quorum]") {
  const std::vector<std::vector<int>> grids = {{3, 3, 3}, {1, 2, 3}, {2, 2, 2, 2}, {4, 1, 4},
                                               {3, 3, 3, 3}, {5, 2}, {1, 1, 1, 1, 1}};
  for (const auto& sizes : grids) {
    Topology t = Grid(sizes);
    const int n = static_cast<int>(t.zone_of.size());
    for (int fz = 0; fz < static_cast<int>(sizes.size()); ++fz) {
      for (int fn = 0; fn <= 2; ++fn) {
        QuorumSystem q(t, QuorumSpec{fn, fz});
        std::vector<NodeSet> q1s, q2s;
        for (uint32_t mask = 0; mask < (1u << n); ++mask) {
          NodeSet s;
          for (int i = 0; i < n; ++i) {
            if (mask & (1u << i)) s.insert(static_cast<NodeId>(i + 1));
          }
          if (q.IsQ1(s)) q1s.push_back(s);
          if (q.IsQ2(s)) q2s.push_back(s);
        }
        for (const NodeSet& a : q1s) {
          for (const NodeSet& b : q2s) {
            bool meet = false;
            for (NodeId x : a) meet = meet || b.contains(x);
            if (!meet) FAIL("disjoint quorums in " << q.Describe());
          }
        }
      }
    }
  }
}

TEST_CASE("chosen quorums avoid failed nodes, intersect, and Q2 includes the owner zone",
          "[quorum]") {
  Rng rng(7);
  for (int iter = 0; iter < 3000; ++iter) {
    const int zones = static_cast<int>(rng.Range(1, 5));
    std::vector<int> sizes;
    for (int z = 0; z < zones; ++z) sizes.push_back(static_cast<int>(rng.Range(1, 5)));
    Topology t = Grid(sizes);
    QuorumSpec spec{static_cast<int>(rng.Range(0, 2)), static_cast<int>(rng.Range(0, zones - 1))};
    QuorumSystem q(t, spec);
    NodeSet live;
    for (const auto& [node, zone] : t.zone_of) {
      if (!rng.Chance(0.25)) live.insert(node);
    }
    const ZoneId owner_zone = static_cast<ZoneId>(rng.Range(0, zones - 1));
    auto q1 = q.ChooseQ1(owner_zone, live);
    auto q2 = q.ChooseQ2(owner_zone, live);
    // Brute-force availability over live subsets by counts.
    std::vector<int> live_counts(zones, 0);
    for (NodeId node : live) ++live_counts[t.ZoneOf(node)];
    REQUIRE(q1.ok() == q.IsQ1Counts(live_counts));
    if (q2.ok()) {
      REQUIRE(q.IsQ2(*q2));
      bool has_owner_zone = false;
      for (NodeId node : *q2) {
        REQUIRE(live.contains(node));
        has_owner_zone = has_owner_zone || t.ZoneOf(node) == owner_zone;
      }
      REQUIRE(has_owner_zone);
    } else {
      REQUIRE(q2.status().message().find("quorum unavailable: ") == 0);
    }
    if (q1.ok()) {
      REQUIRE(q.IsQ1(*q1));
      for (NodeId node : *q1) REQUIRE(live.contains(node));
    } else {
      REQUIRE(q1.status().message().find("quorum unavailable: ") == 0);
    }
    if (q1.ok() && q2.ok()) {
      bool meet = false;
      for (NodeId x : *q1) meet = meet || q2->contains(x);
      REQUIRE(meet);
    }
  }
}

TEST_CASE("Q2 zones are chosen closest-first from the owner's zone", "[quorum]") {
  Topology t = Grid({3, 3, 3, 3, 3});
  QuorumSystem q(t, QuorumSpec{1, 1});
  auto zones = q.Q2ZonesFor(3);
  REQUIRE(zones.size() == 2);
  REQUIRE(zones[0] == 3);
  REQUIRE((zones[1] == 2 || zones[1] == 4));
  QuorumSystem local(t, QuorumSpec{1, 0});
  REQUIRE(local.Q2ZonesFor(4) == std::vector<ZoneId>{4});
  // Fz=0: a Q2 is n-Fn nodes of the owner's zone alone.
  REQUIRE(local.IsQ2(NodeSet{13, 14}));
  REQUIRE_FALSE(local.IsQ2(NodeSet{13}));
}

TEST_CASE("quorum unavailable explains why", "[quorum]") {
  Topology t = Grid({3, 3, 3});
  QuorumSystem q(t, QuorumSpec{1, 0});
  auto status = q.CheckAvailable(0, NodeSet{1, 4, 7});
  REQUIRE_FALSE(status.ok());
  REQUIRE(std::string(status.message()).find("quorum unavailable: ") == 0);
  REQUIRE(q.CheckAvailable(0, NodeSet{1, 2, 4, 5, 7, 8}).ok());
}

TEST_CASE("the access-counting policy moves to a dominating zone, never on 50/50",
          "[policy]") {
  AccessCountingPolicy::Options opts;
  opts.window_ticks = 100;
  opts.min_accesses = 5;
  opts.dominance = 2.0;
  opts.sustain_windows = 2;
  {
    AccessCountingPolicy p(opts);
    std::optional<ZoneId> move;
    // Zone 2 sends 3x the owner zone's (0) accesses for several windows.
    for (Tick t = 0; t < 1000 && !move; ++t) {
      if (t % 4 == 0) move = p.RecordAccess("t", 0, 0, t);
      if (!move && t % 4 != 0) move = p.RecordAccess("t", 0, 2, t);
    }
    REQUIRE(move.has_value());
    REQUIRE(*move == 2);
  }
  {
    AccessCountingPolicy p(opts);
    for (Tick t = 0; t < 100000; ++t) {
      REQUIRE_FALSE(p.RecordAccess("t", 0, t % 2 == 0 ? 0 : 1, t).has_value());
    }
  }
  {
    AccessCountingPolicy p(opts);
    p.RestrictZones("t", {});  // Pinned.
    for (Tick t = 0; t < 10000; ++t) REQUIRE_FALSE(p.RecordAccess("t", 0, 2, t).has_value());
  }
}

TEST_CASE("the access-counting policy keeps counters only for busy objects on a large node",
          "[policy]") {
  AccessCountingPolicy::Options opts;
  opts.window_ticks = 100;
  opts.stats_kept = 100;
  AccessCountingPolicy p(opts);
  // 10,000 objects touched once each (a bulk load), then one hot object for a while.
  Tick t = 0;
  for (int i = 0; i < 10000; ++i, ++t) p.RecordAccess("t" + std::to_string(i), 0, 0, t);
  CHECK(p.tracked() < 10000);
  for (int i = 0; i < 20000; ++i, ++t) p.RecordAccess("hot", 0, 0, t);
  CHECK(p.tracked() <= 101);
  // The hot object still moves when another zone dominates it.
  std::optional<ZoneId> move;
  for (int i = 0; i < 2000 && !move; ++i, ++t) move = p.RecordAccess("hot", 0, 2, t);
  REQUIRE(move.has_value());
  CHECK(*move == 2);
}

TEST_CASE("ballots order by counter then node id", "[ballot]") {
  REQUIRE(Ballot{1, 5} < Ballot{2, 1});
  REQUIRE(Ballot{2, 1} < Ballot{2, 3});
  REQUIRE(Ballot{} < Ballot{0, 1});
  REQUIRE(Ballot{3, 3} == Ballot{3, 3});
}

TEST_CASE("the seeded generator is deterministic", "[random]") {
  Rng a(42), b(42), c(43);
  bool differs = false;
  for (int i = 0; i < 100; ++i) {
    const uint64_t x = a.Next();
    REQUIRE(x == b.Next());
    differs = differs || x != c.Next();
  }
  REQUIRE(differs);
}

}  // namespace
}  // namespace atlas::consensus
