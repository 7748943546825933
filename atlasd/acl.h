// Access-control decisions of shared/spec/protocol.md §6, as pure functions so that the read path
// (executor) and the write path (state machine, on every replica) decide identically.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "storage/records.h"

namespace atlas {

enum class AclOp { kRead, kWrite, kAdminister };

// Whether `principal` (nullopt: none) may perform `op` on a table with `acl`.
// `admin`: the principal is one of the node's admin-users (only matters for kAdminister).
bool AclAllows(const storage::TableAcl& acl, const std::optional<std::string>& principal,
               bool admin, AclOp op);

// `permission denied for principal 'p': <op> on <table>` / `permission denied: <op> on <table>`.
std::string PermissionDenied(const std::optional<std::string>& principal, std::string_view op,
                             std::string_view table);

// Adds or removes one grant, keeping grants sorted and unique; maintains ever_owned.
void AclApplyChange(storage::TableAcl* acl, const std::string& principal, storage::AclPerm perm,
                    bool grant);

}  // namespace atlas
