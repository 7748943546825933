// Unit tests of the Replica state machine over a trivial, lossless, FIFO network
// (consensus/replica.h). Fault-injection lives in the simulator tests.
#include <catch2/catch.hpp>

#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "consensus/membership.h"
#include "consensus/replica.h"
#include "consensus/stored_object.h"

namespace atlas::consensus {
namespace {

class NoSnapshots : public SnapshotSource {
 public:
  // Set: the application state is durable with this hard state (as the daemon's is), applied
  // through its commit index; a restart re-applies nothing.
  const PersistentState* applied_with = nullptr;
  Slot LatestSnapshotSlot(const ObjectId& object) override {
    if (applied_with == nullptr || !applied_with->contains(object)) return 0;
    return applied_with->at(object).commit_index;
  }
  std::unique_ptr<SnapshotReader> OpenSnapshot(const ObjectId& object) override {
    if (applied_with == nullptr || !applied_with->contains(object)) return nullptr;
    return std::make_unique<SnapshotBytes>(applied_with->at(object).commit_index, "");
  }
  // Staged transfers are kept as the daemon keeps them (in order, offset 0 starting over);
  // the test host decodes only empty snapshots.
  void StageChunk(const ObjectId& object, uint64_t offset, std::string_view bytes) override {
    std::string& s = staged[object];
    REQUIRE(offset == (offset == 0 ? 0 : s.size()));
    if (offset == 0) s.clear();
    s.append(bytes);
  }
  bool StagedDecodes(const ObjectId& object, uint64_t total) override {
    return staged[object].size() == total && staged[object].empty();
  }
  void DropStaged(const ObjectId& object) override { staged.erase(object); }
  std::map<ObjectId, std::string> staged;
};

// The durable log of a test node: what its Readys persisted (ApplyHardStateUpdate).
class DurableLog : public LogSource {
 public:
  explicit DurableLog(const PersistentState* durable) : durable_(durable) {}
  std::optional<LogEntry> Entry(const ObjectId& object, Slot slot) override {
    ++reads;
    auto o = durable_->find(object);
    if (o == durable_->end()) return std::nullopt;
    auto e = o->second.log.find(slot);
    return e == o->second.log.end() ? std::nullopt : std::optional<LogEntry>(e->second);
  }
  int reads = 0;

 private:
  const PersistentState* durable_;
};

struct TestNode {
  std::unique_ptr<Replica> replica;
  PersistentState durable;
  std::unique_ptr<DurableLog> log;  // set: applied entries leave the replica's memory
  std::vector<CommittedEntry> applied;
  std::vector<Reply> replies;
  std::vector<ReadState> reads;
};

class Cluster {
 public:
  // q2_first = false: every Accept goes to every member at once (schedules that need it).
  // evict: every node has a LogSource over its durable state (applied entries leave memory).
  Cluster(std::vector<int> zone_sizes, QuorumSpec spec, int64_t lease_ms = 0,
          bool q2_first = true, bool evict = false)
      : lease_ms_(lease_ms), q2_first_(q2_first), evict_(evict) {
    NodeId next = 1;
    for (size_t z = 0; z < zone_sizes.size(); ++z) {
      for (int i = 0; i < zone_sizes[z]; ++i) topology_.zone_of[next++] = static_cast<ZoneId>(z);
    }
    spec_ = spec;
    for (const auto& [id, zone] : topology_.zone_of) Start(id);
  }

  void Start(NodeId id, bool forget_promises = false, uint64_t forward_seq_base = 0) {
    ReplicaConfig cfg;
    cfg.id = id;
    cfg.forward_seq_base = forward_seq_base;
    cfg.test_forget_promises_on_restart = forget_promises;
    cfg.topology = topology_;
    cfg.quorum = spec_;
    cfg.snapshot_interval_slots = 1000;
    cfg.lease_ms = lease_ms_;
    cfg.q2_first = q2_first_;
    if (configure_) configure_(cfg);
    TestNode& n = nodes_[id];
    if (evict_) n.log = std::make_unique<DurableLog>(&n.durable);
    n.replica = std::make_unique<Replica>(cfg, n.durable, &snapshots_,
                                          std::make_unique<AccessCountingPolicy>(), id,
                                          n.log.get());
  }

  Replica& R(NodeId id) { return *nodes_[id].replica; }
  // Settings for the nodes started (or restarted) from now on.
  void Configure(std::function<void(ReplicaConfig&)> f) { configure_ = std::move(f); }
  // Every node's monotonic clock reads `mono_ms` (wall clocks are not looked at here).
  void SetClocks(int64_t mono_ms) {
    for (auto& [id, n] : nodes_) n.replica->SetClock(0, mono_ms, true);
  }

  // Runs one node's Ready loop (persist, apply) and returns the messages it would send.
  std::vector<Message> Drain(NodeId id) {
    std::vector<Message> out;
    TestNode& n = nodes_[id];
    while (n.replica->HasReady()) {
      Ready rd = n.replica->TakeReady();
      for (const HardStateUpdate& u : rd.persist) ApplyHardStateUpdate(u, n.durable);
      for (Message& m : rd.messages) out.push_back(std::move(m));
      for (auto& c : rd.committed) n.applied.push_back(c);
      for (auto& r : rd.replies) n.replies.push_back(r);
      for (auto& r : rd.reads) n.reads.push_back(r);
      n.replica->Advance(rd);
    }
    CheckInvariants(id);
    return out;
  }
  // The node's invariants hold after every Ready loop (Replica::CheckInvariants).
  void CheckInvariants(NodeId id) {
    const std::vector<std::string> violations = nodes_[id].replica->CheckInvariants();
    INFO((violations.empty() ? "" : violations.front()));
    REQUIRE(violations.empty());
  }
  // Delivers the messages of `msgs` of `type` addressed to `to`, then drains `to`.
  std::vector<Message> DeliverTo(const std::vector<Message>& msgs, MessageType type, NodeId to) {
    for (const Message& m : msgs) {
      if (m.type == type && m.to == to) nodes_[to].replica->Step(m);
    }
    return Drain(to);
  }
  TestNode& N(NodeId id) { return nodes_[id]; }

  // Runs every node's Ready loop and delivers messages until quiescent.
  void Settle(int ticks = 0) {
    for (int round = 0; round < 10000; ++round) {
      bool any = false;
      for (auto& [id, n] : nodes_) {
        while (n.replica->HasReady()) {
          Ready rd = n.replica->TakeReady();
          for (const HardStateUpdate& u : rd.persist) ApplyHardStateUpdate(u, n.durable);
          for (Message& m : rd.messages) {
            if (watch) watch(m);
            inflight_.push_back(std::move(m));
          }
          for (auto& c : rd.committed) n.applied.push_back(c);
          for (auto& r : rd.replies) n.replies.push_back(r);
          for (auto& r : rd.reads) n.reads.push_back(r);
          n.replica->Advance(rd);
          any = true;
        }
        CheckInvariants(id);
      }
      if (!inflight_.empty()) {
        std::vector<Message> batch;
        batch.swap(inflight_);
        for (const Message& m : batch) {
          if (!unreachable.contains(m.to)) nodes_[m.to].replica->Step(m);
        }
        any = true;
      }
      if (!any) {
        if (ticks-- <= 0) return;
        for (auto& [id, n] : nodes_) n.replica->Tick();
      }
    }
    FAIL("cluster did not settle");
  }

  NoSnapshots snapshots_;
  std::function<void(const Message&)> watch;  // sees every message Settle sends
  std::set<NodeId> unreachable;  // Settle drops the messages to these nodes

