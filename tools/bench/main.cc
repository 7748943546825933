// atlas-bench: a load generator that drives atlasd (Unix socket, tagged pipelined requests),
// Redis (RESP, pipelined) or etcd (v3 KV over gRPC) with the same workload, so the figures of
// the three come from the same key sequence, value sizes and concurrency. docs/atlas-bench.md
// has the options, the workload semantics and the JSON schema.
//
// Each connection runs on its own thread and keeps up to --depth requests in flight. Closed
// loop (default): a new request goes out as soon as one completes. Open loop (--rate): requests
// arrive on a fixed schedule whatever the system does, and a request's latency counts from its
// scheduled time, so a system that falls behind is charged for the queue it builds.
//
// Exit status: 0 when every request succeeded, 1 on errors, 2 on bad usage.
#include <algorithm>
#include <atomic>
#include <cctype>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <deque>
#include <fstream>
#include <limits>
#include <memory>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "nlohmann/json.hpp"
#include "socketproto/str.h"
#include "tools/bench/driver.h"
#include "tools/bench/histogram.h"
#include "tools/bench/workload.h"

namespace atlas::bench {
namespace {

using Json = nlohmann::ordered_json;

struct Options {
  std::vector<std::string> target_specs;
  std::string socket;  // alias of --target atlas:<socket>
  std::string op_name = "put";
  double get_ratio = 0.5;  // --op mixed
  std::optional<double> write_ratio;
  int connections = 1;  // per zone
  int depth = 1;
  uint64_t ops = 0;       // 0: unbounded (then duration bounds the run)
  double duration_s = 0;  // 0: unbounded (then ops bounds the run)
  double rate = 0;        // total ops/s; 0: closed loop
  size_t value_size = 100;
  // > 1: each write is a TXN of this many KEY PUTs, to rows <key>_0 .. <key>_<n-1> of the
  // key's table (atlasd only); an op is the transaction, `rows_per_sec` counts its rows.
  int txn_size = 1;
  std::string distribution = "uniform";
  std::string locality_csv;
  double conflict_percent = 0;
  bool preload = true;
  bool json = false;
  int timeout_ms = 10000;
  uint64_t seed = 1;
};

// Zone and table names end up in atlasd table names: [A-Za-z0-9_-].
bool ValidName(std::string_view s, size_t max) {
  if (s.empty() || s.size() > max) return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-';
  });
}

// --target [zone=<name>@]<system>:<address>
absl::StatusOr<Target> ParseTarget(const std::string& spec) {
  Target t;
  t.spec = spec;
  std::string_view rest = spec;
  t.zone = "default";
  if (rest.rfind("zone=", 0) == 0) {
    size_t at = rest.find('@');
    if (at == std::string_view::npos) {
      return absl::InvalidArgumentError(StrCat("target '", spec, "': zone=<name>@<system>:..."));
    }
    t.zone = std::string(rest.substr(5, at - 5));
    rest.remove_prefix(at + 1);
    if (!ValidName(t.zone, 64))
      return absl::InvalidArgumentError(StrCat("target '", spec, "': bad zone name"));
  }
  size_t colon = rest.find(':');
  std::string_view system = rest.substr(0, colon);
  if (colon == std::string_view::npos || colon + 1 == rest.size()) {
    return absl::InvalidArgumentError(
        StrCat("target '", spec,
               "': expected atlas:<socket>, redis:<host:port|socket> or "
               "etcd:<host:port>"));
  }
  if (system == "atlas") {
    t.system = Target::System::kAtlas;
  } else if (system == "redis") {
    t.system = Target::System::kRedis;
  } else if (system == "etcd") {
    t.system = Target::System::kEtcd;
  } else {
    return absl::InvalidArgumentError(StrCat("target '", spec, "': unknown system '", system, "'"));
  }
  t.address = std::string(rest.substr(colon + 1));
  return t;
}

std::string MakeValue(size_t size, uint64_t seed) {
  static constexpr char kAlphabet[] =
      "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
  std::mt19937_64 rng(seed);
  std::string v(size, 'x');
  for (char& c : v) c = kAlphabet[rng() % (sizeof kAlphabet - 1)];
  return v;
}

double Seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

// Per-zone, per-second latency and counts; workers add a finished second at a time.
class Series {
 public:
  struct Cell {
    CoarseHistogram latency_ns;
    uint64_t ops = 0;
    uint64_t errors = 0;
  };
  explicit Series(size_t zones) : zones_(zones) {}

  void Add(size_t second, size_t zone, const Cell& cell) {
    absl::MutexLock lock(&mu_);
    if (cells_.size() <= second) cells_.resize(second + 1, std::vector<Cell>(zones_));
    Cell& c = cells_[second][zone];
    c.latency_ns.Merge(cell.latency_ns);
    c.ops += cell.ops;
    c.errors += cell.errors;
  }
  // A copy: read once, after every worker finished.
  std::vector<std::vector<Cell>> cells() const {
    absl::MutexLock lock(&mu_);
    return cells_;
  }

