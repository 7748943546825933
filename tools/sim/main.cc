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
               "                 [--bug-reply-before-persist] [--crash-before-sync P]\n"
               "                 [--expect-violation] [--require-probes] [--multi-paxos]\n"
               "                 [--heartbeat-objects-max N] [--clock-offset NODE:MS]...\n"
               "                 [--untrusted-clock NODE]... [--bug-ignore-untrusted-clock]\n"
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
    // 1. Commit latency of an owned table: one client per run, in each zone, writing to a table
    //    its own node owns (it steals it on the first write; the warmup hides that).
    o.objects = 1;
    o.clients = 1;
    o.chaos_us = 6'000'000;
    o.quiet_us = 1'000'000;
    o.warmup_us = 1'000'000;
    o.think_us = 1000;
    for (int zone = 0; zone < 5; ++zone) {
      SimOptions c = o;
      c.client_nodes = {static_cast<atlas::consensus::NodeId>(zone * 3 + 1)};
      c.read_fraction = 0.0;
      SimResult r = atlas::sim::RunSimulation(c);
      c.read_fraction = 1.0;
      SimResult rr = atlas::sim::RunSimulation(c);
      std::printf("Fz=%d Fn=1 owned table in %s: commit mean=%.2f ms p99=%.2f ms (n=%zu); "
                  "linearizable read mean=%.2f ms%s\n",
                  fz, o.wan.zones[zone].c_str(), Mean(r.latency.write_ms),
                  Percentile(r.latency.write_ms, 0.99), r.latency.write_ms.size(),
                  Mean(rr.latency.read_ms),
                  r.violations.empty() && rr.violations.empty() ? "" : " VIOLATION");
    }
    // 2. Steal latency: va owns t0 (client writes), then a node in each zone steals it.
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
    // 3. 70% locality workload: WPaxos (adaptive) vs one leader for every table (Multi-Paxos).
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
      std::printf("Fz=%d 70%%-locality %-11s: ops=%zu mean=%.2f ms p50=%.2f ms p99=%.2f ms "
                  "(writes mean %.2f, reads mean %.2f) ownership moves after warmup=%llu, "
                  "tables owned in their home zone at the end=%d/10%s\n",
                  fz, multi ? "Multi-Paxos" : "WPaxos", all.size(), Mean(all),
                  Percentile(all, 0.5), Percentile(all, 0.99), Mean(wr.latency.write_ms),
                  Mean(wr.latency.read_ms),
                  static_cast<unsigned long long>(wr.ownership_changes), wr.objects_at_home,
                  wr.violations.empty() ? "" : " VIOLATION");
    }
    // 4. 50/50 two-zone workload: must not thrash.
    SimOptions t = o;
    t.objects = 4;
    t.clients = 12;
    t.read_fraction = 0.5;
    t.open_loop_interval_us = 200'000;
    t.workload = atlas::sim::Workload::kTwoZone;
    t.chaos_us = 20'000'000;
    t.warmup_us = 5'000'000;
    SimResult tr = atlas::sim::RunSimulation(t);
    std::printf("Fz=%d 50/50 two-zone (va,or) workload: ownership moves after warmup=%llu, "
                "steals in the whole run=%llu (4 tables) mean=%.2f ms%s\n",
                fz, static_cast<unsigned long long>(tr.ownership_changes),
                static_cast<unsigned long long>(tr.probes.steals_won),
                Mean(tr.latency.write_ms), tr.violations.empty() ? "" : " VIOLATION");
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  SimOptions opt;
  opt.trace = false;
  uint64_t first = 1, last = 1;
  std::string faults = "none", rtt_path, locality_path;
  bool expect_violation = false, require_probes = false, wan = false, mix = false;
  bool membership = false;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) {
        Usage();
        std::exit(2);
      }
      return argv[++i];
    };
    auto num = [&]() -> int64_t {
      int64_t v = 0;
      if (!absl::SimpleAtoi(next(), &v)) {
        Usage();
        std::exit(2);
      }
      return v;
    };
    if (a == "--seed") {
      first = last = static_cast<uint64_t>(num());
    } else if (a == "--seeds") {
      std::vector<std::string> p = absl::StrSplit(next(), ':');
      if (p.size() != 2 || !absl::SimpleAtoi(p[0], &first) || !absl::SimpleAtoi(p[1], &last) ||
          last <= first) {
        Usage();
        return 2;
      }
      --last;  // A:B is half-open.
    } else if (a == "--faults") {
      faults = next();
    } else if (a == "--random-cluster") {
      opt.randomize_cluster = true;
    } else if (a == "--zones") {
      opt.zone_sizes.clear();
      for (absl::string_view z : absl::StrSplit(next(), ',')) opt.zone_sizes.push_back(std::stoi(std::string(z)));
    } else if (a == "--fn") {
      opt.quorum.fn = static_cast<int>(num());
    } else if (a == "--fz") {
      opt.quorum.fz = static_cast<int>(num());
    } else if (a == "--objects") {
      opt.objects = static_cast<int>(num());
    } else if (a == "--clients") {
      opt.clients = static_cast<int>(num());
    } else if (a == "--chaos-ms") {
      opt.chaos_us = num() * 1000;
    } else if (a == "--quiet-ms") {
      opt.quiet_us = num() * 1000;
    } else if (a == "--rtt") {
      rtt_path = next();
    } else if (a == "--locality") {
      locality_path = next();
    } else if (a == "--trace") {
      opt.trace = true;
    } else if (a == "--bug-forget-promises") {
      opt.bug_forget_promises = true;
    } else if (a == "--bug-unsafe-reads") {
      opt.bug_unsafe_reads = true;
    } else if (a == "--bug-latest-config-only") {
      opt.bug_latest_config_only = true;
    } else if (a == "--bug-reuse-sequence-numbers") {
      opt.bug_reuse_sequence_numbers = true;
    } else if (a == "--bug-send-before-persist") {
      opt.bug_send_before_persist = true;
    } else if (a == "--bug-reply-before-persist") {
      opt.bug_reply_before_persist = true;
    } else if (a == "--crash-before-sync") {
      if (!absl::SimpleAtod(next(), &opt.crash_before_sync_chance)) {
        Usage();
        return 2;
      }
    } else if (a == "--clock-offset") {
      // <node>:<ms>, repeatable: that node's wall clock runs this far ahead (or behind).
      std::vector<std::string> p = absl::StrSplit(next(), ':');
      uint64_t node = 0;
      int64_t ms = 0;
      if (p.size() != 2 || !absl::SimpleAtoi(p[0], &node) || !absl::SimpleAtoi(p[1], &ms)) {
        Usage();
        return 2;
      }
      opt.clock_offsets_ms[static_cast<atlas::consensus::NodeId>(node)] = ms;
    } else if (a == "--untrusted-clock") {
      opt.untrusted_clocks.insert(static_cast<atlas::consensus::NodeId>(num()));
    } else if (a == "--bug-ignore-untrusted-clock") {
      opt.bug_ignore_untrusted_clock = true;
    } else if (a == "--membership") {
      membership = true;
    } else if (a == "--membership-max") {
      opt.membership_changes_max = static_cast<int>(num());
    } else if (a == "--no-promise-check") {
      opt.check_promises = false;
    } else if (a == "--expect-violation") {
      expect_violation = true;
    } else if (a == "--require-probes") {
      require_probes = true;
    } else if (a == "--multi-paxos") {
      opt.multi_paxos = true;
    } else if (a == "--heartbeat-objects-max") {
      opt.base.heartbeat_objects_max = static_cast<size_t>(num());
    } else if (a == "--wan-figures") {
      wan = true;
    } else {
      Usage();
      return 2;
    }
  }
  if (!rtt_path.empty()) opt.wan = atlas::sim::LoadWan(rtt_path);
  if (wan) return WanFigures(opt, locality_path);
  mix = faults == "mix";
  if (!mix && !atlas::sim::ParseFaults(faults, opt.faults)) {
    Usage();
    return 2;
  }
  uint64_t runs = 0, failed = 0, inconclusive = 0, ops = 0, ok_ops = 0, unknown = 0;
  uint64_t changes = 0, refused = 0;
  atlas::consensus::Probes probes;
  for (uint64_t seed = first; seed <= last; ++seed) {
    SimOptions o = opt;
    o.seed = seed;
    if (mix) atlas::sim::ParseFaults(atlas::sim::MixFaults(seed), o.faults);
    if (membership) o.faults.membership = true;
    SimResult r = atlas::sim::RunSimulation(o);
    ++runs;
    ops += r.ops_invoked;
    ok_ops += r.ops_ok;
    unknown += r.ops_unknown;
    changes += r.membership_applied;
    refused += r.membership_refused;
    if (r.inconclusive) {
      ++inconclusive;
      std::printf("seed %llu inconclusive (linearizability search bound hit; %s, faults %s)\n",
                  static_cast<unsigned long long>(seed), r.cluster.c_str(),
                  o.faults.ToString().c_str());
    }
    atlas::sim::AddProbes(probes, r.probes);
    if (!r.violations.empty()) {
      ++failed;
      std::printf("seed %llu FAILED (%s, faults %s): %s\n  replay: %s\n",
                  static_cast<unsigned long long>(seed), r.cluster.c_str(),
                  o.faults.ToString().c_str(), r.violations.front().c_str(),
                  atlas::sim::ReplayCommand(o).c_str());
    }
    if (opt.trace) {
      std::printf("trace hash %016llx; %s; final members %s; ops %llu ok %llu unknown %llu; "
                  "violations %zu\n",
                  static_cast<unsigned long long>(r.trace_hash), r.cluster.c_str(),
                  r.final_members.c_str(),
                  static_cast<unsigned long long>(r.ops_invoked),
                  static_cast<unsigned long long>(r.ops_ok),
                  static_cast<unsigned long long>(r.ops_unknown), r.violations.size());
    }
  }
  std::printf("atlas-sim: seeds %llu..%llu runs=%llu violations=%llu inconclusive=%llu ops=%llu "
              "ok=%llu unknown=%llu\n",
              static_cast<unsigned long long>(first), static_cast<unsigned long long>(last),
              static_cast<unsigned long long>(runs), static_cast<unsigned long long>(failed),
              static_cast<unsigned long long>(inconclusive), static_cast<unsigned long long>(ops),
              static_cast<unsigned long long>(ok_ops), static_cast<unsigned long long>(unknown));
  if (changes + refused > 0) {
    std::printf("membership: changes applied=%llu refused=%llu\n",
                static_cast<unsigned long long>(changes),
                static_cast<unsigned long long>(refused));
  }
  std::printf("probes: steals=%llu won=%llu preempted(duels)=%llu steal_during_phase2=%llu "
              "recovered_uncommitted=%llu recovered_noop=%llu snapshots_installed=%llu "
              "catchup_entries=%llu forwards=%llu forward_rejects=%llu read_rounds=%llu "
              "moves=%llu accept_resends=%llu reanchors=%llu joint_phase1=%llu fence_rejections=%llu "
              "settles=%llu sweeper_steals=%llu anchor_acks_deferred=%llu snapshot_chunks=%llu\n",
              (unsigned long long)probes.steals_started, (unsigned long long)probes.steals_won,
              (unsigned long long)probes.steals_preempted,
              (unsigned long long)probes.steal_during_phase2,
              (unsigned long long)probes.recovered_uncommitted,
              (unsigned long long)probes.recovered_noop,
              (unsigned long long)probes.snapshots_installed,
              (unsigned long long)probes.catchup_entries, (unsigned long long)probes.forwards,
              (unsigned long long)probes.forward_rejects, (unsigned long long)probes.read_rounds,
              (unsigned long long)probes.moves_suggested,
              (unsigned long long)probes.accept_resends,
              (unsigned long long)probes.reanchors_committed,
              (unsigned long long)probes.joint_phase1,
              (unsigned long long)probes.fence_rejections,
              (unsigned long long)probes.settles_reached,
              (unsigned long long)probes.sweeper_steals,
              (unsigned long long)probes.anchor_acks_deferred,
              (unsigned long long)probes.snapshot_chunks);
  if (require_probes) {
    const bool hit = probes.steals_preempted > 0 && probes.steal_during_phase2 > 0 &&
                     probes.recovered_uncommitted > 0 && probes.snapshots_installed > 0;
    if (!hit) {
      std::printf("coverage probes NOT all hit\n");
      return 1;
    }
  }
  if (expect_violation) return failed > 0 ? 0 : 1;
  return failed > 0 ? 1 : 0;
}
