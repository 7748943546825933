// Tables' ACLs for the permission checks of the client-serving threads (a GET checks one
// before it reads), held in memory instead of a RocksDB read per command.
//
// Coherence: the node thread invalidates a table once an apply that changed its ACL is durable
// and before any client is answered for it (NodeHost::Publish); snapshot installs and adopts
// invalidate everything. A lookup that missed reads the store and keeps what it read only if
// no invalidation happened meanwhile (the epoch), so a value read just before a change
// committed is never kept after it. Bounded in bytes: when full, it starts over.
//
// Thread-safe.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "storage/records.h"

namespace atlas {

// About 100,000 tables' ACLs of a few grants.
inline constexpr size_t kDefaultAclCacheBytes = size_t{16} << 20;
// For a node of `memory_budget_bytes` (docs/storage.md §Memory): a sixteenth of it, the
// default above at the default budget (256 MiB).
inline size_t AclCacheBytes(size_t memory_budget_bytes) { return memory_budget_bytes / 16; }

class AclCache {
 public:
  using Loader = std::function<absl::StatusOr<storage::TableAcl>(const std::string& table)>;

  explicit AclCache(size_t bytes_max) : bytes_max_(bytes_max) {}

  // The table's ACL: held, else `load`ed (and held unless invalidated meanwhile).
  absl::StatusOr<storage::TableAcl> Get(const std::string& table, const Loader& load);
  // After a durable change of these tables' ACLs (or of every table's).
  void Invalidate(const std::vector<std::string>& tables);
  void InvalidateAll();

  size_t bytes() const;

 private:
  static size_t Cost(const std::string& table, const storage::TableAcl& acl);

  const size_t bytes_max_;
  mutable absl::Mutex mu_;
  absl::flat_hash_map<std::string, storage::TableAcl> acls_ ABSL_GUARDED_BY(mu_);
  size_t bytes_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t epoch_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace atlas
