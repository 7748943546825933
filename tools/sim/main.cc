// atlas-sim: drives the deterministic WPaxos simulator (tests/sim/simulator.h).
//
//   atlas-sim --seed 42 --faults all --random-cluster --trace   replay one seed with a trace
//   atlas-sim --seeds 0:1000 --faults mix                       sweep; exit 1 on any violation
//   atlas-sim --seeds 0:1000 --faults mix --membership          the same with membership changes
//   atlas-sim --wan-figures                                      simulated WAN latency figures
// See docs/consensus.md, "Replaying a seed".
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <numeric>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "tests/sim/simulator.h"

namespace {

using atlas::sim::FaultMix;
using atlas::sim::SimOptions;
using atlas::sim::SimResult;


void Usage() {
  std::fprintf(stderr,
               "usage: atlas-sim [--seed N | --seeds A:B] [--faults SPEC|mix] [--random-cluster |\n"
               "                 --zones 3,3,3 --fn F --fz F] [--objects N] [--clients N]\n"
               "                 [--chaos-ms N] [--quiet-ms N] [--rtt FILE] [--trace]\n"
               "                 [--bug-forget-promises] [--bug-unsafe-reads] [--no-promise-check]\n"
               "                 [--bug-latest-config-only] [--membership] [--membership-max N]\n"
               "                 [--bug-reuse-sequence-numbers] [--bug-send-before-persist]\n"
               "                 [--bug-count-own-ack-before-persist] [--crash-before-sync P]\n"
               "                 [--bug-count-lazy-as-acked] [--bug-ack-unsynced-accepts]\n"
               "                 [--bug-evict-accepted] [--bug-rest-forgets-promise]\n"
               "                 [--bug-rest-without-round-trip] [--bug-reports-never-wake]\n"
               "                 [--bug-digest-without-commit]\n"
               "                 [--bug-meta-cache-outlives-crash] [--bug-keep-local-reads]\n"
               "                 [--bug-snapshot-unpinned] [--bug-install-without-marker]\n"
               "                 [--expect-violation] [--require-probes] [--multi-paxos]\n"
               "                 [--heartbeat-objects-max N] [--clock-offset NODE:MS]...\n"
               "                 [--untrusted-clock NODE]... [--bug-ignore-untrusted-clock]\n"
               "                 [--read-lease-ms N] [--clock-drift-ppm N] [--bug-drift-beyond-bound]\n"
               "                 [--no-lease-check] [--read-percent N] [--request-timeout-ms N]\n"
               "                 [--holder-leases [--auto-reads]] [--bug-holder-reads-expired]\n"
               "                 [--bug-commit-without-holders] [--bug-holder-reads-skip-accepted]\n"
               "                 [--cas-percent N] [--bug-cas-without-condition]\n"
               "                 [--wan-figures [--locality FILE]]\n"
               "faults: none | comma list of drop,dup,reorder,partition,crash,crashall,steals,\n"
               "        membership | all (all = every fault but membership)\n"
               "mix: each seed picks one of the standard fault mixes (seed %% 8)\n"
               "--membership: add membership changes (join/leave/Fn,Fz via atlas.nodes) to every run\n");
}

double Percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  size_t idx = static_cast<size_t>(p * static_cast<double>(v.size() - 1) + 0.5);
  return v[std::min(idx, v.size() - 1)];
}

double Mean(const std::vector<double>& v) {
  if (v.empty()) return 0;
  return std::accumulate(v.begin(), v.end(), 0.0) / static_cast<double>(v.size());
}

bool ParseLocality(const std::string& path, std::vector<std::vector<double>>& out) {
  FILE* f = std::fopen(path.c_str(), "r");
  if (f == nullptr) return false;
  char buf[512];
  while (std::fgets(buf, sizeof(buf), f)) {
    std::string line(buf);
    while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) line.pop_back();
    if (line.empty() || line[0] == '#' || line.rfind("zone", 0) == 0) continue;
    std::vector<std::string> cells = absl::StrSplit(line, ',');
    std::vector<double> row;
    for (size_t i = 1; i < cells.size(); ++i) row.push_back(std::stod(cells[i]));
    out.push_back(row);
  }
  std::fclose(f);
  return !out.empty();
}

