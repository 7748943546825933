#include "atlasd/cluster/http_handler.h"

#include <openssl/evp.h>

#include <atomic>
#include <chrono>
#include <algorithm>
#include <charconv>

#include "atlasd/cluster/join_limiter.h"
#include "atlasd/cluster/join_token.h"
#include "nlohmann/json.hpp"
#include "socketproto/command.h"
#include "socketproto/str.h"

namespace atlas::cluster {
namespace {

using nlohmann::json;

// Error messages may quote what a stranger sent; never let invalid UTF-8 make dump() throw.
std::string Dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

HttpResponse JsonResponse(int status, const json& body) {
  HttpResponse r;
  r.status = status;
  r.body = Dump(body);
  return r;
}

int HttpStatusFor(const absl::Status& s) {
  switch (s.code()) {
    case absl::StatusCode::kInvalidArgument:
      return 400;
    case absl::StatusCode::kPermissionDenied:
      return 403;
    case absl::StatusCode::kNotFound:
      return 404;
    case absl::StatusCode::kAlreadyExists:
    case absl::StatusCode::kFailedPrecondition:
      return 409;
    case absl::StatusCode::kUnavailable:
      return 503;
    case absl::StatusCode::kResourceExhausted:
      return 429;
    default:
      return 500;
  }
}

// "host:port" with a non-empty host and a port in 1..65535 (IPv6 hosts in brackets).
bool IsHostPort(std::string_view s) {
  size_t colon = s.rfind(':');
  if (colon == std::string_view::npos || colon == 0 || colon + 1 == s.size()) return false;
  std::string_view port = s.substr(colon + 1);
  unsigned value = 0;
  auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
  if (ec != std::errc() || end != port.data() + port.size()) return false;
  if (value == 0 || value > 65535) return false;
  for (char c : s.substr(0, colon)) {
    if (static_cast<unsigned char>(c) <= ' ' || c == '/' || c == '@') return false;
  }
  return true;
}

// Reads a string field; `required` fields must be present and non-empty.
absl::StatusOr<std::string> StringField(const json& body, const char* name, size_t bytes_max,
                                        bool required) {
  auto it = body.find(name);
  if (it == body.end()) {
    if (required) return absl::InvalidArgumentError(StrCat("missing field '", name, "'"));
    return std::string();
  }
  if (!it->is_string()) {
    return absl::InvalidArgumentError(StrCat("field '", name, "' must be a string"));
  }
  const std::string& value = it->get_ref<const std::string&>();
  if (required && value.empty()) {
    return absl::InvalidArgumentError(StrCat("field '", name, "' must not be empty"));
  }
  if (value.size() > bytes_max) {
    return absl::InvalidArgumentError(
        StrCat("field '", name, "' is longer than ", bytes_max, " bytes"));
  }
  return value;
}

HttpResponse MethodNotAllowed(std::string_view allow) {
  HttpResponse r = ErrorResponse(405, StrCat("method not allowed; use ", allow));
  r.allow = std::string(allow);
  return r;
}

HttpResponse Health(const HttpHandlerContext& ctx) {
  HealthInfo info;
  info.status = "UNKNOWN";
  if (ctx.health) info = ctx.health();
  // 200 while the node serves commands (a catching-up node does, answering from its owners);
  // 503 while it cannot (JOINING, LEFT): load balancers and probes need only the status code.
  const bool serving = info.status == "ACTIVE" || info.status == "CATCHING_UP";
  json body = {{"node_id", info.node_id}, {"status", info.status}, {"zone", info.zone}};
  if (!info.clock.empty()) {
    body["clock"] = info.clock;
    body["clock_offset_ms"] = info.clock_offset_ms;
  }
  if (!info.reason.empty()) body["reason"] = info.reason;
  return JsonResponse(serving ? 200 : 503, body);
}

json MembersJson(const std::vector<Member>& members) {
  json out = json::array();
  for (const Member& m : members) {
    out.push_back({{"id", m.id}, {"region", m.region}, {"addr", m.addr}, {"port", m.port}});
  }
  return out;
}

HttpResponse NotTheSigner() {
  return ErrorResponse(503,
                       "this member does not hold the cluster CA key; join through the member "
                       "that created the cluster");
}

// Whether the presented secret admits a join now (the token registry, or the one secret).
absl::Status Authorize(const HttpHandlerContext& context, const absl::StatusOr<std::string>& secret) {
  if (!secret.ok()) return absl::PermissionDeniedError("invalid join token");
  if (context.authorize) return context.authorize(*secret);
  if (!SecretMatches(context.join_secret, *secret)) {
    return absl::PermissionDeniedError("invalid join token");
  }
  return absl::OkStatus();
}

void Join(const HttpRequest& request, const std::shared_ptr<const HttpHandlerContext>& context,
          std::function<void(HttpResponse)> answer) {
  // Every attempt is reported (log, metrics) with its outcome.
  auto reply = [context, source = request.peer, answer = std::move(answer)](
                   HttpResponse r, std::string_view outcome, std::string_view detail) {
    if (context->on_join_attempt) {
      context->on_join_attempt({source, std::string(outcome), std::string(detail)});
    }
    answer(std::move(r));
  };
  auto refuse = [&reply](int status, std::string_view outcome, std::string_view why) {
    reply(ErrorResponse(status, why), outcome, why);
  };
  if (context->join_limiter) {
    const int64_t now = context->now_ms ? context->now_ms()
                                        : std::chrono::duration_cast<std::chrono::milliseconds>(
                                              std::chrono::steady_clock::now().time_since_epoch())
                                              .count();
    // Before anything else: guessing tokens (or making us verify CSRs) is slow.
    if (!context->join_limiter->Allow(request.peer, now)) {
      return refuse(429, "rate_limited", "too many join attempts; retry in a minute");
    }
  }
  json body = json::parse(request.body, nullptr, /*allow_exceptions=*/false);
  if (body.is_discarded()) return refuse(400, "invalid", "request body is not valid JSON");
  if (!body.is_object()) return refuse(400, "invalid", "request body must be a JSON object");

  // Only the member holding the CA key answers joins. Any other member says where to go rather
  // than "invalid join token", which would send the operator after a good token; it learns
  // nothing about the token either way.
  std::shared_ptr<const ClusterCa> ca = context->cas ? context->cas->Get() : nullptr;
  if (!ca || !ca->key || (!context->authorize && context->join_secret.empty())) {
    HttpResponse r = NotTheSigner();
    return reply(std::move(r), "not_signer", "");
  }
  // The secret is checked before anything else is examined, so a caller without it learns
  // nothing about what a valid request looks like, and costs us no CSR verification.
  absl::StatusOr<std::string> secret = StringField(body, "secret", kJoinSecretHexChars, true);
  if (absl::Status ok = Authorize(*context, secret); !ok.ok()) {
    return refuse(403, "bad_token", ToStd(ok.message()));
  }

  absl::StatusOr<std::string> csr_pem = StringField(body, "csr", 16 * 1024, true);
  absl::StatusOr<std::string> region = StringField(body, "region", kRegionBytesMax, true);
  absl::StatusOr<std::string> advertise = StringField(body, "advertise", kAdvertiseBytesMax, true);
  absl::StatusOr<std::string> node_name = StringField(body, "node_name", kNodeNameBytesMax, false);
  for (const auto* field : {&csr_pem, &region, &advertise, &node_name}) {
    if (!field->ok()) return refuse(400, "invalid", ToStd(field->status().message()));
  }
  const auto learner = body.find("learner");
  if (learner != body.end() && !learner->is_boolean()) {
    return refuse(400, "invalid", "field 'learner' must be true or false");
  }
  if (!IsHostPort(*advertise)) return refuse(400, "invalid", "field 'advertise' must be host:port");
  absl::StatusOr<X509ReqPtr> csr = CsrFromPem(*csr_pem);
  if (!csr.ok()) return refuse(400, "invalid", ToStd(csr.status().message()));
  absl::StatusOr<SubjectAltNames> sans = ValidateCsr(csr->get());
  if (!sans.ok()) return refuse(400, "invalid", ToStd(sans.status().message()));
  if (!context->join) return refuse(503, "not_signer", "this member does not accept joins");

  EVP_PKEY* csr_key = X509_REQ_get0_pubkey(csr->get());
  JoinRequest join{std::move(*region), std::move(*advertise), std::move(*node_name),
                   PublicKeyFingerprint(csr_key), JoinTokenHash(*secret),
                   learner != body.end() && learner->get<bool>()};
  // The CSR is owned by the callback: the handler may complete on another thread, later.
  std::shared_ptr<X509_REQ> shared_csr(csr->release(), X509ReqDeleter());
  context->join(
      join, [context, shared_csr, advertise = join.advertise,
             reply = std::move(reply)](absl::StatusOr<JoinDecision> decision) {
        if (!decision.ok()) {
          const std::string why(ToStd(decision.status().message()));
          return reply(ErrorResponse(HttpStatusFor(decision.status()), why),
                       absl::IsPermissionDenied(decision.status()) ? "bad_token" : "refused",
                       why);
        }
        // The names are ours to decide: the node's id and the address it advertised (which
        // the membership now records for it), nothing the CSR asked for. The CAs as they are
        // now: a rotation may have moved on while the join was ordered.
        std::shared_ptr<const ClusterCa> ca = context->cas->Get();
        absl::StatusOr<X509Ptr> cert =
            ca->key ? SignNodeCsr(shared_csr.get(), *ca, decision->node_id, HostSans({advertise}),
                                  context->node_cert_validity_seconds)
                    : absl::UnavailableError("this member no longer holds the CA key");
        if (!cert.ok()) {
          return reply(ErrorResponse(500, ToStd(cert.status().message())), "refused",
                       ToStd(cert.status().message()));
        }
        reply(JsonResponse(200, {{"node_id", decision->node_id},
                                 {"cert", CertToPem(cert->get())},
                                 {"ca", CasToPem(*ca)},
                                 {"cluster_id", decision->cluster_id},
                                 {"fn", decision->fn},
                                 {"fz", decision->fz},
                                 {"members", MembersJson(decision->members)},
                                 {"membership", decision->config},
                                 {"membership_previous", decision->previous_config}}),
              "accepted", StrCat("node ", decision->node_id));
      });
}

// The node a request's client certificate (of a cluster CA) names, with its other names in
// `hosts` when not null; else why not (`missing` when there is no certificate).
absl::StatusOr<uint64_t> CertifiedNode(const HttpRequest& request, const char* missing,
                                       SubjectAltNames* hosts) {
  if (!request.client_certified || !request.client_cert) {
    return absl::PermissionDeniedError(missing);
  }
  std::optional<uint64_t> id = NodeOfCert(request.client_cert.get(), hosts);
  if (!id) return absl::PermissionDeniedError("the client certificate names no node");
  return *id;
}

// POST /v1/renew {"csr": PEM}: a member renews its certificate before it expires, presenting
// it as its TLS client certificate. It gets one for the same node and names, valid from now.
HttpResponse Renew(const HttpRequest& request, const HttpHandlerContext& context) {
  SubjectAltNames hosts;
  absl::StatusOr<uint64_t> id = CertifiedNode(
      request, "a renewal needs the node's current certificate as its TLS client certificate",
      &hosts);
  if (!id.ok()) return ErrorResponse(403, ToStd(id.status().message()));
  if (!context.is_member || !context.is_member(*id)) {
    return ErrorResponse(403, StrCat("node ", *id, " is not a member"));
  }
  std::shared_ptr<const ClusterCa> ca = context.cas ? context.cas->Get() : nullptr;
  if (!ca || !ca->key) return NotTheSigner();
  json body = json::parse(request.body, nullptr, /*allow_exceptions=*/false);
  if (!body.is_object()) return ErrorResponse(400, "request body must be a JSON object");
  absl::StatusOr<std::string> csr_pem = StringField(body, "csr", 16 * 1024, true);
  if (!csr_pem.ok()) return ErrorResponse(400, ToStd(csr_pem.status().message()));
  absl::StatusOr<X509ReqPtr> csr = CsrFromPem(*csr_pem);
  if (!csr.ok()) return ErrorResponse(400, ToStd(csr.status().message()));
  if (absl::StatusOr<SubjectAltNames> valid = ValidateCsr(csr->get()); !valid.ok()) {
    return ErrorResponse(400, ToStd(valid.status().message()));
  }
  absl::StatusOr<X509Ptr> cert = SignNodeCsr(csr->get(), *ca, *id, hosts,
                                             context.node_cert_validity_seconds);
  if (!cert.ok()) return ErrorResponse(500, ToStd(cert.status().message()));
  return JsonResponse(200, {{"node_id", *id}, {"cert", CertToPem(cert->get())}});
}

// POST /v1/promote (no body): a learner, presenting its certificate, asks to vote. Answered
// once atlas.nodes ordered it (or at once when it votes already) with the membership.
void Promote(const HttpRequest& request, const HttpHandlerContext& context,
             std::function<void(HttpResponse)> answer) {
  absl::StatusOr<uint64_t> id = CertifiedNode(
      request, "a promotion needs the node's certificate as its TLS client certificate", nullptr);
  if (!id.ok()) return answer(ErrorResponse(403, ToStd(id.status().message())));
  if (!context.promote) return answer(ErrorResponse(503, "this member cannot order promotions"));
  context.promote(*id, [answer = std::move(answer)](absl::StatusOr<JoinDecision> d) {
    if (!d.ok()) {
      return answer(ErrorResponse(HttpStatusFor(d.status()), ToStd(d.status().message())));
    }
    answer(JsonResponse(200, {{"node_id", d->node_id},
                              {"membership", d->config},
                              {"membership_previous", d->previous_config}}));
  });
}

}  // namespace

ConsoleRoute ParseConsoleTarget(std::string_view target) {
  using Kind = ConsoleRoute::Kind;
  ConsoleRoute r;
  std::string_view path = target, query;
  if (size_t q = target.find('?'); q != std::string_view::npos) {
    path = target.substr(0, q);
    query = target.substr(q + 1);
  }
  r.path = std::string(path);
  if (path == "/" || path.starts_with("/console/")) {
    r.kind = Kind::kAsset;
  } else if (path == "/v1/status") {
    r.kind = Kind::kStatus;
  } else if (path == "/v1/tables") {
    r.kind = Kind::kTables;
    if (query.starts_with("limit=")) {
      const std::string_view digits = query.substr(6);
      uint64_t n = 0;
      auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), n);
      if (ec != std::errc() || end != digits.data() + digits.size() || n == 0) {
        r.error = "limit must be a positive number";
      }
      r.limit = static_cast<size_t>(std::min<uint64_t>(n, kConsoleTablesMax));
    }
  } else if (path.starts_with("/v1/tables/")) {
    r.kind = Kind::kTable;
    r.table = std::string(path.substr(11));
    r.error = socketproto::ValidateTableName(r.table);
  }
  return r;
}

