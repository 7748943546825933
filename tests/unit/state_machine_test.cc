// The replicated state machine on a real RocksDB: WORM judged by the entry's timestamp, ACLs
// enforced at apply time, large values chunked, and determinism across replicas.
#include <catch2/catch.hpp>

#include "atlasd/state_machine.h"
#include "storage/keys.h"
#include "tests/unit/temp_dir.h"

using atlas::ApplyResult;
using atlas::StateMachine;
using atlas::proto::Command;
using namespace atlas::storage;

namespace {

class Replica {
 public:
  Replica() {
    auto s = Store::Open(dir_.path(), {});
    REQUIRE(s.ok());
    store_ = std::move(*s);
    sm_ = std::make_unique<StateMachine>(store_.get());
  }
  ApplyResult Apply(const Command& cmd) {
    rocksdb::WriteBatchWithIndex wb(rocksdb::BytewiseComparator(), 0, true);
    uint64_t slot = sm_->CommitIndex(cmd.table(), &wb) + 1;
    ApplyResult r = sm_->Apply(cmd, slot, &wb);
    REQUIRE(store_->Write(wb.GetWriteBatch(), false).ok());
    return r;
  }
  std::optional<std::string> Value(const std::string& table, const std::string& row) {
    auto rec = store_->GetRow(table, row);
    REQUIRE(rec.ok());
    if (!rec->has_value()) return std::nullopt;
    auto v = store_->ReadValue(table, row, **rec);
    REQUIRE(v.ok());
    return *v;
  }
  // Everything in every column family, for comparing replicas byte for byte.
  std::string Dump() {
    std::string out;
    for (Cf cf : {Cf::kRows, Cf::kBlobs, Cf::kMeta}) {
      std::unique_ptr<rocksdb::Iterator> it(
          store_->db()->NewIterator(rocksdb::ReadOptions(), store_->cf(cf)));
      for (it->SeekToFirst(); it->Valid(); it->Next()) {
        out += it->key().ToString() + "=" + it->value().ToString() + ";";
      }
    }
    return out;
  }
  Store* store() { return store_.get(); }

 private:
  atlas::testing::TempDir dir_;
  std::unique_ptr<Store> store_;
  std::unique_ptr<StateMachine> sm_;
};

Command Put(const std::string& table, const std::string& row, const std::string& value,
            int64_t ts, const std::string& principal = "") {
  Command c;
  c.set_table(table);
  c.set_timestamp_ms(ts);
  c.set_principal(principal);
  c.mutable_put()->set_row(row);
  c.mutable_put()->set_value(value);
  return c;
}

Command Del(const std::string& table, const std::string& row, int64_t ts) {
  Command c;
  c.set_table(table);
  c.set_timestamp_ms(ts);
  c.mutable_del()->set_row(row);
  return c;
}

Command Acl(const std::string& table, const std::string& who, atlas::proto::Perm perm, bool grant,
            const std::string& as, bool admin = false) {
  Command c;
  c.set_table(table);
  c.set_principal(as);
  c.set_admin(admin);
  c.mutable_acl()->set_principal(who);
  c.mutable_acl()->set_perm(perm);
  c.mutable_acl()->set_grant(grant);
  return c;
}

}  // namespace

