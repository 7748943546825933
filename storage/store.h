// The node's RocksDB database (docs/storage.md).
//
// Column families: rows, blobs (RocksDB blob files for large values), log and acceptor (the
// per-object Paxos log and acceptor state), meta (per-table replicated state, node metadata).
// Reads are thread-safe. Writes go through Write(); the daemon has a single writer (the commit
// pipeline), which is what makes read-modify-write in the state machine safe.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "rocksdb/db.h"
#include "storage/records.h"

namespace atlas::storage {

// kChanges: each table's recent row changes by revision (WATCH; docs/watch.md). Node-local:
// never part of a snapshot.
enum class Cf { kRows = 0, kBlobs, kLog, kAcceptor, kMeta, kChanges, kCount };

struct StoreOptions {
  size_t block_cache_bytes = size_t{64} << 20;
  bool create_if_missing = true;
  // Where RocksDB's own messages go; null: its LOG files in the database directory.
  std::shared_ptr<rocksdb::Logger> info_log;
};

class Store {
 public:
  // Opens (or creates) the database under `dir`. A directory another process holds open fails
  // with FailedPrecondition and a message naming the lock.
  static absl::StatusOr<std::unique_ptr<Store>> Open(const std::string& dir,
                                                     const StoreOptions& options);
  ~Store();
  Store(const Store&) = delete;
  Store& operator=(const Store&) = delete;

  rocksdb::DB* db() { return db_.get(); }
  rocksdb::ColumnFamilyHandle* cf(Cf which) { return handles_[static_cast<int>(which)]; }

  // Applies one batch atomically. `sync` makes it durable (WAL fsync) before returning; RocksDB
  // groups concurrent syncs, and the commit pipeline batches many commands per call.
  absl::Status Write(rocksdb::WriteBatch* batch, bool sync);

  absl::StatusOr<std::optional<RowRecord>> GetRow(std::string_view table, std::string_view row);
  // The full value of a row record (assembles chunks of a chunked value).
  absl::StatusOr<std::string> ReadValue(std::string_view table, std::string_view row,
                                        const RowRecord& record);
  absl::StatusOr<std::optional<std::string>> Get(Cf which, std::string_view key);

  // Visits rows of `table` whose row starts with `row_prefix`, in byte order, starting after
  // `after_row` when given. `fn(row)` returns false to stop.
  absl::Status ForEachRow(std::string_view table, std::string_view row_prefix,
                          const std::optional<std::string>& after_row,
                          const std::function<bool(std::string_view row)>& fn);

  const std::string& path() const { return path_; }

 private:
  Store() = default;
  std::string path_;
  std::unique_ptr<rocksdb::DB> db_;
  std::vector<rocksdb::ColumnFamilyHandle*> handles_;
  rocksdb::ColumnFamilyHandle* default_cf_ = nullptr;
};

}  // namespace atlas::storage
