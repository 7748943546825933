#include "atlasd/peer_transport.h"

#include "atlasd/cluster/pki.h"

#include <pthread.h>

#include <charconv>
#include <optional>

#include "grpcpp/grpcpp.h"
#include "grpcpp/security/credentials.h"
#include "grpcpp/security/server_credentials.h"
#include "proto/peer.grpc.pb.h"
#include "socketproto/str.h"
#include "spdlog/spdlog.h"

namespace atlas {

namespace {
constexpr size_t kReportPeersMax = 4096;  // RTT entries taken from one peer's report

// Deadlines on the monotonic clock: a wall clock that steps (or runs far off, which the clock
// guard exists to survive) must not stretch or shrink a timeout.
gpr_timespec MonotonicDeadline(std::chrono::milliseconds after) {
  return gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC),
                      gpr_time_from_millis(after.count(), GPR_TIMESPAN));
}

int64_t WallMicros() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// The payload bytes of a message (what dominates its wire size).
size_t ApproxBytes(const consensus::Message& m) {
  size_t n = 64 + m.object.size() + m.snapshot.size() + m.anchor_config.size();
  for (const consensus::SlotEntry& e : m.entries) {
    for (const consensus::Command& c : e.entry.value) n += 16 + c.data.size();
  }
  for (const consensus::Command& c : m.commands) n += 16 + c.data.size();
  return n + 8 * (m.request_ids.size() + m.slots.size()) + 16 * m.commit_indexes.size();
}
}  // namespace

namespace {

// The name the cluster PKI gives node certificates (atlasd/cluster/pki.h).
constexpr std::string_view kNodeNamePrefix = cluster::kNodeCommonNamePrefix;

// The node a TLS peer proved with its certificate (cluster::NodeIdOfIdentity: its one CN, and
// no other node name among its SANs). The same function on both ends of a connection.
std::optional<consensus::NodeId> PeerIdOf(const grpc::AuthContext& auth) {
  std::vector<std::string_view> cns, sans;
  for (const grpc::string_ref& v : auth.FindPropertyValues(GRPC_X509_CN_PROPERTY_NAME)) {
    cns.emplace_back(v.data(), v.size());
  }
  for (const grpc::string_ref& v : auth.FindPropertyValues(GRPC_X509_SAN_PROPERTY_NAME)) {
    sans.emplace_back(v.data(), v.size());
  }
  std::optional<uint64_t> id = cluster::NodeIdOfIdentity(cns, sans);
  if (!id) return std::nullopt;
  return static_cast<consensus::NodeId>(*id);
}

}  // namespace

std::string NodeTlsName(consensus::NodeId id) { return cluster::NodeCommonName(id); }

// ---------------------------------------------------------------------------------------------
// Receiving side.

class PeerTransport::Service final : public proto::Peer::Service {
 public:
  explicit Service(PeerTransport* t) : t_(t) {}

  grpc::Status Exchange(grpc::ServerContext* ctx, grpc::ServerReader<proto::MessageBatch>* reader,
                        proto::StreamSummary* summary) override {
    auto from = PeerIdOf(*ctx->auth_context());
    if (!from) {
      return grpc::Status(grpc::StatusCode::UNAUTHENTICATED,
                          "client certificate carries no atlasd node identity");
    }
    if (grpc::Status member = t_->Admit(*from); !member.ok()) return member;
    proto::MessageBatch batch;
    uint64_t batches = 0;
    while (reader->Read(&batch)) {
      ++batches;
      // A node removed while its stream is open is cut off at its next batch.
      if (grpc::Status member = t_->Admit(*from); !member.ok()) return member;
      {
        absl::MutexLock lock(&t_->heard_mu_);
        t_->heard_[static_cast<consensus::NodeId>(*from)] = std::chrono::steady_clock::now();
      }
      for (const proto::PeerMessage& pm : batch.messages()) {
        auto m = proto::FromProto(pm, t_->options_.limits, *from);
        if (!m.ok() || m->to != t_->options_.self) {
          ++t_->stats_.dropped_invalid;
          spdlog::debug("dropped message from node {}: {}", *from,
                        m.ok() ? std::string("addressed elsewhere")
                               : std::string(ToStd(m.status().message())));
          continue;
        }
        ++t_->stats_.received;
        spdlog::trace("peer message in: {} from node {} for {}", consensus::MessageTypeName(m->type),
                      *from, m->object);
        t_->deliver_(std::move(*m));
      }
    }
    summary->set_batches(batches);
    return grpc::Status::OK;
  }

