#include "storage/store.h"

#include "fmt/format.h"
#include "rocksdb/filter_policy.h"
#include "rocksdb/table.h"
#include "storage/keys.h"

namespace atlas::storage {
namespace {

constexpr const char* kCfNames[] = {"rows", "blobs", "log", "acceptor", "meta", "changes"};
static_assert(std::size(kCfNames) == static_cast<size_t>(Cf::kCount));

absl::Status FromRocks(const rocksdb::Status& s, std::string_view what) {
  if (s.ok()) return absl::OkStatus();
  return absl::InternalError(fmt::format("{}: {}", what, s.ToString()));
}

}  // namespace

absl::StatusOr<std::unique_ptr<Store>> Store::Open(const std::string& dir,
                                                   const StoreOptions& options) {
  rocksdb::Options db_options;
  db_options.create_if_missing = options.create_if_missing;
  db_options.create_missing_column_families = true;
  db_options.max_background_jobs = 2;
  db_options.bytes_per_sync = 1 << 20;
  // WAL writes of concurrent writers are merged into one fsync (group commit).
  db_options.enable_pipelined_write = true;
  db_options.keep_log_file_num = 4;
  if (options.info_log) db_options.info_log = options.info_log;

  auto cache = rocksdb::NewLRUCache(options.block_cache_bytes);
  rocksdb::BlockBasedTableOptions table_options;
  table_options.block_cache = cache;
  table_options.filter_policy.reset(rocksdb::NewBloomFilterPolicy(10));

  rocksdb::ColumnFamilyOptions base;
  base.table_factory.reset(rocksdb::NewBlockBasedTableFactory(table_options));

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
    descriptors.emplace_back(name, cf);
  }

  auto store = std::unique_ptr<Store>(new Store());
  store->path_ = dir;
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
  store->db_.reset(raw);
  // handles[0] is the default family, which atlasd does not use.
  store->handles_.assign(handles.begin() + 1, handles.end());
  store->default_cf_ = handles[0];
  return store;
}

Store::~Store() {
  if (!db_) return;
  for (auto* h : handles_) db_->DestroyColumnFamilyHandle(h);
  db_->DestroyColumnFamilyHandle(default_cf_);
  db_->Close();
}

absl::Status Store::Write(rocksdb::WriteBatch* batch, bool sync) {
  rocksdb::WriteOptions wo;
  wo.sync = sync;
  return FromRocks(db_->Write(wo, batch), "RocksDB write");
}

absl::StatusOr<std::optional<std::string>> Store::Get(Cf which, std::string_view key) {
  std::string value;
  rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), cf(which), key, &value);
  if (s.IsNotFound()) return std::optional<std::string>();
  if (!s.ok()) return FromRocks(s, "RocksDB get");
  return std::optional<std::string>(std::move(value));
}

absl::StatusOr<std::optional<RowRecord>> Store::GetRow(std::string_view table,
                                                       std::string_view row) {
  auto raw = Get(Cf::kRows, RowKey(table, row));
  if (!raw.ok()) return raw.status();
  if (!raw->has_value()) return std::optional<RowRecord>();
  auto rec = DecodeRowRecord(**raw);
  if (!rec) return absl::DataLossError(fmt::format("corrupt row record for {}.{}", table, row));
  return std::optional<RowRecord>(std::move(*rec));
}

absl::StatusOr<std::string> Store::ReadValue(std::string_view table, std::string_view row,
                                             const RowRecord& record) {
  if (!record.chunked) return record.inline_value;
  std::string out;
  out.reserve(record.size);
  // One snapshot so that a concurrent overwrite cannot mix chunks of two values.
  const rocksdb::Snapshot* snap = db_->GetSnapshot();
  rocksdb::ReadOptions ro;
  ro.snapshot = snap;
  absl::Status status;
  std::string chunk;
  for (uint32_t i = 0; i < record.chunk_count(); ++i) {
    rocksdb::Status s = db_->Get(ro, cf(Cf::kBlobs), BlobChunkKey(table, row, i), &chunk);
    if (!s.ok()) {
      status = s.IsNotFound() ? absl::DataLossError(fmt::format("missing chunk {} of {}.{}", i,
                                                                      table, row))
                              : FromRocks(s, "RocksDB get");
      break;
    }
    out.append(chunk);
  }
  db_->ReleaseSnapshot(snap);
  if (!status.ok()) return status;
  if (out.size() != record.size) {
    // The row was overwritten between reading its record and its chunks; callers retry.
    return absl::AbortedError("value changed while reading");
  }
  return out;
}

absl::Status Store::ForEachRow(std::string_view table, std::string_view row_prefix,
                               const std::optional<std::string>& after_row,
                               const std::function<bool(std::string_view row)>& fn) {
  std::string start = RowRangeStart(table, row_prefix);
  std::string limit = RowRangeLimit(table, row_prefix);
  rocksdb::Slice upper(limit);
  rocksdb::ReadOptions ro;
  ro.iterate_upper_bound = &upper;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(ro, cf(Cf::kRows)));
  const size_t row_offset = table.size() + 1;
  if (after_row) {
    std::string after = RowKey(table, *after_row);
    it->Seek(after > start ? after : start);
    if (it->Valid() && it->key().ToStringView() == after) it->Next();
  } else {
    it->Seek(start);
  }
  for (; it->Valid(); it->Next()) {
    if (!fn(it->key().ToStringView().substr(row_offset))) break;
  }
  return FromRocks(it->status(), "RocksDB iterate");
}

}  // namespace atlas::storage
