// atlas-bench: a closed-loop load generator for one atlasd over its Unix socket
// (docs/protocol.md). Each connection runs on its own thread and keeps up to --depth tagged
// requests in flight (`[ID:n] KEY PUT <table>.k<i> <value>`), matching replies by tag; the
// latency of a request is from the send of its line to the arrival of its final frame.
//
//   atlas-bench --socket PATH [--op put|get|mixed] [--connections C] [--depth D]
//               [--ops N | --duration S] [--value-size B] [--keys K] [--table T] [--json]
//
// GET and mixed runs preload the K keys first (unless --no-preload). The run is bounded: it
// stops issuing after N operations or S seconds (whichever comes first) and then drains.
// Exit status: 0 when every request succeeded, 1 on errors, 2 on bad usage.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <limits>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/container/flat_hash_map.h"
#include "socketproto/str.h"
#include "tools/atlas/connection.h"
#include "tools/bench/histogram.h"

namespace atlas::bench {
namespace {

using Clock = std::chrono::steady_clock;

enum class Op { kPut, kGet, kMixed };

struct Options {
  std::string socket;
  std::string op_name = "put";
  Op op = Op::kPut;
  int connections = 1;
  int depth = 1;
  uint64_t ops = 0;       // 0: unbounded (then duration bounds the run)
  double duration_s = 0;  // 0: unbounded (then ops bounds the run)
  size_t value_size = 100;
  uint64_t keys = 10000;
  std::string table = "bench";
  double get_ratio = 0.5;  // mixed only
  bool preload = true;
  bool json = false;
  int timeout_ms = 10000;
  uint64_t seed = 1;
};

// What a phase (preload or measurement) asks of every worker.
struct Phase {
  Op op;
  int connections;
  int depth;
  bool sequential_keys;  // key i = the i-th claimed operation (preload) instead of random keys
  uint64_t ops;          // 0: unbounded
  Clock::time_point deadline;
};

// Shared between the workers and the progress reporter.
struct Shared {
  std::atomic<uint64_t> claimed{0};    // operations handed out
  std::atomic<uint64_t> completed{0};  // final frames received
  std::atomic<uint64_t> errors{0};
  std::atomic<bool> stop{false};
};

struct WorkerResult {
  Histogram latency_ns;
  uint64_t ops = 0;
  uint64_t errors = 0;
  uint64_t not_found = 0;
  std::string first_error;  // empty when none
};

std::string MakeValue(size_t size, uint64_t seed) {
  static constexpr char kAlphabet[] =
      "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
  std::mt19937_64 rng(seed);
  std::string v(size, 'x');
  for (char& c : v) c = kAlphabet[rng() % (sizeof kAlphabet - 1)];
  return v;
}

class Worker {
 public:
  Worker(const Options& options, const Phase& phase, Shared* shared, const std::string& value,
         int index)
      : options_(options),
        phase_(phase),
        shared_(shared),
        value_(value),
        rng_(options.seed * 1000003 + static_cast<uint64_t>(index)),
        index_(index) {}

  WorkerResult Run() {
    auto conn = client::Connection::Open(options_.socket, StrCat("clientId=bench-", index_),
                                         std::chrono::milliseconds(options_.timeout_ms));
    if (!conn.ok()) {
      Fail(StrCat("connect: ", conn.status().message()));
      return std::move(result_);
    }
    conn_ = std::move(*conn);
    inflight_.reserve(static_cast<size_t>(phase_.depth) * 2);
    for (;;) {
      if (!FillWindow()) break;
      if (inflight_.empty()) break;
      if (!ReadOne()) break;
    }
    return std::move(result_);
  }

 private:
  struct Pending {
    Clock::time_point sent;
    bool get;
  };

