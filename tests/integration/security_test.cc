// The security suite on a real cluster (issue «Reliability and security under fire»): the access
// control matrix on every node and across an ownership move, ACL changes enforced at once
// everywhere, and WORM retention across restarts and moves (shared/spec/protocol.md §6, §7).
#include <catch2/catch.hpp>

#include <map>
#include <string>
#include <vector>

#include "tests/integration/daemon.h"
#include "tests/integration/local_cluster.h"

using atlas::testing::As;
using atlas::testing::Eventually;
using atlas::testing::LocalCluster;
using atlas::testing::OwnerOf;
using atlas::testing::Texts;

namespace {

bool Denied(const std::string& reply) { return reply.starts_with("ERROR WARN permission denied"); }

// What shared/spec/protocol.md §6 says each principal may do on a table with alice OWNER, bob
// WRITE, carol READ.
struct Rights {
  bool read, write, administer;
};
const std::map<std::string, Rights> kMatrix = {
    {"", {false, false, false}},      {"dave", {false, false, false}},
    {"alice", {true, true, true}},    {"bob", {false, true, false}},
    {"carol", {true, false, false}},
};

// Every read, write and ACL command as every principal through node `node`: allowed ones
// succeed, denied ones are `permission denied` (never NOT_FOUND or a partial answer).
void CheckMatrix(LocalCluster& c, size_t node, int round) {
  for (const auto& [who, may] : kMatrix) {
    INFO("node " << node << ", principal '" << who << "'");
    const std::string row = "m.w" + std::to_string(round) + (who.empty() ? "none" : who);
    for (std::string read : {"KEY GET m.r", "KEY BLOB GET m.r", "SCAN m", "COUNT m",
                             "SAMPLE m 2", "ACL LIST m"}) {
      INFO(read);
      std::string reply = As(c, node, who, read);
      bool list = read == "ACL LIST m";  // readers and owners may list the grants
      CHECK(Denied(reply) == !(may.read || (list && may.administer)));
      if (!Denied(reply)) CHECK(reply.ends_with("OK"));
    }
    for (std::string write : {"KEY PUT " + row + " v", "KEY BLOB SET " + row + " 2",
                              "KEY DEL " + row}) {
      INFO(write);
      std::string reply = As(c, node, who, write, "xy");
      CHECK(Denied(reply) == !may.write);
      if (may.write) CHECK(reply == "OK");
    }
    std::string grant = As(c, node, who, "ACL GRANT m zed PERMS READ");
    CHECK(Denied(grant) == !may.administer);
    if (may.administer) CHECK(As(c, node, who, "ACL REVOKE m zed PERMS READ") == "OK");
    CHECK(Denied(As(c, node, who, "ACL REVOKE m carol PERMS READ")) == !may.administer);
    if (may.administer) CHECK(As(c, node, who, "ACL GRANT m carol PERMS READ") == "OK");
  }
}

}  // namespace

