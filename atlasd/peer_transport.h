// The node-to-node transport of docs/cluster.md: WPaxos messages over gRPC with mutual TLS.
//
// Every node runs a gRPC server (proto/peer.proto, service Peer) that accepts only clients
// presenting a certificate signed by the cluster CA, and opens one client stream to each peer.
// The peer's node id comes from its certificate (CN "atlasd-node-<id>", and no other node name
// among its SANs: cluster::NodeIdOfIdentity), never from the message: a message claiming
// another sender is dropped (proto::FromProto). Both ends check it the same way: the server of
// every stream and ping, and the client before it sends anything. A node that is not a current
// member (or a departed one whose removal has not settled yet) is refused.
//
// Both directions use gRPC's callback API, so no thread of ours waits on a stream. Sending
// never blocks the caller (the node thread): messages join a bounded per-peer queue, and
// whoever finds the stream idle (the caller, or gRPC's thread finishing the previous write)
// writes everything queued as one MessageBatch. So under load batches grow by themselves and
// a message is handed from thread to thread once per side (node -> gRPC -> peer's node). When
// the queue is full or the peer is down, messages are dropped — WPaxos retransmits what
// matters, and an unbounded queue to a dead peer would grow forever. A broken stream is
// reopened by the next send, after an exponential backoff. Received batches are validated on
// gRPC's thread and delivered whole.
//
// Thread-safe.
#pragma once

#include <atomic>
#include <chrono>
#include <deque>
#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "grpcpp/security/tls_certificate_provider.h"
#include "grpcpp/support/status.h"
#include "grpcpp/support/string_ref.h"
#include "atlasd/node_report.h"
#include "consensus/message.h"
#include "proto/peer_convert.h"

namespace grpc {
class Server;
class Status;
}

namespace atlas {

struct PeerTlsConfig {
  std::string ca_pem;    // the cluster CA: the only trust anchor
  std::string cert_pem;  // this node's certificate (CN atlasd-node-<id>)
  std::string key_pem;
  // Non-empty: the directory holding ca.pem, node.pem and node-key.pem, which gRPC reads
  // again every `reload_seconds` (a renewed certificate is used by new connections within
  // that time, docs/security.md §Certificates); the PEMs above are then not used.
  std::string watch_dir;
  unsigned reload_seconds = 10;
};

// The peer protocol this build speaks, and the oldest it still talks to (docs/operations.md
// §Rolling upgrades). Raise kPeerProtocol with any change an older release would misread, and
// kPeerProtocolMin when this build no longer reads what the oldest one sends.
inline constexpr int kPeerProtocol = 1;
inline constexpr int kPeerProtocolMin = 1;

struct PeerTransportOptions {
  consensus::NodeId self = 0;
  // The protocols this node speaks: it announces `protocol` and refuses a peer announcing one
  // outside [protocol_min, protocol] (tests pretend to be another release with these).
  int protocol = kPeerProtocol;
  int protocol_min = kPeerProtocolMin;
  std::string listen;  // host:port; port 0 picks one (see bound_port())
  // host:port peers dial this node at, told to every node it connects to: a member that has
  // not learned this node's admission yet dials it back with it (SetNewcomerFloor).
  std::string advertise;
  PeerTlsConfig tls;
  proto::PeerLimits limits;
  size_t queue_messages_max = 65536;  // per peer
  // Payload bytes queued per peer. Over it, messages are dropped (counted): the protocol
  // resends, and a slow or stalled peer cannot grow this node's memory without bound.
  size_t queue_bytes_max = size_t{256} << 20;
  size_t batch_messages_max = 1024;
  size_t batch_bytes_max = 32 << 20;  // payload bytes per batch (one message may exceed it)
  int message_bytes_max = 256 << 20;  // one gRPC message (a batch)
  std::chrono::milliseconds ping_timeout{2000};
};

// The TLS server name every node certificate carries, so that peers are verified by identity
// rather than by whatever address they are reached at.
std::string NodeTlsName(consensus::NodeId id);

// A node's report about itself, carried in its ping answers.
struct PeerReport {
  std::vector<std::pair<consensus::NodeId, double>> rtt_ms;  // its smoothed RTT to each peer
  uint64_t owned_tables = 0;
  std::string version;
  uint64_t uptime_s = 0;
  std::string clock;           // ClockStateName of its clock
  double clock_offset_ms = 0;  // its clock minus its peers'
  LoadTotals load;             // its socket commands since it started
  int64_t cert_not_after_ms = 0;     // when its node certificate expires (0: unknown)
  std::vector<OwnershipMove> moves;  // its last ownership wins, oldest first
  std::vector<std::string> trusted_cas;  // CAs its TLS trusts (fingerprints; CA rotation)
  std::string cert_ca;                   // the CA of its certificate
  bool reads_learners = false;           // it applies learner joins (docs/cluster.md §Learners)
};

struct Pong {
  double rtt_ms = 0;
  std::optional<PeerReport> report;  // nullopt: the peer sent none
  // The peer's wall clock minus ours at the middle of the round trip (ms); its error is at
  // most rtt_ms / 2. nullopt: the peer did not send its clock.
  std::optional<double> clock_offset_ms;
};

class PeerTransport {
 public:
  // One received batch, every message validated (from = the certificate's node, to = self).
  using Deliver = std::function<void(std::vector<consensus::Message>)>;

