// Flexible grid quorums over zones (WPaxos §3.1; Flexible Paxos, Howard et al. 2016).
// Specified in docs/consensus.md, "Quorums".
//
// With Z zones, zone z holding n_z nodes, and the tunables Fz (zone failures tolerated) and Fn
// (node failures tolerated per zone):
//   Q1 (phase 1, steal):   q1(z) = min(Fn+1, n_z) nodes in each of Z-Fz zones,
//   Q2 (phase 2, accept):  q2(z) = max(n_z-Fn, 1) nodes in each of Fz+1 zones.
// Any Q1 and any Q2 share a zone (Z-Fz + Fz+1 > Z) and inside it q1(z)+q2(z) > n_z, so they
// share a node. The clamping keeps that true for zones smaller than Fn+1.
//
// Thread-safety: immutable after construction; all methods are const.
#ifndef ATLAS_CONSENSUS_QUORUM_H_
#define ATLAS_CONSENSUS_QUORUM_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/container/btree_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "consensus/types.h"

namespace atlas::consensus {

struct QuorumSpec {
  int fn = 0;  // Node failures tolerated per zone.
  int fz = 0;  // Zone failures tolerated.
};

// Placement of nodes in zones plus a distance oracle between zones (e.g. RTT in microseconds).
struct Topology {
  absl::btree_map<NodeId, ZoneId> zone_of;
  // distance[{a, b}]; missing pairs count as 0 for a == b and as "far" otherwise.
  absl::btree_map<std::pair<ZoneId, ZoneId>, int64_t> distance;

  std::vector<ZoneId> Zones() const;
  std::vector<NodeId> NodesIn(ZoneId zone) const;
  int64_t Distance(ZoneId a, ZoneId b) const;
  ZoneId ZoneOf(NodeId node) const;  // CHECKs that the node is known.
};

class QuorumSystem {
 public:
  QuorumSystem(Topology topology, QuorumSpec spec);

  const Topology& topology() const { return topology_; }
  const QuorumSpec& spec() const { return spec_; }

  int Q1PerZone(ZoneId zone) const;
  int Q2PerZone(ZoneId zone) const;
  int Q1Zones() const;  // Z - Fz
  int Q2Zones() const;  // Fz + 1

  // True iff `nodes` contains a phase-1 / phase-2 quorum. Unknown node ids are ignored.
  bool IsQ1(const NodeSet& nodes) const;
  bool IsQ2(const NodeSet& nodes) const;
  // The same predicates over per-zone counts (index = position in Zones()).
  bool IsQ1Counts(const std::vector<int>& counts) const;
  bool IsQ2Counts(const std::vector<int>& counts) const;

  // The zones of the owner's Q2, closest-first from `owner_zone` and always including it
  // (WPaxos §3.1: the owner's zone is one of the Fz+1 phase-2 zones).
  std::vector<ZoneId> Q2ZonesFor(ZoneId owner_zone) const;

  // A concrete Q2 of live nodes for an owner in `owner_zone`: its own zone first, then the
  // nearest zones that still have q2(z) live nodes; `prefer` (the owner) first in its zone.
  // Fails with "quorum unavailable: <why>".
  absl::StatusOr<NodeSet> ChooseQ2(ZoneId owner_zone, const NodeSet& live,
                                   NodeId prefer = kNoNode) const;
  // A concrete Q1 of live nodes, nearest zones first. Fails with "quorum unavailable: <why>".
  absl::StatusOr<NodeSet> ChooseQ1(ZoneId from_zone, const NodeSet& live) const;

  // OK iff both a Q1 and a Q2 (including the owner's zone) can be formed from `live`.
  absl::Status CheckAvailable(ZoneId owner_zone, const NodeSet& live) const;

  // Human-readable summary, e.g. for QUORUM INFO: "Fn=1 Fz=0 Q1=2/zone in 3 zones ...".
  std::string Describe() const;
  // Every zone, `from` first, then by distance from it (ties by zone id).
  std::vector<ZoneId> ZonesByDistance(ZoneId from) const;

 private:
  std::vector<int> Counts(const NodeSet& nodes) const;

  Topology topology_;
  QuorumSpec spec_;
  std::vector<ZoneId> zones_;
  absl::btree_map<ZoneId, int> zone_index_;
  std::vector<int> zone_size_;
};

// A self-describing configuration C_e = (epoch, node -> zone, Fn, Fz), as carried by anchor
// entries and Promise/catch-up messages (docs/consensus.md, "Reconfiguration"). The distance
// oracle is not part of it: it only orders zones, never decides a quorum.
std::string EncodeQuorumConfig(uint64_t epoch, const Topology& topology, QuorumSpec spec);
// False (and outputs untouched) on malformed bytes or a configuration QuorumSystem rejects.
bool DecodeQuorumConfig(const std::string& data, uint64_t& epoch, Topology& topology,
                        QuorumSpec& spec);

}  // namespace atlas::consensus

#endif  // ATLAS_CONSENSUS_QUORUM_H_
