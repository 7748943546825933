// The findings of the adversarial review (issue «Close the holes an adversarial review found»)
// that need a cluster, each replayed as an attack on real atlasd processes. Every test here
// failed on c005a71. docs/security.md maps each threat to its test.
#include <catch2/catch.hpp>

#include <string>

#include "tests/integration/daemon.h"
#include "tests/integration/local_cluster.h"

using atlas::testing::Eventually;
using atlas::testing::LocalCluster;
using atlas::testing::OwnerOf;
using atlas::testing::Texts;

namespace {

// One command as `principal` ("" = none) on node i, over a fresh connection.
std::string As(LocalCluster& c, size_t node, const std::string& principal,
               const std::string& line) {
  auto conn = c.node(node).Connect(std::chrono::milliseconds(5000));
  if (!conn) return "(no connection)";
  if (!principal.empty()) {
    auto r = conn->Call("PRINCIPAL ASSUME " + principal);
    if (!r.ok() || Texts(*r) != "OK") return "(assume failed)";
  }
  auto r = conn->Call(line);
  return r.ok() ? Texts(*r) : "(" + std::string(r.status().message()) + ")";
}

}  // namespace

TEST_CASE("TABLE MOVE needs OWNER like TABLE PIN, never breaks a pin, and TABLE INFO shows rows "
          "only to readers") {
  LocalCluster c({"east", "west", "north"});
  for (int i = 0; i < 3; ++i) REQUIRE(c.Add());
  REQUIRE(As(c, 1, "alice", "KEY PUT p.a 1") == "OK");
  REQUIRE(As(c, 1, "alice", "ACL GRANT p alice PERMS OWNER") == "OK");
  REQUIRE(As(c, 1, "alice", "TABLE PIN p east") == "OK");

  // A principal with no grant may not place the table, through any node.
  for (size_t node : {1, 2, 3}) {
    INFO("node " << node);
    CHECK(As(c, node, "mallory", "TABLE MOVE p west") ==
          "ERROR WARN permission denied for principal 'mallory': TABLE MOVE on p");
    CHECK(As(c, node, "", "TABLE MOVE p 2") == "ERROR WARN permission denied: TABLE MOVE on p");
  }
  // The owner may not move it out of its pinned region either...
  CHECK(As(c, 2, "alice", "TABLE MOVE p west") ==
        "ERROR WARN table 'p' is pinned to region 'east'; move it within that region, or TABLE "
        "PIN p NONE first");
  CHECK(As(c, 1, "alice", "TABLE MOVE p 3") ==
        "ERROR WARN table 'p' is pinned to region 'east'; move it within that region, or TABLE "
        "PIN p NONE first");
  // ...but within it, or once unpinned.
  CHECK(As(c, 2, "alice", "TABLE MOVE p east") == "OK");
  CHECK(OwnerOf(c, 1, "p") == "1");
  REQUIRE(As(c, 1, "alice", "TABLE PIN p NONE") == "OK");
  CHECK(As(c, 1, "alice", "TABLE MOVE p west") == "OK");
  CHECK(Eventually([&] { return OwnerOf(c, 3, "p") == "2"; }));

  // Row counts are data: a stranger sees the placement but not how many rows there are.
  std::string stranger = As(c, 3, "mallory", "TABLE INFO p");
  CHECK(stranger.find(" rows=- ") != std::string::npos);
  CHECK(stranger.find("owner=2") != std::string::npos);
  CHECK(As(c, 3, "mallory", "COUNT p").starts_with("ERROR WARN permission denied"));
  CHECK(As(c, 3, "alice", "TABLE INFO p").find(" rows=1 ") != std::string::npos);
}

TEST_CASE("a node whose clock runs two hours ahead cannot end a WORM retention: it owns "
          "nothing, serves no data and says why") {
  LocalCluster c({"east", "west", "north"});
  for (int i = 0; i < 3; ++i) REQUIRE(c.Add());
  REQUIRE(c.Call(1, "KEY PUT audit.rec1 WORM TTL 1h x") == "OK");
  REQUIRE(c.Call(1, "KEY DEL audit.rec1").starts_with("ERROR WARN row 'audit.rec1' is "
                                                       "WORM-protected until "));
  // Node 3 owns a table before its clock jumps.
  REQUIRE(c.Call(3, "KEY PUT t3.a 1") == "OK");
  REQUIRE(c.Call(3, "TABLE MOVE t3 3") == "OK");
  REQUIRE(OwnerOf(c, 1, "t3") == "3");

  // Restart node 3 with CLOCK_REALTIME two hours ahead (the review's LD_PRELOAD shim).
  REQUIRE(c.node(3).Stop() == 0);
  c.node(3).SetEnv("LD_PRELOAD", ATLAS_CLOCK_SHIFT_LIB);
  c.node(3).SetEnv("ATLAS_TEST_CLOCK_SHIFT_MS", std::to_string(2 * 3600 * 1000));
  REQUIRE(c.node(3).Start());
  // It measures its peers' clocks and stops serving data, saying why.
  CHECK(Eventually([&] { return c.Call(3, "NODE INFO 3").find(" clock=offset ") != std::string::npos; }));
  std::string refusal = c.Call(3, "KEY DEL audit.rec1");
  INFO(refusal);
  CHECK((refusal.starts_with("ERROR WARN clock offset: this node's clock is 7200.") ||
         refusal.starts_with("ERROR WARN clock offset: this node's clock is 7199.")));
  CHECK(refusal.find("ahead of its peers' (max-clock-offset 500 ms)") != std::string::npos);
  CHECK(c.Call(3, "KEY GET audit.rec1").starts_with("ERROR WARN clock offset"));
  CHECK(c.Call(3, "NODE LIST").ends_with("OK"));  // the cluster commands still answer
  std::string health = c.Health(3);
  CHECK(health.find("\"status\":\"CLOCK_OFFSET\"") != std::string::npos);
  CHECK(health.find("\"clock\":\"offset\"") != std::string::npos);
  CHECK(c.node(3).Log().find("clock offset: this node's clock is 7") != std::string::npos);
  // The other nodes see it too, and keep their own clocks trusted.
  CHECK(Eventually([&] { return c.Call(1, "NODE INFO 3").find(" clock=offset ") != std::string::npos; }));
  CHECK(c.Call(1, "NODE INFO 1").find(" clock=ok ") != std::string::npos);

  // The retention holds everywhere, and node 3's old table is served by a node it trusts.
  CHECK(c.Call(1, "KEY DEL audit.rec1").starts_with("ERROR WARN row 'audit.rec1' is WORM-protected"));
  CHECK(c.Call(2, "KEY GET audit.rec1") == "VALUE:x\nOK");
  // (A forward to the restarted old owner may come back "outcome unknown": retry, as clients do.)
  CHECK(Eventually([&] { return c.Call(1, "KEY PUT t3.b 2") == "OK"; }));
  CHECK(OwnerOf(c, 2, "t3") != "3");
  CHECK(c.Call(3, "NODE INFO 3").find(" owned_tables=0 ") != std::string::npos);

  // Once its clock is right again it serves as before. (Killed, not stopped: under the shim
  // only this process's clock reads are shifted, not the kernel's timed waits, and gRPC's
  // shutdown then waits on deadlines that never come.)
  c.node(3).Kill9();
  c.node(3).ClearEnv();
  REQUIRE(c.node(3).Start());
  CHECK(Eventually([&] { return c.Call(3, "KEY GET t3.b") == "VALUE:2\nOK"; }));
  CHECK(c.Call(3, "KEY DEL audit.rec1").starts_with("ERROR WARN row 'audit.rec1' is WORM-protected"));
}
