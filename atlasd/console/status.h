// The cluster as one node sees it, as JSON: GET /v1/status on the HTTPS port and NODE STATUS on
// the socket (which `atlas status` reads) answer with this one document (docs/console.md §The
// JSON API). Members with their own reports (load, RTTs, clock, certificate expiry), Fn/Fz and
// the quorums they imply, and recent ownership moves.
#pragma once

#include <string>
#include <vector>

#include "atlasd/cluster_view.h"
#include "atlasd/executor.h"
#include "nlohmann/json.hpp"

namespace atlas::console {

nlohmann::json ClusterStatus(ClusterView& cluster, const NodeIdentity& self);

// Pieces the table views share with it.
std::string RegionOf(const std::vector<NodeView>& nodes, uint64_t id);
// Every member's last ownership wins (of `only_table` when not empty), newest first.
nlohmann::json MovesJson(const std::vector<NodeView>& nodes, const std::string& only_table);

}  // namespace atlas::console
