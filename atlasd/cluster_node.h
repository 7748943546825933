// The node's place in the cluster at run time: keeps the peer transport's address book equal
// to the replicated membership (`atlas.nodes`), samples every peer's RTT over the peer channel
// (failure detection: ACTIVE / SUSPECT / DOWN), answers joins by ordering them in
// `atlas.nodes`, and serves the executor's cluster questions (ClusterView).
//
// Thread-safe. OnMembership runs on the replicator's node thread and only updates maps. Waits
// (TABLE MOVE, NODE LEAVE, joins waiting for a settled epoch) are chains of continuations on
// the node thread (NodeLoop::After), not threads; only the failure detector and operator pings
// (blocking gRPC calls, bounded by ping_timeout) have threads, all joined by Stop.
#pragma once

#include <atomic>
#include <chrono>
#include <list>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "atlasd/clock_guard.h"
#include "atlasd/cluster/http_handler.h"
#include "atlasd/cluster_view.h"
#include "atlasd/node/node_loop.h"
#include "atlasd/peer_transport.h"
#include "consensus/membership.h"

namespace atlas {

struct ClusterNodeOptions {
  uint64_t self = 0;
  std::string cluster_id;
  // The cluster CA's fingerprint: what a join token pins (TokenCreate puts it in new tokens).
  std::string ca_fingerprint;
  // The join secret of the signer's token file: the one token of a cluster created before
  // tokens were replicated, accepted only while the registry is empty.
  std::string legacy_join_secret;
  // Fn/Fz the operator configured on this node. A new cluster starts with Fz=0 (it has one
  // zone); when a join brings enough zones, this node proposes the configured quorum.
  consensus::QuorumSpec desired_quorum;
  // The detector wakes every check_interval (lagging count for /health); it pings every peer
  // every ping_interval for RTTs. Liveness is a ping answered or any consensus message
  // received (heartbeats flow every 250 ms) within suspect_after.
  std::chrono::milliseconds check_interval{500};
  std::chrono::milliseconds ping_interval{2000};
  std::chrono::milliseconds suspect_after{1500};  // no successful ping for this long
  std::chrono::milliseconds down_after{5000};
  std::chrono::milliseconds move_timeout{10'000};
  std::chrono::milliseconds settle_timeout{30'000};  // a join waits this long for a settle
  std::string version;  // reported to peers (NODE INFO of this node from elsewhere)
  // Also reported: this node's command totals (null: none) and certificate expiry (unix ms,
  // until SetCertNotAfter).
  std::function<LoadTotals()> load;
  int64_t cert_not_after_ms = 0;
  std::string cert_ca;  // the fingerprint of its CA (until SetCertificate)
  // The cluster CAs (null: no rotation, e.g. in tests): adopts the replicated list, and on the
  // member holding the CA key the detector moves a rotation on.
  std::shared_ptr<cluster::CaRotation> ca_rotation;
  // A node further than this from its peers' clocks owns nothing and serves no data
  // (docs/consensus.md §Time).
  int64_t max_clock_offset_ms = 500;
};

// The Fn/Fz a member proposes after a join: the larger of the cluster's and its `desired`, per
// component, once the cluster has more zones than that Fz; nullopt when nothing would change.
std::optional<consensus::QuorumSpec> QuorumToRaise(const consensus::ClusterConfig& config,
                                                   consensus::QuorumSpec desired);

class ClusterNode final : public ClusterView {
 public:
  ClusterNode(ClusterNodeOptions options, PeerTransport* transport);
  ~ClusterNode() override;

  // The replicator is created after the transport (it needs the transport's send); messages
  // arriving before Attach are dropped, which the protocol tolerates.
  void Attach(NodeLoop* replicator);
  void Deliver(std::vector<consensus::Message> messages);
  // NodeLoopOptions::on_membership.
  void OnMembership(const consensus::ClusterConfig& config);

  void StartFailureDetector();
  void Stop();

  // This node's report to the peers that ping it (PeerTransport::SetReportSource).
  PeerReport Report();

  // HTTPS endpoints.
  // Whether a presented join secret admits a join now (HttpHandlerContext::authorize).
  absl::Status AuthorizeJoin(const std::string& secret);
  void HandleJoin(const cluster::JoinRequest& request, cluster::JoinDone done);
  // POST /v1/promote: learner `id` votes from the next epoch (docs/cluster.md §Learners).
  void HandlePromote(uint64_t id, cluster::JoinDone done);
  cluster::HealthInfo Health();

  // ClusterView.
  std::vector<NodeView> Nodes() override;
  consensus::ClusterConfig Membership() override ABSL_LOCKS_EXCLUDED(mu_);
  bool IsMember(uint64_t id) ABSL_LOCKS_EXCLUDED(mu_);
  // A renewed certificate's expiry and CA, for the reports (cluster::CertRenewer).
  void SetCertificate(int64_t not_after_ms, std::string ca_fingerprint)
      ABSL_LOCKS_EXCLUDED(mu_);
  std::string ClusterId() override { return options_.cluster_id; }
  void Ping(uint64_t id, std::function<void(absl::StatusOr<double>)> done) override;
  void Quorums(const std::string& table,
               std::function<void(absl::StatusOr<QuorumView>)> done) override;
  void MoveTable(const std::string& table, uint64_t target,
                 std::function<void(absl::Status)> done) override;
  void RemoveNode(uint64_t id, std::function<void(absl::Status)> done) override;
  void SetQuorum(int fn, int fz, std::function<void(absl::Status)> done) override;
  std::optional<std::string> ServingProblem() override;
  void CreateToken(int64_t ttl_ms, uint32_t uses,
                   std::function<void(absl::StatusOr<TokenView>)> done) override;
  std::vector<TokenView> Tokens() override;
  void RevokeToken(const std::string& id, std::function<void(absl::Status)> done) override;
  cluster::RotationStatus CaStatus() override;
  void RotateCa(std::function<void(absl::StatusOr<cluster::RotationStatus>)> done) override;

 private:
  struct Peer {
    double rtt_ms = 0;
    std::chrono::steady_clock::time_point last_ok{};
    std::chrono::steady_clock::time_point since = std::chrono::steady_clock::now();
    bool ever_ok = false;
    std::optional<PeerReport> report;  // from its last ping answer
  };
  void DetectorLoop();
  // Pings every peer once; feeds RTTs, reports and clock offsets in.
  void PingRound(const std::vector<uint64_t>& ids);
  // Re-judges this node's clock; tells the replicator whether it may own (on a change).
  void EvaluateClockLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Drops departed members from the transport once their removal has settled here.
  void ForgetSettledDepartures();
  std::string StatusOf(uint64_t id, const Peer& p, std::chrono::steady_clock::time_point now) const;
  using ChangeDone = std::function<void(absl::StatusOr<NodeLoop::MembershipResult>)>;
  struct Change;
  struct MoveWait;
  // Orders a membership change built by `make` for the current membership (its epoch), once
  // this node sees that epoch settled (Replica::Settled); retries when another change won the
  // race. Gives up at settle_timeout.
  using MakeChange = std::function<std::string(const consensus::ClusterConfig& current)>;
  void ProposeChange(MakeChange make, ChangeDone done);
  void ChangeStep(NodeLoop* r, std::shared_ptr<Change> change);
  void MoveStep(NodeLoop* r, std::shared_ptr<MoveWait> move);
  // How a wait for a settled epoch ended.
  enum class Settle { kSettled, kTimedOut, kRefused /* queue full */, kStopping };
  // Calls `then` on the node thread once this node sees the current epoch settled, asking
  // every 100 ms until `deadline`.
  void AwaitSettled(NodeLoop* r, std::chrono::steady_clock::time_point deadline,
                    std::function<void(Settle)> then);
  void MaybeRaiseQuorum(const consensus::ClusterConfig& config);
  // Every member's CA report (this node's own included), for the rotation.
  std::vector<cluster::MemberCas> CaReports() ABSL_LOCKS_EXCLUDED(mu_);
  // On the CA key holder: proposes a rotation's next step once every member is ready.
  void AdvanceCaRotation();
  // A token that a chain of continuations (a move, a change, a settle wait) holds while it
  // runs: Stop waits until none is held. Null when kChainsMax run or stopping.
  std::shared_ptr<void> HoldChain() ABSL_LOCKS_EXCLUDED(chains_mu_);
  bool Stopping() ABSL_LOCKS_EXCLUDED(mu_);
  // Why a chain could not start: stopping, or kChainsMax running (`what`: "moves").
  absl::Status NoRoom(std::string_view what) ABSL_LOCKS_EXCLUDED(mu_);
  // Runs the blocking `fn` (an operator ping) on a thread Stop joins; false when too many run.
  bool StartHelper(std::function<void()> fn) ABSL_LOCKS_EXCLUDED(mu_);

  ClusterNodeOptions options_;
  PeerTransport* transport_;
  std::atomic<NodeLoop*> replicator_{nullptr};
  std::atomic<int64_t> cert_not_after_ms_;

  absl::Mutex mu_;
  consensus::ClusterConfig membership_ ABSL_GUARDED_BY(mu_);
  std::map<uint64_t, std::string> left_ ABSL_GUARDED_BY(mu_);  // id -> address
  // Departed members still dialled, with the epoch that removed them.
  std::map<uint64_t, uint64_t> left_epoch_ ABSL_GUARDED_BY(mu_);
  std::atomic<uint64_t> settled_epoch_{0};  // the latest epoch this node saw settled
  // The key each node this signer admitted was certified for (PublicKeyFingerprint), so a
  // joiner that died before saving its answer gets the same id again. In memory: after a
  // restart of the signer such a joiner is told to NODE LEAVE it (docs/cluster.md).
  std::map<uint64_t, std::string> certified_keys_ ABSL_GUARDED_BY(mu_);
  // Whether every other member reported that it reads learner joins (ping answers).
  bool MembersReadLearners() ABSL_LOCKS_EXCLUDED(mu_);
  // The answer to a join: node `id` in `config`.
  cluster::JoinDecision Decision(uint64_t id, const consensus::ClusterConfig& config);
  std::map<uint64_t, Peer> peers_ ABSL_GUARDED_BY(mu_);
  ClockGuard clock_ ABSL_GUARDED_BY(mu_);
  ClockState announced_clock_ ABSL_GUARDED_BY(mu_) = ClockState::kUnknown;  // last logged
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  // Operator pings in progress; `done` set as each finishes (reaped at the next start).
  struct Helper {
    std::thread thread;
    bool done = false;
  };
  std::list<Helper> helpers_ ABSL_GUARDED_BY(mu_);
  std::thread detector_;
  // Separate from mu_: a chain's token may be dropped where mu_ is held.
  absl::Mutex chains_mu_;
  int chains_ ABSL_GUARDED_BY(chains_mu_) = 0;
  bool chains_closed_ ABSL_GUARDED_BY(chains_mu_) = false;
  std::atomic<bool> raising_quorum_{false};
  std::atomic<bool> proposing_trust_{false};
  std::string cert_ca_ ABSL_GUARDED_BY(mu_);
  // Catch-up: objects behind what peers reported, sampled by the detector; and when a peer was
  // first reachable (a full heartbeat round must have arrived before "nothing to catch up"
  // means anything).
  std::atomic<size_t> lagging_{0};
  std::atomic<int64_t> first_peer_ok_ms_{-1};
  const std::chrono::steady_clock::time_point started_ = std::chrono::steady_clock::now();
};

}  // namespace atlas