 private:
  size_t zones_;
  mutable absl::Mutex mu_;
  std::vector<std::vector<Cell>> cells_ ABSL_GUARDED_BY(mu_);
};

// Shared between the workers and the progress reporter.
struct Shared {
  std::atomic<uint64_t> claimed{0};  // operations handed out (the --ops budget)
  std::atomic<uint64_t> completed{0};
  std::atomic<uint64_t> errors{0};
};

struct Stats {
  Histogram latency_ns;
  Histogram read_ns, write_ns;  // the same, by kind (a mix's reads and writes apart)
  uint64_t ops = 0;
  uint64_t rows = 0;  // rows written or read by the ops that succeeded (a TXN: its puts)
  uint64_t errors = 0;
  uint64_t not_found = 0;
  std::string first_error;

  void Merge(const Stats& o) {
    latency_ns.Merge(o.latency_ns);
    read_ns.Merge(o.read_ns);
    write_ns.Merge(o.write_ns);
    ops += o.ops;
    rows += o.rows;
    errors += o.errors;
    not_found += o.not_found;
    if (first_error.empty()) first_error = o.first_error;
  }
};

// Where a worker's requests come from: the measured workload, or one home's keys in order
// (the preload).
struct Source {
  const Workload* workload = nullptr;
  int zone = 0;
  // Measurement: the shared --ops budget (0: none), claimed from `claimed`.
  uint64_t ops_budget = 0;
  std::atomic<uint64_t>* claimed = nullptr;
  // Preload: keys 0..keys-1 of `home`, in the order claimed from `claimed`.
  bool preload = false;
  int home = kNoHome;
};

struct PhaseSpec {
  const char* label;
  Clock::time_point start;
  Clock::time_point deadline;  // no new requests after it
  int depth;
  double rate_per_worker;  // 0: closed loop
  double phase_offset;     // open loop: this worker's first arrival, in intervals (0..1)
};

class Worker {
 public:
  Worker(const Options& o, const PhaseSpec& phase, const Target& target, Source source, int index,
         const std::string& value, Shared* shared, Series* series)
      : options_(o),
        phase_(phase),
        target_(target),
        source_(source),
        index_(index),
        value_(value),
        shared_(shared),
        series_(series),
        rng_(o.seed * 1000003 + static_cast<uint64_t>(index)) {}

  Stats Run() {
    driver_ = MakeDriver();
    if (auto s = driver_->Connect(std::chrono::milliseconds(options_.timeout_ms)); !s.ok()) {
      Fail(StrCat(target_.spec, ": ", ToStd(s.message())));
      return std::move(stats_);
    }
    const bool open = phase_.rate_per_worker > 0;
    const auto interval = open ? std::chrono::duration_cast<Clock::duration>(
                                     std::chrono::duration<double>(1 / phase_.rate_per_worker))
                               : Clock::duration::zero();
    next_arrival_ =
        phase_.start + std::chrono::duration_cast<Clock::duration>(interval * phase_.phase_offset);
    last_progress_ = Clock::now();
    std::vector<Completion> done;
    for (;;) {
      auto now = Clock::now();
      if (open) {
        Arrivals(now, interval);
      } else {
        ClosedLoopIssue(now);
      }
      if (auto s = driver_->Flush(); !s.ok()) {
        Fail(StrCat("send: ", ToStd(s.message())));
        break;
      }
      if (inflight_.empty()) {
        if (exhausted_) break;
        // Idle: an open loop waits for its next arrival, a shift client for its zone's turn.
        auto wake = open ? next_arrival_ : NextChange(now);
        std::this_thread::sleep_until(std::min(wake, now + std::chrono::milliseconds(100)));
        last_progress_ = Clock::now();
        continue;
      }
      auto wake = now + std::chrono::milliseconds(options_.timeout_ms);
      if (open && !exhausted_) wake = std::min(wake, next_arrival_);
      done.clear();
      if (auto s = driver_->Poll(wake, &done); !s.ok()) {
        Complete(done);
        Fail(std::string(ToStd(s.message())));
        break;
      }
      Complete(done);
      now = Clock::now();
      if (!done.empty()) {
        last_progress_ = now;
      } else if (now - last_progress_ >= std::chrono::milliseconds(options_.timeout_ms)) {
        Fail(StrCat("no reply within ", options_.timeout_ms, " ms"));
        break;
      }
    }
    FlushSecond();
    return std::move(stats_);
  }

