#include "tests/sim/simulator.h"

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <functional>
#include <memory>
#include <optional>
#include <set>
#include <sstream>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "atlasd/node/node_host.h"
#include "consensus/check.h"
#include "consensus/membership.h"
#include "consensus/random.h"
#include "proto/command.pb.h"
#include "proto/peer_convert.h"
#include "spdlog/spdlog.h"
#include "storage/keys.h"
#include "storage/paxos_state.h"
#include "storage/store.h"
#include "tests/sim/linearizability.h"

namespace atlas::sim {

using consensus::Ballot;
using consensus::ClusterConfig;
using consensus::kMembershipObject;
using consensus::Message;
using consensus::NodeId;
using consensus::ObjectId;
using consensus::PersistentState;
using consensus::Ready;
using consensus::Replica;
using consensus::RequestId;
using consensus::Rng;
using consensus::Slot;
using consensus::Snapshot;
using consensus::ZoneId;

namespace {

// Built-in copy of shared/wan/rtt-5zones.csv (WPaxos authors' performance model).
constexpr char kRtt5Zones[] =
    "zone,va,or,ca,ir,jp\n"
    "va,0,86,65,80,156\n"
    "or,86,0,28,154,131\n"
    "ca,65,28,0,137,115\n"
    "ir,80,154,137,0,218\n"
    "jp,156,131,115,218,0\n";

class SimIO;

// One simulated node: the daemon's NodeHost over an in-memory store. The store outlives the
// host: a crash destroys the host (and whatever it had not committed) and CrashMemStore drops
// what was committed without sync; a restart loads the rest, as atlasd does from RocksDB.
// A slot's value (its commands with their ids and owner stamps) as one number, for the
// agreement checks: replicas that apply or commit a slot must hold the same value.
uint64_t ValueHash(const std::vector<consensus::Command>& commands) {
  uint64_t value = 0xcbf29ce484222325ULL;  // FNV-1a, with a separator after each field.
  auto mix = [&value](const std::string& bytes) {
    for (unsigned char ch : bytes) value = (value ^ ch) * 0x100000001b3ULL;
    value = (value ^ 0xff) * 0x100000001b3ULL;
  };
  for (const consensus::Command& c : commands) {
    mix(c.id.ToString());
    mix(c.data);
    mix(std::to_string(c.stamp_ms));
  }
  return value;
}

struct SimNode {
  NodeId id = 0;
  ZoneId zone = 0;
  bool up = false;
  bool stopped = false;  // Removed from the cluster and its removal settled: gone for good.
  // What the node starts from while its store holds no membership: the initial configuration,
  // or for a joiner the configuration (and the one before it) its join was answered with.
  ClusterConfig start_config;
  ClusterConfig start_previous;
  int incarnation = 0;
  std::unique_ptr<storage::Store> store;
  std::unique_ptr<SimIO> io;
  std::unique_ptr<NodeHost> host;
  // Kept across incarnations only by the bug switch.
  std::shared_ptr<MetaCache> meta_cache, row_cache;
  // The durable hard state as the core asked for it (updates applied once their Ready was
  // committed): promises must never go back, and a restart must load the same promises.
  PersistentState durable;
  std::vector<consensus::HardStateUpdate> unsynced;  // the Readies written since the last sync
  std::vector<std::pair<std::pair<ObjectId, Slot>, uint64_t>> applying;  // ... their entries
  bool sent_promise = false;  // a Promise left since the last "ready-after-send" point
  const char* crash_point = nullptr;                 // why HostIO::Crash stopped the host
  // Objects this incarnation owns by its Ready::ownership events; must match IsOwner.
  std::set<ObjectId> owned;
  // What CheckInvariants saw last of each object (durable values: the checks run after a
  // complete Ready loop), kept across restarts: promise and commit index only grow.
  struct Shadow {
    Ballot promised;
    consensus::Slot commit_index = 0;
  };
  absl::flat_hash_map<ObjectId, Shadow> shadows;  // Only looked up: order never matters.
};

// The second half of a read-modify-write: what its read found.
struct CasStep {
  ObjectId object;
  std::string row;
  std::string expected;  // the value read ("" = absent)
  uint64_t revision = 0;  // the row's revision read with it (0 = absent)
};

struct ClientState {
  int index = 0;
  NodeId node = 0;
  ZoneId zone = 0;
  bool busy = false;
  int op = -1;  // Index into history.
  uint64_t counter = 0;
  int64_t invoke_us = 0;
  std::optional<CasStep> cas;  // a read-modify-write's read returned: its compare-and-set next
};

enum class EventKind {
  kDeliver, kTick, kClient, kCrash, kRestart, kPartition, kHeal, kEndChaos, kEndWarmup, kStealProbe,
  kStealStorm, kMembership, kSync
};

struct Event {
  EventKind kind = EventKind::kTick;
  Message msg;
  int target = 0;  // Node id or client index.
  int incarnation = 0;  // kSync: of the node that asked for it
};

class Simulation {
 public:
  explicit Simulation(const SimOptions& options) : opt_(options), rng_(options.seed) {}

  SimResult Run();

 private:
  void Schedule(int64_t at, Event ev) { events_.emplace(std::make_pair(at, seq_++), std::move(ev)); }
  void Trace(const std::string& line);
  void Setup();
  void StartNode(SimNode& node);
  void CrashNode(SimNode& node, const char* why);
  void StopNode(SimNode& node);
  // Runs the node's Ready loop; a crash point that fired crashes the node.
  void Pump(SimNode& node);
  // What the simulator checks of every Ready, before the host processes it.
  void ObserveReady(SimNode& node, const Ready& rd);
  // HostIO::Crash: whether the node crashes at this point of its Ready loop.
  bool CrashAt(SimNode& node, const char* point);
  void Persisted(SimNode& node);
  // Persist before send: a promise or an acceptance leaves only once it is durable.
  void CheckDurable(const SimNode& node, const Message& m);
  std::string ReadRow(SimNode& node, const std::string& table, const std::string& row);
  // The table's revision and every row on the node, "row=value;" in row order (convergence).
  std::string TableRows(SimNode& node, const std::string& table);
  void CheckWholeTables(SimNode& node);
  // The node's wall clock now (ms), and what the host tells its core (SetClock).
  int64_t WallMs(NodeId id) const;
  // The node's monotonic clock now (ms): simulated time at the node's drift rate (DriftPpm).
  int64_t MonoMs(NodeId id) const;
  int64_t DriftPpm(NodeId id) const;
  // A node was elected for `object` with `ballot`: no other node's read lease may still hold.
  void CheckLeases(const SimNode& node, const ObjectId& object, Ballot ballot);
  // As atlasd's client threads: whether a read of `object` on `node` is answered from its
  // applied state with no barrier (LocalReads), renewing the lease in the background.
  bool LocalRead(SimNode& node, const ObjectId& object);
  void SyncClock(SimNode& node);
  // No committed stamp is ahead of every trusted clock.
  void CheckStamps(const SimNode& node, const consensus::CommittedEntry& e);
  void Send(const Message& msg);
  bool Cut(NodeId a, NodeId b) {
    if (cut_links_.contains({std::min(a, b), std::max(a, b)})) return true;
    for (const SimOptions::LinkCut& c : opt_.link_cuts) {
      if (((c.a == a && c.b == b) || (c.a == b && c.b == a)) && now_ >= c.from_us &&
          now_ < c.until_us) {
        return true;
      }
    }
    return !partition_group_.empty() && partition_group_[a] != partition_group_[b];
  }
  int64_t OneWayUs(NodeId a, NodeId b) const;
  void ClientStep(ClientState& c);
  void CompleteOp(ClientState& c, bool ok, bool known, const std::string& read_value);
  // Adds a client's op to the history; returns its index there.
  int Invoke(ClientState& c, Operation op, const ObjectId& object);
  // A read-modify-write's read: a transaction of KEY BLOB GET + KEY INFO through the log.
  void ProposeRmwRead(SimNode& node, const ObjectId& object, const std::string& row,
                      std::function<ClientState*()> current);
  // Its compare-and-set: KEY SET ... IF REV the revision read.
  void InvokeCas(ClientState& c, SimNode& node);
  void Violation(std::string what);
  // After every Ready loop of `node`: its core's own invariants (Replica::CheckInvariants),
  // then, for the objects it touched, those across steps and nodes (CheckProgress).
  void CheckInvariants(SimNode& node);
  // The promise and the commit index of `object` on `node` never go back, and every slot newly
  // under the commit index holds the one value chosen there (CheckChosen).
  void CheckProgress(SimNode& node, const ObjectId& object,
                     const consensus::ObjectHardState& hard);
  // The first node to commit `slot` fixes its value for every other; that value was accepted
  // (durably) by a Q2 of some configuration.
  void CheckChosen(const SimNode& node, const ObjectId& object, Slot slot,
                   const consensus::LogEntry& entry);
  bool IsQ2InSomeConfig(const consensus::NodeSet& nodes) const;
  void FinalChecks();
  void ConfigApplied(SimNode& node, const ClusterConfig& c, const ClusterConfig& previous);
  friend class SimIO;
  void ProposeMembershipChange(int retries);
  void StopSettledRemovals();
  consensus::Topology TopologyOf(const ClusterConfig& c) const { return c.ToTopology(distance_); }
  bool FinalMember(NodeId id) const { return final_.members.contains(id); }
  std::string PickObject(const ClientState& c);