std::vector<std::vector<double>> DefaultLocality() {
  return {{0.70, 0.05, 0.10, 0.10, 0.05},
          {0.10, 0.70, 0.10, 0.05, 0.05},
          {0.10, 0.10, 0.70, 0.05, 0.05},
          {0.10, 0.05, 0.10, 0.70, 0.05},
          {0.05, 0.10, 0.10, 0.05, 0.70}};
}

// 1. Commit latency of an owned table: one client per run, in each zone, writing to a table its
//    own node owns (it steals it on the first write; the warmup hides that).
void OwnedTableFigures(const SimOptions& o, int fz) {
  for (int zone = 0; zone < 5; ++zone) {
    SimOptions c = o;
    c.client_nodes = {static_cast<atlas::consensus::NodeId>(zone * 3 + 1)};
    c.read_fraction = 0.0;
    SimResult r = atlas::sim::RunSimulation(c);
    c.read_fraction = 1.0;
    SimResult rr = atlas::sim::RunSimulation(c);
    std::printf(
        "Fz=%d Fn=1 owned table in %s: commit mean=%.2f ms p99=%.2f ms (n=%zu); "
        "linearizable read mean=%.2f ms%s\n",
        fz, o.wan.zones[zone].c_str(), Mean(r.latency.write_ms),
        Percentile(r.latency.write_ms, 0.99), r.latency.write_ms.size(), Mean(rr.latency.read_ms),
        r.violations.empty() && rr.violations.empty() ? "" : " VIOLATION");
  }
}

// 2. Steal latency: va owns t0 (client writes), then a node in each zone steals it.
void StealFigures(const SimOptions& o, int fz) {
  for (int zone = 1; zone < 5; ++zone) {
    SimOptions s = o;
    s.read_fraction = 0.0;
    s.chaos_us = 3'000'000;
    s.steal_probe_us = 2'000'000;
    s.steal_probe_node = static_cast<atlas::consensus::NodeId>(zone * 3 + 1);
    SimResult sr = atlas::sim::RunSimulation(s);
    std::printf("Fz=%d steal of t0 from %s to %s: %.2f ms%s\n", fz, o.wan.zones[0].c_str(),
                o.wan.zones[zone].c_str(), sr.steal_latency_ms,
                sr.violations.empty() ? "" : " VIOLATION");
  }
}

// 3. 70% locality workload: WPaxos (adaptive) vs one leader for every table (Multi-Paxos).
void LocalityFigures(const SimOptions& o, int fz,
                     const std::vector<std::vector<double>>& locality) {
  for (int multi = 0; multi <= 1; ++multi) {
    SimOptions w = o;
    w.objects = 10;
    w.clients = 30;
    w.keys_per_object = 4;
    w.read_fraction = 0.5;
    w.open_loop_interval_us = 400'000;
    w.workload = atlas::sim::Workload::kLocality;
    w.locality = locality;
    w.multi_paxos = multi == 1;
    w.chaos_us = 20'000'000;
    w.warmup_us = 5'000'000;
    SimResult wr = atlas::sim::RunSimulation(w);
    std::vector<double> all = wr.latency.write_ms;
    all.insert(all.end(), wr.latency.read_ms.begin(), wr.latency.read_ms.end());
    std::printf(
        "Fz=%d 70%%-locality %-11s: ops=%zu mean=%.2f ms p50=%.2f ms p99=%.2f ms "
        "(writes mean %.2f, reads mean %.2f) ownership moves after warmup=%llu, "
        "tables owned in their home zone at the end=%d/10%s\n",
        fz, multi ? "Multi-Paxos" : "WPaxos", all.size(), Mean(all), Percentile(all, 0.5),
        Percentile(all, 0.99), Mean(wr.latency.write_ms), Mean(wr.latency.read_ms),
        static_cast<unsigned long long>(wr.ownership_changes), wr.objects_at_home,
        wr.violations.empty() ? "" : " VIOLATION");
  }
}