 private:
  Topology topology_;
  QuorumSpec spec_;
  int64_t lease_ms_ = 0;
  bool q2_first_ = true;
  bool evict_ = false;
  std::function<void(ReplicaConfig&)> configure_;
  std::map<NodeId, TestNode> nodes_;
  std::vector<Message> inflight_;
};

TEST_CASE("a restarted node's forwards are not taken for duplicates by an owner that kept its "
          "window", "[replica]") {
  // Found by the jepsen runner: after kill -9, every write through the restarted node to a
  // table whose owner had not changed timed out, because its forward numbers started again
  // at 1 and the owner had seen them.
  Cluster c({3}, QuorumSpec{1, 0});
  c.R(1).Propose("t", "put a 1", RequestId{1, 1});
  c.Settle();
  REQUIRE(c.R(1).IsOwner("t"));
  for (uint64_t k = 1; k <= 3; ++k) c.R(2).Propose("t", "put b " + std::to_string(k), RequestId{2, k});
  c.Settle();
  REQUIRE(c.N(2).replies.size() == 3);
  for (const Reply& r : c.N(2).replies) CHECK(r.code == ReplyCode::kOk);
  CHECK(c.R(2).probes().forwards >= 1);

  c.Start(2, false, uint64_t{1} << 32);  // restart; the host passes a larger base
  c.N(2).replies.clear();
  c.Settle(200);  // heartbeats tell it who owns t
  c.R(2).Propose("t", "put c 1", RequestId{2, 100});
  c.Settle(100);
  REQUIRE(c.N(2).replies.size() == 1);
  CHECK(c.N(2).replies[0].code == ReplyCode::kOk);
  CHECK(c.R(1).IsOwner("t"));  // forwarded, not stolen
}

TEST_CASE("a one-node cluster commits every write through its log", "[replica]") {
  Cluster c({1}, QuorumSpec{0, 0});
  c.R(1).Propose("t", "put a 1", RequestId{1, 1});
  c.Settle();
  REQUIRE(c.R(1).IsOwner("t"));
  REQUIRE(c.N(1).applied.size() == 1);
  REQUIRE(c.N(1).applied[0].slot == 1);
  REQUIRE(c.N(1).applied[0].commands[0].data == "put a 1");
  REQUIRE(c.N(1).replies.size() == 1);
  REQUIRE(c.N(1).replies[0].code == ReplyCode::kOk);
  REQUIRE(c.N(1).durable.at("t").commit_index == 1);
}

TEST_CASE("CheckInvariants looks at every object first, then at the objects touched since",
          "[replica]") {
  Cluster c({1}, QuorumSpec{0, 0});
  c.R(1).Propose("a", "x", RequestId{1, 1});
  c.R(1).Propose("b", "y", RequestId{1, 2});
  c.Settle();  // Checks after every Ready loop.
  std::vector<Replica::CheckedObject> checked;
  auto objects = [&checked] {
    std::vector<ObjectId> out;
    for (const auto& [object, hard] : checked) out.push_back(object);
    return out;
  };
  REQUIRE(c.R(1).CheckInvariants(&checked).empty());
  REQUIRE(checked.empty());
  c.R(1).Propose("b", "z", RequestId{1, 3});
  REQUIRE(c.R(1).CheckInvariants(&checked).empty());
  REQUIRE(objects() == std::vector<ObjectId>{"b"});
  REQUIRE(checked[0].second->commit_index == 1);
  c.Settle();
  c.Start(1);  // A restart: the new Replica has never been checked.
  REQUIRE(c.R(1).CheckInvariants(&checked).empty());
  REQUIRE(objects() == std::vector<ObjectId>{"a", "b"});
  REQUIRE(checked[1].second->commit_index == 2);
}

TEST_CASE("the Ready persists the promise and the entry before its messages leave",
          "[replica]") {
  Cluster c({3}, QuorumSpec{1, 0});
  c.R(1).Propose("t", "x", RequestId{1, 1});
  Ready rd = c.R(1).TakeReady();
  // The Prepare went out with our own promise already in persist.
  bool prepare = false;
  for (const Message& m : rd.messages) prepare = prepare || m.type == MessageType::kPrepare;
  REQUIRE(prepare);
  REQUIRE_FALSE(rd.persist.empty());
  REQUIRE(rd.persist[0].promised.node == 1);
  c.R(1).Advance(rd);
}

TEST_CASE("the owner's own promise and acceptance count only once their Ready is durable",
          "[replica]") {
  // One node: its own acks are its whole quorum. Nothing commits before Advance says the
  // Ready holding the promise, then the entry, is on disk (send while persisting).
  Cluster c({1}, QuorumSpec{0, 0});
  c.R(1).Propose("t", "x", RequestId{1, 1});
  Ready promise = c.R(1).TakeReady();
  REQUIRE(promise.persist.size() == 1);
  CHECK(promise.persist[0].must_sync);  // a raised promise
  CHECK(c.R(1).HoldsOwnAcks());
  CHECK_FALSE(c.R(1).IsOwner("t"));  // not elected on a promise that is not on disk
  c.R(1).Advance(promise);
  REQUIRE(c.R(1).IsOwner("t"));
  Ready accept = c.R(1).TakeReady();
  REQUIRE(accept.persist.size() == 1);
  CHECK(accept.persist[0].must_sync);  // a new entry
  CHECK(accept.committed.empty());
  CHECK(c.R(1).CommitIndex("t") == 0);
  c.R(1).Advance(accept);
  Ready commit = c.R(1).TakeReady();
  REQUIRE(commit.committed.size() == 1);
  REQUIRE(commit.replies.size() == 1);
  CHECK(commit.replies[0].code == ReplyCode::kOk);
  REQUIRE(commit.persist.size() == 1);
  CHECK_FALSE(commit.persist[0].must_sync);  // a commit index rests on chosen values
  c.R(1).Advance(commit);
  CHECK_FALSE(c.R(1).HoldsOwnAcks());
}

TEST_CASE("the owner's Accepts may leave before its Ready is durable, its Prepares may not",
          "[replica]") {
  Cluster c({3}, QuorumSpec{1, 0});
  c.R(1).Propose("t", "x", RequestId{1, 1});
  c.Settle();
  REQUIRE(c.R(1).IsOwner("t"));
  c.R(1).Propose("t", "y", RequestId{1, 2});
  Ready rd = c.R(1).TakeReady();
  int accepts = 0;
  for (const Message& m : rd.messages) accepts += m.type == MessageType::kAccept;
  CHECK(accepts == 1);  // to its Q2 peer (node 3 learns a tick later): the host sends it at once
  // Node 2 acks before node 1's own copy is on disk: one ack of a Q2 of two is not enough.
  for (const Message& m : rd.messages) {
    if (m.to == 2) c.N(2).replica->Step(m);
  }
  std::vector<Message> acks = c.Drain(2);
  for (const Message& m : acks) {
    if (m.type == MessageType::kAccepted) c.R(1).Step(m);
  }
  CHECK(c.R(1).CommitIndex("t") == 1);
  c.R(1).Advance(rd);  // now its own acceptance counts: node 1 and node 2 form the Q2
  CHECK(c.R(1).CommitIndex("t") == 2);
}

TEST_CASE("non-owners forward writes and every replica learns them", "[replica]") {
  Cluster c({3, 3}, QuorumSpec{1, 0});
  c.R(1).Propose("t", "a", RequestId{1, 1});
  c.Settle();
  REQUIRE(c.R(1).IsOwner("t"));
  c.R(5).Propose("t", "b", RequestId{5, 1});
  c.Settle(200);  // Heartbeats spread commit indexes; learners catch up.
  REQUIRE(c.R(1).IsOwner("t"));
  REQUIRE(c.N(5).replies.size() == 1);
  REQUIRE(c.N(5).replies[0].code == ReplyCode::kOk);
  for (NodeId id = 1; id <= 6; ++id) {
    INFO("node " << id);
    REQUIRE(c.R(id).CommitIndex("t") == 2);
    REQUIRE(c.N(id).applied.size() == 2);
  }
}

TEST_CASE("a linearizable read is released only after a Q2 confirms the ballot", "[replica]") {
  Cluster c({3}, QuorumSpec{1, 0});
  c.R(1).Propose("t", "a", RequestId{1, 1});
  c.Settle();
  c.R(1).Read("t", RequestId{1, 2});
  Ready rd = c.R(1).TakeReady();
  REQUIRE(rd.reads.empty());  // Confirm round in flight.
  bool confirm = false;
  for (const Message& m : rd.messages) confirm = confirm || m.type == MessageType::kConfirm;
  REQUIRE(confirm);
  c.R(1).Advance(rd);
  for (const Message& m : rd.messages) c.R(m.to).Step(m);
  c.Settle();
  REQUIRE(c.N(1).reads.size() == 1);
  // A read at a non-owner gets the read index from the owner and is served locally.
  c.R(3).Read("t", RequestId{3, 1});
  c.Settle();
  REQUIRE(c.N(3).reads.size() == 1);
}

TEST_CASE("a steal recovers an accepted but uncommitted entry before new writes",
          "[replica]") {
  Cluster c({3}, QuorumSpec{1, 0});
  c.R(1).Propose("t", "a", RequestId{1, 1});
  c.Settle();
  // Node 1 proposes "b"; only node 2 hears the Accept (Q2 = 2 of 3 including node 1 itself,
  // so it is chosen, but node 1 crashes before learning that).
  c.R(1).Propose("t", "b", RequestId{1, 2});
  Ready rd = c.R(1).TakeReady();
  for (const Message& m : rd.messages) {
    if (m.type == MessageType::kAccept && m.to == 2) c.R(2).Step(m);
  }
  // Node 2 persists its accepted entry.
  while (c.R(2).HasReady()) {
    Ready r2 = c.R(2).TakeReady();
    for (const HardStateUpdate& u : r2.persist) ApplyHardStateUpdate(u, c.N(2).durable);
    c.R(2).Advance(r2);
  }
  // Node 3 steals; its Q1 (2 of 3) includes node 2, so "b" must be re-proposed at slot 2.
  c.R(3).Steal("t");
  c.R(3).Propose("t", "c", RequestId{3, 1});
  c.Settle();
  REQUIRE(c.R(3).IsOwner("t"));
  REQUIRE(c.R(3).probes().recovered_uncommitted >= 1);
  const auto& log = c.N(3).applied;
  REQUIRE(log.size() == 3);
  REQUIRE(log[1].commands[0].data == "b");
  REQUIRE(log[2].commands[0].data == "c");
}

TEST_CASE("promises and accepted entries survive a restart", "[replica]") {
  Cluster c({3}, QuorumSpec{1, 0});
  c.R(1).Propose("t", "a", RequestId{1, 1});
  c.Settle();
  const Ballot before = c.R(2).Promised("t");
  REQUIRE_FALSE(before.IsZero());
  c.Start(2);  // Restart from its PersistentState.
  REQUIRE(c.R(2).Promised("t") == before);
  REQUIRE(c.R(2).CommitIndex("t") >= 1);
}

TEST_CASE("Q2 first: an Accept goes to the owner's Q2 at once, to the other members a tick later",
          "[replica]") {
  Cluster c({3}, QuorumSpec{1, 0});  // Q2 = 2 of 3: the owner and one peer
  c.R(1).Propose("t", "x", RequestId{1, 1});
  c.Settle();
  REQUIRE(c.R(1).IsOwner("t"));
  c.R(1).Propose("t", "y", RequestId{1, 2});
  auto accepts_to = [](const std::vector<Message>& ms, NodeId to) {
    int n = 0;
    for (const Message& m : ms) n += m.type == MessageType::kAccept && m.to == to;
    return n;
  };
  std::vector<Message> now = c.Drain(1);
  CHECK(accepts_to(now, 2) == 1);
  CHECK(accepts_to(now, 3) == 0);
  // Node 2's copy is lost. A tick later node 3 gets the Accept, and its ack completes the Q2.
  c.R(1).Tick();
  std::vector<Message> later = c.Drain(1);
  REQUIRE(accepts_to(later, 3) == 1);
  CHECK(accepts_to(later, 2) == 0);
  std::vector<Message> acks = c.DeliverTo(later, MessageType::kAccept, 3);
  c.DeliverTo(acks, MessageType::kAccepted, 1);
  CHECK(c.R(1).CommitIndex("t") == 2);
}

TEST_CASE("writes are batched and pipelined under load", "[replica]") {
  Cluster c({3}, QuorumSpec{1, 0});
  c.R(1).Propose("t", "first", RequestId{1, 1});
  c.Settle();
  for (uint64_t i = 2; i < 500; ++i) c.R(1).Propose("t", "v", RequestId{1, i});
  c.Settle();
  size_t commands = 0;
  for (const CommittedEntry& e : c.N(1).applied) commands += e.commands.size();
  REQUIRE(commands == 499);
  // 498 commands went out in far fewer slots than commands (batching).
  REQUIRE(c.N(1).applied.size() < 100);
}

// The schedule that makes a forgetful acceptor unsafe: node 3 steals with Q1 {3, 2}; node 2
// restarts; the old owner (node 1), cut off from node 3, gets node 2 to accept its lower ballot.
std::pair<std::string, std::string> ForgetfulAcceptorSchedule(bool forget) {
  // Q1 = Q2 = 2 of 3; node 3's Accepts must reach node 2 at once, not its Q2-first peer node 1.
  Cluster c({3}, QuorumSpec{1, 0}, 0, /*q2_first=*/false);
  c.R(1).Propose("t", "a", RequestId{1, 1});
  c.Settle(100);
  REQUIRE(c.R(1).IsOwner("t"));
  c.R(3).Steal("t");
  auto prepares = c.Drain(3);
  auto promises = c.DeliverTo(prepares, MessageType::kPrepare, 2);
  c.DeliverTo(promises, MessageType::kPromise, 3);
  REQUIRE(c.R(3).IsOwner("t"));
  c.Start(2, forget);  // Node 2 crashes and restarts from its durable state.
  c.R(1).Propose("t", "x", RequestId{1, 2});
  auto accepts = c.Drain(1);
  auto acks = c.DeliverTo(accepts, MessageType::kAccept, 2);
  c.DeliverTo(acks, MessageType::kAccepted, 1);
  c.R(3).Propose("t", "y", RequestId{3, 1});
  auto accepts3 = c.Drain(3);
  auto acks3 = c.DeliverTo(accepts3, MessageType::kAccept, 2);
  c.DeliverTo(acks3, MessageType::kAccepted, 3);
  auto value_at_2 = [&](NodeId id) -> std::string {
    for (const CommittedEntry& e : c.N(id).applied) {
      if (e.slot == 2 && !e.commands.empty()) return e.commands[0].data;
    }
    return "";
  };
  return {value_at_2(1), value_at_2(3)};
}

TEST_CASE("an acceptor that forgets its promise on restart lets two values be chosen",
          "[replica]") {
  // With the injected bug, slot 2 is chosen twice: node 1 applies "x", node 3 applies "y"
  // (what the simulator's agreement checker flags). Without it, node 2 rejects node 1.
  auto [bug1, bug3] = ForgetfulAcceptorSchedule(true);
  REQUIRE(bug1 == "x");
  REQUIRE(bug3 == "y");
  auto [ok1, ok3] = ForgetfulAcceptorSchedule(false);
  REQUIRE(ok1 == "");
  REQUIRE(ok3 == "y");
}

TEST_CASE("simultaneous joiners get different node ids allocated inside the decision",
          "[membership]") {
  Cluster c({3}, QuorumSpec{1, 0});
  // Applies node `id`'s committed `atlas.nodes` commands in slot order.
  auto replay = [&](NodeId id, std::vector<std::string>* out) {
    ClusterConfig cfg;
    for (const CommittedEntry& e : c.N(id).applied) {
      if (e.object != kMembershipObject) continue;
      for (const Command& cmd : e.commands) {
        auto r = ApplyMembershipCommand(cfg, cmd.data);
        out->push_back(r.ok() ? *r : std::string(r.status().message()));
      }
    }
    return cfg;
  };
  // Two joins race from different nodes through the `atlas.nodes` log, both expecting epoch
  // 0: the log orders them, the first applies, the second is refused as concurrent.
  c.R(1).Propose(kMembershipObject, EncodeJoin(0, "10.0.0.1:7000", 0), RequestId{1, 1});
  c.R(3).Propose(kMembershipObject, EncodeJoin(1, "10.0.0.2:7000", 0), RequestId{3, 1});
  c.Settle(300);
  std::vector<std::string> first;
  ClusterConfig after_race = replay(1, &first);
  REQUIRE(after_race.epoch == 1);
  REQUIRE(after_race.members.size() == 1);
  REQUIRE(first.size() == 2);
  REQUIRE(first[1] == "membership changed concurrently: epoch is 1, expected 0");
  // The loser retries against the epoch it now sees; a third node races it with the same
  // address (rejected once the retry applied) and both get judged the same way everywhere.
  const std::string loser = after_race.members.begin()->second.address == "10.0.0.1:7000"
                                ? "10.0.0.2:7000"
                                : "10.0.0.1:7000";
  const ZoneId loser_zone = loser == "10.0.0.1:7000" ? 0 : 1;
  c.R(3).Propose(kMembershipObject, EncodeJoin(loser_zone, loser, 1), RequestId{3, 2});
  c.Settle(300);
  c.R(2).Propose(kMembershipObject, EncodeJoin(1, loser, 2), RequestId{2, 1});  // Dup.
  c.Settle(300);
  std::vector<ClusterConfig> configs;
  std::vector<std::vector<std::string>> results;
  for (NodeId id = 1; id <= 3; ++id) {
    std::vector<std::string> out;
    configs.push_back(replay(id, &out));
    results.push_back(out);
  }
  REQUIRE(configs[0].members.size() == 2);
  REQUIRE(configs[0] == configs[1]);
  REQUIRE(configs[1] == configs[2]);
  REQUIRE(results[0] == results[2]);
  NodeId a = configs[0].members.begin()->first, b = configs[0].members.rbegin()->first;
  REQUIRE(a != b);
  // The duplicate address was rejected the same way everywhere.
  int rejected = 0;
  for (const std::string& r : results[0]) rejected += r.find("already node") != std::string::npos;
  REQUIRE(rejected == 1);
  // Fz must leave at least one zone for Q1: rejected without changing the config.
  ClusterConfig cfg = configs[0];
  REQUIRE_FALSE(ApplyMembershipCommand(cfg, EncodeSetQuorum({0, 2}, cfg.epoch)).ok());
  REQUIRE(cfg == configs[0]);
  // A stale expected epoch is refused, the current one applies.
  auto stale = ApplyMembershipCommand(cfg, EncodeSetQuorum({0, 1}, cfg.epoch - 1));
  REQUIRE_FALSE(stale.ok());
  REQUIRE(stale.status().message() ==
          absl::StrCat("membership changed concurrently: epoch is ", cfg.epoch, ", expected ",
                       cfg.epoch - 1));
  REQUIRE(cfg == configs[0]);
  REQUIRE(ApplyMembershipCommand(cfg, EncodeSetQuorum({0, 1}, cfg.epoch)).ok());
  REQUIRE(cfg.epoch == configs[0].epoch + 1);
  ClusterConfig left = configs[0];
  REQUIRE(ApplyMembershipCommand(left, EncodeLeave(a, left.epoch)).ok());
  REQUIRE(left.members.size() == 1);
  REQUIRE_FALSE(ApplyMembershipCommand(left, "leave\t2").ok());  // No expected epoch.
  auto decoded = DecodeClusterConfig(EncodeClusterConfig(cfg));
  REQUIRE(decoded.ok());
  REQUIRE(*decoded == cfg);
}

TEST_CASE("a duplicated forward is proposed only once", "[replica]") {
  Cluster c({3}, QuorumSpec{1, 0});
  c.R(1).Propose("t", "a", RequestId{1, 1});
  c.Settle(100);  // Node 2 learns the owner from commit notices.
  REQUIRE(c.R(2).BelievedOwner("t") == 1);
  c.R(2).Propose("t", "b", RequestId{2, 1});
  Ready rd = c.R(2).TakeReady();
  c.R(2).Advance(rd);
  std::vector<Message> forwards;
  for (const Message& m : rd.messages) {
    if (m.type == MessageType::kForward) forwards.push_back(m);
  }
  REQUIRE(forwards.size() == 1);
  c.R(1).Step(forwards[0]);
  c.R(1).Step(forwards[0]);
  c.Settle(100);
  int copies = 0;
  for (const CommittedEntry& e : c.N(1).applied) {
    for (const Command& cmd : e.commands) copies += cmd.id == RequestId{2, 1} ? 1 : 0;
  }
  REQUIRE(copies == 1);
  REQUIRE(c.N(2).replies.size() == 1);
  REQUIRE(c.N(2).replies[0].code == ReplyCode::kOk);
}

TEST_CASE("a write without a live quorum fails with 'quorum unavailable: <why>'", "[replica]") {
  Topology t;
  t.zone_of = {{1, 0}, {2, 0}, {3, 0}};
  ReplicaConfig cfg;
  cfg.id = 1;
  cfg.topology = t;
  cfg.quorum = QuorumSpec{1, 0};
  cfg.request_timeout_ticks = 50;
  NoSnapshots snaps;
  Replica r(cfg, {}, &snaps, std::make_unique<AccessCountingPolicy>(), 1);
  r.Propose("t", "x", RequestId{1, 1});
  std::vector<Reply> replies;
  for (int i = 0; i < 100; ++i) {
    r.Tick();  // Peers never answer: the steal cannot gather a Q1.
    while (r.HasReady()) {
      Ready rd = r.TakeReady();
      replies.insert(replies.end(), rd.replies.begin(), rd.replies.end());
      r.Advance(rd);
    }
  }
  REQUIRE(replies.size() == 1);
  REQUIRE(replies[0].code == ReplyCode::kQuorumUnavailable);
  REQUIRE_FALSE(replies[0].definite);
  REQUIRE(replies[0].detail.find("quorum unavailable: ") == 0);
  REQUIRE_FALSE(r.QuorumStatus().ok());
}

TEST_CASE("join tokens in atlas.nodes: a join needs an active one and uses it up, expiry is "
          "judged by the entry's stamp, and token changes keep the epoch", "[unit]") {
  ClusterConfig cfg;
  cfg.epoch = 1;
  cfg.next_id = 2;
  cfg.members[1] = Member{1, 0, "10.0.0.1:7000"};
  const std::string a(64, 'a'), b(64, 'b'), c(64, 'c');
  // Without tokens (a cluster created before they were replicated) any join is up to the host.
  REQUIRE(CheckJoinToken(cfg, "", 1000).ok());
  REQUIRE(ApplyMembershipCommand(cfg, EncodeTokenCreate(a, 5000, 1), 1000).value() ==
          a.substr(0, 12));
  REQUIRE(ApplyMembershipCommand(cfg, EncodeTokenCreate(b, 0, 0), 1000).ok());
  REQUIRE(cfg.epoch == 1);  // no new configuration
  REQUIRE(cfg.tokens.at(a).created_ms == 1000);
  REQUIRE_FALSE(ApplyMembershipCommand(cfg, EncodeTokenCreate(a, 0, 0), 1000).ok());  // exists
  // An unknown or missing token admits nobody, now that there are tokens.
  REQUIRE(absl::IsPermissionDenied(CheckJoinToken(cfg, c, 1000)));
  REQUIRE_FALSE(ApplyMembershipCommand(cfg, EncodeJoin(0, "10.0.0.2:7000", 1, c), 1000).ok());
  REQUIRE_FALSE(ApplyMembershipCommand(cfg, EncodeJoin(0, "10.0.0.2:7000", 1), 1000).ok());
  // One use: the first join takes it, the second is refused.
  REQUIRE(ApplyMembershipCommand(cfg, EncodeJoin(0, "10.0.0.2:7000", 1, a), 2000).value() == "2");
  REQUIRE(cfg.tokens.at(a).uses == 1);
  auto used = ApplyMembershipCommand(cfg, EncodeJoin(0, "10.0.0.3:7000", 2, a), 2000);
  REQUIRE(used.status().message() == absl::StrCat("join token ", a.substr(0, 12), " is used up"));
  // Expiry by the stamp: b never expires, a created with 5000 would have.
  REQUIRE(cfg.tokens.at(a).Status(6000) == "used up");
  REQUIRE(ApplyMembershipCommand(cfg, EncodeTokenCreate(c, 5000, 0), 1000).ok());
  REQUIRE(ApplyMembershipCommand(cfg, EncodeJoin(0, "10.0.0.3:7000", 2, c), 4999).ok());
  auto expired = ApplyMembershipCommand(cfg, EncodeJoin(0, "10.0.0.4:7000", 3, c), 5000);
  REQUIRE(expired.status().message() == absl::StrCat("join token ", c.substr(0, 12), " is expired"));
  // Revoked.
  REQUIRE(ApplyMembershipCommand(cfg, EncodeTokenRevoke(b.substr(0, 12)), 7000).ok());
  REQUIRE(absl::IsNotFound(ApplyMembershipCommand(cfg, EncodeTokenRevoke("0123456789ab")).status()));
  REQUIRE(cfg.tokens.at(b).Status(7000) == "revoked");
  REQUIRE_FALSE(ApplyMembershipCommand(cfg, EncodeJoin(0, "10.0.0.4:7000", 3, b), 7000).ok());
  // Tokens survive the snapshot encoding; a config without them (older format) still decodes.
  auto decoded = DecodeClusterConfig(EncodeClusterConfig(cfg));
  REQUIRE(decoded.ok());
  REQUIRE(*decoded == cfg);
  ClusterConfig old = cfg;
  old.tokens.clear();
  REQUIRE(*DecodeClusterConfig(EncodeClusterConfig(old)) == old);
  // Bounded: with the registry full of live tokens, a new one is refused; dead ones make room.
  ClusterConfig full;
  full.epoch = 1;
  full.members[1] = Member{1, 0, "x"};
  for (size_t i = 0; i < kJoinTokensMax; ++i) {
    char hash[65];
    std::snprintf(hash, sizeof hash, "%064zx", i);
    REQUIRE(ApplyMembershipCommand(full, EncodeTokenCreate(hash, 0, 0), 1).ok());
  }
  REQUIRE(absl::IsResourceExhausted(
      ApplyMembershipCommand(full, EncodeTokenCreate(std::string(64, 'f'), 0, 0), 2).status()));
  REQUIRE(ApplyMembershipCommand(full, EncodeTokenRevoke(full.tokens.begin()->second.Id()), 3).ok());
  REQUIRE(ApplyMembershipCommand(full, EncodeTokenCreate(std::string(64, 'f'), 0, 0), 4).ok());
  REQUIRE(full.tokens.size() == kJoinTokensMax);
}

TEST_CASE("the trusted CAs in atlas.nodes: replaced whole, bounded, kept by the snapshot, "
          "no new epoch",
          "[unit]") {
  ClusterConfig cfg;
  cfg.epoch = 3;
  cfg.members[1] = Member{1, 0, "x"};
  REQUIRE(ApplyMembershipCommand(cfg, EncodeTrust({"QUJD", "REVG+/=="})).ok());
  REQUIRE(cfg.trust == std::vector<std::string>{"QUJD", "REVG+/=="});
  REQUIRE(cfg.epoch == 3);  // no quorum depends on it
  REQUIRE(*DecodeClusterConfig(EncodeClusterConfig(cfg)) == cfg);
  REQUIRE(ApplyMembershipCommand(cfg, EncodeTrust({"REVG"})).ok());
  REQUIRE(cfg.trust == std::vector<std::string>{"REVG"});
  // Refused, the list unchanged: none, too many, not base64 (a tab or newline would break the
  // encoding), too long.
  for (const std::vector<std::string>& bad :
       {std::vector<std::string>{}, std::vector<std::string>(kTrustedCasMax + 1, "QQ=="),
        std::vector<std::string>{"a b"}, std::vector<std::string>{"a\nb"},
        std::vector<std::string>{""},
        std::vector<std::string>{std::string(kTrustedCaBytesMax + 1, 'A')}}) {
    REQUIRE_FALSE(ApplyMembershipCommand(cfg, EncodeTrust(bad)).ok());
    REQUIRE(cfg.trust == std::vector<std::string>{"REVG"});
  }
}

TEST_CASE("a learner member takes part in no quorum: joining as one makes no new epoch, "
          "promote makes it a voter in the next one, and no replay changes a later membership",
          "[unit]") {
  ClusterConfig cfg;
  cfg.epoch = 4;
  cfg.next_id = 2;
  cfg.members[1] = Member{1, 0, "a"};
  const std::string join_b = EncodeJoinLearner(0, "b", 4);
  REQUIRE_FALSE(ApplyMembershipCommand(cfg, EncodeJoinLearner(0, "b", 3)).ok());  // stale epoch
  REQUIRE(ApplyMembershipCommand(cfg, join_b).value() == "2");
  REQUIRE(cfg.epoch == 4);
  REQUIRE(cfg.members.at(2).learner);
  REQUIRE(cfg.ToTopology({}).zone_of.size() == 1);  // node 1 alone decides: Q2 = {1}
  REQUIRE(QuorumSystem(cfg.ToTopology({}), cfg.quorum).IsQ2({1}));
  REQUIRE(*DecodeClusterConfig(EncodeClusterConfig(cfg)) == cfg);
  // Same address, same refusal as a join; another learner at the same epoch joins too.
  auto same_address = ApplyMembershipCommand(cfg, EncodeJoinLearner(1, "b", 4));
  REQUIRE(absl::IsAlreadyExists(same_address.status()));
  ClusterConfig two = cfg;
  REQUIRE(ApplyMembershipCommand(two, EncodeJoinLearner(1, "c", 4)).value() == "3");
  // The last voter cannot leave while only a learner would stay.
  REQUIRE_FALSE(ApplyMembershipCommand(cfg, EncodeLeave(1, 4)).ok());
  // A learner leaves like any member: a new epoch (with the same quorums).
  ClusterConfig left = cfg;
  REQUIRE(ApplyMembershipCommand(left, EncodeLeave(2, 4)).ok());
  REQUIRE(left.epoch == 5);
  REQUIRE_FALSE(left.members.contains(2));
  REQUIRE(left.ToTopology({}).zone_of == cfg.ToTopology({}).zone_of);
  // Replayed on a later membership (a joiner catching up the log behind its join answer),
  // nothing applies again: not the join (its address is free now), not the leave.
  const ClusterConfig later = left;
  REQUIRE_FALSE(ApplyMembershipCommand(left, join_b).ok());
  REQUIRE_FALSE(ApplyMembershipCommand(left, EncodeJoin(0, "b", 4)).ok());
  REQUIRE_FALSE(ApplyMembershipCommand(left, EncodeLeave(2, 4)).ok());
  REQUIRE(left == later);
  // Promote: a new epoch, checked like any change; only a learner, only once.
  REQUIRE(absl::IsAlreadyExists(ApplyMembershipCommand(cfg, EncodePromote(1, 4)).status()));
  REQUIRE(absl::IsNotFound(ApplyMembershipCommand(cfg, EncodePromote(9, 4)).status()));
  REQUIRE_FALSE(ApplyMembershipCommand(cfg, EncodePromote(2, 3)).ok());
  REQUIRE(cfg.members.at(2).learner);
  REQUIRE(ApplyMembershipCommand(cfg, EncodePromote(2, 4)).ok());
  REQUIRE(cfg.epoch == 5);
  REQUIRE_FALSE(cfg.members.at(2).learner);
  REQUIRE(cfg.ToTopology({}).zone_of.size() == 2);
  REQUIRE(absl::IsAlreadyExists(ApplyMembershipCommand(cfg, EncodePromote(2, 5)).status()));
  REQUIRE_FALSE(ApplyMembershipCommand(cfg, join_b).ok());  // a replay after the promotion
  // A snapshot without learners reads as before (a release before them reads it too).
  REQUIRE(EncodeClusterConfig(cfg).find("learner") == std::string::npos);
}

}  // namespace
}  // namespace atlas::consensus

