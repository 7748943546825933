#include "tools/atlas/status.h"

#include <iomanip>
#include <map>
#include <ostream>
#include <sstream>
#include <string>
#include <vector>

namespace atlas::client {
namespace {

using Fields = std::map<std::string, std::string>;

// "KEY=value KEY2=value2 ..." after the first word.
Fields ParseFields(const std::string& line) {
  Fields f;
  std::istringstream in(line);
  std::string word;
  in >> word;
  while (in >> word) {
    size_t eq = word.find('=');
    if (eq != std::string::npos) f[word.substr(0, eq)] = word.substr(eq + 1);
  }
  return f;
}

std::string Get(const Fields& f, const char* key) {
  auto it = f.find(key);
  return it == f.end() || it->second.empty() ? std::string("-") : it->second;
}

// "2:0.412,3:0.398" -> {"2": "0.412", "3": "0.398"}; "-" -> {}.
std::map<std::string, std::string> ParseRtts(const std::string& text) {
  std::map<std::string, std::string> out;
  std::istringstream in(text);
  for (std::string item; std::getline(in, item, ',');) {
    size_t colon = item.find(':');
    if (colon != std::string::npos) out[item.substr(0, colon)] = item.substr(colon + 1);
  }
  return out;
}

// "3.1" ms with two decimals under 10 ms, one above: readable at LAN and WAN scale alike.
std::string Ms(const std::string& text) {
  try {
    double ms = std::stod(text);
    std::ostringstream o;
    o << std::fixed << std::setprecision(ms < 10 ? 2 : 1) << ms;
    return o.str();
  } catch (...) {
    return "-";
  }
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
  std::vector<ReplyFrame> list;
  if (int rc = call("NODE LIST", &list)) return rc;
  // NODE INFO of each member: its own report (owned tables, version, uptime, its RTT row),
  // relayed by the node answering from that member's last ping answer.
  std::vector<Fields> members;
  for (size_t i = 0; i + 1 < list.size(); ++i) {
    Fields f = ParseFields(list[i].text);
    std::vector<ReplyFrame> info;
    if (f["status"] != "LEFT") {
      if (int rc = call("NODE INFO " + f["id"], &info)) return rc;
      Fields detailed = ParseFields(info.front().text);
      detailed["status"] = f["status"];
      f = std::move(detailed);
    }
    members.push_back(std::move(f));
  }

  out << "cluster: " << members.size()
      << " member(s); status as the node answering sees it, the rest as each node reports it"
      << "\n\n";
  out << std::left << std::setw(6) << "NODE" << std::setw(14) << "REGION" << std::setw(10)
      << "STATUS" << std::setw(24) << "ADDRESS" << std::setw(10) << "VERSION" << std::setw(10)
      << "UPTIME_S" << std::setw(14) << "TABLES_OWNED" << "CERT_EXPIRES\n";
  struct RegionTotals {
    size_t nodes = 0;
    uint64_t owned = 0;
    bool complete = true;  // every node of the region reported
  };
  std::map<std::string, RegionTotals> regions;
  std::vector<const Fields*> live;  // rows and columns of the RTT matrix
  for (const Fields& m : members) {
    out << std::left << std::setw(6) << Get(m, "id") << std::setw(14) << Get(m, "region")
        << std::setw(10) << Get(m, "status") << std::setw(24)
        << (Get(m, "addr") + ":" + Get(m, "port")) << std::setw(10) << Get(m, "version")
        << std::setw(10) << Get(m, "uptime_s") << std::setw(14) << Get(m, "owned_tables")
        << Get(m, "cert_expires") << "\n";
    if (Get(m, "status") == "LEFT") continue;
    live.push_back(&m);
    RegionTotals& r = regions[Get(m, "region")];
    ++r.nodes;
    try {
      r.owned += std::stoull(Get(m, "owned_tables"));
    } catch (...) {
      r.complete = false;
    }
  }

  out << "\nRTT_MS (row: from, column: to; - not measured or not reported)\n";
  out << std::left << std::setw(8) << "FROM\\TO";
  for (const Fields* to : live) out << std::setw(9) << Get(*to, "id");
  out << "\n";
  for (const Fields* from : live) {
    std::map<std::string, std::string> rtts = ParseRtts(Get(*from, "rtts"));
    out << std::left << std::setw(8) << Get(*from, "id");
    for (const Fields* to : live) {
      std::string cell = "-";
      if (auto it = rtts.find(Get(*to, "id")); it != rtts.end()) cell = Ms(it->second);
      out << std::setw(9) << cell;
    }
    out << "\n";
  }

  out << "\n" << std::left << std::setw(16) << "REGION" << std::setw(7) << "NODES"
      << "TABLES_OWNED\n";
  for (const auto& [region, r] : regions) {
    out << std::left << std::setw(16) << region << std::setw(7) << r.nodes << r.owned
        << (r.complete ? "" : " (a node has not reported)") << "\n";
  }
  return 0;
}

}  // namespace atlas::client