 private:
  struct Pending {
    Clock::time_point start;  // sent, or (open loop) scheduled
    uint64_t rows = 1;        // a TXN: its puts
    bool write = true;
  };

  std::unique_ptr<Driver> MakeDriver() {
    switch (target_.system) {
      case Target::System::kAtlas:
        return MakeAtlasDriver(target_.address, StrCat("bench-", index_));
      case Target::System::kRedis:
        return MakeRedisDriver(target_.address);
      case Target::System::kEtcd:
        return MakeEtcdDriver(target_.address, index_);
    }
    return nullptr;
  }

  double Elapsed(Clock::time_point t) const { return Seconds(t - phase_.start); }

  Clock::time_point NextChange(Clock::time_point now) const {
    double next = source_.workload->NextChange(Elapsed(now));
    if (!std::isfinite(next)) return phase_.deadline;
    return std::min(phase_.deadline, phase_.start + std::chrono::duration_cast<Clock::duration>(
                                                        std::chrono::duration<double>(next)));
  }

  // Claims one operation of the budget (its sequence number in `*n`); false when the phase has
  // no more work.
  bool Claim(Clock::time_point at, uint64_t* n) {
    if (exhausted_) return false;
    if (at >= phase_.deadline) {
      exhausted_ = true;
      return false;
    }
    uint64_t limit = source_.preload ? source_.workload->spec().keys : source_.ops_budget;
    *n = source_.claimed->fetch_add(1, std::memory_order_relaxed);
    if (limit != 0 && *n >= limit) {
      exhausted_ = true;
      return false;
    }
    return true;
  }

  void ClosedLoopIssue(Clock::time_point now) {
    while (inflight_.size() < static_cast<size_t>(phase_.depth)) {
      if (!source_.preload && !source_.workload->Active(source_.zone, Elapsed(now))) {
        if (now >= phase_.deadline) exhausted_ = true;
        return;
      }
      if (!ClaimAndStart(now)) return;
    }
  }

  // Open loop: every scheduled arrival up to `now` joins the backlog; the backlog drains into
  // the window. Arrivals while the zone is not active (shift) do not happen.
  void Arrivals(Clock::time_point now, Clock::duration interval) {
    while (!exhausted_ && next_arrival_ <= now) {
      auto at = next_arrival_;
      next_arrival_ += interval;
      if (!source_.workload->Active(source_.zone, Elapsed(at))) {
        if (at >= phase_.deadline) exhausted_ = true;
        continue;
      }
      uint64_t n;
      if (!Claim(at, &n)) break;
      backlog_.push_back(at);
    }
    while (!backlog_.empty() && inflight_.size() < static_cast<size_t>(phase_.depth)) {
      StartClaimed(backlog_.front(), 0);
      backlog_.pop_front();
    }
  }

  bool ClaimAndStart(Clock::time_point now) {
    uint64_t n;
    if (!Claim(now, &n)) return false;
    StartClaimed(now, n);
    return true;
  }

  // `n`: the claimed sequence number, which is the key index of a preload.
  void StartClaimed(Clock::time_point start, uint64_t n) {
    const Workload& w = *source_.workload;
    KeyChoice key;
    bool write = true;
    if (source_.preload) {
      key = {source_.home, n};
    } else {
      key = w.Pick(source_.zone, Elapsed(start), rng_);
      write = w.IsWrite(rng_);
    }
    uint64_t token = next_token_++;
    std::string name = w.KeyName(key);
    if (write && options_.txn_size > 1) {
      std::vector<std::string> rows;
      for (int i = 0; i < options_.txn_size; ++i) rows.push_back(StrCat(name, "_", i));
      driver_->StartTxn(token, rows, value_);
    } else if (write) {
      driver_->StartPut(token, name, value_);
    } else {
      driver_->StartGet(token, name);
    }
    const bool txn = write && options_.txn_size > 1;
    inflight_.emplace(token,
                      Pending{start, txn ? static_cast<uint64_t>(options_.txn_size) : 1, write});
  }

  void Complete(const std::vector<Completion>& done) {
    auto now = Clock::now();
    for (const Completion& c : done) {
      auto it = inflight_.find(c.token);
      if (it == inflight_.end()) continue;
      auto ns = static_cast<uint64_t>(
          std::chrono::duration_cast<std::chrono::nanoseconds>(now - it->second.start).count());
      const uint64_t rows = it->second.rows;
      (it->second.write ? stats_.write_ns : stats_.read_ns).Record(ns);
      inflight_.erase(it);
      stats_.latency_ns.Record(ns);
      ++stats_.ops;
      bool error = c.outcome == Completion::Outcome::kError;
      if (!error) stats_.rows += rows;
      if (error) {
        ++stats_.errors;
        shared_->errors.fetch_add(1, std::memory_order_relaxed);
        if (stats_.first_error.empty()) stats_.first_error = c.error;
      } else if (c.outcome == Completion::Outcome::kNotFound) {
        ++stats_.not_found;
      }
      shared_->completed.fetch_add(1, std::memory_order_relaxed);
      RecordSecond(now, ns, error);
    }
  }