  // Claims operations and sends their lines (in one write) until the window is full or the
  // phase has no more work. Returns false when the connection failed.
  bool FillWindow() {
    std::string out;
    auto now = Clock::now();
    bool more = !shared_->stop.load(std::memory_order_relaxed) && now < phase_.deadline;
    while (more && inflight_.size() < static_cast<size_t>(phase_.depth)) {
      uint64_t n = shared_->claimed.fetch_add(1, std::memory_order_relaxed);
      if (phase_.ops != 0 && n >= phase_.ops) break;
      uint64_t key = phase_.sequential_keys ? n : rng_() % options_.keys;
      bool get = phase_.op == Op::kGet ||
                 (phase_.op == Op::kMixed &&
                  std::uniform_real_distribution<double>(0, 1)(rng_) < options_.get_ratio);
      std::string tag = std::to_string(next_tag_++);
      if (get) {
        StrAppend(&out, "[ID:", tag, "] KEY GET ", options_.table, ".k", key, "\r\n");
      } else {
        StrAppend(&out, "[ID:", tag, "] KEY PUT ", options_.table, ".k", key, " ", value_, "\r\n");
      }
      inflight_.emplace(std::move(tag), Pending{now, get});
    }
    if (out.empty()) return true;
    if (auto s = conn_->Send(out); !s.ok()) {
      Fail(StrCat("send: ", s.message()));
      return false;
    }
    return true;
  }

  // Reads one frame; a final frame completes its request. Returns false when the connection
  // failed or the server closed it.
  bool ReadOne() {
    auto frame = conn_->Read();
    if (!frame.ok()) {
      Fail(StrCat("read: ", frame.status().message()));
      return false;
    }
    if (frame->IsFatal()) {
      Fail(frame->text);
      return false;
    }
    if (!frame->id) {
      Fail(StrCat("unexpected untagged frame: ", frame->text.substr(0, 200)));
      return false;
    }
    auto it = inflight_.find(*frame->id);
    if (it == inflight_.end()) {
      Fail(StrCat("frame for unknown request id ", *frame->id, ": ", frame->text.substr(0, 200)));
      return false;
    }
    if (frame->text == "NOT_FOUND") ++result_.not_found;
    if (!frame->IsFinal()) return true;  // VALUE:... / NOT_FOUND before the OK
    auto elapsed = Clock::now() - it->second.sent;
    result_.latency_ns.Record(static_cast<uint64_t>(
        std::chrono::duration_cast<std::chrono::nanoseconds>(elapsed).count()));
    ++result_.ops;
    if (frame->IsError()) {
      ++result_.errors;
      shared_->errors.fetch_add(1, std::memory_order_relaxed);
      if (result_.first_error.empty()) result_.first_error = frame->text.substr(0, 300);
    }
    inflight_.erase(it);
    shared_->completed.fetch_add(1, std::memory_order_relaxed);
    return true;
  }

  // The connection is unusable: everything in flight counts as failed.
  void Fail(std::string message) {
    uint64_t lost = std::max<uint64_t>(inflight_.size(), 1);
    result_.errors += lost;
    shared_->errors.fetch_add(lost, std::memory_order_relaxed);
    if (result_.first_error.empty()) result_.first_error = std::move(message);
    inflight_.clear();
  }

