// Who this node is: the first start of a new cluster, a join, or a restart
// (shared/spec/operations.md §Bootstrap and join over HTTPS; docs/cluster-bootstrap.md).
//
// - First node (no `join`): creates the cluster id, the cluster CA, its own certificate as node
//   1 and the join token (written to <data-dir>/join-token, 0600, and logged once).
// - Joiner (`join` + `join-token`): POST /v1/join to the member, which orders the join in
//   `atlas.nodes` (allocating the node id) and signs our CSR; keeps the answer on disk.
// - Restart: everything comes from <data-dir>; the token is never needed again.
// The PKI files are written before the node id in node metadata, so a crash in between
// redoes the setup instead of leaving a node without credentials.
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "atlasd/cluster/pki.h"
#include "atlasd/config.h"
#include "consensus/membership.h"
#include "storage/store.h"

namespace atlas {

struct NodeSetup {
  uint64_t node_id = 0;
  std::string cluster_id;
  std::shared_ptr<const cluster::ClusterCa> ca;  // key only on the node that created the CA
  cluster::X509Ptr cert;
  cluster::PkeyPtr key;
  std::string ca_pem, cert_pem, key_pem;
  std::string join_secret;  // empty unless this node holds the join token
  // The membership to start from when the store has none (new cluster or fresh join).
  consensus::ClusterConfig membership;
  std::optional<consensus::ClusterConfig> previous_membership;
  // Non-empty: this node is a learner and asks to vote through this member (PromoteSelf)
  // before its node starts (docs/cluster.md §Learners).
  std::string promote_via;
  enum class Kind { kCreated, kJoined, kRestarted } kind = Kind::kRestarted;
};

// Errors: FailedPrecondition (bad settings, e.g. `join` without a token), PermissionDenied (the
// cluster refused the token), Unavailable/Unauthenticated (could not reach / verify the
// member), DataLoss (files missing on restart).
absl::StatusOr<NodeSetup> SetUpNode(const Config& config, storage::Store* store);

// A learner asks to vote (POST /v1/promote) through `s.promote_via`, retrying for two minutes;
// on success `s.membership` (and the previous one) is the membership it votes in. Called once
// the peer transport listens, just before the node starts; FinishPromotion once the node
// has stored that membership (until then a restart asks again: a node that votes already is
// answered with the current membership).
absl::Status PromoteSelf(NodeSetup& s);
absl::Status FinishPromotion(storage::Store* store);

// This node's entry in `atlas.nodes`: "host:port region name" (atlasd/cluster/members.h).
std::string SelfAddress(const Config& config);

}  // namespace atlas
