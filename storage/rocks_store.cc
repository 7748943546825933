// The Store on RocksDB (docs/storage.md): what the daemon runs on.
#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <thread>
#include <tuple>
#include <vector>

#include "fmt/format.h"
#include "rocksdb/db.h"
#include "rocksdb/filter_policy.h"
#include "rocksdb/table.h"
#include "rocksdb/utilities/write_batch_with_index.h"
#include "rocksdb/write_buffer_manager.h"
#include "storage/keys.h"
#include "storage/store.h"

namespace atlas::storage {
namespace {

constexpr const char* kCfNames[] = {"rows", "blobs", "log", "acceptor", "meta", "changes"};
static_assert(std::size(kCfNames) == static_cast<size_t>(Cf::kCount));

absl::Status FromRocks(const rocksdb::Status& s, std::string_view what) {
  if (s.ok()) return absl::OkStatus();
  return absl::InternalError(fmt::format("{}: {}", what, s.ToString()));
}

// A RocksDB iterator with its upper bound (the bound must outlive the iterator).
class RocksCursor final : public Cursor {
 public:
  RocksCursor(std::string lower, std::string upper) : lower_(std::move(lower)), upper_(upper) {
    bound_ = rocksdb::Slice(upper_);
  }
  // `make` builds the iterator from read options that carry the bound.
  template <typename Make>
  void Init(rocksdb::ReadOptions ro, Make make) {
    if (!upper_.empty()) ro.iterate_upper_bound = &bound_;
    it_.reset(make(ro));
  }
  void Seek(std::string_view key) override { it_->Seek(key < lower_ ? lower_ : key); }
  // (A write set's own entries are not bounded by RocksDB's upper bound: check it here.)
  bool Valid() const override {
    return it_->Valid() && (upper_.empty() || it_->key().compare(bound_) < 0);
  }
  void Next() override { it_->Next(); }
  std::string_view key() const override { return it_->key().ToStringView(); }
  std::string_view value() const override { return it_->value().ToStringView(); }
  absl::Status status() const override { return FromRocks(it_->status(), "RocksDB iterate"); }

 private:
  std::string lower_, upper_;
  rocksdb::Slice bound_;
  std::unique_ptr<rocksdb::Iterator> it_;
};

class RocksStore;

class RocksWriteSet final : public WriteSet {
 public:
  explicit RocksWriteSet(RocksStore* store)
      : store_(store), batch_(rocksdb::BytewiseComparator(), 0, /*overwrite_key=*/true) {}
  absl::StatusOr<std::optional<std::string>> Get(Cf cf, std::string_view key) override;
  std::unique_ptr<Cursor> Scan(Cf cf, std::string_view lower, std::string_view upper) override;
  void Put(Cf cf, std::string_view key, std::string_view value) override;
  void Delete(Cf cf, std::string_view key) override;
  // (GetWriteBatch is not const in RocksDB's API, though it only returns the batch.)
  size_t Count() const override {
    return static_cast<size_t>(const_cast<rocksdb::WriteBatchWithIndex&>(batch_).GetWriteBatch()->Count());
  }
  size_t Bytes() const override {
    return const_cast<rocksdb::WriteBatchWithIndex&>(batch_).GetWriteBatch()->GetDataSize();
  }
  void Clear() override { batch_.Clear(); }
  rocksdb::WriteBatch* batch() { return batch_.GetWriteBatch(); }

 private:
  RocksStore* store_;
  rocksdb::WriteBatchWithIndex batch_;
};

// Reads as of one RocksDB snapshot.
// Reads under a RocksDB snapshot (null: the live store), filling the block cache or not.
class RocksView final : public Reader {
 public:
  RocksView(RocksStore* store, const rocksdb::Snapshot* snap, bool fill_cache)
      : store_(store), snap_(snap), fill_cache_(fill_cache) {}
  ~RocksView() override;
  absl::StatusOr<std::optional<std::string>> Get(Cf cf, std::string_view key) override;
  std::unique_ptr<Cursor> Scan(Cf cf, std::string_view lower, std::string_view upper) override;

 private:
  rocksdb::ReadOptions Options() const;

  RocksStore* store_;
  const rocksdb::Snapshot* snap_;
  bool fill_cache_;
};

class RocksStore final : public Store {
 public:
  ~RocksStore() override {
    StopReclaimer();
    if (!db_) return;
    for (auto* h : handles_) db_->DestroyColumnFamilyHandle(h);
    db_->DestroyColumnFamilyHandle(default_cf_);
    db_->Close();
  }

  absl::Status Open(const std::string& dir, const StoreOptions& options);

  rocksdb::DB* db() { return db_.get(); }
  rocksdb::ColumnFamilyHandle* cf(Cf which) { return handles_[static_cast<int>(which)]; }

