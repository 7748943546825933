// The node's key-value store (docs/storage.md): six column families behind one narrow interface,
// so that the code between the consensus core and the disk runs unchanged on RocksDB (the
// daemon: RocksStore) and in memory (the simulator and unit tests: MemStore).
//
// Column families: rows, blobs (RocksDB blob files for large values), log and acceptor (the
// per-object Paxos log and acceptor state), meta (per-table replicated state, node metadata),
// changes (WATCH). Reads are thread-safe. Writes are a WriteSet committed atomically; the
// daemon has a single writer (the node thread), which is what makes read-modify-write in the
// state machine safe.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "storage/records.h"

namespace rocksdb {
class Logger;
}

namespace atlas::storage {

// kChanges: each table's recent row changes by revision (WATCH; docs/watch.md). Node-local:
// never part of a snapshot.
enum class Cf { kRows = 0, kBlobs, kLog, kAcceptor, kMeta, kChanges, kCount };

// An ordered walk over one column family's keys in [lower, upper).
class Cursor {
 public:
  virtual ~Cursor() = default;
  virtual void Seek(std::string_view key) = 0;
  virtual bool Valid() const = 0;
  virtual void Next() = 0;
  virtual std::string_view key() const = 0;
  virtual std::string_view value() const = 0;
  virtual absl::Status status() const = 0;
};

// Point reads and ordered scans.
class Reader {
 public:
  virtual ~Reader() = default;
  virtual absl::StatusOr<std::optional<std::string>> Get(Cf cf, std::string_view key) = 0;
  // Keys in [lower, upper); an empty `upper` means to the end of the column family. The cursor
  // starts unpositioned: Seek first.
  virtual std::unique_ptr<Cursor> Scan(Cf cf, std::string_view lower, std::string_view upper) = 0;
};

// Writes applied together by Store::Commit. Reads through a WriteSet see its own writes over
// the store's state (read-your-writes), which is how one Ready's commands build on each other.
class WriteSet : public Reader {
 public:
  virtual void Put(Cf cf, std::string_view key, std::string_view value) = 0;
  virtual void Delete(Cf cf, std::string_view key) = 0;
  virtual size_t Count() const = 0;  // writes so far
  virtual size_t Bytes() const = 0;  // about the bytes of those writes
  virtual void Clear() = 0;          // empty again (after a Commit, to fill it anew)
};

struct StoreOptions {
  // RocksDB's memory: the block cache, the memtables (charged to the cache) and the index and
  // filter blocks (kept in it) together stay within this (docs/storage.md §Memory). Writes
  // stall, rather than memory grow, while flushes catch up.
  size_t memory_budget_bytes = size_t{256} << 20;
  static constexpr size_t kMemoryBudgetMin = size_t{16} << 20;
  bool create_if_missing = true;
  // False: open whatever format the directory says it is in (for tools and tests that look at
  // or repair one; atlasd always checks).
  bool check_format = true;
  // Where RocksDB's own messages go; null: its LOG files in the database directory.
  std::shared_ptr<rocksdb::Logger> info_log;
};

// The full value of a row record read through `reader` (a snapshot, where the chunks of a chunked
// value cannot change under it). DataLoss when a chunk is missing; Aborted when the chunks do
// not add up to the record's size (on a live reader: the row was overwritten meanwhile).
absl::StatusOr<std::string> ReadValueIn(Reader& reader, std::string_view table,
                                        std::string_view row, const RowRecord& record);
// A table's replicated state as `reader` sees it (the default state when it has none).
absl::StatusOr<TableState> TableStateIn(Reader& reader, std::string_view table);

// The on-disk format this build writes, and the oldest it reads (docs/storage.md §Format
// versions). Raise kFormatVersion with any change an older release would misread.
inline constexpr int kFormatVersion = 1;
inline constexpr int kFormatVersionMin = 1;

class Store : public Reader {
 public:
  // Opens (or creates) the RocksDB database under `dir` (storage/rocks_store.cc) and checks its
  // format (CheckFormat). A directory another process holds open fails with
  // FailedPrecondition and a message naming the lock.
  static absl::StatusOr<std::unique_ptr<Store>> Open(const std::string& dir,
                                                     const StoreOptions& options);

