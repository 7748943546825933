// libFuzzer target: the HTTPS port's request handling (atlasd/cluster/http_handler.h), which is
// what a stranger on the network reaches before any trust: method, target and body (the join
// request's JSON, its CSR, its secret).
//
// Input: byte 0 picks the method, byte 1 the target (or, past the table, a target taken from the
// input), the rest is the body. In the body, "@CSR@" becomes a valid PEM CSR and "@SECRET@" the
// node's join secret, so that mutations reach the validation behind them. Checks beyond "no
// crash": exactly one reply, a status from the documented set, JSON that parses whenever the
// reply says it is JSON. Byte 0 also picks console-access and whether the client presented a
// certificate; console targets reach a fake console that checks how the router parsed them.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>

#include "atlasd/cluster/http_handler.h"
#include "atlasd/cluster/join_token.h"
#include "atlasd/cluster/pki.h"
#include "nlohmann/json.hpp"

namespace {

using atlas::cluster::HttpRequest;
using atlas::cluster::HttpResponse;

struct Fixture {
  std::shared_ptr<const atlas::cluster::HttpHandlerContext> context;
  // The same, with console-access client-cert and off (the console is open in `context`).
  std::shared_ptr<const atlas::cluster::HttpHandlerContext> cert_only, console_off;
  std::string csr_pem;
};

const Fixture& TheFixture() {
  static const Fixture* f = [] {
    auto* out = new Fixture;
    auto ctx = std::make_shared<atlas::cluster::HttpHandlerContext>();
    auto ca = atlas::cluster::CreateClusterCa("fuzz-cluster");
    if (!ca.ok()) std::abort();
    ctx->cas = std::make_shared<atlas::cluster::TrustedCas>(
        std::make_shared<atlas::cluster::ClusterCa>(std::move(*ca)));
    ctx->join_secret = std::string(atlas::cluster::kJoinSecretHexChars, 'a');
    ctx->health = [] { return atlas::cluster::HealthInfo{1, "ACTIVE", "z1", "", 0, ""}; };
    ctx->metrics = [] { return std::string("atlas_up 1\n"); };
    // Decides synchronously: accepts, or refuses as the real handler can.
    ctx->join = [](const atlas::cluster::JoinRequest& req, atlas::cluster::JoinDone done) {
      if (req.region == "busy") return done(absl::UnavailableError("no quorum"));
      if (req.region == "dup") return done(absl::AlreadyExistsError("node name taken"));
      atlas::cluster::JoinDecision d;
      d.node_id = 7;
      d.cluster_id = "fuzz-cluster";
      d.members.push_back({1, "z1", "127.0.0.1", 7400});
      d.config = "cfg";
      done(std::move(d));
    };
    // A console that checks what the router gives it: a console target, parsed consistently.
    ctx->console = [](const HttpRequest& req, std::function<void(HttpResponse)> reply) {
      using Kind = atlas::cluster::ConsoleRoute::Kind;
      const atlas::cluster::ConsoleRoute r = atlas::cluster::ParseConsoleTarget(req.target);
      if (r.kind == Kind::kNone) std::abort();
      if (r.error.empty() && (r.limit < 1 || r.limit > atlas::cluster::kConsoleTablesMax)) {
        std::abort();
      }
      if (r.kind == Kind::kTable && r.error.empty() && r.table.find('/') != std::string::npos) {
        std::abort();
      }
      HttpResponse ok;
      ok.body = "{}";
      reply(std::move(ok));
    };
    out->context = ctx;
    auto cert_only = std::make_shared<atlas::cluster::HttpHandlerContext>(*ctx);
    cert_only->console_access = atlas::cluster::ConsoleAccess::kClientCert;
    out->cert_only = cert_only;
    auto off = std::make_shared<atlas::cluster::HttpHandlerContext>(*ctx);
    off->console_access = atlas::cluster::ConsoleAccess::kOff;
    out->console_off = off;
    auto csr = atlas::cluster::CreateNodeCsr({{"node.example"}, {"127.0.0.1"}});
    if (!csr.ok()) std::abort();
    out->csr_pem = atlas::cluster::CsrToPem(csr->csr.get());
    return out;
  }();
  return *f;
}

void ReplaceAll(std::string& s, const std::string& from, const std::string& to) {
  for (size_t at = s.find(from); at != std::string::npos; at = s.find(from, at + to.size())) {
    s.replace(at, from.size(), to);
  }
}

std::string JsonEscaped(const std::string& s) {
  std::string quoted = nlohmann::json(s).dump();
  return quoted.substr(1, quoted.size() - 2);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  static const char* kMethods[] = {"GET", "POST", "PUT", "DELETE", "HEAD", "get", "", "POST "};
  static const char* kTargets[] = {"/v1/join", "/health", "/metrics", "/", "/v1/join?x=1",
                                   "/v1/JOIN", "//v1/join", "/health/", "/v1/join/../health",
                                   "/v1/status", "/v1/tables?limit=5", "/v1/tables/users",
                                   "/console/console.js", "/v1/tables?limit=0", "/v1/tables/",
                                   "/v1/renew"};
  const Fixture& f = TheFixture();
  HttpRequest req;
  req.method = kMethods[data[0] % (sizeof(kMethods) / sizeof(kMethods[0]))];
  // Bits of byte 0 past the method's: a client certificate, and the console-access setting.
  req.client_certified = (data[0] & 0x08) != 0;
  const auto& context = (data[0] >> 4) % 3 == 0   ? f.context
                        : (data[0] >> 4) % 3 == 1 ? f.cert_only
                                                  : f.console_off;
  std::string rest(reinterpret_cast<const char*>(data) + 2, size - 2);
  const size_t nt = sizeof(kTargets) / sizeof(kTargets[0]);
  if (data[1] < nt * 8) {
    req.target = kTargets[data[1] % nt];
  } else {  // A target from the input: up to the first newline.
    const size_t nl = rest.find('\n');
    req.target = rest.substr(0, nl);
    rest = nl == std::string::npos ? "" : rest.substr(nl + 1);
  }
  ReplaceAll(rest, "@CSR@", JsonEscaped(f.csr_pem));
  ReplaceAll(rest, "@SECRET@", f.context->join_secret);
  req.body = std::move(rest);

  int replies = 0;
  HttpResponse response;
  atlas::cluster::HandleHttpRequest(req, context, [&](HttpResponse r) {
    ++replies;
    response = std::move(r);
  });
  if (replies != 1) std::abort();  // The fixture's join handler answers synchronously.
  switch (response.status) {
    case 200: case 400: case 403: case 404: case 405: case 409: case 413: case 500: case 503:
      break;
    default:
      std::abort();
  }
  if (response.status == 405 && response.allow.empty()) std::abort();
  if (response.content_type == "application/json" &&
      nlohmann::json::parse(response.body, nullptr, false).is_discarded()) {
    std::abort();
  }
  return 0;
}
