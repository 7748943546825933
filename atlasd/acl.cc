#include "atlasd/acl.h"

#include <algorithm>

#include "socketproto/str.h"

namespace atlas {

using storage::AclPerm;
using storage::TableAcl;

namespace {
bool Has(const TableAcl& acl, const std::string& principal, AclPerm perm) {
  return std::any_of(acl.grants.begin(), acl.grants.end(), [&](const TableAcl::Grant& g) {
    return g.principal == principal && g.perm == perm;
  });
}
bool HasAnyOwner(const TableAcl& acl) {
  return std::any_of(acl.grants.begin(), acl.grants.end(),
                     [](const TableAcl::Grant& g) { return g.perm == AclPerm::kOwner; });
}
}  // namespace

bool AclAllows(const TableAcl& acl, const std::optional<std::string>& principal, bool admin,
               AclOp op) {
  // A table with no grants is open to everyone, including connections with no principal.
  if (acl.grants.empty()) return true;
  if (op == AclOp::kAdminister) {
    if (admin) return true;  // how a table whose last OWNER was revoked is administered again
    // Anyone may administer a table that never had an OWNER; once it had one, only an OWNER.
    if (!acl.ever_owned && !HasAnyOwner(acl)) return true;
    return principal && Has(acl, *principal, AclPerm::kOwner);
  }
  if (!principal) return false;
  if (Has(acl, *principal, AclPerm::kOwner)) return true;
  // WRITE does not imply READ, nor READ WRITE.
  return Has(acl, *principal, op == AclOp::kRead ? AclPerm::kRead : AclPerm::kWrite);
}

std::string PermissionDenied(const std::optional<std::string>& principal, std::string_view op,
                             std::string_view table) {
  if (principal) {
    return StrCat("permission denied for principal '", *principal, "': ", op, " on ", table);
  }
  return StrCat("permission denied: ", op, " on ", table);
}

void AclApplyChange(TableAcl* acl, const std::string& principal, AclPerm perm, bool grant) {
  TableAcl::Grant g{principal, perm};
  auto less = [](const TableAcl::Grant& a, const TableAcl::Grant& b) {
    return std::tie(a.principal, a.perm) < std::tie(b.principal, b.perm);
  };
  auto it = std::lower_bound(acl->grants.begin(), acl->grants.end(), g, less);
  bool present = it != acl->grants.end() && *it == g;
  if (grant && !present) acl->grants.insert(it, g);
  if (!grant && present) acl->grants.erase(it);
  if (grant && perm == AclPerm::kOwner) acl->ever_owned = true;
  // With every grant gone the table is open again, and so administrable by anyone.
  if (acl->grants.empty()) acl->ever_owned = false;
}

}  // namespace atlas