  void RecordSecond(Clock::time_point now, uint64_t ns, bool error) {
    if (series_ == nullptr) return;
    auto second = static_cast<size_t>(std::max(0.0, Elapsed(now)));
    if (second != second_) {
      FlushSecond();
      second_ = second;
    }
    cell_.latency_ns.Record(ns);
    ++cell_.ops;
    cell_.errors += error ? 1 : 0;
  }

  void FlushSecond() {
    if (series_ == nullptr || cell_.ops == 0) return;
    series_->Add(second_, static_cast<size_t>(source_.zone), cell_);
    cell_ = Series::Cell{};
  }

  // The connection is unusable: everything in flight (and queued, open loop) counts as failed.
  void Fail(std::string message) {
    uint64_t lost = std::max<uint64_t>(inflight_.size() + backlog_.size(), 1);
    stats_.errors += lost;
    shared_->errors.fetch_add(lost, std::memory_order_relaxed);
    if (stats_.first_error.empty()) stats_.first_error = std::move(message);
    inflight_.clear();
    backlog_.clear();
  }

  const Options& options_;
  const PhaseSpec& phase_;
  const Target& target_;
  Source source_;
  int index_;
  const std::string& value_;
  Shared* shared_;
  Series* series_;
  std::mt19937_64 rng_;
  std::unique_ptr<Driver> driver_;
  absl::flat_hash_map<uint64_t, Pending> inflight_;
  std::deque<Clock::time_point> backlog_;
  Clock::time_point next_arrival_;
  Clock::time_point last_progress_;
  uint64_t next_token_ = 0;
  bool exhausted_ = false;
  Stats stats_;
  size_t second_ = 0;
  Series::Cell cell_;
};

struct Assignment {
  const Target* target;
  Source source;
};

struct PhaseResult {
  std::vector<Stats> zones;  // by zone index
  Stats total;
  double seconds = 0;
};

PhaseResult RunPhase(const Options& o, PhaseSpec phase, const std::vector<Assignment>& workers,
                     size_t zone_count, const std::string& value, Series* series,
                     const Workload* workload) {
  Shared shared;
  std::vector<Stats> results(workers.size());
  std::vector<std::thread> threads;
  phase.start = Clock::now();
  if (phase.deadline != Clock::time_point::max())
    phase.deadline += phase.start - Clock::time_point{};
  for (size_t i = 0; i < workers.size(); ++i) {
    threads.emplace_back([&, i] {
      PhaseSpec mine = phase;
      mine.phase_offset = static_cast<double>(i) / static_cast<double>(workers.size());
      Source source = workers[i].source;
      if (source.claimed == nullptr) source.claimed = &shared.claimed;
      results[i] =
          Worker(o, mine, *workers[i].target, source, static_cast<int>(i), value, &shared, series)
              .Run();
    });
  }
  // Progress on stderr once per second while the workers run.
  std::atomic<bool> done{false};
  std::thread progress([&] {
    uint64_t last = 0;
    auto next = phase.start + std::chrono::seconds(1);
    while (!done.load()) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
      auto now = Clock::now();
      if (now < next) continue;
      uint64_t c = shared.completed.load(std::memory_order_relaxed);
      double t = Seconds(now - phase.start);
      std::string hot;
      if (workload != nullptr && workload->spec().distribution == Distribution::kShift) {
        hot = StrCat(", hot zone ",
                     workload->spec().zones[static_cast<size_t>(workload->HotZone(t))]);
      }
      std::fprintf(stderr, "[%s %5.1fs] %llu ops, %llu ops/s, %llu errors%s\n", phase.label, t,
                   static_cast<unsigned long long>(c), static_cast<unsigned long long>(c - last),
                   static_cast<unsigned long long>(shared.errors.load()), hot.c_str());
      last = c;
      next += std::chrono::seconds(1);
    }
  });
  for (auto& t : threads) t.join();
  PhaseResult out;
  out.seconds = Seconds(Clock::now() - phase.start);
  done = true;
  progress.join();
  out.zones.resize(zone_count);
  for (size_t i = 0; i < workers.size(); ++i) {
    out.zones[static_cast<size_t>(workers[i].source.zone)].Merge(results[i]);
    out.total.Merge(results[i]);
  }
  return out;
}

double Us(uint64_t ns) { return std::round(static_cast<double>(ns) / 100.0) / 10.0; }
double Round1(double v) { return std::round(v * 10) / 10; }

