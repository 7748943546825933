// A node's metrics in the Prometheus text format (GET /metrics on the HTTPS port;
// docs/metrics.md lists every series). Recording is lock-free: it happens on the threads that
// serve clients, once per command.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "atlasd/node_report.h"

namespace atlas {

// A latency histogram with fixed buckets (seconds): from 0.5 ms, below a local fsync, to 10 s,
// the longest a replicated write may wait.
class LatencyHistogram {
 public:
  static constexpr auto kBounds = LoadTotals::kBounds;
  void Observe(std::chrono::nanoseconds elapsed);
  // Appends `<name>_bucket` (cumulative, with `le`), `<name>_sum` and `<name>_count`; `labels`
  // is "" or `key="value",...` (already escaped).
  void Render(std::string* out, std::string_view name, std::string_view labels) const;
  uint64_t count() const;
  // Adds its buckets to `totals` (the console's summary of all commands).
  void AddTo(LoadTotals* totals) const;

 private:
  std::array<std::atomic<uint64_t>, kBounds.size() + 1> buckets_{};  // the last one: +Inf
  std::atomic<uint64_t> sum_ns_{0};
};

// Latency and errors of socket commands, per command (by the index its parser gives it).
class CommandMetrics {
 public:
  explicit CommandMetrics(std::vector<std::string> names);
  // `error`: the reply ended in an ERROR frame.
  void Observe(size_t command, std::chrono::nanoseconds elapsed, bool error);
  void Render(std::string* out) const;
  LoadTotals Totals() const;  // all commands together

 private:
  std::vector<std::string> names_;
  std::vector<std::unique_ptr<LatencyHistogram>> latency_;
  std::unique_ptr<std::atomic<uint64_t>[]> errors_;
};

// Join attempts on this node's HTTPS port by outcome (cluster::JoinAttempt::outcome).
class JoinCounters {
 public:
  static constexpr std::array<std::string_view, 6> kOutcomes = {
      "accepted", "rate_limited", "bad_token", "invalid", "refused", "not_signer"};
  void Count(std::string_view outcome);
  void Render(std::string* out) const;  // atlas_join_attempts_total{outcome="..."}

 private:
  std::array<std::atomic<uint64_t>, kOutcomes.size()> counts_{};
};

// The exposition format's pieces.
void AppendHelp(std::string* out, std::string_view name, std::string_view type,
                std::string_view help);
void AppendSample(std::string* out, std::string_view name, std::string_view labels, double value);
// A label value with `\`, `"` and newlines escaped.
std::string LabelValue(std::string_view value);

}  // namespace atlas