TEST_CASE("the ACL matrix holds on every node and after an ownership move, and ACL changes "
          "bind every node at once") {
  LocalCluster c({"east", "west", "north"}, {"--admin-users", "root-admin"});
  for (int i = 0; i < 3; ++i) REQUIRE(c.Add());
  // No grants: open to everyone, with or without a principal, through any node.
  REQUIRE(As(c, 1, "", "KEY PUT m.r before") == "OK");
  CHECK(As(c, 2, "", "KEY GET m.r") == "VALUE:before\nOK");
  CHECK(As(c, 3, "zed", "KEY PUT m.open 1") == "OK");
  // Anyone may administer a table that never had an owner; then only its owners.
  REQUIRE(As(c, 2, "alice", "ACL GRANT m alice PERMS OWNER") == "OK");
  REQUIRE(As(c, 3, "alice", "ACL GRANT m bob PERMS WRITE") == "OK");
  REQUIRE(As(c, 1, "alice", "ACL GRANT m carol PERMS READ") == "OK");
  REQUIRE(As(c, 1, "alice", "KEY PUT m.r value") == "OK");
  for (size_t n = 1; n <= 3; ++n) {
    CHECK(As(c, n, "carol", "ACL LIST m") == "ACL alice OWNER\nACL bob WRITE\nACL carol READ\nOK");
    CheckMatrix(c, n, 1);
  }

  // The ACL is the table's replicated state: it moves with the table.
  std::string before = OwnerOf(c, 1, "m");
  size_t target = before == "3" ? 2 : 3;
  // (Placement is administration: the owner moves it.)
  REQUIRE(As(c, 1, "alice", "TABLE MOVE m " + std::to_string(target)) == "OK");
  REQUIRE(OwnerOf(c, 1, "m") == std::to_string(target));
  for (size_t n = 1; n <= 3; ++n) CheckMatrix(c, n, 2);

  // A change committed through one node binds the next command on any other node: reads and
  // writes are checked against the ACL as of their linearization point, not a stale replica.
  for (int k = 0; k < 5; ++k) {
    size_t a = 1 + k % 3, b = 1 + (k + 1) % 3;
    INFO("revoke through node " << a << ", use through node " << b);
    REQUIRE(As(c, a, "alice", "ACL REVOKE m carol PERMS READ") == "OK");
    CHECK(Denied(As(c, b, "carol", "KEY GET m.r")));
    REQUIRE(As(c, a, "alice", "ACL REVOKE m bob PERMS WRITE") == "OK");
    CHECK(Denied(As(c, b, "bob", "KEY PUT m.late x")));
    REQUIRE(As(c, a, "alice", "ACL GRANT m carol PERMS READ") == "OK");
    CHECK(As(c, b, "carol", "KEY GET m.r") == "VALUE:value\nOK");
    REQUIRE(As(c, a, "alice", "ACL GRANT m bob PERMS WRITE") == "OK");
    CHECK(As(c, b, "bob", "KEY PUT m.late x") == "OK");
  }

  // Revoking the last OWNER leaves the other grants in force and nobody to administer, until an
  // admin user (a node setting) grants again.
  REQUIRE(As(c, 2, "alice", "ACL REVOKE m alice PERMS OWNER") == "OK");
  for (size_t n = 1; n <= 3; ++n) {
    CHECK(As(c, n, "carol", "KEY GET m.r") == "VALUE:value\nOK");
    CHECK(Denied(As(c, n, "alice", "KEY GET m.r")));
    CHECK(Denied(As(c, n, "alice", "ACL GRANT m alice PERMS OWNER")));
    CHECK(Denied(As(c, n, "", "ACL GRANT m alice PERMS OWNER")));
  }
  REQUIRE(As(c, 3, "root-admin", "ACL GRANT m alice PERMS OWNER") == "OK");
  // And all of it survives restarts of every node.
  for (size_t n = 1; n <= 3; ++n) {
    REQUIRE(c.node(n).Stop() == 0);
    REQUIRE(c.node(n).Start());
  }
  for (size_t n = 1; n <= 3; ++n) {
    CHECK(Eventually([&] { return As(c, n, "alice", "KEY GET m.r") == "VALUE:value\nOK"; }));
    CheckMatrix(c, n, 3);
  }
}

TEST_CASE("WORM retention holds on every node, across an ownership move and restarts, and ends "
          "by the committed timestamp") {
  LocalCluster c({"east", "west", "north"});
  for (int i = 0; i < 3; ++i) REQUIRE(c.Add());
  REQUIRE(As(c, 1, "", "KEY PUT audit.e1 WORM TTL 1h entry") == "OK");
  REQUIRE(As(c, 2, "", "KEY PUT audit.short WORM TTL 4s brief") == "OK");
  auto refused = [&](size_t n, const std::string& key) {
    INFO("node " << n << ", " << key);
    bool all = true;
    for (std::string line : {"KEY PUT " + key + " changed", "KEY DEL " + key,
                             "KEY BLOB SET " + key + " 1"}) {
      std::string r = As(c, n, "", line, "x");
      INFO(line << " -> " << r);
      bool ok = r.starts_with("ERROR WARN row '" + key + "' is WORM-protected until 20");
      CHECK(ok);
      all = all && ok;
    }
    return all;
  };
  for (size_t n = 1; n <= 3; ++n) refused(n, "audit.e1");

  std::string before = OwnerOf(c, 1, "audit");
  size_t target = before == "3" ? 2 : 3;
  REQUIRE(As(c, 1, "", "TABLE MOVE audit " + std::to_string(target)) == "OK");
  for (size_t n = 1; n <= 3; ++n) refused(n, "audit.e1");

  for (size_t n = 1; n <= 3; ++n) {
    REQUIRE(c.node(n).Stop() == 0);
    REQUIRE(c.node(n).Start());
  }
  for (size_t n = 1; n <= 3; ++n) {
    CHECK(Eventually([&] { return As(c, n, "", "KEY GET audit.e1") == "VALUE:entry\nOK"; }));
    refused(n, "audit.e1");
  }
  // The short retention has ended (it began at its commit): the row is an ordinary row again,
  // on every node.
  CHECK(Eventually([&] { return As(c, 3, "", "KEY PUT audit.short later") == "OK"; },
                   std::chrono::seconds(30)));
  CHECK(As(c, 1, "", "KEY DEL audit.short") == "OK");
  CHECK(As(c, 2, "", "KEY GET audit.short") == "NOT_FOUND\nOK");
}