namespace atlas::consensus {
namespace {

// At 10 s on every clock, node 1 owns "t" (its first write).
void OwnedByNode1(Cluster& c) {
  c.SetClocks(10'000);
  c.R(1).Propose("t", "put a 1", RequestId{1, 1});
  c.Settle();
  REQUIRE(c.R(1).IsOwner("t"));
}

// ... and holds a read lease from its first read's round.
void LeaseToNode1(Cluster& c) {
  OwnedByNode1(c);
  c.R(1).Read("t", RequestId{1, 2});
  c.Settle();
  REQUIRE(c.R(1).probes().leases_granted == 1);
}

TEST_CASE("an owner read lease answers reads with no round and holds other stealers off until "
          "it ends", "[replica][lease]") {
  // 3 nodes of one zone, Fn=1: Q1 = Q2 = any 2 nodes, so the owner is not in every Q1.
  Cluster c({3}, QuorumSpec{1, 0}, /*lease_ms=*/1000);
  OwnedByNode1(c);
  c.R(1).Read("t", RequestId{1, 2});
  c.Settle();
  CHECK(c.R(1).probes().read_rounds == 1);
  CHECK(c.R(1).probes().leases_granted == 1);
  // The owner counts 1000 ms shortened by the 1% drift bound on both clocks (980 ms) and by
  // the clocks' 1 ms resolution on both sides: 978 ms.
  CHECK(c.R(1).LocalReads("t").until_ms == 10'978);
  CHECK(c.R(1).LocalReads("t").renew_at_ms == 10'489);
  CHECK(c.R(2).LocalReads("t").until_ms == 0);

  c.R(1).Read("t", RequestId{1, 3});
  c.Settle();
  CHECK(c.R(1).probes().read_rounds == 1);
  CHECK(c.R(1).probes().reads_on_lease == 1);

  // Past its middle, a read is still answered at once, and renews the lease in the background.
  c.SetClocks(10'600);
  c.R(1).Read("t", RequestId{1, 4});
  c.Settle();
  CHECK(c.R(1).probes().reads_on_lease == 2);
  CHECK(c.R(1).probes().read_rounds == 2);
  CHECK(c.R(1).LocalReads("t").until_ms == 11'578);
  CHECK(c.N(1).reads.size() == 3);

  // Node 2 steals: both acceptors hold its Prepare while they owe node 1 its lease.
  c.R(2).Steal("t");
  c.Settle(/*ticks=*/500);
  CHECK(c.R(1).IsOwner("t"));
  CHECK_FALSE(c.R(2).IsOwner("t"));
  CHECK(c.R(1).probes().prepares_held + c.R(3).probes().prepares_held >= 2);
  // The owner's own count ends first; the acceptors' at 11'600 on their clocks.
  c.SetClocks(11'590);
  CHECK(c.R(1).LocalReads("t").until_ms == 0);
  c.SetClocks(11'600);
  c.Settle(/*ticks=*/500);
  CHECK(c.R(2).IsOwner("t"));
  CHECK_FALSE(c.R(1).IsOwner("t"));
}

TEST_CASE("an owner elected by a Q1 without the old owner tells it, and the old owner steps "
          "down", "[replica]") {
  // Fn=0: a Q1 is any one node, so node 2 wins with its own promise; nodes 1 and 3 never see
  // its Prepare (as when they held it for a lease that node 2's own acceptor had ended).
  Cluster c({3}, QuorumSpec{0, 0});
  OwnedByNode1(c);
  c.R(2).Steal("t");
  std::vector<Message> others;  // what node 2 sends the other nodes, Prepares left out
  for (int i = 0; i < 10 && !c.R(2).IsOwner("t"); ++i) {
    for (const Message& m : c.Drain(2)) {
      if (m.to == 2) {
        c.R(2).Step(m);
      } else if (m.type != MessageType::kPrepare) {
        others.push_back(m);
      }
    }
  }
  REQUIRE(c.R(2).IsOwner("t"));
  REQUIRE(c.R(1).IsOwner("t"));
  for (const Message& m : c.Drain(2)) others.push_back(m);
  for (const Message& m : others) c.R(m.to).Step(m);
  c.Settle();
  CHECK_FALSE(c.R(1).IsOwner("t"));
  CHECK(c.R(1).BelievedOwner("t") == 2);
  CHECK(c.R(3).BelievedOwner("t") == 2);
}

TEST_CASE("a steal held by a lease completes although the owner keeps confirming reads",
          "[replica][lease]") {
  Cluster c({3}, QuorumSpec{1, 0}, /*lease_ms=*/1000);
  LeaseToNode1(c);
  c.R(2).Steal("t");
  c.Settle(/*ticks=*/500);
  REQUIRE_FALSE(c.R(2).IsOwner("t"));
  // Reads keep coming to node 1: past the middle they ask for a renewal, which the acceptors
  // holding node 2's Prepare refuse...
  uint64_t seq = 3;
  for (int64_t t = 10'600; t <= 10'900; t += 100) {
    c.SetClocks(t);
    c.R(1).Read("t", RequestId{1, seq++});
    c.Settle();
  }
  CHECK(c.R(1).probes().leases_granted == 1);
  // ... and once the grants ended, a new round (node 1's lease is over) cannot win a fresh one
  // before node 2's resend is promised.
  c.SetClocks(11'000);
  c.R(1).Read("t", RequestId{1, seq++});
  c.Settle(/*ticks=*/500);
  CHECK(c.R(1).probes().leases_granted == 1);
  CHECK(c.R(2).IsOwner("t"));
}

TEST_CASE("an acceptor grants no longer a lease than its own setting, and a Confirm carries the "
          "length asked for", "[replica][lease]") {
  Cluster c({3}, QuorumSpec{1, 0}, /*lease_ms=*/1000);
  OwnedByNode1(c);
  Message confirm;
  confirm.type = MessageType::kConfirm;
  confirm.from = 1;
  confirm.to = 2;
  confirm.object = "t";
  confirm.ballot = c.R(2).Promised("t");
  confirm.round = 77;
  confirm.epoch = 1;
  confirm.lease_ms = 5000;  // longer than node 2 would ever wait out after a restart
  c.R(2).Step(confirm);
  std::vector<Message> out = c.Drain(2);
  REQUIRE(out.size() == 1);
  CHECK(out[0].ok);
  CHECK(out[0].lease_ms == 0);
  confirm.lease_ms = 1000;
  c.R(2).Step(confirm);
  out = c.Drain(2);
  REQUIRE(out.size() == 1);
  CHECK(out[0].lease_ms == 1000);
}

TEST_CASE("a restarted acceptor waits out one lease before it promises another node",
          "[replica][lease]") {
  Cluster c({3}, QuorumSpec{1, 0}, /*lease_ms=*/1000);
  LeaseToNode1(c);
  // Nodes 2 and 3 restart and forget the lease they granted node 1.
  c.Start(2);
  c.Start(3);
  c.SetClocks(10'100);
  c.R(3).Steal("t");
  c.Settle(/*ticks=*/500);
  CHECK_FALSE(c.R(3).IsOwner("t"));  // node 2 (and node 3's own acceptor) held the Prepare
  CHECK(c.R(2).probes().prepares_held >= 1);
  c.SetClocks(11'100);  // one lease after the restart
  c.Settle(/*ticks=*/500);
  CHECK(c.R(3).IsOwner("t"));
}

// Replica read leases (docs/consensus.md §Replica read leases): node 1 owns "t" and node 2,
// which read it at 10'100 on its clock, holds a lease.
void HolderLeaseToNode2(Cluster& c) {
  c.Configure([](ReplicaConfig& cfg) {
    cfg.holder_leases = true;
    cfg.lease_reads_everywhere = LeaseReads::kLocal;
    // "put <row> <value>" writes <row>.
    cfg.may_write = [](const Command& command, std::string_view key) {
      return command.data.size() < 4 ||
             std::string_view(command.data).substr(4).starts_with(std::string(key) + " ");
    };
  });
  for (NodeId id : {1, 2, 3}) c.Start(id);
  OwnedByNode1(c);
  c.SetClocks(10'100);
  c.R(2).Read("t", RequestId{2, 1});  // through the owner, asking for a lease on the way
  c.Settle();
  REQUIRE(c.N(2).reads.size() == 1);
  REQUIRE(c.R(1).probes().holders_granted == 1);
}

TEST_CASE("a replica read lease: the holder reads its own replica, and writes wait for its ack "
          "until the lease has ended on the owner's clock", "[replica][lease]") {
  Cluster c({3}, QuorumSpec{1, 0}, /*lease_ms=*/1000);
  HolderLeaseToNode2(c);
  CHECK(c.R(1).LeaseHolders("t") == std::vector<NodeId>{2});
  // Counted from its ask, shortened as the owner's lease is: 978 ms.
  auto lease = c.R(2).HolderLease("t");
  REQUIRE(lease);
  CHECK(lease->second == 11'078);
  CHECK(c.R(2).LocalReads("t").until_ms == 11'078);
  CHECK(c.R(2).LocalReads("t").renew_at_ms == 10'589);
  const uint64_t forwards = c.R(2).probes().forwards;
  c.R(2).Read("t", RequestId{2, 2});
  c.Settle();
  CHECK(c.N(2).reads.size() == 2);
  CHECK(c.R(2).probes().reads_on_holder_lease == 1);
  CHECK(c.R(2).probes().forwards == forwards);

  // Reachable, the holder acks like any acceptor and the write commits at once.
  c.R(1).Propose("t", "put a 2", RequestId{1, 3});
  c.Settle();
  REQUIRE(c.N(1).replies.size() == 2);
  // Cut off, a Q2 (nodes 1 and 3) is not enough until the owner judges its lease over: the
  // grant was recorded at 10'100 on the owner's clock, so at 10'100 + 1000 + 2 ms.
  c.unreachable = {2};
  c.R(1).Propose("t", "put a 3", RequestId{1, 4});
  c.Settle(/*ticks=*/50);
  CHECK(c.N(1).replies.size() == 2);
  CHECK(c.R(1).probes().commits_held_for_holders >= 1);
  c.SetClocks(11'101);
  c.Settle(/*ticks=*/5);
  CHECK(c.N(1).replies.size() == 2);
  CHECK(c.R(2).LocalReads("t").until_ms == 0);  // its own count ended first
  c.SetClocks(11'102);
  c.Settle(/*ticks=*/5);
  REQUIRE(c.N(1).replies.size() == 3);
  CHECK(c.N(1).replies[2].code == ReplyCode::kOk);
  CHECK(c.R(1).LeaseHolders("t").empty());
}

TEST_CASE("a replica read lease holds off every new ballot, the owner's own after a restart too",
          "[replica][lease]") {
  Cluster c({3}, QuorumSpec{1, 0}, /*lease_ms=*/1000);
  HolderLeaseToNode2(c);
  // Node 1 restarts and forgets whom it granted; the acceptors' grants to its old ballot
  // would let its own next ballot through (the owner's lease allows that), but a grant that
  // covered holders binds against every Prepare until 10'100 + 1000 on their clocks.
  c.Start(1);
  c.SetClocks(10'200);
  c.R(1).Propose("t", "put a 2", RequestId{1, 1'000});
  c.Settle(/*ticks=*/500);
  CHECK_FALSE(c.R(1).IsOwner("t"));
  CHECK(c.R(3).probes().prepares_held >= 1);
  c.SetClocks(11'099);
  c.Settle(/*ticks=*/500);
  CHECK_FALSE(c.R(1).IsOwner("t"));
  c.SetClocks(11'100);  // node 2's lease ended at 11'078 on its clock
  c.Settle(/*ticks=*/500);
  CHECK(c.R(1).IsOwner("t"));
}

TEST_CASE("a lease holder's read of a key waits only for the accepted entries that may write "
          "it", "[replica][lease]") {
  Cluster c({3}, QuorumSpec{1, 0}, /*lease_ms=*/1000);
  HolderLeaseToNode2(c);
  // Node 2 accepts "put a 5" and has not learned that it is chosen.
  c.R(1).Propose("t", "put a 5", RequestId{1, 50});
  const std::vector<Message> acks = c.DeliverTo(c.Drain(1), MessageType::kAccept, 2);
  const size_t before = c.N(2).reads.size();
  c.R(2).Read("t", RequestId{2, 51}, "b");  // "put a 5" leaves b alone: answered at once
  c.Drain(2);
  CHECK(c.N(2).reads.size() == before + 1);
  c.R(2).Read("t", RequestId{2, 52}, "a");  // it may be chosen (and acknowledged) already
  c.R(2).Read("t", RequestId{2, 53});       // as may a read of the whole object
  c.Drain(2);
  CHECK(c.N(2).reads.size() == before + 1);
  for (const Message& m : acks) c.R(m.to).Step(m);  // node 2's ack reaches the owner
  c.Settle();  // and the commit reaches node 2
  CHECK(c.N(2).reads.size() == before + 3);
}

TEST_CASE("AUTO read leases: granted where reads outnumber writes four times over, kept while "
          "they do twice, withdrawn when writes dominate", "[replica][lease]") {
  // Both in the whole table and in what the asking member itself reads and writes.
  Cluster c({3}, QuorumSpec{1, 0}, /*lease_ms=*/1000);
  c.Configure([](ReplicaConfig& cfg) {
    cfg.holder_leases = true;
    cfg.lease_reads_everywhere = LeaseReads::kAuto;
  });
  for (NodeId id : {1, 2, 3}) c.Start(id);
  OwnedByNode1(c);
  c.SetClocks(10'100);
  uint64_t seq = 100;
  auto writes = [&](int slots, NodeId via = 1) {
    for (int i = 0; i < slots; ++i) {
      c.R(via).Propose("t", "put w " + std::to_string(i), RequestId{via, ++seq});
      c.Settle();
    }
  };
  auto read = [&](NodeId node) {
    c.R(node).Read("t", RequestId{node, ++seq});
    c.Settle();
  };
  // 20 slots, then a read: refused; the read goes through the owner.
  writes(20);
  read(2);
  CHECK(c.R(1).probes().holders_refused == 1);
  CHECK(c.R(1).probes().holders_granted == 0);
  // 4 s later the writes are forgotten: the next read gets a lease.
  c.SetClocks(15'000);
  for (int i = 0; i < 10; ++i) read(2);
  CHECK(c.R(1).LeaseHolders("t") == std::vector<NodeId>{2});
  CHECK(c.R(2).probes().reads_on_holder_lease == 9);
  // Reads outnumber writes twice: node 2 keeps its lease, node 3 (asking anew) gets none.
  c.SetClocks(15'100);
  writes(5);
  c.SetClocks(15'600);  // past the middle of node 2's lease (until 15'978): it renews
  read(2);
  read(3);
  CHECK(c.R(1).probes().holders_granted == 2);
  CHECK(c.R(1).probes().holders_refused == 2);
  CHECK(c.R(1).LeaseHolders("t") == std::vector<NodeId>{2});
  // Writes dominate: the renewal is refused and the lease lapses.
  writes(60);
  c.SetClocks(16'100);
  read(2);
  CHECK(c.R(1).probes().holders_refused == 3);
  c.SetClocks(16'700);
  c.Settle(/*ticks=*/5);
  CHECK(c.R(1).LeaseHolders("t").empty());
  CHECK_FALSE(c.R(2).HolderLease("t"));
  // A read-mostly table (node 2's renewal reports 61 reads), but node 3 writes more than it
  // reads: node 3 gets no lease.
  c.SetClocks(25'000);
  for (int i = 0; i < 60; ++i) read(2);
  c.SetClocks(25'500);
  read(2);
  writes(10, /*via=*/3);
  read(3);
  CHECK(c.R(1).LeaseHolders("t") == std::vector<NodeId>{2});
  CHECK(c.R(1).probes().holders_refused == 4);
}

TEST_CASE("a member that missed a membership change learns it from a node that change added, "
          "and takes nothing else from it", "[replica][membership]") {
  // Nodes 1 and 2 know only the configuration {1, 2}. Node 5 was added by a change node 1
  // missed (its owner died before telling it): node 5 is the only one left to learn it from.
  Cluster c({2}, QuorumSpec{0, 0});
  auto from = [](NodeId node, MessageType type, const ObjectId& object) {
    Message m;
    m.type = type;
    m.from = node;
    m.to = 1;
    m.object = object;
    m.epoch = 1;
    return m;
  };
  auto catchups_to = [](const std::vector<Message>& out, NodeId to) {
    std::vector<ObjectId> objects;
    for (const Message& m : out) {
      if (m.type == MessageType::kCatchupRequest && m.to == to) objects.push_back(m.object);
    }
    return objects;
  };
  Message hb = from(5, MessageType::kHeartbeat, "");
  hb.epoch = 2;
  hb.commit_indexes = {{kMembershipObject, 3}, {"t", 9}};
  c.R(1).Step(hb);
  // Only the membership object is caught up from the newcomer.
  CHECK(catchups_to(c.Drain(1), 5) == std::vector<ObjectId>{kMembershipObject});
  // Its other messages are ignored like a stranger's: a Prepare gets no Promise, a catch-up
  // response for a table teaches nothing.
  Message prepare = from(5, MessageType::kPrepare, "t");
  prepare.ballot = Ballot{7, 5};
  c.R(1).Step(prepare);
  CHECK(c.Drain(1).empty());
  CHECK(c.R(1).Promised("t") < Ballot{7, 5});
  Message table_tail = from(5, MessageType::kCatchupResponse, "t");
  table_tail.commit_index = 1;
  table_tail.entries.push_back(SlotEntry{1, LogEntry{Ballot{7, 5}, {}}});
  c.R(1).Step(table_tail);
  c.Drain(1);
  CHECK(c.R(1).CommitIndex("t") == 0);
}

TEST_CASE("applied entries leave memory, and a node that lost its log catches up from the "
          "peers' disks", "[replica]") {
  Cluster c({3}, QuorumSpec{1, 0}, /*lease_ms=*/0, /*q2_first=*/true, /*evict=*/true);
  c.R(1).Propose("t", "put a 0", RequestId{1, 1});
  c.Settle();
  REQUIRE(c.R(1).IsOwner("t"));
  for (uint64_t k = 2; k <= 40; ++k) {
    c.R(1).Propose("t", "put a " + std::to_string(k), RequestId{1, k});
    c.Settle();
  }
  REQUIRE(c.N(1).replies.size() == 40);
  c.Settle(50);  // the lazy member (node 3) gets its Accepts
  // Nothing applied stays in memory (no snapshot has truncated the log: it is all on disk).
  for (NodeId id : {1, 2, 3}) {
    INFO("node " << id);
    CHECK(c.R(id).CommitIndex("t") == c.R(1).CommitIndex("t"));
    CHECK(c.R(id).EntriesInMemory("t") <= 1);
    CHECK(c.N(id).durable.at("t").log.size() == c.R(1).CommitIndex("t"));
  }
  // Node 3 loses everything and restarts: it learns every slot by catch-up, which its peers
  // serve from their durable logs.
  c.N(3).durable.clear();
  c.N(3).applied.clear();
  c.Start(3);
  c.Settle(1200);  // a heartbeat cycle (500 ticks) re-announces every commit index
  CHECK(c.R(3).CommitIndex("t") == c.R(1).CommitIndex("t"));
  CHECK(c.N(3).applied.size() == c.N(1).applied.size());
  CHECK(c.N(1).log->reads + c.N(2).log->reads >= static_cast<int>(c.N(1).applied.size()) - 1);
  CHECK(c.R(1).Entry("t", 3) == c.N(1).durable.at("t").log.at(3));
}

TEST_CASE("a node behind on many objects catches them up a few at a time, and Tick visits "
          "only those", "[replica]") {
  // Found joining a node to a cluster of 30,000 tables: every table waiting for one of the
  // catchups_max slots was on Tick's list, so every 5 ms tick visited all of them and the
  // node thread fell minutes behind the clock.
  Cluster c({3}, QuorumSpec{1, 0}, /*lease_ms=*/0, /*q2_first=*/true, /*evict=*/true);
  for (uint64_t k = 1; k <= 40; ++k) {
    c.R(1).Propose("t" + std::to_string(k), "put a " + std::to_string(k), RequestId{1, k});
    c.Settle();
  }
  c.Settle(50);  // the lazy member (node 3) gets its Accepts before it loses them
  c.N(3).durable.clear();
  c.N(3).applied.clear();
  c.Start(3);
  const size_t slots = ReplicaConfig{}.catchups_max;
  auto caught_up = [&] {
    int n = 0;
    for (uint64_t k = 1; k <= 40; ++k) {
      const ObjectId t = "t" + std::to_string(k);
      n += c.R(3).CommitIndex(t) > 0 && c.R(3).CommitIndex(t) == c.R(1).CommitIndex(t);
    }
    return n;
  };
  int first = -1;
  int last = -1;
  for (int t = 0; t < 1200; ++t) {
    c.Settle(1);
    if (c.R(3).CatchupsQueued() > 0) {
      INFO("tick " << t << ", queued " << c.R(3).CatchupsQueued());
      CHECK(c.R(3).ObjectsToTick() <= slots + 1);  // + the membership object's
    }
    const int n = caught_up();
    if (n > 0 && first < 0) first = t;
    if (n == 40 && last < 0) last = t;
  }
  // The full heartbeat told it of all of them at once.
  CHECK(c.R(3).probes().catchups_queued >= 40 - slots - 1);
  // A slot passes to the queue as its object finishes, not at the next tick: the 36 queued
  // objects once took 9 ticks at 4 a tick (about 800 objects a second in the daemon).
  REQUIRE(last >= 0);
  CHECK(last - first <= 1);
  for (uint64_t k = 1; k <= 40; ++k) {
    const ObjectId t = "t" + std::to_string(k);
    INFO(t);
    CHECK(c.R(3).CommitIndex(t) == c.R(1).CommitIndex(t));
  }
  CHECK(c.N(3).applied.size() == c.N(1).applied.size());
}

TEST_CASE("a node that starts empty learns which objects exist from a peer's directory, a "
          "page at a time", "[replica]") {
  // Heartbeats here list 4 objects each, a rolling window as with a million tables: a node
  // joining with only them would hear of 40 objects after 10 heartbeats from each peer.
  Cluster c({3}, QuorumSpec{1, 0}, /*lease_ms=*/0, /*q2_first=*/true, /*evict=*/true);
  c.Configure([](ReplicaConfig& cfg) {
    cfg.heartbeat_objects_max = 4;
    cfg.directory_objects_max = 8;
  });
  for (NodeId id : {1, 2, 3}) c.Start(id);
  c.Settle(5);
  for (NodeId id : {1, 2, 3}) CHECK_FALSE(c.R(id).ScanningDirectory());  // all read one page
  for (uint64_t k = 1; k <= 40; ++k) {
    c.R(1).Propose("t" + std::to_string(k), "put a " + std::to_string(k), RequestId{1, k});
    c.Settle();
  }
  c.Settle(50);
  c.N(3).durable.clear();
  c.N(3).applied.clear();
  c.Start(3);
  CHECK(c.R(3).ScanningDirectory());
  auto caught_up = [&] {
    for (uint64_t k = 1; k <= 40; ++k) {
      const ObjectId t = "t" + std::to_string(k);
      if (c.R(3).CommitIndex(t) != c.R(1).CommitIndex(t)) return false;
    }
    return true;
  };
  const int heartbeat = static_cast<int>(ReplicaConfig{}.heartbeat_ticks);
  int ticks = 0;
  for (; ticks < 20 * heartbeat && !caught_up(); ++ticks) {
    c.Settle(1);
    CHECK(c.R(3).CatchupsQueued() <= 8 + 8);  // a page asked for only once fewer than 8 wait
  }
  INFO("caught up after " << ticks << " ticks");
  CHECK(caught_up());
  // The first page waits for a peer to be heard from (its first heartbeat); then the pages
  // follow each other. Heartbeats alone took 10 of them.
  CHECK(ticks <= 2 * heartbeat);
  CHECK(c.R(3).probes().directory_pages >= 5);
  CHECK_FALSE(c.R(3).ScanningDirectory());
  CHECK(c.N(3).applied.size() == c.N(1).applied.size());
  // A node that starts alone has nobody to ask (it would count as lagging until a peer came).
  Cluster alone({1}, QuorumSpec{0, 0});
  CHECK_FALSE(alone.R(1).ScanningDirectory());
}

TEST_CASE("idle objects rest in a compact form and wake as they were", "[replica]") {
  Cluster c({3}, QuorumSpec{1, 0}, /*lease_ms=*/0, /*q2_first=*/true, /*evict=*/true);
  for (uint64_t k = 1; k <= 30; ++k) {
    c.R(1).Propose("t" + std::to_string(k), "put a " + std::to_string(k), RequestId{1, k});
    c.Settle();
  }
  REQUIRE(c.N(1).replies.size() == 30);
  c.Settle(200);  // a heartbeat takes them off its list; then they rest
  for (NodeId id : {1, 2, 3}) {
    INFO("node " << id);
    CHECK(c.R(id).ObjectsAtRest() == 30);
    CHECK(c.R(id).BytesAtRest() <= 30 * 45);  // what docs/consensus.md says a table takes
  }
  // The console's walk, in slices: every object once, in order, with its owner and commit
  // index, and none of them woken.
  std::vector<std::pair<ObjectId, Replica::ObjectSummary>> seen;
  std::optional<ObjectId> after = "";
  while (after) {
    after = c.R(2).ForEachObject(*after, 7, [&](const ObjectId& o,
                                                const Replica::ObjectSummary& s) {
      seen.emplace_back(o, s);
    });
  }
  CHECK(c.R(2).ObjectsAtRest() == 30);
  CHECK(seen.size() == c.R(2).ObjectCount());
  for (size_t i = 0; i < seen.size(); ++i) {
    INFO(seen[i].first);
    if (i > 0) CHECK(seen[i - 1].first < seen[i].first);
    CHECK(seen[i].second.owner == 1);
    CHECK(seen[i].second.commit_index == c.R(3).CommitIndex(seen[i].first));  // (wakes node 3's)
  }
  // Waking changes nothing: node 1 still owns them, and writes to them commit at once.
  const uint64_t woken = c.R(1).probes().objects_woken;
  CHECK(c.R(1).IsOwner("t7"));
  CHECK(c.R(1).CommitIndex("t7") == c.R(2).CommitIndex("t7"));
  CHECK(c.R(1).probes().objects_woken > woken);
  const uint64_t steals = c.R(1).probes().steals_started;
  c.R(1).Propose("t7", "put a again", RequestId{1, 31});
  c.Settle();
  REQUIRE(c.N(1).replies.size() == 31);
  CHECK(c.N(1).replies.back().code == ReplyCode::kOk);
  CHECK(c.R(1).probes().steals_started == steals);
  // A follower's resting object wakes for a forwarded write.
  c.R(2).Propose("t9", "put b 9", RequestId{2, 1});
  c.Settle();
  REQUIRE(c.N(2).replies.size() == 1);
  CHECK(c.N(2).replies[0].code == ReplyCode::kOk);
  c.Settle(200);
  CHECK(c.R(1).ObjectsAtRest() == 30);
  // A restarted node builds its idle objects at rest: none is held in full on the way.
  c.snapshots_.applied_with = &c.N(3).durable;
  c.Start(3);
  c.snapshots_.applied_with = nullptr;
  CHECK(c.R(3).ObjectsAtRest() == 30);
  CHECK(c.R(3).probes().objects_woken == 0);
  c.Settle(200);
  CHECK(c.R(3).CommitIndex("t9") == c.R(1).CommitIndex("t9"));
}

TEST_CASE("large commands are snapshotted by bytes and leave the log", "[replica]") {
  Cluster c({3}, QuorumSpec{1, 0});
  c.Configure([](ReplicaConfig& cfg) {
    cfg.snapshot_interval_slots = 1000;
    cfg.snapshot_interval_bytes = 1 << 20;
  });
  for (NodeId id : {1, 2, 3}) c.Start(id);
  const std::string value(300'000, 'v');
  for (uint64_t k = 1; k <= 20; ++k) {
    c.R(1).Propose("t", "put a " + value, RequestId{1, k});
    c.Settle();
  }
  REQUIRE(c.N(1).replies.size() == 20);
  c.Settle(50);  // the Accepts waiting for node 3 (lazy) leave, and with them the log's hold
  // 6 MB applied in 20 slots: a snapshot every ~4 of them, and the log keeps what came since
  // the previous one, not 16 slots.
  for (NodeId id : {1, 2, 3}) {
    std::string held;
    for (Slot s = 1; s <= 21; ++s) held += c.R(id).Entry("t", s).has_value() ? "1" : "0";
    INFO("node " << id << " holds " << held);
    CHECK_FALSE(c.R(id).Entry("t", 2).has_value());
  }
  CHECK(c.R(1).Entry("t", 20).has_value());
}

TEST_CASE("idle objects send nothing: heartbeats' digests agree and nothing wakes",
          "[replica]") {
  Cluster c({3}, QuorumSpec{1, 0}, /*lease_ms=*/0, /*q2_first=*/true, /*evict=*/true);
  for (uint64_t k = 1; k <= 30; ++k) {
    c.R(1).Propose("t" + std::to_string(k), "put a " + std::to_string(k), RequestId{1, k});
    c.Settle();
  }
  c.Settle(600);  // they rest, and a full digest has covered each of them since
  std::map<NodeId, uint64_t> woken;
  for (NodeId id : {1, 2, 3}) {
    REQUIRE(c.R(id).ObjectsAtRest() == 30);
    woken[id] = c.R(id).probes().objects_woken;
  }
  // Two more digest cycles (every 10th heartbeat of 50 ticks covers every object): the
  // digests agree, so heartbeats are all that is sent, they name no object, and nothing wakes.
  std::map<MessageType, int> sent;
  size_t objects_named = 0;
  c.watch = [&](const Message& m) {
    ++sent[m.type];
    objects_named += m.commit_indexes.size();
  };
  c.Settle(1000);
  c.watch = nullptr;
  CHECK(sent.size() == 1);
  CHECK(sent[MessageType::kHeartbeat] == 3 * 2 * 20);
  CHECK(objects_named == 0);
  for (NodeId id : {1, 2, 3}) {
    INFO("node " << id);
    CHECK(c.R(id).ObjectsAtRest() == 30);
    CHECK(c.R(id).probes().objects_woken == woken[id]);
    CHECK(c.R(id).probes().digests_differed == 0);
  }
  CHECK(c.R(2).BelievedOwner("t5") == 1);
}

TEST_CASE("a digest that differs repairs a missed commit notice within a cycle", "[replica]") {
  Cluster c({3}, QuorumSpec{1, 0}, /*lease_ms=*/0, /*q2_first=*/true, /*evict=*/true);
  for (uint64_t k = 1; k <= 30; ++k) {
    c.R(1).Propose("t" + std::to_string(k), "put a " + std::to_string(k), RequestId{1, k});
    c.Settle();
  }
  c.Settle(600);
  // Node 3 misses t5's next write: its Accept, its commit notice and the heartbeats that
  // report the new commit index are lost, and nothing is written to t5 again.
  c.unreachable = {3};
  c.R(1).Propose("t5", "put a again", RequestId{1, 31});
  c.Settle(60);
  c.unreachable.clear();
  REQUIRE(c.R(1).CommitIndex("t5") > c.R(3).CommitIndex("t5"));
  // Within one digest cycle (10 heartbeats of 50 ticks) node 3 finds its digest differs from
  // node 1's, asks for the range and learns.
  c.Settle(600);
  CHECK(c.R(3).CommitIndex("t5") == c.R(1).CommitIndex("t5"));
  CHECK(c.R(3).probes().digests_differed + c.R(1).probes().digests_differed > 0);
  CHECK(c.R(3).probes().ranges_received + c.R(1).probes().ranges_received > 0);
}

TEST_CASE("after a membership change idle objects re-anchor a few at a time, and a write "
          "does not wait for them", "[replica][membership]") {
  // Found joining a node to a cluster of 30,000 tables: every owner proposed an anchor for all
  // its tables at once, and a foreground write queued behind them for 1.5 s.
  Cluster c({3}, QuorumSpec{1, 0});
  const uint64_t n = 150;
  for (uint64_t k = 1; k <= n; ++k) {
    c.R(1).Propose("t" + std::to_string(k), "put a " + std::to_string(k), RequestId{1, k});
    c.Settle();
  }
  Topology t;
  for (NodeId id : {1, 2, 3}) t.zone_of[id] = 0;
  for (NodeId id : {1, 2, 3}) c.R(id).SetConfig(2, t, QuorumSpec{1, 0});
  const size_t turns = ReplicaConfig{}.reanchors_max;
  c.Settle();
  CHECK(c.R(1).ReanchorsStarted() <= turns);
  // A write to a table whose anchor is queued behind the others ("t99": objects are listed by
  // name) commits at once, in its anchor's slot.
  REQUIRE(c.R(1).AnchorEpoch("t98") < 2);
  const size_t replies = c.N(1).replies.size();
  c.R(1).Propose("t99", "put b 1", RequestId{1, n + 1});
  c.Settle();
  REQUIRE(c.N(1).replies.size() == replies + 1);
  CHECK(c.N(1).replies.back().code == ReplyCode::kOk);
  CHECK(c.R(1).AnchorEpoch("t99") == 2);
  CHECK(c.R(1).AnchorEpoch("t98") < 2);  // still waiting its turn
  for (uint64_t i = 0; i < n / turns + 10; ++i) {  // a tick gives a turn to each finished one
    c.Settle(1);
    CHECK(c.R(1).ReanchorsStarted() <= turns);
  }
  for (uint64_t k = 1; k <= n; ++k) {
    INFO("t" << k);
    CHECK(c.R(1).AnchorEpoch("t" + std::to_string(k)) == 2);
  }
  CHECK(c.R(1).probes().reanchors_committed >= n);
}

TEST_CASE("after a membership change a table's first write rides in its anchor's slot",
          "[replica][membership]") {
  // Three nodes at epoch 1; epoch 2 keeps them (a new epoch is enough to need anchors).
  Cluster c({3}, QuorumSpec{1, 0});
  Topology t;
  for (NodeId id : {1, 2, 3}) t.zone_of[id] = 0;
  for (NodeId id : {1, 2, 3}) c.R(id).SetConfig(2, t, QuorumSpec{1, 0});
  c.R(1).Propose("t", "put a 1", RequestId{1, 1});
  c.Settle();
  REQUIRE(c.N(1).replies.size() == 1);
  CHECK(c.N(1).replies[0].code == ReplyCode::kOk);
  // One slot holds the anchor and the write (it took two, one commit after the other).
  CHECK(c.R(1).CommitIndex("t") == 1);
  // Every replica applies the write, and never the anchor command.
  for (NodeId id : {1, 2}) {
    INFO("node " << id);
    size_t writes = 0;
    for (const CommittedEntry& e : c.N(id).applied) {
      for (const Command& cmd : e.commands) {
        CHECK(cmd.id.node != kNoNode);
        ++writes;
      }
    }
    CHECK(writes == 1);
  }
}

TEST_CASE("a snapshot that does not decode is refused, and the learner asks again",
          "[replica]") {
  // A peer's bug (or a torn snapshot) must not stop the learner: the host's Decodes check
  // runs before anything is installed, and the transfer starts over.
  Cluster c({3}, QuorumSpec{1, 0});
  auto chunk = [](std::string data) {
    Message m;
    m.type = MessageType::kCatchupResponse;
    m.from = 2;
    m.to = 1;
    m.object = "t";
    m.epoch = 1;
    m.commit_index = 5;
    m.snapshot_slot = 5;
    m.snapshot_total = data.size();
    m.snapshot = std::move(data);
    return m;
  };
  c.R(1).Step(chunk("torn"));  // the test host decodes only empty snapshots
  c.Drain(1);
  CHECK(c.R(1).probes().snapshots_refused == 1);
  CHECK(c.R(1).probes().snapshots_installed == 0);
  CHECK(c.R(1).CommitIndex("t") == 0);
  c.R(1).Step(chunk(""));
  c.Drain(1);
  CHECK(c.R(1).probes().snapshots_installed == 1);
  CHECK(c.R(1).CommitIndex("t") == 5);
}

TEST_CASE("a sender keeps its catch-up within its rate budget, and a request over it waits "
          "instead of being dropped", "[replica]") {
  // A joining node once made each old node read and queue ~750 MB of catch-up it could not
  // send yet; with catchup_bytes_per_tick a sender answers no faster than that.
  constexpr size_t kRate = 1000;
  constexpr size_t kResponse = 2000;
  Cluster c({3}, QuorumSpec{1, 0}, /*lease_ms=*/0, /*q2_first=*/true, /*evict=*/true);
  c.Configure([](ReplicaConfig& cfg) {
    cfg.catchup_bytes_per_tick = kRate;
    cfg.catchup_bytes_max = kResponse;  // a burst of 4: a full budget is 8,000 bytes
  });
  for (NodeId id : {1, 2, 3}) c.Start(id);
  c.Settle(5);
  const std::string value(500, 'v');
  for (uint64_t k = 1; k <= 100; ++k) {
    c.R(1).Propose("t", "put a" + std::to_string(k) + " " + value, RequestId{1, k});
    c.Settle();
  }
  c.Settle(50);
  c.N(3).durable.clear();
  c.N(3).applied.clear();
  c.Start(3);
  std::map<NodeId, size_t> sent;  // catch-up bytes by sender
  c.watch = [&](const Message& m) {
    if (m.type != MessageType::kCatchupResponse) return;
    for (const SlotEntry& e : m.entries) {
      for (const Command& cmd : e.entry.value) sent[m.from] += cmd.data.size();
    }
  };
  int first = -1;
  int done = -1;
  for (int t = 1; t <= 600 && done < 0; ++t) {
    c.Settle(1);
    if (first < 0 && !sent.empty()) first = t;  // the tick the first answer left in
    for (const auto& [from, bytes] : sent) {
      INFO("tick " << t << ", node " << from);
      // A full budget, the refill, and one response over it (the budget goes into debt).
      CHECK(bytes <= 4 * kResponse + kRate * (t - first) + kResponse + 600);
    }
    if (c.R(3).CommitIndex("t") == c.R(1).CommitIndex("t")) done = t;
  }
  // ~51 KB at 1,000 bytes a tick, the first 8,000 at once: ~45 ticks. A request dropped over
  // the budget would wait for the learner's retry (200 ticks here) instead.
  REQUIRE(done > 0);
  CHECK(done - first <= 60);
  CHECK(c.R(1).probes().catchups_throttled + c.R(2).probes().catchups_throttled > 0);
  CHECK(c.N(3).applied.size() == c.N(1).applied.size());
}

TEST_CASE("a learner with a backlog of received messages asks for no more catch-up until it "
          "is under its limit", "[replica]") {
  Cluster c({3}, QuorumSpec{1, 0}, /*lease_ms=*/0, /*q2_first=*/true, /*evict=*/true);
  c.Configure([](ReplicaConfig& cfg) { cfg.catchup_backlog_max = 1000; });
  for (NodeId id : {1, 2, 3}) c.Start(id);
  c.Settle(5);
  for (uint64_t k = 1; k <= 20; ++k) {
    c.R(1).Propose("t", "put a" + std::to_string(k) + " 1", RequestId{1, k});
    c.Settle();
  }
  c.Settle(50);
  c.N(3).durable.clear();
  c.N(3).applied.clear();
  c.Start(3);
  c.R(3).SetInboundBacklog(5000);  // its host has 5,000 bytes of messages queued
  c.Settle(600);                   // it hears of "t" (directory, heartbeats) and holds back
  CHECK(c.R(3).CommitIndex("t") == 0);
  CHECK(c.R(3).probes().catchups_held > 0);
  c.R(3).SetInboundBacklog(1000);  // at the limit: it asks again
  c.Settle(100);
  CHECK(c.R(3).CommitIndex("t") == c.R(1).CommitIndex("t"));
  CHECK(c.N(3).applied.size() == c.N(1).applied.size());
}

}  // namespace
}  // namespace atlas::consensus

TEST_CASE("a stored object holds its state or its encoding, in place when short", "[replica]") {
  using atlas::consensus::internal::ObjectState;
  using atlas::consensus::internal::StoredObject;
  std::vector<StoredObject> v(3);
  v[0].Wake(std::make_unique<ObjectState>()).hard.commit_index = 7;
  v[1].Rest(std::string(47, 'a'));   // in place
  v[2].Rest(std::string(300, 'b'));  // on the heap
  v.resize(100);  // moves them
  REQUIRE(v[0].state() != nullptr);
  CHECK(v[0].state()->hard.commit_index == 7);
  CHECK(v[0].at_rest().empty());
  CHECK(v[1].state() == nullptr);
  CHECK(v[1].at_rest() == std::string(47, 'a'));
  CHECK(v[2].at_rest() == std::string(300, 'b'));
  v[2].Wake(std::make_unique<ObjectState>());
  CHECK(v[2].at_rest().empty());
  v[0].Rest("xyz");
  CHECK(v[0].state() == nullptr);
  CHECK(v[0].at_rest() == "xyz");
}
