// The tables this node answers reads of from its own applied state, with no read barrier
// (docs/consensus.md §Reads without a round): the client threads look here before they ask the
// node thread for a barrier.
//
// The node thread adds a table when a barrier read of it completes while the core says
// Replica::ServesReadsLocally, and takes every table whose answer changed out before each
// Ready's messages leave (NodeHost::RefreshLocalReads, which re-checks the objects the Ready
// touched, or all after a membership change or snapshot): the promise that ends an owner's claim
// leaves the node only after its tables left this set, so a read that still found its table
// here was invoked before any other node could be elected. Bounded: at most kTablesMax tables
// (the others take the barrier). Thread-safe.
#pragma once

#include <cstddef>
#include <functional>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_set.h"
#include "absl/synchronization/mutex.h"

namespace atlas {

class LocalReads {
 public:
  static constexpr size_t kTablesMax = 65'536;

  bool Contains(const std::string& table) const {
    absl::ReaderMutexLock lock(&mu_);
    return tables_.contains(table);
  }
  size_t size() const {
    absl::ReaderMutexLock lock(&mu_);
    return tables_.size();
  }

  // Node thread.
  void Insert(const std::string& table) {
    absl::MutexLock lock(&mu_);
    if (tables_.size() < kTablesMax) tables_.insert(table);
  }
  void Erase(const std::string& table) {
    absl::MutexLock lock(&mu_);
    tables_.erase(table);
  }
  // Keeps the tables for which `keep` is true.
  void RetainIf(const std::function<bool(const std::string&)>& keep) {
    absl::MutexLock lock(&mu_);
    absl::erase_if(tables_, [&keep](const std::string& t) { return !keep(t); });
  }
  void Clear() {
    absl::MutexLock lock(&mu_);
    tables_.clear();
  }

 private:
  mutable absl::Mutex mu_;
  absl::flat_hash_set<std::string> tables_ ABSL_GUARDED_BY(mu_);
};

}  // namespace atlas
