// The WAN model of wan-proxy, kept free of I/O so it can be unit-tested: which node a
// connection comes from, the one-way delay of each directed link (half the RTT of the zones'
// matrix entry, plus a per-link extra and jitter), and which links are cut.
//
// Delivery stays in order on a link even with jitter: a chunk is never scheduled before the
// chunk read before it (TCP would not reorder either).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <utility>
#include <vector>

namespace atlas::wan {

// Round-trip times between zones in milliseconds, from a CSV whose header is
// "zone,<name>,<name>..." and whose rows are "<name>,<ms>,<ms>..." ('#' starts a comment).
struct RttMatrix {
  std::vector<std::string> zones;
  std::vector<std::vector<double>> rtt_ms;  // [from][to]

  // Parses the CSV text; on error returns nullopt and sets `error`.
  static std::optional<RttMatrix> Parse(const std::string& text, std::string* error);
  std::optional<size_t> IndexOf(const std::string& zone) const;
};

struct Node {
  int id = 0;
  std::string zone;
  std::string source_ip;  // the address its outgoing connections come from
};

class LinkModel {
 public:
  // `intra_zone_rtt_ms` applies between two nodes of one zone (the matrix diagonal is 0).
  LinkModel(RttMatrix matrix, std::vector<Node> nodes, double intra_zone_rtt_ms, uint64_t seed);

  // The node whose source address this is; 0 for anything else (a client outside the lab,
  // whose traffic is not delayed).
  int NodeOfSource(const std::string& ip) const;
  bool Known(int node) const { return nodes_.contains(node); }

  // One-way delay in microseconds of bytes from `from` to `to`: half the zones' RTT, plus the
  // link's extra delay, plus uniform jitter in [0, jitter].
  int64_t DelayUs(int from, int to);
  bool Cut(int from, int to) const { return cut_.contains({from, to}); }

  // Control (directed; node 0 matches no link).
  void SetCut(int from, int to, bool cut);
  void SetExtraMs(int from, int to, double ms);
  void SetJitterMs(double ms) { jitter_us_ = static_cast<int64_t>(ms * 1000); }
  void HealAll();

  // Applies one control line ("cut A B", "heal A B", "heal", "slow A B MS", "jitter MS",
  // "delay A B" -> prints the base delay); returns the reply line ("OK ..." or "ERROR ...").
  std::string Control(const std::string& line);

 private:
  double BaseOneWayMs(int from, int to) const;

  RttMatrix matrix_;
  std::map<int, Node> nodes_;
  std::map<std::string, int> by_ip_;
  double intra_zone_rtt_ms_;
  std::map<std::pair<int, int>, int64_t> extra_us_;
  std::set<std::pair<int, int>> cut_;
  int64_t jitter_us_ = 0;
  std::mt19937_64 rng_;
};

// Keeps a link's deliveries in order: the time a chunk read at `now_us` may be delivered.
class InOrderClock {
 public:
  int64_t Schedule(int64_t now_us, int64_t delay_us) {
    last_ = std::max(last_, now_us + delay_us);
    return last_;
  }

 private:
  int64_t last_ = 0;
};

}  // namespace atlas::wan
