// Migration policy: which node owns an Object (WPaxos §4.3 "object stealing" and the adaptive
// ownership of the paper's evaluation). Specified in docs/consensus.md, "Migration policy".
//
// The core asks the policy two questions: at a non-owner, "forward this request to the believed
// owner or steal the object?"; at the owner, after each access, "should ownership move to
// another zone?". Policies are deterministic functions of their inputs (no clocks: ticks).
#ifndef ATLAS_CONSENSUS_POLICY_H_
#define ATLAS_CONSENSUS_POLICY_H_

#include <optional>

#include "absl/container/btree_map.h"
#include "absl/container/btree_set.h"
#include "consensus/types.h"

namespace atlas::consensus {

struct RouteContext {
  NodeId self = kNoNode;
  ZoneId self_zone = 0;
  NodeId believed_owner = kNoNode;  // kNoNode when unknown.
  bool owner_alive = false;         // Heard from the believed owner recently.
};

enum class RouteDecision { kForward, kSteal, kReject };

class MigrationPolicy {
 public:
  virtual ~MigrationPolicy() = default;
  // At a non-owner that received a client request for `object`.
  virtual RouteDecision Route(const ObjectId& object, const RouteContext& ctx) = 0;
  // At the owner, once per client request it serves (local or forwarded from `zone`). Returns a
  // zone that should own the object instead, or nullopt.
  virtual std::optional<ZoneId> RecordAccess(const ObjectId& object, ZoneId owner_zone,
                                             ZoneId zone, Tick now) = 0;
  // Ownership of `object` changed at this node (gained or lost): forget counters.
  virtual void Reset(const ObjectId& object) = 0;
};

// Default policy: forward to a live owner, steal otherwise; the owner counts accesses per zone
// in fixed windows and moves the object when one other zone has dominated (>= dominance x the
// owner zone's count, and >= min_accesses) for sustain_windows consecutive windows. An even
// split sits at 1x, far from the 2x needed twice in a row, so two zones do not ping-pong it.
class AccessCountingPolicy : public MigrationPolicy {
 public:
  struct Options {
    Tick window_ticks = 2000;
    double dominance = 2.0;
    int min_accesses = 6;
    int sustain_windows = 2;
    // Counters of objects idle for two windows are dropped (a few per access, from a rolling
    // cursor) once more than this many objects have counters: a node owning a million idle
    // tables keeps counters only for the busy ones. A dropped object starts afresh, as if its
    // stale window had closed empty.
    size_t stats_kept = 4096;
  };
  AccessCountingPolicy() : AccessCountingPolicy(Options{}) {}
  explicit AccessCountingPolicy(Options options) : options_(options) {}

  RouteDecision Route(const ObjectId& object, const RouteContext& ctx) override;
  std::optional<ZoneId> RecordAccess(const ObjectId& object, ZoneId owner_zone, ZoneId zone,
                                     Tick now) override;
  void Reset(const ObjectId& object) override { stats_.erase(object); }
  size_t tracked() const { return stats_.size(); }  // Objects with counters (tests).

  // TABLE PIN / zone restriction: automatic moves of `object` only target these zones (an
  // empty set pins it where it is). Explicit Replica::Move/Steal are not restricted here.
  void RestrictZones(const ObjectId& object, absl::btree_set<ZoneId> zones) {
    allowed_[object] = std::move(zones);
  }
  void Unrestrict(const ObjectId& object) { allowed_.erase(object); }

 private:
  struct Stats {
    Tick window_start = 0;
    absl::btree_map<ZoneId, int> counts;
    ZoneId candidate = 0;
    int streak = 0;
  };
  void PruneIdle(const ObjectId& current, Tick now);

  Options options_;
  absl::btree_map<ObjectId, Stats> stats_;
  ObjectId prune_cursor_;
  absl::btree_map<ObjectId, absl::btree_set<ZoneId>> allowed_;
};

// Static placement (TABLE PIN, and the single-leader Multi-Paxos baseline): never moves; a
// non-owner forwards to the believed owner; only `home` steals when no owner is known.
class StaticPolicy : public MigrationPolicy {
 public:
  explicit StaticPolicy(NodeId home) : home_(home) {}
  RouteDecision Route(const ObjectId& object, const RouteContext& ctx) override;
  std::optional<ZoneId> RecordAccess(const ObjectId&, ZoneId, ZoneId, Tick) override {
    return std::nullopt;
  }
  void Reset(const ObjectId&) override {}

 private:
  NodeId home_;
};

}  // namespace atlas::consensus

#endif  // ATLAS_CONSENSUS_POLICY_H_
