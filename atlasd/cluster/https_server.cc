#include "atlasd/cluster/https_server.h"

#include <openssl/ssl.h>

#include <algorithm>
#include <array>
#include <list>
#include <map>
#include <optional>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "boost/asio/dispatch.hpp"
#include "boost/asio/ip/tcp.hpp"
#include "boost/asio/post.hpp"
#include "boost/asio/ssl.hpp"
#include "boost/asio/steady_timer.hpp"
#include "boost/asio/strand.hpp"
#include "boost/beast/core.hpp"
#include "boost/beast/http.hpp"
#include "boost/beast/ssl.hpp"
#include "socketproto/str.h"

namespace atlas::cluster {

namespace net = boost::asio;
namespace ssl = boost::asio::ssl;
namespace beast = boost::beast;
namespace http = boost::beast::http;
using tcp = boost::asio::ip::tcp;

namespace {
class Session;
}  // namespace

struct HttpsServer::State {
  State(net::io_context& ioc, HttpsServerOptions opts,
        std::shared_ptr<const HttpHandlerContext> ctx)
      : ioc(ioc),
        options(std::move(opts)),
        context(std::move(ctx)),
        tls(ssl::context::tls_server),
        acceptor(net::make_strand(ioc)),
        retry_timer(acceptor.get_executor()) {}

  net::io_context& ioc;
  const HttpsServerOptions options;
  const std::shared_ptr<const HttpHandlerContext> context;
  ssl::context tls;
  tcp::acceptor acceptor;         // touched only on its strand after Start
  net::steady_timer retry_timer;  // backs off after accept errors such as EMFILE
  std::atomic<size_t> connections{0};

  // Held while a session is made from `tls` and while SetCertificate changes it.
  absl::Mutex tls_mu;
  // Open connections by source address, oldest first (for eviction).
  absl::Mutex mu;
  std::map<std::string, std::list<std::weak_ptr<Session>>> by_source ABSL_GUARDED_BY(mu);
};

namespace {

using State = HttpsServer::State;

bool IsHttpParseError(const beast::error_code& ec) {
  return ec.category() == beast::error_code(http::error::bad_target).category();
}

// One TLS connection: handshake, then up to requests_per_connection_max request/response
// rounds, then TLS shutdown. Lives as long as an operation of it is pending (shared_from_this
// in every handler), confined to its strand.
class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(tcp::socket socket, std::shared_ptr<State> state, std::string source)
      : state_(std::move(state)), stream_(std::move(socket), state_->tls),
        source_(std::move(source)) {
    state_->connections.fetch_add(1);
  }
  // (Its entry in by_source expires with it; Admit sweeps expired entries. Taking state->mu
  // here could deadlock: a session may die while Admit holds it.)
  ~Session() { state_->connections.fetch_sub(1); }

  void Run() {
    net::dispatch(stream_.get_executor(), [self = shared_from_this()] { self->Handshake(); });
  }

  // Idle: in its handshake, or waiting for its next request. Only idle connections are evicted.
  bool idle() const { return idle_.load(); }
  // Closes the connection to make room for another (on its strand).
  void Evict() {
    net::dispatch(stream_.get_executor(), [self = shared_from_this()] {
      beast::error_code ignored;
      self->stream_.next_layer().socket().close(ignored);
    });
  }

 private:
  void Handshake() {
    stream_.next_layer().expires_after(state_->options.handshake_timeout);
    stream_.async_handshake(ssl::stream_base::server,
                            [self = shared_from_this()](beast::error_code ec) {
                              // Plaintext HTTP, scanners, clients that distrust us: drop.
                              if (ec) return;
                              if (self->PresentedClusterCert()) {
                                X509* leaf = SSL_get0_peer_certificate(
                                    self->stream_.native_handle());
                                X509_up_ref(leaf);
                                self->client_cert_.reset(leaf, X509_free);
                              }
                              self->Read();
                            });
  }

  // Whether the client presented a certificate the cluster CA signed (every client is asked
  // for one and none must give one: a renewal and console-access client-cert look at it).
  bool PresentedClusterCert() {
    X509* leaf = SSL_get0_peer_certificate(stream_.native_handle());
    return leaf != nullptr &&
           VerifyToCluster(leaf, *state_->context->cas->Get(), Purpose::kClient).ok();
  }

