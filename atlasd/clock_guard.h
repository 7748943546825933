// Whether this node's wall clock is close enough to its peers' to stamp commands with
// (docs/consensus.md §Time). The owner of a table stamps every command it orders with its
// wall clock, and WORM retention (later: leases, expiry) is judged by those stamps, so a node
// whose clock runs ahead of the others' must neither own tables nor serve data commands.
//
// Fed with the offsets the failure detector's pings measure (the NTP estimate: error at most
// half the round trip). A peer whose offset is certainly over `max_offset_ms` counts against
// this node's clock, one certainly within it counts for it; the majority of the fresh evidence
// decides. With no peers the clock is trusted; with peers but no evidence yet it is unknown
// (the node serves, forwarding to owners, but does not own until it knows). In a cluster of
// two, a bad clock on either node stops both: neither can tell which one is wrong.
//
// Thread-compatible (ClusterNode holds it under its lock).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace atlas {

enum class ClockState { kUnknown, kTrusted, kOffset };
const char* ClockStateName(ClockState state);  // "unknown" | "ok" | "offset"

class ClockGuard {
 public:
  // Samples older than `stale_ms` are no evidence (the peer may have changed since).
  ClockGuard(int64_t max_offset_ms, int64_t stale_ms)
      : max_offset_ms_(max_offset_ms), stale_ms_(stale_ms) {}

  // The peers whose clocks count: the members other than this node. Forgets the others.
  void SetPeers(const std::vector<uint64_t>& peers);
  // Peer `peer`'s clock minus ours is `offset_ms`, measured over a round trip of `rtt_ms`, at
  // `now_ms` (a monotonic clock).
  void Sample(uint64_t peer, double offset_ms, double rtt_ms, int64_t now_ms);
  // Re-evaluates the state from the fresh evidence at `now_ms`; returns it. The state only
  // changes on evidence: without any (peers unreachable) it stays what it was.
  ClockState Evaluate(int64_t now_ms);

  ClockState state() const { return state_; }
  int64_t max_offset_ms() const { return max_offset_ms_; }
  // This node's clock minus its peers', the median over the fresh samples (0 without any).
  double offset_ms() const { return offset_ms_; }
  // Why this node refuses to serve, for replies and logs; nullopt unless kOffset.
  std::optional<std::string> Problem() const;

 private:
  struct Measurement {
    double offset_ms = 0;
    double rtt_ms = 0;
    int64_t at_ms = 0;
  };
  const int64_t max_offset_ms_;
  const int64_t stale_ms_;
  bool has_peers_ = false;
  std::map<uint64_t, std::optional<Measurement>> peers_;
  ClockState state_ = ClockState::kUnknown;
  double offset_ms_ = 0;
};

}  // namespace atlas
