// Deterministic cluster simulator (docs/consensus.md, "Simulator").
//
// Many nodes in several zones run in one process over an in-memory network with a zone latency
// matrix. Each node is the daemon's own host loop (atlasd/node/node_host.h: the real consensus
// core, Ready processing, state machine, group routing, membership persistence) over an
// in-memory store that loses what was not committed when the node crashes. The simulator
// injects seeded message drop, duplication, reordering and delay, partitions, and crashes at
// the host's crash points. Closed-loop clients record the invoke/return of every get/put
// (unique written values); checkers watch every Ready (agreement: one value per slot; durable
// promises never decrease and survive restarts; ownership events; owner stamps) and run at the
// end: linearizability (per key), nothing chosen lost, and convergence after heal.
//
// A run is a pure function of SimOptions (including the seed): same options, same trace.
#ifndef ATLAS_TESTS_SIM_SIMULATOR_H_
#define ATLAS_TESTS_SIM_SIMULATOR_H_

#include <cstdint>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "consensus/replica.h"

namespace atlas::sim {

// RTT matrix between named zones, in microseconds.
struct WanMatrix {
  std::vector<std::string> zones;
  std::vector<std::vector<int64_t>> rtt_us;
  int64_t intra_zone_rtt_us = 427;
};

// Parses the "zone,a,b,..." CSV of /work/shared/wan/rtt-5zones.csv (milliseconds).
bool ParseRttCsv(const std::string& text, WanMatrix& out);
// The matrix from `path` if readable, else the built-in copy of rtt-5zones.csv.
WanMatrix LoadWan(const std::string& path);
WanMatrix DefaultWan();

struct FaultMix {
  double drop = 0;          // Probability a message is lost.
  double duplicate = 0;     // Probability a message is delivered twice.
  int64_t jitter_us = 0;    // Extra uniform delay (reordering).
  bool partitions = false;  // Random zone/node partitions that heal.
  bool crashes = false;     // Crash-restart of nodes (losing unsynced state).
  bool crash_all = false;   // At some point every node crashes at once, then restarts.
  bool steal_storms = false;  // One node per zone steals the same object at the same instant.
  // Membership changes through `atlas.nodes` mid-run: join (a new, empty node), leave (the node
  // stops once the change settles), Fn/Fz changes; each proposed only when Settled() on the
  // proposing node, with its epoch as the expected one. Not part of "all".
  bool membership = false;

  std::string ToString() const;  // Flag form accepted by ParseFaults.
};
// "none", or comma-separated: drop, dup, reorder, partition, crash, crashall, steals, all,
// membership.
bool ParseFaults(const std::string& spec, FaultMix& out);
// The standard fault mixes of the sweeps (`--faults mix`): seed % 8 picks one.
const char* MixFaults(uint64_t seed);

enum class Workload { kUniform, kLocality, kTwoZone };

struct SimOptions {
  uint64_t seed = 1;
  // Nodes per zone; zone i uses row i of the WAN matrix (so at most wan.zones.size() zones).
  std::vector<int> zone_sizes = {3, 3, 3};
  consensus::QuorumSpec quorum{1, 0};
  WanMatrix wan = DefaultWan();
  FaultMix faults;
  bool randomize_cluster = false;  // Derive zone sizes / Fn / Fz from the seed.

  int objects = 3;
  int keys_per_object = 2;
  int clients = 6;
  std::vector<consensus::NodeId> client_nodes;  // If set: client i runs on client_nodes[i % n].
  double read_fraction = 0.4;
  std::vector<double> client_read_fraction;  // If set: client i's own share (scenarios).
  // The share of writes done as a read-modify-write: a transaction reads the row's value and
  // revision (KEY BLOB GET + KEY INFO, through the log), then KEY SET ... IF REV that revision
  // (a compare-and-set in the history). 0 draws nothing more from the seed's randomness.
  double cas_fraction = 0;
  // The compare-and-set is sent without its IF REV, and reported as applied (the checker must
  // catch it: a write that claims a condition it never had judged).
  bool bug_cas_without_condition = false;
  int64_t think_us = 2000;
  // > 0: each client invokes one op every interval (or as soon as its previous op returns),
  // so slow and fast zones contribute equally many samples (no closed-loop bias).
  int64_t open_loop_interval_us = 0;
  int64_t chaos_us = 2'000'000;  // Clients run and faults happen.
  int64_t quiet_us = 3'000'000;  // Faults healed, no new client ops; replicas converge.
  int64_t tick_us = 1000;
  Workload workload = Workload::kUniform;
  std::vector<std::vector<double>> locality;  // [client zone][home zone] shares.
  bool multi_paxos = false;  // One static leader (node 1) owns every object.
  int64_t warmup_us = 0;     // Latency samples and ownership moves before this are ignored.
  // Steal-latency probe: at steal_probe_us, node steal_probe_node steals object "t0".
  int64_t steal_probe_us = -1;
  consensus::NodeId steal_probe_node = 0;

