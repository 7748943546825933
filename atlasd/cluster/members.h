// How the daemon describes a member to the consensus core's `atlas.nodes` object
// (consensus/membership.h), whose Member has only a numeric zone and an opaque address.
//
// - Zones: a region name maps to a ZoneId by a fixed hash (FNV-1a, 32 bits, never 0), so every
//   node derives the same zone for the same region without a registry of its own. Two regions
//   that collide would share a zone; CheckRegions refuses that when a member joins.
// - Address: "host:port region name" — the peer address plus what NODE LIST shows. Regions and
//   node names never contain white space (the join request is validated), so the fields split
//   unambiguously; the core never looks inside.
#pragma once

#include <charconv>
#include <cmath>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "consensus/membership.h"

namespace atlas::cluster {

inline consensus::ZoneId ZoneOfRegion(std::string_view region) {
  uint32_t h = 2166136261u;
  for (unsigned char c : region) {
    h ^= c;
    h *= 16777619u;
  }
  return h == 0 ? 1 : h;
}

struct MemberAddress {
  std::string host;
  uint16_t port = 0;
  std::string region;
  std::string name;

  std::string HostPort() const { return host + ":" + std::to_string(port); }
};

inline bool IsToken(std::string_view s) {
  if (s.empty()) return false;
  for (unsigned char c : s) {
    if (c <= ' ' || c == 0x7f) return false;
  }
  return true;
}

// "host:port region name"; an empty name is stored as "-".
inline std::string EncodeMemberAddress(std::string_view host_port, std::string_view region,
                                       std::string_view name) {
  std::string out(host_port);
  out.append(" ").append(region).append(" ").append(name.empty() ? "-" : name);
  return out;
}

inline std::optional<MemberAddress> DecodeMemberAddress(std::string_view address) {
  MemberAddress m;
  size_t s1 = address.find(' ');
  if (s1 == std::string_view::npos) return std::nullopt;
  size_t s2 = address.find(' ', s1 + 1);
  if (s2 == std::string_view::npos) return std::nullopt;
  std::string_view hp = address.substr(0, s1);
  m.region = std::string(address.substr(s1 + 1, s2 - s1 - 1));
  m.name = std::string(address.substr(s2 + 1));
  size_t colon = hp.rfind(':');
  if (colon == std::string_view::npos || colon == 0) return std::nullopt;
  m.host = std::string(hp.substr(0, colon));
  if (m.host.size() > 2 && m.host.front() == '[' && m.host.back() == ']') {
    m.host = m.host.substr(1, m.host.size() - 2);
  }
  unsigned port = 0;
  std::string_view ps = hp.substr(colon + 1);
  if (ps.empty() || ps.size() > 5) return std::nullopt;
  for (char c : ps) {
    if (c < '0' || c > '9') return std::nullopt;
    port = port * 10 + static_cast<unsigned>(c - '0');
  }
  if (port == 0 || port > 65535 || !IsToken(m.region)) return std::nullopt;
  m.port = static_cast<uint16_t>(port);
  return m;
}

// Zone distances as this node measures them, for ordering zones when quorums are chosen:
// from its own zone to each zone, the smallest smoothed RTT (microseconds) of a live peer
// there; its own zone is 0. Only pairs that include this node's zone are known; the rest stay
// "far" (consensus::Topology), so zones this node cannot rank fall back to zone order.
inline std::map<std::pair<consensus::ZoneId, consensus::ZoneId>, int64_t> MeasuredZoneDistances(
    consensus::ZoneId self_zone, const std::vector<std::pair<consensus::ZoneId, double>>& rtt_ms) {
  std::map<std::pair<consensus::ZoneId, consensus::ZoneId>, int64_t> out;
  out[{self_zone, self_zone}] = 0;
  for (const auto& [zone, ms] : rtt_ms) {
    if (zone == self_zone || !(ms >= 0)) continue;
    const int64_t us = std::llround(ms * 1000);
    auto it = out.find({self_zone, zone});
    if (it == out.end() || us < it->second) {
      out[{self_zone, zone}] = us;
      out[{zone, self_zone}] = us;
    }
  }
  return out;
}

// The core names zones by number; operators know them by region ("zone 3107 has 0/1" becomes
// "zone eu-west has 0/1"), as `config`'s members give them.
inline std::string NameZones(std::string_view text, const consensus::ClusterConfig& config) {
  std::string out;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t z = text.find("zone ", pos);
    if (z == std::string_view::npos) break;
    size_t d = z + 5, e = d;
    while (e < text.size() && text[e] >= '0' && text[e] <= '9') ++e;
    out.append(text, pos, d - pos);
    pos = d;
    if (e == d) continue;
    uint64_t zone = 0;
    std::string region;
    if (std::from_chars(text.data() + d, text.data() + e, zone).ec == std::errc()) {
      for (const auto& [id, m] : config.members) {
        if (m.zone != zone) continue;
        if (auto a = DecodeMemberAddress(m.address)) region = a->region;
      }
    }
    out.append(region.empty() ? text.substr(d, e - d) : std::string_view(region));
    pos = e;
  }
  out.append(text.substr(pos));
  return out;
}

}  // namespace atlas::cluster
