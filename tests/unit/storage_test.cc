// Key encoding and value formats of docs/storage.md, and the RocksDB store itself.
#include <algorithm>
#include <chrono>
#include <filesystem>
#include <memory>
#include <random>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>

#include "storage/coding.h"
#include "storage/keys.h"
#include "storage/paxos_state.h"
#include "storage/records.h"
#include "storage/store.h"
#include "tests/unit/temp_dir.h"

using namespace atlas::storage;

TEST_CASE("encoded row keys sort like table.row keys and a table's rows are contiguous") {
  std::mt19937_64 rng(42);
  const std::string alphabet = "ab-_.Z0\xc3\xa9";
  auto rand_str = [&](size_t max) {
    std::string s;
    size_t n = 1 + rng() % max;
    for (size_t i = 0; i < n; ++i) s += alphabet[rng() % alphabet.size()];
    return s;
  };
  std::vector<std::pair<std::string, std::string>> keys;
  for (int i = 0; i < 2000; ++i) {
    std::string table = rand_str(3);
    table.erase(std::remove(table.begin(), table.end(), '.'), table.end());
    table.erase(std::remove_if(table.begin(), table.end(),
                               [](char c) { return static_cast<unsigned char>(c) >= 0x80; }),
                table.end());
    if (table.empty()) table = "t";
    keys.emplace_back(table, rand_str(4));
  }
  std::vector<std::string> encoded;
  for (auto& [t, r] : keys) encoded.push_back(RowKey(t, r));
  std::sort(encoded.begin(), encoded.end());
  // Every table's rows form one contiguous run in encoded order, sorted by row.
  for (auto& [t, r] : keys) {
    std::string lo = RowRangeStart(t, ""), hi = RowRangeLimit(t, "");
    auto first = std::lower_bound(encoded.begin(), encoded.end(), lo);
    auto last = std::lower_bound(encoded.begin(), encoded.end(), hi);
    for (auto it = first; it != last; ++it) {
      std::string table, row;
      REQUIRE(DecodeRowKey(*it, &table, &row));
      REQUIRE(table == t);
    }
    for (auto it = encoded.begin(); it != first; ++it) {
      std::string table, row;
      DecodeRowKey(*it, &table, &row);
      REQUIRE(table != t);
    }
  }
  // Prefix ranges: exactly the rows starting with the prefix.
  for (int i = 0; i < 200; ++i) {
    auto& [t, r] = keys[rng() % keys.size()];
    std::string prefix = r.substr(0, 1 + rng() % r.size());
    std::string lo = RowRangeStart(t, prefix), hi = RowRangeLimit(t, prefix);
    for (auto& e : encoded) {
      std::string table, row;
      DecodeRowKey(e, &table, &row);
      bool in_range = e >= lo && e < hi;
      bool matches = table == t && row.compare(0, prefix.size(), prefix) == 0;
      REQUIRE(in_range == matches);
    }
  }
}

TEST_CASE("varints and length prefixes round-trip and reject truncation") {
  for (uint64_t v : {0ull, 1ull, 127ull, 128ull, 300ull, ~0ull}) {
    std::string s;
    PutVarint(&s, v);
    std::string_view in = s;
    uint64_t out = 0;
    REQUIRE(GetVarint(&in, &out));
    CHECK(out == v);
    CHECK(in.empty());
    std::string_view cut = std::string_view(s).substr(0, s.size() - 1);
    CHECK_FALSE(GetVarint(&cut, &out));
  }
}

