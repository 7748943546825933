#include "atlasd/peer_transport.h"

#include "atlasd/cluster/https_server.h"
#include "atlasd/cluster/join_client.h"
#include "atlasd/cluster/pki.h"

#include <algorithm>
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

// The console's part of a report (node_report.h): load, certificate expiry, ownership wins;
// and the node's CAs.
void EncodeLoad(const PeerReport& report, proto::PingResponse* resp) {
  resp->set_load_wall_ms(report.load.wall_ms);
  resp->set_commands(report.load.commands);
  resp->set_errors(report.load.errors);
  for (uint64_t n : report.load.buckets) resp->add_latency_buckets(n);
  resp->set_cert_not_after_ms(report.cert_not_after_ms);
  for (const OwnershipMove& m : report.moves) {
    proto::OwnershipMove* p = resp->add_moves();
    p->set_table(m.table);
    p->set_ballot(m.ballot);
    p->set_wall_ms(m.wall_ms);
  }
  for (const std::string& fp : report.trusted_cas) resp->add_trusted_cas(fp);
  resp->set_cert_ca(report.cert_ca);
  resp->set_reads_learners(report.reads_learners);
}

// Bounded as everything a peer sends: what does not fit is dropped, never trusted to be small.
void DecodeLoad(const proto::PingResponse& resp, PeerReport* report) {
  report->load.wall_ms = resp.load_wall_ms();
  report->load.commands = resp.commands();
  report->load.errors = resp.errors();
  const size_t buckets = std::min<size_t>(resp.latency_buckets_size(), report->load.buckets.size());
  for (size_t i = 0; i < buckets; ++i) report->load.buckets[i] = resp.latency_buckets(i);
  report->cert_not_after_ms = resp.cert_not_after_ms();
  for (const proto::OwnershipMove& m : resp.moves()) {
    if (report->moves.size() == OwnershipMove::kRecentMoves) break;
    report->moves.push_back({m.table().substr(0, 255), m.ballot().substr(0, 64), m.wall_ms()});
  }
  for (const std::string& fp : resp.trusted_cas()) {
    if (report->trusted_cas.size() == 8) break;
    report->trusted_cas.push_back(fp.substr(0, 64));
  }
  report->cert_ca = resp.cert_ca().substr(0, 64);
  report->reads_learners = resp.reads_learners();
}
// Stream metadata: the address the dialling node is reached at (PeerTransport::LearnNewcomer),
// and the peer protocol it speaks.
constexpr char kAdvertiseKey[] = "atlas-advertise";
constexpr char kProtocolKey[] = "atlas-protocol";

// The protocol a dialling peer announced; releases from before protocols were announced sent
// none, and spoke protocol 1.
int AnnouncedProtocol(const std::multimap<grpc::string_ref, grpc::string_ref>& metadata) {
  auto it = metadata.find(kProtocolKey);
  if (it == metadata.end()) return 1;
  int protocol = 0;
  std::string_view text(it->second.data(), it->second.size());
  if (std::from_chars(text.data(), text.data() + text.size(), protocol).ec != std::errc()) {
    return 0;
  }
  return protocol;
}

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
// Receiving side: a reactor per incoming stream. Each batch is validated on the gRPC thread that
// read it and delivered whole; the next read starts after that.

class PeerTransport::Service final : public proto::Peer::CallbackService {
 public:
  explicit Service(PeerTransport* t) : t_(t) {}

  grpc::ServerReadReactor<proto::MessageBatch>* Exchange(grpc::CallbackServerContext* ctx,
                                                         proto::StreamSummary* summary) override;

  grpc::ServerUnaryReactor* Ping(grpc::CallbackServerContext* ctx, const proto::PingRequest* req,
                                 proto::PingResponse* resp) override {
    grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
    reactor->Finish(Answer(*ctx, *req, resp));
    return reactor;
  }

 private:
  class Inbound;

  grpc::Status Answer(grpc::CallbackServerContext& ctx, const proto::PingRequest& req,
                      proto::PingResponse* resp) {
    auto from = PeerIdOf(*ctx.auth_context());
    if (!from) return grpc::Status(grpc::StatusCode::UNAUTHENTICATED, "no atlasd node identity");
    if (grpc::Status member = t_->Admit(*from); !member.ok()) return member;
    if (grpc::Status p = t_->AdmitProtocol(*from, ctx.client_metadata()); !p.ok()) return p;
    resp->set_node(t_->options_.self);
    resp->set_nonce(req.nonce());
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
      EncodeLoad(report, resp);
    }
    return grpc::Status::OK;
  }

  PeerTransport* t_;
};