  grpc::Status Ping(grpc::ServerContext* ctx, const proto::PingRequest* req,
                    proto::PingResponse* resp) override {
    auto from = PeerIdOf(*ctx->auth_context());
    if (!from) return grpc::Status(grpc::StatusCode::UNAUTHENTICATED, "no atlasd node identity");
    if (grpc::Status member = t_->Admit(*from); !member.ok()) return member;
    resp->set_node(t_->options_.self);
    resp->set_nonce(req->nonce());
    resp->set_wall_us(WallMicros());
    absl::MutexLock lock(&t_->report_mu_);
    if (t_->report_source_) {
      PeerReport report = t_->report_source_();
      resp->set_has_report(true);
      for (const auto& [node, ms] : report.rtt_ms) {
        proto::PeerRtt* r = resp->add_rtts();
        r->set_node(node);
        r->set_rtt_ms(ms);
      }
      resp->set_owned_tables(report.owned_tables);
      resp->set_version(report.version);
      resp->set_uptime_s(report.uptime_s);
      resp->set_clock(report.clock);
      resp->set_clock_offset_ms(report.clock_offset_ms);
    }
    return grpc::Status::OK;
  }

 private:
  PeerTransport* t_;
};

// ---------------------------------------------------------------------------------------------
// Sending side: one link (channel + stream + sender thread) per peer.

class PeerTransport::PeerLink {
 public:
  PeerLink(PeerTransport* t, consensus::NodeId id, std::string address)
      : t_(t), id_(id), address_(std::move(address)) {
    grpc::SslCredentialsOptions ssl;
    ssl.pem_root_certs = t_->options_.tls.ca_pem;
    ssl.pem_private_key = t_->options_.tls.key_pem;
    ssl.pem_cert_chain = t_->options_.tls.cert_pem;
    grpc::ChannelArguments args;
    // Verify the peer as "the node with this id", whatever address it is reached at.
    args.SetSslTargetNameOverride(NodeTlsName(id_));
    args.SetMaxSendMessageSize(t_->options_.message_bytes_max);
    args.SetMaxReceiveMessageSize(t_->options_.message_bytes_max);
    args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, 10'000);
    args.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 5'000);
    args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
    args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 5'000);
    channel_ = grpc::CreateCustomChannel(address_, grpc::SslCredentials(ssl), args);
    stub_ = proto::Peer::NewStub(channel_);
    thread_ = std::thread([this] {
      pthread_setname_np(pthread_self(), "atlas-send");
      Run();
    });
  }

  ~PeerLink() {
    {
      absl::MutexLock lock(&mu_);
      stopping_ = true;  // wakes the sender thread (its waits are conditions on mu_)
      if (ctx_) ctx_->TryCancel();
    }
    thread_.join();
  }

  const std::string& address() const { return address_; }

  void Enqueue(consensus::Message m) {
    absl::MutexLock lock(&mu_);
    const size_t bytes = ApproxBytes(m);
    if (queue_.size() >= t_->options_.queue_messages_max ||
        (!queue_.empty() && queued_bytes_ + bytes > t_->options_.queue_bytes_max)) {
      ++t_->stats_.dropped_queue_full;
      spdlog::trace("peer message dropped (queue full): {} to node {}",
                    consensus::MessageTypeName(m.type), id_);
      return;
    }
    spdlog::trace("peer message out: {} to node {} for {}", consensus::MessageTypeName(m.type), id_,
                  m.object);
    queued_bytes_ += bytes;
    queue_.push_back(std::move(m));
  }