Json LatencyJson(const Histogram& h) {
  return Json{{"min", Us(h.min())},
              {"p50", Us(h.Quantile(0.50))},
              {"p90", Us(h.Quantile(0.90))},
              {"p99", Us(h.Quantile(0.99))},
              {"p999", Us(h.Quantile(0.999))},
              {"max", Us(h.max())},
              {"mean", Round1(h.mean() / 1000.0)}};
}

struct RunInfo {
  std::string op_name;
  double write_ratio;
  std::vector<Target> targets;
  std::vector<std::string> zones;
  const Workload* workload;
};

// The run's settings: the first keys of the JSON line.
Json SettingsJson(const Options& o, const RunInfo& info) {
  const WorkloadSpec& w = info.workload->spec();
  Json j;
  j["system"] = SystemName(info.targets.front().system);
  Json targets = Json::array();
  for (const Target& t : info.targets)
    targets.push_back(Json{{"zone", t.zone}, {"target", t.spec}});
  j["targets"] = targets;
  j["op"] = info.op_name;
  j["write_ratio"] = info.write_ratio;
  j["distribution"] = o.distribution;
  if (w.distribution == Distribution::kZipfian) j["zipf_s"] = w.zipf_s;
  if (w.distribution == Distribution::kLocality) j["locality"] = o.locality_csv;
  if (w.distribution == Distribution::kConflict) j["conflict_percent"] = o.conflict_percent;
  if (w.distribution == Distribution::kShift) j["shift_every_s"] = w.shift_period_s;
  j["connections"] = o.connections;
  j["depth"] = o.depth;
  j["txn_size"] = o.txn_size;
  j["rate"] = o.rate;
  j["value_size"] = o.value_size;
  j["keys"] = w.keys;
  j["tables"] = w.tables;
  j["table"] = w.table;
  return j;
}

Json ZonesJson(const RunInfo& info, const PhaseResult& r) {
  Json zones = Json::object();
  for (size_t z = 0; z < info.zones.size(); ++z) {
    const Stats& s = r.zones[z];
    zones[info.zones[z]] =
        Json{{"ops", s.ops},
             {"errors", s.errors},
             {"not_found", s.not_found},
             {"ops_per_sec", Round1(r.seconds > 0 ? static_cast<double>(s.ops) / r.seconds : 0)},
             {"latency_us", LatencyJson(s.latency_ns)},
             {"read_latency_us", LatencyJson(s.read_ns)},
             {"write_latency_us", LatencyJson(s.write_ns)}};
  }
  return zones;
}

// One zone's columns (all zones' for nullopt), one entry per second of the run.
Json SeriesColumn(const std::vector<std::vector<Series::Cell>>& cells, std::optional<size_t> zone) {
  Json ops = Json::array(), errors = Json::array(), p50 = Json::array(), p99 = Json::array();
  for (const auto& second : cells) {
    Series::Cell c;
    for (size_t z = 0; z < second.size(); ++z) {
      if (zone && z != *zone) continue;
      c.latency_ns.Merge(second[z].latency_ns);
      c.ops += second[z].ops;
      c.errors += second[z].errors;
    }
    ops.push_back(c.ops);
    errors.push_back(c.errors);
    p50.push_back(Us(c.latency_ns.Quantile(0.5)));
    p99.push_back(Us(c.latency_ns.Quantile(0.99)));
  }
  return Json{{"ops", ops}, {"errors", errors}, {"p50_us", p50}, {"p99_us", p99}};
}

// Columns per zone and in total, one entry per second of the run: easy to plot.
Json SeriesJson(const RunInfo& info, const Series& series) {
  const WorkloadSpec& w = info.workload->spec();
  const auto& cells = series.cells();
  Json sz = Json::object();
  for (size_t z = 0; z < info.zones.size(); ++z) sz[info.zones[z]] = SeriesColumn(cells, z);
  Json ts{{"interval_s", 1}};
  if (w.distribution == Distribution::kShift) {
    Json hot = Json::array();
    for (size_t i = 0; i < cells.size(); ++i) {
      hot.push_back(w.zones[static_cast<size_t>(info.workload->HotZone(static_cast<double>(i)))]);
    }
    ts["hot_zone"] = hot;
  }
  ts["total"] = SeriesColumn(cells, std::nullopt);
  ts["zones"] = sz;
  return ts;
}

