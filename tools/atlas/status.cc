#include "tools/atlas/status.h"

#include <iomanip>
#include <map>
#include <ostream>
#include <sstream>
#include <string>
#include <vector>

#include "nlohmann/json.hpp"
#include "socketproto/command.h"

namespace atlas::client {
namespace {

using json = nlohmann::json;

// A field of a member as text; "-" when the node has not reported it.
std::string Text(const json& node, const char* key) {
  const auto it = node.find(key);
  if (it == node.end() || it->is_null()) return "-";
  if (it->is_string()) return it->get<std::string>().empty() ? "-" : it->get<std::string>();
  return it->dump();
}

// "3.1" ms with two decimals under 10 ms, one above: readable at LAN and WAN scale alike.
std::string Ms(double ms) {
  std::ostringstream o;
  o << std::fixed << std::setprecision(ms < 10 ? 2 : 1) << ms;
  return o.str();
}

void PrintMembers(const json& nodes, std::ostream& out) {
  out << std::left << std::setw(6) << "NODE" << std::setw(14) << "REGION" << std::setw(10)
      << "STATUS" << std::setw(24) << "ADDRESS" << std::setw(10) << "VERSION" << std::setw(10)
      << "UPTIME_S" << std::setw(14) << "TABLES_OWNED" << "CERT_EXPIRES\n";
  for (const json& n : nodes) {
    out << std::left << std::setw(6) << Text(n, "id") << std::setw(14) << Text(n, "region")
        << std::setw(10) << Text(n, "status") << std::setw(24)
        << (Text(n, "addr") + ":" + Text(n, "port")) << std::setw(10) << Text(n, "version")
        << std::setw(10) << Text(n, "uptime_s") << std::setw(14) << Text(n, "owned_tables")
        << (n.value("cert_expires_ms", int64_t{0}) > 0
                ? socketproto::FormatRfc3339Ms(n["cert_expires_ms"].get<int64_t>())
                : "-")
        << "\n";
  }
  for (const json& n : nodes) {
    if (n.value("learner", false)) {
      out << "node " << Text(n, "id") << " is a learner: in no quorum until its node runs and "
          << "asks to vote (docs/cluster.md §Learners)\n";
    }
  }
}

void PrintRtts(const std::vector<const json*>& live, std::ostream& out) {
  out << "\nRTT_MS (row: from, column: to; - not measured or not reported)\n";
  out << std::left << std::setw(8) << "FROM\\TO";
  for (const json* to : live) out << std::setw(9) << Text(*to, "id");
  out << "\n";
  for (const json* from : live) {
    const json rtts = from->value("rtts_ms", json::object());
    out << std::left << std::setw(8) << Text(*from, "id");
    for (const json* to : live) {
      const auto it = rtts.find(Text(*to, "id"));
      out << std::setw(9) << (it == rtts.end() ? "-" : Ms(it->get<double>()));
    }
    out << "\n";
  }
}

void PrintRegions(const std::vector<const json*>& live, std::ostream& out) {
  struct RegionTotals {
    size_t nodes = 0;
    uint64_t owned = 0;
    bool complete = true;  // every node of the region reported
  };
  std::map<std::string, RegionTotals> regions;
  for (const json* n : live) {
    RegionTotals& r = regions[Text(*n, "region")];
    ++r.nodes;
    if (n->contains("owned_tables")) {
      r.owned += n->at("owned_tables").get<uint64_t>();
    } else {
      r.complete = false;
    }
  }
  out << "\n" << std::left << std::setw(16) << "REGION" << std::setw(7) << "NODES"
      << "TABLES_OWNED\n";
  for (const auto& [region, r] : regions) {
    out << std::left << std::setw(16) << region << std::setw(7) << r.nodes << r.owned
        << (r.complete ? "" : " (a node has not reported)") << "\n";
  }
}

}  // namespace

int Status(Connection& conn, bool as_json, std::ostream& out, std::ostream& err) {
  absl::StatusOr<std::vector<ReplyFrame>> r = conn.Call("NODE STATUS");
  if (!r.ok()) {
    err << "atlas status: " << r.status().message() << "\n";
    return 2;
  }
  if (r->size() != 2 || !(*r)[0].blob || r->back().text != "OK") {
    err << "atlas status: NODE STATUS: " << (r->empty() ? "no reply" : r->back().text) << "\n";
    return 1;
  }
  const std::string& text = *(*r)[0].blob;
  if (as_json) {
    out << text << "\n";
    return 0;
  }
  const json status = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (!status.is_object() || !status.contains("nodes") || !status["nodes"].is_array()) {
    err << "atlas status: NODE STATUS did not answer a status document\n";
    return 1;
  }
  const json& nodes = status["nodes"];
  out << "cluster: " << nodes.size()
      << " member(s); status as the node answering sees it, the rest as each node reports it"
      << "\n\n";
  PrintMembers(nodes, out);
  std::vector<const json*> live;  // rows and columns of the RTT matrix
  for (const json& n : nodes) {
    if (Text(n, "status") != "LEFT") live.push_back(&n);
  }
  PrintRtts(live, out);
  PrintRegions(live, out);
  return 0;
}

}  // namespace atlas::client
