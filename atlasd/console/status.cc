#include "atlasd/console/status.h"

#include <algorithm>
#include <chrono>

#include "atlasd/commands/call.h"
#include "consensus/quorum.h"

namespace atlas::console {
namespace {

using json = nlohmann::json;

json LoadJson(const LoadTotals& load) {
  return {{"wall_ms", load.wall_ms},
          {"commands", load.commands},
          {"errors", load.errors},
          {"latency_buckets", load.buckets}};
}

json NodeJson(const NodeView& n) {
  json j = {{"id", n.id},         {"region", n.region}, {"name", n.name.empty() ? "-" : n.name},
            {"addr", n.addr},     {"port", n.port},     {"status", n.status},
            {"self", n.self},     {"rtt_ms", n.rtt_ms}, {"reported", n.reported},
            {"learner", n.learner}};
  if (!n.reported) return j;
  json rtts = json::object();
  for (const auto& [peer, ms] : n.rtts) rtts[std::to_string(peer)] = ms;
  j.update({{"rtts_ms", rtts},
            {"version", n.version},
            {"uptime_s", n.uptime_s},
            {"owned_tables", n.owned_tables},
            {"clock", n.clock},
            {"clock_offset_ms", n.clock_offset_ms},
            {"cert_expires_ms", n.cert_not_after_ms},
            {"load", LoadJson(n.load)}});
  return j;
}

// Fn/Fz, and per zone how many nodes a phase-1 and a phase-2 quorum take there.
json QuorumJson(const consensus::ClusterConfig& config, const std::vector<NodeView>& nodes) {
  json j = {{"fn", config.quorum.fn}, {"fz", config.quorum.fz}, {"epoch", config.epoch}};
  consensus::Topology topology = config.ToTopology({});
  const std::vector<consensus::ZoneId> zones = topology.Zones();
  if (zones.empty() || config.quorum.fz >= static_cast<int>(zones.size())) return j;
  const consensus::QuorumSystem qs(topology, config.quorum);
  json per_zone = json::array();
  for (consensus::ZoneId zone : zones) {
    const std::vector<consensus::NodeId> members = topology.NodesIn(zone);
    per_zone.push_back({{"region", RegionOf(nodes, members.front())},
                        {"members", members.size()},
                        {"q1", qs.Q1PerZone(zone)},
                        {"q2", qs.Q2PerZone(zone)}});
  }
  j.update({{"zones", per_zone},
            {"q1_zones", qs.Q1Zones()},
            {"q2_zones", qs.Q2Zones()}});
  return j;
}

// The cluster CAs and a rotation's progress (docs/security.md §Rotating the CA).
json CaJson(const cluster::RotationStatus& s) {
  return {{"phase", s.phase}, {"signing", s.signing}, {"trusted", s.trusted},
          {"waiting", s.waiting}};
}

}  // namespace

std::string RegionOf(const std::vector<NodeView>& nodes, uint64_t id) {
  for (const NodeView& n : nodes) {
    if (n.id == id) return n.region;
  }
  return "";
}

nlohmann::json MovesJson(const std::vector<NodeView>& nodes, const std::string& only_table) {
  std::vector<std::pair<const NodeView*, const OwnershipMove*>> all;
  for (const NodeView& n : nodes) {
    for (const OwnershipMove& m : n.moves) {
      if (only_table.empty() || m.table == only_table) all.emplace_back(&n, &m);
    }
  }
  std::sort(all.begin(), all.end(),
            [](const auto& a, const auto& b) { return a.second->wall_ms > b.second->wall_ms; });
  json out = json::array();
  for (const auto& [n, m] : all) {
    out.push_back({{"table", m->table},
                   {"owner", n->id},
                   {"region", n->region},
                   {"ballot", m->ballot},
                   {"wall_ms", m->wall_ms}});
  }
  return out;
}

json ClusterStatus(ClusterView& cluster, const NodeIdentity& self) {
  const std::vector<NodeView> nodes = cluster.Nodes();
  json node_list = json::array();
  for (const NodeView& n : nodes) node_list.push_back(NodeJson(n));
  return {{"cluster_id", cluster.ClusterId()},
          {"node", self.id},
          {"region", self.region},
          {"version", self.version},
          {"time_ms", WallNowMs()},
          {"latency_bounds_s", LoadTotals::kBounds},
          {"quorum", QuorumJson(cluster.Membership(), nodes)},
          {"nodes", node_list},
          {"moves", MovesJson(nodes, "")},
          {"ca", CaJson(cluster.CaStatus())}};
}

}  // namespace atlas::console
