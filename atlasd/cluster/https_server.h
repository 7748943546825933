// The node's HTTPS port: bootstrap (POST /v1/join), GET /health, GET /metrics
// (docs/cluster-bootstrap.md §Endpoints). Boost.Beast over Boost.Asio SSL; the routing and
// every decision live in HandleHttpRequest (http_handler.h), this file only does I/O.
//
// Limits, all per connection unless noted: TLS 1.2 or later with forward-secret AEAD suites
// only; a handshake must finish within `handshake_timeout`, a request read and a response write
// each within `io_timeout`; headers are capped at `header_bytes_max` (431 beyond), bodies at
// `body_bytes_max` (413 beyond). At most `connections_max` connections at once, and at most
// `connections_per_source_max` from one address: a new connection over either bound takes the
// place of the oldest idle one (still in its handshake, or between requests) of its own source,
// or of the source with the most connections, so idle connections can never lock out a health
// check; with no idle one to take, the new connection is closed at once (the backlog never
// fills with connections we will not serve). A failed TLS handshake (plaintext HTTP, a port
// scanner) just drops the connection.
//
// A connection waiting for the JoinHandler has no timeout of its own (the handler must call
// `done`; the daemon's handler bounds its consensus round), but it still counts against
// `connections_max`, so a stuck handler cannot make the server accept without bound.
//
// Lifetime: destroy the server before its io_context. Connections still open when the
// io_context stops are freed with it.
//
// Thread-safety: the server runs on the given io_context, which may be run by several threads;
// each connection is confined to its own strand, the acceptor to another. port() and
// connections() may be called from any thread; Stop() too.
#pragma once

#include <openssl/evp.h>
#include <openssl/x509.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "atlasd/cluster/http_handler.h"
#include "boost/asio/io_context.hpp"

namespace atlas::cluster {

struct HttpsServerOptions {
  std::string listen = "127.0.0.1:0";  // host:port; port 0 picks a free port (see port())
  size_t body_bytes_max = 64 * 1024;
  size_t header_bytes_max = 8 * 1024;
  std::chrono::milliseconds handshake_timeout{3'000};
  std::chrono::milliseconds io_timeout{10'000};
  size_t connections_max = 128;
  size_t connections_per_source_max = 32;
  size_t requests_per_connection_max = 100;
};

class HttpsServer {
 public:
  // Binds `options.listen` and starts accepting on `ioc`. `cert`/`key` are this node's TLS
  // identity (a node certificate from the cluster CA); the CA of `context->cas` that issued it
  // is sent along as the chain, which is what lets a joiner find the CA its token pins. The
  // server keeps its own references to cert, key and context.
  static absl::StatusOr<std::unique_ptr<HttpsServer>> Start(
      boost::asio::io_context& ioc, const HttpsServerOptions& options, X509* cert, EVP_PKEY* key,
      std::shared_ptr<const HttpHandlerContext> context);

  // Stops accepting (Stop); open connections finish on their own within their timeouts.
  ~HttpsServer();

  HttpsServer(const HttpsServer&) = delete;
  HttpsServer& operator=(const HttpsServer&) = delete;

  uint16_t port() const { return port_; }
  size_t connections() const;
  // A renewed certificate (and its key) for the connections accepted from now on; its chain is
  // the CA of `context->cas` that issued it.
  absl::Status SetCertificate(X509* cert, EVP_PKEY* key);
  // Stops accepting new connections. Idempotent.
  void Stop();

  struct State;  // shared with the connections; defined in the .cc

 private:
  HttpsServer(std::shared_ptr<State> state, uint16_t port)
      : state_(std::move(state)), port_(port) {}

  std::shared_ptr<State> state_;
  uint16_t port_;
};

// Splits "host:port" / "[v6]:port". InvalidArgument when malformed.
absl::StatusOr<std::pair<std::string, std::string>> SplitHostPort(std::string_view address);

}  // namespace atlas::cluster