void ReportJson(const Options& o, const RunInfo& info, const PhaseResult& r, const Series& series) {
  Json j = SettingsJson(o, info);
  j["zones"] = ZonesJson(info, r);
  j["series"] = SeriesJson(info, series);
  // The run totals come last: tools/bench/single-node.sh reads the last "p50" and "ops_per_sec"
  // of the line with sed.
  j["ops"] = r.total.ops;
  j["errors"] = r.total.errors;
  j["not_found"] = r.total.not_found;
  j["seconds"] = std::round(r.seconds * 1000) / 1000;
  j["ops_per_sec"] = Round1(r.seconds > 0 ? static_cast<double>(r.total.ops) / r.seconds : 0);
  j["rows_per_sec"] = Round1(r.seconds > 0 ? static_cast<double>(r.total.rows) / r.seconds : 0);
  j["latency_us"] = LatencyJson(r.total.latency_ns);
  j["first_error"] = r.total.first_error.empty() ? Json(nullptr) : Json(r.total.first_error);
  std::printf("%s\n", j.dump(-1, ' ', false, Json::error_handler_t::replace).c_str());
}

void ReportTable(const Options& o, const RunInfo& info, const PhaseResult& r) {
  const WorkloadSpec& w = info.workload->spec();
  std::printf(
      "atlas-bench system=%s targets=%zu distribution=%s write-ratio=%g connections=%d%s depth=%d"
      " value-size=%zu keys=%llu tables=%u\n",
      SystemName(info.targets.front().system), info.targets.size(), o.distribution.c_str(),
      info.write_ratio, o.connections, info.zones.size() > 1 ? "/zone" : "", o.depth, o.value_size,
      static_cast<unsigned long long>(w.keys), w.tables);
  if (o.rate > 0) std::printf("  %-12s %.0f ops/s offered (open loop)\n", "rate", o.rate);
  std::printf("  %-12s %llu in %.3f s\n", "ops", static_cast<unsigned long long>(r.total.ops),
              r.seconds);
  std::printf("  %-12s %.1f\n", "ops/s",
              r.seconds > 0 ? static_cast<double>(r.total.ops) / r.seconds : 0);
  if (o.txn_size > 1) {
    std::printf("  %-12s %.1f (transactions of %d puts)\n", "rows/s",
                r.seconds > 0 ? static_cast<double>(r.total.rows) / r.seconds : 0, o.txn_size);
  }
  std::printf("  %-12s %llu", "errors", static_cast<unsigned long long>(r.total.errors));
  if (!r.total.first_error.empty()) std::printf("  (first: %s)", r.total.first_error.c_str());
  std::printf("\n");
  if (info.write_ratio < 1) {
    std::printf("  %-12s %llu\n", "not found", static_cast<unsigned long long>(r.total.not_found));
  }
  std::printf("  %-12s %10s %10s %10s %10s %10s %10s %10s %10s\n", "latency us", "ops/s", "min",
              "p50", "p90", "p99", "p99.9", "max", "mean");
  auto row = [&](const std::string& name, const Stats& s) {
    const Histogram& h = s.latency_ns;
    std::printf("  %-12s %10.1f %10.1f %10.1f %10.1f %10.1f %10.1f %10.1f %10.1f\n", name.c_str(),
                r.seconds > 0 ? static_cast<double>(s.ops) / r.seconds : 0, Us(h.min()),
                Us(h.Quantile(0.50)), Us(h.Quantile(0.90)), Us(h.Quantile(0.99)),
                Us(h.Quantile(0.999)), Us(h.max()), h.mean() / 1000.0);
  };
  if (info.zones.size() > 1) {
    for (size_t z = 0; z < info.zones.size(); ++z) row(info.zones[z], r.zones[z]);
  }
  row("all", r.total);
}