  // Wall clocks (docs/consensus.md §Time): node i's reads the simulated time plus its offset
  // (ms; nodes not listed: 0). Nodes in `untrusted_clocks` are told they may not own (their
  // host's ClockGuard would find them too far off); the checker fails any committed stamp
  // ahead of every trusted clock.
  std::map<consensus::NodeId, int64_t> clock_offsets_ms;
  std::set<consensus::NodeId> untrusted_clocks;
  bool bug_ignore_untrusted_clock = false;  // The core is told every clock is fine.
  // Monotonic clocks (docs/consensus.md §Owner read leases): node i's runs at a rate off by
  // up to clock_drift_ppm, drawn from the seed. The core assumes base.clock_drift_ppm; the bug
  // switch makes the clocks drift by up to 90% instead, far beyond it.
  int64_t read_lease_ms = 300;  // base.lease_ms for every node; 0: no leases
  int64_t clock_drift_ppm = 10'000;
  bool bug_drift_beyond_bound = false;
  // Replica read leases (ReplicaConfig::holder_leases): members read their own replica of
  // the objects they do not own, under leases the owners grant them.
  bool holder_leases = false;
  bool auto_reads = false;   // holder_leases in AUTO: owners grant only where reads dominate
  bool bug_holder_reads_expired = false;     // ReplicaConfig::test_holder_reads_expired
  bool bug_commit_without_holders = false;   // ReplicaConfig::test_commit_without_holders
  bool bug_holder_reads_skip_accepted = false;  // ...::test_holder_reads_skip_accepted
  std::map<consensus::NodeId, int64_t> drift_ppm_of;  // Fixed rates for these nodes (scenarios).
  // Links down for a while, on top of the fault mix (scenarios): a, b, from, until (µs).
  struct LinkCut {
    consensus::NodeId a = 0, b = 0;
    int64_t from_us = 0, until_us = 0;
  };
  std::vector<LinkCut> link_cuts;
  // The direct lease check: no node is elected owner while another's read lease holds.
  bool check_leases = true;
  consensus::ReplicaConfig base;  // Timeouts, windows (id/topology/quorum are filled in).
  bool bug_forget_promises = false;
  bool bug_unsafe_reads = false;
  bool bug_latest_config_only = false;  // Naive reconfiguration: no joint quorums, no anchors.
  // The host's bug switches (NodeHostOptions::test_*): each breaks one step of the Ready
  // contract's safety argument.
  bool bug_reuse_sequence_numbers = false;  // A restarted node numbers requests from 1 again.
  bool bug_send_before_persist = false;     // Messages leave before their Ready is durable.
  // The node's own promise and acceptance count before they are durable (the core's
  // ReplicaConfig::test_count_own_ack_before_persist).
  bool bug_count_own_ack_before_persist = false;
  // Accepts waiting for a lazy member count as its ack (ReplicaConfig::test_count_lazy_as_acked).
  bool bug_count_lazy_as_acked = false;
  // Accepted entries are acked without an fsync, as learned ones are stored
  // (ReplicaConfig::test_ack_unsynced_accepts).
  bool bug_ack_unsynced_accepts = false;
  // Entries leave memory once written, accepted or chosen (ReplicaConfig::test_evict_accepted).
  bool bug_evict_accepted = false;
  // An object at rest forgets its promise (ReplicaConfig::test_rest_forgets_promise).
  bool bug_rest_forgets_promise = false;
  // Objects rest even when their encoding does not give their state back: whatever an idle
  // object holds beyond the encoded fields is lost (test_rest_without_round_trip).
  bool bug_rest_without_round_trip = false;
  // Reports of a resting object's commit index never wake it, even ones that would teach it
  // something (ReplicaConfig::test_reports_never_wake).
  bool bug_reports_never_wake = false;
  bool bug_digest_without_commit = false;  // ReplicaConfig::test_digest_without_commit
  // The state machine's record cache outlives a crash: it keeps records of a Ready that never
  // reached the disk (NodeHostOptions::test_meta_cache).
  bool bug_meta_cache_outlives_crash = false;
  // Tables stay readable without a barrier after the node gave away what made that safe.
  bool bug_keep_local_reads = false;
  // Snapshots sent in chunks read the live store (NodeHostOptions::test_snapshot_unpinned).
  bool bug_snapshot_unpinned = false;
  // A received snapshot is installed in parts with no redo marker
  // (NodeHostOptions::test_install_without_marker).
  bool bug_install_without_marker = false;
  // Under crash faults: the chance that a node crashes between a Ready's apply and its fsync.
  double crash_before_sync_chance = 0.0005;
  int membership_changes_max = 4;       // Under faults.membership.
  // The direct durability checks: durable promises never decrease, a promise or acceptance is
  // durable before it is sent, and a committed value is held durably by a Q2.
  bool check_promises = true;
  bool trace = false;
  std::function<void(const std::string&)> trace_sink;  // Defaults to stdout.
};

struct LatencyStats {
  std::vector<double> write_ms;
  std::vector<double> read_ms;
};

struct SimResult {
  std::vector<std::string> violations;
  bool inconclusive = false;
  uint64_t ops_invoked = 0, ops_ok = 0, ops_failed = 0, ops_unknown = 0;
  uint64_t cas_applied = 0, cas_refused = 0;  // Compare-and-sets (cas_fraction) by outcome.
  uint64_t messages = 0, dropped = 0, crashes = 0;
  uint64_t ownership_changes = 0;  // Steals won after warmup.
  uint64_t local_reads = 0;        // Reads answered without a barrier (LocalReads).
  double steal_latency_ms = -1;    // Steal probe: Steal() until the node owns the object.
  int objects_at_home = 0;         // Objects owned, at the end, by a node of their home zone.
  consensus::Probes probes;        // Summed over every replica incarnation.
  uint64_t trace_hash = 0;         // FNV-1a over the trace lines (computed when tracing).
  LatencyStats latency;
  std::string cluster;             // Description of the (possibly randomized) cluster.
  uint64_t membership_applied = 0;  // Changes applied (final epoch - 1).
  uint64_t membership_refused = 0;  // Proposed changes refused by ApplyMembershipCommand.
  std::string final_members;        // "1:z0 2:z0 ..." of the final configuration.
};

SimResult RunSimulation(const SimOptions& options);

// The one command that replays a run (printed on failure).
std::string ReplayCommand(const SimOptions& options);

void AddProbes(consensus::Probes& into, const consensus::Probes& from);

}  // namespace atlas::sim

#endif  // ATLAS_TESTS_SIM_SIMULATOR_H_