std::string JoinTokenHash(std::string_view secret) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (EVP_Digest(secret.data(), secret.size(), md, &len, EVP_sha256(), nullptr) != 1) return "";
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (unsigned int i = 0; i < len; ++i) {
    out.push_back(kHex[md[i] >> 4]);
    out.push_back(kHex[md[i] & 0xf]);
  }
  return out;
}

std::string JsonError(std::string_view message) { return Dump({{"error", message}}); }

HttpResponse ErrorResponse(int status, std::string_view message) {
  HttpResponse r;
  r.status = status;
  r.body = JsonError(message);
  return r;
}

void HandleHttpRequest(const HttpRequest& request,
                       const std::shared_ptr<const HttpHandlerContext>& context,
                       std::function<void(HttpResponse)> reply) {
  // Exactly one reply even if something throws after replying (see the catch below).
  auto replied = std::make_shared<std::atomic<bool>>(false);
  auto once = [replied, reply = std::move(reply)](HttpResponse r) {
    if (!replied->exchange(true)) reply(std::move(r));
  };
  std::string_view path = request.target;
  path = path.substr(0, path.find('?'));
  try {
    if (path == "/health") {
      if (request.method != "GET") return once(MethodNotAllowed("GET"));
      return once(Health(*context));
    }
    if (path == "/metrics" && context->metrics) {
      if (request.method != "GET") return once(MethodNotAllowed("GET"));
      HttpResponse r;
      r.content_type = std::string(kPrometheusContentType);
      r.body = context->metrics();
      return once(std::move(r));
    }
    if (context->console && ParseConsoleTarget(request.target).kind != ConsoleRoute::Kind::kNone) {
      if (request.method != "GET") return once(MethodNotAllowed("GET"));
      if (context->console_access == ConsoleAccess::kOff) {
        return once(ErrorResponse(404, "the console is off on this node (console-access)"));
      }
      if (context->console_access == ConsoleAccess::kClientCert && !request.client_certified) {
        return once(ErrorResponse(
            403, "the console needs a client certificate of the cluster CA (console-access)"));
      }
      return context->console(request, once);
    }
    if (path == "/v1/join") {
      if (request.method != "POST") return once(MethodNotAllowed("POST"));
      return Join(request, context, once);
    }
    if (path == "/v1/renew") {
      if (request.method != "POST") return once(MethodNotAllowed("POST"));
      return once(Renew(request, *context));
    }
    if (path == "/v1/promote") {
      if (request.method != "POST") return once(MethodNotAllowed("POST"));
      return Promote(request, *context, once);
    }
    once(ErrorResponse(404, "no such endpoint"));
  } catch (const std::exception&) {
    // nlohmann and std::string throw on exhaustion; no input may take the server down.
    once(ErrorResponse(500, "internal error"));
  }
}

}  // namespace atlas::cluster