  absl::StatusOr<Pong> Ping() {
    grpc::ClientContext ctx;
    ctx.set_deadline(MonotonicDeadline(t_->options_.ping_timeout));
    proto::PingRequest req;
    req.set_from(t_->options_.self);
    req.set_nonce(++nonce_);
    proto::PingResponse resp;
    auto t0 = std::chrono::steady_clock::now();
    const int64_t wall0 = WallMicros();
    grpc::Status s = stub_->Ping(&ctx, req, &resp);
    const int64_t wall1 = WallMicros();
    double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0)
                    .count();
    if (!s.ok()) {
      return absl::UnavailableError(StrCat("ping node ", id_, " at ", address_, ": ",
                                           s.error_message()));
    }
    if (absl::Status who = CheckServer(ctx); !who.ok()) return who;
    if (resp.node() != id_ || resp.nonce() != req.nonce()) {
      return absl::DataLossError(StrCat("ping node ", id_, ": answered by node ", resp.node()));
    }
    Pong pong;
    pong.rtt_ms = ms;
    if (resp.wall_us() != 0) {
      // NTP's estimate: the peer read its clock somewhere within our round trip; assume the
      // middle (off by at most half the round trip).
      pong.clock_offset_ms = static_cast<double>(resp.wall_us() - (wall0 + wall1) / 2) / 1000.0;
    }
    if (resp.has_report()) {
      PeerReport& report = pong.report.emplace();
      // Bounded by the peer's gRPC message limit; a node never has more members than that.
      for (const proto::PeerRtt& r : resp.rtts()) {
        if (report.rtt_ms.size() == kReportPeersMax) break;
        report.rtt_ms.emplace_back(r.node(), r.rtt_ms());
      }
      report.owned_tables = resp.owned_tables();
      report.version = resp.version().substr(0, 64);
      report.uptime_s = resp.uptime_s();
      report.clock = resp.clock().substr(0, 16);
      report.clock_offset_ms = resp.clock_offset_ms();
    }
    return pong;
  }

 private:
  void Run() {
    auto backoff = std::chrono::milliseconds(100);
    while (!Stopping()) {
      grpc::ClientContext ctx;
      proto::StreamSummary summary;
      {
        absl::MutexLock lock(&mu_);
        ctx_ = &ctx;
      }
      std::unique_ptr<grpc::ClientWriter<proto::MessageBatch>> writer =
          stub_->Exchange(&ctx, &summary);
      bool wrote = false;
      // Nothing is sent before the server proved to be node id_: an empty batch opens the
      // connection, then its certificate is checked like the server checks ours.
      bool verified = writer->Write(proto::MessageBatch()) && VerifiedServer(ctx);
      for (; verified;) {
        std::deque<consensus::Message> batch;
        {
          absl::MutexLock lock(&mu_);
          auto woken = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
            return stopping_ || !queue_.empty();
          };
          mu_.Await(absl::Condition(&woken));
          if (stopping_) break;
          // Bounded in count and in bytes: one gRPC message must stay under message_bytes_max
          // (a batch over it would be refused whole, again and again).
          size_t bytes = 0;
          while (!queue_.empty() && batch.size() < t_->options_.batch_messages_max) {
            const size_t next = ApproxBytes(queue_.front());  // walks the entries: once
            if (!batch.empty() && bytes + next > t_->options_.batch_bytes_max) break;
            bytes += next;
            queued_bytes_ -= next;
            batch.push_back(std::move(queue_.front()));
            queue_.pop_front();
          }
        }
        proto::MessageBatch wire;
        for (const consensus::Message& m : batch) proto::ToProto(m, wire.add_messages());
        if (!writer->Write(wire)) {  // stream broken: the batch is lost, WPaxos resends
          t_->stats_.dropped_link_down += batch.size();
          break;
        }
        t_->stats_.sent += batch.size();
        wrote = true;
        backoff = std::chrono::milliseconds(100);
      }
      {
        absl::MutexLock lock(&mu_);
        ctx_ = nullptr;
      }
      ctx.TryCancel();
      writer->Finish();
      if (Stopping()) break;
      ++t_->stats_.reconnects;
      if (!wrote) {
        absl::MutexLock lock(&mu_);
        mu_.AwaitWithTimeout(absl::Condition(&stopping_), absl::FromChrono(backoff));
        backoff = std::min(backoff * 2, std::chrono::milliseconds(5000));
      }
    }
  }

  bool Stopping() {
    absl::MutexLock lock(&mu_);
    return stopping_;
  }

  // The server at address_ proved to be node id_ (the check gRPC's host name verification
  // does on a SAN, plus ours: one identity per certificate).
  absl::Status CheckServer(grpc::ClientContext& ctx) {
    std::shared_ptr<const grpc::AuthContext> auth = ctx.auth_context();
    std::optional<consensus::NodeId> who = auth ? PeerIdOf(*auth) : std::nullopt;
    if (who == id_) return absl::OkStatus();
    return absl::PermissionDeniedError(
        StrCat("the server at ", address_, " is not node ", id_, ": its certificate names ",
               who ? StrCat("node ", *who) : std::string("no single node")));
  }

  bool VerifiedServer(grpc::ClientContext& ctx) {
    absl::Status s = CheckServer(ctx);
    if (s.ok()) {
      warned_ = false;
      return true;
    }
    if (!warned_) spdlog::error("peer link: {}; sending it nothing", s.message());
    warned_ = true;
    return false;
  }

  PeerTransport* t_;
  consensus::NodeId id_;
  std::string address_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<proto::Peer::Stub> stub_;
  std::atomic<uint64_t> nonce_{0};
  absl::Mutex mu_;
  std::deque<consensus::Message> queue_ ABSL_GUARDED_BY(mu_);
  size_t queued_bytes_ ABSL_GUARDED_BY(mu_) = 0;  // ApproxBytes of queue_
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  grpc::ClientContext* ctx_ ABSL_GUARDED_BY(mu_) = nullptr;  // the live stream, to cancel it
  bool warned_ = false;                   // sender thread: an impostor was logged
  std::thread thread_;
};

