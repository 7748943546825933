#include "atlasd/acl_cache.h"

namespace atlas {

size_t AclCache::Cost(const std::string& table, const storage::TableAcl& acl) {
  size_t bytes = table.size() + sizeof(storage::TableAcl) + 64;  // 64: the map slot
  for (const auto& g : acl.grants) bytes += sizeof(g) + g.principal.size();
  return bytes;
}

absl::StatusOr<storage::TableAcl> AclCache::Get(const std::string& table, const Loader& load) {
  uint64_t epoch;
  {
    absl::MutexLock lock(&mu_);
    if (auto it = acls_.find(table); it != acls_.end()) return it->second;
    epoch = epoch_;
  }
  absl::StatusOr<storage::TableAcl> acl = load(table);
  if (!acl.ok()) return acl;
  absl::MutexLock lock(&mu_);
  // An invalidation since the read may have been of this very table: keep nothing.
  if (epoch != epoch_) return acl;
  const size_t cost = Cost(table, *acl);
  if (bytes_ + cost > bytes_max_) {
    acls_.clear();
    bytes_ = 0;
  }
  if (acls_.try_emplace(table, *acl).second) bytes_ += cost;
  return acl;
}

void AclCache::Invalidate(const std::vector<std::string>& tables) {
  absl::MutexLock lock(&mu_);
  ++epoch_;
  for (const std::string& t : tables) {
    auto it = acls_.find(t);
    if (it == acls_.end()) continue;
    bytes_ -= Cost(t, it->second);
    acls_.erase(it);
  }
}

void AclCache::InvalidateAll() {
  absl::MutexLock lock(&mu_);
  ++epoch_;
  acls_.clear();
  bytes_ = 0;
}

size_t AclCache::bytes() const {
  absl::MutexLock lock(&mu_);
  return bytes_;
}

}  // namespace atlas