class PeerTransport::Service::Inbound final : public grpc::ServerReadReactor<proto::MessageBatch> {
 public:
  Inbound(PeerTransport* t, grpc::CallbackServerContext* ctx, proto::StreamSummary* summary)
      : t_(t), summary_(summary) {
    std::optional<consensus::NodeId> from = PeerIdOf(*ctx->auth_context());
    if (!from) {
      Finish(grpc::Status(grpc::StatusCode::UNAUTHENTICATED,
                          "client certificate carries no atlasd node identity"));
      return;
    }
    if (grpc::Status member = t_->Admit(*from); !member.ok()) {
      Finish(member);
      return;
    }
    const auto& metadata = ctx->client_metadata();
    if (grpc::Status p = t_->AdmitProtocol(*from, metadata); !p.ok()) {
      Finish(p);
      return;
    }
    if (auto a = metadata.find(kAdvertiseKey); a != metadata.end()) {
      t_->LearnNewcomer(*from, std::string_view(a->second.data(), a->second.size()));
    }
    from_ = *from;
    StartRead(&batch_);
  }

  void OnReadDone(bool ok) override {
    if (!ok) {  // the peer closed its side (or the stream broke)
      summary_->set_batches(batches_);
      Finish(grpc::Status::OK);
      return;
    }
    ++batches_;
    // A node removed while its stream is open is cut off at its next batch.
    if (grpc::Status member = t_->Admit(from_); !member.ok()) {
      Finish(member);
      return;
    }
    {
      absl::MutexLock lock(&t_->heard_mu_);
      t_->heard_[from_] = std::chrono::steady_clock::now();
    }
    std::vector<consensus::Message> messages = Validated();
    if (!messages.empty()) t_->deliver_(std::move(messages));
    StartRead(&batch_);
  }

  void OnDone() override { delete this; }

 private:
  std::vector<consensus::Message> Validated() {
    std::vector<consensus::Message> out;
    out.reserve(static_cast<size_t>(batch_.messages_size()));
    for (const proto::PeerMessage& pm : batch_.messages()) {
      auto m = proto::FromProto(pm, t_->options_.limits, from_);
      if (!m.ok() || m->to != t_->options_.self) {
        ++t_->stats_.dropped_invalid;
        spdlog::debug("dropped message from node {}: {}", from_,
                      m.ok() ? std::string("addressed elsewhere")
                             : std::string(ToStd(m.status().message())));
        continue;
      }
      ++t_->stats_.received;
      spdlog::trace("peer message in: {} from node {} for {}", consensus::MessageTypeName(m->type),
                    from_, m->object);
      out.push_back(std::move(*m));
    }
    return out;
  }

  PeerTransport* t_;
  proto::StreamSummary* summary_;
  consensus::NodeId from_ = 0;
  proto::MessageBatch batch_;
  uint64_t batches_ = 0;
};

grpc::ServerReadReactor<proto::MessageBatch>* PeerTransport::Service::Exchange(
    grpc::CallbackServerContext* ctx, proto::StreamSummary* summary) {
  return new Inbound(t_, ctx, summary);  // deletes itself when gRPC is done with it
}

// ---------------------------------------------------------------------------------------------
// Sending side: one link (channel, queue, and at most one open stream) per peer.

class PeerTransport::PeerLink {
 public:
  PeerLink(PeerTransport* t, consensus::NodeId id, std::string address)
      : t_(t), id_(id), address_(std::move(address)) {
    grpc::experimental::TlsChannelCredentialsOptions tls;
    tls.set_certificate_provider(t_->certificates_);
    tls.watch_root_certs();
    tls.watch_identity_key_cert_pairs();
    tls.set_verify_server_certs(true);
    grpc::ChannelArguments args;
    // Verify the peer as "the node with this id", whatever address it is reached at.
    args.SetSslTargetNameOverride(NodeTlsName(id_));
    args.SetMaxSendMessageSize(t_->options_.message_bytes_max);
    args.SetMaxReceiveMessageSize(t_->options_.message_bytes_max);
    args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, 10'000);
    args.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 5'000);
    args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
    args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 5'000);
    channel_ = grpc::CreateCustomChannel(address_, grpc::experimental::TlsCredentials(tls), args);
    stub_ = proto::Peer::NewStub(channel_);
  }

  ~PeerLink() {
    Stream* release = nullptr;
    {
      absl::MutexLock lock(&mu_);
      stopping_ = true;
      if (stream_) {
        stream_->ctx.TryCancel();
        // A write in flight releases the stream when it completes (Written).
        if (held_ && !writing_) release = stream_.get();
        if (release) held_ = false;
      }
    }
    if (release) release->RemoveHold();
    absl::MutexLock lock(&mu_);
    mu_.Await(absl::Condition(
        +[](std::unique_ptr<Stream>* s) { return *s == nullptr; }, &stream_));
  }

