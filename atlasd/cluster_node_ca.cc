// ClusterNode's part in the cluster CAs (atlasd/cluster/ca_rotation.h): the members' reports,
// CA ROTATE and CA STATUS, and the steps the CA key holder proposes as members get ready.
#include "atlasd/cluster_node.h"
#include "atlasd/logging.h"
#include "socketproto/str.h"
#include "spdlog/spdlog.h"

namespace atlas {

void ClusterNode::SetCertificate(int64_t not_after_ms, std::string ca_fingerprint) {
  cert_not_after_ms_.store(not_after_ms);
  absl::MutexLock lock(&mu_);
  cert_ca_ = std::move(ca_fingerprint);
}

std::vector<cluster::MemberCas> ClusterNode::CaReports() {
  const std::vector<std::string> own =
      options_.ca_rotation ? options_.ca_rotation->SettledTrust() : std::vector<std::string>{};
  absl::MutexLock lock(&mu_);
  std::vector<cluster::MemberCas> out;
  for (const auto& [id, m] : membership_.members) {
    cluster::MemberCas r;
    r.id = id;
    if (id == options_.self) {
      r.reported = true;
      r.trusted = own;
      r.cert_ca = cert_ca_;
    } else if (auto it = peers_.find(id); it != peers_.end() && it->second.report) {
      r.reported = true;
      r.trusted = it->second.report->trusted_cas;
      r.cert_ca = it->second.report->cert_ca;
    }
    out.push_back(std::move(r));
  }
  return out;
}

cluster::RotationStatus ClusterNode::CaStatus() {
  if (!options_.ca_rotation) return {"idle", options_.ca_fingerprint, {options_.ca_fingerprint}, {}};
  return options_.ca_rotation->Status(CaReports());
}

void ClusterNode::RotateCa(std::function<void(absl::StatusOr<cluster::RotationStatus>)> done) {
  NodeLoop* r = replicator_.load();
  if (!options_.ca_rotation) return done(absl::FailedPreconditionError("this node has no CA"));
  if (!r) return done(absl::UnavailableError("node is starting"));
  // A release without CA rotation would refuse the trust command atlas.nodes orders (and
  // could not read a snapshot holding the list): every member must have reported its CAs.
  // (Without the key, Begin says why first.)
  for (const cluster::MemberCas& m : CaReports()) {
    if (m.trusted.empty() && options_.ca_rotation->HoldsKey()) {
      return done(absl::FailedPreconditionError(StrCat(
          "node ", m.id, " has not reported its CAs (down, or a release without CA rotation): "
          "bring it up on this release, or NODE LEAVE it, first")));
    }
  }
  std::shared_ptr<void> hold = HoldChain();
  if (!hold) return done(NoRoom("changes"));
  absl::StatusOr<std::vector<std::string>> first = options_.ca_rotation->Begin();
  if (!first.ok()) return done(first.status());
  r->ProposeMembership(
      consensus::EncodeTrust(*first),
      [this, hold, done = std::move(done)](absl::StatusOr<NodeLoop::MembershipResult> res) {
        if (!res.ok()) {
          options_.ca_rotation->Abandon();
          return done(res.status());
        }
        options_.ca_rotation->Adopt(res->config.trust);  // now, not only when it is published
        cluster::RotationStatus status = CaStatus();
        LogEvent(spdlog::level::info, "CA rotation started",
                 {{"signing", status.signing}, {"new", status.trusted.back()}});
        done(std::move(status));
      });
}

void ClusterNode::AdvanceCaRotation() {
  cluster::CaRotation* rotation = options_.ca_rotation.get();
  NodeLoop* r = replicator_.load();
  // (Checked first: CaReports copies the member list, and this runs every ping round.)
  if (!rotation || !r || !rotation->InProgress() || !rotation->HoldsKey() ||
      proposing_trust_.load()) {
    return;
  }
  std::optional<std::vector<std::string>> next = rotation->Next(CaReports());
  if (!next) return;
  std::shared_ptr<void> hold = HoldChain();
  if (!hold) return;
  proposing_trust_.store(true);
  const size_t cas = next->size();
  r->ProposeMembership(consensus::EncodeTrust(*next),
                       [this, hold, cas](absl::StatusOr<NodeLoop::MembershipResult> res) {
                         proposing_trust_.store(false);
                         if (!res.ok()) {
                           spdlog::warn("CA rotation: the next step was not ordered: {}",
                                        res.status().message());
                           return;
                         }
                         options_.ca_rotation->Adopt(res->config.trust);
                         LogEvent(spdlog::level::info,
                                  cas == 1 ? "CA rotation done: the old CA is trusted no more"
                                           : "CA rotation: the new CA signs",
                                  {{"signing", CaStatus().signing}});
                       });
}

}  // namespace atlas
