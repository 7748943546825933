// The access-control matrix of shared/spec/protocol.md §6.
#include <catch2/catch.hpp>

#include "atlasd/acl.h"
#include "atlasd/acl_cache.h"

using atlas::AclAllows;
using atlas::AclApplyChange;
using atlas::AclOp;
using atlas::storage::AclPerm;
using atlas::storage::TableAcl;

namespace {
const std::optional<std::string> kNone;
std::optional<std::string> P(const char* s) { return std::string(s); }
}  // namespace

TEST_CASE("a table with no grants is open to everyone, even without a principal") {
  TableAcl acl;
  for (auto op : {AclOp::kRead, AclOp::kWrite, AclOp::kAdminister}) {
    CHECK(AclAllows(acl, kNone, false, op));
    CHECK(AclAllows(acl, P("anyone"), false, op));
  }
}

TEST_CASE("OWNER reads, writes and administers - WRITE only writes - READ only reads") {
  TableAcl acl;
  AclApplyChange(&acl, "o", AclPerm::kOwner, true);
  AclApplyChange(&acl, "w", AclPerm::kWrite, true);
  AclApplyChange(&acl, "r", AclPerm::kRead, true);
  CHECK(AclAllows(acl, P("o"), false, AclOp::kRead));
  CHECK(AclAllows(acl, P("o"), false, AclOp::kWrite));
  CHECK(AclAllows(acl, P("o"), false, AclOp::kAdminister));
  CHECK_FALSE(AclAllows(acl, P("w"), false, AclOp::kRead));  // WRITE does not imply READ
  CHECK(AclAllows(acl, P("w"), false, AclOp::kWrite));
  CHECK_FALSE(AclAllows(acl, P("w"), false, AclOp::kAdminister));  // cannot grant itself OWNER
  CHECK(AclAllows(acl, P("r"), false, AclOp::kRead));
  CHECK_FALSE(AclAllows(acl, P("r"), false, AclOp::kWrite));
  CHECK_FALSE(AclAllows(acl, P("stranger"), false, AclOp::kRead));
  CHECK_FALSE(AclAllows(acl, kNone, false, AclOp::kRead));
  CHECK_FALSE(AclAllows(acl, kNone, false, AclOp::kWrite));
}

TEST_CASE("revoking the last OWNER leaves the other grants and nobody but admins administers") {
  TableAcl acl;
  AclApplyChange(&acl, "o", AclPerm::kOwner, true);
  AclApplyChange(&acl, "r", AclPerm::kRead, true);
  AclApplyChange(&acl, "o", AclPerm::kOwner, false);
  CHECK(AclAllows(acl, P("r"), false, AclOp::kRead));
  CHECK_FALSE(AclAllows(acl, P("o"), false, AclOp::kRead));
  CHECK_FALSE(AclAllows(acl, P("r"), false, AclOp::kAdminister));
  CHECK_FALSE(AclAllows(acl, P("o"), false, AclOp::kAdminister));
  CHECK(AclAllows(acl, P("admin"), true, AclOp::kAdminister));
  // Admins administer; they do not read or write without a grant.
  CHECK_FALSE(AclAllows(acl, P("admin"), true, AclOp::kRead));
}

TEST_CASE("grants are a set: duplicates collapse and revoking a missing grant is a no-op") {
  TableAcl acl;
  AclApplyChange(&acl, "a", AclPerm::kRead, true);
  AclApplyChange(&acl, "a", AclPerm::kRead, true);
  AclApplyChange(&acl, "b", AclPerm::kWrite, false);
  CHECK(acl.grants.size() == 1);
  AclApplyChange(&acl, "a", AclPerm::kRead, false);
  CHECK(acl.grants.empty());
  CHECK(AclAllows(acl, kNone, false, AclOp::kWrite));  // open again
}

TEST_CASE("the ACL cache never keeps a value read before an invalidation, and stays in bounds") {
  atlas::AclCache cache(4096);
  int loads = 0;
  TableAcl granted;
  AclApplyChange(&granted, "r", AclPerm::kRead, true);
  auto load_granted = [&](const std::string&) -> absl::StatusOr<TableAcl> {
    ++loads;
    return granted;
  };
  REQUIRE(cache.Get("t", load_granted).ok());
  REQUIRE(cache.Get("t", load_granted).ok());
  CHECK(loads == 1);  // the second from memory
  // A change commits (and invalidates) while a lookup is reading the old value: the old value
  // is returned to that lookup (it was concurrent) but not kept.
  auto load_racing = [&](const std::string& t) -> absl::StatusOr<TableAcl> {
    ++loads;
    TableAcl old = granted;
    cache.Invalidate({t});
    return old;
  };
  cache.Invalidate({"t"});
  CHECK(cache.Get("t", load_racing)->grants.size() == 1);
  TableAcl now;
  auto load_now = [&](const std::string&) -> absl::StatusOr<TableAcl> {
    ++loads;
    return now;
  };
  CHECK(cache.Get("t", load_now)->grants.empty());
  CHECK(cache.Get("t", load_now)->grants.empty());
  CHECK(loads == 3);
  cache.InvalidateAll();
  CHECK(cache.bytes() == 0);
  for (int i = 0; i < 1000; ++i) {
    REQUIRE(cache.Get("table" + std::to_string(i), load_granted).ok());
    CHECK(cache.bytes() <= 4096);
  }
}