TEST_CASE("WORM retention is judged by the entry's timestamp, not a local clock") {
  Replica r;
  Command worm = Put("t", "w", "v1", 1000);
  worm.mutable_put()->set_worm_ttl_ms(60'000);
  REQUIRE(r.Apply(worm).ok);
  ApplyResult early = r.Apply(Put("t", "w", "v2", 60'999));
  CHECK_FALSE(early.ok);
  CHECK(early.error == "row 't.w' is WORM-protected until 1970-01-01T00:01:01.000Z");
  CHECK_FALSE(r.Apply(Del("t", "w", 30'000)).ok);
  CHECK(r.Value("t", "w") == std::string("v1"));
  // At the instant retention ends the row is an ordinary row again.
  CHECK(r.Apply(Put("t", "w", "v3", 61'000)).ok);
  CHECK(r.Value("t", "w") == std::string("v3"));
  CHECK(r.Apply(Del("t", "w", 61'001)).ok);
  CHECK_FALSE(r.Value("t", "w"));
}

TEST_CASE("WORM EXPIRES in the past protects nothing") {
  Replica r;
  Command c = Put("t", "x", "v", 10'000);
  c.mutable_put()->set_worm_expires_ms(5'000);
  REQUIRE(r.Apply(c).ok);
  CHECK(r.Apply(Put("t", "x", "w", 10'001)).ok);
}

TEST_CASE("writes are checked against the table's ACL when applied") {
  Replica r;
  REQUIRE(r.Apply(Acl("t", "alice", atlas::proto::OWNER, true, "alice")).ok);
  ApplyResult denied = r.Apply(Put("t", "a", "v", 1, "bob"));
  CHECK_FALSE(denied.ok);
  CHECK(denied.error == "permission denied for principal 'bob': WRITE on t");
  ApplyResult anon = r.Apply(Put("t", "a", "v", 1));
  CHECK(anon.error == "permission denied: WRITE on t");
  CHECK(r.Apply(Put("t", "a", "v", 1, "alice")).ok);
  // A WRITE grant cannot make itself OWNER.
  REQUIRE(r.Apply(Acl("t", "bob", atlas::proto::WRITE, true, "alice")).ok);
  CHECK_FALSE(r.Apply(Acl("t", "bob", atlas::proto::OWNER, true, "bob")).ok);
  CHECK(r.Apply(Put("t", "b", "v", 2, "bob")).ok);
  // An admin may administer a table whose last OWNER is gone.
  REQUIRE(r.Apply(Acl("t", "alice", atlas::proto::OWNER, false, "alice")).ok);
  CHECK_FALSE(r.Apply(Acl("t", "carol", atlas::proto::OWNER, true, "alice")).ok);
  CHECK(r.Apply(Acl("t", "carol", atlas::proto::OWNER, true, "root", /*admin=*/true)).ok);
}

TEST_CASE("large values are chunked and overwriting one leaves no stale chunks") {
  Replica r;
  std::string big(3 * kBlobChunkBytes + 123, 'x');
  for (size_t i = 0; i < big.size(); i += 4099) big[i] = static_cast<char>('a' + i % 26);
  REQUIRE(r.Apply(Put("t", "big", big, 1)).ok);
  CHECK(r.Value("t", "big") == big);
  REQUIRE(r.Apply(Put("t", "big", "small", 2)).ok);
  CHECK(r.Value("t", "big") == std::string("small"));
  std::unique_ptr<rocksdb::Iterator> it(
      r.store()->db()->NewIterator(rocksdb::ReadOptions(), r.store()->cf(Cf::kBlobs)));
  it->SeekToFirst();
  CHECK_FALSE(it->Valid());
}

TEST_CASE("a failed command still takes its slot, and replicas applying the same log agree") {
  Replica a, b;
  std::vector<Command> log;
  Command w = Put("t", "k", "v", 100);
  w.mutable_put()->set_worm_ttl_ms(1000);
  log.push_back(w);
  log.push_back(Put("t", "k", "overwrite-denied", 500));
  log.push_back(Acl("t", "alice", atlas::proto::OWNER, true, "x"));
  log.push_back(Put("t", "j", "denied-no-principal", 600));
  log.push_back(Put("t", "j", std::string(2 * kBlobChunkBytes, 'z'), 700, "alice"));
  log.push_back(Del("t", "k", 2000));
  for (const auto& c : log) {
    ApplyResult ra = a.Apply(c), rb = b.Apply(c);
    CHECK(ra.ok == rb.ok);
    CHECK(ra.error == rb.error);
    CHECK(ra.revision == rb.revision);
  }
  CHECK(a.Dump() == b.Dump());
  rocksdb::WriteBatchWithIndex wb(rocksdb::BytewiseComparator(), 0, true);
  CHECK(StateMachine(a.store()).CommitIndex("t", &wb) == log.size());
}

TEST_CASE("system tables are not writable through the state machine") {
  Replica r;
  ApplyResult res = r.Apply(Put("atlas", "nodes", "x", 1));
  CHECK_FALSE(res.ok);
  CHECK(res.error == "table 'atlas' is reserved");
}
