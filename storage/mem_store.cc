// The Store in memory (store.h: NewMemStore): ordered maps, an undo log for writes committed
// without sync, so that a simulated power cut (CrashMemStore) loses exactly those.
#include <array>
#include <map>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "storage/store.h"

namespace atlas::storage {
namespace {

constexpr size_t kCfs = static_cast<size_t>(Cf::kCount);
using Table = std::map<std::string, std::string, std::less<>>;

// Walks a sorted list of (key, value) pairs copied at Scan time: the simulator's tables are
// small, and a copy makes the cursor immune to later writes.
class VectorCursor final : public Cursor {
 public:
  explicit VectorCursor(std::vector<std::pair<std::string, std::string>> rows)
      : rows_(std::move(rows)) {}
  void Seek(std::string_view key) override {
    pos_ = static_cast<size_t>(
        std::lower_bound(rows_.begin(), rows_.end(), key,
                         [](const auto& row, std::string_view k) { return row.first < k; }) -
        rows_.begin());
  }
  bool Valid() const override { return pos_ < rows_.size(); }
  void Next() override { ++pos_; }
  std::string_view key() const override { return rows_[pos_].first; }
  std::string_view value() const override { return rows_[pos_].second; }
  absl::Status status() const override { return absl::OkStatus(); }

 private:
  std::vector<std::pair<std::string, std::string>> rows_;
  size_t pos_ = 0;
};

// The pairs of `table` in [lower, upper).
std::vector<std::pair<std::string, std::string>> Range(const Table& table, std::string_view lower,
                                                       std::string_view upper) {
  std::vector<std::pair<std::string, std::string>> out;
  for (auto it = table.lower_bound(lower);
       it != table.end() && (upper.empty() || it->first < upper); ++it) {
    out.emplace_back(it->first, it->second);
  }
  return out;
}

class MemStore;

class MemWriteSet final : public WriteSet {
 public:
  explicit MemWriteSet(MemStore* store) : store_(store) {}
  absl::StatusOr<std::optional<std::string>> Get(Cf cf, std::string_view key) override;
  std::unique_ptr<Cursor> Scan(Cf cf, std::string_view lower, std::string_view upper) override;
  void Put(Cf cf, std::string_view key, std::string_view value) override {
    writes_[static_cast<size_t>(cf)][std::string(key)] = std::string(value);
    ++count_;
    bytes_ += key.size() + value.size();
  }
  void Delete(Cf cf, std::string_view key) override {
    writes_[static_cast<size_t>(cf)][std::string(key)] = std::nullopt;
    ++count_;
    bytes_ += key.size();
  }
  size_t Count() const override { return count_; }
  size_t Bytes() const override { return bytes_; }
  void Clear() override {
    for (auto& w : writes_) w.clear();
    count_ = bytes_ = 0;
  }

  // Last write per key wins; nullopt: deleted.
  std::array<std::map<std::string, std::optional<std::string>, std::less<>>, kCfs> writes_;

 private:
  MemStore* store_;
  size_t count_ = 0;
  size_t bytes_ = 0;
};

class MemSnapshot final : public Reader {
 public:
  explicit MemSnapshot(std::array<Table, kCfs> data) : data_(std::move(data)) {}
  absl::StatusOr<std::optional<std::string>> Get(Cf cf, std::string_view key) override {
    const Table& t = data_[static_cast<size_t>(cf)];
    auto it = t.find(key);
    if (it == t.end()) return std::optional<std::string>();
    return std::optional<std::string>(it->second);
  }
  std::unique_ptr<Cursor> Scan(Cf cf, std::string_view lower, std::string_view upper) override {
    return std::make_unique<VectorCursor>(Range(data_[static_cast<size_t>(cf)], lower, upper));
  }

 private:
  std::array<Table, kCfs> data_;
};

// The live store read through (no block cache here to go around).
class LiveReader final : public Reader {
 public:
  explicit LiveReader(Store* store) : store_(store) {}
  absl::StatusOr<std::optional<std::string>> Get(Cf cf, std::string_view key) override {
    return store_->Get(cf, key);
  }
  std::unique_ptr<Cursor> Scan(Cf cf, std::string_view lower, std::string_view upper) override {
    return store_->Scan(cf, lower, upper);
  }

