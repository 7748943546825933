// atlas-watch-latency: how long a committed write takes to reach WATCH streams (docs/watch.md).
//
// One writer puts N rows, one at a time at a fixed rate, through one node; one watcher per
// given socket streams the table. For each write: t_send (PUT sent), t_ack (its OK read) and,
// per watcher, t_event (its EVENT read). Reported per watcher: p50/p99 of event - ack (the
// delay a reader of the stream sees after the writer's acknowledgement; negative when the
// event arrived first) and of event - send, next to the write latency itself. All clients run
// on this host, so one clock times everything.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <functional>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "CLI/CLI.hpp"
#include "socketproto/str.h"
#include "socketproto/client.h"

namespace {

using Clock = std::chrono::steady_clock;
using atlas::StrCat;
using atlas::client::Connection;

double Ms(Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

double Percentile(std::vector<double> v, double q) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  size_t i = std::min(v.size() - 1, static_cast<size_t>(q * static_cast<double>(v.size())));
  return v[i];
}

struct Settings {
  std::string writer, table = "watchlat", owner;
  std::vector<std::string> watchers, labels;
  int count = 2000, rate = 200, value_bytes = 100;
};

void AddOptions(CLI::App* app, Settings* s) {
  app->add_option("--writer", s->writer, "Socket of the node the writer writes through")
      ->required();
  app->add_option("--watch", s->watchers, "Sockets to watch from (repeatable)")->required();
  app->add_option("--label", s->labels, "A name per --watch (default: its socket)");
  app->add_option("--table", s->table, "Table written and watched");
  app->add_option("--owner", s->owner, "TABLE MOVE the table to this node id or region first");
  app->add_option("--count", s->count, "Writes")->check(CLI::Range(1, 1'000'000));
  app->add_option("--rate", s->rate, "Writes per second (one at a time)")
      ->check(CLI::Range(1, 100'000));
  app->add_option("--value-bytes", s->value_bytes, "Value size")->check(CLI::Range(8, 1 << 20));
}

// What the watcher threads share with the writer.
struct Watching {
  explicit Watching(const Settings& s)
      : settings(s),
        seen(s.watchers.size(), std::vector<Clock::time_point>(static_cast<size_t>(s.count))) {}
  const Settings& settings;
  // Event arrival times per watcher, by write index (the value's first 8 digits).
  std::vector<std::vector<Clock::time_point>> seen;
  std::atomic<int> ready{0};
  std::atomic<bool> failed{false};
};

// Watcher k's thread: WATCH the table, then note when each write's EVENT arrives.
void Watch(Watching* w, size_t k) {
  const Settings& s = w->settings;
  auto c = Connection::Open(s.watchers[k], "clientId=watch-latency", std::chrono::seconds(10));
  if (!c.ok() || !(*c)->Send(StrCat("[ID:w] WATCH ", s.table, ".r\r\n")).ok()) {
    w->failed = true;
    ++w->ready;
    return;
  }
  int got = 0;
  bool counted = false;
  while (got < s.count) {
    auto f = (*c)->Read();
    if (!f.ok()) {
      w->failed = true;
      break;
    }
    if (!counted && f->text.starts_with("WATCHING")) {
      counted = true;
      ++w->ready;
      continue;
    }
    if (f->IsError()) {
      std::fprintf(stderr, "%s: %s\n", s.labels[k].c_str(), f->text.c_str());
      w->failed = true;
      break;
    }
    if (!f->text.starts_with("EVENT ") || !f->blob || f->blob->size() < 8) continue;
    const int i = std::atoi(f->blob->substr(0, 8).c_str());
    if (i >= 0 && i < s.count) w->seen[k][i] = Clock::now();
    ++got;
  }
  if (!counted) ++w->ready;
}

using Call = std::function<std::string(const std::string&)>;

// The table exists (and is owned where --owner says) before anyone watches it.
bool PrepareTable(const Settings& s, const Call& call) {
  if (std::string r = call(StrCat("KEY PUT ", s.table, ".init 0")); r != "OK") {
    std::fprintf(stderr, "first write: %s\n", r.c_str());
    return false;
  }
  if (!s.owner.empty()) {
    if (std::string r = call(StrCat("TABLE MOVE ", s.table, " ", s.owner)); r != "OK") {
      std::fprintf(stderr, "TABLE MOVE: %s\n", r.c_str());
      return false;
    }
  }
  return true;
}

// Writes the rows at the rate, one at a time, noting when each was sent and acknowledged.
bool WriteRows(const Settings& s, const Call& call, std::vector<Clock::time_point>* sent,
               std::vector<Clock::time_point>* acked) {
  const auto period = std::chrono::nanoseconds(1'000'000'000 / s.rate);
  auto next = Clock::now();
  for (int i = 0; i < s.count; ++i) {
    std::this_thread::sleep_until(next);
    next += period;
    char head[16];
    std::snprintf(head, sizeof head, "%08d", i);
    std::string value = head + std::string(static_cast<size_t>(s.value_bytes) - 8, 'x');
    (*sent)[i] = Clock::now();
    std::string r = call(StrCat("KEY PUT ", s.table, ".r", i, " ", value));
    (*acked)[i] = Clock::now();
    if (r != "OK") {
      std::fprintf(stderr, "write %d: %s\n", i, r.c_str());
      return false;
    }
  }
  return true;
}

void Report(const Watching& w, const std::vector<Clock::time_point>& sent,
            const std::vector<Clock::time_point>& acked) {
  const Settings& s = w.settings;
  std::vector<double> write_ms;
  for (int i = 0; i < s.count; ++i) write_ms.push_back(Ms(acked[i] - sent[i]));
  std::printf(
      "writes: %d through %s at %d/s, %d-byte values; write latency p50 %.2f ms, p99 %.2f ms\n",
      s.count, s.writer.c_str(), s.rate, s.value_bytes, Percentile(write_ms, 0.5),
      Percentile(write_ms, 0.99));
  std::printf("%-24s %12s %12s %12s %12s\n", "watcher", "ack->event", "ack->event", "send->event",
              "send->event");
  std::printf("%-24s %12s %12s %12s %12s\n", "", "p50 ms", "p99 ms", "p50 ms", "p99 ms");
  for (size_t k = 0; k < s.watchers.size(); ++k) {
    std::vector<double> from_ack, from_send;
    for (int i = 0; i < s.count; ++i) {
      from_ack.push_back(Ms(w.seen[k][i] - acked[i]));
      from_send.push_back(Ms(w.seen[k][i] - sent[i]));
    }
    std::printf("%-24s %12.2f %12.2f %12.2f %12.2f\n", s.labels[k].c_str(),
                Percentile(from_ack, 0.5), Percentile(from_ack, 0.99), Percentile(from_send, 0.5),
                Percentile(from_send, 0.99));
  }
}

}  // namespace

int main(int argc, char** argv) {
  Settings s;
  CLI::App app{"atlas-watch-latency: commit -> WATCH event delivery latency",
               "atlas-watch-latency"};
  AddOptions(&app, &s);
  CLI11_PARSE(app, argc, argv);
  s.labels.resize(s.watchers.size());
  for (size_t i = 0; i < s.watchers.size(); ++i) {
    if (s.labels[i].empty()) s.labels[i] = s.watchers[i];
  }

  auto writer = Connection::Open(s.writer, "clientId=watch-latency", std::chrono::seconds(10));
  if (!writer.ok()) {
    std::fprintf(stderr, "writer: %s\n", std::string(writer.status().message()).c_str());
    return 2;
  }
  const Call call = [&writer](const std::string& line) -> std::string {
    auto r = (*writer)->Call(line);
    return r.ok() && !r->empty() ? r->back().text : "no reply";
  };
  if (!PrepareTable(s, call)) return 1;

  Watching watching(s);
  std::vector<std::thread> threads;
  for (size_t k = 0; k < s.watchers.size(); ++k) threads.emplace_back(Watch, &watching, k);
  while (watching.ready.load() < static_cast<int>(s.watchers.size())) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  if (watching.failed) {
    std::fprintf(stderr, "a watcher failed to start\n");
    for (auto& t : threads) t.detach();
    return 1;
  }
  std::vector<Clock::time_point> sent(s.count), acked(s.count);
  if (!WriteRows(s, call, &sent, &acked)) {
    for (auto& t : threads) t.detach();
    return 1;
  }
  for (auto& t : threads) t.join();
  Report(watching, sent, acked);
  return watching.failed ? 1 : 0;
}