TEST_CASE("row records, ACLs and table state round-trip - garbage is rejected") {
  RowRecord r;
  r.binary = true;
  r.worm_until_ms = 1893553445000;
  r.revision = 77;
  r.inline_value = "a\r\nb";
  r.size = r.inline_value.size();
  auto back = DecodeRowRecord(EncodeRowRecord(r));
  REQUIRE(back);
  CHECK(back->binary);
  CHECK(back->worm_until_ms == r.worm_until_ms);
  CHECK(back->inline_value == r.inline_value);
  CHECK(back->revision == 77);
  r.expires_ms = 1893553446000;
  CHECK(DecodeRowRecord(EncodeRowRecord(r))->expires_ms == r.expires_ms);
  // Format 1 stored the log slot of the last write: it reads apart from every table revision.
  const std::string v1 = std::string("\x01\x00\x00\x01\x05", 5) + "x";
  REQUIRE(DecodeRowRecord(v1));
  CHECK(DecodeRowRecord(v1)->revision == kLegacyRevisionBase + 5);
  CHECK(DecodeRowRecord(v1)->expires_ms == 0);
  CHECK(DecodeRowRecord(v1)->inline_value == "x");
  RowRecord big;
  big.chunked = true;
  big.size = 3 * kBlobChunkBytes + 1;
  CHECK(DecodeRowRecord(EncodeRowRecord(big))->chunk_count() == 4);
  CHECK_FALSE(DecodeRowRecord("\x07garbage"));
  CHECK_FALSE(DecodeRowRecord(""));

  TableAcl acl;
  acl.ever_owned = true;
  acl.grants = {{"alice", AclPerm::kOwner}, {"bob", AclPerm::kRead}};
  auto acl2 = DecodeTableAcl(EncodeTableAcl(acl));
  REQUIRE(acl2);
  CHECK(acl2->grants == acl.grants);
  CHECK(acl2->ever_owned);
  CHECK_FALSE(DecodeTableAcl("\x01\x00\x05"));

  TableState st{42, "eu", "g"};
  st.revision = 77;
  auto st2 = DecodeTableState(EncodeTableState(st));
  REQUIRE(st2);
  CHECK(st2->commit_index == 42);
  CHECK(st2->pinned_region == "eu");
  CHECK(st2->group == "g");
  CHECK(st2->revision == 77);
  CHECK(st2->clock_ms == 0);
  st.clock_ms = 1'790'000'000'123;
  st2 = DecodeTableState(EncodeTableState(st));
  REQUIRE(st2);
  CHECK(st2->clock_ms == 1'790'000'000'123);
  st.clock_ms = 0;
  st.change_bytes = 300'000;
  st2 = DecodeTableState(EncodeTableState(st));
  REQUIRE(st2);
  CHECK(st2->change_bytes == 300'000);
  st.change_bytes = 0;
  // A state of an older format lacks the fields after it, each a one-byte varint here (0, 0
  // and 77): format 4 has no change_bytes, 3 no clock, 2 no revision. They read as 0.
  std::string older = EncodeTableState(st);
  for (uint8_t format : {4, 3, 2}) {
    INFO("format " << int{format});
    older[0] = static_cast<char>(format);
    older.pop_back();
    auto decoded = DecodeTableState(older);
    REQUIRE(decoded);
    CHECK(decoded->commit_index == 42);
    CHECK(decoded->change_bytes == 0);
    CHECK(decoded->clock_ms == 0);
    CHECK(decoded->revision == (format >= 3 ? 77 : 0));
  }
  CHECK_FALSE(DecodeTableState(EncodeTableState(st) + "x"));

  RowChange put{false, "alice", std::string("v\0\r\n", 4)};
  auto put2 = DecodeRowChange(EncodeRowChange(put));
  REQUIRE(put2);
  CHECK_FALSE(put2->del);
  CHECK(put2->row == "alice");
  CHECK(put2->value == put.value);
  auto del2 = DecodeRowChange(EncodeRowChange({true, "bob", ""}));
  REQUIRE(del2);
  CHECK(del2->del);
  CHECK(del2->row == "bob");
  CHECK_FALSE(DecodeRowChange("\x01\x03"));
  CHECK(ChangeRevision("users", ChangeKey("users", 258)) == 258u);
  CHECK_FALSE(ChangeRevision("user", ChangeKey("users", 258)));
  CHECK(ChangeKey("users", 1) < ChangeKey("users", 256));
  CHECK(ChangeKey("users", ~uint64_t{0}) < ChangeRangeLimit("users"));
}

TEST_CASE("the store survives reopen and refuses a second opener of the same directory") {
  atlas::testing::TempDir dir;
  {
    auto store = Store::Open(dir.path(), {});
    REQUIRE(store.ok());
    std::unique_ptr<WriteSet> b = (*store)->NewWriteSet();
    RowRecord r;
    r.inline_value = "v";
    r.size = 1;
    b->Put(Cf::kRows, RowKey("t", "r1"), EncodeRowRecord(r));
    b->Put(Cf::kRows, RowKey("t", "r2"), EncodeRowRecord(r));
    b->Put(Cf::kRows, RowKey("u", "r0"), EncodeRowRecord(r));
    REQUIRE((*store)->Commit(*b, true).ok());

    auto second = Store::Open(dir.path(), {});
    REQUIRE_FALSE(second.ok());
    CHECK(second.status().code() == absl::StatusCode::kFailedPrecondition);
    CHECK(std::string(second.status().message()).find("in use by another process") !=
          std::string::npos);
  }
  auto store = Store::Open(dir.path(), {});
  REQUIRE(store.ok());
  std::vector<std::string> rows;
  REQUIRE((*store)->ForEachRow("t", "", std::nullopt, [&](std::string_view row) {
    rows.emplace_back(row);
    return true;
  }).ok());
  CHECK(rows == std::vector<std::string>{"r1", "r2"});
  rows.clear();
  REQUIRE((*store)->ForEachRow("t", "", std::string("r1"), [&](std::string_view row) {
    rows.emplace_back(row);
    return true;
  }).ok());
  CHECK(rows == std::vector<std::string>{"r2"});
}

// A fresh RocksDB store and a fresh memory store: the same contract on both engines is what
// the state machine and the host rely on.
struct BothStores {
  BothStores() {
    auto opened = Store::Open(dir.path(), {});
    REQUIRE(opened.ok());
    rocks = std::move(*opened);
  }
  std::vector<Store*> all() const { return {rocks.get(), mem.get()}; }
  const char* name(const Store* store) const { return store == mem.get() ? "memory" : "rocksdb"; }

  atlas::testing::TempDir dir;
  std::unique_ptr<Store> rocks;
  std::unique_ptr<Store> mem = NewMemStore();
};

TEST_CASE("a data directory records its format: one a newer release wrote, or one older than "
          "this build reads, is refused with what to do") {
  // A fresh directory whose format field is then set to `format` (absent: nullopt).
  auto dir_with = [](const std::optional<std::string>& format) {
    auto dir = std::make_unique<atlas::testing::TempDir>();
    auto store = Store::Open(dir->path(), {});
    REQUIRE(store.ok());
    CHECK((*store)->GetNodeMeta("format")->value_or("") == std::to_string(kFormatVersion));
    std::unique_ptr<WriteSet> b = (*store)->NewWriteSet();
    if (format) {
      PutNodeMeta(*b, "format", *format);
    } else {
      b->Delete(Cf::kMeta, NodeMetaKey("format"));
    }
    REQUIRE((*store)->Commit(*b, true).ok());
    return dir;
  };
  {
    // Written before formats were recorded: format 1, read and marked.
    auto legacy = dir_with(std::nullopt);
    auto store = Store::Open(legacy->path(), {});
    REQUIRE(store.ok());
    CHECK((*store)->GetNodeMeta("format")->value_or("") == std::to_string(kFormatVersion));
  }
  auto newer_dir = dir_with(std::to_string(kFormatVersion + 1));
  auto newer = Store::Open(newer_dir->path(), {});
  REQUIRE(newer.status().code() == absl::StatusCode::kFailedPrecondition);
  CHECK(std::string(newer.status().message())
            .find("is in format " + std::to_string(kFormatVersion + 1) +
                  ", which a newer atlasd wrote") != std::string::npos);
  auto older_dir = dir_with(std::to_string(kFormatVersionMin - 1));
  auto older = Store::Open(older_dir->path(), {});
  REQUIRE(older.status().code() == absl::StatusCode::kFailedPrecondition);
  CHECK(std::string(older.status().message()).find("older than this atlasd reads") !=
        std::string::npos);
}

TEST_CASE("both stores: read-your-writes through a write set, bounded scans, snapshots, and "
          "only unsynced commits lost by a crash of the memory store") {
  BothStores stores;
  // (In `rows`: `meta` holds the data directory's format on RocksDB.)
  for (Store* store : stores.all()) {
    INFO(stores.name(store));
    std::unique_ptr<WriteSet> w = store->NewWriteSet();
    w->Put(Cf::kRows, "a", "1");
    w->Put(Cf::kRows, "b", "2");
    w->Put(Cf::kRows, "c", "3");
    w->Delete(Cf::kRows, "b");
    CHECK(w->Count() == 4);
    CHECK(**w->Get(Cf::kRows, "a") == "1");
    CHECK_FALSE(w->Get(Cf::kRows, "b")->has_value());
    CHECK_FALSE(store->Get(Cf::kRows, "a")->has_value());  // not committed yet
    auto keys = [](Reader& r, std::string_view lo, std::string_view hi) {
      std::string out;
      std::unique_ptr<Cursor> it = r.Scan(Cf::kRows, lo, hi);
      for (it->Seek(lo); it->Valid(); it->Next()) out += std::string(it->key()) + ",";
      return out;
    };
    CHECK(keys(*w, "a", "c") == "a,");   // upper bound is exclusive, "b" deleted
    CHECK(keys(*w, "", "") == "a,c,");
    REQUIRE(store->Commit(*w, /*sync=*/true).ok());
    std::unique_ptr<Reader> snap = store->Snapshot();
    std::unique_ptr<WriteSet> w2 = store->NewWriteSet();
    w2->Put(Cf::kRows, "d", "4");
    w2->Delete(Cf::kRows, "a");
    REQUIRE(store->Commit(*w2, /*sync=*/false).ok());
    CHECK(keys(*store, "", "") == "c,d,");
    CHECK(keys(*snap, "", "") == "a,c,");  // the snapshot does not see later commits
    CHECK(**snap->Get(Cf::kRows, "a") == "1");
    CHECK(keys(*store, "b", "") == "c,d,");
  }
  CrashMemStore(*stores.mem);  // the unsynced commit is lost, the synced one stays
  std::unique_ptr<Cursor> it = stores.mem->Scan(Cf::kRows, "", "");
  std::string after;
  for (it->Seek(""); it->Valid(); it->Next()) after += std::string(it->key()) + ",";
  CHECK(after == "a,c,");
}

TEST_CASE("both stores: Sync makes the unsynced commits before it durable and counts them") {
  BothStores stores;
  for (Store* store : stores.all()) {
    INFO(stores.name(store));
    auto commit = [&](std::string_view key, bool sync) {
      std::unique_ptr<WriteSet> w = store->NewWriteSet();
      w->Put(Cf::kMeta, key, "v");
      REQUIRE(store->Commit(*w, sync).ok());
    };
    CHECK(store->commits() == 0);
    commit("a", false);
    commit("b", false);
    absl::StatusOr<uint64_t> synced = store->Sync();
    REQUIRE(synced.ok());
    CHECK(*synced == 2);
    commit("c", false);
    CHECK(store->commits() == 3);
    if (store == stores.mem.get()) {
      CrashMemStore(*store);  // a power cut now loses c only
      CHECK(store->Get(Cf::kMeta, "b")->has_value());
      CHECK_FALSE(store->Get(Cf::kMeta, "c")->has_value());
    }
  }
}

namespace {
// Fills `value` with incompressible bytes (xorshift64 from *x, which moves on).
void FillRandom(std::string& value, uint64_t* x) {
  for (char& c : value) {
    *x ^= *x << 13, *x ^= *x >> 7, *x ^= *x << 17;
    c = static_cast<char>(*x);
  }
}
// A RocksDB store in `dir` whose memory is held to `budget` bytes (docs/storage.md §Memory).
std::unique_ptr<Store> OpenBudgeted(const atlas::testing::TempDir& dir, size_t budget) {
  StoreOptions options;
  options.memory_budget_bytes = budget;
  auto opened = Store::Open(dir.path(), options);
  REQUIRE(opened.ok());
  return *std::move(opened);
}
}  // namespace

TEST_CASE("one memory budget bounds RocksDB's memtables, block cache and index and filter "
          "blocks") {
  atlas::testing::TempDir dir;
  const size_t budget = size_t{16} << 20;
  std::unique_ptr<Store> opened = OpenBudgeted(dir, budget);
  Store& store = *opened;
  CHECK(store.Property("rocksdb.block-cache-capacity") == budget);
  // 128 MiB of incompressible 4 KiB values over three column families, eight budgets' worth.
  uint64_t x = 88172645463325252ull;
  std::string value(4096, '\0');
  uint64_t memtables_max = 0;
  const int kRows = 32768;
  for (int i = 0; i < kRows; i += 64) {
    std::unique_ptr<WriteSet> b = store.NewWriteSet();
    for (int j = i; j < i + 64; ++j) {
      FillRandom(value, &x);
      const Cf cf = j % 3 == 0 ? Cf::kRows : j % 3 == 1 ? Cf::kLog : Cf::kChanges;
      b->Put(cf, RowKey("t", std::to_string(j)), value);
    }
    // Small records in other families with every batch, as the applies write them: each keeps
    // write-ahead log files alive until it is flushed.
    b->Put(Cf::kAcceptor, "o", std::to_string(i));
    b->Put(Cf::kMeta, "m", std::to_string(i));
    REQUIRE(store.Commit(*b, false).ok());
    memtables_max = std::max(memtables_max, store.Property("rocksdb.cur-size-all-mem-tables"));
  }
  // The memtables keep to half the budget (plus the write buffer being filled when a flush
  // is chosen); by default each family alone could hold 64 MiB.
  CHECK(memtables_max <= budget * 3 / 4);
  // The write-ahead log is bounded too (on disk): 128 MiB of it would otherwise be live.
  uint64_t wal_bytes = 0;
  for (const auto& f : std::filesystem::directory_iterator(dir.path())) {
    if (f.path().extension() == ".log") wal_bytes += f.file_size();
  }
  CHECK(wal_bytes <= budget);
  // Point reads of everything fill the cache with data, index and filter blocks: it stays
  // within its capacity, and nothing of the SST files is held outside it.
  for (int j = 0; j < kRows; j += 7) {
    const Cf cf = j % 3 == 0 ? Cf::kRows : j % 3 == 1 ? Cf::kLog : Cf::kChanges;
    auto v = store.Get(cf, RowKey("t", std::to_string(j)));
    REQUIRE(v.ok());
    REQUIRE(v->has_value());
  }
  CHECK(store.Property("rocksdb.block-cache-usage") <= budget * 11 / 10);
  CHECK(store.Property("rocksdb.estimate-table-readers-mem") < (size_t{1} << 20));
}

TEST_CASE("Reclaim compacts a deleted range's space away in the background") {
  // A staged snapshot is deleted once installed: its gigabyte would otherwise stay on disk
  // until compaction reached it (a joining node held twice the data).
  atlas::testing::TempDir dir;
  const size_t budget = size_t{16} << 20;
  std::unique_ptr<Store> opened = OpenBudgeted(dir, budget);
  Store& store = *opened;
  auto [lo, hi] = StagedRange("t");
  std::string value(1 << 20, '\0');
  uint64_t x = 88172645463325252ull;
  for (int i = 0; i < 64; ++i) {
    FillRandom(value, &x);
    std::unique_ptr<WriteSet> b = store.NewWriteSet();
    b->Put(Cf::kMeta, StagedChunkKey("t", uint64_t(i) << 20), value);
    REQUIRE(store.Commit(*b, false).ok());
  }
  const uint64_t full = store.Property("rocksdb.total-sst-files-size");
  CHECK(full >= (uint64_t{32} << 20));  // most of it flushed by the budget
  std::unique_ptr<WriteSet> b = store.NewWriteSet();
  for (int i = 0; i < 64; ++i) b->Delete(Cf::kMeta, StagedChunkKey("t", uint64_t(i) << 20));
  REQUIRE(store.Commit(*b, true).ok());
  store.Reclaim(Cf::kMeta, lo, hi);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (store.Property("rocksdb.total-sst-files-size") > (uint64_t{4} << 20) &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  INFO("SST bytes: " << full << " before the deletion");
  CHECK(store.Property("rocksdb.total-sst-files-size") <= (uint64_t{4} << 20));
}

TEST_CASE("bulk reads go around the block cache, and see what a snapshot or the live store "
          "holds") {
  atlas::testing::TempDir dir;
  std::unique_ptr<Store> opened = OpenBudgeted(dir, size_t{64} << 20);
  Store& store = *opened;
  // 96 MiB of 16 KiB log entries: most of it flushed to SST files by the budget.
  const int kRows = 6144;
  const std::string value(16384, 'v');
  for (int i = 0; i < kRows; i += 64) {
    std::unique_ptr<WriteSet> b = store.NewWriteSet();
    for (int j = i; j < i + 64; ++j) b->Put(Cf::kLog, RowKey("t", std::to_string(j)), value);
    REQUIRE(store.Commit(*b, false).ok());
  }
  std::unique_ptr<Reader> snapshot = store.BulkSnapshot();
  {
    std::unique_ptr<WriteSet> b = store.NewWriteSet();
    b->Put(Cf::kLog, RowKey("t", "after"), "x");
    REQUIRE(store.Commit(*b, false).ok());
  }
  std::unique_ptr<Reader> live = store.BulkReader();
  CHECK(live->Get(Cf::kLog, RowKey("t", "after"))->has_value());
  CHECK_FALSE(snapshot->Get(Cf::kLog, RowKey("t", "after"))->has_value());
  auto read_all = [&](Reader& r) {
    for (int j = 0; j < kRows; ++j) {
      REQUIRE(r.Get(Cf::kLog, RowKey("t", std::to_string(j)))->has_value());
    }
  };
  const uint64_t before = store.Property("rocksdb.block-cache-usage");
  read_all(*live);
  read_all(*snapshot);
  const uint64_t bulk = store.Property("rocksdb.block-cache-usage");
  read_all(store);
  const uint64_t cached = store.Property("rocksdb.block-cache-usage");
  INFO("cache before " << before << ", after bulk reads " << bulk << ", after reads " << cached);
  CHECK(bulk <= before + (size_t{2} << 20));  // index and filter blocks at most
  CHECK(cached >= bulk + (size_t{16} << 20));
}

TEST_CASE("a truncated log loses exactly the truncated entries, also after a snapshot's long "
          "jump") {
  atlas::testing::TempDir dir;
  auto store = Store::Open(dir.path(), {});
  REQUIRE(store.ok());
  auto update = [&](atlas::consensus::Slot from, atlas::consensus::Slot through,
                    atlas::consensus::Slot first_new, atlas::consensus::Slot last_new) {
    atlas::consensus::HardStateUpdate u;
    u.object = "t";
    u.commit_index = last_new;
    u.truncated_from = from;
    u.truncated_through = through;
    for (atlas::consensus::Slot s = first_new; s <= last_new; ++s) {
      u.entries.push_back({s, atlas::consensus::LogEntry{{1, 1}, {}}});
    }
    std::unique_ptr<WriteSet> b = (*store)->NewWriteSet();
    REQUIRE(AddHardStateUpdate(u, *b).ok());
    REQUIRE((*store)->Commit(*b, true).ok());
  };
  auto held = [&] {
    std::vector<atlas::consensus::Slot> slots;
    auto state = LoadPersistentState(**store);
    REQUIRE(state.ok());
    for (const auto& [slot, entry] : (*state)["t"].log) slots.push_back(slot);
    return slots;
  };
  update(0, 0, 1, 100);
  update(0, 64, 101, 110);  // a snapshot at 64: slot by slot
  std::vector<atlas::consensus::Slot> slots = held();
  REQUIRE(slots.size() == 46);
  CHECK(slots.front() == 65);
  update(64, 5000, 5001, 5003);  // an installed snapshot far ahead: the entries found go
  slots = held();
  CHECK(slots == std::vector<atlas::consensus::Slot>{5001, 5002, 5003});
  // A restart leaves the applied entries on disk.
  auto state = LoadPersistentState(**store, [](const atlas::consensus::ObjectId&) {
    return atlas::consensus::Slot{5002};
  });
  REQUIRE(state.ok());
  CHECK((*state)["t"].log.size() == 1);
  CHECK((*state)["t"].log.begin()->first == 5003);
}
