// ClusterNode's answers to joiners (docs/cluster-bootstrap.md §The join exchange): a join is
// ordered in atlas.nodes, as a learner where every member reads learners, and a learner asks
// to vote once its node runs (docs/cluster.md §Learners).
#include "absl/strings/numbers.h"
#include "atlasd/cluster/members.h"
#include "atlasd/cluster_node.h"
#include "socketproto/str.h"
#include "spdlog/spdlog.h"

namespace atlas {

namespace {
// Joins remembered for a retry (ClusterNode::certified_keys_): far more than join at once.
constexpr size_t kCertifiedKeysKept = 1024;
}  // namespace

void ClusterNode::HandleJoin(const cluster::JoinRequest& request, cluster::JoinDone done) {
  if (!cluster::IsToken(request.region)) {
    return done(absl::InvalidArgumentError("region must be a non-empty word without spaces"));
  }
  if (!request.node_name.empty() && !cluster::IsToken(request.node_name)) {
    return done(absl::InvalidArgumentError("node_name must not contain spaces"));
  }
  const consensus::ZoneId zone = cluster::ZoneOfRegion(request.region);
  uint64_t again = 0;  // the node id this joiner already has
  consensus::ClusterConfig current;
  {
    absl::MutexLock lock(&mu_);
    for (const auto& [id, m] : membership_.members) {
      auto a = cluster::DecodeMemberAddress(m.address);
      if (!a) continue;
      if (a->HostPort() == request.advertise) {
        auto known = certified_keys_.find(id);
        if (known != certified_keys_.end() && !request.key_fingerprint.empty() &&
            known->second == request.key_fingerprint) {
          // The same joiner again (only it holds that key: the CSR proves it): it was admitted
          // but never saw the answer. Answer again instead of admitting a second member.
          again = id;
          current = membership_;  // answered from outside the lock
          break;
        }
        return done(absl::AlreadyExistsError(
            StrCat(request.advertise, " is already node ", id,
                   "; remove it first (NODE LEAVE) or advertise another address")));
      }
      if (m.learner && !request.learner) {
        // A joiner of a release before learners could not read an answer that lists one.
        return done(absl::FailedPreconditionError(
            StrCat("node ", id, " is a learner that has not asked to vote yet; join this node "
                   "once it votes, or after NODE LEAVE ", id)));
      }
      if (m.zone == zone && a->region != request.region) {
        return done(absl::FailedPreconditionError(StrCat(
            "region '", request.region, "' collides with region '", a->region,
            "' in the zone hash; choose another region name")));
      }
    }
  }
  if (again != 0) {
    spdlog::info("join request from {}: already node {} with this key; answering again",
                 request.advertise, again);
    return done(Decision(again, current));
  }
  std::string address =
      cluster::EncodeMemberAddress(request.advertise, request.region, request.node_name);
  // A learner until its node runs and asks to vote, where every member reads learners.
  const bool learner = request.learner && MembersReadLearners();
  spdlog::info("join request from {} (region {}{})", request.advertise, request.region,
               learner ? ", as a learner" : "");
  auto shared = std::make_shared<cluster::JoinDone>(std::move(done));
  ProposeChange(
      [zone, address, learner, token = request.token_hash](const consensus::ClusterConfig& now) {
        return learner ? consensus::EncodeJoinLearner(zone, address, now.epoch, token)
                       : consensus::EncodeJoin(zone, address, now.epoch, token);
      },
      [this, shared, learner, key = request.key_fingerprint](
          absl::StatusOr<NodeLoop::MembershipResult> result) {
        if (!result.ok()) return (*shared)(result.status());
        uint64_t id = 0;
        if (!absl::SimpleAtoi(result->result, &id)) {
          return (*shared)(absl::InternalError("membership returned no node id"));
        }
        {
          absl::MutexLock lock(&mu_);
          if (certified_keys_.size() >= kCertifiedKeysKept) {
            certified_keys_.erase(certified_keys_.begin());  // the oldest id
          }
          certified_keys_[id] = key;
        }
        spdlog::info("node {} joined{} (epoch {})", id, learner ? " as a learner" : "",
                     result->config.epoch);
        (*shared)(Decision(id, result->config));
        if (!learner) MaybeRaiseQuorum(result->config);
      });
}

cluster::JoinDecision ClusterNode::Decision(uint64_t id, const consensus::ClusterConfig& config) {
  cluster::JoinDecision d;
  d.node_id = id;
  d.cluster_id = options_.cluster_id;
  d.fn = config.quorum.fn;
  d.fz = config.quorum.fz;
  for (const auto& [mid, m] : config.members) {
    auto a = cluster::DecodeMemberAddress(m.address);
    if (!a) continue;
    d.members.push_back({mid, a->region, a->host, a->port});
  }
  d.config = consensus::EncodeClusterConfig(config);
  if (NodeLoop* r = replicator_.load()) {
    consensus::ClusterConfig previous = r->PreviousMembership();
    if (previous.epoch > 0) d.previous_config = consensus::EncodeClusterConfig(previous);
  }
  return d;
}

bool ClusterNode::MembersReadLearners() {
  absl::MutexLock lock(&mu_);
  for (const auto& [id, m] : membership_.members) {
    if (id == options_.self || m.learner) continue;  // a learner's node does not run yet
    auto it = peers_.find(id);
    if (it == peers_.end() || !it->second.report || !it->second.report->reads_learners) {
      return false;  // down since this node started, or a release before learners
    }
  }
  return true;
}

void ClusterNode::HandlePromote(uint64_t id, cluster::JoinDone done) {
  const consensus::ClusterConfig current = Membership();
  auto self = current.members.find(static_cast<consensus::NodeId>(id));
  if (self == current.members.end()) {
    return done(absl::NotFoundError(StrCat("node ", id, " is not a member")));
  }
  if (!self->second.learner) return done(Decision(id, current));  // a retry: it votes already
  auto shared = std::make_shared<cluster::JoinDone>(std::move(done));
  ProposeChange(
      [id](const consensus::ClusterConfig& now) {
        return consensus::EncodePromote(static_cast<consensus::NodeId>(id), now.epoch);
      },
      [this, shared, id](absl::StatusOr<NodeLoop::MembershipResult> result) {
        if (!result.ok()) return (*shared)(result.status());
        spdlog::info("node {} votes now (epoch {})", id, result->config.epoch);
        (*shared)(Decision(id, result->config));
        MaybeRaiseQuorum(result->config);
      });
}

}  // namespace atlas