 private:
  Store* store_;
};

class MemStore final : public Store {
 public:
  absl::StatusOr<std::optional<std::string>> Get(Cf cf, std::string_view key) override {
    absl::MutexLock lock(&mu_);
    const Table& t = data_[static_cast<size_t>(cf)];
    auto it = t.find(key);
    if (it == t.end()) return std::optional<std::string>();
    return std::optional<std::string>(it->second);
  }
  std::unique_ptr<Cursor> Scan(Cf cf, std::string_view lower, std::string_view upper) override {
    absl::MutexLock lock(&mu_);
    return std::make_unique<VectorCursor>(Range(data_[static_cast<size_t>(cf)], lower, upper));
  }
  std::unique_ptr<WriteSet> NewWriteSet() override { return std::make_unique<MemWriteSet>(this); }
  absl::Status Commit(WriteSet& writes, bool sync) override {
    absl::MutexLock lock(&mu_);
    ++commits_;
    auto& w = static_cast<MemWriteSet&>(writes);
    for (size_t cf = 0; cf < kCfs; ++cf) {
      for (auto& [key, value] : w.writes_[cf]) {
        Table& t = data_[cf];
        auto it = t.find(key);
        // Remember what an unsynced write replaced, to put it back on a crash.
        if (!sync) {
          undo_.push_back({commits_, cf, key,
                           it == t.end() ? std::nullopt : std::optional<std::string>(it->second)});
        }
        if (value) {
          t[key] = *value;
        } else if (it != t.end()) {
          t.erase(it);
        }
      }
    }
    // A synced write makes everything before it durable too (a write-ahead log's order).
    if (sync) undo_.clear();
    return absl::OkStatus();
  }
  std::unique_ptr<Reader> Snapshot() override {
    absl::MutexLock lock(&mu_);
    return std::make_unique<MemSnapshot>(data_);
  }
  std::unique_ptr<Reader> BulkSnapshot() override { return Snapshot(); }
  std::unique_ptr<Reader> BulkReader() override { return std::make_unique<LiveReader>(this); }
  absl::StatusOr<uint64_t> Sync() override {
    absl::MutexLock lock(&mu_);
    undo_.clear();
    return commits_;
  }
  uint64_t commits() override {
    absl::MutexLock lock(&mu_);
    return commits_;
  }
  uint64_t Property(std::string_view) override { return 0; }
  void Reclaim(Cf, std::string, std::string) override {}
  const std::string& path() const override { return path_; }

  void Crash(size_t keep) {
    absl::MutexLock lock(&mu_);
    // Unsynced commits are numbered in order: the first `keep` of them stay.
    const uint64_t first_lost = undo_.empty() ? 0 : undo_.front().commit + keep;
    for (auto it = undo_.rbegin(); it != undo_.rend() && it->commit >= first_lost; ++it) {
      Table& t = data_[it->cf];
      if (it->old) {
        t[it->key] = *it->old;
      } else {
        t.erase(it->key);
      }
    }
    undo_.clear();
  }
  size_t UnsyncedCommits() {
    absl::MutexLock lock(&mu_);
    return undo_.empty() ? 0 : undo_.back().commit - undo_.front().commit + 1;
  }

 private:
  struct Undo {
    uint64_t commit;
    size_t cf;
    std::string key;
    std::optional<std::string> old;
  };
  absl::Mutex mu_;
  std::array<Table, kCfs> data_ ABSL_GUARDED_BY(mu_);
  std::vector<Undo> undo_ ABSL_GUARDED_BY(mu_);  // unsynced writes, newest last
  uint64_t commits_ ABSL_GUARDED_BY(mu_) = 0;
  const std::string path_ = ":memory:";
};

absl::StatusOr<std::optional<std::string>> MemWriteSet::Get(Cf cf, std::string_view key) {
  const auto& mine = writes_[static_cast<size_t>(cf)];
  if (auto it = mine.find(key); it != mine.end()) return it->second;
  return store_->Get(cf, key);
}

std::unique_ptr<Cursor> MemWriteSet::Scan(Cf cf, std::string_view lower, std::string_view upper) {
  // The store's pairs with this set's writes laid over them.
  std::map<std::string, std::string, std::less<>> merged;
  std::unique_ptr<Cursor> base = store_->Scan(cf, lower, upper);
  for (base->Seek(lower); base->Valid(); base->Next()) {
    merged.emplace(std::string(base->key()), std::string(base->value()));
  }
  const auto& mine = writes_[static_cast<size_t>(cf)];
  for (auto it = mine.lower_bound(lower); it != mine.end() && (upper.empty() || it->first < upper);
       ++it) {
    if (it->second) {
      merged[it->first] = *it->second;
    } else {
      merged.erase(it->first);
    }
  }
  return std::make_unique<VectorCursor>(
      std::vector<std::pair<std::string, std::string>>(merged.begin(), merged.end()));
}

}  // namespace

std::unique_ptr<Store> NewMemStore() { return std::make_unique<MemStore>(); }

void CrashMemStore(Store& store, size_t keep) { static_cast<MemStore&>(store).Crash(keep); }

size_t UnsyncedMemStoreCommits(Store& store) {
  return static_cast<MemStore&>(store).UnsyncedCommits();
}

}  // namespace atlas::storage
