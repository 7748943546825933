// The replicated state machine on a real RocksDB: WORM judged by the entry's timestamp, ACLs
// enforced at apply time, large values chunked, and determinism across replicas.
#include <catch2/catch.hpp>

#include <algorithm>
#include <map>
#include <random>

#include "absl/container/flat_hash_map.h"
#include "atlasd/snapshot_stream.h"
#include "atlasd/state_machine.h"
#include "storage/coding.h"
#include "storage/keys.h"
#include "tests/unit/temp_dir.h"

using atlas::ApplyResult;
using atlas::StateMachine;
using atlas::proto::Command;
using namespace atlas::storage;

namespace {

class Replica {
 public:
  // On RocksDB, or (`memory`) on the simulator's in-memory store: the state machine must not
  // tell them apart.
  explicit Replica(bool memory = false) {
    if (memory) {
      store_ = NewMemStore();
    } else {
      auto s = Store::Open(dir_.path(), {});
      REQUIRE(s.ok());
      store_ = std::move(*s);
    }
    sm_ = std::make_unique<StateMachine>(store_.get());
  }
  ApplyResult Apply(const Command& cmd) { return ApplyTo(cmd.table(), cmd); }
  // Applies `cmd` as the next slot of consensus object `object`.
  ApplyResult ApplyTo(const std::string& object, const Command& cmd) {
    std::unique_ptr<WriteSet> wb = store_->NewWriteSet();
    uint64_t slot = sm_->CommitIndex(object, wb.get()) + 1;
    ApplyResult r = sm_->Apply(cmd, object, slot, wb.get());
    sm_->FlushMeta(wb.get());
    REQUIRE(store_->Commit(*wb, false).ok());
    return r;
  }
  // Applies several commands as one slot of `object` (a batched Paxos slot).
  std::vector<ApplyResult> ApplySlot(const std::string& object, const std::vector<Command>& cmds) {
    std::unique_ptr<WriteSet> wb = store_->NewWriteSet();
    uint64_t slot = sm_->CommitIndex(object, wb.get()) + 1;
    std::vector<ApplyResult> out;
    for (const auto& c : cmds) out.push_back(sm_->Apply(c, object, slot, wb.get()));
    sm_->FlushMeta(wb.get());
    REQUIRE(store_->Commit(*wb, false).ok());
    return out;
  }
  void InstallObject(const std::string& object, const std::string& snap, uint64_t slot) {
    std::unique_ptr<WriteSet> wb = store_->NewWriteSet();
    atlas::StringPieces pieces(snap);
    REQUIRE(sm_->InstallObjectSnapshot(object, pieces, std::nullopt, wb.get()));
    sm_->MarkApplied(object, slot);
    sm_->FlushMeta(wb.get());
    REQUIRE(store_->Commit(*wb, false).ok());
  }
  StateMachine& sm() { return *sm_; }
  std::optional<std::string> Value(const std::string& table, const std::string& row) {
    auto rec = store_->GetRow(table, row);
    REQUIRE(rec.ok());
    if (!rec->has_value()) return std::nullopt;
    auto v = store_->ReadValue(table, row, **rec);
    REQUIRE(v.ok());
    return *v;
  }
  // Everything in every column family, for comparing replicas byte for byte.
  std::string Dump(std::initializer_list<Cf> cfs = {Cf::kRows, Cf::kBlobs, Cf::kMeta}) {
    std::string out;
    for (Cf cf : cfs) {
      std::unique_ptr<Cursor> it = store_->Scan(cf, "", "");
      for (it->Seek(""); it->Valid(); it->Next()) {
        // Node-local metadata (the data directory's format on RocksDB) is not replicated state.
        if (cf == Cf::kMeta && it->key().starts_with(NodeMetaKey(""))) continue;
        out += std::string(it->key()) + "=" + std::string(it->value()) + ";";
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

Command Group(const std::string& table, const std::string& group) {
  Command c;
  c.set_table(table);
  c.mutable_placement()->set_group(group);
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

bool Decodes(std::string_view snapshot) {
  atlas::StringPieces in(snapshot);
  return StateMachine::ReadSnapshotHeads(in).has_value();
}

// A snapshot in pieces of `piece` bytes.
class Pieces final : public atlas::SnapshotPieces {
 public:
  Pieces(std::string data, size_t piece) : data_(std::move(data)), piece_(piece) {}
  void Rewind() override { offset_ = 0; }
  bool Next(std::string* piece) override {
    if (offset_ >= data_.size()) return false;
    piece->assign(data_.substr(offset_, piece_));
    offset_ += piece->size();
    return true;
  }

 private:
  std::string data_;
  size_t piece_;
  size_t offset_ = 0;
};
}  // namespace

namespace {
Command IfRev(Command c, uint64_t r) {
  if (c.has_put()) c.mutable_put()->set_if_rev(r);
  if (c.has_del()) c.mutable_del()->set_if_rev(r);
  return c;
}
uint64_t RowRevision(Replica& r, const std::string& table, const std::string& row) {
  auto rec = r.store()->GetRow(table, row);
  REQUIRE(rec.ok());
  return rec->has_value() ? (*rec)->revision : 0;
}
}  // namespace

TEST_CASE("a row's revision is the table revision of the change that wrote it - IF REV writes "
          "only at that revision, and a failed one changes nothing") {
  Replica r;
  CHECK(r.Apply(IfRev(Put("t", "a", "1", 1000), 0)).ok);  // IF REV 0: only if absent
  CHECK(RowRevision(r, "t", "a") == 1);
  ApplyResult again = r.Apply(IfRev(Put("t", "a", "2", 1000), 0));
  CHECK_FALSE(again.ok);
  CHECK(again.error == "condition failed: 't.a' is at revision 1");
  CHECK(again.table_revision == 0);  // no WATCH event
  CHECK(r.Value("t", "a") == "1");
  CHECK(r.Apply(Put("t", "b", "x", 1000)).table_revision == 2);  // failures took no revision
  CHECK(r.Apply(IfRev(Put("t", "a", "3", 1000), 1)).ok);
  CHECK(RowRevision(r, "t", "a") == 3);
  CHECK(r.Apply(IfRev(Del("t", "a", 1000), 1)).error ==
        "condition failed: 't.a' is at revision 3");
  CHECK(r.Apply(IfRev(Del("t", "gone", 1000), 2)).error ==
        "condition failed: 't.gone' is at revision 0");
  CHECK(r.Apply(IfRev(Del("t", "gone", 1000), 0)).ok);  // absent, as asked: nothing to delete
  CHECK(r.Apply(IfRev(Del("t", "a", 1000), 3)).ok);
  CHECK(RowRevision(r, "t", "a") == 0);
  ApplyResult back = r.Apply(IfRev(Put("t", "a", "4", 1000), 0));
  CHECK(back.ok);
  CHECK(RowRevision(r, "t", "a") == back.table_revision);
  CHECK(back.table_revision == 5);  // the puts at 1, 2, 3 and the delete at 4
  // The condition is checked before WORM: the client learns the revision either way.
  CHECK(r.Apply(IfRev(Put("t", "a", "5", 1000), 9)).error.starts_with("condition failed"));
}

TEST_CASE("conditional writes decide the same on every replica, in a batched slot too") {
  Replica a, b(/*memory=*/true);
  std::vector<Command> slot = {IfRev(Put("t", "k", "1", 10), 0), IfRev(Put("t", "k", "2", 10), 0),
                               IfRev(Put("t", "k", "3", 10), 1), IfRev(Del("t", "k", 10), 1)};
  for (Replica* r : {&a, &b}) {
    std::vector<ApplyResult> out = r->ApplySlot("t", slot);
    CHECK(out[0].ok);
    CHECK_FALSE(out[1].ok);  // a read sees the writes before it in the same slot
    CHECK(out[2].ok);
    CHECK_FALSE(out[3].ok);
    CHECK(RowRevision(*r, "t", "k") == 2);
  }
  CHECK(a.Dump() == b.Dump());
}

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

TEST_CASE("a table's time never goes backwards: a later command stamped earlier is judged at "
          "the table's clock") {
  Replica r;
  Command worm = Put("t", "w", "v1", 1000);
  worm.mutable_put()->set_worm_ttl_ms(60'000);
  REQUIRE(r.Apply(worm).ok);
  // A later owner (clock ahead) writes another row at 61,000: retention of t.w has ended then.
  REQUIRE(r.Apply(Put("t", "other", "x", 61'000)).ok);
  // A command after it, stamped earlier by an owner whose clock is behind, is judged at 61,000:
  // the retention that ended stays ended, and a new TTL counts from 61,000 too.
  CHECK(r.Apply(Del("t", "w", 30'000)).ok);
  Command again = Put("t", "w", "v2", 30'000);
  again.mutable_put()->set_worm_ttl_ms(1'000);
  REQUIRE(r.Apply(again).ok);
  ApplyResult refused = r.Apply(Del("t", "w", 61'500));
  CHECK_FALSE(refused.ok);
  CHECK(refused.error == "row 't.w' is WORM-protected until 1970-01-01T00:01:02.000Z");
  // Another table keeps its own time.
  Command other = Put("u", "w", "v", 30'000);
  other.mutable_put()->set_worm_ttl_ms(1'000);
  REQUIRE(r.Apply(other).ok);
  CHECK_FALSE(r.Apply(Del("u", "w", 30'500)).ok);
}

TEST_CASE("WORM EXPIRES more than 100 years ahead is refused, like a TTL that long") {
  Replica r;
  const int64_t now = 1'790'000'000'000;
  Command c = Put("t", "x", "v", now);
  c.mutable_put()->set_worm_expires_ms(now + int64_t{101} * 365 * 86'400'000);
  ApplyResult far = r.Apply(c);
  CHECK_FALSE(far.ok);
  CHECK(far.error.ends_with("is more than 100 years ahead"));
  CHECK_FALSE(r.Value("t", "x"));
  c.mutable_put()->set_worm_expires_ms(now + int64_t{99} * 365 * 86'400'000);
  CHECK(r.Apply(c).ok);
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
  std::unique_ptr<Cursor> it = r.store()->Scan(Cf::kBlobs, "", "");
  it->Seek("");
  CHECK_FALSE(it->Valid());
}

TEST_CASE("a failed command still takes its slot, and replicas applying the same log agree, "
          "on RocksDB and in memory") {
  Replica a, b(/*memory=*/true);
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
  std::unique_ptr<WriteSet> wb = a.store()->NewWriteSet();
  CHECK(StateMachine(a.store()).CommitIndex("t", wb.get()) == log.size());
  CHECK(StateMachine(b.store()).CommitIndex("t", nullptr) == log.size());
}

TEST_CASE("system tables are not writable through the state machine") {
  Replica r;
  ApplyResult res = r.Apply(Put("atlas", "nodes", "x", 1));
  CHECK_FALSE(res.ok);
  CHECK(res.error == "table 'atlas' is reserved");
}

// --- Groups: a table moves between consensus objects by a seal in its old log and an adopt in
// its new one (docs/design.md §Groups).

namespace {

struct Entry {
  std::string object;
  Command cmd;
};

// Builds the two logs of a group/ungroup round trip on `ref`, applying them in causal order:
// t's own log (object "t") and the group's log (object "@g"). Returns every entry in the order
// applied on `ref` and each entry's result there.
std::vector<Entry> RecordRoundTrip(Replica& ref, std::vector<ApplyResult>* results) {
  std::vector<Entry> order;
  auto run = [&](const std::string& object, Command c) {
    results->push_back(ref.ApplyTo(object, c));
    order.push_back({object, std::move(c)});
  };
  run("t", Put("t", "a", "1", 10));
  run("t", Put("t", "b", std::string(3 * kBlobChunkBytes / 2, 'b'), 11));  // chunked
  run("t", Acl("t", "alice", atlas::proto::OWNER, true, "alice"));
  run("@g", Put("u", "x", "in-group", 12));  // refused: u is not in g yet
  Command join = Group("t", "g");
  join.set_principal("alice");
  run("t", join);  // seal of t's own log
  run("t", Put("t", "c", "late", 13, "alice"));  // refused: t moved
  run("@g", Put("t", "a", "too-early", 14, "alice"));  // refused: not adopted yet
  std::optional<Command> adopt = ref.sm().BuildAdopt("t");
  REQUIRE(adopt.has_value());
  run("@g", *adopt);
  run("@g", *adopt);  // a second copy (another node also proposed it) changes nothing
  run("@g", Put("t", "a", "10", 15, "alice"));
  run("@g", Del("t", "b", 16));  // refused: no principal on an owned table
  Command denied = Group("t", "");
  run("@g", denied);  // refused by the ACL: placement needs OWNER
  Command ungroup = Group("t", "");
  ungroup.set_principal("alice");
  run("@g", ungroup);  // seal of the group's log for t
  run("@g", Put("t", "z", "late", 17, "alice"));  // refused: moved back
  std::optional<Command> back = ref.sm().BuildAdopt("t");
  REQUIRE(back.has_value());
  run("t", *back);
  run("t", Put("t", "d", "4", 18, "alice"));
  return order;
}

// Applies `log` in the order given by `picks` (object names; each pick takes that object's
// next entry), which must keep every object's own order.
void ApplyInterleaving(Replica& r, const std::vector<Entry>& log,
                       const std::vector<std::string>& picks, std::vector<ApplyResult>* results,
                       std::vector<size_t>* index) {
  std::map<std::string, size_t> next;
  for (const std::string& object : picks) {
    size_t& i = next[object];
    while (i < log.size() && log[i].object != object) ++i;
    REQUIRE(i < log.size());
    results->push_back(r.ApplyTo(object, log[i].cmd));
    index->push_back(i);
    ++i;
  }
}

std::vector<std::string> Picks(std::string_view pattern) {  // 't' → "t", 'g' → "@g"
  std::vector<std::string> out;
  for (char c : pattern) out.push_back(c == 't' ? "t" : "@g");
  return out;
}

}  // namespace

TEST_CASE("grouping a table: seal and adopt give the same state in every interleaving of logs") {
  Replica ref;
  std::vector<ApplyResult> want;
  std::vector<Entry> log = RecordRoundTrip(ref, &want);
  size_t nt = 0, ng = 0;
  for (const auto& e : log) (e.object == "t" ? nt : ng)++;
  // The reference results say what the protocol decided.
  CHECK(want[0].ok);
  CHECK_FALSE(want[3].ok);
  CHECK(want[3].moved);
  CHECK(want[4].ok);
  CHECK(want[4].sealed);
  CHECK_FALSE(want[5].ok);
  CHECK(want[5].moved);
  CHECK(want[5].error == "table 't' moved to group 'g'; retry");
  CHECK(want[6].moved);
  CHECK(want[6].error == "table 't' is not in group 'g' yet; retry");
  CHECK(want[9].ok);
  CHECK_FALSE(want[10].ok);
  CHECK_FALSE(want[10].moved);
  CHECK_FALSE(want[11].ok);
  CHECK(want[12].sealed);
  CHECK(want[13].moved);
  CHECK(want[13].error == "table 't' moved to no group; retry");
  CHECK(want.back().ok);
  CHECK(*ref.Value("t", "a") == "10");
  CHECK(ref.Value("t", "b")->size() == 3 * kBlobChunkBytes / 2);
  CHECK(*ref.Value("t", "d") == "4");
  CHECK_FALSE(ref.Value("t", "c"));
  CHECK_FALSE(ref.Value("t", "z"));
  CHECK_FALSE(ref.Value("u", "x"));

  // The group's log entirely ahead of t's (the adopt applies before the seal), the reverse
  // (t's adopt back applies before the group's seal of the ungroup), and seeded random mixes.
  std::vector<std::string> patterns = {std::string(ng, 'g') + std::string(nt, 't'),
                                       std::string(nt, 't') + std::string(ng, 'g')};
  std::mt19937 rng(7);
  for (int k = 0; k < 30; ++k) {
    std::string p = std::string(ng, 'g') + std::string(nt, 't');
    std::shuffle(p.begin(), p.end(), rng);
    patterns.push_back(p);
  }
  for (const std::string& pattern : patterns) {
    DYNAMIC_SECTION("interleaving " << pattern) {
      Replica r;
      std::vector<ApplyResult> got;
      std::vector<size_t> index;
      ApplyInterleaving(r, log, Picks(pattern), &got, &index);
      CHECK(r.Dump() == ref.Dump());
      // Routing refusals are the same everywhere; only entries the state already included
      // (the adopt of a later interval applied first) have an unknown outcome here.
      size_t unknown = 0;
      for (size_t k = 0; k < got.size(); ++k) {
        const ApplyResult& w = want[index[k]];
        if (got[k].error.starts_with("outcome unknown")) {
          CHECK_FALSE(w.moved);
          ++unknown;
          continue;
        }
        INFO("entry " << index[k] << ": " << got[k].error << " / " << w.error);
        CHECK(got[k].ok == w.ok);
        CHECK(got[k].moved == w.moved);
        CHECK(got[k].error == w.error);
      }
      if (pattern.starts_with(std::string(ng, 'g'))) CHECK(unknown == 3);  // t's first 3
    }
  }
}

TEST_CASE("moved commands are refused deterministically and a table can leave and rejoin") {
  Replica r;
  REQUIRE(r.Apply(Put("t", "a", "1", 1)).ok);
  REQUIRE(r.Apply(Put("v", "a", "2", 1)).ok);
  // Joining the group that it is already in (none) is a no-op, not a seal.
  ApplyResult same = r.Apply(Group("t", ""));
  CHECK(same.ok);
  CHECK_FALSE(same.sealed);
  REQUIRE(r.Apply(Group("t", "g")).sealed);
  REQUIRE(r.Apply(Group("v", "g")).sealed);
  CHECK(r.sm().RouteOf("t").object == "@g");
  CHECK(r.sm().RouteOf("t").pending);
  CHECK_FALSE(r.sm().RouteOf("t").live);
  // The adopt and commands after it share one slot (a batch): they all apply.
  auto batch = r.ApplySlot("@g", {*r.sm().BuildAdopt("t"), Put("t", "s1", "1", 2),
                                  Put("t", "s2", "2", 2), *r.sm().BuildAdopt("v")});
  for (const auto& res : batch) CHECK(res.ok);
  CHECK(*r.Value("t", "s2") == "2");
  CHECK_FALSE(r.sm().BuildAdopt("t").has_value());
  CHECK(r.sm().RouteOf("t").live);
  ApplyResult old_log = r.ApplyTo("t", Put("t", "b", "x", 2));
  CHECK(old_log.moved);
  CHECK(r.ApplyTo("@g", Put("t", "b", "x", 2)).ok);
  CHECK(r.ApplyTo("@g", Put("v", "b", "y", 2)).ok);
  // Moving between groups: seal in g, adopt in h.
  REQUIRE(r.ApplyTo("@g", Group("t", "h")).sealed);
  CHECK(r.ApplyTo("@g", Put("t", "c", "x", 3)).moved);
  REQUIRE(r.ApplyTo("@h", *r.sm().BuildAdopt("t")).ok);
  CHECK(r.ApplyTo("@h", Put("t", "c", "x", 3)).ok);
  CHECK(r.ApplyTo("@g", Put("v", "c", "y", 3)).ok);  // v stays in g
  // Ungroup.
  REQUIRE(r.ApplyTo("@h", Group("t", "")).sealed);
  REQUIRE(r.ApplyTo("t", *r.sm().BuildAdopt("t")).ok);
  CHECK(r.sm().RouteOf("t").object == "t");
  CHECK(r.ApplyTo("t", Put("t", "d", "x", 4)).ok);
  CHECK(*r.Value("t", "a") == "1");
  CHECK(*r.Value("t", "b") == "x");
  CHECK(*r.Value("t", "c") == "x");
  CHECK(*r.Value("v", "c") == "y");
  // An adopt whose snapshot does not belong to the object carrying it is refused.
  Command forged;
  forged.set_table("v");
  forged.mutable_adopt()->set_gen(5);
  forged.mutable_adopt()->set_snapshot("junk");
  CHECK_FALSE(r.ApplyTo("@g", forged).ok);
}

TEST_CASE("a replica that catches up a group from an object snapshot converges") {
  Replica ref;
  std::vector<ApplyResult> want;
  std::vector<Entry> log = RecordRoundTrip(ref, &want);
  // A replica that applied only t's log up to the seal then installs @g's snapshot as of the
  // group's last slot, then t's remaining entries.
  Replica r;
  size_t seal = 4;
  size_t i = 0;
  for (; i <= seal; ++i) {
    if (log[i].object == "t") r.ApplyTo("t", log[i].cmd);
  }
  r.InstallObject("@g", ref.sm().SnapshotObject("@g"), ref.sm().CommitIndex("@g", nullptr));
  for (; i < log.size(); ++i) {
    if (log[i].object == "t") r.ApplyTo("t", log[i].cmd);
  }
  CHECK(r.Dump() == ref.Dump());
}

TEST_CASE("a table too large for one adopt is refused TABLE GROUP and stays where it is") {
  Replica r;
  const std::string big(atlas::kAdoptBytesMax / 2 + 1, 'x');
  REQUIRE(r.Apply(Put("t", "a", big, 1)).ok);
  REQUIRE(r.Apply(Put("t", "b", big, 1)).ok);
  ApplyResult res = r.Apply(Group("t", "g"));
  CHECK_FALSE(res.ok);
  CHECK_FALSE(res.sealed);
  CHECK(res.error.starts_with("table 't' is too large to change group: "));
  CHECK(r.sm().RouteOf("t").object == "t");
  CHECK(r.Apply(Put("t", "c", "small", 2)).ok);
}

TEST_CASE("records the applies hold in memory follow a snapshot install and reach the store once "
          "a batch") {
  // r reads t's ACL, state and member record into its cache: bob may write.
  Replica r;
  REQUIRE(r.Apply(Acl("t", "bob", atlas::proto::WRITE, true, "", /*admin=*/true)).ok);
  REQUIRE(r.Apply(Put("t", "a", "1", 1, "bob")).ok);
  REQUIRE(r.Apply(Put("t", "w", "plain", 1, "bob")).ok);  // r holds row w's record: no WORM
  // ref's t is further on, grants carol only, and its row w is WORM-protected.
  Replica ref;
  REQUIRE(ref.Apply(Acl("t", "carol", atlas::proto::WRITE, true, "", true)).ok);
  for (int i = 0; i < 2; ++i) REQUIRE(ref.Apply(Put("t", "b", std::to_string(i), 2, "carol")).ok);
  Command worm = Put("t", "w", "kept", 2, "carol");
  worm.mutable_put()->set_worm_ttl_ms(3'600'000);
  REQUIRE(ref.Apply(worm).ok);
  r.InstallObject("t", ref.sm().SnapshotObject("t"), ref.sm().CommitIndex("t", nullptr));
  CHECK(r.sm().CommitIndex("t", nullptr) == ref.sm().CommitIndex("t", nullptr));
  // Judged by the installed ACL and row, not those r had cached.
  CHECK_FALSE(r.Apply(Put("t", "c", "x", 3, "bob")).ok);
  CHECK(r.Apply(Put("t", "w", "x", 3, "carol")).error.starts_with("row 't.w' is WORM-protected"));
  CHECK(r.Apply(Put("t", "c", "x", 3, "carol")).ok);
  // Three PUTs in one batch: the table state and commit index are written once, with the
  // last values (the cache holds nothing unflushed afterwards).
  std::vector<ApplyResult> res =
      r.ApplySlot("t", {Put("t", "d", "1", 4, "carol"), Put("t", "e", "1", 4, "carol"),
                        Put("t", "f", "1", 4, "carol")});
  for (const ApplyResult& a : res) CHECK(a.ok);
  CHECK(r.sm().meta_cache().dirty() == 0);
  ref.Apply(Put("t", "c", "x", 3, "bob"));
  ref.Apply(Put("t", "w", "x", 3, "carol"));
  ref.Apply(Put("t", "c", "x", 3, "carol"));
  ref.ApplySlot("t", {Put("t", "d", "1", 4, "carol"), Put("t", "e", "1", 4, "carol"),
                      Put("t", "f", "1", 4, "carol")});
  CHECK(r.Dump() == ref.Dump());
}

TEST_CASE("the record cache stays within its byte limit and never drops a changed record") {
  auto store = atlas::storage::NewMemStore();
  atlas::MetaCache cache(64 << 10);
  std::unique_ptr<WriteSet> wb = store->NewWriteSet();
  for (int i = 0; i < 10000; ++i) {
    cache.Put("k" + std::to_string(i), std::string(100, 'v'));
    if (i % 100 == 99) {
      cache.Flush(*wb);
      CHECK(cache.bytes() <= (64 << 10) + 100 * 300);  // one batch above the limit at most
    }
  }
  cache.Flush(*wb);
  REQUIRE(store->Commit(*wb, false).ok());
  // Every record reached the batch, including those the cache no longer holds.
  for (int i = 0; i < 10000; ++i) {
    auto got = store->Get(Cf::kMeta, "k" + std::to_string(i));
    REQUIRE(got.ok());
    CHECK(got->has_value());
  }
  CHECK(cache.Find("k0") == nullptr);
  REQUIRE(cache.Find("k9999") != nullptr);
  CHECK(**cache.Find("k9999") == std::string(100, 'v'));
  cache.Delete("k9999");
  REQUIRE(cache.Find("k9999") != nullptr);
  CHECK_FALSE(cache.Find("k9999")->has_value());
  CHECK(cache.dirty() == 1);
}

TEST_CASE("a cache emptied to start over keeps its hash table and none of its records") {
  absl::flat_hash_map<std::string, std::string> map;
  for (int i = 0; i < 100000; ++i) map.emplace("k" + std::to_string(i), "v");
  const size_t capacity = map.capacity();
  atlas::EmptyKeepingMemory(map);
  CHECK(map.empty());
  CHECK(map.capacity() == capacity);  // clear() would have freed it
  CHECK_FALSE(map.contains("k1"));
  // Refilled through its tombstones without growing.
  for (int i = 0; i < 100000; ++i) map.emplace("n" + std::to_string(i), "v");
  CHECK(map.size() == 100000);
  CHECK(map.capacity() == capacity);
  CHECK_FALSE(map.contains("k1"));
}

// The revisions of the changes `table` keeps for WATCH, in order.
static std::vector<uint64_t> KeptChanges(Store& store, const std::string& table) {
  std::vector<uint64_t> revs;
  std::unique_ptr<Cursor> it =
      store.Scan(Cf::kChanges, ChangeKey(table, 0), ChangeRangeLimit(table));
  for (it->Seek(ChangeKey(table, 0)); it->Valid(); it->Next()) {
    revs.push_back(*ChangeRevision(table, it->key()));
  }
  return revs;
}

TEST_CASE("the change history keeps watch-history changes, trimmed in steps of history/16") {
  for (uint64_t history : {uint64_t{64}, uint64_t{16}}) {
    INFO("history " << history);
    const uint64_t step = std::max<uint64_t>(history / 16, 1);  // 4, then 1: exact
    std::unique_ptr<Store> store = NewMemStore();
    StateMachine sm(store.get(), {history, 0});
    auto kept = [&] { return KeptChanges(*store, "t"); };
    for (uint64_t rev = 1; rev <= 103; ++rev) {
      std::unique_ptr<WriteSet> wb = store->NewWriteSet();
      REQUIRE(sm.Apply(Put("t", "r" + std::to_string(rev % 7), "v", 1), "t", rev, wb.get()).ok);
      sm.FlushMeta(wb.get());
      REQUIRE(store->Commit(*wb, false).ok());
      const std::vector<uint64_t> revs = kept();
      // Never fewer than `history` (nor all written, while fewer), at most a step more, and
      // always the newest ones, consecutive.
      REQUIRE(revs.size() >= std::min(rev, history));
      REQUIRE(revs.size() <= history + step - 1);
      REQUIRE(revs.back() == rev);
      REQUIRE(revs.back() - revs.front() + 1 == revs.size());
    }
    auto range = atlas::TableRevisions(store.get(), "t");
    REQUIRE(range.ok());
    CHECK(range->latest == 103);
    CHECK(range->resumable_from == (step == 1 ? 103 - history : 100 - history));
  }
}

TEST_CASE("the change history is bounded in bytes too, at a step's granularity") {
  // 10 KB values, 10,000 changes and 100 KB at most: the byte bound keeps ~10 of them,
  // trimmed every 100 KB / 16 bytes of changes (here: every change), not every 256 changes.
  const uint64_t history = 10'000, bound = 100'000;
  std::unique_ptr<Store> store = NewMemStore();
  StateMachine sm(store.get(), {history, bound});
  auto kept = [&] {
    std::vector<uint64_t> revs;
    uint64_t bytes = 0;
    std::unique_ptr<Cursor> it =
        store->Scan(Cf::kChanges, ChangeKey("t", 0), ChangeRangeLimit("t"));
    for (it->Seek(ChangeKey("t", 0)); it->Valid(); it->Next()) {
      revs.push_back(*ChangeRevision("t", it->key()));
      bytes += it->value().size();
    }
    return std::pair(revs, bytes);
  };
  uint64_t fewest = UINT64_MAX;
  for (uint64_t rev = 1; rev <= 200; ++rev) {
    std::unique_ptr<WriteSet> wb = store->NewWriteSet();
    const std::string value(10'000, static_cast<char>('a' + rev % 26));
    REQUIRE(sm.Apply(Put("t", "r" + std::to_string(rev % 7), value, 1), "t", rev, wb.get()).ok);
    sm.FlushMeta(wb.get());
    REQUIRE(store->Commit(*wb, false).ok());
    const auto [revs, bytes] = kept();
    // Always the newest changes, consecutive; at least `bound` bytes of them once there are
    // that many, and at most a step of changes more than that.
    REQUIRE(revs.back() == rev);
    REQUIRE(revs.back() - revs.front() + 1 == revs.size());
    if (rev * 10'000 >= bound) REQUIRE(bytes >= bound);
    REQUIRE(bytes <= bound + 2 * 10'100);
    if (rev > 20) fewest = std::min<uint64_t>(fewest, revs.size());
  }
  CHECK(fewest < history);  // the bound in bytes, not the count, decided
  auto range = atlas::TableRevisions(store.get(), "t");
  REQUIRE(range.ok());
  CHECK(range->latest == 200);
  CHECK(range->resumable_from >= 200 - 20);
  // The marks go as the history does: one per step still in it at most.
  size_t marks = 0;
  std::unique_ptr<Cursor> it =
      store->Scan(Cf::kChanges, ChangeMarkKey("t", 0), ChangeMarkLimit("t"));
  for (it->Seek(ChangeMarkKey("t", 0)); it->Valid(); it->Next()) ++marks;
  CHECK(marks >= 1);
  CHECK(marks <= kept().first.size());
}

TEST_CASE("trims go on from the table's trim record: a lowered watch-history leaves no gap") {
  std::unique_ptr<Store> store = NewMemStore();
  auto apply = [&](StateMachine& sm, uint64_t from, uint64_t to) {
    for (uint64_t rev = from; rev <= to; ++rev) {
      std::unique_ptr<WriteSet> wb = store->NewWriteSet();
      REQUIRE(sm.Apply(Put("t", "r" + std::to_string(rev % 7), "v", 1), "t", rev, wb.get()).ok);
      sm.FlushMeta(wb.get());
      REQUIRE(store->Commit(*wb, false).ok());
    }
  };
  auto kept = [&] { return KeptChanges(*store, "t"); };
  {
    StateMachine sm(store.get(), {64, 0});  // steps of 4
    apply(sm, 1, 100);
  }
  std::optional<std::string> record = *store->Get(Cf::kChanges, ChangeTrimKey("t"));
  REQUIRE(record);
  std::string_view v = *record;
  uint64_t through = 0;
  REQUIRE(GetVarint(&v, &through));
  CHECK(through == 100 - 64);
  CHECK(kept().front() == through + 1);
  // Restarted with a history of 16: the next step trims every older change, not only its own
  // step's (which would leave changes 37..80 behind a gap a WATCH FROM could not see across).
  StateMachine lowered(store.get(), {16, 0});  // steps of 1
  apply(lowered, 101, 101);
  const std::vector<uint64_t> revs = kept();
  CHECK(revs.front() == 101 - 16 + 1);
  CHECK(revs.back() - revs.front() + 1 == revs.size());
}

TEST_CASE("an object's snapshot streams a chunk at a time from the state it was opened at") {
  Replica ref;
  for (int i = 0; i < 300; ++i) {
    REQUIRE(ref.Apply(Put("t", "r" + std::to_string(i), std::string(1000, 'a' + i % 26), 1)).ok);
  }
  REQUIRE(ref.Apply(Put("t", "big", std::string(3 * kBlobChunkBytes + 7, 'b'), 1)).ok);
  const std::string whole = ref.sm().SnapshotObject("t");
  const uint64_t slot = ref.sm().CommitIndex("t", nullptr);
  std::unique_ptr<atlas::SnapshotStream> stream = ref.sm().OpenObjectSnapshot("t");
  CHECK(stream->slot() == slot);
  CHECK(stream->size() == whole.size());
  // Writes after the stream opened are not in it.
  REQUIRE(ref.Apply(Put("t", "r0", "changed", 2)).ok);
  REQUIRE(ref.Apply(Put("t", "new", "row", 2)).ok);
  const size_t chunk = 4096;
  std::string streamed;
  size_t held = 0;
  for (uint64_t off = 0; off < stream->size(); off += chunk) {
    std::string part = stream->Read(off, chunk);
    CHECK(stream->Read(off, chunk) == part);  // a retry of the same chunk
    held = std::max(held, stream->buffered());
    streamed += part;
  }
  CHECK(streamed == whole);
  // What a learner checks before installing.
  CHECK(Decodes(streamed));
  CHECK_FALSE(Decodes(streamed.substr(0, streamed.size() - 1)));
  CHECK_FALSE(Decodes(std::string("T\x01" "t\x03" "abc")));
  // A chunk holds at most one chunk and one entry (the blob chunk) of the table.
  CHECK(held <= chunk + kBlobChunkBytes + 64);
  // An earlier chunk again (the learner started over) reads from the start.
  CHECK(stream->Read(chunk, chunk) == whole.substr(chunk, chunk));
  CHECK(stream->Read(whole.size() - 10, chunk) == whole.substr(whole.size() - 10));
  // What the stream sent installs into the state the stream was opened at.
  Replica r;
  r.InstallObject("t", streamed, slot);
  CHECK(r.sm().CommitIndex("t", nullptr) == slot);
  CHECK(*r.Value("t", "r0") == std::string(1000, 'a'));
  CHECK_FALSE(r.Value("t", "new").has_value());
  CHECK(*r.Value("t", "big") == std::string(3 * kBlobChunkBytes + 7, 'b'));
}

TEST_CASE("a received snapshot installs from pieces of any size, holding about one piece") {
  // A learner stages what peers send and reads it back a piece at a time: pieces end anywhere,
  // inside a length, a key or a blob chunk, and the parser never buffers the snapshot.
  Replica ref;
  for (int i = 0; i < 200; ++i) {
    REQUIRE(ref.Apply(Put("t", "r" + std::to_string(i), std::string(100, 'a' + i % 26), 1)).ok);
  }
  REQUIRE(ref.Apply(Put("t", "big", std::string(2 * kBlobChunkBytes + 3, 'b'), 1)).ok);
  const std::string whole = ref.sm().SnapshotObject("t");
  const uint64_t slot = ref.sm().CommitIndex("t", nullptr);
  for (size_t piece : {size_t{1}, size_t{7}, size_t{4096}, whole.size()}) {
    INFO("pieces of " << piece << " bytes");
    Pieces in(whole, piece);
    CHECK(StateMachine::ReadSnapshotHeads(in).has_value());
    atlas::SnapshotParser p(&in);
    size_t held = 0, entries = 0;
    char kind = 0;
    std::string table, member;
    while (p.NextSection(&kind, &table, &member)) {
      Cf cf;
      std::string_view key, value;
      for (; p.NextEntry(&cf, &key, &value); ++entries) held = std::max(held, p.buffered());
    }
    CHECK(p.ok());
    CHECK(entries > 200);
    CHECK(held <= std::max(piece, kBlobChunkBytes) + piece + 64);
    Replica r;
    std::unique_ptr<WriteSet> wb = r.store()->NewWriteSet();
    REQUIRE(r.sm().InstallObjectSnapshot("t", in, std::nullopt, wb.get()));
    r.sm().MarkApplied("t", slot);
    r.sm().FlushMeta(wb.get());
    REQUIRE(r.store()->Commit(*wb, false).ok());
    // The data as sent; the table state says it includes its last slot whole.
    CHECK(r.Dump({Cf::kRows, Cf::kBlobs}) == ref.Dump({Cf::kRows, Cf::kBlobs}));
    CHECK(r.sm().CommitIndex("t", nullptr) == slot);
  }
  // A length past anything a snapshot holds is refused, not buffered.
  std::string huge(1, 'T');
  PutLengthPrefixed(&huge, "t");
  PutVarint(&huge, uint64_t{1} << 40);
  huge.push_back('\0');
  PutVarint(&huge, uint64_t{1} << 40);
  CHECK_FALSE(Decodes(huge + std::string(100, 'x')));
}

TEST_CASE("a damaged snapshot is refused by the first pass or installs, never crashes") {
  Replica ref;
  for (int i = 0; i < 30; ++i) {
    REQUIRE(ref.Apply(Put("t", "r" + std::to_string(i), std::string(20, 'a' + i % 26), 1)).ok);
  }
  const std::string whole = ref.sm().SnapshotObject("t");
  // Damaged copies (cut, bytes changed, bytes inserted), in pieces of every size: each is
  // refused by the first pass, or installs; none crashes or reads out of bounds (ASan builds).
  std::mt19937_64 rng(20261206);
  int decoded = 0;
  for (int i = 0; i < 3000; ++i) {
    std::string bad = whole.substr(0, whole.size() - rng() % 100);
    for (int k = 0; k < 3; ++k) {
      const size_t at = rng() % bad.size();
      if (rng() % 2 == 0) {
        bad[at] = static_cast<char>(rng());
      } else {
        bad.insert(at, 1, static_cast<char>(rng()));
      }
    }
    Pieces in(bad, 1 + rng() % 600);
    std::optional<atlas::SnapshotHeads> heads = StateMachine::ReadSnapshotHeads(in);
    if (!heads) continue;
    ++decoded;
    Replica r(/*memory=*/true);
    std::unique_ptr<WriteSet> wb = r.store()->NewWriteSet();
    REQUIRE(r.sm().InstallObjectSnapshot("t", in, std::move(heads), wb.get()));
    r.sm().FlushMeta(wb.get());
    REQUIRE(r.store()->Commit(*wb, false).ok());
  }
  CHECK(decoded > 0);  // (a changed value byte still decodes)
}

namespace {
Command ReadOp(const std::string& table, const std::string& row, atlas::proto::Read::Kind kind) {
  Command c;
  c.set_table(table);
  c.mutable_read()->set_row(row);
  c.mutable_read()->set_kind(kind);
  return c;
}
Command Txn(std::vector<Command> ops, int64_t ts = 1000, const std::string& principal = "") {
  Command c;
  c.set_table(ops.front().table());
  c.set_timestamp_ms(ts);
  c.set_principal(principal);
  for (Command& op : ops) *c.mutable_txn()->add_ops() = std::move(op);
  return c;
}
// Puts `table` into group `group` the way NodeHost does: the seal in the table's log, then
// the adopt in the group's.
void JoinGroup(Replica& r, const std::string& table, const std::string& group) {
  REQUIRE(r.Apply(Group(table, group)).sealed);
  std::optional<Command> adopt = r.sm().BuildAdopt(table);
  REQUIRE(adopt);
  REQUIRE(r.ApplyTo("@" + group, *adopt).ok);
}
}  // namespace

TEST_CASE("a transaction applies all of its commands or none, each change its own revision, "
          "its reads seeing the writes before them") {
  Replica r;
  REQUIRE(r.Apply(Put("acct", "a", "100", 1000)).ok);
  REQUIRE(r.Apply(Put("acct", "b", "5", 1000)).ok);
  using R = atlas::proto::Read;
  ApplyResult ok = r.Apply(Txn({IfRev(Put("acct", "a", "90", 0), 1), ReadOp("acct", "a", R::GET),
                                IfRev(Put("acct", "b", "15", 0), 2), Del("acct", "gone", 0),
                                ReadOp("acct", "b", R::INFO), ReadOp("acct", "none", R::BLOB)}));
  REQUIRE(ok.ok);
  REQUIRE(ok.reads.size() == 3);
  CHECK(ok.reads[0].value == "90");  // its own earlier write
  REQUIRE(ok.reads[1].row);
  CHECK(ok.reads[1].row->revision == 4);  // a at 3, b at 4: consecutive, in command order
  CHECK(ok.reads[1].value.empty());        // INFO carries no value
  CHECK_FALSE(ok.reads[2].row);
  CHECK(ok.changes == std::vector<std::pair<std::string, uint64_t>>{{"acct", 4}});
  // The second write's condition fails: the first, allowed on its own, is not applied either.
  ApplyResult aborted = r.Apply(Txn({IfRev(Put("acct", "a", "80", 0), 3),
                                     IfRev(Put("acct", "b", "25", 0), 3)}));
  CHECK_FALSE(aborted.ok);
  CHECK(aborted.error == "transaction aborted: condition failed: 'acct.b' is at revision 4");
  CHECK(aborted.changes.empty());
  CHECK(r.Value("acct", "a") == "90");
  CHECK(r.Apply(Put("acct", "c", "x", 1000)).table_revision == 5);  // none was taken
  // A later command of the transaction sees the revision an earlier one gave the row.
  CHECK(r.Apply(Txn({IfRev(Put("acct", "n", "1", 0), 0), IfRev(Put("acct", "n", "2", 0), 6),
                     IfRev(Del("acct", "n", 0), 7)})).ok);
  CHECK_FALSE(r.Value("acct", "n"));
  // Only the proposer answers the reads.
  std::unique_ptr<WriteSet> wb = r.store()->NewWriteSet();
  ApplyResult quiet = r.sm().Apply(Txn({ReadOp("acct", "a", atlas::proto::Read::GET)}), "acct",
                                   r.sm().CommitIndex("acct", wb.get()) + 1, wb.get(),
                                   /*with_reads=*/false);
  CHECK(quiet.ok);
  CHECK(quiet.reads.empty());
}

TEST_CASE("a transaction is refused whole by a WORM row, an ACL, a binary GET or a table of "
          "another object") {
  Replica r;
  REQUIRE(r.Apply(Put("t", "a", "1", 1000)).ok);
  Command worm = Put("t", "w", "kept", 1000);
  worm.mutable_put()->set_worm_ttl_ms(3'600'000);
  REQUIRE(r.Apply(worm).ok);
  ApplyResult w = r.Apply(Txn({Put("t", "a", "2", 0), Del("t", "w", 0)}));
  CHECK(w.error.starts_with("transaction aborted: row 't.w' is WORM-protected until "));
  CHECK(r.Value("t", "a") == "1");
  REQUIRE(r.Apply(Acl("t", "alice", atlas::proto::OWNER, true, "alice")).ok);
  REQUIRE(r.Apply(Acl("t", "bob", atlas::proto::READ, true, "alice")).ok);
  ApplyResult acl = r.Apply(Txn({ReadOp("t", "a", atlas::proto::Read::GET), Put("t", "a", "3", 0)},
                                1000, "bob"));
  CHECK(acl.error == "transaction aborted: permission denied for principal 'bob': WRITE on t");
  CHECK(r.Apply(Txn({ReadOp("t", "a", atlas::proto::Read::GET)}, 1000, "bob")).ok);
  CHECK(r.Apply(Txn({ReadOp("t", "a", atlas::proto::Read::GET)}, 1000, "eve")).error ==
        "transaction aborted: permission denied for principal 'eve': READ on t");
  ApplyResult binary = r.Apply(
      Txn({Put("t", "b", "x\r\ny", 0), ReadOp("t", "b", atlas::proto::Read::GET)}, 1000, "alice"));
  CHECK(binary.error == "transaction aborted: value of 't.b' is binary; use KEY BLOB GET");
  // Another table is not in this object's log: retried elsewhere, never half-applied.
  ApplyResult other = r.Apply(Txn({Put("t", "a", "4", 0), Put("u", "a", "4", 0)}, 1000, "alice"));
  CHECK(other.moved);
  CHECK(other.error == "table 'u' is not in no group yet; retry");
  CHECK(r.Value("t", "a") == "1");
}

TEST_CASE("a transaction over the tables of one group, applied the same on every replica") {
  Replica a, b(/*memory=*/true);
  for (Replica* r : {&a, &b}) {
    REQUIRE(r->Apply(Put("x", "k", "1", 1000)).ok);
    JoinGroup(*r, "x", "g");
    JoinGroup(*r, "y", "g");
    ApplyResult t = r->ApplyTo("@g", Txn({IfRev(Put("x", "k", "2", 0), 1), Put("y", "k", "3", 0),
                                          ReadOp("y", "k", atlas::proto::Read::GET)}));
    REQUIRE(t.ok);
    CHECK(t.reads.at(0).value == "3");
    CHECK(t.changes == std::vector<std::pair<std::string, uint64_t>>{{"x", 2}, {"y", 1}});
    ApplyResult half = r->ApplyTo("@g", Txn({Put("x", "k", "4", 0), IfRev(Del("y", "k", 0), 9)}));
    CHECK(half.error == "transaction aborted: condition failed: 'y.k' is at revision 1");
    CHECK(r->Value("x", "k") == "2");
  }
  CHECK(a.Dump() == b.Dump());
}

namespace {
Command Expiring(Command c, int64_t ttl_ms, int64_t at_ms = 0) {
  c.mutable_put()->set_expire_ttl_ms(ttl_ms);
  c.mutable_put()->set_expire_at_ms(at_ms);
  return c;
}
Command Removal(const std::string& table, const std::vector<std::string>& rows, int64_t ts) {
  std::vector<Command> ops;
  for (const std::string& row : rows) {
    Command d = Del(table, row, ts);
    d.mutable_del()->set_only_expired(true);
    ops.push_back(d);
  }
  Command c = Txn(ops, ts);
  c.set_admin(true);
  return c;
}
// The table's expiry index: "<expires_ms> <row>" in order.
std::vector<std::string> Index(Replica& r, const std::string& table) {
  std::vector<std::string> out;
  auto [lo, hi] = ExpiryRange(table);
  std::unique_ptr<Cursor> it = r.store()->Scan(Cf::kMeta, lo, hi);
  for (it->Seek(lo); it->Valid(); it->Next()) {
    int64_t at = 0;
    std::string row;
    REQUIRE(DecodeExpiryKey(table, it->key(), &at, &row));
    out.push_back(std::to_string(at) + " " + row);
  }
  return out;
}
}  // namespace

TEST_CASE("expiring rows: the index follows every write, an expired row is gone for conditions "
          "and reads, and only a still-expired row is removed") {
  Replica r;
  REQUIRE(r.Apply(Expiring(Put("s", "a", "1", 1000), 5000)).ok);      // gone at 6000
  REQUIRE(r.Apply(Expiring(Put("s", "b", "1", 1000), 0, 3000)).ok);   // EXPIRE AT 3000
  REQUIRE(r.Apply(Put("s", "c", "1", 1000)).ok);
  CHECK(Index(r, "s") == std::vector<std::string>{"3000 b", "6000 a"});
  CHECK(r.sm().TakeExpiringTables() == std::set<std::string>{"s"});
  // Rewritten: with another expiry, or none (a write without EXPIRE clears it).
  REQUIRE(r.Apply(Expiring(Put("s", "a", "2", 2000), 8000)).ok);      // gone at 10000
  REQUIRE(r.Apply(Put("s", "b", "2", 2000)).ok);
  CHECK(Index(r, "s") == std::vector<std::string>{"10000 a"});
  // Past its expiry a row is gone for IF REV (0) and for a transaction's reads.
  REQUIRE(r.Apply(Expiring(Put("s", "d", "1", 2000), 1000)).ok);      // gone at 3000
  CHECK(r.Apply(Txn({ReadOp("s", "d", atlas::proto::Read::GET)}, 2999)).reads.at(0).row);
  CHECK_FALSE(r.Apply(Txn({ReadOp("s", "d", atlas::proto::Read::GET)}, 3000)).reads.at(0).row);
  // The owner's removal: d (expired) goes; a and c (not expired, or never) stay.
  ApplyResult removed = r.Apply(Removal("s", {"a", "c", "d", "none"}, 3500));
  REQUIRE(removed.ok);
  CHECK(removed.changes == std::vector<std::pair<std::string, uint64_t>>{{"s", 7}});
  CHECK_FALSE(r.Value("s", "d"));
  CHECK(r.Value("s", "a") == "2");
  CHECK(r.Value("s", "c") == "1");
  CHECK(Index(r, "s") == std::vector<std::string>{"10000 a"});
  // IF REV 0 writes over a row that expired but is not removed yet.
  CHECK(r.Apply(IfRev(Put("s", "a", "3", 10000), 0)).ok);
  CHECK(Index(r, "s").empty());
  // An expiry before the row's WORM retention is refused; EXPIRE AT in the past is not.
  Command worm = Expiring(Put("s", "w", "1", 1000), 60'000);
  worm.mutable_put()->set_worm_ttl_ms(3'600'000);
  CHECK(r.Apply(worm).error == "expiry before the WORM retention of 's.w' ends");
  CHECK(r.Apply(Expiring(Put("s", "p", "1", 20'000), 0, 1000)).ok);
}

TEST_CASE("a snapshot carries a table's expiry index, and the node that installs it lists the "
          "table") {
  Replica a, b;
  REQUIRE(a.Apply(Expiring(Put("s", "a", "1", 1000), 5000)).ok);
  b.InstallObject("s", a.sm().SnapshotObject("s"), 1);
  CHECK(Index(b, "s") == std::vector<std::string>{"6000 a"});
  CHECK(b.sm().TakeExpiringTables() == std::set<std::string>{"s"});
}