  absl::StatusOr<std::optional<std::string>> Get(Cf which, std::string_view key) override {
    return GetAt(rocksdb::ReadOptions(), which, key);
  }
  absl::StatusOr<std::optional<std::string>> GetAt(const rocksdb::ReadOptions& ro, Cf which,
                                                   std::string_view key) {
    std::string value;
    rocksdb::Status s = db_->Get(ro, cf(which), key, &value);
    if (s.IsNotFound()) return std::optional<std::string>();
    if (!s.ok()) return FromRocks(s, "RocksDB get");
    return std::optional<std::string>(std::move(value));
  }
  std::unique_ptr<Cursor> Scan(Cf which, std::string_view lower, std::string_view upper) override {
    return ScanAt(rocksdb::ReadOptions(), which, lower, upper);
  }
  std::unique_ptr<Cursor> ScanAt(const rocksdb::ReadOptions& ro, Cf which, std::string_view lower,
                                 std::string_view upper) {
    auto c = std::make_unique<RocksCursor>(std::string(lower), std::string(upper));
    c->Init(ro, [&](const rocksdb::ReadOptions& o) { return db_->NewIterator(o, cf(which)); });
    return c;
  }
  std::unique_ptr<WriteSet> NewWriteSet() override { return std::make_unique<RocksWriteSet>(this); }
  absl::Status Commit(WriteSet& writes, bool sync) override {
    rocksdb::WriteOptions wo;
    wo.sync = sync;
    rocksdb::Status s = db_->Write(wo, static_cast<RocksWriteSet&>(writes).batch());
    commits_.fetch_add(1, std::memory_order_release);
    return FromRocks(s, "RocksDB write");
  }
  absl::StatusOr<uint64_t> Sync() override {
    // Every Write before this point is in the WAL file (no manual WAL flush): one fsync of it
    // makes them durable, as a synced Write would have.
    const uint64_t through = commits_.load(std::memory_order_acquire);
    rocksdb::Status s = db_->SyncWAL();
    if (!s.ok()) return FromRocks(s, "RocksDB WAL sync");
    return through;
  }
  uint64_t commits() override { return commits_.load(std::memory_order_acquire); }
  // The directory is in kFormatVersion now (synced; not one of the commits counted above).
  absl::Status MarkFormat() {
    rocksdb::WriteOptions wo;
    wo.sync = true;
    return FromRocks(db_->Put(wo, cf(Cf::kMeta), NodeMetaKey("format"),
                              std::to_string(kFormatVersion)),
                     "marking the data directory's format");
  }
  std::unique_ptr<Reader> Snapshot() override {
    return std::make_unique<RocksView>(this, db_->GetSnapshot(), /*fill_cache=*/true);
  }
  std::unique_ptr<Reader> BulkSnapshot() override {
    return std::make_unique<RocksView>(this, db_->GetSnapshot(), /*fill_cache=*/false);
  }
  std::unique_ptr<Reader> BulkReader() override {
    return std::make_unique<RocksView>(this, nullptr, /*fill_cache=*/false);
  }
  uint64_t Property(std::string_view name) override {
    uint64_t total = 0;
    for (auto* h : handles_) {
      uint64_t v = 0;
      if (db_->GetIntProperty(h, rocksdb::Slice(name.data(), name.size()), &v)) total += v;
    }
    // The block cache is shared by every column family: count it once.
    if ((name == "rocksdb.block-cache-usage" || name == "rocksdb.block-cache-capacity") &&
        !handles_.empty()) {
      uint64_t v = 0;
      db_->GetIntProperty(handles_[0], rocksdb::Slice(name.data(), name.size()), &v);
      total = v;
    }
    return total;
  }
  const std::string& path() const override { return path_; }
  void Reclaim(Cf which, std::string lo, std::string hi) override;

 private:
  void ReclaimLoop();
  void StopReclaimer();

