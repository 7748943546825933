#include "consensus/membership.h"

#include <algorithm>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace atlas::consensus {

namespace {

constexpr char kSep = '\t';

// A configuration is usable iff every quorum can be formed when all members are up.
absl::Status Validate(const ClusterConfig& c) {
  if (c.members.empty()) return absl::FailedPreconditionError("no members left");
  absl::btree_map<ZoneId, int> sizes;
  for (const auto& [id, m] : c.members) ++sizes[m.zone];
  const int zones = static_cast<int>(sizes.size());
  if (c.quorum.fn < 0 || c.quorum.fz < 0) return absl::InvalidArgumentError("negative Fn/Fz");
  if (c.quorum.fz >= zones) {
    return absl::FailedPreconditionError(
        absl::StrCat("Fz=", c.quorum.fz, " needs more than ", zones, " zone(s)"));
  }
  return absl::OkStatus();
}

// Every command ends with "<sep>@<expected epoch>".
std::string WithEpoch(std::string command, uint64_t expected_epoch) {
  return absl::StrCat(command, std::string(1, kSep), "@", expected_epoch);
}

}  // namespace

Topology ClusterConfig::ToTopology(
    const absl::btree_map<std::pair<ZoneId, ZoneId>, int64_t>& distance) const {
  Topology t;
  for (const auto& [id, m] : members) t.zone_of[id] = m.zone;
  t.distance = distance;
  return t;
}

std::string EncodeJoin(ZoneId zone, const std::string& address, uint64_t expected_epoch) {
  return WithEpoch(absl::StrCat("join", std::string(1, kSep), zone, std::string(1, kSep), address),
                   expected_epoch);
}

std::string EncodeLeave(NodeId id, uint64_t expected_epoch) {
  return WithEpoch(absl::StrCat("leave", std::string(1, kSep), id), expected_epoch);
}

std::string EncodeSetQuorum(QuorumSpec quorum, uint64_t expected_epoch) {
  return WithEpoch(absl::StrCat("quorum", std::string(1, kSep), quorum.fn, std::string(1, kSep),
                                quorum.fz),
                   expected_epoch);
}

absl::StatusOr<std::string> ApplyMembershipCommand(ClusterConfig& config,
                                                   const std::string& command) {
  std::vector<std::string> f = absl::StrSplit(command, kSep);
  uint64_t expected = 0;
  if (f.size() < 2 || f.back().empty() || f.back()[0] != '@' ||
      !absl::SimpleAtoi(f.back().substr(1), &expected)) {
    return absl::InvalidArgumentError("membership command without an expected epoch");
  }
  f.pop_back();
  if (expected != config.epoch) {
    // Optimistic concurrency: each change is judged against the epoch its proposer saw settled.
    return absl::FailedPreconditionError(absl::StrCat(
        "membership changed concurrently: epoch is ", config.epoch, ", expected ", expected));
  }
  ClusterConfig next = config;
  std::string result;
  if (f.size() == 3 && f[0] == "join") {
    uint32_t zone = 0;
    if (!absl::SimpleAtoi(f[1], &zone)) return absl::InvalidArgumentError("bad zone");
    for (const auto& [id, m] : next.members) {
      if (m.address == f[2]) {
        return absl::AlreadyExistsError(absl::StrCat(f[2], " is already node ", id));
      }
    }
    // The id is allocated here, inside the decision: concurrent joiners are ordered by slot.
    const NodeId id = next.next_id++;
    next.members[id] = Member{id, zone, f[2]};
    result = absl::StrCat(id);
  } else if (f.size() == 2 && f[0] == "leave") {
    uint32_t id = 0;
    if (!absl::SimpleAtoi(f[1], &id) || !next.members.contains(id)) {
      return absl::NotFoundError(absl::StrCat("no node ", f[1]));
    }
    next.members.erase(id);
    result = "OK";
  } else if (f.size() == 3 && f[0] == "quorum") {
    if (!absl::SimpleAtoi(f[1], &next.quorum.fn) || !absl::SimpleAtoi(f[2], &next.quorum.fz)) {
      return absl::InvalidArgumentError("bad Fn/Fz");
    }
    result = "OK";
  } else {
    return absl::InvalidArgumentError("unknown membership command");
  }
  if (absl::Status s = Validate(next); !s.ok()) return s;
  ++next.epoch;
  config = std::move(next);
  return result;
}

std::string EncodeClusterConfig(const ClusterConfig& c) {
  std::string out = absl::StrCat(c.epoch, "\n", c.next_id, "\n", c.quorum.fn, "\n",
                                 c.quorum.fz, "\n");
  for (const auto& [id, m] : c.members) {
    absl::StrAppend(&out, id, std::string(1, kSep), m.zone, std::string(1, kSep), m.address, "\n");
  }
  return out;
}

absl::StatusOr<ClusterConfig> DecodeClusterConfig(const std::string& data) {
  std::vector<std::string> lines = absl::StrSplit(data, '\n', absl::SkipEmpty());
  ClusterConfig c;
  if (lines.size() < 4 || !absl::SimpleAtoi(lines[0], &c.epoch) ||
      !absl::SimpleAtoi(lines[1], &c.next_id) || !absl::SimpleAtoi(lines[2], &c.quorum.fn) ||
      !absl::SimpleAtoi(lines[3], &c.quorum.fz)) {
    return absl::DataLossError("bad cluster config header");
  }
  for (size_t i = 4; i < lines.size(); ++i) {
    std::vector<std::string> f = absl::StrSplit(lines[i], kSep);
    Member m;
    if (f.size() != 3 || !absl::SimpleAtoi(f[0], &m.id) || !absl::SimpleAtoi(f[1], &m.zone)) {
      return absl::DataLossError("bad cluster config member");
    }
    m.address = f[2];
    c.members[m.id] = m;
  }
  return c;
}

}  // namespace atlas::consensus