  virtual std::unique_ptr<WriteSet> NewWriteSet() = 0;
  // Applies `writes` atomically. `sync` makes them durable (WAL fsync) before returning.
  virtual absl::Status Commit(WriteSet& writes, bool sync) = 0;
  // A consistent view of the whole store as it is now (later commits do not show in it).
  virtual std::unique_ptr<Reader> Snapshot() = 0;
  // Bulk reads (a snapshot streamed to a learner, catch-up's log entries) go around the block
  // cache: read once, they would evict what foreground reads use and grow the node by the
  // cache's size. A snapshot as above, and the live store.
  virtual std::unique_ptr<Reader> BulkSnapshot() = 0;
  virtual std::unique_ptr<Reader> BulkReader() = 0;
  // Pipelined durability (docs/design.md §Pipelined syncs): makes every commit made before it
  // started durable (as a synced one would be) and returns how many commits that is (the
  // commits() it read first). Only one thread commits; Sync may run on another.
  virtual absl::StatusOr<uint64_t> Sync() = 0;
  // Commits so far (synced or not), counted from 0 at Open.
  virtual uint64_t commits() = 0;
  // An engine figure for /metrics, summed over the column families (RocksDB property names,
  // e.g. "rocksdb.total-sst-files-size"); 0 when the engine has none.
  virtual uint64_t Property(std::string_view name) = 0;
  virtual const std::string& path() const = 0;
  // The keys of [lo, hi) in `cf` were just deleted, many bytes at once (a staged snapshot):
  // their space is compacted away in the background now, not whenever compaction gets there.
  // Nothing in memory.
  virtual void Reclaim(Cf cf, std::string lo, std::string hi) = 0;

  // Typed reads of the formats in records.h and keys.h.
  absl::StatusOr<std::optional<RowRecord>> GetRow(std::string_view table, std::string_view row);
  // The full value of a row record (assembles chunks of a chunked value, under one snapshot).
  // Aborted when the row was overwritten between its record and its chunks: callers retry.
  absl::StatusOr<std::string> ReadValue(std::string_view table, std::string_view row,
                                        const RowRecord& record);
  // Visits rows of `table` whose row starts with `row_prefix`, in byte order, starting after
  // `after_row` when given, leaving out rows expired by `now_ms` (0: none left out).
  // `fn(row)` returns false to stop.
  absl::Status ForEachRow(std::string_view table, std::string_view row_prefix,
                          const std::optional<std::string>& after_row,
                          const std::function<bool(std::string_view row)>& fn,
                          int64_t now_ms = 0);
  // Visits the tables with replicated state on this node (a meta "state" record), in byte
  // order, after `after` when given, until `fn` returns false.
  absl::Status ForEachTable(const std::optional<std::string>& after,
                            const std::function<bool(std::string_view table)>& fn);
  // A table's replicated state and ACL as applied here (defaults when it has none yet).
  absl::StatusOr<TableState> LoadTableState(std::string_view table);
  absl::StatusOr<TableAcl> LoadTableAcl(std::string_view table);
  // Node-local metadata (identity, membership) by field name.
  absl::StatusOr<std::optional<std::string>> GetNodeMeta(std::string_view field);
};

// Writes one node-local metadata field (NodeMetaKey) into `writes`.
void PutNodeMeta(WriteSet& writes, std::string_view field, std::string_view value);

// The format the data directory `dir` says it is in (node metadata "format"; absent: written
// before formats were recorded, which is format 1), checked against this build's range:
// whether to mark it with kFormatVersion (a new or older-but-readable one), or
// FailedPrecondition saying what to do.
absl::StatusOr<bool> CheckFormat(Reader& store, const std::string& dir);

// Deletes, in `writes`, every key of [lo, hi) in `cf` that it or the store holds (collected
// first: the WriteSet must not change under its own scan). Fails only if the scan does.
absl::Status DeleteAllIn(WriteSet& writes, Cf cf, std::string_view lo, std::string_view hi);

// The store in memory, for the simulator and unit tests: every column family an ordered map.
// What Commit applies with sync=false is lost by Crash(); what it applied with sync=true is
// not. Thread-safe.
std::unique_ptr<Store> NewMemStore();
// Drops the writes committed without sync since the last synced commit (a power cut), except
// the first `keep` of those commits: a write-ahead log may have reached the disk in part, but
// never with a hole. Only for stores from NewMemStore.
void CrashMemStore(Store& store, size_t keep = 0);
// How many commits since the last synced one a crash could keep or lose.
size_t UnsyncedMemStoreCommits(Store& store);

}  // namespace atlas::storage