  SimOptions opt_;
  Rng rng_;
  SimResult result_;
  int64_t now_ = 0;
  uint64_t seq_ = 0;
  bool chaos_ = true;
  std::map<std::pair<int64_t, uint64_t>, Event> events_;
  std::map<NodeId, SimNode> nodes_;
  std::vector<ClientState> clients_;
  std::vector<Operation> history_;
  std::vector<int64_t> history_invoke_us_;
  std::vector<std::string> op_object_;
  uint64_t history_clock_ = 0;
  uint64_t steals_at_warmup_ = 0;
  int64_t steal_probe_start_ = -1;
  std::map<NodeId, int> partition_group_;
  std::set<std::pair<NodeId, NodeId>> cut_links_;  // Partial partition: these links are down.
  std::map<std::pair<ObjectId, Slot>, uint64_t> chosen_;  // Agreement witness: ValueHash.
  std::map<std::pair<ObjectId, Slot>, uint64_t> committed_;  // Value hash, at first commit.
  std::vector<consensus::Replica::CheckedObject> touched_;   // What a step touched.
  std::map<uint64_t, consensus::QuorumSystem> quorums_;      // Of every epoch applied.
  std::vector<ObjectId> objects_;
  std::vector<ZoneId> object_home_;
  consensus::Topology topology_;
  consensus::QuorumSpec quorum_;
  absl::btree_map<std::pair<ZoneId, ZoneId>, int64_t> distance_;  // Every WAN zone pair.
  ClusterConfig initial_;
  ClusterConfig final_;                       // Newest configuration applied anywhere.
  std::map<NodeId, uint64_t> pending_stop_;   // Removed node -> epoch that removed it.
  int membership_proposed_ = 0;
};

void Simulation::Trace(const std::string& line) {
  if (!opt_.trace) return;
  std::string full = absl::StrCat("t=", now_, " ", line);
  for (unsigned char ch : full) result_.trace_hash = (result_.trace_hash ^ ch) * 0x100000001b3ULL;
  result_.trace_hash = (result_.trace_hash ^ '\n') * 0x100000001b3ULL;
  if (opt_.trace_sink) {
    opt_.trace_sink(full);
  } else {
    std::printf("%s\n", full.c_str());
  }
}

void Simulation::Violation(std::string what) {
  Trace("VIOLATION " + what);
  if (result_.violations.size() < 20) result_.violations.push_back(std::move(what));
}

int64_t Simulation::OneWayUs(NodeId a, NodeId b) const {
  const ZoneId za = nodes_.at(a).zone, zb = nodes_.at(b).zone;
  const int64_t rtt = za == zb ? opt_.wan.intra_zone_rtt_us : opt_.wan.rtt_us[za][zb];
  return std::max<int64_t>(rtt / 2, 1);
}

void Simulation::Setup() {
  result_.trace_hash = 0xcbf29ce484222325ULL;
  std::vector<int> sizes = opt_.zone_sizes;
  quorum_ = opt_.quorum;
  if (opt_.randomize_cluster) {
    const int zones = static_cast<int>(rng_.Range(1, std::min<int64_t>(4, opt_.wan.zones.size())));
    sizes.clear();
    int max_size = 1;
    for (int z = 0; z < zones; ++z) {
      sizes.push_back(static_cast<int>(rng_.Range(1, 3)));
      max_size = std::max(max_size, sizes.back());
    }
    quorum_.fz = static_cast<int>(rng_.Range(0, zones - 1));
    quorum_.fn = static_cast<int>(rng_.Range(0, max_size - 1));
    // Randomized configuration (FoundationDB style): tiny windows, batches, queues and
    // snapshot intervals reach paths that default sizes rarely do.
    consensus::ReplicaConfig& b = opt_.base;
    auto pick = [this](std::initializer_list<int64_t> v) {
      return *(v.begin() + rng_.Uniform(v.size()));
    };
    b.window_slots = static_cast<size_t>(pick({1, 2, 8, 32}));
    b.batch_commands_max = static_cast<size_t>(pick({1, 3, 64}));
    b.snapshot_interval_slots = static_cast<consensus::Slot>(pick({4, 16, 64}));
    // Snapshots by bytes (tied to that draw, like the chunks below): with 16 slots, every 64
    // bytes of commands (a few); with 64, every 1 KiB; with 4, by slots only.
    b.snapshot_interval_bytes = b.snapshot_interval_slots == 16   ? 64
                                : b.snapshot_interval_slots == 64 ? 1024
                                                                  : uint64_t{4} << 20;
    b.catchup_entries_max = static_cast<size_t>(pick({16, 128}));
    // Tiny snapshot chunks in half the runs (tied to an existing draw, so every other seed's
    // random stream stays as it was): transfers of many chunks, lost and duplicated ones.
    b.snapshot_chunk_bytes = b.catchup_entries_max == 16 ? 13 : size_t{4} << 20;
    b.forward_window_max = static_cast<size_t>(pick({2, 64, 4096}));
    b.proposals_max = static_cast<size_t>(pick({4, 4096}));
    b.reads_max = static_cast<size_t>(pick({4, 4096}));
    b.resend_ticks = pick({150, 400, 1000});
    b.heartbeat_ticks = pick({20, 50, 200});
    b.peer_timeout_ticks = b.heartbeat_ticks * pick({3, 6});
    b.request_timeout_ticks = pick({1000, 4000});
    b.steal_backoff_ticks = pick({20, 100, 300});
    // The core's other limits: short log tails, narrow reorder slack, few routing attempts,
    // heartbeats that cycle through the objects in small windows, one catch-up at a time.
    b.log_tail_slots = static_cast<consensus::Slot>(pick({2, 16}));
    b.forward_reorder_slack = static_cast<uint64_t>(pick({8, 64}));
    b.route_attempts_max = static_cast<int>(pick({1, 3}));
    b.heartbeat_objects_max = static_cast<size_t>(pick({2, 256}));
    b.heartbeat_full_every = static_cast<uint64_t>(pick({2, 10}));
    b.sweep_steals_max = static_cast<size_t>(pick({1, 2, 8}));
    b.catchup_burst = static_cast<size_t>(pick({1, 4}));
    b.catchups_max = static_cast<size_t>(pick({1, 4}));
    // One re-anchor turn at a time, and one object woken per tick after a membership change,
    // in some runs (tied to existing draws, so every seed's random stream stays as it was).
    b.reanchors_max = b.sweep_steals_max == 1 ? 1 : 4;
    b.config_wakes_per_tick = b.catchup_burst == 1 ? 1 : 256;
    // Two served snapshots at least: with one, learners queue behind one another's transfers
    // (seed 252).
    b.snapshots_served_max = static_cast<size_t>(pick({2, 4}));
    // A sender's catch-up rate limit in a quarter of the runs (tied to existing draws):
    // requests wait for its budget, learners' retries replace them.
    if (b.catchups_max == 1 && b.catchup_burst == 1) {
      b.catchup_bytes_max = 256;
      b.catchup_bytes_per_tick = 16;
    }
    // Slow limits together (1 s resends, 13-byte chunks, one catch-up at a time, lost
    // chunks) need up to ~5 s of quiet for a restarted or joining learner to converge
    // (seeds 2306, 2729, 2758 with --membership): the liveness bound is longer, not gone.
    opt_.quiet_us = std::max<int64_t>(opt_.quiet_us, 6'000'000);
  }
  ATLAS_CHECK(sizes.size() <= opt_.wan.zones.size());
  NodeId next = 1;
  for (size_t z = 0; z < sizes.size(); ++z) {
    for (int i = 0; i < sizes[z]; ++i) {
      SimNode& n = nodes_[next];
      n.id = next;
      n.zone = static_cast<ZoneId>(z);
      topology_.zone_of[next] = n.zone;
      ++next;
    }
    for (size_t w = 0; w < sizes.size(); ++w) {
      topology_.distance[{static_cast<ZoneId>(z), static_cast<ZoneId>(w)}] =
          z == w ? opt_.wan.intra_zone_rtt_us : opt_.wan.rtt_us[z][w];
    }
  }
  result_.cluster = absl::StrCat(
      "zones=", absl::StrJoin(sizes, "/"), " fn=", quorum_.fn, " fz=", quorum_.fz,
      " window=", opt_.base.window_slots, " batch=", opt_.base.batch_commands_max,
      " snap=", opt_.base.snapshot_interval_slots, "/", opt_.base.snapshot_interval_bytes,
      "B fwd_window=", opt_.base.forward_window_max);
  for (int i = 0; i < opt_.objects; ++i) {
    objects_.push_back(absl::StrCat("t", i));
    object_home_.push_back(static_cast<ZoneId>(i % sizes.size()));
  }
  // Joiners may land in any zone of the WAN matrix.
  for (size_t z = 0; z < opt_.wan.zones.size(); ++z) {
    for (size_t w = 0; w < opt_.wan.zones.size(); ++w) {
      distance_[{static_cast<ZoneId>(z), static_cast<ZoneId>(w)}] =
          z == w ? opt_.wan.intra_zone_rtt_us : opt_.wan.rtt_us[z][w];
    }
  }
  // The initial configuration is epoch 1 of `atlas.nodes`.
  initial_.epoch = 1;
  initial_.next_id = next;
  initial_.quorum = quorum_;
  for (auto& [id, node] : nodes_) {
    initial_.members[id] = consensus::Member{id, node.zone, absl::StrCat("n", id)};
  }
  final_ = initial_;
  quorums_.emplace(initial_.epoch, consensus::QuorumSystem(TopologyOf(initial_), quorum_));
  for (auto& [id, node] : nodes_) {
    node.start_config = initial_;
  }
  for (auto& [id, node] : nodes_) StartNode(node);
  // Clients: spread over nodes round-robin (TwoZone: only zones 0 and 1).
  std::vector<NodeId> homes;
  for (const auto& [id, node] : nodes_) {
    if (opt_.workload != Workload::kTwoZone || node.zone <= 1) homes.push_back(id);
  }
  for (int i = 0; i < opt_.clients; ++i) {
    ClientState c;
    c.index = i;
    c.node = opt_.client_nodes.empty() ? homes[i % homes.size()]
                                       : opt_.client_nodes[i % opt_.client_nodes.size()];
    ATLAS_CHECK(nodes_.contains(c.node));
    c.zone = nodes_[c.node].zone;
    clients_.push_back(c);
    Event ev;
    ev.kind = EventKind::kClient;
    ev.target = i;
    Schedule(rng_.Range(0, opt_.think_us) + opt_.tick_us, std::move(ev));
  }
  if (opt_.multi_paxos) {
    for (const ObjectId& object : objects_) nodes_[1].host->Move(object, 1);
    Pump(nodes_[1]);
  }
  Schedule(opt_.tick_us, Event{EventKind::kTick, {}, 0});
  Schedule(opt_.chaos_us, Event{EventKind::kEndChaos, {}, 0});
  if (opt_.warmup_us > 0) Schedule(opt_.warmup_us, Event{EventKind::kEndWarmup, {}, 0});
  if (opt_.steal_probe_us >= 0) Schedule(opt_.steal_probe_us, Event{EventKind::kStealProbe, {}, 0});
  // Fault schedule, drawn up front so it is independent of protocol behaviour.
  if (opt_.faults.crashes) {
    const int crashes = static_cast<int>(rng_.Range(1, 4));
    for (int i = 0; i < crashes; ++i) {
      Event ev;
      ev.kind = EventKind::kCrash;
      ev.target = static_cast<int>(rng_.Range(1, nodes_.size()));
      Schedule(rng_.Range(opt_.chaos_us / 10, opt_.chaos_us * 9 / 10), std::move(ev));
    }
  }
  if (opt_.faults.crash_all) {
    Event ev;
    ev.kind = EventKind::kCrash;
    ev.target = 0;  // Every node.
    Schedule(rng_.Range(opt_.chaos_us / 4, opt_.chaos_us * 3 / 4), std::move(ev));
  }
  if (opt_.faults.steal_storms) {
    const int storms = static_cast<int>(rng_.Range(2, 5));
    for (int i = 0; i < storms; ++i) {
      Schedule(rng_.Range(opt_.chaos_us / 20, opt_.chaos_us * 9 / 10),
               Event{EventKind::kStealStorm, {}, 0});
    }
  }
  if (opt_.faults.membership) {
    const int changes = static_cast<int>(rng_.Range(1, opt_.membership_changes_max));
    for (int i = 0; i < changes; ++i) {
      Event ev;
      ev.kind = EventKind::kMembership;
      ev.target = 40;  // Retries left while nothing is settled.
      Schedule(rng_.Range(opt_.chaos_us / 20, opt_.chaos_us * 8 / 10), std::move(ev));
    }
  }
  if (opt_.faults.partitions) {
    const int parts = static_cast<int>(rng_.Range(1, 3));
    for (int i = 0; i < parts; ++i) {
      const int64_t at = rng_.Range(opt_.chaos_us / 10, opt_.chaos_us * 8 / 10);
      Schedule(at, Event{EventKind::kPartition, {}, 0});
      Schedule(at + rng_.Range(100'000, 600'000), Event{EventKind::kHeal, {}, 0});
    }
  }
}

// The simulated node's world: the simulated network, the membership bookkeeping of the run,
// and crash points drawn from the run's seeded randomness.
class SimIO final : public HostIO {
 public:
  SimIO(Simulation* sim, SimNode* node) : sim_(sim), node_(node) {}
  void Send(std::vector<Message> messages) override {
    for (const Message& m : messages) {
      sim_->CheckDurable(*node_, m);
      node_->sent_promise = node_->sent_promise || (m.type == consensus::MessageType::kPromise && m.ok);
      // Through the wire form and the receiving transport's validation, as in atlasd: a
      // message the core sends but the peers drop as malformed must not pass here.
      proto::PeerMessage wire;
      proto::ToProto(m, &wire);
      absl::StatusOr<Message> received = proto::FromProto(wire, proto::PeerLimits{}, m.from);
      if (!received.ok()) {
        sim_->Violation(absl::StrCat("node ", m.from, " sent a message its peers drop (",
                                     received.status().message(), "): ", m.DebugString()));
        continue;
      }
      sim_->Send(*received);
    }
  }
  void MembershipChanged(const ClusterConfig& current, const ClusterConfig& previous) override {
    sim_->ConfigApplied(*node_, current, previous);
  }
  void TablesChanged(std::vector<std::pair<std::string, uint64_t>>, bool) override {}
  bool Crash(const char* point) override { return sim_->CrashAt(*node_, point); }
  // The fsync takes a while: the node goes on meanwhile (pipelined syncs).
  void RequestSync(bool /*overlap*/) override {
    Event ev;
    ev.kind = EventKind::kSync;
    ev.target = static_cast<int>(node_->id);
    ev.incarnation = node_->incarnation;
    sim_->Schedule(sim_->now_ + sim_->rng_.Range(50, 3'000), std::move(ev));
  }

 private:
  Simulation* sim_;
  SimNode* node_;
};

void Simulation::StartNode(SimNode& node) {
  ATLAS_CHECK(!node.stopped);
  ATLAS_CHECK(opt_.tick_us % 1000 == 0);
  if (!node.store) node.store = storage::NewMemStore();
  NodeHostOptions o;
  o.node_id = node.id;
  o.membership = node.start_config;
  if (node.start_previous.epoch > 0) o.previous_membership = node.start_previous;
  o.quorum = node.start_config.quorum;
  o.distance = distance_;
  o.tick_ms = opt_.tick_us / 1000;
  // As atlasd: request and forward sequence numbers start at the incarnation's start time.
  o.start_wall_us = static_cast<uint64_t>(WallMs(node.id)) * 1000;
  o.may_own = !opt_.untrusted_clocks.contains(node.id) || opt_.bug_ignore_untrusted_clock;
  o.replica_seed = opt_.seed * 7919 + node.id * 131 + static_cast<uint64_t>(node.incarnation);
  consensus::ReplicaConfig cfg = opt_.base;
  cfg.test_forget_promises_on_restart = opt_.bug_forget_promises;
  cfg.test_unsafe_local_reads = opt_.bug_unsafe_reads;
  cfg.test_latest_config_only = opt_.bug_latest_config_only;
  cfg.test_count_own_ack_before_persist = opt_.bug_count_own_ack_before_persist;
  cfg.test_count_lazy_as_acked = opt_.bug_count_lazy_as_acked;
  cfg.test_ack_unsynced_accepts = opt_.bug_ack_unsynced_accepts;
  cfg.test_evict_accepted = opt_.bug_evict_accepted;
  cfg.test_rest_forgets_promise = opt_.bug_rest_forgets_promise;
  cfg.test_rest_without_round_trip = opt_.bug_rest_without_round_trip;
  cfg.test_reports_never_wake = opt_.bug_reports_never_wake;
  cfg.test_digest_without_commit = opt_.bug_digest_without_commit;
  cfg.lease_ms = opt_.read_lease_ms;
  cfg.holder_leases = opt_.holder_leases;
  cfg.lease_reads_everywhere = !opt_.holder_leases ? consensus::LeaseReads::kOff
                               : opt_.auto_reads  ? consensus::LeaseReads::kAuto
                                                  : consensus::LeaseReads::kLocal;
  cfg.test_holder_reads_expired = opt_.bug_holder_reads_expired;
  cfg.test_commit_without_holders = opt_.bug_commit_without_holders;
  cfg.test_holder_reads_skip_accepted = opt_.bug_holder_reads_skip_accepted;
  cfg.clock_drift_ppm = opt_.clock_drift_ppm;  // the bound the core assumes (the bug exceeds it)
  o.replica = cfg;
  o.policy = consensus::AccessCountingPolicy::Options{};
  if (opt_.multi_paxos) o.static_owner = 1;
  o.test_send_before_persist = opt_.bug_send_before_persist;
  o.test_reuse_sequence_numbers = opt_.bug_reuse_sequence_numbers;
  o.test_keep_local_reads = opt_.bug_keep_local_reads;
  o.test_snapshot_unpinned = opt_.bug_snapshot_unpinned;
  o.test_install_without_marker = opt_.bug_install_without_marker;
  // With 13-byte chunks, snapshots install in parts of a few entries, which crashes cut.
  if (opt_.base.snapshot_chunk_bytes < 1024) o.install_part_bytes = 16;
  if (opt_.bug_meta_cache_outlives_crash) {
    if (!node.meta_cache) node.meta_cache = std::make_shared<MetaCache>(kDefaultMetaCacheBytes);
    if (!node.row_cache) node.row_cache = std::make_shared<MetaCache>(kDefaultRowCacheBytes);
    o.test_meta_cache = node.meta_cache;
    o.test_row_cache = node.row_cache;
  }
  node.io = std::make_unique<SimIO>(this, &node);
  node.owned.clear();
  node.unsynced.clear();
  node.applying.clear();
  auto host = NodeHost::Start(node.store.get(), node.io.get(), std::move(o));
  if (!host.ok()) {  // the node stays down
    Violation(absl::StrCat("node ", node.id, " cannot start: ", host.status().message()));
    return;
  }
  node.host = std::move(*host);
  node.host->observe_ready = [this, &node](const Ready& rd) { ObserveReady(node, rd); };
  // The store gives back every promise the core made durable.
  for (const auto& [object, hard] : node.durable) {
    if (node.host->replica().Promised(object) < hard.promised) {
      Violation(absl::StrCat("node ", node.id, " restarted with ", object, " promised ",
                             node.host->replica().Promised(object).ToString(), " < ",
                             hard.promised.ToString(), " persisted"));
    }
  }
  CheckWholeTables(node);
  node.up = true;
  SyncClock(node);
  Trace(absl::StrCat("start node ", node.id, " incarnation ", node.incarnation));
}

// Every write leaves a table with rows whole, state record included (an install writes that
// record last); only an install a restart redoes (its marker still there) may be half done.
void Simulation::CheckWholeTables(SimNode& node) {
  absl::StatusOr<std::vector<std::pair<ObjectId, consensus::Snapshot>>> redone =
      storage::LoadInstalling(*node.store);
  ATLAS_CHECK(redone.ok());
  std::set<std::string> tables;
  std::unique_ptr<storage::Cursor> it = node.store->Scan(storage::Cf::kRows, "", "");
  for (it->Seek(""); it->Valid(); it->Next()) {
    std::string table, row;
    if (storage::DecodeRowKey(it->key(), &table, &row)) tables.insert(table);
  }
  for (const std::string& table : tables) {
    const bool redo = std::any_of(redone->begin(), redone->end(), [&](const auto& r) {
      return r.first == table || r.first.starts_with("@");
    });
    auto state = node.store->Get(storage::Cf::kMeta, storage::TableMetaKey(table, "state"));
    if (!redo && state.ok() && !state->has_value()) {
      Violation(absl::StrCat("node ", node.id, " restarted with rows of table ", table,
                             " but no state record: an install was cut short"));
    }
  }
}

// The node is gone: its host and whatever it had not committed.
void Simulation::StopNode(SimNode& node) {
  AddProbes(result_.probes, node.host->replica().probes());
  node.host.reset();
  node.io.reset();
  node.up = false;
  // What reached the disk of the unsynced writes (by a hash, not a draw: every seed's random
  // stream stays as it was): none, a prefix (a power cut), or all (a killed process).
  const size_t unsynced = storage::UnsyncedMemStoreCommits(*node.store);
  uint64_t h = opt_.seed * 1'000'003 + node.id * 7919 + static_cast<uint64_t>(node.incarnation);
  h = (h ^ (h >> 31)) * 0xbf58476d1ce4e5b9ULL;  // a splitmix64 step: deterministic, well mixed
  h ^= h >> 29;
  const size_t kept = h % 3 == 0 ? 0 : h % 3 == 1 ? (h / 3) % (unsynced + 1) : unsynced;
  storage::CrashMemStore(*node.store, kept);
  if (kept > 0) {  // what is durable now includes the unsynced Readies that were kept
    absl::StatusOr<PersistentState> state = storage::LoadPersistentState(*node.store);
    ATLAS_CHECK(state.ok());
    node.durable = std::move(*state);
  }
  // The store gives back what was synced: a promise no message announced yet, and a commit
  // index (which rests on chosen values) may be older; the slots after it are checked again
  // when committed again. (That no announced promise is lost is checked at restart.)
  for (auto& [object, shadow] : node.shadows) {
    auto d = node.durable.find(object);
    shadow.commit_index = d == node.durable.end() ? 0 : d->second.commit_index;
    shadow.promised = d == node.durable.end() ? Ballot{} : d->second.promised;
  }
  for (ClientState& c : clients_) {
    if (c.node == node.id && c.busy) CompleteOp(c, false, false, "");
  }
}

void Simulation::CrashNode(SimNode& node, const char* why) {
  if (!node.up) return;
  Trace(absl::StrCat("crash node ", node.id, " (", why, ")"));
  StopNode(node);
  ++node.incarnation;
  ++result_.crashes;
  Event ev;
  ev.kind = EventKind::kRestart;
  ev.target = static_cast<int>(node.id);
  // Half the restarts are fast (a process restart, 1-20 ms), so messages sent before the crash
  // can still arrive after it: that is what exposes an acceptor that forgets its promises.
  const int64_t down = rng_.Chance(0.5) ? rng_.Range(1'000, 20'000) : rng_.Range(50'000, 400'000);
  Schedule(now_ + down, std::move(ev));
}

void Simulation::Pump(SimNode& node) {
  if (!node.up) return;
  node.crash_point = nullptr;
  if (!node.host->ProcessReady()) {
    CrashNode(node, node.crash_point);
    return;  // Nothing of the lost Ready happened.
  }
  CheckInvariants(node);
}

void Simulation::CheckInvariants(SimNode& node) {
  for (std::string& v : node.host->CheckInvariants(&touched_)) Violation(std::move(v));
  for (const auto& [object, hard] : touched_) CheckProgress(node, object, *hard);
}

void Simulation::CheckProgress(SimNode& node, const ObjectId& object,
                               const consensus::ObjectHardState& h) {
  SimNode::Shadow& shadow = node.shadows[object];
  if (h.promised == shadow.promised && h.commit_index == shadow.commit_index) return;
  if (opt_.check_promises && h.promised < shadow.promised) {
    Violation(absl::StrCat("promise went backwards on node ", node.id, " object ", object, ": ",
                           shadow.promised.ToString(), " -> ", h.promised.ToString()));
  }
  if (h.commit_index < shadow.commit_index) {
    Violation(absl::StrCat("commit index went backwards on node ", node.id, " object ", object,
                           ": ", shadow.commit_index, " -> ", h.commit_index));
  }
  // The Ready contract: a promise is durable once no Ready waits for a sync.
  // (An object first written unsynced, by learning chosen entries, has no durable record yet:
  // its promise is the zero ballot.)
  auto durable = node.durable.find(object);
  const consensus::Ballot durable_promised =
      durable == node.durable.end() ? consensus::Ballot{} : durable->second.promised;
  if (node.host->unsynced_readies() == 0 && durable_promised != h.promised) {
    Violation(absl::StrCat("node ", node.id, " object ", object,
                           ": promise not persisted after the Ready loop"));
  }
  for (Slot s = std::max(shadow.commit_index, h.truncated_through) + 1; s <= h.commit_index;
       ++s) {
    std::optional<consensus::LogEntry> entry = node.host->replica().Entry(object, s);
    if (!entry) {
      Violation(absl::StrCat("node ", node.id, " committed ", object, "@", s,
                             " without its log entry"));
      continue;
    }
    CheckChosen(node, object, s, *entry);
  }
  // Each step back is reported once.
  shadow.promised = h.promised;
  shadow.commit_index = h.commit_index;
}

void Simulation::CheckChosen(const SimNode& node, const ObjectId& object, Slot slot,
                             const consensus::LogEntry& entry) {
  // The value, not the ballot: a later owner re-proposes a chosen value in its own ballot.
  const uint64_t value = ValueHash(entry.value);
  auto [it, first] = committed_.try_emplace({object, slot}, value);
  if (!first) {
    if (it->second != value) {
      Violation(absl::StrCat("agreement: node ", node.id, " committed another value at ", object,
                             "@", slot));
    }
    return;
  }
  consensus::NodeSet holders;
  for (const auto& [id, n] : nodes_) {
    auto d = n.durable.find(object);
    if (d == n.durable.end()) continue;
    auto e = d->second.log.find(slot);
    if (e != d->second.log.end() ? e->second.value == entry.value
                                 : d->second.truncated_through >= slot) {
      holders.insert(id);
    }
  }
  if (opt_.check_promises && !IsQ2InSomeConfig(holders)) {
    Violation(absl::StrCat("node ", node.id, " committed ", object, "@", slot,
                           " but no Q2 holds the value (held by ", absl::StrJoin(holders, ","),
                           ")"));
  }
}

bool Simulation::IsQ2InSomeConfig(const consensus::NodeSet& nodes) const {
  for (const auto& [epoch, q] : quorums_) {
    if (q.IsQ2(nodes)) return true;
  }
  return false;
}

bool Simulation::CrashAt(SimNode& node, const char* point) {
  const std::string_view p = point;
  if (p == "ready-after-sync") Persisted(node);
  const bool crashes = chaos_ && opt_.faults.crashes;
  bool crash = false;
  if (p == "ready-before-sync") {
    // Between the apply and the fsync: the Ready is lost (the contract makes this safe).
    crash = crashes && !node.unsynced.empty() && rng_.Chance(opt_.crash_before_sync_chance);
    if (crash) node.crash_point = "before fsync";
  } else if (p == "ready-after-send") {
    // Right after a new promise is durable and its reply sent: the moment at which an
    // acceptor that forgot its promises would do the most damage.
    crash = crashes && node.sent_promise && rng_.Chance(0.05);
    node.sent_promise = false;
    if (crash) node.crash_point = "after promise";
  } else if (p == "snapshot-install") {
    // After each part of an install: the marker and some of the tables are written (if the
    // crash keeps them), and the restart must redo the install.
    crash = crashes && rng_.Chance(0.1);
    if (crash) node.crash_point = "installing a snapshot";
  }
  return crash;
}

// The Ready's hard state is durable: check and record it.
void Simulation::Persisted(SimNode& node) {
  for (const consensus::HardStateUpdate& u : node.unsynced) {
    auto it = node.durable.find(u.object);
    if (opt_.check_promises && it != node.durable.end() && u.promised < it->second.promised) {
      Violation(absl::StrCat("promise went backwards on node ", node.id, " object ", u.object,
                             ": ", it->second.promised.ToString(), " -> ",
                             u.promised.ToString()));
    }
    consensus::ApplyHardStateUpdate(u, node.durable);
  }
  node.unsynced.clear();
  // Agreement: what nodes applied durably is one value per slot. (An apply lost with its
  // Ready was never acknowledged, nor necessarily chosen: a one-node cluster decides alone.)
  for (auto& [where, fp] : node.applying) {
    auto [it, inserted] = chosen_.insert({where, fp});
    if (!inserted && it->second != fp) {
      Violation(absl::StrCat("agreement: object ", where.first, " slot ", where.second,
                             " node ", node.id, " applied a different value"));
    }
  }
  node.applying.clear();
}

void Simulation::CheckDurable(const SimNode& node, const Message& m) {
  if (!opt_.check_promises || !m.ok || (m.type != consensus::MessageType::kPromise &&
                m.type != consensus::MessageType::kAccepted)) {
    return;
  }
  auto it = node.durable.find(m.object);
  const bool promised = it != node.durable.end() && !(it->second.promised < m.ballot);
  bool accepted = true;
  for (Slot slot : m.slots) {
    if (!promised || slot <= it->second.commit_index || slot <= it->second.truncated_through) {
      continue;
    }
    // The entry or a later ballot's: an owner that accepted `slot` and steals in the same
    // Ready re-proposes the accepted value in its own ballot (seed 1367 of --random-cluster);
    // its acceptor state still dominates the acceptance it reports.
    // Or the value chosen there, in any ballot: every later ballot proposes that value again (a
    // commit index rests on chosen values and need not be durable).
    auto e = it->second.log.find(slot);
    auto chosen = committed_.find({m.object, slot});
    accepted = accepted && e != it->second.log.end() &&
               (!(e->second.ballot < m.ballot) ||
                (chosen != committed_.end() && chosen->second == ValueHash(e->second.value)));
  }
  if (!promised || !accepted) {
    Violation(absl::StrCat("node ", node.id, " sent before persisting: ", m.DebugString()));
  }
}

void Simulation::ObserveReady(SimNode& node, const Ready& rd) {
  for (const auto& [object, snap] : rd.snapshots) {
    Trace(absl::StrCat("node ", node.id, " install snapshot ", object, "@", snap.slot));
  }
  node.unsynced.insert(node.unsynced.end(), rd.persist.begin(), rd.persist.end());
  for (const consensus::OwnershipEvent& e : rd.ownership) {
    if (e.kind == consensus::OwnershipEventKind::kElected) {
      if (!node.owned.insert(e.object).second) {
        Violation(absl::StrCat("node ", node.id, " elected twice for ", e.object));
      }
      CheckLeases(node, e.object, e.ballot);
    } else if (e.kind == consensus::OwnershipEventKind::kSteppedDown) {
      if (node.owned.erase(e.object) == 0) {
        Violation(absl::StrCat("node ", node.id, " stepped down from ", e.object,
                               " without owning it"));
      }
    }
  }
  for (const consensus::OwnershipEvent& e : rd.ownership) {
    // The events tell the host exactly what it owns (its metrics count them).
    if (node.host->replica().IsOwner(e.object) != node.owned.contains(e.object)) {
      Violation(absl::StrCat("ownership events of node ", node.id, " disagree with IsOwner for ",
                             e.object));
    }
  }
  for (const consensus::CommittedEntry& e : rd.committed) {
    node.applying.push_back({{e.object, e.slot}, ValueHash(e.commands)});
    CheckStamps(node, e);
  }
}

bool Simulation::LocalRead(SimNode& node, const ObjectId& object) {
  switch (node.host->local_reads()->Check(object, MonoMs(node.id))) {
    case LocalReads::Answer::kBarrier:
      return false;
    case LocalReads::Answer::kLocalAndRenew:
      node.host->ReadBarrier(object, "", [](absl::Status) {});
      break;
    case LocalReads::Answer::kLocal:
      break;
  }
  ++result_.local_reads;
  return true;
}

// Judged by real (simulated) time, read on each holder's own clock: a node elected while another
// node's read lease still holds lets that node serve reads that miss the new owner's writes.
// A replica read lease binds every ballot above the one that granted it, the elected node's
// own lease included (docs/consensus.md §Replica read leases).
void Simulation::CheckLeases(const SimNode& node, const ObjectId& object, Ballot ballot) {
  if (!opt_.check_leases) return;
  for (const auto& [id, other] : nodes_) {
    if (!other.up) continue;
    const consensus::Replica& r = other.host->replica();
    for (const bool holder : {false, true}) {
      const char* kind = holder ? "replica read lease" : "read lease";
      if (id == node.id && !holder) continue;
      auto lease = holder ? r.HolderLease(object) : r.OwnerLease(object);
      if (lease && lease->first < ballot && MonoMs(id) < lease->second) {
        Violation(absl::StrCat("node ", node.id, " elected for ", object, " (", ballot.ToString(),
                               ") while node ", id, "'s ", kind, " (", lease->first.ToString(),
                               ") holds for ", lease->second - MonoMs(id), " ms more"));
      }
    }
  }
}

std::string Simulation::TableRows(SimNode& node, const std::string& table) {
  // The table's revision too: WATCH numbers changes by it, so replicas must agree on it.
  absl::StatusOr<storage::TableState> st = node.store->LoadTableState(table);
  std::string out = absl::StrCat("rev=", st.ok() ? st->revision : 0, ";");
  absl::Status s = node.store->ForEachRow(table, "", std::nullopt, [&](std::string_view row) {
    const std::string name(row);
    absl::StrAppend(&out, name, "=", ReadRow(node, table, name), ";");
    return true;
  });
  ATLAS_CHECK(s.ok());
  return out;
}

std::string Simulation::ReadRow(SimNode& node, const std::string& table, const std::string& row) {
  auto record = node.store->GetRow(table, row);
  ATLAS_CHECK(record.ok());
  if (!record->has_value()) return "";
  auto value = node.store->ReadValue(table, row, **record);
  ATLAS_CHECK(value.ok());
  return *value;
}

// The simulated wall clocks start here (unix ms; 2027-01-15).
constexpr int64_t kSimEpochMs = 1'800'000'000'000;

int64_t Simulation::DriftPpm(NodeId id) const {
  if (auto it = opt_.drift_ppm_of.find(id); it != opt_.drift_ppm_of.end()) return it->second;
  const int64_t bound = opt_.bug_drift_beyond_bound ? 900'000 : opt_.clock_drift_ppm;
  if (bound <= 0) return 0;
  // A fixed rate per (seed, node): splitmix64 of both.
  uint64_t z = opt_.seed * 0x9E3779B97F4A7C15ULL + id * 0xBF58476D1CE4E5B9ULL + 1;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  z ^= z >> 31;
  return static_cast<int64_t>(z % static_cast<uint64_t>(2 * bound + 1)) - bound;
}

int64_t Simulation::MonoMs(NodeId id) const {
  return now_ * (1'000'000 + DriftPpm(id)) / 1'000'000 / 1000;
}

int64_t Simulation::WallMs(NodeId id) const {
  auto it = opt_.clock_offsets_ms.find(id);
  return kSimEpochMs + now_ / 1000 + (it == opt_.clock_offsets_ms.end() ? 0 : it->second);
}

// Hands the node the simulated time; the host runs the ticks and timers that fell due.
void Simulation::SyncClock(SimNode& node) {
  const bool trusted = !opt_.untrusted_clocks.contains(node.id);
  node.host->SetTime(MonoMs(node.id), WallMs(node.id),
                     trusted || opt_.bug_ignore_untrusted_clock);
}

void Simulation::CheckStamps(const SimNode& node, const consensus::CommittedEntry& e) {
  int64_t latest = 0;  // the furthest-ahead trusted clock
  for (const auto& [id, n] : nodes_) {
    if (!opt_.untrusted_clocks.contains(id)) latest = std::max(latest, WallMs(id));
  }
  for (const consensus::Command& c : e.commands) {
    if (c.stamp_ms > latest) {
      Violation(absl::StrCat("node ", node.id, " applied ", e.object, " slot ", e.slot,
                             " stamped ", c.stamp_ms - latest,
                             " ms ahead of every trusted clock: an untrusted clock stamped"));
    }
  }
}

void Simulation::Send(const Message& msg) {
  ++result_.messages;
  // What a real receiver would refuse (proto/peer_convert.cc) must never be sent.
  if (!msg.SnapshotFieldsConsistent()) {
    Violation(absl::StrCat("malformed message sent: ", msg.DebugString()));
  }
  const bool cut = Cut(msg.from, msg.to);
  if (cut || (chaos_ && rng_.Chance(opt_.faults.drop))) {
    ++result_.dropped;
    if (opt_.trace) Trace("drop " + msg.DebugString());
    return;
  }
  int copies = chaos_ && rng_.Chance(opt_.faults.duplicate) ? 2 : 1;
  for (int i = 0; i < copies; ++i) {
    int64_t delay = OneWayUs(msg.from, msg.to);
    if (chaos_ && opt_.faults.jitter_us > 0) delay += rng_.Range(0, opt_.faults.jitter_us);
    Event ev;
    ev.kind = EventKind::kDeliver;
    ev.msg = msg;
    Schedule(now_ + delay, std::move(ev));
  }
}

void Simulation::ConfigApplied(SimNode& node, const ClusterConfig& c,
                               const ClusterConfig& previous) {
  if (c.epoch <= final_.epoch) return;
  // The first node to apply this change: act on it cluster-wide.
  ATLAS_CHECK(c.epoch == final_.epoch + 1);
  const ClusterConfig prev = final_;
  final_ = c;
  quorums_.emplace(c.epoch, consensus::QuorumSystem(TopologyOf(c), c.quorum));
  ++result_.membership_applied;
  std::string members;
  for (const auto& [id, m] : c.members) absl::StrAppend(&members, id, ":z", m.zone, " ");
  Trace(absl::StrCat("membership epoch ", c.epoch, " applied first on node ", node.id, ": ",
                     members, "fn=", c.quorum.fn, " fz=", c.quorum.fz));
  for (const auto& [id, m] : c.members) {
    // A learner's node starts once it is promoted, with the promoting configuration.
    if (nodes_.contains(id) || m.learner) continue;
    // A joiner starts empty with the configuration its join was answered with, and the one
    // before it (atlasd's join answer).
    SimNode& j = nodes_[id];
    j.id = id;
    j.zone = m.zone;
    j.start_config = c;
    j.start_previous = previous;
    StartNode(j);
  }
  for (const auto& [id, m] : prev.members) {
    if (!c.members.contains(id)) pending_stop_[id] = c.epoch;
  }
  // The dangerous moment: values chosen in the old configuration only, nodes that have not
  // applied the change yet. Duelling steals right then (the nemesis' concurrent steals).
  if (chaos_) {
    const int storms = static_cast<int>(rng_.Range(1, 2));
    for (int i = 0; i < storms; ++i) {
      Schedule(now_ + rng_.Range(0, 30'000), Event{EventKind::kStealStorm, {}, 0});
    }
  }
}

void Simulation::StopSettledRemovals() {
  for (auto it = pending_stop_.begin(); it != pending_stop_.end();) {
    const auto [victim, epoch] = *it;
    // Some member sees the removing epoch settled (or already moved past it, which it only
    // could after it settled): the removed node is outside every live configuration.
    bool settled = false;
    for (auto& [id, n] : nodes_) {
      if (!n.up || pending_stop_.contains(id)) continue;
      const uint64_t e = n.host->replica().epoch();
      if (e > epoch || (e == epoch && n.host->replica().Settled())) {
        settled = true;
        break;
      }
    }
    if (!settled) {
      ++it;
      continue;
    }
    SimNode& node = nodes_[victim];
    Trace(absl::StrCat("stop removed node ", victim, " (epoch ", epoch, " settled)"));
    if (node.up) StopNode(node);
    node.stopped = true;
    it = pending_stop_.erase(it);
  }
}

void Simulation::ProposeMembershipChange(int retries) {
  if (!chaos_ || membership_proposed_ >= opt_.membership_changes_max) return;
  std::vector<NodeId> ready;
  for (auto& [id, n] : nodes_) {
    if (n.up && n.host->membership().members.contains(id) && n.host->replica().Settled()) {
      ready.push_back(id);
    }
  }
  if (ready.empty()) {
    if (retries > 0) {
      Event ev;
      ev.kind = EventKind::kMembership;
      ev.target = retries - 1;
      Schedule(now_ + 50'000, std::move(ev));
    }
    return;
  }
  SimNode& p = nodes_[ready[rng_.Uniform(ready.size())]];
  const ClusterConfig cur = p.host->membership();
  std::map<ZoneId, int> zone_size;
  std::vector<NodeId> learners;
  for (const auto& [id, m] : cur.members) {
    if (m.learner) {
      learners.push_back(id);
    } else {
      ++zone_size[m.zone];
    }
  }
  int max_size = 1;
  for (const auto& [z, n] : zone_size) max_size = std::max(max_size, n);
  std::string cmd, what;
  // Joins are learners half the time (atlasd's joins where every member reads them), whose
  // node starts once promoted (docs/cluster.md §Learners).
  int kind = static_cast<int>(rng_.Uniform(learners.empty() ? 3 : 4));
  if (kind == 0 && cur.members.size() >= 9) kind = 1;
  if (kind == 1 && cur.members.size() <= 1) kind = 0;
  if (kind == 0) {
    const ZoneId max_zone = zone_size.rbegin()->first;
    const ZoneId zone = static_cast<ZoneId>(
        rng_.Uniform(std::min<uint64_t>(opt_.wan.zones.size(), max_zone + 2)));
    const bool learner = rng_.Uniform(2) == 0;
    cmd = learner ? consensus::EncodeJoinLearner(zone, absl::StrCat("n", cur.next_id), cur.epoch)
                  : consensus::EncodeJoin(zone, absl::StrCat("n", cur.next_id), cur.epoch);
    what = absl::StrCat(learner ? "learner " : "", "join zone ", zone);
  } else if (kind == 3) {
    const NodeId id = learners[rng_.Uniform(learners.size())];
    cmd = consensus::EncodePromote(id, cur.epoch);
    what = absl::StrCat("promote ", id);
  } else if (kind == 1) {
    auto it = cur.members.begin();
    std::advance(it, rng_.Uniform(cur.members.size()));
    cmd = consensus::EncodeLeave(it->first, cur.epoch);
    what = absl::StrCat("leave ", it->first);
  } else {
    consensus::QuorumSpec q;
    q.fn = static_cast<int>(rng_.Range(0, max_size - 1));
    q.fz = static_cast<int>(rng_.Range(0, static_cast<int64_t>(zone_size.size()) - 1));
    cmd = consensus::EncodeSetQuorum(q, cur.epoch);
    what = absl::StrCat("quorum fn=", q.fn, " fz=", q.fz);
  }
  ++membership_proposed_;
  Trace(absl::StrCat("membership: node ", p.id, " proposes ", what, " at epoch ", cur.epoch));
  p.host->ProposeMembership(cmd, [this](absl::StatusOr<NodeHost::MembershipResult> r) {
    // Refused by ApplyMembershipCommand (not merely left unordered).
    if (!r.ok() && !absl::StartsWith(r.status().message(), "membership change not ordered")) {
      ++result_.membership_refused;
    }
  });
  Pump(p);
}

std::string Simulation::PickObject(const ClientState& c) {
  if (opt_.workload == Workload::kLocality && !opt_.locality.empty()) {
    const auto& row = opt_.locality[c.zone % opt_.locality.size()];
    double x = static_cast<double>(rng_.Uniform(1'000'000)) / 1'000'000.0;
    ZoneId home = 0;
    for (size_t h = 0; h < row.size(); ++h) {
      if (x < row[h]) {
        home = static_cast<ZoneId>(h);
        break;
      }
      x -= row[h];
      home = static_cast<ZoneId>(h);
    }
    std::vector<int> candidates;
    for (int i = 0; i < opt_.objects; ++i) {
      if (object_home_[i] == home) candidates.push_back(i);
    }
    if (!candidates.empty()) return objects_[candidates[rng_.Uniform(candidates.size())]];
  }
  return objects_[rng_.Uniform(objects_.size())];
}

void Simulation::ClientStep(ClientState& c) {
  if (!chaos_ || c.busy) return;
  if (nodes_[c.node].stopped) {
    // Its node left the cluster: move to a member, preferably in the same zone.
    NodeId to = 0;
    for (const auto& [id, m] : final_.members) {
      if (!nodes_.contains(id)) continue;
      if (to == 0 || (m.zone == c.zone && nodes_[to].zone != c.zone)) to = id;
    }
    if (to != 0) c.node = to;
  }
  SimNode& node = nodes_[c.node];
  if (!node.up) {
    Event ev;
    ev.kind = EventKind::kClient;
    ev.target = c.index;
    Schedule(now_ + 50'000, std::move(ev));
    return;
  }
  if (c.cas) return InvokeCas(c, node);
  const ObjectId object = PickObject(c);
  Operation op;
  op.key = absl::StrCat(object, "/k", rng_.Uniform(opt_.keys_per_object));
  const size_t ci = static_cast<size_t>(c.index);
  op.is_write = !rng_.Chance(ci < opt_.client_read_fraction.size()
                                 ? opt_.client_read_fraction[ci]
                                 : opt_.read_fraction);
  // A read-modify-write begins with its read (no draw at all unless asked for: seeds replay).
  const bool rmw = op.is_write && opt_.cas_fraction > 0 && rng_.Chance(opt_.cas_fraction);
  if (rmw) op.is_write = false;
  if (op.is_write) op.value = absl::StrCat("c", c.index, "-", ++c.counter);
  if (opt_.trace) {
    Trace(absl::StrCat("invoke client ", c.index, " node ", c.node, " ",
                       rmw ? "rmw-read " : op.is_write ? "put " : "get ", op.key,
                       op.is_write ? "=" : "", op.value));
  }
  const std::string key = op.key;
  const int op_index = Invoke(c, std::move(op), object);
  // As atlasd's node thread: the clock is read after the request arrived, before it is handled
  // (read leases are judged by it).
  SyncClock(node);
  // The client's op, unless the node crashed meanwhile (which completed it as unknown).
  const int index = c.index;
  auto current = [this, index, op_index]() -> ClientState* {
    ClientState& cs = clients_[static_cast<size_t>(index)];
    return cs.busy && cs.op == op_index ? &cs : nullptr;
  };
  const std::string row = key.substr(key.find('/') + 1);
  if (rmw) {
    ProposeRmwRead(node, object, row, current);
  } else if (history_[op_index].is_write) {
    proto::Command cmd;
    cmd.set_table(object);
    cmd.mutable_put()->set_row(row);
    cmd.mutable_put()->set_value(history_[op_index].value);
    node.host->Propose(std::move(cmd), [this, current](ApplyResult r) {
      if (ClientState* cs = current()) CompleteOp(*cs, r.ok, !r.outcome_unknown, "");
    });
  } else if (LocalRead(node, object)) {
    // As atlasd's client threads do: no barrier while the node reads the table locally.
    CompleteOp(c, true, true, ReadRow(node, object, row));
  } else {
    const std::string whole = object + "." + row;
    node.host->ReadBarrier(object, whole, [this, current, id = node.id, object, row](absl::Status s) {
      ClientState* cs = current();
      if (cs == nullptr) return;
      // Linearizable from here: the read runs on the node's applied state, as atlasd's does.
      CompleteOp(*cs, s.ok(), true, s.ok() ? ReadRow(nodes_[id], object, row) : "");
    });
  }
  Pump(node);
}

int Simulation::Invoke(ClientState& c, Operation op, const ObjectId& object) {
  op.client = c.index;
  op.invoke = ++history_clock_;
  op.completed = false;
  c.busy = true;
  c.op = static_cast<int>(history_.size());
  c.invoke_us = now_;
  history_.push_back(std::move(op));
  history_invoke_us_.push_back(now_);
  op_object_.push_back(object);
  ++result_.ops_invoked;
  return c.op;
}

void Simulation::ProposeRmwRead(SimNode& node, const ObjectId& object, const std::string& row,
                                std::function<ClientState*()> current) {
  proto::Command cmd;
  cmd.set_table(object);
  for (proto::Read::Kind kind : {proto::Read::BLOB, proto::Read::INFO}) {
    proto::Command* read = cmd.mutable_txn()->add_ops();
    read->set_table(object);
    read->mutable_read()->set_row(row);
    read->mutable_read()->set_kind(kind);
  }
  node.host->Propose(std::move(cmd), [this, current, object, row](ApplyResult r) {
    ClientState* cs = current();
    if (cs == nullptr) return;
    if (!r.ok || r.reads.size() != 2) return CompleteOp(*cs, false, true, "");  // no read
    const std::string value = r.reads[0].row ? r.reads[0].value : "";
    const uint64_t rev = r.reads[1].row ? r.reads[1].row->revision : 0;
    cs->cas = CasStep{object, row, value, rev};
    CompleteOp(*cs, true, true, value);
  });
}

void Simulation::InvokeCas(ClientState& c, SimNode& node) {
  CasStep step = *std::exchange(c.cas, std::nullopt);
  Operation op;
  op.key = absl::StrCat(step.object, "/", step.row);
  op.is_cas = true;
  op.expected = step.expected;
  op.value = absl::StrCat("c", c.index, "-", ++c.counter);
  if (opt_.trace) {
    Trace(absl::StrCat("invoke client ", c.index, " node ", c.node, " cas ", op.key, " ",
                       step.expected, "@", step.revision, "->", op.value));
  }
  const int index = c.index;
  const int op_index = Invoke(c, op, step.object);
  SyncClock(node);
  proto::Command cmd;
  cmd.set_table(step.object);
  cmd.mutable_put()->set_row(step.row);
  cmd.mutable_put()->set_value(op.value);
  if (!opt_.bug_cas_without_condition) cmd.mutable_put()->set_if_rev(step.revision);
  node.host->Propose(std::move(cmd), [this, index, op_index](ApplyResult r) {
    ClientState& cs = clients_[static_cast<size_t>(index)];
    if (!cs.busy || cs.op != op_index) return;  // its node crashed: completed as unknown
    // A refused condition was judged in log order: the key held something else then.
    const bool refused = !r.ok && !r.outcome_unknown && r.error.starts_with("condition failed");
    if (refused) history_[op_index].cas_applied = false;
    if (refused) ++result_.cas_refused;
    if (r.ok) ++result_.cas_applied;
    CompleteOp(cs, r.ok || refused, !r.outcome_unknown, "");
  });
  Pump(node);
}

void Simulation::CompleteOp(ClientState& c, bool ok, bool known, const std::string& read_value) {
  if (!c.busy) return;
  Operation& op = history_[c.op];
  c.busy = false;
  if (ok) {
    op.completed = true;
    op.ret = ++history_clock_;
    if (!op.is_write && !op.is_cas) op.value = read_value;
    ++result_.ops_ok;
    if (now_ >= opt_.warmup_us) {
      const double ms = static_cast<double>(now_ - c.invoke_us) / 1000.0;
      (op.is_write || op.is_cas ? result_.latency.write_ms : result_.latency.read_ms).push_back(ms);
    }
  } else if (known || (!op.is_write && !op.is_cas)) {
    // Certainly not executed (or a failed read): not part of the history.
    op.key.clear();
    ++result_.ops_failed;
  } else {
    op.completed = false;  // Unknown outcome: may take effect at any later point.
    ++result_.ops_unknown;
  }
  if (opt_.trace) {
    const bool read = !op.is_write && !op.is_cas;
    Trace(absl::StrCat("return client ", c.index, " ", ok ? "ok" : (known ? "failed" : "unknown"),
                       read ? " value=" : "", read ? op.value : "",
                       op.is_cas && !op.cas_applied ? " refused" : ""));
  }
  // A read-modify-write's compare-and-set follows its read at once.
  if (c.cas && !ok) c.cas.reset();
  Event ev;
  ev.kind = EventKind::kClient;
  ev.target = c.index;
  if (opt_.open_loop_interval_us > 0) {
    Schedule(std::max(now_ + 1, c.invoke_us + opt_.open_loop_interval_us), std::move(ev));
  } else {
    Schedule(now_ + 1 + rng_.Range(0, opt_.think_us), std::move(ev));
  }
}

void Simulation::FinalChecks() {
  // Convergence after heal: every replica of the final configuration holds the same committed
  // prefix and the same state (removed nodes are gone, or on their way out).
  std::vector<SimNode*> members;
  for (auto& [id, node] : nodes_) {
    if (!FinalMember(id)) continue;
    if (!node.up) {
      Violation(absl::StrCat("final member ", id, " is not running"));
      return;
    }
    members.push_back(&node);
  }
  if (members.empty()) {
    Violation("no member of the final configuration is running");
    return;
  }
  std::map<ObjectId, bool> seen;
  for (SimNode* node : members) {
    for (const ObjectId& o : node->host->replica().Objects()) seen[o] = true;
  }
  for (const auto& [object, unused] : seen) {
    SimNode& first = *members.front();
    const Slot commit = first.host->replica().CommitIndex(object);
    const auto state = [this, &object](SimNode& node) {
      return object == kMembershipObject ? consensus::EncodeClusterConfig(node.host->membership())
                                         : TableRows(node, object);
    };
    const std::string first_state = state(first);
    for (SimNode* np : members) {
      SimNode& node = *np;
      const NodeId id = node.id;
      const Slot c = node.host->replica().CommitIndex(object);
      const Slot a = node.host->AppliedIndex(object);
      if (c != commit || a != c) {
        Violation(absl::StrCat("replicas did not converge: object ", object, " node ", id,
                               " commit=", c, " applied=", a, " vs node ", first.id,
                               " commit=", commit));
        break;
      }
      if (state(node) != first_state) {
        Violation(absl::StrCat("replicas diverge: object ", object, " node ", id,
                               " state differs from node ", first.id));
        break;
      }
    }
  }
  // Nothing chosen is lost: every slot any node committed is under every replica's commit
  // index.
  for (const auto& [where, unused] : chosen_) {
    for (SimNode* node : members) {
      if (node->host->replica().CommitIndex(where.first) < where.second) {
        Violation(absl::StrCat("slot ", where.first, "@", where.second, " missing on node ",
                               node->id));
        break;
      }
    }
  }
  // The final state is observed by one read per key after everything else: a lost
  // acknowledged write shows up as a linearizability violation.
  std::map<std::string, bool> keys;
  for (const Operation& op : history_) {
    if (!op.key.empty()) keys[op.key] = true;
  }
  std::vector<Operation> ops;
  for (const Operation& op : history_) {
    if (!op.key.empty()) ops.push_back(op);
  }
  SimNode& observer = *members.front();
  for (const auto& [key, unused] : keys) {
    Operation r;
    r.key = key;
    r.is_write = false;
    r.invoke = ++history_clock_;
    r.ret = ++history_clock_;
    r.value = ReadRow(observer, key.substr(0, key.find('/')), key.substr(key.find('/') + 1));
    r.client = -1;
    ops.push_back(r);
  }
  LinearizabilityResult lin = CheckLinearizable(ops);
  if (lin.inconclusive) result_.inconclusive = true;
  if (!lin.ok) {
    Violation("linearizability: " + lin.detail);
    if (opt_.trace) {
      const std::string key = lin.detail.substr(4, lin.detail.find(':') - 4);
      for (const Operation& op : ops) {
        if (op.key != key) continue;
        Trace(absl::StrCat("history ", key, " client ", op.client, " ",
                           op.is_write ? "put " : "get ", op.value, " [", op.invoke, ", ",
                           op.completed ? std::to_string(op.ret) : "?", "]"));
      }
    }
  }
}

SimResult Simulation::Run() {
  Setup();
  const int64_t end_us = opt_.chaos_us + opt_.quiet_us;
  while (!events_.empty()) {
    auto handle = events_.extract(events_.begin());
    now_ = handle.key().first;
    if (now_ > end_us) break;
    Event& ev = handle.mapped();
    switch (ev.kind) {
      case EventKind::kDeliver: {
        auto target = nodes_.find(ev.msg.to);
        if (target == nodes_.end() || !target->second.up) break;
        SimNode& node = target->second;
        const bool cut = Cut(ev.msg.from, ev.msg.to);
        if (cut) break;
        if (opt_.trace) Trace("deliver " + ev.msg.DebugString());
        SyncClock(node);
        node.host->Deliver(ev.msg);
        Pump(node);
        break;
      }
      case EventKind::kTick: {
        for (auto& [id, node] : nodes_) {
          if (!node.up) continue;
          SyncClock(node);  // runs the ticks and timers due
          Pump(node);
        }
        if (!pending_stop_.empty()) StopSettledRemovals();
        if (steal_probe_start_ >= 0 && result_.steal_latency_ms < 0 &&
            nodes_[opt_.steal_probe_node].up &&
            nodes_[opt_.steal_probe_node].host->replica().IsOwner("t0")) {
          result_.steal_latency_ms = static_cast<double>(now_ - steal_probe_start_) / 1000.0;
        }
        Schedule(now_ + opt_.tick_us, Event{EventKind::kTick, {}, 0});
        break;
      }
      case EventKind::kClient:
        ClientStep(clients_[ev.target]);
        break;
      case EventKind::kCrash:
        if (!chaos_) break;
        if (ev.target == 0) {
          for (auto& [id, node] : nodes_) CrashNode(node, "crash all");
        } else {
          CrashNode(nodes_[ev.target], "crash");
        }
        break;
      case EventKind::kSync: {
        SimNode& node = nodes_[ev.target];
        if (!node.up || node.incarnation != ev.incarnation) break;
        absl::StatusOr<uint64_t> through = node.store->Sync();
        ATLAS_CHECK(through.ok());
        node.crash_point = nullptr;
        if (!node.host->Synced(*through)) {
          CrashNode(node, node.crash_point);
          break;
        }
        CheckInvariants(node);
        break;
      }
      case EventKind::kRestart: {
        SimNode& node = nodes_[ev.target];
        if (node.up || node.stopped) break;
        StartNode(node);
        Pump(node);
        break;
      }
      case EventKind::kPartition: {
        if (!chaos_) break;
        partition_group_.clear();
        cut_links_.clear();
        if (rng_.Chance(0.34)) {
          // Partial partition: some links down, the rest up (non-transitive connectivity).
          std::string links;
          for (auto& [a, na] : nodes_) {
            for (auto& [b, nb] : nodes_) {
              if (a < b && rng_.Chance(0.3)) {
                cut_links_.insert({a, b});
                absl::StrAppend(&links, a, "-", b, " ");
              }
            }
          }
          Trace("partial partition, links down: " + links);
          break;
        }
        if (rng_.Chance(0.5)) {
          // Isolate one node.
          const NodeId victim = static_cast<NodeId>(rng_.Range(1, nodes_.size()));
          for (auto& [id, node] : nodes_) partition_group_[id] = id == victim ? 1 : 0;
        } else {
          // Split zones in two random groups.
          std::map<ZoneId, int> side;
          for (auto& [id, node] : nodes_) {
            if (!side.contains(node.zone)) side[node.zone] = static_cast<int>(rng_.Uniform(2));
            partition_group_[id] = side[node.zone];
          }
        }
        std::string groups;
        for (auto& [id, g] : partition_group_) absl::StrAppend(&groups, id, ":", g, " ");
        Trace("partition " + groups);
        break;
      }
      case EventKind::kHeal:
        partition_group_.clear();
        cut_links_.clear();
        Trace("heal");
        break;
      case EventKind::kStealStorm: {
        if (!chaos_) break;
        // Concurrent steals of one object from every zone (duelling proposers, WPaxos §4.2).
        const ObjectId object = objects_[rng_.Uniform(objects_.size())];
        std::map<ZoneId, std::vector<NodeId>> by_zone;
        for (auto& [id, node] : nodes_) {
          if (node.up) by_zone[node.zone].push_back(id);
        }
        std::vector<NodeId> stealers;
        for (auto& [zone, ids] : by_zone) stealers.push_back(ids[rng_.Uniform(ids.size())]);
        Trace(absl::StrCat("steal storm on ", object, " by ", absl::StrJoin(stealers, ",")));
        for (NodeId id : stealers) nodes_[id].host->Move(object, id);
        for (NodeId id : stealers) Pump(nodes_[id]);
        break;
      }
      case EventKind::kEndWarmup: {
        consensus::Probes p = result_.probes;
        for (auto& [id, node] : nodes_) {
          if (node.up) AddProbes(p, node.host->replica().probes());
        }
        steals_at_warmup_ = p.steals_won;
        break;
      }
      case EventKind::kStealProbe: {
        SimNode& node = nodes_[opt_.steal_probe_node];
        if (!node.up) break;
        steal_probe_start_ = now_;
        node.host->Move("t0", node.id);
        Pump(node);
        break;
      }
      case EventKind::kEndChaos: {
        chaos_ = false;
        partition_group_.clear();
        cut_links_.clear();
        Trace("end of chaos: heal all, restart all, clients stop");
        for (auto& [id, node] : nodes_) {
          if (!node.up && !node.stopped) {
            StartNode(node);
            Pump(node);
          }
        }
        break;
      }
      case EventKind::kMembership:
        ProposeMembershipChange(ev.target);
        break;
    }
  }
  now_ = end_us;
  for (ClientState& c : clients_) {
    if (c.busy) CompleteOp(c, false, false, "");
  }
  for (auto& [id, node] : nodes_) {
    if (node.up) AddProbes(result_.probes, node.host->replica().probes());
  }
  for (const auto& [id, m] : final_.members) {
    absl::StrAppend(&result_.final_members, result_.final_members.empty() ? "" : " ", id, ":z",
                    m.zone);
  }
  result_.ownership_changes = result_.probes.steals_won - steals_at_warmup_;
  for (size_t i = 0; i < objects_.size(); ++i) {
    for (auto& [id, node] : nodes_) {
      if (node.up && node.host->replica().IsOwner(objects_[i]) &&
          node.zone == object_home_[i]) {
        ++result_.objects_at_home;
      }
    }
  }
  FinalChecks();
  return result_;
}

}  // namespace

void AddProbes(consensus::Probes& into, const consensus::Probes& from) {
  into.steals_started += from.steals_started;
  into.steals_won += from.steals_won;
  into.steals_preempted += from.steals_preempted;
  into.steal_during_phase2 += from.steal_during_phase2;
  into.recovered_uncommitted += from.recovered_uncommitted;
  into.recovered_noop += from.recovered_noop;
  into.snapshots_installed += from.snapshots_installed;
  into.snapshots_refused += from.snapshots_refused;
  into.installs_resumed += from.installs_resumed;
  into.snapshot_chunks += from.snapshot_chunks;
  into.catchup_entries += from.catchup_entries;
  into.catchups_queued += from.catchups_queued;
  into.catchups_throttled += from.catchups_throttled;
  into.catchups_held += from.catchups_held;
  into.directory_pages += from.directory_pages;
  into.directory_reports += from.directory_reports;
  into.digests_differed += from.digests_differed;
  into.ranges_received += from.ranges_received;
  into.forwards += from.forwards;
  into.forward_rejects += from.forward_rejects;
  into.read_rounds += from.read_rounds;
  into.reads_without_round += from.reads_without_round;
  into.reads_on_lease += from.reads_on_lease;
  into.leases_granted += from.leases_granted;
  into.prepares_held += from.prepares_held;
  into.holders_granted += from.holders_granted;
  into.holders_refused += from.holders_refused;
  into.reads_on_holder_lease += from.reads_on_holder_lease;
  into.commits_held_for_holders += from.commits_held_for_holders;
  into.moves_suggested += from.moves_suggested;
  into.accept_resends += from.accept_resends;
  into.reanchors_committed += from.reanchors_committed;
  into.joint_phase1 += from.joint_phase1;
  into.fence_rejections += from.fence_rejections;
  into.settles_reached += from.settles_reached;
  into.sweeper_steals += from.sweeper_steals;
  into.anchor_acks_deferred += from.anchor_acks_deferred;
  into.lazy_flushes += from.lazy_flushes;
  into.objects_rested += from.objects_rested;
  into.objects_woken += from.objects_woken;
}

bool ParseRttCsv(const std::string& text, WanMatrix& out) {
  out = WanMatrix{};
  for (absl::string_view line : absl::StrSplit(text, '\n', absl::SkipEmpty())) {
    if (line.empty() || line[0] == '#') continue;
    std::vector<std::string> cells = absl::StrSplit(line, ',');
    if (cells[0] == "zone") {
      out.zones.assign(cells.begin() + 1, cells.end());
      continue;
    }
    std::vector<int64_t> row;
    for (size_t i = 1; i < cells.size(); ++i) {
      row.push_back(static_cast<int64_t>(std::stod(cells[i]) * 1000.0));
    }
    out.rtt_us.push_back(row);
  }
  if (out.zones.empty() || out.rtt_us.size() != out.zones.size()) return false;
  for (const auto& row : out.rtt_us) {
    if (row.size() != out.zones.size()) return false;
  }
  return true;
}

WanMatrix DefaultWan() {
  WanMatrix m;
  ATLAS_CHECK(ParseRttCsv(kRtt5Zones, m));
  return m;
}

WanMatrix LoadWan(const std::string& path) {
  std::ifstream in(path);
  if (in) {
    std::stringstream ss;
    ss << in.rdbuf();
    WanMatrix m;
    if (ParseRttCsv(ss.str(), m)) return m;
  }
  return DefaultWan();
}

std::string FaultMix::ToString() const {
  std::vector<std::string> parts;
  if (drop > 0) parts.push_back("drop");
  if (duplicate > 0) parts.push_back("dup");
  if (jitter_us > 0) parts.push_back("reorder");
  if (partitions) parts.push_back("partition");
  if (crashes) parts.push_back("crash");
  if (crash_all) parts.push_back("crashall");
  if (steal_storms) parts.push_back("steals");
  if (membership) parts.push_back("membership");
  return parts.empty() ? "none" : absl::StrJoin(parts, ",");
}

bool ParseFaults(const std::string& spec, FaultMix& out) {
  out = FaultMix{};
  for (absl::string_view part : absl::StrSplit(spec, ',', absl::SkipEmpty())) {
    if (part == "none") continue;
    if (part == "drop" || part == "all") out.drop = 0.05;
    if (part == "dup" || part == "all") out.duplicate = 0.05;
    if (part == "reorder" || part == "all") out.jitter_us = 30'000;
    if (part == "partition" || part == "all") out.partitions = true;
    if (part == "crash" || part == "all") out.crashes = true;
    if (part == "crashall" || part == "all") out.crash_all = true;
    if (part == "steals" || part == "all") out.steal_storms = true;
    if (part == "membership") out.membership = true;
    if (part != "none" && part != "drop" && part != "dup" && part != "reorder" &&
        part != "partition" && part != "crash" && part != "crashall" && part != "steals" &&
        part != "all" && part != "membership") {
      return false;
    }
  }
  return true;
}

const char* MixFaults(uint64_t seed) {
  static const char* const kMix[] = {"none",   "drop,steals", "dup,reorder",
                                     "partition,steals", "crash", "crashall",
                                     "drop,dup,reorder,crash", "all"};
  return kMix[seed % 8];
}

SimResult RunSimulation(const SimOptions& options) {
  // The hosts' operator log (elections, membership) would drown the trace; the trace and the
  // checkers are the simulator's output.
  spdlog::set_level(spdlog::level::off);
  Simulation sim(options);
  return sim.Run();
}

std::string ReplayCommand(const SimOptions& o) {
  std::string cmd = absl::StrCat("build/bin/atlas-sim --seed ", o.seed, " --faults ",
                                 o.faults.ToString());
  if (o.randomize_cluster) {
    absl::StrAppend(&cmd, " --random-cluster");
  } else {
    absl::StrAppend(&cmd, " --zones ", absl::StrJoin(o.zone_sizes, ","), " --fn ", o.quorum.fn,
                    " --fz ", o.quorum.fz);
  }
  absl::StrAppend(&cmd, " --objects ", o.objects, " --clients ", o.clients);
  if (o.multi_paxos) absl::StrAppend(&cmd, " --multi-paxos");
  if (o.bug_forget_promises) absl::StrAppend(&cmd, " --bug-forget-promises");
  if (o.bug_unsafe_reads) absl::StrAppend(&cmd, " --bug-unsafe-reads");
  if (o.bug_latest_config_only) absl::StrAppend(&cmd, " --bug-latest-config-only");
  if (o.bug_reuse_sequence_numbers) absl::StrAppend(&cmd, " --bug-reuse-sequence-numbers");
  if (o.bug_send_before_persist) absl::StrAppend(&cmd, " --bug-send-before-persist");
  if (o.bug_count_own_ack_before_persist) {
    absl::StrAppend(&cmd, " --bug-count-own-ack-before-persist");
  }
  if (o.bug_count_lazy_as_acked) absl::StrAppend(&cmd, " --bug-count-lazy-as-acked");
  if (o.bug_ack_unsynced_accepts) absl::StrAppend(&cmd, " --bug-ack-unsynced-accepts");
  if (o.bug_evict_accepted) absl::StrAppend(&cmd, " --bug-evict-accepted");
  if (o.bug_rest_forgets_promise) absl::StrAppend(&cmd, " --bug-rest-forgets-promise");
  if (o.bug_rest_without_round_trip) absl::StrAppend(&cmd, " --bug-rest-without-round-trip");
  if (o.bug_reports_never_wake) absl::StrAppend(&cmd, " --bug-reports-never-wake");
  if (o.bug_digest_without_commit) absl::StrAppend(&cmd, " --bug-digest-without-commit");
  if (o.bug_meta_cache_outlives_crash) absl::StrAppend(&cmd, " --bug-meta-cache-outlives-crash");
  if (o.bug_keep_local_reads) absl::StrAppend(&cmd, " --bug-keep-local-reads");
  if (o.bug_snapshot_unpinned) absl::StrAppend(&cmd, " --bug-snapshot-unpinned");
  if (o.bug_install_without_marker) absl::StrAppend(&cmd, " --bug-install-without-marker");
  if (o.crash_before_sync_chance != SimOptions{}.crash_before_sync_chance) {
    absl::StrAppend(&cmd, " --crash-before-sync ", o.crash_before_sync_chance);
  }
  if (o.faults.membership && o.membership_changes_max != SimOptions{}.membership_changes_max) {
    absl::StrAppend(&cmd, " --membership-max ", o.membership_changes_max);
  }
  if (!o.check_promises) absl::StrAppend(&cmd, " --no-promise-check");
  for (const auto& [node, ms] : o.clock_offsets_ms) {
    absl::StrAppend(&cmd, " --clock-offset ", node, ":", ms);
  }
  for (consensus::NodeId node : o.untrusted_clocks) absl::StrAppend(&cmd, " --untrusted-clock ", node);
  if (o.bug_ignore_untrusted_clock) absl::StrAppend(&cmd, " --bug-ignore-untrusted-clock");
  const SimOptions defaults;
  if (o.read_lease_ms != defaults.read_lease_ms) {
    absl::StrAppend(&cmd, " --read-lease-ms ", o.read_lease_ms);
  }
  if (o.clock_drift_ppm != defaults.clock_drift_ppm) {
    absl::StrAppend(&cmd, " --clock-drift-ppm ", o.clock_drift_ppm);
  }
  if (o.bug_drift_beyond_bound) absl::StrAppend(&cmd, " --bug-drift-beyond-bound");
  if (o.holder_leases) absl::StrAppend(&cmd, " --holder-leases");
  if (o.auto_reads) absl::StrAppend(&cmd, " --auto-reads");
  if (o.bug_holder_reads_expired) absl::StrAppend(&cmd, " --bug-holder-reads-expired");
  if (o.bug_commit_without_holders) absl::StrAppend(&cmd, " --bug-commit-without-holders");
  if (o.bug_holder_reads_skip_accepted) {
    absl::StrAppend(&cmd, " --bug-holder-reads-skip-accepted");
  }
  if (o.read_fraction != defaults.read_fraction) {
    absl::StrAppend(&cmd, " --read-percent ", static_cast<int>(o.read_fraction * 100 + 0.5));
  }
  if (o.cas_fraction != defaults.cas_fraction) {
    absl::StrAppend(&cmd, " --cas-percent ", static_cast<int>(o.cas_fraction * 100 + 0.5));
  }
  if (o.bug_cas_without_condition) absl::StrAppend(&cmd, " --bug-cas-without-condition");
  if (!o.check_leases) absl::StrAppend(&cmd, " --no-lease-check");
  if (o.base.heartbeat_objects_max != consensus::ReplicaConfig{}.heartbeat_objects_max) {
    absl::StrAppend(&cmd, " --heartbeat-objects-max ", o.base.heartbeat_objects_max);
  }
  absl::StrAppend(&cmd, " --trace");
  return cmd;
}

}  // namespace atlas::sim
