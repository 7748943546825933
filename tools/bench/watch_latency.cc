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
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "CLI/CLI.hpp"
#include "socketproto/str.h"
#include "tools/atlas/connection.h"

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

}  // namespace

int main(int argc, char** argv) {
  std::string writer, table = "watchlat";
  std::vector<std::string> watchers, labels;
  int count = 2000, rate = 200, value_bytes = 100;
  std::string owner;
  CLI::App app{"atlas-watch-latency: commit -> WATCH event delivery latency", "atlas-watch-latency"};
  app.add_option("--writer", writer, "Socket of the node the writer writes through")->required();
  app.add_option("--watch", watchers, "Sockets to watch from (repeatable)")->required();
  app.add_option("--label", labels, "A name per --watch (default: its socket)");
  app.add_option("--table", table, "Table written and watched");
  app.add_option("--owner", owner, "TABLE MOVE the table to this node id or region first");
  app.add_option("--count", count, "Writes")->check(CLI::Range(1, 1'000'000));
  app.add_option("--rate", rate, "Writes per second (one at a time)")->check(CLI::Range(1, 100'000));
  app.add_option("--value-bytes", value_bytes, "Value size")->check(CLI::Range(8, 1 << 20));
  CLI11_PARSE(app, argc, argv);
  labels.resize(watchers.size());
  for (size_t i = 0; i < watchers.size(); ++i) {
    if (labels[i].empty()) labels[i] = watchers[i];
  }

  auto w = Connection::Open(writer, "clientId=watch-latency", std::chrono::seconds(10));
  if (!w.ok()) {
    std::fprintf(stderr, "writer: %s\n", std::string(w.status().message()).c_str());
    return 2;
  }
  auto call = [&](const std::string& line) -> std::string {
    auto r = (*w)->Call(line);
    return r.ok() && !r->empty() ? r->back().text : "no reply";
  };
  if (std::string r = call(StrCat("KEY PUT ", table, ".init 0")); r != "OK") {
    std::fprintf(stderr, "first write: %s\n", r.c_str());
    return 1;
  }
  if (!owner.empty()) {
    if (std::string r = call(StrCat("TABLE MOVE ", table, " ", owner)); r != "OK") {
      std::fprintf(stderr, "TABLE MOVE: %s\n", r.c_str());
      return 1;
    }
  }

  // Event arrival times per watcher, by write index (the value's first 8 digits).
  std::vector<std::vector<Clock::time_point>> seen(watchers.size(),
                                                   std::vector<Clock::time_point>(count));
  std::vector<std::thread> threads;
  std::atomic<int> ready{0};
  std::atomic<bool> failed{false};
  for (size_t k = 0; k < watchers.size(); ++k) {
    threads.emplace_back([&, k] {
      auto c = Connection::Open(watchers[k], "clientId=watch-latency", std::chrono::seconds(10));
      if (!c.ok() || !(*c)->Send(StrCat("[ID:w] WATCH ", table, ".r\r\n")).ok()) {
        failed = true;
        ++ready;
        return;
      }
      int got = 0;
      bool counted = false;
      while (got < count) {
        auto f = (*c)->Read();
        if (!f.ok()) {
          failed = true;
          break;
        }
        if (!counted && f->text.starts_with("WATCHING")) {
          counted = true;
          ++ready;
          continue;
        }
        if (f->IsError()) {
          std::fprintf(stderr, "%s: %s\n", labels[k].c_str(), f->text.c_str());
          failed = true;
          break;
        }
        if (!f->text.starts_with("EVENT ") || !f->blob || f->blob->size() < 8) continue;
        const int i = std::atoi(f->blob->substr(0, 8).c_str());
        if (i >= 0 && i < count) seen[k][i] = Clock::now();
        ++got;
      }
      if (!counted) ++ready;
    });
  }
  while (ready.load() < static_cast<int>(watchers.size())) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  if (failed) {
    std::fprintf(stderr, "a watcher failed to start\n");
    for (auto& t : threads) t.detach();
    return 1;
  }
  std::vector<Clock::time_point> sent(count), acked(count);
  const auto period = std::chrono::nanoseconds(1'000'000'000 / rate);
  auto next = Clock::now();
  for (int i = 0; i < count; ++i) {
    std::this_thread::sleep_until(next);
    next += period;
    char head[16];
    std::snprintf(head, sizeof head, "%08d", i);
    std::string value = head + std::string(static_cast<size_t>(value_bytes) - 8, 'x');
    sent[i] = Clock::now();
    std::string r = call(StrCat("KEY PUT ", table, ".r", i, " ", value));
    acked[i] = Clock::now();
    if (r != "OK") {
      std::fprintf(stderr, "write %d: %s\n", i, r.c_str());
      for (auto& t : threads) t.detach();
      return 1;
    }
  }
  for (auto& t : threads) t.join();
  std::vector<double> write_ms;
  for (int i = 0; i < count; ++i) write_ms.push_back(Ms(acked[i] - sent[i]));
  std::printf("writes: %d through %s at %d/s, %d-byte values; write latency p50 %.2f ms, p99 %.2f ms\n",
              count, writer.c_str(), rate, value_bytes, Percentile(write_ms, 0.5),
              Percentile(write_ms, 0.99));
  std::printf("%-24s %12s %12s %12s %12s\n", "watcher", "ack->event", "ack->event", "send->event",
              "send->event");
  std::printf("%-24s %12s %12s %12s %12s\n", "", "p50 ms", "p99 ms", "p50 ms", "p99 ms");
  for (size_t k = 0; k < watchers.size(); ++k) {
    std::vector<double> from_ack, from_send;
    for (int i = 0; i < count; ++i) {
      from_ack.push_back(Ms(seen[k][i] - acked[i]));
      from_send.push_back(Ms(seen[k][i] - sent[i]));
    }
    std::printf("%-24s %12.2f %12.2f %12.2f %12.2f\n", labels[k].c_str(), Percentile(from_ack, 0.5),
                Percentile(from_ack, 0.99), Percentile(from_send, 0.5), Percentile(from_send, 0.99));
  }
  return failed ? 1 : 0;
}
