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