// 4. 50/50 two-zone workload: must not thrash.
void TwoZoneFigures(const SimOptions& o, int fz) {
  SimOptions t = o;
  t.objects = 4;
  t.clients = 12;
  t.read_fraction = 0.5;
  t.open_loop_interval_us = 200'000;
  t.workload = atlas::sim::Workload::kTwoZone;
  t.chaos_us = 20'000'000;
  t.warmup_us = 5'000'000;
  SimResult tr = atlas::sim::RunSimulation(t);
  std::printf(
      "Fz=%d 50/50 two-zone (va,or) workload: ownership moves after warmup=%llu, "
      "steals in the whole run=%llu (4 tables) mean=%.2f ms%s\n",
      fz, static_cast<unsigned long long>(tr.ownership_changes),
      static_cast<unsigned long long>(tr.probes.steals_won), Mean(tr.latency.write_ms),
      tr.violations.empty() ? "" : " VIOLATION");
}

int WanFigures(const SimOptions& base, const std::string& locality_path) {
  std::vector<std::vector<double>> locality;
  if (locality_path.empty() || !ParseLocality(locality_path, locality)) locality = DefaultLocality();
  std::printf("# Simulated WAN figures: 5 zones x 3 nodes, RTT matrix %s, intra-zone RTT %.3f ms\n",
              base.wan.zones.size() == 5 ? "rtt-5zones" : "custom",
              static_cast<double>(base.wan.intra_zone_rtt_us) / 1000.0);
  for (int fz = 0; fz <= 1; ++fz) {
    SimOptions o = base;
    o.zone_sizes = {3, 3, 3, 3, 3};
    o.quorum = {1, fz};
    o.faults = FaultMix{};
    o.trace = false;
    o.objects = 1;
    o.clients = 1;
    o.chaos_us = 6'000'000;
    o.quiet_us = 1'000'000;
    o.warmup_us = 1'000'000;
    o.think_us = 1000;
    OwnedTableFigures(o, fz);
    StealFigures(o, fz);
    LocalityFigures(o, fz, locality);
    TwoZoneFigures(o, fz);
  }
  return 0;
}

// The command line: the simulation's options and what the driver does with them.
struct Args {
  SimOptions opt;
  uint64_t first = 1, last = 1;  // the seeds, inclusive
  std::string faults = "none", rtt_path, locality_path;
  bool expect_violation = false, require_probes = false, wan = false, membership = false;
  bool no_lease_check = false;  // leave lease overlaps to the linearizability checker
};

// The flags that switch something on; nullptr for any other.
bool* SwitchFor(const std::string& flag, Args* a) {
  SimOptions& o = a->opt;
  const std::pair<const char*, bool*> switches[] = {
      {"--random-cluster", &o.randomize_cluster},
      {"--trace", &o.trace},
      {"--bug-forget-promises", &o.bug_forget_promises},
      {"--bug-unsafe-reads", &o.bug_unsafe_reads},
      {"--bug-latest-config-only", &o.bug_latest_config_only},
      {"--bug-reuse-sequence-numbers", &o.bug_reuse_sequence_numbers},
      {"--bug-send-before-persist", &o.bug_send_before_persist},
      {"--bug-count-own-ack-before-persist", &o.bug_count_own_ack_before_persist},
      {"--bug-count-lazy-as-acked", &o.bug_count_lazy_as_acked},
      {"--bug-ack-unsynced-accepts", &o.bug_ack_unsynced_accepts},
      {"--bug-evict-accepted", &o.bug_evict_accepted},
      {"--bug-rest-forgets-promise", &o.bug_rest_forgets_promise},
      {"--bug-rest-without-round-trip", &o.bug_rest_without_round_trip},
      {"--bug-reports-never-wake", &o.bug_reports_never_wake},
      {"--bug-digest-without-commit", &o.bug_digest_without_commit},
      {"--bug-meta-cache-outlives-crash", &o.bug_meta_cache_outlives_crash},
      {"--bug-keep-local-reads", &o.bug_keep_local_reads},
      {"--bug-snapshot-unpinned", &o.bug_snapshot_unpinned},
      {"--bug-install-without-marker", &o.bug_install_without_marker},
      {"--bug-ignore-untrusted-clock", &o.bug_ignore_untrusted_clock},
      {"--bug-drift-beyond-bound", &o.bug_drift_beyond_bound},
      {"--holder-leases", &o.holder_leases},
      {"--auto-reads", &o.auto_reads},
      {"--bug-holder-reads-expired", &o.bug_holder_reads_expired},
      {"--bug-commit-without-holders", &o.bug_commit_without_holders},
      {"--bug-holder-reads-skip-accepted", &o.bug_holder_reads_skip_accepted},
      {"--bug-cas-without-condition", &o.bug_cas_without_condition},
      {"--no-lease-check", &a->no_lease_check},
      {"--membership", &a->membership},
      {"--expect-violation", &a->expect_violation},
      {"--require-probes", &a->require_probes},
      {"--multi-paxos", &o.multi_paxos},
      {"--wan-figures", &a->wan},
  };
  for (const auto& [name, field] : switches) {
    if (flag == name) return field;
  }
  return nullptr;
}