  void Read() {
    idle_ = true;
    parser_.emplace();
    parser_->body_limit(state_->options.body_bytes_max);
    parser_->header_limit(static_cast<uint32_t>(state_->options.header_bytes_max));
    stream_.next_layer().expires_after(state_->options.io_timeout);
    http::async_read(
        stream_, buffer_, *parser_,
        [self = shared_from_this()](beast::error_code ec, size_t) { self->OnRead(ec); });
  }

  void OnRead(beast::error_code ec) {
    if (ec == http::error::end_of_stream) return Shutdown();
    if (ec == http::error::body_limit) {
      return Write(ErrorResponse(413, StrCat("request body larger than ",
                                             state_->options.body_bytes_max, " bytes")),
                   /*close=*/true, /*drain=*/true);
    }
    if (ec == http::error::header_limit) {
      return Write(ErrorResponse(431, "request headers too large"), /*close=*/true,
                   /*drain=*/true);
    }
    if (ec && IsHttpParseError(ec) && ec != http::error::partial_message) {
      return Write(ErrorResponse(400, "malformed HTTP request"), /*close=*/true, /*drain=*/true);
    }
    if (ec) return;  // timeout, reset, TLS error: nobody to answer
    idle_ = false;

    const auto& msg = parser_->get();
    HttpRequest request{std::string(msg.method_string()), std::string(msg.target()),
                        std::move(parser_->get().body()), source_, client_cert_ != nullptr,
                        client_cert_};
    ++requests_;
    bool close = !msg.keep_alive() || requests_ >= state_->options.requests_per_connection_max;
    // The reply may come from a join handler on another thread: hop back onto our strand.
    HandleHttpRequest(request, state_->context,
                      [self = shared_from_this(), close](HttpResponse response) {
                        net::dispatch(self->stream_.get_executor(),
                                      [self, close, response = std::move(response)]() mutable {
                                        self->Write(std::move(response), close);
                                      });
                      });
  }

  void Write(HttpResponse response, bool close, bool drain = false) {
    response_.emplace();
    response_->version(11);
    response_->result(static_cast<unsigned>(response.status));
    response_->set(http::field::server, "atlasd");
    response_->set(http::field::content_type, response.content_type);
    response_->set(http::field::cache_control, "no-store");
    // The console's page runs only its own script and styles, and is never framed.
    response_->set("Content-Security-Policy",
                   "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'");
    response_->set("X-Content-Type-Options", "nosniff");
    if (!response.allow.empty()) response_->set(http::field::allow, response.allow);
    response_->keep_alive(!close);
    response_->body() = std::move(response.body);
    response_->prepare_payload();
    stream_.next_layer().expires_after(state_->options.io_timeout);
    http::async_write(stream_, *response_,
                      [self = shared_from_this(), close, drain](beast::error_code ec, size_t) {
                        if (ec) return;
                        if (drain) return self->Drain();
                        if (close) return self->Shutdown();
                        self->Read();
                      });
  }

  // After refusing a request whose rest is still arriving (an oversized body), read and
  // discard it for a bounded time and amount before closing. Closing a socket with unread
  // data makes the kernel send a reset, which can reach the client before it has read our
  // error response: it would see "connection reset" instead of "413".
  void Drain() {
    const size_t drain_bytes_max = 4 * state_->options.body_bytes_max + (1 << 16);
    if (drained_bytes_ > drain_bytes_max) return Shutdown();
    if (!scratch_) scratch_ = std::make_unique<std::array<char, 16 * 1024>>();
    stream_.next_layer().expires_after(state_->options.io_timeout);
    stream_.async_read_some(net::buffer(*scratch_),
                            [self = shared_from_this()](beast::error_code ec, size_t n) {
                              if (ec) return;  // the client closed: done
                              self->drained_bytes_ += n;
                              self->Drain();
                            });
  }

  void Shutdown() {
    stream_.next_layer().expires_after(state_->options.io_timeout);
    stream_.async_shutdown([self = shared_from_this()](beast::error_code) {
      beast::error_code ignored;
      self->stream_.next_layer().socket().shutdown(tcp::socket::shutdown_both, ignored);
    });
  }

