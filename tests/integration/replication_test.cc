// Three node loops, each with its own RocksDB and gRPC/mutual-TLS transport, in one
// process: writes commit through a quorum, every replica converges, non-owners read
// linearizably, and a surviving quorum takes over a dead owner's table.
#include <future>
#include <memory>
#include <thread>

#include <catch2/catch.hpp>

#include "atlasd/node/node_loop.h"
#include "atlasd/peer_transport.h"
#include "tests/integration/test_pki.h"
#include "tests/unit/replicator_sync.h"
#include "tests/unit/temp_dir.h"

using atlas::ApplyResult;
using atlas::NodeLoop;
using atlas::PeerTransport;
using atlas::proto::Command;
using atlas::testing::ProposeSync;
using atlas::testing::ReadBarrierSync;
constexpr auto Put = atlas::testing::PutCommand;

namespace {

struct Node {
  atlas::testing::TempDir dir;
  std::unique_ptr<atlas::storage::Store> store;
  std::unique_ptr<PeerTransport> transport;
  std::unique_ptr<NodeLoop> replicator;

  void Stop() {
    if (replicator) replicator->Shutdown();
    if (transport) transport->Shutdown();
    replicator.reset();
    transport.reset();
  }
  std::optional<std::string> Value(const std::string& t, const std::string& row) {
    auto rec = store->GetRow(t, row);
    REQUIRE(rec.ok());
    if (!rec->has_value()) return std::nullopt;
    return *store->ReadValue(t, row, **rec);
  }
};

class Cluster {
 public:
  explicit Cluster(int n) {
    pki_.MakeCa("ca");
    // Every node starts from the same membership, as if all had joined already.
    atlas::consensus::ClusterConfig membership;
    membership.epoch = 1;
    membership.next_id = static_cast<uint32_t>(n + 1);
    membership.quorum = {1, 0};  // one zone of three: Q1 = Q2 = 2 nodes
    for (int i = 1; i <= n; ++i) {
      const auto id = static_cast<uint32_t>(i);
      membership.members[id] = {id, 1, "127.0.0.1:0 local n" + std::to_string(i)};
    }
    nodes_.resize(static_cast<size_t>(n));
    for (int i = 1; i <= n; ++i) {
      Node& node = nodes_[static_cast<size_t>(i - 1)];
      auto store = atlas::storage::Store::Open(node.dir.path(), {});
      REQUIRE(store.ok());
      node.store = std::move(*store);
      atlas::PeerTransportOptions t;
      t.self = static_cast<uint32_t>(i);
      t.listen = "127.0.0.1:0";
      t.tls = pki_.Node("ca", static_cast<uint32_t>(i));
      Node* np = &node;
      node.transport = std::make_unique<PeerTransport>(t, [np](std::vector<atlas::consensus::Message> ms) {
        if (np->replicator) np->replicator->Deliver(std::move(ms));
      });
      REQUIRE(node.transport->Start().ok());
      atlas::NodeLoopOptions o;
      o.host.node_id = static_cast<uint32_t>(i);
      o.host.membership = membership;
      PeerTransport* tp = node.transport.get();
      o.send = [tp](std::vector<atlas::consensus::Message> ms) { tp->Send(std::move(ms)); };
      auto r = NodeLoop::Start(node.store.get(), o);
      REQUIRE(r.ok());
      node.replicator = std::move(*r);
    }
    for (auto& a : nodes_) {
      for (size_t j = 0; j < nodes_.size(); ++j) {
        if (&a == &nodes_[j]) continue;
        a.transport->SetPeer(static_cast<uint32_t>(j + 1),
                             "127.0.0.1:" + std::to_string(nodes_[j].transport->bound_port()));
      }
    }
  }
  ~Cluster() {
    for (auto& n : nodes_) n.Stop();
  }
  Node& operator[](int id) { return nodes_[static_cast<size_t>(id - 1)]; }

 private:
  atlas::testing::Pki pki_;
  std::vector<Node> nodes_;
};




bool Eventually(const std::function<bool()>& pred, int ms = 10000) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
  while (std::chrono::steady_clock::now() < deadline) {
    if (pred()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return pred();
}

}  // namespace

TEST_CASE("three nodes over mutual TLS: commit, converge, linearizable reads anywhere") {
  Cluster c(3);
  for (int i = 0; i < 50; ++i) {
    ApplyResult r = ProposeSync(*c[1].replicator, Put("users", "u" + std::to_string(i), "v"));
    INFO(r.error);
    REQUIRE(r.ok);
  }
  // Every replica applies every committed write (learners catch up asynchronously).
  for (int id : {1, 2, 3}) {
    CHECK(Eventually([&] { return c[id].Value("users", "u49") == std::string("v"); }));
  }
  // A write sent to a non-owner is forwarded (or the table stolen) and commits.
  ApplyResult r2 = ProposeSync(*c[2].replicator, Put("users", "from2", "x"));
  INFO(r2.error);
  REQUIRE(r2.ok);
  // A read at node 3 after the write was acknowledged sees it.
  REQUIRE(ReadBarrierSync(*c[3].replicator, "users").ok());
  CHECK(c[3].Value("users", "from2") == std::string("x"));
}

TEST_CASE("when the owner dies, the surviving quorum steals the table and keeps writing") {
  Cluster c(3);
  REQUIRE(ProposeSync(*c[1].replicator, Put("orders", "a", "1")).ok);
  c[1].Stop();
  auto t0 = std::chrono::steady_clock::now();
  ApplyResult r;
  r.ok = false;
  for (int attempt = 0; attempt < 5 && !r.ok; ++attempt) {
    r = ProposeSync(*c[2].replicator, Put("orders", "b", "2"));
  }
  INFO(r.error);
  REQUIRE(r.ok);
  auto took = std::chrono::steady_clock::now() - t0;
  CHECK(took < std::chrono::seconds(30));
  WARN("write accepted by the new owner "
       << std::chrono::duration_cast<std::chrono::milliseconds>(took).count()
       << " ms after the old owner died");
  // Nothing acknowledged before is lost.
  REQUIRE(ReadBarrierSync(*c[3].replicator, "orders").ok());
  CHECK(c[3].Value("orders", "a") == std::string("1"));
  CHECK(c[3].Value("orders", "b") == std::string("2"));
}
