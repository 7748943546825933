// What a node reports about its own work to its peers' pings (PeerReport) and to the console
// (GET /v1/status): small, bounded summaries, so that any node can show the whole cluster.
#pragma once

#include <array>
#include <cstdint>
#include <string>

namespace atlas {

// Socket commands this node served since it started, all commands together: the console turns
// two samples into throughput, errors per second and latency percentiles of the interval.
struct LoadTotals {
  // Upper bounds (seconds) of `buckets`, as LatencyHistogram's; the last bucket is +Inf.
  static constexpr std::array<double, 14> kBounds = {0.0005, 0.001, 0.0025, 0.005, 0.01,
                                                     0.025,  0.05,  0.1,    0.25,  0.5,
                                                     1,      2.5,   5,      10};
  int64_t wall_ms = 0;  // when the node took them (unix ms, its clock)
  uint64_t commands = 0;
  uint64_t errors = 0;                              // replies that ended in ERROR
  std::array<uint64_t, kBounds.size() + 1> buckets{};  // not cumulative
};

// A table (or group) this node won ownership of: the node keeps its last kRecentMoves.
struct OwnershipMove {
  static constexpr size_t kRecentMoves = 16;
  std::string table;   // the consensus object: a table, or a group's object
  std::string ballot;  // "<counter>.<node>"
  int64_t wall_ms = 0;  // when (unix ms, the winner's clock)
};

}  // namespace atlas