  std::shared_ptr<State> state_;
  beast::ssl_stream<beast::tcp_stream> stream_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  std::optional<http::response<http::string_body>> response_;
  size_t requests_ = 0;
  std::unique_ptr<std::array<char, 16 * 1024>> scratch_;  // only while draining
  size_t drained_bytes_ = 0;
  const std::string source_;
  std::atomic<bool> idle_{true};
  std::shared_ptr<X509> client_cert_;  // a certificate of the cluster CA the client presented
};

// Makes room for a connection from `source`: true if it may be served (room, or an idle
// connection was evicted for it). Registers `session` when it may.
bool Admit(State& state, const std::string& source, const std::shared_ptr<Session>& session) {
  std::shared_ptr<Session> victim;  // released after the lock: its destructor may run
  absl::MutexLock lock(&state.mu);
  size_t total = 0;
  const std::string* largest = &source;
  size_t largest_size = 0;
  for (auto it = state.by_source.begin(); it != state.by_source.end();) {
    it->second.remove_if([](const std::weak_ptr<Session>& w) { return w.expired(); });
    if (it->second.empty() && it->first != source) {
      it = state.by_source.erase(it);
      continue;
    }
    total += it->second.size();
    if (it->second.size() > largest_size) largest = &it->first, largest_size = it->second.size();
    ++it;
  }
  auto& mine = state.by_source[source];
  const std::string* victim_source = nullptr;
  if (mine.size() >= state.options.connections_per_source_max) {
    victim_source = &source;
  } else if (total >= state.options.connections_max) {
    victim_source = largest;
  }
  if (victim_source != nullptr) {
    // The oldest idle connection of that source gives way; none idle: the newcomer does.
    auto& list = state.by_source[*victim_source];
    for (auto it = list.begin(); it != list.end() && !victim; ++it) {
      std::shared_ptr<Session> candidate = it->lock();
      if (candidate && candidate->idle()) {
        victim = std::move(candidate);
        list.erase(it);
        break;
      }
    }
    if (!victim) return false;
    victim->Evict();
  }
  state.by_source[source].push_back(session);
  return true;
}

void Accept(std::shared_ptr<State> state) {
  state->acceptor.async_accept(
      net::make_strand(state->ioc), [state](beast::error_code ec, tcp::socket socket) {
        if (ec == net::error::operation_aborted || !state->acceptor.is_open()) return;
        if (ec) {
          // EMFILE and friends: retrying at once would spin; wait a little.
          state->retry_timer.expires_after(std::chrono::milliseconds(100));
          state->retry_timer.async_wait([state](beast::error_code wait_ec) {
            if (!wait_ec) Accept(state);
          });
          return;
        }
        beast::error_code peer_ec;
        const tcp::endpoint peer = socket.remote_endpoint(peer_ec);
        const std::string source = peer_ec ? "?" : peer.address().to_string();
        std::shared_ptr<Session> session;
        {
          // A session's TLS state copies the certificate from the context when it is made.
          absl::MutexLock lock(&state->tls_mu);
          session = std::make_shared<Session>(std::move(socket), state, source);
        }
        // Shed load: a connection we cannot serve is closed now (its Session dies here).
        if (Admit(*state, source, session)) session->Run();
        Accept(state);
      });
}

}  // namespace

absl::StatusOr<std::pair<std::string, std::string>> SplitHostPort(std::string_view address) {
  size_t colon = address.rfind(':');
  if (colon == std::string_view::npos || colon + 1 == address.size()) {
    return absl::InvalidArgumentError(StrCat("address must be host:port: '", address, "'"));
  }
  std::string host(address.substr(0, colon));
  std::string port(address.substr(colon + 1));
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  if (host.empty())
    return absl::InvalidArgumentError(StrCat("address has no host: '", address, "'"));
  for (char c : port) {
    if (c < '0' || c > '9') {
      return absl::InvalidArgumentError(StrCat("port is not a number: '", address, "'"));
    }
  }
  return std::pair{host, port};
}

