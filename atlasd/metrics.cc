#include "atlasd/metrics.h"

#include <cmath>
#include <cstdio>

#include "socketproto/str.h"

namespace atlas {

void LatencyHistogram::Observe(std::chrono::nanoseconds elapsed) {
  const double s = std::chrono::duration<double>(elapsed).count();
  size_t i = 0;
  while (i < kBounds.size() && s > kBounds[i]) ++i;
  buckets_[i].fetch_add(1, std::memory_order_relaxed);
  sum_ns_.fetch_add(static_cast<uint64_t>(std::max<int64_t>(elapsed.count(), 0)),
                    std::memory_order_relaxed);
}

uint64_t LatencyHistogram::count() const {
  uint64_t n = 0;
  for (const auto& b : buckets_) n += b.load(std::memory_order_relaxed);
  return n;
}

void LatencyHistogram::AddTo(LoadTotals* totals) const {
  for (size_t i = 0; i < buckets_.size(); ++i) {
    const uint64_t n = buckets_[i].load(std::memory_order_relaxed);
    totals->buckets[i] += n;
    totals->commands += n;
  }
}

void LatencyHistogram::Render(std::string* out, std::string_view name,
                              std::string_view labels) const {
  const std::string sep = labels.empty() ? "" : std::string(labels) + ",";
  uint64_t cumulative = 0;
  for (size_t i = 0; i <= kBounds.size(); ++i) {
    cumulative += buckets_[i].load(std::memory_order_relaxed);
    char le[32];
    if (i < kBounds.size()) {
      std::snprintf(le, sizeof le, "%g", kBounds[i]);
    } else {
      std::snprintf(le, sizeof le, "+Inf");
    }
    AppendSample(out, std::string(name) + "_bucket", sep + "le=\"" + le + "\"",
                 static_cast<double>(cumulative));
  }
  AppendSample(out, std::string(name) + "_sum", labels,
               static_cast<double>(sum_ns_.load(std::memory_order_relaxed)) / 1e9);
  // The count is the +Inf bucket's; read once, the two always agree in one scrape.
  AppendSample(out, std::string(name) + "_count", labels, static_cast<double>(cumulative));
}

CommandMetrics::CommandMetrics(std::vector<std::string> names)
    : names_(std::move(names)), errors_(new std::atomic<uint64_t>[names_.size()]) {
  for (size_t i = 0; i < names_.size(); ++i) {
    latency_.push_back(std::make_unique<LatencyHistogram>());
    errors_[i].store(0);
  }
}

void CommandMetrics::Observe(size_t command, std::chrono::nanoseconds elapsed, bool error) {
  if (command >= names_.size()) return;
  latency_[command]->Observe(elapsed);
  if (error) errors_[command].fetch_add(1, std::memory_order_relaxed);
}

LoadTotals CommandMetrics::Totals() const {
  LoadTotals t;
  t.wall_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                  std::chrono::system_clock::now().time_since_epoch())
                  .count();
  for (size_t i = 0; i < names_.size(); ++i) {
    latency_[i]->AddTo(&t);
    t.errors += errors_[i].load(std::memory_order_relaxed);
  }
  return t;
}

void CommandMetrics::Render(std::string* out) const {
  AppendHelp(out, "atlas_command_duration_seconds", "histogram",
             "Socket commands from parsed to replied, by command.");
  for (size_t i = 0; i < names_.size(); ++i) {
    latency_[i]->Render(out, "atlas_command_duration_seconds",
                        "command=\"" + LabelValue(names_[i]) + "\"");
  }
  AppendHelp(out, "atlas_command_errors_total", "counter",
             "Socket commands whose reply was an ERROR frame, by command.");
  for (size_t i = 0; i < names_.size(); ++i) {
    AppendSample(out, "atlas_command_errors_total", "command=\"" + LabelValue(names_[i]) + "\"",
                 static_cast<double>(errors_[i].load(std::memory_order_relaxed)));
  }
}

void AppendHelp(std::string* out, std::string_view name, std::string_view type,
                std::string_view help) {
  out->append("# HELP ").append(name).append(" ").append(help).append("\n");
  out->append("# TYPE ").append(name).append(" ").append(type).append("\n");
}

void AppendSample(std::string* out, std::string_view name, std::string_view labels,
                  double value) {
  out->append(name);
  if (!labels.empty()) out->append("{").append(labels).append("}");
  char buf[40];
  if (std::isfinite(value) && value == std::floor(value) && std::fabs(value) < 1e15) {
    std::snprintf(buf, sizeof buf, " %.0f\n", value);
  } else {
    std::snprintf(buf, sizeof buf, " %.9g\n", value);
  }
  out->append(buf);
}

std::string LabelValue(std::string_view value) {
  std::string out;
  for (char c : value) {
    if (c == '\\' || c == '"') {
      out.push_back('\\');
      out.push_back(c);
    } else if (c == '\n') {
      out.append("\\n");
    } else {
      out.push_back(c);
    }
  }
  return out;
}

void JoinCounters::Count(std::string_view outcome) {
  for (size_t i = 0; i < kOutcomes.size(); ++i) {
    if (kOutcomes[i] == outcome) counts_[i].fetch_add(1, std::memory_order_relaxed);
  }
}

void JoinCounters::Render(std::string* out) const {
  AppendHelp(out, "atlas_join_attempts_total", "counter",
             "Join requests on this node's HTTPS port by outcome (accepted, rate_limited, "
             "bad_token, invalid, refused, not_signer).");
  for (size_t i = 0; i < kOutcomes.size(); ++i) {
    AppendSample(out, "atlas_join_attempts_total", StrCat("outcome=\"", kOutcomes[i], "\""),
                 static_cast<double>(counts_[i].load(std::memory_order_relaxed)));
  }
}

}  // namespace atlas
