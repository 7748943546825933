// Which Fn/Fz a member proposes after a join (ClusterNode::MaybeRaiseQuorum); how its waits
// end when the node stops.
#include <future>
#include <thread>

#include <catch2/catch.hpp>

#include "atlasd/cluster_node.h"
#include "storage/store.h"
#include "tests/unit/temp_dir.h"

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

namespace {

// Starts a TABLE MOVE to a node that does not exist: it waits until move_timeout (an hour).
std::future<absl::Status> StartEndlessMove(atlas::ClusterNode& node) {
  auto moved = std::make_shared<std::promise<absl::Status>>();
  node.MoveTable("t", 2, [moved](absl::Status s) { moved->set_value(std::move(s)); });
  auto f = moved->get_future();
  REQUIRE(f.wait_for(std::chrono::milliseconds(200)) == std::future_status::timeout);
  return f;
}

}  // namespace

TEST_CASE("a waiting TABLE MOVE ends promptly when the node stops, whichever stops first, and "
          "Stop returns without waiting out the move timeout") {
  atlas::testing::TempDir dir;
  auto store = atlas::storage::Store::Open(dir.path(), {});
  REQUIRE(store.ok());
  auto loop = atlas::NodeLoop::Start(store->get(), {});
  REQUIRE(loop.ok());
  atlas::ClusterNodeOptions options;
  options.self = 1;
  options.move_timeout = std::chrono::hours(1);

  // The cluster runtime first: the wait sees it at its next poll.
  auto first = std::make_unique<atlas::ClusterNode>(options, nullptr);
  first->Attach(loop->get());
  std::future<absl::Status> moved = StartEndlessMove(*first);
  auto t0 = std::chrono::steady_clock::now();
  first->Stop();
  CHECK(std::chrono::steady_clock::now() - t0 < std::chrono::seconds(2));
  REQUIRE(moved.wait_for(std::chrono::seconds(0)) == std::future_status::ready);
  CHECK(moved.get().message() == "node is stopping");
  first.reset();

  // The node loop first (the daemon's order): its pending timers run at once and the chain
  // ends with it; Stop then has nothing to wait for.
  atlas::ClusterNode second(options, nullptr);
  second.Attach(loop->get());
  moved = StartEndlessMove(second);
  t0 = std::chrono::steady_clock::now();
  (*loop)->Shutdown();
  REQUIRE(moved.wait_for(std::chrono::seconds(0)) == std::future_status::ready);
  CHECK(moved.get().message() == "node is stopping");
  second.Stop();
  CHECK(std::chrono::steady_clock::now() - t0 < std::chrono::seconds(2));
}
