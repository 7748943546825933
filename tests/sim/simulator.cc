#include "tests/sim/simulator.h"

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <memory>
#include <optional>
#include <set>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "consensus/check.h"
#include "consensus/membership.h"
#include "consensus/random.h"
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

constexpr char kFieldSep = '\x1f';
constexpr char kRecordSep = '\x1e';

std::string EncodePut(const std::string& key, const std::string& value) {
  return absl::StrCat("P", std::string(1, kFieldSep), key, std::string(1, kFieldSep), value);
}

// The in-memory KV state machine of one node, plus its durable snapshots. `atlas.nodes` is
// applied with ApplyMembershipCommand; its state is the history of configurations (one key per
// epoch), so snapshots and catch-up carry the whole history.
class KvApp : public consensus::SnapshotSource {
 public:
  void SetInitialConfig(ClusterConfig initial) { initial_ = std::move(initial); }

  // The `atlas.nodes` configuration as applied so far.
  ClusterConfig Membership() const {
    auto o = data_.find(kMembershipObject);
    if (o == data_.end() || o->second.empty()) return initial_;
    auto c = consensus::DecodeClusterConfig(o->second.rbegin()->second);
    ATLAS_CHECK(c.ok());
    return *c;
  }

  std::optional<Snapshot> LatestSnapshot(const ObjectId& object) override {
    auto it = durable_.find(object);
    if (it == durable_.end()) return std::nullopt;
    return it->second;
  }

  // Crash: volatile state is lost; the durable snapshots survive.
  void Restore() {
    data_.clear();
    applied_.clear();
    for (const auto& [object, snap] : durable_) {
      data_[object] = Decode(snap.data);
      applied_[object] = snap.slot;
    }
  }

  void Install(const ObjectId& object, const Snapshot& snap) {
    durable_[object] = snap;
    data_[object] = Decode(snap.data);
    applied_[object] = snap.slot;
  }

  // Returns false on an apply gap (a slot skipped). Appends applied membership changes.
  bool Apply(const ObjectId& object, Slot slot, const consensus::Batch& batch,
             std::vector<ClusterConfig>* changes, uint64_t* refused) {
    if (applied_[object] + 1 != slot) return false;
    applied_[object] = slot;
    if (object == kMembershipObject) {
      for (const consensus::Command& cmd : batch) {
        ClusterConfig c = Membership();
        if (consensus::ApplyMembershipCommand(c, cmd.data).ok()) {
          data_[object][absl::StrFormat("epoch/%020d", c.epoch)] = consensus::EncodeClusterConfig(c);
          changes->push_back(c);
        } else {
          ++*refused;
        }
      }
      return true;
    }
    for (const consensus::Command& cmd : batch) {
      std::vector<std::string> parts = absl::StrSplit(cmd.data, kFieldSep);
      if (parts.size() == 3 && parts[0] == "P") data_[object][parts[1]] = parts[2];
    }
    return true;
  }

  bool TakeSnapshot(const ObjectId& object, Slot slot) {
    if (applied_[object] != slot) return false;
    std::string out;
    for (const auto& [k, v] : data_[object]) absl::StrAppend(&out, k, std::string(1, kFieldSep), v, std::string(1, kRecordSep));
    durable_[object] = Snapshot{slot, out};
    return true;
  }

  std::string Get(const ObjectId& object, const std::string& key) const {
    auto o = data_.find(object);
    if (o == data_.end()) return "";
    auto it = o->second.find(key);
    return it == o->second.end() ? "" : it->second;
  }
  const std::map<std::string, std::string>& Data(const ObjectId& object) { return data_[object]; }
  Slot Applied(const ObjectId& object) { return applied_[object]; }

 private:
  static std::map<std::string, std::string> Decode(const std::string& data) {
    std::map<std::string, std::string> out;
    for (absl::string_view rec : absl::StrSplit(data, kRecordSep, absl::SkipEmpty())) {
      std::vector<std::string> kv = absl::StrSplit(rec, kFieldSep);
      if (kv.size() == 2) out[kv[0]] = kv[1];
    }
    return out;
  }

  std::map<ObjectId, std::map<std::string, std::string>> data_;
  std::map<ObjectId, Slot> applied_;
  std::map<ObjectId, Snapshot> durable_;
  ClusterConfig initial_;
};