  // One background thread, started by the first Reclaim, compacts the ranges it is given.
  std::mutex reclaim_mu_;
  std::condition_variable reclaim_cv_;
  std::deque<std::tuple<Cf, std::string, std::string>> reclaim_;
  bool reclaim_stop_ = false;
  std::thread reclaimer_;
  std::atomic<uint64_t> commits_{0};
  std::string path_;
  std::unique_ptr<rocksdb::DB> db_;
  std::vector<rocksdb::ColumnFamilyHandle*> handles_;
  rocksdb::ColumnFamilyHandle* default_cf_ = nullptr;
};

absl::StatusOr<std::optional<std::string>> RocksWriteSet::Get(Cf cf, std::string_view key) {
  std::string value;
  rocksdb::Status s = batch_.GetFromBatchAndDB(store_->db(), rocksdb::ReadOptions(),
                                               store_->cf(cf), key, &value);
  if (s.IsNotFound()) return std::optional<std::string>();
  if (!s.ok()) return FromRocks(s, "RocksDB get");
  return std::optional<std::string>(std::move(value));
}

std::unique_ptr<Cursor> RocksWriteSet::Scan(Cf cf, std::string_view lower,
                                            std::string_view upper) {
  auto c = std::make_unique<RocksCursor>(std::string(lower), std::string(upper));
  c->Init(rocksdb::ReadOptions(), [&](const rocksdb::ReadOptions& o) {
    return batch_.NewIteratorWithBase(store_->cf(cf), store_->db()->NewIterator(o, store_->cf(cf)));
  });
  return c;
}

void RocksWriteSet::Put(Cf cf, std::string_view key, std::string_view value) {
  batch_.Put(store_->cf(cf), key, value);
}

void RocksWriteSet::Delete(Cf cf, std::string_view key) { batch_.Delete(store_->cf(cf), key); }

RocksView::~RocksView() {
  if (snap_ != nullptr) store_->db()->ReleaseSnapshot(snap_);
}

rocksdb::ReadOptions RocksView::Options() const {
  rocksdb::ReadOptions ro;
  ro.snapshot = snap_;
  ro.fill_cache = fill_cache_;
  return ro;
}

absl::StatusOr<std::optional<std::string>> RocksView::Get(Cf cf, std::string_view key) {
  return store_->GetAt(Options(), cf, key);
}

std::unique_ptr<Cursor> RocksView::Scan(Cf cf, std::string_view lower, std::string_view upper) {
  return store_->ScanAt(Options(), cf, lower, upper);
}

// One memory budget for RocksDB (docs/storage.md §Memory). The block cache's capacity is the
// budget; memtables reserve their memory in it (a WriteBufferManager charged to the cache), so
// data blocks are evicted to make room for them, and index and filter blocks live in it too
// (pinned for level 0, as lookups of fresh data need them), instead of beside it unbounded as
// they are by default. The memtables may use half of the budget; past it RocksDB flushes the
// largest, and stalls writes if flushes cannot keep up. Each column family's write buffer is an
// eighth of the budget (64 MiB at most) so that six of them cannot all sit just under the
// flush size.
rocksdb::ColumnFamilyOptions BudgetedOptions(const StoreOptions& options,
                                             rocksdb::DBOptions& db_options) {
  const size_t budget = std::max(options.memory_budget_bytes, StoreOptions::kMemoryBudgetMin);
  rocksdb::LRUCacheOptions cache_options;
  cache_options.capacity = budget;
  cache_options.high_pri_pool_ratio = 0.25;  // index and filter blocks, ahead of data blocks
  std::shared_ptr<rocksdb::Cache> cache = rocksdb::NewLRUCache(cache_options);
  db_options.write_buffer_manager = std::make_shared<rocksdb::WriteBufferManager>(
      budget / 2, cache, /*allow_stall=*/true);
  // A column family written rarely (acceptor, meta) keeps every WAL file since its oldest
  // unflushed write alive: 770 MB of WAL for 256 MB of values was measured. Past this much
  // WAL, RocksDB flushes the families that pin the oldest file.
  db_options.max_total_wal_size = budget / 2;

  rocksdb::BlockBasedTableOptions table_options;
  table_options.block_cache = cache;
  table_options.cache_index_and_filter_blocks = true;
  table_options.cache_index_and_filter_blocks_with_high_priority = true;
  table_options.pin_l0_filter_and_index_blocks_in_cache = true;
  table_options.filter_policy.reset(rocksdb::NewBloomFilterPolicy(10));
  // Filters and indexes in partitions of ~4 KiB, under a small top level kept in the cache: a
  // lookup loads the one partition it needs. Whole, an SST's filter is ~1.2 bytes per key;
  // once a small budget's cache could no longer hold them, every lookup read and checksummed a
  // filter of megabytes again (81% of a node's CPU while loading 1,000,000 one-row tables at a
  // 64 MiB budget, the load slowed to ~300 tables/s).
  table_options.index_type = rocksdb::BlockBasedTableOptions::kTwoLevelIndexSearch;
  table_options.partition_filters = true;
  table_options.metadata_block_size = 4096;
  table_options.pin_top_level_index_and_filter = true;

  rocksdb::ColumnFamilyOptions cf;
  cf.table_factory.reset(rocksdb::NewBlockBasedTableFactory(table_options));
  cf.write_buffer_size = std::min(budget / 8, size_t{64} << 20);
  return cf;
}

void RocksStore::Reclaim(Cf which, std::string lo, std::string hi) {
  std::lock_guard<std::mutex> lock(reclaim_mu_);
  if (!reclaimer_.joinable()) reclaimer_ = std::thread([this] { ReclaimLoop(); });
  reclaim_.emplace_back(which, std::move(lo), std::move(hi));
  reclaim_cv_.notify_one();
}

void RocksStore::ReclaimLoop() {
  std::unique_lock<std::mutex> lock(reclaim_mu_);
  while (true) {
    reclaim_cv_.wait(lock, [this] { return reclaim_stop_ || !reclaim_.empty(); });
    if (reclaim_stop_) return;
    auto [which, lo, hi] = std::move(reclaim_.front());
    reclaim_.pop_front();
    lock.unlock();
    // Flushes the memtable if it holds the deletions, then compacts the range down: the
    // deleted values are dropped, not rewritten. A failure only leaves the space for later.
    rocksdb::CompactRangeOptions o;
    o.exclusive_manual_compaction = false;  // automatic compactions go on meanwhile
    o.bottommost_level_compaction = rocksdb::BottommostLevelCompaction::kForceOptimized;
    const rocksdb::Slice begin(lo), end(hi);
    rocksdb::Status s = db_->CompactRange(o, cf(which), &begin, &end);
    if (!s.ok() && !s.IsShutdownInProgress()) {
      fmt::print(stderr, "atlasd: compacting deleted keys away failed: {}\n", s.ToString());
    }
    lock.lock();
  }
}

void RocksStore::StopReclaimer() {
  {
    std::lock_guard<std::mutex> lock(reclaim_mu_);
    reclaim_stop_ = true;
  }
  reclaim_cv_.notify_all();
  // A compaction under way finishes first (RocksDB has no way to cancel one range's).
  if (reclaimer_.joinable()) reclaimer_.join();
}

absl::Status RocksStore::Open(const std::string& dir, const StoreOptions& options) {
  rocksdb::Options db_options;
  db_options.create_if_missing = options.create_if_missing;
  db_options.create_missing_column_families = true;
  db_options.max_background_jobs = 2;
  db_options.bytes_per_sync = 1 << 20;
  // WAL writes of concurrent writers are merged into one fsync (group commit).
  db_options.enable_pipelined_write = true;
  db_options.keep_log_file_num = 4;
  if (options.info_log) db_options.info_log = options.info_log;

  const rocksdb::ColumnFamilyOptions base = BudgetedOptions(options, db_options);

  std::vector<rocksdb::ColumnFamilyDescriptor> descriptors;
  descriptors.emplace_back(rocksdb::kDefaultColumnFamilyName, base);
  for (const char* name : kCfNames) {
    rocksdb::ColumnFamilyOptions cf = base;
    if (std::string_view(name) == "blobs") {
      // Key-value separation: chunks of large values go to blob files, so compaction moves
      // only small index entries.
      cf.enable_blob_files = true;
      cf.min_blob_size = 0;
      cf.blob_file_size = 256 << 20;
      cf.enable_blob_garbage_collection = true;
    }
    if (std::string_view(name) == "rows") {
      // A write first looks up the row it replaces; a new row is not there, and without a
      // filter proving it absent each such lookup searched the whole memtable skip list (8% of
      // the node thread under transactions of new rows). 2% of the write buffer: ~25 bits per
      // row of 100 bytes.
      cf.memtable_prefix_bloom_size_ratio = 0.02;
      cf.memtable_whole_key_filtering = true;
    }
    descriptors.emplace_back(name, cf);
  }

  path_ = dir;
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  rocksdb::DB* raw = nullptr;
  rocksdb::Status s = rocksdb::DB::Open(db_options, dir, descriptors, &handles, &raw);
  if (!s.ok()) {
    std::string msg = s.ToString();
    if (s.IsIOError() && msg.find("lock") != std::string::npos) {
      return absl::FailedPreconditionError(
          fmt::format("data directory {} is in use by another process (RocksDB lock {}/LOCK "
                      "is held); is another atlasd running on it?", dir, dir));
    }
    return absl::InternalError(fmt::format("opening RocksDB at {}: {}", dir, msg));
  }
  db_.reset(raw);
  // handles[0] is the default family, which atlasd does not use.
  handles_.assign(handles.begin() + 1, handles.end());
  default_cf_ = handles[0];
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::unique_ptr<Store>> Store::Open(const std::string& dir,
                                                   const StoreOptions& options) {
  auto store = std::make_unique<RocksStore>();
  if (absl::Status s = store->Open(dir, options); !s.ok()) return s;
  if (options.check_format) {
    absl::StatusOr<bool> mark = CheckFormat(*store, dir);
    if (!mark.ok()) return mark.status();
    if (*mark) {
      if (absl::Status s = store->MarkFormat(); !s.ok()) return s;
    }
  }
  return std::unique_ptr<Store>(std::move(store));
}

}  // namespace atlas::storage
