// The daemon's node loop on a real RocksDB: every write goes through the Paxos log,
// the log and acceptor state are durable, and a restart neither loses nor re-applies entries.
#include <atomic>
#include <chrono>
#include <future>
#include <thread>

#include <catch2/catch.hpp>

#include "atlasd/heap_trimmer.h"
#include "atlasd/node/node_loop.h"
#include "storage/paxos_state.h"
#include "tests/unit/replicator_sync.h"
#include "tests/unit/temp_dir.h"

using atlas::ApplyResult;
using atlas::NodeLoop;
using atlas::proto::Command;
using atlas::testing::ProposeSync;
using atlas::testing::ReadBarrierSync;
constexpr auto Put = atlas::testing::PutCommand;
using namespace atlas::storage;

namespace {



std::optional<std::string> Value(Store* store, const std::string& t, const std::string& row) {
  auto rec = store->GetRow(t, row);
  REQUIRE(rec.ok());
  if (!rec->has_value()) return std::nullopt;
  return *store->ReadValue(t, row, **rec);
}

}  // namespace

TEST_CASE("writes are chosen in the Paxos log before they are applied and acknowledged") {
  atlas::testing::TempDir dir;
  auto store = Store::Open(dir.path(), {});
  REQUIRE(store.ok());
  {
    auto r = NodeLoop::Start(store->get(), {});
    REQUIRE(r.ok());
    for (int i = 0; i < 10; ++i) {
      ApplyResult res = ProposeSync(**r, Put("t", "k" + std::to_string(i), "v"));
      REQUIRE(res.ok);
      CHECK(res.revision >= 1);
    }
    // A refused command is decided too: it takes a slot and fails the same on every replica.
    Command worm = Put("t", "w", "1");
    worm.mutable_put()->set_worm_ttl_ms(3600'000);
    REQUIRE(ProposeSync(**r, worm).ok);
    ApplyResult denied = ProposeSync(**r, Put("t", "w", "2"));
    CHECK_FALSE(denied.ok);
    CHECK(denied.error.find("WORM-protected") != std::string::npos);
    CHECK(ReadBarrierSync(**r, "t").ok());
    (*r)->Shutdown();
  }
  auto state = LoadPersistentState(**store);
  REQUIRE(state.ok());
  REQUIRE(state->count("t") == 1);
  const auto& hard = state->at("t");
  CHECK(hard.commit_index >= 12);       // 12 commands (plus the owner's recovery slot, if any)
  CHECK_FALSE(hard.promised.IsZero());  // this node stole the table (phase 1) to own it
  size_t commands_in_log = 0;
  for (const auto& [slot, entry] : hard.log) commands_in_log += entry.value.size();
  CHECK(commands_in_log + hard.truncated_through >= 12);
}

TEST_CASE("after a restart the table keeps its state and its log position") {
  atlas::testing::TempDir dir;
  auto store = Store::Open(dir.path(), {});
  REQUIRE(store.ok());
  uint64_t first_revision = 0;
  {
    auto r = NodeLoop::Start(store->get(), {});
    REQUIRE(r.ok());
    // Enough writes that the log is compacted behind a snapshot at least once.
    for (int i = 0; i < 300; ++i) {
      ApplyResult res = ProposeSync(**r, Put("t", "n", std::to_string(i)));
      REQUIRE(res.ok);
      first_revision = res.revision;
    }
    (*r)->Shutdown();
  }
  auto state = LoadPersistentState(**store);
  REQUIRE(state.ok());
  CHECK(state->at("t").truncated_through > 0);  // compaction happened
  CHECK(state->at("t").log.size() < 300);       // and the log stays bounded
  auto r = NodeLoop::Start(store->get(), {});
  REQUIRE(r.ok());
  CHECK(Value(store->get(), "t", "n") == std::string("299"));
  ApplyResult res = ProposeSync(**r, Put("t", "n", "after"));
  REQUIRE(res.ok);
  CHECK(res.revision > first_revision);
  CHECK(Value(store->get(), "t", "n") == std::string("after"));
  (*r)->Shutdown();
}

TEST_CASE("log entries round-trip through their storage encoding") {
  atlas::consensus::LogEntry e;
  e.ballot = {7, 3};
  e.value.push_back({{3, 99}, std::string("a\0b", 3)});
  e.value.push_back({{1, 1}, ""});
  auto back = DecodeLogEntry(EncodeLogEntry(e));
  REQUIRE(back);
  CHECK(*back == e);
  CHECK_FALSE(DecodeLogEntry("\x01\x05"));
  CHECK(DecodeLogEntry(EncodeLogEntry({})).has_value());
}

TEST_CASE("After runs on the node thread once its delay passed, in due order, and Shutdown runs "
          "the pending ones at once and refuses new ones") {
  atlas::testing::TempDir dir;
  auto store = Store::Open(dir.path(), {});
  REQUIRE(store.ok());
  auto r = NodeLoop::Start(store->get(), {});
  REQUIRE(r.ok());
  std::vector<int> order;  // written by the node thread only
  std::promise<void> both;
  const auto t0 = std::chrono::steady_clock::now();
  REQUIRE((*r)->After(std::chrono::milliseconds(60), [&] {
    order.push_back(2);
    both.set_value();
  }));
  REQUIRE((*r)->After(std::chrono::milliseconds(20), [&] { order.push_back(1); }));
  both.get_future().wait();
  CHECK(std::chrono::steady_clock::now() - t0 >= std::chrono::milliseconds(60));
  CHECK(order == std::vector<int>{1, 2});

  // A wait that would outlive the loop ends with it, promptly, and nothing runs after.
  bool ran = false;
  REQUIRE((*r)->After(std::chrono::hours(1), [&] { ran = true; }));
  const auto t1 = std::chrono::steady_clock::now();
  (*r)->Shutdown();
  CHECK(ran);
  CHECK(std::chrono::steady_clock::now() - t1 < std::chrono::seconds(5));
  CHECK_FALSE((*r)->After(std::chrono::milliseconds(1), [] {}));
}

TEST_CASE("the heap is trimmed once enough tables rested, not before") {
  std::atomic<uint64_t> rested{0};
  atlas::HeapTrimmer trimmer([&rested] { return rested.load(); }, 100, absl::Milliseconds(5));
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  CHECK(trimmer.trims() == 0);
  rested = 150;
  for (int i = 0; i < 400 && trimmer.trims() == 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  CHECK(trimmer.trims() == 1);
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  CHECK(trimmer.trims() == 1);  // nothing rested since
}
