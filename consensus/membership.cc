#include "consensus/membership.h"

#include <algorithm>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"

namespace atlas::consensus {

namespace {

constexpr char kSep = '\t';

// A configuration is usable iff every quorum can be formed when all voters are up.
absl::Status Validate(const ClusterConfig& c) {
  absl::btree_map<ZoneId, int> sizes;
  for (const auto& [id, m] : c.members) {
    if (!m.learner) ++sizes[m.zone];
  }
  if (sizes.empty()) return absl::FailedPreconditionError("no voting members left");
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

bool IsHex(const std::string& s, size_t len) {
  return s.size() == len && std::all_of(s.begin(), s.end(), [](char c) {
           return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
         });
}

// "token <hash> <expires> <uses_max>" / "revoke <id>": the epoch stays (no quorum changes).
absl::StatusOr<std::string> ApplyTokenCommand(ClusterConfig& config,
                                              const std::vector<std::string>& f, int64_t now_ms) {
  if (f.size() == 4 && f[0] == "token") {
    JoinTokenRecord t;
    t.secret_hash = f[1];
    t.created_ms = now_ms;
    if (!IsHex(t.secret_hash, 64) || !absl::SimpleAtoi(f[2], &t.expires_ms) ||
        t.expires_ms < 0 || !absl::SimpleAtoi(f[3], &t.uses_max)) {
      return absl::InvalidArgumentError("bad token command");
    }
    if (config.tokens.contains(t.secret_hash)) return absl::AlreadyExistsError("token exists");
    if (config.tokens.size() >= kJoinTokensMax) {
      // Make room: the oldest token that admits nobody any more goes.
      const JoinTokenRecord* oldest = nullptr;
      for (const auto& [hash, r] : config.tokens) {
        if (r.Status(now_ms) != "active" && (!oldest || r.created_ms < oldest->created_ms)) {
          oldest = &r;
        }
      }
      if (oldest == nullptr) {
        return absl::ResourceExhaustedError(absl::StrCat(
            kJoinTokensMax, " join tokens are active; revoke some first"));
      }
      config.tokens.erase(oldest->secret_hash);
    }
    config.tokens[t.secret_hash] = t;
    return t.Id();
  }
  if (f.size() == 2 && f[0] == "revoke") {
    for (auto& [hash, r] : config.tokens) {
      if (r.Id() != f[1]) continue;
      r.revoked = true;
      return std::string("OK");
    }
    return absl::NotFoundError(absl::StrCat("no join token ", f[1]));
  }
  return absl::InvalidArgumentError("bad token command");
}

// "trust <cert>...": the CAs (base64 DER, the signer first); the epoch stays.
absl::StatusOr<std::string> ApplyTrustCommand(ClusterConfig& config,
                                              const std::vector<std::string>& f) {
  if (f.size() < 2 || f.size() > 1 + kTrustedCasMax) {
    return absl::InvalidArgumentError(
        absl::StrCat("a cluster trusts 1 to ", kTrustedCasMax, " CAs"));
  }
  std::vector<std::string> certs(f.begin() + 1, f.end());
  for (const std::string& c : certs) {
    const bool base64 = std::all_of(c.begin(), c.end(), [](char ch) {
      return absl::ascii_isalnum(static_cast<unsigned char>(ch)) || ch == '+' || ch == '/' ||
             ch == '=';
    });
    if (c.empty() || c.size() > kTrustedCaBytesMax || !base64) {
      return absl::InvalidArgumentError("a trusted CA must be a base64 DER certificate");
    }
  }
  config.trust = std::move(certs);
  return std::string("OK");
}

// "join|learner <zone> <address> [<token hash>]": allocates the node id (inside the decision:
// concurrent joiners are ordered by slot) and uses the token.
absl::StatusOr<std::string> AddMember(ClusterConfig& config, const std::vector<std::string>& f,
                                      int64_t now_ms, bool learner) {
  uint32_t zone = 0;
  if (f.size() != 3 && f.size() != 4) return absl::InvalidArgumentError("bad join command");
  if (!absl::SimpleAtoi(f[1], &zone)) return absl::InvalidArgumentError("bad zone");
  const std::string token = f.size() == 4 ? f[3] : "";
  if (absl::Status s = CheckJoinToken(config, token, now_ms); !s.ok()) return s;
  for (const auto& [id, m] : config.members) {
    if (m.address == f[2]) {
      return absl::AlreadyExistsError(absl::StrCat(f[2], " is already node ", id));
    }
  }
  if (auto t = config.tokens.find(token); t != config.tokens.end()) ++t->second.uses;
  const NodeId id = config.next_id++;
  config.members[id] = Member{id, zone, f[2], learner};
  return absl::StrCat(id);
}

}  // namespace

Topology ClusterConfig::ToTopology(
    const absl::btree_map<std::pair<ZoneId, ZoneId>, int64_t>& distance) const {
  Topology t;
  for (const auto& [id, m] : members) {
    if (!m.learner) t.zone_of[id] = m.zone;
  }
  t.distance = distance;
  return t;
}

std::string EncodeJoin(ZoneId zone, const std::string& address, uint64_t expected_epoch,
                       const std::string& token_hash) {
  std::string join = absl::StrCat("join", std::string(1, kSep), zone, std::string(1, kSep), address);
  if (!token_hash.empty()) absl::StrAppend(&join, std::string(1, kSep), token_hash);
  return WithEpoch(std::move(join), expected_epoch);
}

std::string EncodeJoinLearner(ZoneId zone, const std::string& address, uint64_t expected_epoch,
                              const std::string& token_hash) {
  const std::string sep(1, kSep);
  std::string join = absl::StrCat("learner", sep, zone, sep, address);
  if (!token_hash.empty()) absl::StrAppend(&join, sep, token_hash);
  return WithEpoch(std::move(join), expected_epoch);
}

std::string EncodePromote(NodeId id, uint64_t expected_epoch) {
  return WithEpoch(absl::StrCat("promote", std::string(1, kSep), id), expected_epoch);
}

std::string EncodeTokenCreate(const std::string& secret_hash, int64_t expires_ms,
                              uint32_t uses_max) {
  return WithEpoch(absl::StrCat("token", std::string(1, kSep), secret_hash, std::string(1, kSep),
                                expires_ms, std::string(1, kSep), uses_max),
                   0);
}

std::string EncodeTokenRevoke(const std::string& id) {
  return WithEpoch(absl::StrCat("revoke", std::string(1, kSep), id), 0);
}

std::string EncodeTrust(const std::vector<std::string>& certs) {
  std::string out = "trust";
  for (const std::string& c : certs) absl::StrAppend(&out, std::string(1, kSep), c);
  return WithEpoch(std::move(out), 0);
}

std::string JoinTokenRecord::Status(int64_t now_ms) const {
  if (revoked) return "revoked";
  if (uses_max > 0 && uses >= uses_max) return "used up";
  if (expires_ms > 0 && now_ms > 0 && now_ms >= expires_ms) return "expired";
  return "active";
}

absl::Status CheckJoinToken(const ClusterConfig& config, const std::string& token_hash,
                            int64_t now_ms) {
  // A cluster created before tokens were replicated has none: its signer's file is the token.
  if (config.tokens.empty()) return absl::OkStatus();
  auto it = config.tokens.find(token_hash);
  if (token_hash.empty() || it == config.tokens.end()) {
    return absl::PermissionDeniedError("invalid join token");
  }
  const std::string status = it->second.Status(now_ms);
  if (status != "active") {
    return absl::PermissionDeniedError(absl::StrCat("join token ", it->second.Id(), " is ", status));
  }
  return absl::OkStatus();
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
                                                   const std::string& command, int64_t now_ms) {
  std::vector<std::string> f = absl::StrSplit(command, kSep);
  uint64_t expected = 0;
  if (f.size() < 2 || f.back().empty() || f.back()[0] != '@' ||
      !absl::SimpleAtoi(f.back().substr(1), &expected)) {
    return absl::InvalidArgumentError("membership command without an expected epoch");
  }
  f.pop_back();
  if (!f.empty() && (f[0] == "token" || f[0] == "revoke")) return ApplyTokenCommand(config, f, now_ms);
  if (!f.empty() && f[0] == "trust") return ApplyTrustCommand(config, f);
  if (expected != config.epoch) {
    // Optimistic concurrency: each change is judged against the epoch its proposer saw settled.
    return absl::FailedPreconditionError(absl::StrCat(
        "membership changed concurrently: epoch is ", config.epoch, ", expected ", expected));
  }
  // A learner takes part in no quorum: adding one is no new configuration.
  if (!f.empty() && f[0] == "learner") return AddMember(config, f, now_ms, /*learner=*/true);
  ClusterConfig next = config;
  absl::StatusOr<std::string> result = std::string("OK");
  if (!f.empty() && f[0] == "join") {
    result = AddMember(next, f, now_ms, /*learner=*/false);
  } else if (f.size() == 2 && f[0] == "promote") {
    uint32_t id = 0;
    auto it = absl::SimpleAtoi(f[1], &id) ? next.members.find(id) : next.members.end();
    if (it == next.members.end()) return absl::NotFoundError(absl::StrCat("no node ", f[1]));
    if (!it->second.learner) {
      return absl::AlreadyExistsError(absl::StrCat("node ", id, " already votes"));
    }
    it->second.learner = false;
  } else if (f.size() == 2 && f[0] == "leave") {
    uint32_t id = 0;
    if (!absl::SimpleAtoi(f[1], &id) || !next.members.contains(id)) {
      return absl::NotFoundError(absl::StrCat("no node ", f[1]));
    }
    next.members.erase(id);
  } else if (f.size() == 3 && f[0] == "quorum") {
    if (!absl::SimpleAtoi(f[1], &next.quorum.fn) || !absl::SimpleAtoi(f[2], &next.quorum.fz)) {
      return absl::InvalidArgumentError("bad Fn/Fz");
    }
  } else {
    return absl::InvalidArgumentError("unknown membership command");
  }
  if (!result.ok()) return result;
  if (absl::Status s = Validate(next); !s.ok()) return s;
  ++next.epoch;
  config = std::move(next);
  return result;
}

std::string EncodeClusterConfig(const ClusterConfig& c) {
  std::string out = absl::StrCat(c.epoch, "\n", c.next_id, "\n", c.quorum.fn, "\n",
                                 c.quorum.fz, "\n");
  for (const auto& [id, m] : c.members) {
    absl::StrAppend(&out, id, std::string(1, kSep), m.zone, std::string(1, kSep), m.address);
    // Only with learners: a release before them reads every other snapshot.
    absl::StrAppend(&out, m.learner ? absl::StrCat(std::string(1, kSep), "learner") : "", "\n");
  }
  const std::string sep(1, kSep);
  for (const auto& [hash, t] : c.tokens) {
    absl::StrAppend(&out, "token", sep, hash, sep, t.created_ms, sep, t.expires_ms, sep,
                    t.uses_max, sep, t.uses, sep, t.revoked ? 1 : 0, "\n");
  }
  if (!c.trust.empty()) absl::StrAppend(&out, "trust", sep, absl::StrJoin(c.trust, sep), "\n");
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
    if (!f.empty() && f[0] == "trust") {
      if (f.size() < 2) return absl::DataLossError("bad cluster config trust");
      c.trust.assign(f.begin() + 1, f.end());
      continue;
    }
    if (!f.empty() && f[0] == "token") {
      JoinTokenRecord t;
      int revoked = 0;
      if (f.size() != 7 || !IsHex(f[1], 64) || !absl::SimpleAtoi(f[2], &t.created_ms) ||
          !absl::SimpleAtoi(f[3], &t.expires_ms) || !absl::SimpleAtoi(f[4], &t.uses_max) ||
          !absl::SimpleAtoi(f[5], &t.uses) || !absl::SimpleAtoi(f[6], &revoked)) {
        return absl::DataLossError("bad cluster config token");
      }
      t.secret_hash = f[1];
      t.revoked = revoked != 0;
      c.tokens[t.secret_hash] = t;
      continue;
    }
    Member m;
    if ((f.size() != 3 && (f.size() != 4 || f[3] != "learner")) ||
        !absl::SimpleAtoi(f[0], &m.id) || !absl::SimpleAtoi(f[1], &m.zone)) {
      return absl::DataLossError("bad cluster config member");
    }
    m.address = f[2];
    m.learner = f.size() == 4;
    c.members[m.id] = m;
  }
  return c;
}

}  // namespace atlas::consensus