  explicit PeerTransport(PeerTransportOptions options, Deliver deliver);
  ~PeerTransport();

  absl::Status Start();
  int bound_port() const { return bound_port_; }

  // Adds or updates a peer's address ("host:port"). Only the nodes set here may connect to this
  // one (the members, and departed ones until their removal settled: ClusterNode).
  void SetPeer(consensus::NodeId id, const std::string& address);
  void RemovePeer(consensus::NodeId id);
  // Ids from `floor` up were not allocated by any membership this node knows (ids are never
  // reused): such a node was admitted by a change this node missed. It may connect, and is
  // dialled back at the address it states, so that this node can learn that change from it
  // (the core takes only heartbeats and membership catch-up from it: Replica::FromNewcomer).
  // At most kNewcomersMax at once; those below a new floor that SetPeer did not confirm go.
  void SetNewcomerFloor(consensus::NodeId floor);
  static constexpr size_t kNewcomersMax = 8;

  // Queues messages for their `to` nodes; never blocks.
  void Send(std::vector<consensus::Message> messages);

  // One RTT sample over the peer channel (blocking up to ping_timeout; call off the node thread),
  // with the peer's report.
  absl::StatusOr<Pong> Ping(consensus::NodeId id);
  absl::StatusOr<double> PingMs(consensus::NodeId id);
  // What this node answers pings with. Called on gRPC threads; SetReportSource(nullptr) waits
  // for calls in progress, so the source's owner may go away after it.
  void SetReportSource(std::function<PeerReport()> source);
  // When a valid message batch from `id` last arrived (nullopt: never). Consensus heartbeats
  // flow every 250 ms, so this is the failure detector's main evidence of life.
  std::optional<std::chrono::steady_clock::time_point> LastHeard(consensus::NodeId id);

  void Shutdown();

  struct Stats {
    std::atomic<uint64_t> sent{0}, received{0}, dropped_queue_full{0}, dropped_link_down{0},
        dropped_invalid{0}, reconnects{0};
    std::atomic<uint64_t> bytes_sent{0};  // serialized message batches written to peers
  };
  const Stats& stats() const { return stats_; }

 private:
  class Service;
  class PeerLink;

  // OK when `id` is one of the peers set or a newcomer: a node that is not (any more) gets
  // nothing.
  grpc::Status Admit(consensus::NodeId id);
  // A newcomer connected, stating the address it is dialled at: dial it back.
  void LearnNewcomer(consensus::NodeId id, std::string_view advertise);
  // OK, or FAILED_PRECONDITION saying why, for a peer announcing its protocol in `metadata`
  // (logged at most once a minute per peer).
  grpc::Status AdmitProtocol(consensus::NodeId id,
                             const std::multimap<grpc::string_ref, grpc::string_ref>& metadata);

  PeerTransportOptions options_;
  // The node's TLS identity and trust anchor for the server and every channel: fixed PEMs, or
  // files watched for a renewed certificate (PeerTlsConfig::watch_dir).
  std::shared_ptr<grpc::experimental::CertificateProviderInterface> certificates_;
  Deliver deliver_;
  std::unique_ptr<Service> service_;
  std::unique_ptr<grpc::Server> server_;
  int bound_port_ = 0;
  absl::Mutex mu_;
  std::map<consensus::NodeId, std::shared_ptr<PeerLink>> peers_ ABSL_GUARDED_BY(mu_);
  consensus::NodeId newcomer_floor_ ABSL_GUARDED_BY(mu_) =
      std::numeric_limits<consensus::NodeId>::max();  // none until the membership is known
  std::set<consensus::NodeId> newcomers_ ABSL_GUARDED_BY(mu_);  // in peers_, not set by SetPeer
  absl::Mutex report_mu_;
  std::function<PeerReport()> report_source_ ABSL_GUARDED_BY(report_mu_);
  absl::Mutex heard_mu_;
  std::map<consensus::NodeId, std::chrono::steady_clock::time_point> heard_
      ABSL_GUARDED_BY(heard_mu_);
  // When a peer's protocol was last logged as refused.
  std::map<consensus::NodeId, std::chrono::steady_clock::time_point> refused_logged_
      ABSL_GUARDED_BY(heard_mu_);
  Stats stats_;
};

}  // namespace atlas
