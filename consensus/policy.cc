#include "consensus/policy.h"

namespace atlas::consensus {

RouteDecision AccessCountingPolicy::Route(const ObjectId&, const RouteContext& ctx) {
  if (ctx.believed_owner != kNoNode && ctx.believed_owner != ctx.self && ctx.owner_alive) {
    return RouteDecision::kForward;
  }
  return RouteDecision::kSteal;
}

std::optional<ZoneId> AccessCountingPolicy::RecordAccess(const ObjectId& object,
                                                         ZoneId owner_zone, ZoneId zone,
                                                         Tick now) {
  Stats& s = stats_[object];
  std::optional<ZoneId> move;
  if (now - s.window_start >= options_.window_ticks) {
    // Close the window: find the busiest zone other than the owner's.
    ZoneId top = owner_zone;
    int top_count = 0;
    for (const auto& [z, count] : s.counts) {
      if (z != owner_zone && count > top_count) {
        top = z;
        top_count = count;
      }
    }
    const int own = s.counts.contains(owner_zone) ? s.counts[owner_zone] : 0;
    const bool dominates = top != owner_zone && top_count >= options_.min_accesses &&
                           top_count >= options_.dominance * own;
    if (dominates && (s.streak == 0 || s.candidate == top)) {
      s.candidate = top;
      ++s.streak;
    } else {
      s.streak = dominates ? 1 : 0;
      s.candidate = top;
    }
    if (s.streak >= options_.sustain_windows) {
      auto allowed = allowed_.find(object);
      if (allowed == allowed_.end() || allowed->second.contains(top)) move = top;
      s.streak = 0;
    }
    s.counts.clear();
    s.window_start = now;
  }
  ++s.counts[zone];
  if (stats_.size() > options_.stats_kept) PruneIdle(object, now);
  return move;
}

void AccessCountingPolicy::PruneIdle(const ObjectId& current, Tick now) {
  // Two entries per access: faster than objects get counters, so the map shrinks back to the
  // busy ones; never the object just counted.
  auto it = stats_.lower_bound(prune_cursor_);
  for (int i = 0; i < 2; ++i) {
    if (it == stats_.end()) it = stats_.begin();
    const Stats& s = it->second;
    if (it->first != current && s.streak == 0 && now - s.window_start >= 2 * options_.window_ticks) {
      it = stats_.erase(it);
    } else {
      ++it;
    }
  }
  prune_cursor_ = it == stats_.end() ? ObjectId{} : it->first;
}

RouteDecision StaticPolicy::Route(const ObjectId&, const RouteContext& ctx) {
  if (ctx.believed_owner != kNoNode && ctx.believed_owner != ctx.self) {
    return RouteDecision::kForward;
  }
  return ctx.self == home_ ? RouteDecision::kSteal : RouteDecision::kReject;
}

}  // namespace atlas::consensus
