// The table and object records (Cf::kMeta: table state, ACL, moves, member records, commit
// indexes) that the state machine reads and writes on every apply, held in memory
// (docs/design.md §State machine, "Records in memory").
//
// Why: an apply used to read four of them through the WriteSet (RocksDB point reads through a
// WriteBatchWithIndex) and write two of them for every command; a batch of 64 PUTs to one
// table wrote the same two keys 64 times. Now an apply reads them from here, and Flush writes
// each changed record once per Ready, into the same WriteSet, before it is committed: what
// reaches the disk, and when, is unchanged.
//
// Rules that keep it equal to the store (the bug switch StateMachine::Options::
// test_stale_meta_cache breaks the first one; the simulator catches it):
//  - Whoever writes Cf::kMeta past it (snapshot installs, range deletes) calls Flush first and
//    Clear after.
//  - Whoever scans Cf::kMeta through a WriteSet calls Flush first (a scan must see every record
//    of the batch, whatever the batch boundaries are, or replicas could decide differently).
//  - It lives as long as the host: a crash or a failed commit ends the host, and with it the
//    records of a Ready that never reached the disk.
//
// Bounded in bytes: two generations; lookups promote to the young one, and when the young one
// outgrows half the limit (checked only in Flush, when nothing is dirty) the old one is
// dropped. Thread-compatible: the node thread only.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "storage/store.h"

namespace atlas {

// Empties a hash map but keeps its table: clear() frees a large one, and a cache that fills
// up again then page-faults all of it back in (freed blocks of 1 MiB and more go back to the
// kernel). Erasing one by one leaves the table allocated; its tombstones are reclaimed in
// place as it fills.
template <typename Map>
void EmptyKeepingMemory(Map& map) {
  map.erase(map.begin(), map.end());
}

class MetaCache {
 public:
  // A record as the store has it (nullopt: absent).
  using Record = std::optional<std::string>;

  explicit MetaCache(size_t bytes_max) : bytes_max_(bytes_max) {}

  // The record under `key`, or null when it is not held here.
  const Record* Find(const std::string& key);
  // Holds what the store (or the WriteSet) has under `key`.
  void Fill(const std::string& key, Record record);
  // Changes a record: it reaches a WriteSet in the next Flush.
  void Put(const std::string& key, std::string value);
  void Delete(const std::string& key);

  // Writes the changed records into `batch` (they are clean afterwards), then keeps the bound.
  void Flush(storage::WriteSet& batch);
  // Forgets every record. Only when nothing is dirty (after a Flush).
  void Clear();

  size_t bytes() const { return young_bytes_ + old_bytes_; }
  size_t dirty() const { return dirty_keys_.size(); }

 private:
  struct Entry {
    Record record;
    bool dirty = false;
  };
  using Map = absl::flat_hash_map<std::string, Entry>;
  static size_t Cost(const std::string& key, const Record& r) {
    return key.size() + (r ? r->size() : 0) + 64;  // 64: the map slot and string headers
  }
  Entry& Young(const std::string& key);

  void MarkDirty(const std::string& key, Entry& e);

  size_t bytes_max_;
  Map young_, old_;
  size_t young_bytes_ = 0, old_bytes_ = 0;
  // The keys of the dirty entries, so that Flush costs what changed, not what is held (a walk
  // of the young generation was 13% of a node's time while tables were being created).
  std::vector<std::string> dirty_keys_;
};

}  // namespace atlas