// The flags that take a whole number: what each does with it; an empty function for others.
std::function<void(int64_t)> NumberFlag(const std::string& flag, Args* a) {
  SimOptions& o = a->opt;
  if (flag == "--seed") return [a](int64_t v) { a->first = a->last = static_cast<uint64_t>(v); };
  if (flag == "--fn") return [&o](int64_t v) { o.quorum.fn = static_cast<int>(v); };
  if (flag == "--fz") return [&o](int64_t v) { o.quorum.fz = static_cast<int>(v); };
  if (flag == "--objects") return [&o](int64_t v) { o.objects = static_cast<int>(v); };
  if (flag == "--clients") return [&o](int64_t v) { o.clients = static_cast<int>(v); };
  if (flag == "--chaos-ms") return [&o](int64_t v) { o.chaos_us = v * 1000; };
  if (flag == "--quiet-ms") return [&o](int64_t v) { o.quiet_us = v * 1000; };
  if (flag == "--read-lease-ms") return [&o](int64_t v) { o.read_lease_ms = v; };
  if (flag == "--read-percent") return [&o](int64_t v) { o.read_fraction = v / 100.0; };
  // The share of writes done as a read-modify-write (a TXN read, then KEY SET ... IF REV).
  if (flag == "--cas-percent") return [&o](int64_t v) { o.cas_fraction = v / 100.0; };
  if (flag == "--clock-drift-ppm") return [&o](int64_t v) { o.clock_drift_ppm = v; };
  if (flag == "--request-timeout-ms") return [&o](int64_t v) { o.base.request_timeout_ticks = v * 1000 / o.tick_us; };
  if (flag == "--untrusted-clock") {
    return [&o](int64_t v) { o.untrusted_clocks.insert(static_cast<atlas::consensus::NodeId>(v)); };
  }
  if (flag == "--membership-max") {
    return [&o](int64_t v) { o.membership_changes_max = static_cast<int>(v); };
  }
  if (flag == "--heartbeat-objects-max") {
    return [&o](int64_t v) { o.base.heartbeat_objects_max = static_cast<size_t>(v); };
  }
  return {};
}

// The flags that take text; false for a value it cannot use or a flag it does not know.
bool TextFlag(const std::string& flag, const std::string& value, Args* a) {
  SimOptions& o = a->opt;
  if (flag == "--seeds") {
    std::vector<std::string> p = absl::StrSplit(value, ':');
    if (p.size() != 2 || !absl::SimpleAtoi(p[0], &a->first) || !absl::SimpleAtoi(p[1], &a->last) ||
        a->last <= a->first) {
      return false;
    }
    --a->last;  // A:B is half-open.
  } else if (flag == "--faults") {
    a->faults = value;
  } else if (flag == "--zones") {
    o.zone_sizes.clear();
    for (absl::string_view z : absl::StrSplit(value, ',')) {
      o.zone_sizes.push_back(std::stoi(std::string(z)));
    }
  } else if (flag == "--rtt") {
    a->rtt_path = value;
  } else if (flag == "--locality") {
    a->locality_path = value;
  } else if (flag == "--crash-before-sync") {
    return absl::SimpleAtod(value, &o.crash_before_sync_chance);
  } else if (flag == "--clock-offset") {
    // <node>:<ms>, repeatable: that node's wall clock runs this far ahead (or behind).
    std::vector<std::string> p = absl::StrSplit(value, ':');
    uint64_t node = 0;
    int64_t ms = 0;
    if (p.size() != 2 || !absl::SimpleAtoi(p[0], &node) || !absl::SimpleAtoi(p[1], &ms)) {
      return false;
    }
    o.clock_offsets_ms[static_cast<atlas::consensus::NodeId>(node)] = ms;
  } else {
    return false;
  }
  return true;
}