  const std::string& address() const { return address_; }

  // Queues `messages` (bounded) and writes them now if the stream is idle.
  void Enqueue(std::vector<consensus::Message> messages) {
    Stream* opening = nullptr;
    Stream* writer = nullptr;
    std::deque<consensus::Message> batch;
    {
      absl::MutexLock lock(&mu_);
      for (consensus::Message& m : messages) Push(std::move(m));
      opening = MaybeOpen();
      if (!opening) writer = TakeBatch(&batch);
    }
    if (opening) Open(opening);
    if (writer) Write(writer, std::move(batch));
  }

  absl::StatusOr<Pong> Ping() {
    grpc::ClientContext ctx;
    ctx.AddMetadata(kProtocolKey, std::to_string(t_->options_.protocol));
    proto::PingRequest req;
    req.set_from(t_->options_.self);
    req.set_nonce(++nonce_);
    proto::PingResponse resp;
    // Time the round trip, not a connection set-up: on an idle channel the first call would
    // include TCP's and TLS's handshakes (several round trips; also the clock offset estimate's
    // error bound).
    if (!channel_->WaitForConnected(MonotonicDeadline(t_->options_.ping_timeout))) {
      return absl::UnavailableError(
          StrCat("ping node ", id_, " at ", address_, ": no connection within the ping timeout"));
    }
    ctx.set_deadline(MonotonicDeadline(t_->options_.ping_timeout));
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
      DecodeLoad(resp, &report);
    }
    return pong;
  }

 private:
  // One Exchange call. It lives until gRPC is done with it (OnDone); a hold keeps it open
  // while the link may still start writes on it from outside its reactions.
  class Stream final : public grpc::ClientWriteReactor<proto::MessageBatch> {
   public:
    explicit Stream(PeerLink* link) : link_(link) {}
    void OnWriteDone(bool ok) override { link_->Written(this, ok); }
    void OnDone(const grpc::Status& status) override { link_->Closed(this, status); }

    grpc::ClientContext ctx;
    proto::StreamSummary summary;
    proto::MessageBatch wire;  // the write in flight
    size_t in_flight = 0;      // messages in `wire`
    size_t wire_bytes = 0;     // its serialized size
    bool wrote = false;        // a batch got through on this stream

   private:
    PeerLink* link_;
  };

  void Push(consensus::Message m) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
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

  // A new stream when there is something to send, none is open and the backoff has passed.
  Stream* MaybeOpen() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (stopping_ || stream_ || queue_.empty()) return nullptr;
    if (std::chrono::steady_clock::now() < retry_at_) return nullptr;
    stream_ = std::make_unique<Stream>(this);
    verified_ = false;
    writing_ = true;  // the opening write
    held_ = true;
    return stream_.get();
  }

  // Moves the next batch out of the queue when the stream is verified and idle. Bounded in
  // count and in bytes: one gRPC message must stay under message_bytes_max (a batch over it
  // would be refused whole, again and again).
  Stream* TakeBatch(std::deque<consensus::Message>* batch) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (!stream_ || !verified_ || writing_ || !held_ || queue_.empty()) return nullptr;
    size_t bytes = 0;
    while (!queue_.empty() && batch->size() < t_->options_.batch_messages_max) {
      const size_t next = ApproxBytes(queue_.front());  // walks the entries: once
      if (!batch->empty() && bytes + next > t_->options_.batch_bytes_max) break;
      bytes += next;
      queued_bytes_ -= next;
      batch->push_back(std::move(queue_.front()));
      queue_.pop_front();
    }
    writing_ = true;
    return stream_.get();
  }

  // Outside mu_: gRPC may run a reaction inline, and reactions take mu_.
  void Open(Stream* s) {
    if (!t_->options_.advertise.empty()) s->ctx.AddMetadata(kAdvertiseKey, t_->options_.advertise);
    s->ctx.AddMetadata(kProtocolKey, std::to_string(t_->options_.protocol));
    stub_->async()->Exchange(&s->ctx, &s->summary, s);
    s->AddHold();
    // Nothing is sent before the server proved to be node id_: an empty batch opens the
    // connection, then its certificate is checked like the server checks ours (Written).
    s->StartWrite(&s->wire);
    s->StartCall();
  }

  void Write(Stream* s, std::deque<consensus::Message> batch) {
    s->wire.Clear();
    for (const consensus::Message& m : batch) proto::ToProto(m, s->wire.add_messages());
    s->in_flight = batch.size();
    s->wire_bytes = s->wire.ByteSizeLong();
    s->StartWrite(&s->wire);
  }

  void Written(Stream* s, bool ok) {
    Stream* writer = nullptr;
    std::deque<consensus::Message> batch;
    bool release = false;
    {
      absl::MutexLock lock(&mu_);
      writing_ = false;
      if (!ok) {  // stream broken: the batch is lost, WPaxos resends
        t_->stats_.dropped_link_down += s->in_flight;
      } else if (s->in_flight > 0) {
        t_->stats_.sent += s->in_flight;
        t_->stats_.bytes_sent += s->wire_bytes;
        s->wrote = true;
        backoff_ = std::chrono::milliseconds(100);
      } else if (!verified_) {
        ok = verified_ = VerifiedServer(s->ctx);
      }
      s->in_flight = 0;
      if (!ok || stopping_) {
        release = held_;
        held_ = false;
      } else {
        writer = TakeBatch(&batch);
      }
    }
    if (release) s->RemoveHold();  // gRPC finishes the call, then Closed
    if (writer) Write(writer, std::move(batch));
  }

  void Closed(Stream* s, const grpc::Status& status) {
    Stream* opening = nullptr;
    {
      absl::MutexLock lock(&mu_);
      spdlog::debug("peer link to node {} closed: {}", id_, status.error_message());
      // Refused for its protocol (AdmitProtocol): worth an operator's attention, once.
      if (status.error_code() == grpc::StatusCode::FAILED_PRECONDITION && !refused_logged_) {
        spdlog::error("peer link to node {} refused: {}", id_, status.error_message());
        refused_logged_ = true;
      }
      if (s->wrote) refused_logged_ = false;
      // A stream that carried traffic reconnects at once; one that never did backs off.
      retry_at_ = std::chrono::steady_clock::now();
      if (!s->wrote) {
        retry_at_ += backoff_;
        backoff_ = std::min(backoff_ * 2, std::chrono::milliseconds(5000));
      }
      stream_.reset();  // deletes s: gRPC is done with it
      if (!stopping_) ++t_->stats_.reconnects;
      opening = MaybeOpen();
    }
    if (opening) Open(opening);
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

  bool VerifiedServer(grpc::ClientContext& ctx) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
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
  std::unique_ptr<Stream> stream_ ABSL_GUARDED_BY(mu_);  // from MaybeOpen to Closed
  bool verified_ ABSL_GUARDED_BY(mu_) = false;  // the stream's server proved to be node id_
  bool writing_ ABSL_GUARDED_BY(mu_) = false;   // a StartWrite is outstanding
  bool held_ ABSL_GUARDED_BY(mu_) = false;      // the stream's hold is not yet removed
  std::chrono::steady_clock::time_point retry_at_ ABSL_GUARDED_BY(mu_);
  std::chrono::milliseconds backoff_ ABSL_GUARDED_BY(mu_){100};
  bool warned_ ABSL_GUARDED_BY(mu_) = false;  // an impostor was logged
  bool refused_logged_ ABSL_GUARDED_BY(mu_) = false;  // a protocol refusal was logged
};