  const Options& options_;
  const Phase& phase_;
  Shared* shared_;
  const std::string& value_;
  std::mt19937_64 rng_;
  int index_;
  std::unique_ptr<client::Connection> conn_;
  absl::flat_hash_map<std::string, Pending> inflight_;
  uint64_t next_tag_ = 0;
  WorkerResult result_;
};

struct PhaseResult {
  WorkerResult total;
  double seconds = 0;
};

PhaseResult RunPhase(const Options& options, const Phase& phase, const std::string& value,
                     const char* label) {
  Shared shared;
  std::vector<WorkerResult> results(static_cast<size_t>(phase.connections));
  std::vector<std::thread> threads;
  auto start = Clock::now();
  for (int i = 0; i < phase.connections; ++i) {
    threads.emplace_back([&, i] {
      results[static_cast<size_t>(i)] = Worker(options, phase, &shared, value, i).Run();
    });
  }
  // Progress on stderr once per second while the workers run.
  std::atomic<bool> done{false};
  std::thread progress([&] {
    uint64_t last = 0;
    auto next = start + std::chrono::seconds(1);
    while (!done.load()) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
      auto now = Clock::now();
      if (now < next) continue;
      uint64_t c = shared.completed.load(std::memory_order_relaxed);
      double t = std::chrono::duration<double>(now - start).count();
      std::fprintf(stderr, "[%s %5.1fs] %llu ops, %llu ops/s, %llu errors\n", label, t,
                   static_cast<unsigned long long>(c), static_cast<unsigned long long>(c - last),
                   static_cast<unsigned long long>(shared.errors.load()));
      last = c;
      next += std::chrono::seconds(1);
    }
  });
  for (auto& t : threads) t.join();
  PhaseResult out;
  out.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  done = true;
  progress.join();
  for (auto& r : results) {
    out.total.latency_ns.Merge(r.latency_ns);
    out.total.ops += r.ops;
    out.total.errors += r.errors;
    out.total.not_found += r.not_found;
    if (out.total.first_error.empty()) out.total.first_error = r.first_error;
  }
  return out;
}

std::string JsonString(std::string_view s) {
  std::string out = "\"";
  for (char c : s) {
    auto u = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (u < 0x20) {
      StrAppend(&out, fmt::format("\\u{:04x}", u));
    } else {
      out += c;
    }
  }
  return out + "\"";
}

void Report(const Options& o, const PhaseResult& r) {
  const Histogram& h = r.total.latency_ns;
  double ops_per_s = r.seconds > 0 ? static_cast<double>(r.total.ops) / r.seconds : 0;
  auto us = [](uint64_t ns) { return static_cast<double>(ns) / 1000.0; };
  if (o.json) {
    std::printf(
        "{\"op\":%s,\"connections\":%d,\"depth\":%d,\"value_size\":%zu,\"keys\":%llu,"
        "\"table\":%s,\"ops\":%llu,\"errors\":%llu,\"not_found\":%llu,\"seconds\":%.3f,"
        "\"ops_per_sec\":%.1f,\"latency_us\":{\"min\":%.1f,\"p50\":%.1f,\"p90\":%.1f,"
        "\"p99\":%.1f,\"p999\":%.1f,\"max\":%.1f,\"mean\":%.1f},\"first_error\":%s}\n",
        JsonString(o.op_name).c_str(), o.connections, o.depth, o.value_size,
        static_cast<unsigned long long>(o.keys), JsonString(o.table).c_str(),
        static_cast<unsigned long long>(r.total.ops),
        static_cast<unsigned long long>(r.total.errors),
        static_cast<unsigned long long>(r.total.not_found), r.seconds, ops_per_s, us(h.min()),
        us(h.Quantile(0.50)), us(h.Quantile(0.90)), us(h.Quantile(0.99)), us(h.Quantile(0.999)),
        us(h.max()), h.mean() / 1000.0,
        r.total.first_error.empty() ? "null" : JsonString(r.total.first_error).c_str());
    return;
  }
  std::printf("atlas-bench op=%s connections=%d depth=%d value-size=%zu keys=%llu table=%s\n",
              o.op_name.c_str(), o.connections, o.depth, o.value_size,
              static_cast<unsigned long long>(o.keys), o.table.c_str());
  std::printf("  %-12s %llu in %.3f s\n", "ops", static_cast<unsigned long long>(r.total.ops),
              r.seconds);
  std::printf("  %-12s %.1f\n", "ops/s", ops_per_s);
  std::printf("  %-12s %llu", "errors", static_cast<unsigned long long>(r.total.errors));
  if (!r.total.first_error.empty()) std::printf("  (first: %s)", r.total.first_error.c_str());
  std::printf("\n");
  if (o.op != Op::kPut) {
    std::printf("  %-12s %llu\n", "not found", static_cast<unsigned long long>(r.total.not_found));
  }
  std::printf("  %-12s %10s %10s %10s %10s %10s %10s %10s\n", "latency us", "min", "p50", "p90",
              "p99", "p99.9", "max", "mean");
  std::printf("  %-12s %10.1f %10.1f %10.1f %10.1f %10.1f %10.1f %10.1f\n", "", us(h.min()),
              us(h.Quantile(0.50)), us(h.Quantile(0.90)), us(h.Quantile(0.99)),
              us(h.Quantile(0.999)), us(h.max()), h.mean() / 1000.0);
}

int Main(int argc, char** argv) {
  Options o;
  CLI::App app{"atlas-bench: load generator for atlasd's Unix socket (docs/protocol.md)"};
  app.add_option("--socket", o.socket, "atlasd socket path")->required();
  app.add_option("--op", o.op_name, "put | get | mixed")
      ->check(CLI::IsMember({"put", "get", "mixed"}));
  app.add_option("--connections,-c", o.connections, "connections, one thread each")
      ->check(CLI::Range(1, 4096));
  app.add_option("--depth,-d", o.depth, "tagged requests in flight per connection")
      ->check(CLI::Range(1, 1024));
  auto* ops_opt = app.add_option("--ops,-n", o.ops, "stop after N operations (default 10000)");
  app.add_option("--duration", o.duration_s, "stop after S seconds")->check(CLI::PositiveNumber);
  app.add_option("--value-size", o.value_size, "PUT value bytes")->check(CLI::Range(1, 1 << 20));
  app.add_option("--keys", o.keys, "key space: <table>.k0 .. k<K-1>")
      ->check(CLI::Range(uint64_t{1}, std::numeric_limits<uint64_t>::max()));
  app.add_option("--table", o.table, "table name");
  app.add_option("--get-ratio", o.get_ratio, "share of GETs in --op mixed")
      ->check(CLI::Range(0.0, 1.0));
  app.add_flag("!--no-preload", o.preload, "GET/mixed: do not PUT every key first");
  app.add_flag("--json", o.json, "print one JSON object instead of the table");
  app.add_option("--timeout-ms", o.timeout_ms, "per-read timeout")->check(CLI::Range(1, 3600000));
  app.add_option("--seed", o.seed, "seed of the key and value generators");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }
  o.op = o.op_name == "put" ? Op::kPut : o.op_name == "get" ? Op::kGet : Op::kMixed;
  if (ops_opt->count() == 0 && o.duration_s == 0) o.ops = 10000;
  if (ops_opt->count() != 0 && o.ops == 0) {
    std::fprintf(stderr, "--ops must be positive\n");
    return 2;
  }
  const std::string value = MakeValue(o.value_size, o.seed);
  constexpr auto kForever = Clock::time_point::max();

  if (o.op != Op::kPut && o.preload) {
    Phase preload{Op::kPut, std::min(o.connections, 4), 64, true, o.keys, kForever};
    PhaseResult r = RunPhase(o, preload, value, "preload");
    std::fprintf(stderr, "preloaded %llu keys in %.2f s (%llu errors)\n",
                 static_cast<unsigned long long>(r.total.ops), r.seconds,
                 static_cast<unsigned long long>(r.total.errors));
    if (r.total.errors != 0) {
      std::fprintf(stderr, "preload failed: %s\n", r.total.first_error.c_str());
      return 1;
    }
  }

  auto deadline = kForever;
  if (o.duration_s > 0) {
    deadline = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                  std::chrono::duration<double>(o.duration_s));
  }
  Phase run{o.op, o.connections, o.depth, false, o.ops, deadline};
  PhaseResult r = RunPhase(o, run, value, o.op_name.c_str());
  Report(o, r);
  return r.total.errors == 0 && r.total.ops > 0 ? 0 : 1;
}

}  // namespace
}  // namespace atlas::bench

int main(int argc, char** argv) { return atlas::bench::Main(argc, argv); }