// The command line's options, registered in the order --help lists them; returns --ops (its
// count tells whether it was given).
CLI::Option* AddOptions(CLI::App* app, Options* o, WorkloadSpec* w) {
  app->add_option("--target,-t", o->target_specs,
                  "[zone=<name>@]atlas:<socket> | redis:<host:port|socket> | etcd:<host:port>; "
                  "repeatable, one system per run");
  app->add_option("--socket", o->socket, "atlasd socket path (same as --target atlas:<path>)");
  app->add_option("--op", o->op_name, "put | get | mixed (see --write-ratio)")
      ->check(CLI::IsMember({"put", "get", "mixed"}));
  app->add_option("--get-ratio", o->get_ratio, "share of GETs in --op mixed")
      ->check(CLI::Range(0.0, 1.0));
  app->add_option("--write-ratio,-w", o->write_ratio, "share of PUTs (overrides --op)")
      ->check(CLI::Range(0.0, 1.0));
  app->add_option("--connections,-c", o->connections,
                  "connections per zone (one thread each), spread over the zone's targets")
      ->check(CLI::Range(1, 4096));
  app->add_option("--depth,-d", o->depth, "requests in flight per connection")
      ->check(CLI::Range(1, 1024));
  app->add_option("--txn-size", o->txn_size,
                  "each write a TXN of N KEY PUTs to rows <key>_0..<key>_<N-1> (atlasd)")
      ->check(CLI::Range(1, 10000));
  CLI::Option* ops_opt =
      app->add_option("--ops,-n", o->ops, "stop after N operations (default 10000)");
  app->add_option("--duration", o->duration_s, "stop after S seconds")->check(CLI::PositiveNumber);
  app->add_option("--rate", o->rate, "open loop: total offered ops/s (default: closed loop)")
      ->check(CLI::PositiveNumber);
  app->add_option("--value-size", o->value_size, "PUT value bytes")->check(CLI::Range(1, 1 << 20));
  app->add_option("--keys", w->keys, "keys per home (the whole key space without zones)")
      ->check(CLI::Range(uint64_t{1}, std::numeric_limits<uint64_t>::max()));
  app->add_option("--tables", w->tables, "tables per home: key i goes to table i mod T")
      ->check(CLI::Range(1u, 1000000u));
  app->add_option("--table", w->table, "table name prefix")->check([](const std::string& t) {
    return ValidName(t, 128) ? std::string() : std::string("table names are [A-Za-z0-9_-]");
  });
  app->add_option("--distribution", o->distribution,
                  "uniform | zipfian | locality | conflict | shift")
      ->check(CLI::IsMember({"uniform", "zipfian", "locality", "conflict", "shift"}));
  app->add_option("--zipf-s", w->zipf_s, "zipfian exponent (P(rank k) ~ 1/(k+1)^s)");
  app->add_option("--locality", o->locality_csv, "locality CSV (rows: client zone, columns: home)")
      ->check(CLI::ExistingFile);
  app->add_option("--conflict", o->conflict_percent, "conflict: % of requests to shared tables")
      ->check(CLI::Range(0.0, 100.0));
  app->add_option("--shift-every", w->shift_period_s, "shift: seconds between hot-zone moves")
      ->check(CLI::PositiveNumber);
  app->add_flag("!--no-preload", o->preload, "runs with GETs: do not PUT every key first");
  app->add_flag("--json", o->json, "print one JSON line instead of the table");
  app->add_option("--timeout-ms", o->timeout_ms,
                  "connect timeout; a connection with requests "
                  "in flight and no reply for this long fails")
      ->check(CLI::Range(1, 3600000));
  app->add_option("--seed", o->seed, "seed of the key and value generators");
  return ops_opt;
}

// The targets (all of one system) and the zones they name, in order of first mention.
absl::Status ResolveTargets(Options& o, RunInfo* info) {
  if (!o.socket.empty()) o.target_specs.insert(o.target_specs.begin(), "atlas:" + o.socket);
  if (o.target_specs.empty())
    return absl::InvalidArgumentError("no target: give --target or --socket");
  for (const std::string& spec : o.target_specs) {
    auto t = ParseTarget(spec);
    if (!t.ok()) return t.status();
    if (!info->targets.empty() && t->system != info->targets.front().system) {
      return absl::InvalidArgumentError(
          "all targets of a run must be the same system (run once per system)");
    }
    if (std::find(info->zones.begin(), info->zones.end(), t->zone) == info->zones.end()) {
      info->zones.push_back(t->zone);
    }
    info->targets.push_back(*t);
  }
  return absl::OkStatus();
}

// --write-ratio, else what --op and --get-ratio mean.
void ResolveWriteRatio(const Options& o, RunInfo* info) {
  if (o.write_ratio) {
    info->write_ratio = *o.write_ratio;
    info->op_name = info->write_ratio >= 1 ? "put" : info->write_ratio <= 0 ? "get" : "mixed";
  } else {
    info->op_name = o.op_name;
    info->write_ratio = o.op_name == "put" ? 1 : o.op_name == "get" ? 0 : 1 - o.get_ratio;
  }
}

absl::StatusOr<std::shared_ptr<const Workload>> MakeWorkload(const Options& o, const RunInfo& info,
                                                             WorkloadSpec w) {
  w.write_ratio = info.write_ratio;
  w.zones = info.zones;
  w.conflict = o.conflict_percent / 100;
  w.distribution = o.distribution == "uniform"    ? Distribution::kUniform
                   : o.distribution == "zipfian"  ? Distribution::kZipfian
                   : o.distribution == "locality" ? Distribution::kLocality
                   : o.distribution == "conflict" ? Distribution::kConflict
                                                  : Distribution::kShift;
  if (w.distribution == Distribution::kLocality) {
    if (o.locality_csv.empty()) {
      return absl::InvalidArgumentError("--distribution locality needs --locality <csv>");
    }
    std::ifstream in(o.locality_csv);
    std::stringstream text;
    text << in.rdbuf();
    auto m = ParseLocalityCsv(text.str());
    if (!m.ok()) return m.status();
    w.locality = std::move(*m);
  }
  return Workload::Create(std::move(w));
}

