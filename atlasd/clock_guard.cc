#include "atlasd/clock_guard.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_format.h"

namespace atlas {

const char* ClockStateName(ClockState state) {
  switch (state) {
    case ClockState::kUnknown: return "unknown";
    case ClockState::kTrusted: return "ok";
    case ClockState::kOffset: return "offset";
  }
  return "?";
}

void ClockGuard::SetPeers(const std::vector<uint64_t>& peers) {
  std::map<uint64_t, std::optional<Measurement>> kept;
  for (uint64_t id : peers) {
    auto it = peers_.find(id);
    kept[id] = it == peers_.end() ? std::nullopt : it->second;
  }
  peers_.swap(kept);
  has_peers_ = !peers_.empty();
  // Alone, nobody's clock disagrees with ours: the cluster's time is ours.
  if (!has_peers_) state_ = ClockState::kTrusted;
}

void ClockGuard::Sample(uint64_t peer, double offset_ms, double rtt_ms, int64_t now_ms) {
  auto it = peers_.find(peer);
  if (it == peers_.end()) return;
  it->second = Measurement{offset_ms, rtt_ms, now_ms};
}

ClockState ClockGuard::Evaluate(int64_t now_ms) {
  if (!has_peers_) return state_ = ClockState::kTrusted;
  int near = 0, far = 0;
  std::vector<double> ours;  // this node's clock minus each peer's
  for (const auto& [id, m] : peers_) {
    if (!m || now_ms - m->at_ms > stale_ms_) continue;
    const double error = m->rtt_ms / 2;
    const double distance = std::fabs(m->offset_ms);
    ours.push_back(-m->offset_ms);
    if (distance - error > static_cast<double>(max_offset_ms_)) {
      ++far;  // certainly too far apart
    } else if (distance + error <= static_cast<double>(max_offset_ms_)) {
      ++near;  // certainly close enough; in between (a slow round trip) proves nothing
    }
  }
  if (!ours.empty()) {
    std::nth_element(ours.begin(), ours.begin() + static_cast<std::ptrdiff_t>(ours.size() / 2),
                     ours.end());
    offset_ms_ = ours[ours.size() / 2];
  }
  if (far > near) {
    state_ = ClockState::kOffset;
  } else if (near > 0) {
    state_ = ClockState::kTrusted;
  }
  return state_;
}

std::optional<std::string> ClockGuard::Problem() const {
  if (state_ != ClockState::kOffset) return std::nullopt;
  return absl::StrFormat(
      "clock offset: this node's clock is %.3f s %s its peers' (max-clock-offset %d ms); it "
      "owns no tables and serves no data commands until its clock is corrected",
      std::fabs(offset_ms_) / 1000.0, offset_ms_ >= 0 ? "ahead of" : "behind", max_offset_ms_);
}

}  // namespace atlas
