// Which Fn/Fz a member proposes after a join (ClusterNode::MaybeRaiseQuorum).
#include <catch2/catch.hpp>

#include "atlasd/cluster_node.h"

namespace {

atlas::consensus::ClusterConfig Config(int zones, int fn, int fz) {
  atlas::consensus::ClusterConfig c;
  c.quorum = {fn, fz};
  for (int z = 0; z < zones; ++z) {
    const auto id = static_cast<atlas::consensus::NodeId>(z + 1);
    c.members[id] = {id, static_cast<atlas::consensus::ZoneId>(z), "addr"};
  }
  return c;
}

}  // namespace

TEST_CASE("a join raises Fz to the configured value once there are enough zones") {
  CHECK_FALSE(atlas::QuorumToRaise(Config(1, 0, 0), {0, 1}).has_value());  // one zone: not yet
  auto raised = atlas::QuorumToRaise(Config(2, 0, 0), {0, 1});
  REQUIRE(raised.has_value());
  CHECK(raised->fn == 0);
  CHECK(raised->fz == 1);
  CHECK_FALSE(atlas::QuorumToRaise(Config(3, 0, 1), {0, 1}).has_value());  // already there
}

TEST_CASE("a member with lower settings never lowers the cluster's Fn or Fz") {
  // The walkthrough's bug: the CA role moved to a host whose file had no fz.
  CHECK_FALSE(atlas::QuorumToRaise(Config(3, 0, 1), {0, 0}).has_value());
  CHECK_FALSE(atlas::QuorumToRaise(Config(3, 1, 1), {0, 1}).has_value());
  // A mixed file raises only what it raises.
  auto raised = atlas::QuorumToRaise(Config(3, 0, 1), {1, 0});
  REQUIRE(raised.has_value());
  CHECK(raised->fn == 1);
  CHECK(raised->fz == 1);
}