// ---------------------------------------------------------------------------------------------

PeerTransport::PeerTransport(PeerTransportOptions options, Deliver deliver)
    : options_(std::move(options)), deliver_(std::move(deliver)) {}

std::optional<std::chrono::steady_clock::time_point> PeerTransport::LastHeard(
    consensus::NodeId id) {
  absl::MutexLock lock(&heard_mu_);
  auto it = heard_.find(id);
  if (it == heard_.end()) return std::nullopt;
  return it->second;
}

PeerTransport::~PeerTransport() { Shutdown(); }

absl::Status PeerTransport::Start() {
  grpc::SslServerCredentialsOptions ssl(GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
  ssl.pem_root_certs = options_.tls.ca_pem;
  ssl.pem_key_cert_pairs.push_back({options_.tls.key_pem, options_.tls.cert_pem});
  service_ = std::make_unique<Service>(this);
  grpc::ServerBuilder builder;
  builder.AddListeningPort(options_.listen, grpc::SslServerCredentials(ssl), &bound_port_);
  builder.RegisterService(service_.get());
  builder.SetMaxReceiveMessageSize(options_.message_bytes_max);
  builder.SetMaxSendMessageSize(options_.message_bytes_max);
  server_ = builder.BuildAndStart();
  if (!server_ || bound_port_ == 0) {
    return absl::UnavailableError(StrCat("cannot listen for peers on ", options_.listen));
  }
  return absl::OkStatus();
}

void PeerTransport::SetPeer(consensus::NodeId id, const std::string& address) {
  std::shared_ptr<PeerLink> old;
  {
    absl::MutexLock lock(&mu_);
    auto it = peers_.find(id);
    if (it != peers_.end() && it->second->address() == address) return;
    if (it != peers_.end()) old = std::move(it->second);
    peers_[id] = std::make_shared<PeerLink>(this, id, address);
  }
}

grpc::Status PeerTransport::Admit(consensus::NodeId id) {
  absl::MutexLock lock(&mu_);
  if (peers_.contains(id)) return grpc::Status::OK;
  // Not a member (any more): its certificate is still valid, its access is not.
  return grpc::Status(grpc::StatusCode::PERMISSION_DENIED,
                      StrCat("node ", id, " is not a member of this cluster"));
}

void PeerTransport::RemovePeer(consensus::NodeId id) {
  std::shared_ptr<PeerLink> old;
  absl::MutexLock lock(&mu_);
  auto it = peers_.find(id);
  if (it == peers_.end()) return;
  old = std::move(it->second);
  peers_.erase(it);
}

void PeerTransport::Send(std::vector<consensus::Message> messages) {
  absl::MutexLock lock(&mu_);
  for (consensus::Message& m : messages) {
    auto it = peers_.find(m.to);
    if (it == peers_.end()) {
      ++stats_.dropped_queue_full;
      continue;
    }
    it->second->Enqueue(std::move(m));
  }
}

absl::StatusOr<Pong> PeerTransport::Ping(consensus::NodeId id) {
  std::shared_ptr<PeerLink> link;
  {
    absl::MutexLock lock(&mu_);
    auto it = peers_.find(id);
    if (it == peers_.end()) return absl::NotFoundError(StrCat("unknown node ", id));
    link = it->second;
  }
  return link->Ping();
}

absl::StatusOr<double> PeerTransport::PingMs(consensus::NodeId id) {
  absl::StatusOr<Pong> pong = Ping(id);
  if (!pong.ok()) return pong.status();
  return pong->rtt_ms;
}

void PeerTransport::SetReportSource(std::function<PeerReport()> source) {
  absl::MutexLock lock(&report_mu_);
  report_source_ = std::move(source);
}

void PeerTransport::Shutdown() {
  std::map<consensus::NodeId, std::shared_ptr<PeerLink>> peers;
  {
    absl::MutexLock lock(&mu_);
    peers.swap(peers_);
  }
  peers.clear();  // joins the sender threads
  if (server_) {
    server_->Shutdown(MonotonicDeadline(std::chrono::seconds(1)));
    server_.reset();
  }
}

}  // namespace atlas