// False (after the usage) for a command line it cannot use.
bool ParseArgs(int argc, char** argv, Args* a) {
  a->opt.trace = false;
  for (int i = 1; i < argc; ++i) {
    const std::string flag = argv[i];
    if (bool* on = SwitchFor(flag, a)) {
      *on = true;
    } else if (flag == "--no-promise-check") {
      a->opt.check_promises = false;
    } else if (i + 1 >= argc) {
      Usage();
      return false;  // every other flag takes a value
    } else if (auto set = NumberFlag(flag, a)) {
      int64_t v = 0;
      if (!absl::SimpleAtoi(argv[++i], &v)) {
        Usage();
        return false;
      }
      set(v);
    } else if (!TextFlag(flag, argv[++i], a)) {
      Usage();
      return false;
    }
  }
  return true;
}

std::string ProbesLine(const atlas::consensus::Probes& p) {
  const std::pair<const char*, uint64_t> counts[] = {
      {"steals", p.steals_started},
      {"won", p.steals_won},
      {"preempted(duels)", p.steals_preempted},
      {"steal_during_phase2", p.steal_during_phase2},
      {"recovered_uncommitted", p.recovered_uncommitted},
      {"recovered_noop", p.recovered_noop},
      {"snapshots_installed", p.snapshots_installed},
      {"snapshots_refused", p.snapshots_refused},
      {"installs_resumed", p.installs_resumed},
      {"catchup_entries", p.catchup_entries},
      {"catchups_queued", p.catchups_queued},
      {"catchups_throttled", p.catchups_throttled},
      {"catchups_held", p.catchups_held},
      {"directory_reports", p.directory_reports},
      {"digests_differed", p.digests_differed},
      {"ranges_received", p.ranges_received},
      {"forwards", p.forwards},
      {"forward_rejects", p.forward_rejects},
      {"read_rounds", p.read_rounds},
      {"reads_without_round", p.reads_without_round},
      {"reads_on_lease", p.reads_on_lease},
      {"leases_granted", p.leases_granted},
      {"prepares_held", p.prepares_held},
      {"holders_granted", p.holders_granted},
      {"holders_refused", p.holders_refused},
      {"reads_on_holder_lease", p.reads_on_holder_lease},
      {"commits_held_for_holders", p.commits_held_for_holders},
      {"moves", p.moves_suggested},
      {"accept_resends", p.accept_resends},
      {"rested", p.objects_rested},
      {"woken", p.objects_woken},
      {"reanchors", p.reanchors_committed},
      {"joint_phase1", p.joint_phase1},
      {"fence_rejections", p.fence_rejections},
      {"settles", p.settles_reached},
      {"sweeper_steals", p.sweeper_steals},
      {"anchor_acks_deferred", p.anchor_acks_deferred},
      {"snapshot_chunks", p.snapshot_chunks},
      {"lazy_flushes", p.lazy_flushes},
  };
  std::string line = "probes:";
  for (const auto& [name, n] : counts) line += " " + std::string(name) + "=" + std::to_string(n);
  return line;
}

// What a sweep of seeds adds up.
struct Totals {
  uint64_t runs = 0, failed = 0, inconclusive = 0, ops = 0, ok_ops = 0, unknown = 0;
  uint64_t changes = 0, refused = 0, cas_applied = 0, cas_refused = 0;
  atlas::consensus::Probes probes;
};

