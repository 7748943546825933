#include "atlasd/node_setup.h"

#include <arpa/inet.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <random>
#include <thread>

#include "absl/strings/numbers.h"
#include "fmt/format.h"

#include "atlasd/cluster/ca_rotation.h"
#include "atlasd/cluster/http_handler.h"
#include "atlasd/cluster/join_client.h"
#include "atlasd/failpoint.h"
#include "atlasd/cluster/join_token.h"
#include "atlasd/cluster/members.h"
#include "socketproto/command.h"
#include "socketproto/str.h"
#include "spdlog/spdlog.h"
#include "storage/keys.h"

namespace atlas {
namespace {

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// The names this node is reached by (its advertised peer address and its HTTPS address), for
// its certificate: tools that check names (curl, Prometheus) then verify it against the
// cluster CA without overrides. The signer adds the node's own name (atlasd-node-<id>), which
// peers check, and decides the names of a joiner itself (its advertised host).
cluster::SubjectAltNames NodeSans(const Config& config) {
  return cluster::HostSans(
      {config.advertise.empty() ? config.listen : config.advertise, config.http_listen});
}

using cluster::kCaCertFile;
using cluster::kCaKeyFile;
using cluster::kNodeCertFile;
using cluster::kNodeKeyFile;

std::string PathIn(const std::string& dir, std::string_view file) {
  return dir + "/" + std::string(file);
}

absl::StatusOr<std::optional<std::string>> Meta(storage::Store* store, const std::string& name) {
  return store->GetNodeMeta(name);
}

// Node metadata: the member a learner asks to vote through ("" or absent: it votes).
constexpr char kPromoteViaField[] = "promote_via";

absl::Status SaveIdentity(storage::Store* store, uint64_t node_id, const std::string& cluster_id,
                          const std::string& promote_via = "") {
  std::unique_ptr<storage::WriteSet> batch = store->NewWriteSet();
  storage::PutNodeMeta(*batch, "cluster_id", cluster_id);
  storage::PutNodeMeta(*batch, "node_id", StrCat(node_id));
  storage::PutNodeMeta(*batch, kPromoteViaField, promote_via);
  return store->Commit(*batch, /*sync=*/true);
}

// Fills the PEM copies the transport wants from the parsed objects.
absl::Status FillPems(NodeSetup& s) {
  s.ca_pem = cluster::CasToPem(*s.ca);
  s.cert_pem = cluster::CertToPem(s.cert.get());
  auto key_pem = cluster::KeyToPem(s.key.get());
  if (!key_pem.ok()) return key_pem.status();
  s.key_pem = *key_pem;
  return absl::OkStatus();
}

absl::StatusOr<NodeSetup> Restart(const Config& config, storage::Store* store, uint64_t node_id,
                                  const std::string& cluster_id) {
  NodeSetup s;
  s.kind = NodeSetup::Kind::kRestarted;
  s.node_id = node_id;
  s.cluster_id = cluster_id;
  // ca.pem, and the key of its signing CA where this node holds it (the node that created the
  // cluster, which answers joins).
  auto ca = cluster::LoadClusterCa(config.data_dir);
  auto cert = cluster::LoadCert(PathIn(config.data_dir, kNodeCertFile));
  auto key = cluster::LoadKey(PathIn(config.data_dir, kNodeKeyFile));
  for (const absl::Status& st : {ca.status(), cert.status(), key.status()}) {
    if (!st.ok()) {
      return absl::DataLossError(StrCat("node ", node_id, " of cluster ", cluster_id,
                                        ": cannot load its certificates from ", config.data_dir,
                                        ": ", st.message()));
    }
  }
  s.ca = std::make_shared<cluster::ClusterCa>(std::move(*ca));
  s.cert = std::move(*cert);
  s.key = std::move(*key);
  if (auto token = cluster::ReadJoinToken(config.data_dir); token.ok()) {
    s.join_secret = token->secret;
  }
  if (absl::Status st = FillPems(s); !st.ok()) return st;
  // A learner that stopped before its node stored the membership it votes in asks again:
  // through the member `join` names now, else the one it joined through.
  auto via = Meta(store, kPromoteViaField);
  if (!via.ok()) return via.status();
  if (via->has_value() && !(*via)->empty()) {
    s.promote_via = config.join.empty() ? **via : config.join;
  }
  return s;
}

absl::StatusOr<NodeSetup> CreateCluster(const Config& config, storage::Store* store,
                                        std::string cluster_id) {
  if (cluster_id.empty()) {
    std::random_device rd;
    uint32_t hi = rd(), lo = rd();
    cluster_id = fmt::format("{:08x}{:08x}", hi, lo);
  }
  NodeSetup s;
  s.kind = NodeSetup::Kind::kCreated;
  s.node_id = 1;
  s.cluster_id = cluster_id;
  auto ca = cluster::CreateClusterCa(cluster_id);
  if (!ca.ok()) return ca.status();
  // Peers verify each other by node name (atlasd-node-<id>), and a joiner verifies this node by
  // the CA fingerprint of the token; the host names are for other TLS clients.
  auto key_csr = cluster::CreateNodeCsr(NodeSans(config));
  if (!key_csr.ok()) return key_csr.status();
  auto cert = cluster::SignNodeCsr(key_csr->csr.get(), *ca, 1, NodeSans(config),
                                   config.node_cert_lifetime_s);
  if (!cert.ok()) return cert.status();
  auto token = cluster::NewJoinToken(cluster::Fingerprint(ca->cert.get()));
  if (!token.ok()) return token.status();
  const std::string& dir = config.data_dir;
  for (absl::Status st : {cluster::SaveKey(PathIn(dir, kCaKeyFile), ca->key.get()),
                          cluster::SaveCert(PathIn(dir, kCaCertFile), ca->cert.get()),
                          cluster::SaveKey(PathIn(dir, kNodeKeyFile), key_csr->key.get()),
                          cluster::SaveCert(PathIn(dir, kNodeCertFile), cert->get()),
                          cluster::WriteJoinToken(dir, *token)}) {
    if (!st.ok()) return st;
  }
  if (absl::Status st = SaveIdentity(store, 1, cluster_id); !st.ok()) return st;
  s.join_secret = token->secret;
  s.ca = std::make_shared<cluster::ClusterCa>(std::move(*ca));
  s.cert = std::move(*cert);
  s.key = std::move(key_csr->key);
  if (absl::Status st = FillPems(s); !st.ok()) return st;

  s.membership.epoch = 1;
  s.membership.next_id = 2;
  // Fz counts zones: a one-zone cluster starts with Fz=0; the configured Fz is proposed when
  // enough zones have joined (docs/cluster.md §Membership).
  s.membership.quorum = {config.fn, 0};
  s.membership.members[1] = {1, cluster::ZoneOfRegion(config.region), SelfAddress(config)};
  // The first join token, replicated like every later one (docs/cluster-bootstrap.md §Join
  // tokens): it expires after join-token-ttl.
  consensus::JoinTokenRecord first;
  first.secret_hash = cluster::JoinTokenHash(token->secret);
  first.created_ms = NowMs();
  first.expires_ms = config.join_token_ttl_ms > 0 ? first.created_ms + config.join_token_ttl_ms : 0;
  s.membership.tokens[first.secret_hash] = first;
  spdlog::info("created cluster {} (node id 1)", cluster_id);
  // The token itself stays out of the log (logs are read by more people than the data dir).
  spdlog::info("join token {} written to {} (mode 0600), expires {}", first.Id(),
               PathIn(dir, cluster::kJoinTokenFileName),
               first.expires_ms == 0 ? std::string("never")
                                     : socketproto::FormatRfc3339Ms(first.expires_ms));
  return s;
}

absl::StatusOr<NodeSetup> Join(const Config& config, storage::Store* store) {
  std::string text = config.join_token;
  if (!config.join_token_file.empty()) {
    absl::StatusOr<std::string> file = cluster::ReadSmallFile(config.join_token_file, 4096);
    if (!file.ok()) {
      return absl::FailedPreconditionError(
          StrCat("join-token-file ", config.join_token_file, ": ", file.status().message()));
    }
    text = std::move(*file);
  }
  if (text.empty()) {
    return absl::FailedPreconditionError(
        "join needs join-token-file (or join-token): the first node writes its token to "
        "<data-dir>/join-token; atlas token create makes more");
  }
  auto token = cluster::ParseJoinToken(text);
  if (!token.ok()) return absl::FailedPreconditionError(token.status().message());
  cluster::JoinOptions options;
  options.url = config.join;
  options.token = *token;
  options.region = config.region;
  options.advertise = config.advertise.empty() ? config.listen : config.advertise;
  options.node_name = config.node_name;
  options.sans = NodeSans(config);
  options.key_file = PathIn(config.data_dir, cluster::kJoinKeyFile);
  spdlog::info("joining the cluster through {}", config.join);
  auto joined = cluster::JoinCluster(options);
  if (!joined.ok()) return joined.status();
  failpoint::Hit("join-after-certificate");
  auto membership = consensus::DecodeClusterConfig(joined->decision.config);
  if (!membership.ok()) {
    return absl::InternalError(StrCat("the member answered an unreadable membership: ",
                                      membership.status().message()));
  }
  if (absl::Status st = cluster::SaveJoinCredentials(config.data_dir, *joined); !st.ok()) {
    return st;
  }
  NodeSetup s;
  s.kind = NodeSetup::Kind::kJoined;
  s.node_id = joined->decision.node_id;
  s.cluster_id = joined->decision.cluster_id;
  const auto self = membership->members.find(static_cast<consensus::NodeId>(s.node_id));
  const bool learner = self != membership->members.end() && self->second.learner;
  if (absl::Status st = SaveIdentity(store, s.node_id, s.cluster_id, learner ? config.join : "");
      !st.ok()) {
    return st;
  }
  std::error_code ignored;  // node-key.pem holds the same key now
  std::filesystem::remove(PathIn(config.data_dir, cluster::kJoinKeyFile), ignored);
  s.ca = std::make_shared<cluster::ClusterCa>(std::move(joined->ca));
  s.cert = std::move(joined->cert);
  s.key = std::move(joined->key);
  s.membership = *membership;
  if (!joined->decision.previous_config.empty()) {
    auto previous = consensus::DecodeClusterConfig(joined->decision.previous_config);
    if (previous.ok()) s.previous_membership = *previous;
  }
  if (absl::Status st = FillPems(s); !st.ok()) return st;
  spdlog::info("joined cluster {} as node {} ({} member(s), epoch {}{})", s.cluster_id,
               s.node_id, s.membership.members.size(), s.membership.epoch,
               learner ? ", a learner until it asks to vote" : "");
  if (learner) s.promote_via = config.join;
  return s;
}

}  // namespace

absl::Status PromoteSelf(NodeSetup& s) {
  failpoint::Hit("join-before-promote");
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::minutes(2);
  for (int attempt = 1;; ++attempt) {
    absl::StatusOr<cluster::PromoteResult> r = cluster::PromoteLearner(
        s.promote_via, *s.ca, s.cert.get(), s.key.get(), std::chrono::seconds(30));
    if (r.ok()) {
      auto config = consensus::DecodeClusterConfig(r->config);
      if (!config.ok()) return absl::InternalError("the member answered an unreadable membership");
      s.membership = *config;
      if (auto previous = consensus::DecodeClusterConfig(r->previous_config); previous.ok()) {
        s.previous_membership = *previous;
      }
      spdlog::info("node {} votes now (epoch {})", s.node_id, s.membership.epoch);
      return absl::OkStatus();
    }
    const std::string why(r.status().message());
    if (absl::IsNotFound(r.status())) {
      return absl::FailedPreconditionError(StrCat(
          "node ", s.node_id, " cannot start voting: ", why,
          ". It was removed (NODE LEAVE): empty its data directory and join again"));
    }
    if (std::chrono::steady_clock::now() > deadline) {
      return absl::UnavailableError(StrCat(
          "node ", s.node_id, " joined as a learner and could not ask to vote through ",
          s.promote_via, " for 2 minutes (", why, "); start it again once that member answers "
          "(or with join set to another member's HTTPS address): it keeps its identity"));
    }
    spdlog::warn("asking to vote through {} failed ({}); retrying", s.promote_via, why);
    std::this_thread::sleep_for(std::chrono::seconds(std::min(attempt, 5)));
  }
}

absl::Status FinishPromotion(storage::Store* store) {
  std::unique_ptr<storage::WriteSet> batch = store->NewWriteSet();
  storage::PutNodeMeta(*batch, kPromoteViaField, "");
  return store->Commit(*batch, /*sync=*/true);
}

std::string SelfAddress(const Config& config) {
  return cluster::EncodeMemberAddress(config.advertise.empty() ? config.listen : config.advertise,
                                      config.region, config.node_name);
}

absl::StatusOr<NodeSetup> SetUpNode(const Config& config, storage::Store* store) {
  auto node_id = Meta(store, "node_id");
  auto cluster_id = Meta(store, "cluster_id");
  if (!node_id.ok()) return node_id.status();
  if (!cluster_id.ok()) return cluster_id.status();
  const bool has_pki = std::filesystem::exists(PathIn(config.data_dir, kNodeCertFile));
  if (node_id->has_value() && has_pki) {
    uint64_t id = 0;
    if (!absl::SimpleAtoi(**node_id, &id) || id == 0) {
      return absl::DataLossError(StrCat("bad node id '", **node_id, "' in node metadata"));
    }
    if (!config.join.empty()) {
      spdlog::info("already node {} of cluster {}; ignoring join", id, **cluster_id);
    }
    return Restart(config, store, id, cluster_id->value_or(""));
  }
  // A data dir from a single-node build (node 1, no PKI) keeps its cluster id.
  if (node_id->has_value()) {
    if (**node_id != "1") {
      return absl::DataLossError(StrCat("node ", **node_id, ": certificates missing from ",
                                        config.data_dir));
    }
    return CreateCluster(config, store, cluster_id->value_or(""));
  }
  if (config.join.empty()) return CreateCluster(config, store, "");
  return Join(config, store);
}

}  // namespace atlas