struct SimNode {
  NodeId id = 0;
  ZoneId zone = 0;
  bool up = false;
  bool stopped = false;  // Removed from the cluster and its removal settled: gone for good.
  // Durable history of applied `atlas.nodes` configurations (as the daemon persists it): a
  // restart hands all of it to the Replica before serving.
  std::map<uint64_t, ClusterConfig> configs;
  int incarnation = 0;
  std::unique_ptr<Replica> replica;
  PersistentState durable;
  KvApp app;
  // Objects this incarnation owns by its Ready::ownership events; must match IsOwner.
  std::set<ObjectId> owned;
};

struct ClientState {
  int index = 0;
  NodeId node = 0;
  ZoneId zone = 0;
  bool busy = false;
  int op = -1;  // Index into history.
  uint64_t counter = 0;
  int64_t invoke_us = 0;
  RequestId request;
};

enum class EventKind {
  kDeliver, kTick, kClient, kCrash, kRestart, kPartition, kHeal, kEndChaos, kEndWarmup, kStealProbe,
  kStealStorm, kMembership
};

struct Event {
  EventKind kind = EventKind::kTick;
  Message msg;
  int target = 0;  // Node id or client index.
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
  void Pump(SimNode& node);
  // The node's wall clock now (ms), and what the host tells its core (SetClock).
  int64_t WallMs(NodeId id) const;
  void SyncClock(SimNode& node);
  // No committed stamp is ahead of every trusted clock.
  void CheckStamps(const SimNode& node, const consensus::CommittedEntry& e);
  void Send(const Message& msg);
  bool Cut(NodeId a, NodeId b) {
    if (cut_links_.contains({std::min(a, b), std::max(a, b)})) return true;
    return !partition_group_.empty() && partition_group_[a] != partition_group_[b];
  }
  int64_t OneWayUs(NodeId a, NodeId b) const;
  void ClientStep(ClientState& c);
  void CompleteOp(ClientState& c, bool ok, bool known, const std::string& read_value);
  void Violation(std::string what);
  void FinalChecks();
  void ConfigApplied(SimNode& node, const ClusterConfig& c);
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
  std::map<RequestId, int> client_of_request_;
  std::vector<Operation> history_;
  std::vector<int64_t> history_invoke_us_;
  std::vector<std::string> op_object_;
  uint64_t history_clock_ = 0;
  uint64_t request_seq_ = 0;
  uint64_t steals_at_warmup_ = 0;
  int64_t steal_probe_start_ = -1;
  std::map<NodeId, int> partition_group_;
  std::set<std::pair<NodeId, NodeId>> cut_links_;  // Partial partition: these links are down.
  std::map<std::pair<ObjectId, Slot>, std::string> chosen_;  // Agreement witness.
  std::map<RequestId, std::pair<ObjectId, Slot>> write_slot_;
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
      " snap=", opt_.base.snapshot_interval_slots, " fwd_window=", opt_.base.forward_window_max);
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
  for (auto& [id, node] : nodes_) {
    node.configs[1] = initial_;
    node.app.SetInitialConfig(initial_);
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
    for (const ObjectId& object : objects_) nodes_[1].replica->Steal(object);
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

void Simulation::StartNode(SimNode& node) {
  ATLAS_CHECK(!node.configs.empty() && !node.stopped);
  // Restart from the durable configuration history: the latest one in the constructor, every
  // earlier one through SetConfig, before the node serves anything.
  const ClusterConfig& latest = node.configs.rbegin()->second;
  consensus::ReplicaConfig cfg = opt_.base;
  cfg.id = node.id;
  // Each incarnation forwards with numbers above the last one's (as the daemon's start time).
  cfg.forward_seq_base = static_cast<uint64_t>(node.incarnation) << 32;
  cfg.epoch = latest.epoch;
  cfg.topology = TopologyOf(latest);
  cfg.quorum = latest.quorum;
  cfg.test_forget_promises_on_restart = opt_.bug_forget_promises;
  cfg.test_unsafe_local_reads = opt_.bug_unsafe_reads;
  cfg.test_latest_config_only = opt_.bug_latest_config_only;
  std::unique_ptr<consensus::MigrationPolicy> policy;
  if (opt_.multi_paxos) {
    policy = std::make_unique<consensus::StaticPolicy>(1);
  } else {
    policy = std::make_unique<consensus::AccessCountingPolicy>();
  }
  node.app.Restore();
  node.owned.clear();
  node.replica = std::make_unique<Replica>(cfg, node.durable, &node.app, std::move(policy),
                                           opt_.seed * 7919 + node.id * 131 + node.incarnation);
  for (const auto& [epoch, c] : node.configs) node.replica->SetConfig(epoch, TopologyOf(c), c.quorum);
  SyncClock(node);
  node.up = true;
  Trace(absl::StrCat("start node ", node.id, " incarnation ", node.incarnation));
}

void Simulation::CrashNode(SimNode& node, const char* why) {
  if (!node.up) return;
  Trace(absl::StrCat("crash node ", node.id, " (", why, ")"));
  AddProbes(result_.probes, node.replica->probes());
  node.replica.reset();
  node.up = false;
  ++node.incarnation;
  ++result_.crashes;
  for (ClientState& c : clients_) {
    if (c.node == node.id && c.busy) CompleteOp(c, false, false, "");
  }
  Event ev;
  ev.kind = EventKind::kRestart;
  ev.target = static_cast<int>(node.id);
  // Half the restarts are fast (a process restart, 1-20 ms), so messages sent before the crash
  // can still arrive after it: that is what exposes an acceptor that forgets its promises.
  const int64_t down = rng_.Chance(0.5) ? rng_.Range(1'000, 20'000) : rng_.Range(50'000, 400'000);
  Schedule(now_ + down, std::move(ev));
}

// The simulated wall clocks start here (unix ms; 2027-01-15).
constexpr int64_t kSimEpochMs = 1'800'000'000'000;

int64_t Simulation::WallMs(NodeId id) const {
  auto it = opt_.clock_offsets_ms.find(id);
  return kSimEpochMs + now_ / 1000 + (it == opt_.clock_offsets_ms.end() ? 0 : it->second);
}

void Simulation::SyncClock(SimNode& node) {
  const bool trusted = !opt_.untrusted_clocks.contains(node.id);
  node.replica->SetClock(WallMs(node.id), trusted || opt_.bug_ignore_untrusted_clock);
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

void Simulation::Pump(SimNode& node) {
  while (node.up && node.replica->HasReady()) {
    Ready rd = node.replica->TakeReady();
    // A crash between TakeReady and the fsync loses this Ready: unsynced state is gone and no
    // message of it was sent (the Ready contract makes this safe).
    if (chaos_ && opt_.faults.crashes && !rd.persist.empty() && rng_.Chance(0.0005)) {
      CrashNode(node, "before fsync");
      return;
    }
    for (const auto& [object, snap] : rd.snapshots) {
      Trace(absl::StrCat("node ", node.id, " install snapshot ", object, "@", snap.slot));
      node.app.Install(object, snap);
    }
    bool raised_promise = false;
    for (const consensus::HardStateUpdate& u : rd.persist) {
      auto it = node.durable.find(u.object);
      if (it == node.durable.end() || it->second.promised < u.promised) raised_promise = true;
      if (opt_.check_promises && it != node.durable.end() && u.promised < it->second.promised) {
        Violation(absl::StrCat("promise went backwards on node ", node.id, " object ", u.object,
                               ": ", it->second.promised.ToString(), " -> ",
                               u.promised.ToString()));
      }
      consensus::ApplyHardStateUpdate(u, node.durable);
    }
    for (const Message& m : rd.messages) Send(m);
    for (const consensus::OwnershipEvent& e : rd.ownership) {
      if (e.kind == consensus::OwnershipEventKind::kElected) {
        if (!node.owned.insert(e.object).second) {
          Violation(absl::StrCat("node ", node.id, " elected twice for ", e.object));
        }
      } else if (e.kind == consensus::OwnershipEventKind::kSteppedDown) {
        if (node.owned.erase(e.object) == 0) {
          Violation(absl::StrCat("node ", node.id, " stepped down from ", e.object,
                                 " without owning it"));
        }
      }
    }
    for (const consensus::OwnershipEvent& e : rd.ownership) {
      // The events tell the host exactly what it owns (its metrics count them).
      if (node.replica->IsOwner(e.object) != node.owned.contains(e.object)) {
        Violation(absl::StrCat("ownership events of node ", node.id, " disagree with IsOwner for ",
                               e.object));
      }
    }
    for (const consensus::CommittedEntry& e : rd.committed) {
      std::string fp;
      for (const consensus::Command& c : e.commands) absl::StrAppend(&fp, c.id.ToString(), "=", c.data, ";");
      auto [it, inserted] = chosen_.insert({{e.object, e.slot}, fp});
      if (!inserted && it->second != fp) {
        Violation(absl::StrCat("agreement: object ", e.object, " slot ", e.slot, " node ",
                               node.id, " applied a different value"));
      }
      CheckStamps(node, e);
      std::vector<ClusterConfig> changes;
      uint64_t refused = 0;
      if (!node.app.Apply(e.object, e.slot, e.commands, &changes, &refused)) {
        Violation(absl::StrCat("apply gap on node ", node.id, " object ", e.object, " slot ",
                               e.slot));
      }
      if (inserted) result_.membership_refused += refused;  // Count each slot once.
      for (const ClusterConfig& c : changes) ConfigApplied(node, c);
      for (const consensus::Command& c : e.commands) {
        write_slot_.insert({c.id, {e.object, e.slot}});
      }
    }
    for (const consensus::SnapshotRequest& s : rd.snapshot_requests) {
      if (!node.app.TakeSnapshot(s.object, s.slot)) {
        Violation(absl::StrCat("snapshot request at unapplied slot on node ", node.id));
      }
    }
    for (const consensus::ReadState& r : rd.reads) {
      auto it = client_of_request_.find(r.id);
      if (it == client_of_request_.end()) continue;
      ClientState& c = clients_[it->second];
      const Operation& op = history_[c.op];
      CompleteOp(c, true, true, node.app.Get(r.object, op.key));
    }
    for (const consensus::Reply& r : rd.replies) {
      auto it = client_of_request_.find(r.id);
      if (it == client_of_request_.end()) continue;
      ClientState& c = clients_[it->second];
      if (opt_.trace && r.code != consensus::ReplyCode::kOk) {
        Trace(absl::StrCat("reply ", r.id.ToString(), " ", consensus::ReplyCodeName(r.code),
                           r.definite ? " definite " : " unknown ", r.detail));
      }
      if (r.code == consensus::ReplyCode::kOk) {
        CompleteOp(c, true, true, "");
      } else {
        CompleteOp(c, false, r.definite, "");
      }
    }
    node.replica->Advance(rd);
    // Targeted crash point: right after a new promise is durable and its reply sent, the
    // moment at which an acceptor that forgot its promises would do the most damage.
    if (raised_promise && chaos_ && opt_.faults.crashes && rng_.Chance(0.05)) {
      CrashNode(node, "after promise");
      return;
    }
  }
}

void Simulation::ConfigApplied(SimNode& node, const ClusterConfig& c) {
  node.configs[c.epoch] = c;  // Durable with the apply (the daemon persists it the same way).
  if (node.replica) node.replica->SetConfig(c.epoch, TopologyOf(c), c.quorum);
  if (c.epoch <= final_.epoch) return;
  // The first node to apply this change: act on it cluster-wide.
  ATLAS_CHECK(c.epoch == final_.epoch + 1);
  const ClusterConfig prev = final_;
  final_ = c;
  ++result_.membership_applied;
  std::string members;
  for (const auto& [id, m] : c.members) absl::StrAppend(&members, id, ":z", m.zone, " ");
  Trace(absl::StrCat("membership epoch ", c.epoch, " applied first on node ", node.id, ": ",
                     members, "fn=", c.quorum.fn, " fz=", c.quorum.fz));
  for (const auto& [id, m] : c.members) {
    if (nodes_.contains(id)) continue;
    // A joiner starts empty, knowing the configuration history (the join exchange's answer).
    SimNode& j = nodes_[id];
    j.id = id;
    j.zone = m.zone;
    j.configs = node.configs;
    j.app.SetInitialConfig(initial_);
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
      const uint64_t e = n.replica->epoch();
      if (e > epoch || (e == epoch && n.replica->Settled())) {
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
    if (node.up) {
      AddProbes(result_.probes, node.replica->probes());
      node.replica.reset();
      node.up = false;
      for (ClientState& c : clients_) {
        if (c.node == victim && c.busy) CompleteOp(c, false, false, "");
      }
    }
    node.stopped = true;
    it = pending_stop_.erase(it);
  }
}

void Simulation::ProposeMembershipChange(int retries) {
  if (!chaos_ || membership_proposed_ >= opt_.membership_changes_max) return;
  std::vector<NodeId> ready;
  for (auto& [id, n] : nodes_) {
    if (n.up && n.configs.rbegin()->second.members.contains(id) && n.replica->Settled()) {
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
  const ClusterConfig& cur = p.configs.rbegin()->second;
  std::map<ZoneId, int> zone_size;
  for (const auto& [id, m] : cur.members) ++zone_size[m.zone];
  int max_size = 1;
  for (const auto& [z, n] : zone_size) max_size = std::max(max_size, n);
  std::string cmd, what;
  int kind = static_cast<int>(rng_.Uniform(3));
  if (kind == 0 && cur.members.size() >= 9) kind = 1;
  if (kind == 1 && cur.members.size() <= 1) kind = 0;
  if (kind == 0) {
    const ZoneId max_zone = zone_size.rbegin()->first;
    const ZoneId zone = static_cast<ZoneId>(
        rng_.Uniform(std::min<uint64_t>(opt_.wan.zones.size(), max_zone + 2)));
    cmd = consensus::EncodeJoin(zone, absl::StrCat("n", cur.next_id), cur.epoch);
    what = absl::StrCat("join zone ", zone);
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
  p.replica->Propose(kMembershipObject, cmd, RequestId{p.id, ++request_seq_});
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
  const ObjectId object = PickObject(c);
  Operation op;
  op.key = absl::StrCat(object, "/k", rng_.Uniform(opt_.keys_per_object));
  op.is_write = !rng_.Chance(opt_.read_fraction);
  op.client = c.index;
  op.invoke = ++history_clock_;
  op.completed = false;
  if (op.is_write) op.value = absl::StrCat("c", c.index, "-", ++c.counter);
  c.busy = true;
  c.op = static_cast<int>(history_.size());
  c.invoke_us = now_;
  history_.push_back(op);
  history_invoke_us_.push_back(now_);
  op_object_.push_back(object);
  ++result_.ops_invoked;
  // Request ids are unique per node across restarts: the simulator owns the counter.
  c.request = RequestId{c.node, ++request_seq_};
  client_of_request_[c.request] = c.index;
  if (opt_.trace) {
    Trace(absl::StrCat("invoke client ", c.index, " node ", c.node, " ",
                       op.is_write ? "put " : "get ", op.key, op.is_write ? "=" : "", op.value,
                       " id ", c.request.ToString()));
  }
  if (op.is_write) {
    node.replica->Propose(object, EncodePut(op.key, op.value), c.request);
  } else {
    node.replica->Read(object, c.request);
  }
  Pump(node);
}

void Simulation::CompleteOp(ClientState& c, bool ok, bool known, const std::string& read_value) {
  if (!c.busy) return;
  Operation& op = history_[c.op];
  client_of_request_.erase(c.request);
  c.busy = false;
  if (ok) {
    op.completed = true;
    op.ret = ++history_clock_;
    if (!op.is_write) op.value = read_value;
    ++result_.ops_ok;
    if (now_ >= opt_.warmup_us) {
      const double ms = static_cast<double>(now_ - c.invoke_us) / 1000.0;
      (op.is_write ? result_.latency.write_ms : result_.latency.read_ms).push_back(ms);
    }
  } else if (known || !op.is_write) {
    // Certainly not executed (or a failed read): not part of the history.
    op.key.clear();
    ++result_.ops_failed;
  } else {
    op.completed = false;  // Unknown outcome: may take effect at any later point.
    ++result_.ops_unknown;
  }
  if (opt_.trace) {
    Trace(absl::StrCat("return client ", c.index, " ", ok ? "ok" : (known ? "failed" : "unknown"),
                       op.is_write ? "" : " value=", op.is_write ? "" : op.value));
  }
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
    for (const ObjectId& o : node->replica->Objects()) seen[o] = true;
  }
  for (const auto& [object, unused] : seen) {
    const SimNode& first = *members.front();
    const Slot commit = first.replica->CommitIndex(object);
    for (SimNode* np : members) {
      SimNode& node = *np;
      const NodeId id = node.id;
      const Slot c = node.replica->CommitIndex(object);
      const Slot a = node.app.Applied(object);
      if (c != commit || a != c) {
        Violation(absl::StrCat("replicas did not converge: object ", object, " node ", id,
                               " commit=", c, " applied=", a, " vs node ", first.id,
                               " commit=", commit));
        break;
      }
      if (node.app.Data(object) != members.front()->app.Data(object)) {
        Violation(absl::StrCat("replicas diverge: object ", object, " node ", id,
                               " state differs from node ", first.id));
        break;
      }
    }
  }
  // No acknowledged write lost: each is in the chosen log, under every replica's commit index.
  for (const auto& [req, where] : write_slot_) {
    for (SimNode* node : members) {
      if (node->replica->CommitIndex(where.first) < where.second) {
        Violation(absl::StrCat("write ", req.ToString(), " at ", where.first, "@", where.second,
                               " missing on node ", node->id));
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
    r.value = observer.app.Get(key.substr(0, key.find('/')), key);
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
        node.replica->Step(ev.msg);
        Pump(node);
        break;
      }
      case EventKind::kTick: {
        for (auto& [id, node] : nodes_) {
          if (!node.up) continue;
          SyncClock(node);
          node.replica->Tick();
          Pump(node);
        }
        if (!pending_stop_.empty()) StopSettledRemovals();
        if (steal_probe_start_ >= 0 && result_.steal_latency_ms < 0 &&
            nodes_[opt_.steal_probe_node].up &&
            nodes_[opt_.steal_probe_node].replica->IsOwner("t0")) {
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
        for (NodeId id : stealers) nodes_[id].replica->Steal(object);
        for (NodeId id : stealers) Pump(nodes_[id]);
        break;
      }
      case EventKind::kEndWarmup: {
        consensus::Probes p = result_.probes;
        for (auto& [id, node] : nodes_) {
          if (node.up) AddProbes(p, node.replica->probes());
        }
        steals_at_warmup_ = p.steals_won;
        break;
      }
      case EventKind::kStealProbe: {
        SimNode& node = nodes_[opt_.steal_probe_node];
        if (!node.up) break;
        steal_probe_start_ = now_;
        node.replica->Steal("t0");
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
    if (node.replica) AddProbes(result_.probes, node.replica->probes());
  }
  for (const auto& [id, m] : final_.members) {
    absl::StrAppend(&result_.final_members, result_.final_members.empty() ? "" : " ", id, ":z",
                    m.zone);
  }
  result_.ownership_changes = result_.probes.steals_won - steals_at_warmup_;
  for (size_t i = 0; i < objects_.size(); ++i) {
    for (auto& [id, node] : nodes_) {
      if (node.replica && node.replica->IsOwner(objects_[i]) && node.zone == object_home_[i]) {
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
  into.snapshot_chunks += from.snapshot_chunks;
  into.catchup_entries += from.catchup_entries;
  into.forwards += from.forwards;
  into.forward_rejects += from.forward_rejects;
  into.read_rounds += from.read_rounds;
  into.moves_suggested += from.moves_suggested;
  into.accept_resends += from.accept_resends;
  into.reanchors_committed += from.reanchors_committed;
  into.joint_phase1 += from.joint_phase1;
  into.fence_rejections += from.fence_rejections;
  into.settles_reached += from.settles_reached;
  into.sweeper_steals += from.sweeper_steals;
  into.anchor_acks_deferred += from.anchor_acks_deferred;
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

SimResult RunSimulation(const SimOptions& options) {
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
  if (o.faults.membership && o.membership_changes_max != SimOptions{}.membership_changes_max) {
    absl::StrAppend(&cmd, " --membership-max ", o.membership_changes_max);
  }
  if (!o.check_promises) absl::StrAppend(&cmd, " --no-promise-check");
  for (const auto& [node, ms] : o.clock_offsets_ms) {
    absl::StrAppend(&cmd, " --clock-offset ", node, ":", ms);
  }
  for (consensus::NodeId node : o.untrusted_clocks) absl::StrAppend(&cmd, " --untrusted-clock ", node);
  if (o.bug_ignore_untrusted_clock) absl::StrAppend(&cmd, " --bug-ignore-untrusted-clock");
  if (o.base.heartbeat_objects_max != consensus::ReplicaConfig{}.heartbeat_objects_max) {
    absl::StrAppend(&cmd, " --heartbeat-objects-max ", o.base.heartbeat_objects_max);
  }
  absl::StrAppend(&cmd, " --trace");
  return cmd;
}

}  // namespace atlas::sim
