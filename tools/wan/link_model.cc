#include "tools/wan/link_model.h"

#include <algorithm>
#include <cstdio>
#include <sstream>

namespace atlas::wan {
namespace {

std::vector<std::string> SplitCsv(const std::string& line) {
  std::vector<std::string> out;
  std::string cell;
  std::istringstream in(line);
  while (std::getline(in, cell, ',')) {
    cell.erase(0, cell.find_first_not_of(" \t\r"));
    cell.erase(cell.find_last_not_of(" \t\r") + 1);
    out.push_back(cell);
  }
  return out;
}

std::optional<double> ParseNumber(const std::string& s) {
  if (s.empty()) return std::nullopt;
  size_t used = 0;
  try {
    double v = std::stod(s, &used);
    if (used != s.size() || !(v >= 0)) return std::nullopt;
    return v;
  } catch (...) {
    return std::nullopt;
  }
}

}  // namespace

std::optional<RttMatrix> RttMatrix::Parse(const std::string& text, std::string* error) {
  RttMatrix m;
  std::istringstream in(text);
  std::string line;
  bool header = false;
  int line_no = 0;
  while (std::getline(in, line)) {
    ++line_no;
    if (line.find_first_not_of(" \t\r") == std::string::npos || line[0] == '#') continue;
    std::vector<std::string> cells = SplitCsv(line);
    if (!header) {
      if (cells.size() < 2 || cells[0] != "zone") {
        *error = "line " + std::to_string(line_no) + ": header must be zone,<name>,...";
        return std::nullopt;
      }
      m.zones.assign(cells.begin() + 1, cells.end());
      header = true;
      continue;
    }
    const size_t row = m.rtt_ms.size();
    if (row >= m.zones.size() || cells.size() != m.zones.size() + 1 || cells[0] != m.zones[row]) {
      *error = "line " + std::to_string(line_no) + ": expected a row for zone " +
               (row < m.zones.size() ? m.zones[row] : "(none)") + " with " +
               std::to_string(m.zones.size()) + " values";
      return std::nullopt;
    }
    std::vector<double> values;
    for (size_t i = 1; i < cells.size(); ++i) {
      auto v = ParseNumber(cells[i]);
      if (!v) {
        *error = "line " + std::to_string(line_no) + ": bad RTT '" + cells[i] + "'";
        return std::nullopt;
      }
      values.push_back(*v);
    }
    m.rtt_ms.push_back(std::move(values));
  }
  if (!header || m.rtt_ms.size() != m.zones.size()) {
    *error = "the matrix needs a header and one row per zone";
    return std::nullopt;
  }
  return m;
}

std::optional<size_t> RttMatrix::IndexOf(const std::string& zone) const {
  auto it = std::find(zones.begin(), zones.end(), zone);
  if (it == zones.end()) return std::nullopt;
  return static_cast<size_t>(it - zones.begin());
}

LinkModel::LinkModel(RttMatrix matrix, std::vector<Node> nodes, double intra_zone_rtt_ms,
                     uint64_t seed)
    : matrix_(std::move(matrix)), intra_zone_rtt_ms_(intra_zone_rtt_ms), rng_(seed) {
  for (Node& n : nodes) {
    by_ip_[n.source_ip] = n.id;
    nodes_[n.id] = std::move(n);
  }
}

int LinkModel::NodeOfSource(const std::string& ip) const {
  auto it = by_ip_.find(ip);
  return it == by_ip_.end() ? 0 : it->second;
}

double LinkModel::BaseOneWayMs(int from, int to) const {
  auto a = nodes_.find(from);
  auto b = nodes_.find(to);
  if (a == nodes_.end() || b == nodes_.end()) return 0;
  auto za = matrix_.IndexOf(a->second.zone);
  auto zb = matrix_.IndexOf(b->second.zone);
  if (!za || !zb) return 0;
  if (*za == *zb) return intra_zone_rtt_ms_ / 2;
  return matrix_.rtt_ms[*za][*zb] / 2;
}

int64_t LinkModel::DelayUs(int from, int to) {
  int64_t us = static_cast<int64_t>(BaseOneWayMs(from, to) * 1000);
  if (auto it = extra_us_.find({from, to}); it != extra_us_.end()) us += it->second;
  if (jitter_us_ > 0) us += std::uniform_int_distribution<int64_t>(0, jitter_us_)(rng_);
  return us;
}

void LinkModel::SetCut(int from, int to, bool cut) {
  if (cut) {
    cut_.insert({from, to});
  } else {
    cut_.erase({from, to});
  }
}

void LinkModel::SetExtraMs(int from, int to, double ms) {
  if (ms <= 0) {
    extra_us_.erase({from, to});
  } else {
    extra_us_[{from, to}] = static_cast<int64_t>(ms * 1000);
  }
}

void LinkModel::HealAll() {
  cut_.clear();
  extra_us_.clear();
}

std::string LinkModel::Control(const std::string& line) {
  std::istringstream in(line);
  std::string verb;
  in >> verb;
  auto pair = [&](int& a, int& b) {
    if (!(in >> a >> b)) return false;
    return Known(a) && Known(b) && a != b;
  };
  int a = 0, b = 0;
  if (verb == "cut" || verb == "heal") {
    if (verb == "heal" && !(in >> std::ws).good()) {
      HealAll();
      return "OK healed every link";
    }
    if (!pair(a, b)) return "ERROR usage: " + verb + " <from-node> <to-node> (known, distinct)";
    SetCut(a, b, verb == "cut");
    if (verb == "heal") SetExtraMs(a, b, 0);
    return "OK";
  }
  if (verb == "slow") {
    double ms = 0;
    if (!pair(a, b) || !(in >> ms) || ms < 0) {
      return "ERROR usage: slow <from-node> <to-node> <extra-ms>";
    }
    SetExtraMs(a, b, ms);
    return "OK";
  }
  if (verb == "jitter") {
    double ms = 0;
    if (!(in >> ms) || ms < 0) return "ERROR usage: jitter <ms>";
    SetJitterMs(ms);
    return "OK";
  }
  if (verb == "delay") {
    if (!pair(a, b)) return "ERROR usage: delay <from-node> <to-node>";
    char buf[64];
    std::snprintf(buf, sizeof buf, "OK %.3f ms%s", BaseOneWayMs(a, b), Cut(a, b) ? " cut" : "");
    return buf;
  }
  return "ERROR unknown command (cut, heal, slow, jitter, delay)";
}

}  // namespace atlas::wan