void RunSeed(const Args& args, bool mix, uint64_t seed, Totals* t) {
  SimOptions o = args.opt;
  o.seed = seed;
  if (mix) atlas::sim::ParseFaults(atlas::sim::MixFaults(seed), o.faults);
  if (args.membership) o.faults.membership = true;
  if (args.no_lease_check) o.check_leases = false;
  SimResult r = atlas::sim::RunSimulation(o);
  ++t->runs;
  t->ops += r.ops_invoked;
  t->ok_ops += r.ops_ok;
  t->unknown += r.ops_unknown;
  t->changes += r.membership_applied;
  t->refused += r.membership_refused;
  t->cas_applied += r.cas_applied;
  t->cas_refused += r.cas_refused;
  if (r.inconclusive) {
    ++t->inconclusive;
    std::printf("seed %llu inconclusive (linearizability search bound hit; %s, faults %s)\n",
                static_cast<unsigned long long>(seed), r.cluster.c_str(),
                o.faults.ToString().c_str());
  }
  atlas::sim::AddProbes(t->probes, r.probes);
  if (!r.violations.empty()) {
    ++t->failed;
    std::printf("seed %llu FAILED (%s, faults %s): %s\n  replay: %s\n",
                static_cast<unsigned long long>(seed), r.cluster.c_str(),
                o.faults.ToString().c_str(), r.violations.front().c_str(),
                atlas::sim::ReplayCommand(o).c_str());
    // The first agreement or linearizability violation too, if later: with a check switched
    // off, the first may not be what a search for a bug switch's consequence is after.
    for (const std::string& v : r.violations) {
      if (v.starts_with("agreement") || v.starts_with("linearizability")) {
        if (&v != &r.violations.front()) std::printf("  also: %s\n", v.c_str());
        break;
      }
    }
  }
  if (o.trace) {
    std::printf(
        "trace hash %016llx; %s; final members %s; ops %llu ok %llu unknown %llu; "
        "violations %zu\n",
        static_cast<unsigned long long>(r.trace_hash), r.cluster.c_str(), r.final_members.c_str(),
        static_cast<unsigned long long>(r.ops_invoked), static_cast<unsigned long long>(r.ops_ok),
        static_cast<unsigned long long>(r.ops_unknown), r.violations.size());
  }
}

void PrintTotals(const Args& args, const Totals& t) {
  std::printf(
      "atlas-sim: seeds %llu..%llu runs=%llu violations=%llu inconclusive=%llu ops=%llu "
      "ok=%llu unknown=%llu\n",
      static_cast<unsigned long long>(args.first), static_cast<unsigned long long>(args.last),
      static_cast<unsigned long long>(t.runs), static_cast<unsigned long long>(t.failed),
      static_cast<unsigned long long>(t.inconclusive), static_cast<unsigned long long>(t.ops),
      static_cast<unsigned long long>(t.ok_ops), static_cast<unsigned long long>(t.unknown));
  if (t.cas_applied + t.cas_refused > 0) {
    std::printf("compare-and-sets: applied=%llu refused=%llu\n",
                static_cast<unsigned long long>(t.cas_applied),
                static_cast<unsigned long long>(t.cas_refused));
  }
  if (t.changes + t.refused > 0) {
    std::printf("membership: changes applied=%llu refused=%llu\n",
                static_cast<unsigned long long>(t.changes),
                static_cast<unsigned long long>(t.refused));
  }
  std::printf("%s\n", ProbesLine(t.probes).c_str());
}

}  // namespace

int main(int argc, char** argv) {
  Args args;
  if (!ParseArgs(argc, argv, &args)) return 2;
  if (!args.rtt_path.empty()) args.opt.wan = atlas::sim::LoadWan(args.rtt_path);
  if (args.wan) return WanFigures(args.opt, args.locality_path);
  const bool mix = args.faults == "mix";
  if (!mix && !atlas::sim::ParseFaults(args.faults, args.opt.faults)) {
    Usage();
    return 2;
  }
  Totals totals;
  for (uint64_t seed = args.first; seed <= args.last; ++seed) RunSeed(args, mix, seed, &totals);
  PrintTotals(args, totals);
  if (args.require_probes) {
    const atlas::consensus::Probes& p = totals.probes;
    const bool hit = p.steals_preempted > 0 && p.steal_during_phase2 > 0 &&
                     p.recovered_uncommitted > 0 && p.snapshots_installed > 0 &&
                     p.objects_rested > 0 && p.objects_woken > 0;
    if (!hit) {
      std::printf("coverage probes NOT all hit\n");
      return 1;
    }
  }
  if (args.expect_violation) return totals.failed > 0 ? 0 : 1;
  return totals.failed > 0 ? 1 : 0;
}