namespace {

// This node's certificate and key, with the CA that issued it as the chain: a joiner looks
// for the CA its token pins there.
absl::Status UseIdentity(SSL_CTX* tls, X509* cert, EVP_PKEY* key, const ClusterCa& cas) {
  if (SSL_CTX_use_certificate(tls, cert) != 1 || SSL_CTX_use_PrivateKey(tls, key) != 1 ||
      SSL_CTX_check_private_key(tls) != 1) {
    return absl::InvalidArgumentError(StrCat("HTTPS server certificate/key: ", OpenSslError()));
  }
  X509* issuer = IssuingCa(cert, cas);
  if (SSL_CTX_clear_chain_certs(tls) != 1 ||
      SSL_CTX_add1_chain_cert(tls, issuer != nullptr ? issuer : cas.cert.get()) != 1) {
    return absl::InternalError(StrCat("adding the CA to the TLS chain: ", OpenSslError()));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::unique_ptr<HttpsServer>> HttpsServer::Start(
    net::io_context& ioc, const HttpsServerOptions& options, X509* cert, EVP_PKEY* key,
    std::shared_ptr<const HttpHandlerContext> context) {
  if (!context || !context->cas || !context->cas->Get()->cert) {
    return absl::InvalidArgumentError("HTTPS server needs the cluster CA certificate");
  }
  auto state = std::make_shared<State>(ioc, options, context);
  SSL_CTX* tls = state->tls.native_handle();
  SSL_CTX_set_min_proto_version(tls, TLS1_2_VERSION);
  // TLS 1.2: forward-secret AEAD suites for our ECDSA keys only (no CBC, no SHA-1 MACs, no
  // static RSA); TLS 1.3's suites are all AEAD already.
  if (SSL_CTX_set_cipher_list(tls, "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"
                                   "ECDHE-ECDSA-CHACHA20-POLY1305") != 1) {
    return absl::InternalError(StrCat("setting the TLS 1.2 cipher suites: ", OpenSslError()));
  }
  // Renegotiation only gives a client a way to make us do handshakes without reconnecting.
  SSL_CTX_set_options(tls, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
  if (absl::Status s = UseIdentity(tls, cert, key, *context->cas->Get()); !s.ok()) return s;
  // Client certificates are asked for, never required (a joining node has none yet); the
  // session checks what came against the cluster CAs itself (PresentedClusterCert), so
  // OpenSSL's verdict is ignored.
  SSL_CTX_set_verify(tls, SSL_VERIFY_PEER, [](int, X509_STORE_CTX*) { return 1; });

  absl::StatusOr<std::pair<std::string, std::string>> hp = SplitHostPort(options.listen);
  if (!hp.ok()) return hp.status();
  beast::error_code ec;
  tcp::resolver resolver(ioc);
  auto endpoints = resolver.resolve(hp->first, hp->second,
                                    tcp::resolver::passive | tcp::resolver::numeric_service, ec);
  if (ec || endpoints.empty()) {
    return absl::InvalidArgumentError(
        StrCat("cannot resolve HTTPS listen address ", options.listen, ": ", ec.message()));
  }
  tcp::endpoint endpoint = endpoints.begin()->endpoint();
  tcp::acceptor& acceptor = state->acceptor;
  acceptor.open(endpoint.protocol(), ec);
  if (!ec) acceptor.set_option(net::socket_base::reuse_address(true), ec);
  if (!ec) acceptor.bind(endpoint, ec);
  if (!ec) acceptor.listen(net::socket_base::max_listen_connections, ec);
  if (ec) {
    return absl::UnavailableError(
        StrCat("cannot listen for HTTPS on ", options.listen, ": ", ec.message()));
  }
  uint16_t port = acceptor.local_endpoint(ec).port();
  // The acceptor is handed to its strand only now; nothing else touched it concurrently.
  net::post(acceptor.get_executor(), [state] { Accept(state); });
  return std::unique_ptr<HttpsServer>(new HttpsServer(std::move(state), port));
}

HttpsServer::~HttpsServer() { Stop(); }

size_t HttpsServer::connections() const { return state_->connections.load(); }

absl::Status HttpsServer::SetCertificate(X509* cert, EVP_PKEY* key) {
  absl::MutexLock lock(&state_->tls_mu);
  return UseIdentity(state_->tls.native_handle(), cert, key, *state_->context->cas->Get());
}

void HttpsServer::Stop() {
  net::dispatch(state_->acceptor.get_executor(), [state = state_] {
    beast::error_code ignored;
    state->retry_timer.cancel();
    state->acceptor.close(ignored);
  });
}

}  // namespace atlas::cluster