std::vector<const Target*> TargetsOf(const RunInfo& info, const std::string& zone) {
  std::vector<const Target*> out;
  for (const Target& t : info.targets) {
    if (t.zone == zone) out.push_back(&t);
  }
  return out;
}

// PUTs every key first (for runs with GETs); false when any PUT failed.
bool Preload(const Options& o, const RunInfo& info, const std::string& value) {
  // Every home's keys are written through a target of the home's zone when there is one, so
  // with atlasd a home table's first owner is in its home zone.
  std::vector<int> homes = info.workload->Homes();
  std::vector<std::atomic<uint64_t>> counters(homes.size());
  std::vector<Assignment> workers;
  int per_home = std::min(o.connections, 4);
  for (size_t h = 0; h < homes.size(); ++h) {
    auto zone_targets = TargetsOf(info, info.workload->HomeName(homes[h]));
    if (zone_targets.empty()) zone_targets.push_back(&info.targets.front());
    for (int i = 0; i < per_home; ++i) {
      Source s;
      s.workload = info.workload;
      s.preload = true;
      s.home = homes[h];
      s.claimed = &counters[h];
      workers.push_back({zone_targets[static_cast<size_t>(i) % zone_targets.size()], s});
    }
  }
  PhaseSpec phase{"preload", {}, Clock::time_point::max(), 64, 0, 0};
  PhaseResult r = RunPhase(o, phase, workers, info.zones.size(), value, nullptr, nullptr);
  std::fprintf(stderr, "preloaded %llu keys in %.2f s (%llu errors)\n",
               static_cast<unsigned long long>(r.total.ops), r.seconds,
               static_cast<unsigned long long>(r.total.errors));
  if (r.total.errors != 0) {
    std::fprintf(stderr, "preload failed: %s\n", r.total.first_error.c_str());
    return false;
  }
  return true;
}

// The measured phase: --connections workers per zone, spread over the zone's targets.
PhaseResult RunMeasured(const Options& o, const RunInfo& info, const std::string& value,
                        Series* series) {
  std::vector<Assignment> workers;
  for (size_t z = 0; z < info.zones.size(); ++z) {
    auto zone_targets = TargetsOf(info, info.zones[z]);
    for (int i = 0; i < o.connections; ++i) {
      Source s;
      s.workload = info.workload;
      s.zone = static_cast<int>(z);
      s.ops_budget = o.ops;
      workers.push_back({zone_targets[static_cast<size_t>(i) % zone_targets.size()], s});
    }
  }
  auto deadline = Clock::time_point::max();
  if (o.duration_s > 0) {
    // Relative to the phase start; RunPhase adds the start.
    deadline = Clock::time_point{} + std::chrono::duration_cast<Clock::duration>(
                                         std::chrono::duration<double>(o.duration_s));
  }
  PhaseSpec phase{
      info.op_name.c_str(), {}, deadline, o.depth, o.rate / static_cast<double>(workers.size()), 0};
  return RunPhase(o, phase, workers, info.zones.size(), value, series, info.workload);
}

int Main(int argc, char** argv) {
  Options o;
  WorkloadSpec w;
  CLI::App app{"atlas-bench: one workload against atlasd, Redis or etcd (docs/atlas-bench.md)"};
  CLI::Option* ops_opt = AddOptions(&app, &o, &w);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }
  auto usage = [](std::string_view msg) {
    std::fprintf(stderr, "atlas-bench: %s\n", std::string(msg).c_str());
    return 2;
  };

  RunInfo info;
  if (absl::Status s = ResolveTargets(o, &info); !s.ok()) return usage(ToStd(s.message()));
  ResolveWriteRatio(o, &info);
  if (ops_opt->count() == 0 && o.duration_s == 0) o.ops = 10000;
  if (o.txn_size > 1 && (info.targets.empty() ||
                         info.targets.front().system != Target::System::kAtlas)) {
    return usage("--txn-size needs atlas targets (TXN is atlasd's)");
  }
  if (ops_opt->count() != 0 && o.ops == 0) return usage("--ops must be positive");
  auto workload = MakeWorkload(o, info, std::move(w));
  if (!workload.ok()) return usage(ToStd(workload.status().message()));
  info.workload = workload->get();

  const std::string value = MakeValue(o.value_size, o.seed);
  if (info.write_ratio < 1 && o.preload && !Preload(o, info, value)) return 1;
  Series series(info.zones.size());
  PhaseResult r = RunMeasured(o, info, value, &series);
  if (o.json) {
    ReportJson(o, info, r, series);
  } else {
    ReportTable(o, info, r);
  }
  return r.total.errors == 0 && r.total.ops > 0 ? 0 : 1;
}

}  // namespace
}  // namespace atlas::bench

int main(int argc, char** argv) { return atlas::bench::Main(argc, argv); }