// ---------------------------------------------------------------------------------------------

namespace {

std::shared_ptr<grpc::experimental::CertificateProviderInterface> CertificatesOf(
    const PeerTlsConfig& tls) {
  if (!tls.watch_dir.empty()) {
    auto in = [&](std::string_view file) { return StrCat(tls.watch_dir, "/", file); };
    return std::make_shared<grpc::experimental::FileWatcherCertificateProvider>(
        in(cluster::kNodeKeyFile), in(cluster::kNodeCertFile), in(cluster::kCaCertFile),
        tls.reload_seconds);
  }
  return std::make_shared<grpc::experimental::StaticDataCertificateProvider>(
      tls.ca_pem, std::vector<grpc::experimental::IdentityKeyCertPair>{
                      {tls.key_pem, tls.cert_pem}});
}

}  // namespace

PeerTransport::PeerTransport(PeerTransportOptions options, Deliver deliver)
    : options_(std::move(options)),
      certificates_(CertificatesOf(options_.tls)),
      deliver_(std::move(deliver)) {}

std::optional<std::chrono::steady_clock::time_point> PeerTransport::LastHeard(
    consensus::NodeId id) {
  absl::MutexLock lock(&heard_mu_);
  auto it = heard_.find(id);
  if (it == heard_.end()) return std::nullopt;
  return it->second;
}

