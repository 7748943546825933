#include "atlasd/cluster/join_client.h"

#include <arpa/inet.h>
#include <openssl/ssl.h>

#include <algorithm>
#include <filesystem>

#include "atlasd/cluster/https_server.h"
#include "boost/asio/ip/tcp.hpp"
#include "boost/asio/ssl.hpp"
#include "boost/beast/core.hpp"
#include "boost/beast/http.hpp"
#include "boost/beast/ssl.hpp"
#include "nlohmann/json.hpp"
#include "socketproto/str.h"

namespace atlas::cluster {
namespace {

namespace net = boost::asio;
namespace ssl = boost::asio::ssl;
namespace beast = boost::beast;
namespace http = boost::beast::http;
using tcp = boost::asio::ip::tcp;
using nlohmann::json;
using Clock = std::chrono::steady_clock;

constexpr size_t kResponseBytesMax = 1 << 20;

// What the certificate check learned, for an error message better than "verify failed".
struct Pin {
  std::vector<std::string> fingerprints;  // any of them
  std::string failure;
};

// Replaces OpenSSL's chain building for this connection (SSL_CTX_set_cert_verify_callback):
// find the pinned CA among the certificates the server sent, then verify the leaf against it
// alone. Returning 0 aborts the handshake before a byte of application data is sent.
int VerifyPinned(X509_STORE_CTX* store_ctx, void* arg) {
  Pin* pin = static_cast<Pin*>(arg);
  X509* leaf = X509_STORE_CTX_get0_cert(store_ctx);
  STACK_OF(X509)* chain = X509_STORE_CTX_get0_untrusted(store_ctx);
  X509* ca = nullptr;
  for (int i = 0; chain != nullptr && i < sk_X509_num(chain); ++i) {
    X509* candidate = sk_X509_value(chain, i);
    const std::string fp = Fingerprint(candidate);
    for (const std::string& pinned : pin->fingerprints) {
      if (fp == pinned) ca = candidate;
    }
  }
  if (ca == nullptr) {
    pin->failure =
        "the server did not present the cluster CA named by the join token "
        "(fingerprint mismatch): wrong server or wrong token";
    X509_STORE_CTX_set_error(store_ctx, X509_V_ERR_CERT_UNTRUSTED);
    return 0;
  }
  absl::Status s = VerifyChain(leaf, ca, Purpose::kServer);
  if (!s.ok()) {
    pin->failure = StrCat("the server's certificate: ", s.message());
    X509_STORE_CTX_set_error(store_ctx, X509_V_ERR_CERT_UNTRUSTED);
    return 0;
  }
  return 1;
}

// Runs `ioc` until `*done` or `deadline`. Stream operations carry the same deadline through
// tcp_stream's expiry, so they complete (with a timeout error) on their own; only the resolver
// needs this bound.
bool RunUntil(net::io_context& ioc, const bool* done, Clock::time_point deadline) {
  ioc.restart();
  while (!*done) {
    if (ioc.run_one_until(deadline) == 0) break;
  }
  return *done;
}

absl::StatusOr<std::pair<std::string, std::string>> ParseHttpsUrl(std::string_view url) {
  constexpr std::string_view kScheme = "https://";
  if (url.substr(0, kScheme.size()) != kScheme) {
    return absl::InvalidArgumentError(StrCat("join URL must start with https://: '", url, "'"));
  }
  url.remove_prefix(kScheme.size());
  if (!url.empty() && url.back() == '/') url.remove_suffix(1);
  if (url.find('/') != std::string_view::npos || url.find('@') != std::string_view::npos) {
    return absl::InvalidArgumentError("join URL must be https://host:port with no path");
  }
  return SplitHostPort(url);
}

bool IsIpLiteral(const std::string& host) {
  unsigned char buf[16];
  return inet_pton(AF_INET, host.c_str(), buf) == 1 || inet_pton(AF_INET6, host.c_str(), buf) == 1;
}

absl::Status StatusFromHttp(int status, std::string_view url, std::string_view body,
                            std::string_view what = "join") {
  std::string message = std::string(body.substr(0, 512));
  json j = json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (j.is_object() && j.contains("error") && j["error"].is_string()) {
    message = j["error"].get<std::string>();
  }
  std::string text = StrCat(what, " refused by ", url, " (HTTP ", status, "): ", message);
  switch (status) {
    case 400:
      return absl::InvalidArgumentError(text);
    case 403:
      return absl::PermissionDeniedError(text);
    case 404:
      return absl::NotFoundError(text);
    case 409:
      return absl::FailedPreconditionError(text);
    case 503:
      return absl::UnavailableError(text);
    default:
      return absl::InternalError(text);
  }
}

}  // namespace

absl::StatusOr<HttpResponse> PinnedHttpsRequest(std::string_view url,
                                                std::string_view ca_fingerprint,
                                                std::string_view method, std::string_view target,
                                                std::string_view body,
                                                std::chrono::milliseconds timeout,
                                                X509* client_cert, EVP_PKEY* client_key) {
  return PinnedHttpsRequest(url, std::vector<std::string>{std::string(ca_fingerprint)}, method,
                            target, body, timeout, client_cert, client_key);
}

absl::StatusOr<HttpResponse> PinnedHttpsRequest(std::string_view url,
                                                const std::vector<std::string>& ca_fingerprints,
                                                std::string_view method, std::string_view target,
                                                std::string_view body,
                                                std::chrono::milliseconds timeout,
                                                X509* client_cert, EVP_PKEY* client_key) {
  absl::StatusOr<std::pair<std::string, std::string>> hp = ParseHttpsUrl(url);
  if (!hp.ok()) return hp.status();
  const auto& [host, port] = *hp;
  for (const std::string& fp : ca_fingerprints) {
    if (fp.size() != kFingerprintHexChars) {
      return absl::InvalidArgumentError("CA fingerprint must be 64 hex digits");
    }
  }
  http::verb verb = http::string_to_verb(beast::string_view(method.data(), method.size()));
  if (verb == http::verb::unknown) return absl::InvalidArgumentError("unknown HTTP method");
  const Clock::time_point deadline = Clock::now() + timeout;

  Pin pin{ca_fingerprints, ""};
  ssl::context tls(ssl::context::tls_client);
  SSL_CTX_set_min_proto_version(tls.native_handle(), TLS1_2_VERSION);
  SSL_CTX_set_verify(tls.native_handle(), SSL_VERIFY_PEER, nullptr);
  SSL_CTX_set_cert_verify_callback(tls.native_handle(), VerifyPinned, &pin);
  if (client_cert != nullptr &&
      (SSL_CTX_use_certificate(tls.native_handle(), client_cert) != 1 ||
       SSL_CTX_use_PrivateKey(tls.native_handle(), client_key) != 1)) {
    return absl::InvalidArgumentError(StrCat("client certificate: ", OpenSslError()));
  }

  net::io_context ioc;
  tcp::resolver resolver(ioc);
  beast::ssl_stream<beast::tcp_stream> stream(ioc, tls);
  if (!IsIpLiteral(host)) SSL_set_tlsext_host_name(stream.native_handle(), host.c_str());
  stream.next_layer().expires_at(deadline);

  beast::error_code ec;
  bool done = false;
  tcp::resolver::results_type endpoints;
  resolver.async_resolve(host, port, tcp::resolver::numeric_service,
                         [&](beast::error_code e, tcp::resolver::results_type r) {
                           ec = e;
                           endpoints = std::move(r);
                           done = true;
                         });
  if (!RunUntil(ioc, &done, deadline)) {
    resolver.cancel();
    return absl::DeadlineExceededError(StrCat("resolving ", host, ": timed out"));
  }
  if (ec) return absl::UnavailableError(StrCat("resolving ", host, ": ", ec.message()));

  auto step = [&](auto start, std::string_view what) -> absl::Status {
    done = false;
    start([&](beast::error_code e, auto&&...) {
      ec = e;
      done = true;
    });
    if (!RunUntil(ioc, &done, deadline + std::chrono::seconds(1)) || ec == beast::error::timeout) {
      return absl::DeadlineExceededError(StrCat(what, " ", url, ": timed out"));
    }
    if (ec) return absl::UnavailableError(StrCat(what, " ", url, ": ", ec.message()));
    return absl::OkStatus();
  };

  absl::Status s =
      step([&](auto h) { stream.next_layer().async_connect(endpoints, h); }, "connecting to");
  if (!s.ok()) return s;
  s = step([&](auto h) { stream.async_handshake(ssl::stream_base::client, h); },
           "TLS handshake with");
  if (!s.ok()) {
    if (!pin.failure.empty()) {
      return absl::UnauthenticatedError(StrCat("refusing ", url, ": ", pin.failure));
    }
    return s;
  }

  http::request<http::string_body> req(verb, beast::string_view(target.data(), target.size()), 11);
  req.set(http::field::host, host);
  req.set(http::field::user_agent, "atlasd-join");
  req.set(http::field::content_type, "application/json");
  req.keep_alive(false);
  req.body() = std::string(body);
  req.prepare_payload();
  absl::Status sent = step([&](auto h) { http::async_write(stream, req, h); }, "sending to");
  if (absl::IsDeadlineExceeded(sent)) return sent;

  // Read even if sending failed: a server may refuse early (413 on an oversized body) and
  // close while we are still writing; its answer is more useful than "broken pipe".
  beast::flat_buffer buffer;
  http::response_parser<http::string_body> parser;
  parser.body_limit(kResponseBytesMax);
  s = step([&](auto h) { http::async_read(stream, buffer, parser, h); }, "reading from");
  if (!s.ok()) return sent.ok() ? s : sent;

  // No TLS close_notify exchange: the response is complete (its length is framed) and
  // waiting for the server's close_notify would only add a round trip.
  beast::error_code ignored;
  stream.next_layer().socket().close(ignored);

  const auto& res = parser.get();
  HttpResponse out;
  out.status = static_cast<int>(res.result_int());
  out.content_type = std::string(res[http::field::content_type]);
  out.allow = std::string(res[http::field::allow]);
  out.body = res.body();
  return out;
}

absl::StatusOr<JoinResult> JoinCluster(const JoinOptions& options) {
  absl::StatusOr<NodeKeyAndCsr> csr;
  if (!options.key_file.empty() && std::filesystem::exists(options.key_file)) {
    absl::StatusOr<PkeyPtr> kept = LoadKey(options.key_file);  // a retry: the same key
    if (!kept.ok()) return kept.status();
    csr = CreateNodeCsr(options.sans, kept->get());
  } else {
    csr = CreateNodeCsr(options.sans);
    // Saved before the request: the cluster may certify it even if we never see the answer.
    if (csr.ok() && !options.key_file.empty()) {
      if (absl::Status s = SaveKey(options.key_file, csr->key.get()); !s.ok()) return s;
    }
  }
  if (!csr.ok()) return csr.status();
  json request = {{"secret", options.token.secret},
                  {"csr", CsrToPem(csr->csr.get())},
                  {"region", options.region},
                  {"advertise", options.advertise},
                  {"node_name", options.node_name},
                  {"learner", true}};  // it promotes itself (PromoteLearner)
  absl::StatusOr<HttpResponse> response = PinnedHttpsRequest(
      options.url, options.token.ca_fingerprint, "POST", "/v1/join",
      request.dump(-1, ' ', false, json::error_handler_t::replace), options.timeout);
  if (!response.ok()) return response.status();
  if (response->status != 200) return StatusFromHttp(response->status, options.url, response->body);

  JoinResult result;
  std::string cert_pem, ca_pem;
  try {
    json body = json::parse(response->body);
    result.decision.node_id = body.at("node_id").get<uint64_t>();
    result.decision.cluster_id = body.at("cluster_id").get<std::string>();
    result.decision.fn = body.at("fn").get<int>();
    result.decision.fz = body.at("fz").get<int>();
    for (const json& m : body.at("members")) {
      result.decision.members.push_back(
          Member{m.at("id").get<uint64_t>(), m.at("region").get<std::string>(),
                 m.at("addr").get<std::string>(), m.at("port").get<uint16_t>()});
    }
    if (body.contains("membership")) {
      result.decision.config = body.at("membership").get<std::string>();
    }
    if (body.contains("membership_previous")) {
      result.decision.previous_config = body.at("membership_previous").get<std::string>();
    }
    cert_pem = body.at("cert").get<std::string>();
    ca_pem = body.at("ca").get<std::string>();
  } catch (const json::exception& e) {
    return absl::InternalError(
        StrCat("malformed join response from ", options.url, ": ", e.what()));
  }
  // The cluster's CAs, the signer first (two during a CA rotation).
  absl::StatusOr<std::vector<X509Ptr>> cas = CertsFromPem(ca_pem, 4);
  absl::StatusOr<X509Ptr> cert = CertFromPem(cert_pem);
  if (!cas.ok() || !cert.ok()) {
    return absl::InternalError(
        StrCat("join response from ", options.url, " carries an unreadable certificate"));
  }
  ClusterCa ca;
  ca.cert = std::move(cas->front());
  for (size_t i = 1; i < cas->size(); ++i) ca.also_trusted.push_back(std::move((*cas)[i]));
  // The TLS pin already authenticated the server; these checks catch a member that answers
  // with a different CA than the one it serves with, or a certificate for someone else's key.
  const std::vector<std::string> fps = CaFingerprints(ca);
  if (std::find(fps.begin(), fps.end(), options.token.ca_fingerprint) == fps.end()) {
    return absl::UnauthenticatedError(
        StrCat("join response from ", options.url, ": CA does not match the join token"));
  }
  if (absl::Status s = VerifyChain(cert->get(), ca.cert.get(), Purpose::kClient); !s.ok()) {
    return absl::UnauthenticatedError(
        StrCat("join response from ", options.url, ": ", s.message()));
  }
  if (X509_check_private_key(cert->get(), csr->key.get()) != 1) {
    ERR_clear_error();
    return absl::UnauthenticatedError(
        StrCat("join response from ", options.url, ": certificate is not for our key"));
  }
  if (CertCommonName(cert->get()) != NodeCommonName(result.decision.node_id)) {
    return absl::UnauthenticatedError(StrCat("join response from ", options.url,
                                             ": certificate does not name node ",
                                             result.decision.node_id));
  }
  result.key = std::move(csr->key);
  result.cert = std::move(*cert);
  result.ca = std::move(ca);
  return result;
}

absl::StatusOr<PromoteResult> PromoteLearner(const std::string& url, const ClusterCa& ca,
                                             X509* cert, EVP_PKEY* key,
                                             std::chrono::milliseconds timeout) {
  absl::StatusOr<HttpResponse> response = PinnedHttpsRequest(
      url, CaFingerprints(ca), "POST", "/v1/promote", "", timeout, cert, key);
  if (!response.ok()) return response.status();
  if (response->status != 200) {
    return StatusFromHttp(response->status, url, response->body, "promotion");
  }
  PromoteResult result;
  try {
    json body = json::parse(response->body);
    result.config = body.at("membership").get<std::string>();
    result.previous_config = body.at("membership_previous").get<std::string>();
  } catch (const json::exception& e) {
    return absl::InternalError(StrCat("malformed promote response from ", url, ": ", e.what()));
  }
  return result;
}

absl::Status SaveJoinCredentials(const std::string& data_dir, const JoinResult& result) {
  std::filesystem::path dir(data_dir);
  // The key first: a crash after it leaves no certificate pointing at a missing key.
  if (absl::Status s = SaveKey((dir / kNodeKeyFile).string(), result.key.get()); !s.ok()) return s;
  if (absl::Status s = SaveCert((dir / kNodeCertFile).string(), result.cert.get()); !s.ok()) {
    return s;
  }
  return WriteFileAtomic((dir / kCaCertFile).string(), CasToPem(result.ca), 0644);
}

}  // namespace atlas::cluster
