#include "tools/atlas/status.h"

#include "tools/atlas/dump.h"

#include <iomanip>
#include <map>
#include <ostream>
#include <sstream>
#include <string>
#include <vector>

namespace atlas::client {
namespace {

constexpr size_t kTablesMax = 10000;  // TABLE INFO per table: one round trip each

// "KEY=value KEY2=value2 ..." after the first word.
std::map<std::string, std::string> Fields(const std::string& line) {
  std::map<std::string, std::string> f;
  std::istringstream in(line);
  std::string word;
  in >> word;
  while (in >> word) {
    size_t eq = word.find('=');
    if (eq != std::string::npos) f[word.substr(0, eq)] = word.substr(eq + 1);
  }
  return f;
}

}  // namespace

int Status(Connection& conn, std::ostream& out, std::ostream& err) {
  auto call = [&](const std::string& line, std::vector<ReplyFrame>* frames) -> int {
    auto r = conn.Call(line);
    if (!r.ok()) {
      err << "atlas status: " << r.status().message() << "\n";
      return 2;
    }
    if (r->empty() || r->back().text != "OK") {
      err << "atlas status: " << line << ": " << (r->empty() ? "no reply" : r->back().text)
          << "\n";
      return 1;
    }
    *frames = std::move(*r);
    return 0;
  };
  std::vector<ReplyFrame> nodes;
  if (int rc = call("NODE LIST", &nodes)) return rc;
  std::vector<std::map<std::string, std::string>> members;
  for (size_t i = 0; i + 1 < nodes.size(); ++i) members.push_back(Fields(nodes[i].text));

  // Owners: TABLE INFO of every table this node holds (up to kTablesMax; one more is asked
  // for to tell whether there are more).
  std::vector<std::string> names;
  if (int rc = ListTables(conn, kTablesMax + 1, &names, err)) return rc;
  const bool truncated = names.size() > kTablesMax;
  if (truncated) names.pop_back();
  std::map<std::string, size_t> owned_by_node, owned_by_region;
  for (const std::string& t : names) {
    std::vector<ReplyFrame> info;
    if (int rc = call("TABLE INFO " + t, &info)) return rc;
    auto f = Fields(info.front().text);
    ++owned_by_node[f["owner"]];
    ++owned_by_region[f["owner"] == "0" ? "(no owner yet)" : f["region"]];
  }
  const size_t listed = names.size();

  out << "cluster: " << members.size() << " member(s); RTTs as measured by the node answering"
      << "\n\n";
  out << std::left << std::setw(6) << "NODE" << std::setw(14) << "REGION" << std::setw(10)
      << "STATUS" << std::setw(10) << "RTT_MS" << std::setw(24) << "ADDRESS"
      << "TABLES_OWNED\n";
  for (const auto& m : members) {
    auto get = [&](const char* k) { return m.count(k) ? m.at(k) : std::string("-"); };
    out << std::left << std::setw(6) << get("id") << std::setw(14) << get("region")
        << std::setw(10) << get("status") << std::setw(10) << get("rtt_ms") << std::setw(24)
        << (get("addr") + ":" + get("port"))
        << (owned_by_node.count(get("id")) ? owned_by_node[get("id")] : 0) << "\n";
  }
  out << "\n" << std::left << std::setw(16) << "REGION" << "TABLES_OWNED\n";
  for (const auto& [region, n] : owned_by_region) {
    out << std::left << std::setw(16) << region << n << "\n";
  }
  out << "\n" << listed << " table(s)";
  if (truncated) out << " (the first " << kTablesMax << "; there are more)";
  out << "\n";
  return 0;
}

}  // namespace atlas::client