PeerTransport::~PeerTransport() { Shutdown(); }

absl::Status PeerTransport::Start() {
  grpc::experimental::TlsServerCredentialsOptions tls(certificates_);
  tls.set_cert_request_type(GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
  tls.watch_root_certs();
  tls.watch_identity_key_cert_pairs();
  service_ = std::make_unique<Service>(this);
  grpc::ServerBuilder builder;
  builder.AddListeningPort(options_.listen, grpc::experimental::TlsServerCredentials(tls),
                           &bound_port_);
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
    newcomers_.erase(id);  // a member now, as far as this node knows
    if (it != peers_.end() && it->second->address() == address) return;
    if (it != peers_.end()) old = std::move(it->second);
    peers_[id] = std::make_shared<PeerLink>(this, id, address);
  }
}

grpc::Status PeerTransport::Admit(consensus::NodeId id) {
  absl::MutexLock lock(&mu_);
  if (peers_.contains(id) || id >= newcomer_floor_) return grpc::Status::OK;
  // Not a member (any more): its certificate is still valid, its access is not.
  return grpc::Status(grpc::StatusCode::PERMISSION_DENIED,
                      StrCat("node ", id, " is not a member of this cluster"));
}

grpc::Status PeerTransport::AdmitProtocol(
    consensus::NodeId id, const std::multimap<grpc::string_ref, grpc::string_ref>& metadata) {
  const int theirs = AnnouncedProtocol(metadata);
  if (theirs >= options_.protocol_min && theirs <= options_.protocol) return grpc::Status::OK;
  const std::string why =
      StrCat("node ", id, " speaks peer protocol ", theirs, " and node ", options_.self,
             " speaks ", options_.protocol_min, " to ", options_.protocol,
             ": run releases that share a protocol (docs/operations.md §Rolling upgrades)");
  {
    absl::MutexLock lock(&heard_mu_);
    auto& last = refused_logged_[id];
    const auto now = std::chrono::steady_clock::now();
    if (last == std::chrono::steady_clock::time_point{} || now - last > std::chrono::minutes(1)) {
      spdlog::error("refusing a peer: {}", why);
      last = now;
    }
  }
  return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION, why);
}

void PeerTransport::LearnNewcomer(consensus::NodeId id, std::string_view advertise) {
  // What a node states about itself is trusted as far as its certificate is (it is one the
  // cluster CA issued); the address only has to look like one.
  if (advertise.size() > 255 || !cluster::SplitHostPort(advertise).ok()) return;
  for (char c : advertise) {
    if (c <= ' ' || c > '~') return;
  }
  absl::MutexLock lock(&mu_);
  if (peers_.contains(id) || id < newcomer_floor_ || newcomers_.size() >= kNewcomersMax) return;
  peers_[id] = std::make_shared<PeerLink>(this, id, std::string(advertise));
  newcomers_.insert(id);
  spdlog::info("node {} connected, admitted by a membership change not learned here yet: "
               "learning it from that node (at {})", id, advertise);
}

void PeerTransport::SetNewcomerFloor(consensus::NodeId floor) {
  std::vector<std::shared_ptr<PeerLink>> gone;  // released outside mu_
  absl::MutexLock lock(&mu_);
  newcomer_floor_ = floor;
  for (auto it = newcomers_.begin(); it != newcomers_.end();) {
    if (*it >= floor) {
      ++it;
      continue;
    }
    gone.push_back(std::move(peers_[*it]));
    peers_.erase(*it);
    it = newcomers_.erase(it);
  }
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
  // Grouped per peer, so that one loop pass's messages to a peer leave in one batch.
  std::map<consensus::NodeId, std::pair<std::shared_ptr<PeerLink>, std::vector<consensus::Message>>>
      by_peer;
  {
    absl::MutexLock lock(&mu_);
    for (consensus::Message& m : messages) {
      auto it = peers_.find(m.to);
      if (it == peers_.end()) {
        ++stats_.dropped_queue_full;
        continue;
      }
      auto [group, fresh] = by_peer.try_emplace(m.to);
      if (fresh) group->second.first = it->second;  // one reference per peer, not per message
      group->second.second.push_back(std::move(m));
    }
  }
  // Outside mu_: a link may start a write, and gRPC may run its reaction inline.
  for (auto& [id, link_and_messages] : by_peer) {
    link_and_messages.first->Enqueue(std::move(link_and_messages.second));
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
  peers.clear();  // each link waits until gRPC is done with its stream
  if (server_) {
    server_->Shutdown(MonotonicDeadline(std::chrono::seconds(1)));
    server_.reset();
  }
}

}  // namespace atlas
