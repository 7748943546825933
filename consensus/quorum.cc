#include "consensus/quorum.h"

#include <algorithm>
#include <limits>

#include "absl/strings/str_cat.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "consensus/check.h"

namespace atlas::consensus {

std::vector<ZoneId> Topology::Zones() const {
  absl::btree_set<ZoneId> zones;
  for (const auto& [node, zone] : zone_of) zones.insert(zone);
  return {zones.begin(), zones.end()};
}

std::vector<NodeId> Topology::NodesIn(ZoneId zone) const {
  std::vector<NodeId> nodes;
  for (const auto& [node, z] : zone_of) {
    if (z == zone) nodes.push_back(node);
  }
  return nodes;
}

int64_t Topology::Distance(ZoneId a, ZoneId b) const {
  auto it = distance.find({a, b});
  if (it != distance.end()) return it->second;
  it = distance.find({b, a});
  if (it != distance.end()) return it->second;
  return a == b ? 0 : std::numeric_limits<int32_t>::max();
}

ZoneId Topology::ZoneOf(NodeId node) const {
  auto it = zone_of.find(node);
  ATLAS_CHECK(it != zone_of.end());
  return it->second;
}

QuorumSystem::QuorumSystem(Topology topology, QuorumSpec spec)
    : topology_(std::move(topology)), spec_(spec), zones_(topology_.Zones()) {
  ATLAS_CHECK(!zones_.empty());
  ATLAS_CHECK(spec_.fn >= 0 && spec_.fz >= 0);
  // Fz = Z would make Q1 empty and break the intersection argument.
  ATLAS_CHECK(spec_.fz < static_cast<int>(zones_.size()));
  for (size_t i = 0; i < zones_.size(); ++i) {
    zone_index_[zones_[i]] = static_cast<int>(i);
    zone_size_.push_back(static_cast<int>(topology_.NodesIn(zones_[i]).size()));
  }
}

int QuorumSystem::Q1PerZone(ZoneId zone) const {
  return std::min(spec_.fn + 1, zone_size_[zone_index_.at(zone)]);
}

int QuorumSystem::Q2PerZone(ZoneId zone) const {
  return std::max(zone_size_[zone_index_.at(zone)] - spec_.fn, 1);
}

int QuorumSystem::Q1Zones() const { return static_cast<int>(zones_.size()) - spec_.fz; }
int QuorumSystem::Q2Zones() const { return spec_.fz + 1; }

std::vector<int> QuorumSystem::Counts(const NodeSet& nodes) const {
  std::vector<int> counts(zones_.size(), 0);
  for (NodeId node : nodes) {
    auto it = topology_.zone_of.find(node);
    if (it == topology_.zone_of.end()) continue;
    ++counts[zone_index_.at(it->second)];
  }
  return counts;
}

bool QuorumSystem::IsQ1Counts(const std::vector<int>& counts) const {
  ATLAS_CHECK(counts.size() == zones_.size());
  int full = 0;
  for (size_t i = 0; i < zones_.size(); ++i) {
    if (counts[i] >= std::min(spec_.fn + 1, zone_size_[i])) ++full;
  }
  return full >= Q1Zones();
}

bool QuorumSystem::IsQ2Counts(const std::vector<int>& counts) const {
  ATLAS_CHECK(counts.size() == zones_.size());
  int full = 0;
  for (size_t i = 0; i < zones_.size(); ++i) {
    if (counts[i] >= std::max(zone_size_[i] - spec_.fn, 1)) ++full;
  }
  return full >= Q2Zones();
}

bool QuorumSystem::IsQ1(const NodeSet& nodes) const { return IsQ1Counts(Counts(nodes)); }
bool QuorumSystem::IsQ2(const NodeSet& nodes) const { return IsQ2Counts(Counts(nodes)); }

std::vector<ZoneId> QuorumSystem::ZonesByDistance(ZoneId from) const {
  std::vector<ZoneId> order = zones_;
  // Stable on zone id so ties are deterministic.
  std::stable_sort(order.begin(), order.end(), [&](ZoneId a, ZoneId b) {
    return topology_.Distance(from, a) < topology_.Distance(from, b);
  });
  auto self = std::find(order.begin(), order.end(), from);
  if (self != order.end()) std::rotate(order.begin(), self, self + 1);
  return order;
}

std::vector<ZoneId> QuorumSystem::Q2ZonesFor(ZoneId owner_zone) const {
  std::vector<ZoneId> order = ZonesByDistance(owner_zone);
  order.resize(std::min<size_t>(order.size(), Q2Zones()));
  return order;
}

absl::StatusOr<NodeSet> QuorumSystem::ChooseQ2(ZoneId owner_zone, const NodeSet& live,
                                               NodeId prefer) const {
  NodeSet chosen;
  int zones = 0;
  std::vector<std::string> short_zones;
  for (ZoneId zone : ZonesByDistance(owner_zone)) {
    if (zones == Q2Zones()) break;
    std::vector<NodeId> up;
    for (NodeId node : topology_.NodesIn(zone)) {
      if (live.contains(node)) up.push_back(node);
    }
    if (auto p = std::find(up.begin(), up.end(), prefer); p != up.end()) {
      std::rotate(up.begin(), p, p + 1);
    }
    const int need = Q2PerZone(zone);
    if (static_cast<int>(up.size()) < need) {
      short_zones.push_back(absl::StrCat("zone ", zone, " has ", up.size(), "/", need));
      if (zone == owner_zone) {
        return absl::UnavailableError(absl::StrCat(
            "quorum unavailable: Q2 must include the owner's zone ", zone, " which has ",
            up.size(), " live of the ", need, " nodes needed (Fn=", spec_.fn, ")"));
      }
      continue;
    }
    chosen.insert(up.begin(), up.begin() + need);
    ++zones;
  }
  if (zones < Q2Zones()) {
    return absl::UnavailableError(absl::StrCat(
        "quorum unavailable: Q2 needs ", Q2Zones(), " zone(s) with n-Fn live nodes (Fn=",
        spec_.fn, " Fz=", spec_.fz, "), found ", zones, "; ", absl::StrJoin(short_zones, ", ")));
  }
  return chosen;
}

absl::StatusOr<NodeSet> QuorumSystem::ChooseQ1(ZoneId from_zone, const NodeSet& live) const {
  NodeSet chosen;
  int zones = 0;
  std::vector<std::string> short_zones;
  for (ZoneId zone : ZonesByDistance(from_zone)) {
    if (zones == Q1Zones()) break;
    std::vector<NodeId> up;
    for (NodeId node : topology_.NodesIn(zone)) {
      if (live.contains(node)) up.push_back(node);
    }
    const int need = Q1PerZone(zone);
    if (static_cast<int>(up.size()) < need) {
      short_zones.push_back(absl::StrCat("zone ", zone, " has ", up.size(), "/", need));
      continue;
    }
    chosen.insert(up.begin(), up.begin() + need);
    ++zones;
  }
  if (zones < Q1Zones()) {
    return absl::UnavailableError(absl::StrCat(
        "quorum unavailable: Q1 needs ", Q1Zones(), " zone(s) with Fn+1 live nodes (Fn=",
        spec_.fn, " Fz=", spec_.fz, "), found ", zones, "; ", absl::StrJoin(short_zones, ", ")));
  }
  return chosen;
}

absl::Status QuorumSystem::CheckAvailable(ZoneId owner_zone, const NodeSet& live) const {
  if (auto q1 = ChooseQ1(owner_zone, live); !q1.ok()) return q1.status();
  if (auto q2 = ChooseQ2(owner_zone, live); !q2.ok()) return q2.status();
  return absl::OkStatus();
}

std::string QuorumSystem::Describe() const {
  std::vector<std::string> sizes;
  for (size_t i = 0; i < zones_.size(); ++i) {
    sizes.push_back(absl::StrCat(zones_[i], ":", zone_size_[i]));
  }
  return absl::StrCat("Fn=", spec_.fn, " Fz=", spec_.fz, " zones{", absl::StrJoin(sizes, " "),
                      "} Q1=min(Fn+1,n) in ", Q1Zones(), " zone(s), Q2=max(n-Fn,1) in ",
                      Q2Zones(), " zone(s) incl. the owner's");
}

std::string EncodeQuorumConfig(uint64_t epoch, const Topology& topology, QuorumSpec spec) {
  std::vector<std::string> members;
  for (const auto& [node, zone] : topology.zone_of) members.push_back(absl::StrCat(node, ":", zone));
  return absl::StrCat("C1 ", epoch, " ", spec.fn, " ", spec.fz, " ", absl::StrJoin(members, ","));
}

bool DecodeQuorumConfig(const std::string& data, uint64_t& epoch, Topology& topology,
                        QuorumSpec& spec) {
  std::vector<std::string> f = absl::StrSplit(data, ' ');
  uint64_t e = 0;
  QuorumSpec q;
  Topology t;
  if (f.size() != 5 || f[0] != "C1" || !absl::SimpleAtoi(f[1], &e) || e == 0 ||
      !absl::SimpleAtoi(f[2], &q.fn) || !absl::SimpleAtoi(f[3], &q.fz) || q.fn < 0 || q.fz < 0) {
    return false;
  }
  for (absl::string_view m : absl::StrSplit(f[4], ',', absl::SkipEmpty())) {
    std::vector<std::string> nz = absl::StrSplit(m, ':');
    NodeId node = 0;
    ZoneId zone = 0;
    if (nz.size() != 2 || !absl::SimpleAtoi(nz[0], &node) || !absl::SimpleAtoi(nz[1], &zone) ||
        node == kNoNode) {
      return false;
    }
    t.zone_of[node] = zone;
  }
  // Same preconditions as the QuorumSystem constructor, which CHECKs them.
  if (t.zone_of.empty() || q.fz >= static_cast<int>(t.Zones().size())) return false;
  epoch = e;
  topology = std::move(t);
  spec = q;
  return true;
}

}  // namespace atlas::consensus
