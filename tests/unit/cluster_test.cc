// Cluster PKI, join tokens and the HTTPS bootstrap endpoint (docs/cluster-bootstrap.md):
// pure pieces directly, and the join exchange over real TLS on 127.0.0.1.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/x509v3.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <filesystem>
#include <optional>
#include <random>
#include <thread>

#include "atlasd/cluster/ca_rotation.h"
#include "atlasd/cluster/http_handler.h"
#include "atlasd/cluster/https_server.h"
#include "atlasd/cluster/join_client.h"
#include "atlasd/cluster/join_token.h"
#include "atlasd/cluster/members.h"
#include "atlasd/cluster/pki.h"
#include "boost/asio/executor_work_guard.hpp"
#include "boost/asio/io_context.hpp"
#include "nlohmann/json.hpp"
#include "tests/unit/temp_dir.h"

namespace atlas::cluster {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

ClusterCa NewCa(std::string_view id = "c0ffee") {
  absl::StatusOr<ClusterCa> ca = CreateClusterCa(id);
  REQUIRE(ca.ok());
  return std::move(*ca);
}

struct NodeCreds {
  PkeyPtr key;
  X509Ptr cert;
};

NodeCreds NewNode(const ClusterCa& ca, uint64_t id, const SubjectAltNames& sans = {}) {
  absl::StatusOr<NodeKeyAndCsr> csr = CreateNodeCsr(sans);
  REQUIRE(csr.ok());
  absl::StatusOr<X509Ptr> cert = SignNodeCsr(csr->csr.get(), ca, id, sans);
  REQUIRE(cert.ok());
  return {std::move(csr->key), std::move(*cert)};
}

unsigned FileMode(const std::string& path) {
  struct stat st {};
  REQUIRE(::stat(path.c_str(), &st) == 0);
  return st.st_mode & 0777;
}

// ---------------------------------------------------------------------------------------------
// PKI

TEST_CASE(
    "a node certificate signed by the cluster CA verifies against it and carries "
    "the names the signer chose",
    "[unit]") {
  ClusterCa ca = NewCa();
  CHECK(CertCommonName(ca.cert.get()) == "atlasd cluster c0ffee");
  CHECK(X509_check_ca(ca.cert.get()) != 0);
  SubjectAltNames sans{{"node1.example", "localhost"}, {"127.0.0.1", "::1"}};
  NodeCreds node = NewNode(ca, 7, sans);
  CHECK(VerifyChain(node.cert.get(), ca.cert.get()).ok());
  CHECK(VerifyChain(node.cert.get(), ca.cert.get(), Purpose::kServer).ok());
  CHECK(VerifyChain(node.cert.get(), ca.cert.get(), Purpose::kClient).ok());
  // The signer adds the node's name as a DNS name: Go's verifier (Prometheus) ignores the CN.
  SubjectAltNames with_name = sans;
  with_name.dns.insert(with_name.dns.begin(), "atlasd-node-7");
  CHECK(CertSans(node.cert.get()) == with_name);
  CHECK(CertCommonName(node.cert.get()) == "atlasd-node-7");
  CHECK(X509_check_ca(node.cert.get()) == 0);
  CHECK(X509_check_private_key(node.cert.get(), node.key.get()) == 1);
  // The CA itself is not a server certificate (no digitalSignature key usage).
  CHECK(!VerifyChain(ca.cert.get(), ca.cert.get(), Purpose::kServer).ok());
}

TEST_CASE("a certificate from another CA is rejected by VerifyChain", "[unit]") {
  ClusterCa ours = NewCa("ours");
  ClusterCa theirs = NewCa("theirs");
  NodeCreds stranger = NewNode(theirs, 1);
  absl::Status s = VerifyChain(stranger.cert.get(), ours.cert.get());
  CHECK(absl::IsPermissionDenied(s));
  // Same subject name, different key: still refused (the signature decides, not the name).
  ClusterCa twin = NewCa("ours");
  NodeCreds impostor = NewNode(twin, 1);
  CHECK(absl::IsPermissionDenied(VerifyChain(impostor.cert.get(), ours.cert.get())));
}

TEST_CASE("serial numbers are random and fingerprints are 64 lowercase hex digits", "[unit]") {
  ClusterCa ca = NewCa();
  NodeCreds a = NewNode(ca, 1);
  NodeCreds b = NewNode(ca, 1);
  CHECK(ASN1_INTEGER_cmp(X509_get_serialNumber(a.cert.get()),
                         X509_get_serialNumber(b.cert.get())) != 0);
  std::string fp = Fingerprint(ca.cert.get());
  CHECK(fp.size() == 64);
  CHECK(fp.find_first_not_of("0123456789abcdef") == std::string::npos);
  CHECK(fp != Fingerprint(a.cert.get()));
}

TEST_CASE("ValidateCsr refuses a CSR whose signature does not match its key", "[unit]") {
  absl::StatusOr<NodeKeyAndCsr> csr = CreateNodeCsr({});
  REQUIRE(csr.ok());
  CHECK(ValidateCsr(csr->csr.get()).ok());
  absl::StatusOr<NodeKeyAndCsr> other = CreateNodeCsr({});
  REQUIRE(other.ok());
  // Swap in another public key without re-signing: no proof of possession any more.
  REQUIRE(X509_REQ_set_pubkey(csr->csr.get(), other->key.get()) == 1);
  CHECK(absl::IsInvalidArgument(ValidateCsr(csr->csr.get()).status()));
  ClusterCa ca = NewCa();
  CHECK(!SignNodeCsr(csr->csr.get(), ca, 1, {}).ok());
}

TEST_CASE("a CSR that asks for other nodes' names gets a certificate naming only its own node",
          "[unit]") {
  ClusterCa ca = NewCa();
  // The review's attack: a join token holder asks to be called node 2 and node 1 as well.
  absl::StatusOr<NodeKeyAndCsr> csr =
      CreateNodeCsr({{"atlasd-node-2", "atlasd-node-1"}, {"127.0.0.1"}});
  REQUIRE(csr.ok());
  absl::StatusOr<X509Ptr> cert = SignNodeCsr(csr->csr.get(), ca, 3, HostSans({"10.1.2.3:7400"}));
  REQUIRE(cert.ok());
  CHECK(CertCommonName(cert->get()) == "atlasd-node-3");
  CHECK(CertSans(cert->get()) == SubjectAltNames{{"atlasd-node-3"}, {"10.1.2.3"}});
  // A host name in the node-name space is refused outright.
  CHECK(absl::IsInvalidArgument(
      SignNodeCsr(csr->csr.get(), ca, 3, SubjectAltNames{{"atlasd-node-2"}, {}}).status()));
  CHECK(HostSans({"atlasd-node-2:7400", "0.0.0.0:1", "[::1]:2", "db.example:3", "db.example:4"}) ==
        SubjectAltNames{{"db.example"}, {"::1"}});
}

TEST_CASE("a peer is the one node its certificate names, and a certificate naming two is no "
          "node", "[unit]") {
  using V = std::vector<std::string_view>;
  CHECK(NodeIdOfIdentity(V{"atlasd-node-7"}, V{"atlasd-node-7", "db.example"}) == 7u);
  CHECK(NodeIdOfIdentity(V{"atlasd-node-7"}, V{}) == 7u);
  CHECK_FALSE(NodeIdOfIdentity(V{"atlasd-node-3"}, V{"atlasd-node-2", "atlasd-node-1"}));
  CHECK_FALSE(NodeIdOfIdentity(V{"atlasd-node-3"}, V{"atlasd-node-3", "atlasd-node-2"}));
  CHECK_FALSE(NodeIdOfIdentity(V{"atlasd-node-3", "atlasd-node-2"}, V{}));
  for (std::string_view bad : {"atlasd-node-", "atlasd-node-0", "atlasd-node-07", "atlasd-node-x",
                               "atlasd-node-4294967296", "atlasd cluster c0ffee", ""}) {
    INFO(bad);
    CHECK_FALSE(NodeIdOfIdentity(V{bad}, V{}));
  }
  CHECK_FALSE(NodeIdOfIdentity(V{}, V{"atlasd-node-1"}));
}

TEST_CASE("ValidateCsr refuses keys other than ECDSA P-256/P-384", "[unit]") {
  PkeyPtr rsa(EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", size_t{2048}));
  REQUIRE(rsa);
  X509ReqPtr req(X509_REQ_new());
  REQUIRE(X509_REQ_set_pubkey(req.get(), rsa.get()) == 1);
  REQUIRE(X509_REQ_sign(req.get(), rsa.get(), EVP_sha256()) > 0);
  CHECK(absl::IsInvalidArgument(ValidateCsr(req.get()).status()));
}

TEST_CASE("SAN validation accepts host names and IP literals and nothing else", "[unit]") {
  CHECK(ValidateSans({{"a", "node-1.zone-a.example", "LOCALHOST"}, {"10.0.0.1", "fe80::1"}}).ok());
  for (const std::string& bad :
       std::vector<std::string>{"", "*.example", "-a.example", "a-.example", "a..b", "a.b.", "a b",
                                "a_b", std::string(64, 'a'), std::string("x\0y", 3)}) {
    INFO(bad);
    CHECK(!ValidateSans({{bad}, {}}).ok());
  }
  for (std::string bad : {"", "1.2.3", "256.1.1.1", "example.com", "1.2.3.4/8"}) {
    INFO(bad);
    CHECK(!ValidateSans({{}, {bad}}).ok());
  }
  SubjectAltNames many;
  for (size_t i = 0; i <= kSansMax; ++i) many.dns.push_back("n" + std::to_string(i));
  CHECK(!ValidateSans(many).ok());
  CHECK(!CreateNodeCsr({{"*.example"}, {}}).ok());
}

TEST_CASE("certificates, CSRs and keys survive PEM and files, and keys are written 0600",
          "[unit]") {
  testing::TempDir dir;
  ClusterCa ca = NewCa();
  const std::string cert_path = dir.path() + "/ca.pem";
  const std::string key_path = dir.path() + "/ca-key.pem";
  REQUIRE(SaveCert(cert_path, ca.cert.get()).ok());
  REQUIRE(SaveKey(key_path, ca.key.get()).ok());
  CHECK(FileMode(key_path) == 0600);
  CHECK(FileMode(cert_path) == 0644);
  absl::StatusOr<X509Ptr> cert = LoadCert(cert_path);
  absl::StatusOr<PkeyPtr> key = LoadKey(key_path);
  REQUIRE(cert.ok());
  REQUIRE(key.ok());
  CHECK(Fingerprint(cert->get()) == Fingerprint(ca.cert.get()));
  CHECK(X509_check_private_key(cert->get(), key->get()) == 1);

  absl::StatusOr<NodeKeyAndCsr> csr = CreateNodeCsr({{"n1"}, {}});
  REQUIRE(csr.ok());
  absl::StatusOr<X509ReqPtr> csr2 = CsrFromPem(CsrToPem(csr->csr.get()));
  REQUIRE(csr2.ok());
  CHECK(ValidateCsr(csr2->get())->dns == std::vector<std::string>{"n1"});

  CHECK(!CertFromPem("not a certificate").ok());
  CHECK(
      !CsrFromPem("-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n")
           .ok());
  CHECK(!KeyFromPem("").ok());
  CHECK(absl::IsNotFound(LoadCert(dir.path() + "/missing.pem").status()));
}

// ---------------------------------------------------------------------------------------------
// Join token

TEST_CASE("measured zone distances rank zones by the nearest live peer's RTT", "[unit]") {
  // Zone 7 has a peer at 80 ms and one at 3 ms; zone 9 one at 40 ms; own zone peers do not count.
  auto d = MeasuredZoneDistances(5, {{7, 80.0}, {9, 40.0}, {7, 3.0}, {5, 0.2}});
  CHECK(d.at({5, 5}) == 0);
  CHECK(d.at({5, 7}) == 3000);
  CHECK(d.at({7, 5}) == 3000);
  CHECK(d.at({5, 9}) == 40000);
  CHECK_FALSE(d.contains({7, 9}));  // not measured here
  // So the nearest quorum of an owner in zone 5 with Fz=1 takes zone 7, not zone 9.
  consensus::Topology t;
  t.zone_of = {{1, 5}, {2, 7}, {3, 9}};
  for (const auto& [pair, us] : d) t.distance[pair] = us;
  consensus::QuorumSystem qs(t, consensus::QuorumSpec{0, 1});
  CHECK(qs.Q2ZonesFor(5) == std::vector<consensus::ZoneId>{5, 7});
  t.distance[{5, 7}] = t.distance[{7, 5}] = 90000;  // zone 7 got slower
  CHECK(consensus::QuorumSystem(t, consensus::QuorumSpec{0, 1}).Q2ZonesFor(5) ==
        std::vector<consensus::ZoneId>{5, 9});
}

TEST_CASE("a join token survives formatting and parsing", "[unit]") {
  ClusterCa ca = NewCa();
  absl::StatusOr<JoinToken> token = NewJoinToken(Fingerprint(ca.cert.get()));
  REQUIRE(token.ok());
  std::string text = FormatJoinToken(*token);
  CHECK(text.size() == 6 + 1 + 64 + 1 + 64);
  CHECK(text.rfind("atlas1.", 0) == 0);
  absl::StatusOr<JoinToken> parsed = ParseJoinToken(text);
  REQUIRE(parsed.ok());
  CHECK(*parsed == *token);
  // Trailing newline from a file and upper-case hex are fine.
  std::string upper = text;
  for (size_t i = 7; i < upper.size(); ++i) upper[i] = static_cast<char>(std::toupper(upper[i]));
  CHECK(*ParseJoinToken(upper + "\n") == *token);
  // Two tokens never share a secret.
  CHECK(NewJoinToken(Fingerprint(ca.cert.get()))->secret != token->secret);
}

TEST_CASE("ParseJoinToken rejects anything but atlas1.<64 hex>.<64 hex>", "[unit]") {
  const std::string hex64(64, 'a');
  for (std::string bad :
       {std::string(""), std::string("atlas1"), "atlas1." + hex64, "atlas2." + hex64 + "." + hex64,
        "atlas1." + hex64 + "." + hex64 + ".", "atlas1." + hex64 + "." + hex64.substr(1),
        "atlas1." + hex64 + "x." + hex64, "atlas1." + hex64 + "." + hex64 + "a", "atlas1.." + hex64,
        "atlas1." + std::string(64, 'g') + "." + hex64, "atlas1." + hex64 + " ." + hex64}) {
    INFO(bad);
    absl::StatusOr<JoinToken> t = ParseJoinToken(bad);
    CHECK(absl::IsInvalidArgument(t.status()));
  }
  CHECK(!NewJoinToken("abc").ok());
}

TEST_CASE("secrets compare equal only when identical", "[unit]") {
  CHECK(SecretMatches("abcd", "abcd"));
  CHECK(!SecretMatches("abcd", "abce"));
  CHECK(!SecretMatches("abcd", "abc"));
  CHECK(!SecretMatches("", ""));  // an unset secret admits nobody
}

TEST_CASE("the join token file is written with mode 0600 and reads back", "[unit]") {
  testing::TempDir dir;
  ClusterCa ca = NewCa();
  absl::StatusOr<JoinToken> token = NewJoinToken(Fingerprint(ca.cert.get()));
  REQUIRE(token.ok());
  REQUIRE(WriteJoinToken(dir.path(), *token).ok());
  CHECK(FileMode(dir.path() + "/join-token") == 0600);
  absl::StatusOr<JoinToken> read = ReadJoinToken(dir.path());
  REQUIRE(read.ok());
  CHECK(*read == *token);
}

// ---------------------------------------------------------------------------------------------
// HandleHttpRequest, without sockets

struct PureFixture {
  PureFixture() {
    auto shared_ca = std::make_shared<ClusterCa>(NewCa());
    token = *NewJoinToken(Fingerprint(shared_ca->cert.get()));
    auto c = std::make_shared<HttpHandlerContext>();
    c->cas = std::make_shared<TrustedCas>(shared_ca);
    c->join_secret = token.secret;
    c->health = [] { return HealthInfo{3, "ACTIVE", "us-east", "", 0, ""}; };
    c->metrics = [] { return std::string("atlas_up 1\n"); };
    c->join = [this](const JoinRequest& r, JoinDone done) {
      ++joins;
      last = r;
      done(JoinDecision{42, "c0ffee", 1, 0, {{1, "us-east", "10.0.0.1", 7400}}, "m1", "m0"});
    };
    ctx = c;
  }
  HttpResponse Call(std::string method, std::string target, std::string body = "") {
    std::optional<HttpResponse> out;
    int calls = 0;
    HandleHttpRequest({std::move(method), std::move(target), std::move(body), "10.9.8.7"}, ctx,
                      [&](HttpResponse r) {
                        ++calls;
                        out = std::move(r);
                      });
    REQUIRE(calls == 1);
    return *out;
  }
  std::string JoinBody(std::string secret) {
    absl::StatusOr<NodeKeyAndCsr> csr = CreateNodeCsr({{"n2"}, {"10.0.0.2"}});
    REQUIRE(csr.ok());
    return json{{"secret", secret},
                {"csr", CsrToPem(csr->csr.get())},
                {"region", "eu"},
                {"advertise", "10.0.0.2:7400"},
                {"node_name", "n2"}}
        .dump();
  }
  JoinToken token;
  std::shared_ptr<const HttpHandlerContext> ctx;
  int joins = 0;
  JoinRequest last;
};

TEST_CASE("HandleHttpRequest routes, refuses wrong methods and unknown paths", "[unit]") {
  PureFixture f;
  HttpResponse health = f.Call("GET", "/health?verbose=1");
  CHECK(health.status == 200);
  CHECK(json::parse(health.body) ==
        json{{"node_id", 3}, {"status", "ACTIVE"}, {"zone", "us-east"}});
  HttpResponse metrics = f.Call("GET", "/metrics");
  CHECK(metrics.status == 200);
  CHECK(metrics.content_type == "text/plain; version=0.0.4");
  CHECK(metrics.body == "atlas_up 1\n");
  HttpResponse wrong = f.Call("GET", "/v1/join");
  CHECK(wrong.status == 405);
  CHECK(wrong.allow == "POST");
  CHECK(f.Call("POST", "/health").status == 405);
  // Not serving: 503 with the same body, so probes need only the status code.
  for (const char* status : {"ACTIVE", "CATCHING_UP", "JOINING", "LEFT"}) {
    auto c = std::make_shared<HttpHandlerContext>(*f.ctx);
    c->health = [status] { return HealthInfo{3, status, "us-east", "", 0, ""}; };
    f.ctx = c;
    HttpResponse h = f.Call("GET", "/health");
    INFO(status);
    CHECK(h.status == (std::string(status) == "ACTIVE" || std::string(status) == "CATCHING_UP"
                           ? 200
                           : 503));
    CHECK(json::parse(h.body).at("status") == status);
  }
  HttpResponse missing = f.Call("GET", "/nope");
  CHECK(missing.status == 404);
  CHECK(json::parse(missing.body).at("error").is_string());
}

TEST_CASE("console targets parse into what the console serves, and bad ones into an error",
          "[unit]") {
  using Kind = ConsoleRoute::Kind;
  CHECK(ParseConsoleTarget("/").kind == Kind::kAsset);
  CHECK(ParseConsoleTarget("/console/console.js?v=2").path == "/console/console.js");
  CHECK(ParseConsoleTarget("/v1/status").kind == Kind::kStatus);
  ConsoleRoute tables = ParseConsoleTarget("/v1/tables");
  CHECK((tables.kind == Kind::kTables && tables.limit == 20 && tables.error.empty()));
  CHECK(ParseConsoleTarget("/v1/tables?limit=7").limit == 7);
  CHECK(ParseConsoleTarget("/v1/tables?limit=100000").limit == kConsoleTablesMax);
  for (const char* bad : {"/v1/tables?limit=0", "/v1/tables?limit=-1", "/v1/tables?limit=7x",
                          "/v1/tables?limit="}) {
    INFO(bad);
    CHECK(ParseConsoleTarget(bad).error == "limit must be a positive number");
  }
  ConsoleRoute table = ParseConsoleTarget("/v1/tables/users?x");
  CHECK((table.kind == Kind::kTable && table.table == "users" && table.error.empty()));
  CHECK(ParseConsoleTarget("/v1/tables/a%2Fb").error ==
        "table name may only contain A-Z a-z 0-9 _ -");
  CHECK(ParseConsoleTarget("/v1/tables/").error == "empty table name");
  for (const char* other : {"/health", "/metrics", "/v1/join", "/v1/statusx", "/consolex"}) {
    CHECK(ParseConsoleTarget(other).kind == Kind::kNone);
  }
}

TEST_CASE("console-access: open serves anyone, client-cert only the CA's clients, off nobody",
          "[unit]") {
  PureFixture f;
  auto c = std::make_shared<HttpHandlerContext>(*f.ctx);
  std::vector<std::string> served;
  c->console = [&](const HttpRequest& r, std::function<void(HttpResponse)> reply) {
    served.push_back(r.target);
    reply(HttpResponse{});
  };
  auto call = [&](ConsoleAccess access, bool certified, std::string method = "GET") {
    c->console_access = access;
    std::optional<HttpResponse> out;
    HttpRequest r{std::move(method), "/v1/status", "", "10.9.8.7", certified};
    HandleHttpRequest(r, c, [&](HttpResponse resp) { out = std::move(resp); });
    return out->status;
  };
  CHECK(call(ConsoleAccess::kOpen, false) == 200);
  CHECK(call(ConsoleAccess::kClientCert, false) == 403);
  CHECK(call(ConsoleAccess::kClientCert, true) == 200);
  CHECK(call(ConsoleAccess::kOff, true) == 404);
  CHECK(call(ConsoleAccess::kOpen, false, "POST") == 405);  // read-only
  CHECK(served.size() == 2);
  // Health and metrics do not depend on the setting.
  c->console_access = ConsoleAccess::kOff;
  f.ctx = c;
  CHECK(f.Call("GET", "/health").status == 200);
  CHECK(f.Call("GET", "/metrics").status == 200);
}

TEST_CASE("POST /v1/renew signs a member's new certificate for the node and names its current one"
          " shows", "[unit]") {
  PureFixture f;
  auto c = std::make_shared<HttpHandlerContext>(*f.ctx);
  c->is_member = [](uint64_t id) { return id == 7; };
  c->node_cert_validity_seconds = 120;
  NodeCreds member = NewNode(*c->cas->Get(), 7, HostSans({"10.0.0.7:7400"}));
  NodeCreds stranger = NewNode(*c->cas->Get(), 8);
  // The CSR asks for other names: the signer keeps those of the certificate being replaced.
  absl::StatusOr<NodeKeyAndCsr> csr = CreateNodeCsr({{"evil.example"}, {}}, member.key.get());
  REQUIRE(csr.ok());
  const std::string body = json{{"csr", CsrToPem(csr->csr.get())}}.dump();
  auto renew = [&](X509* presented, std::string method = "POST") {
    std::shared_ptr<X509> cert;
    if (presented != nullptr && X509_up_ref(presented) == 1) cert.reset(presented, X509_free);
    std::optional<HttpResponse> out;
    HandleHttpRequest({std::move(method), "/v1/renew", body, "10.9.8.7", cert != nullptr, cert},
                      c, [&](HttpResponse r) { out = std::move(r); });
    return *out;
  };
  CHECK(renew(nullptr).status == 403);
  HttpResponse not_member = renew(stranger.cert.get());
  CHECK(not_member.status == 403);
  CHECK(json::parse(not_member.body).at("error") == "node 8 is not a member");
  CHECK(renew(member.cert.get(), "GET").status == 405);
  HttpResponse ok = renew(member.cert.get());
  REQUIRE(ok.status == 200);
  absl::StatusOr<X509Ptr> fresh = CertFromPem(json::parse(ok.body).at("cert").get<std::string>());
  REQUIRE(fresh.ok());
  CHECK(VerifyChain(fresh->get(), c->cas->Get()->cert.get()).ok());
  CHECK(CertCommonName(fresh->get()) == NodeCommonName(7));
  CHECK(CertSans(fresh->get()) == CertSans(member.cert.get()));
  const int64_t now_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                             std::chrono::system_clock::now().time_since_epoch())
                             .count();
  CHECK(std::abs(CertNotAfterMs(fresh->get()) - now_ms - 120'000) < 5'000);
  // A member without the CA key sends the node to the signer.
  auto no_key = std::make_shared<HttpHandlerContext>(*c);
  auto public_ca = std::make_shared<ClusterCa>();
  public_ca->cert.reset(X509_dup(c->cas->Get()->cert.get()));
  no_key->cas = std::make_shared<TrustedCas>(public_ca);
  c = no_key;
  CHECK(renew(member.cert.get()).status == 503);
}

TEST_CASE("POST /v1/promote: the node its certificate names asks to vote, and the handler's "
          "refusals map to HTTP",
          "[unit]") {
  PureFixture f;
  auto c = std::make_shared<HttpHandlerContext>(*f.ctx);
  std::vector<uint64_t> asked;
  c->promote = [&](uint64_t id, JoinDone done) {
    asked.push_back(id);
    if (id != 7) return done(absl::NotFoundError("node 8 is not a member"));
    JoinDecision d;
    d.node_id = id;
    d.config = "5\n8\n0\n0\n";
    done(d);
  };
  NodeCreds member = NewNode(*c->cas->Get(), 7);
  NodeCreds removed = NewNode(*c->cas->Get(), 8);
  auto promote = [&](X509* presented, std::string method = "POST") {
    std::shared_ptr<X509> cert;
    if (presented != nullptr && X509_up_ref(presented) == 1) cert.reset(presented, X509_free);
    std::optional<HttpResponse> out;
    HandleHttpRequest({std::move(method), "/v1/promote", "", "10.9.8.7", cert != nullptr, cert},
                      c, [&](HttpResponse r) { out = std::move(r); });
    return *out;
  };
  CHECK(promote(nullptr).status == 403);
  CHECK(promote(member.cert.get(), "GET").status == 405);
  CHECK(asked.empty());
  HttpResponse ok = promote(member.cert.get());
  REQUIRE(ok.status == 200);
  CHECK(json::parse(ok.body).at("membership") == "5\n8\n0\n0\n");
  HttpResponse gone = promote(removed.cert.get());
  CHECK(gone.status == 404);
  CHECK(json::parse(gone.body).at("error") == "node 8 is not a member");
  CHECK(asked == std::vector<uint64_t>{7, 8});
  c->promote = nullptr;
  CHECK(promote(member.cert.get()).status == 503);
}

TEST_CASE("HandleHttpRequest: joins need the secret, valid JSON and a valid CSR", "[unit]") {
  PureFixture f;
  HttpResponse ok = f.Call("POST", "/v1/join", f.JoinBody(f.token.secret));
  REQUIRE(ok.status == 200);
  CHECK(f.joins == 1);
  CHECK(f.last.region == "eu");
  CHECK(f.last.advertise == "10.0.0.2:7400");
  CHECK_FALSE(f.last.learner);  // a joiner that does not say it promotes itself votes at once
  json body = json::parse(ok.body);
  CHECK(body.at("node_id") == 42);
  CHECK(body.at("members").at(0).at("port") == 7400);
  absl::StatusOr<X509Ptr> cert = CertFromPem(body.at("cert").get<std::string>());
  REQUIRE(cert.ok());
  CHECK(VerifyChain(cert->get(), f.ctx->cas->Get()->cert.get()).ok());
  CHECK(CertCommonName(cert->get()) == "atlasd-node-42");
  // Its names are the signer's choice: the node's own and the address it advertised, not the
  // "n2" its CSR asked for.
  CHECK(CertSans(cert->get()) == SubjectAltNames{{"atlasd-node-42"}, {"10.0.0.2"}});

  std::string wrong_secret(64, '0');
  HttpResponse denied = f.Call("POST", "/v1/join", f.JoinBody(wrong_secret));
  CHECK(denied.status == 403);
  CHECK(json::parse(denied.body).at("error") == "invalid join token");

  for (std::string bad : {"", "{", "[]", "null", "{\"secret\": 5}", "\xff\xfe"}) {
    INFO(bad);
    HttpResponse r = f.Call("POST", "/v1/join", bad);
    CHECK((r.status == 400 || r.status == 403));
    CHECK(json::parse(r.body).contains("error"));
  }
  json with_bad_csr = json::parse(f.JoinBody(f.token.secret));
  with_bad_csr["csr"] = "garbage";
  CHECK(f.Call("POST", "/v1/join", with_bad_csr.dump()).status == 400);
  json with_bad_advertise = json::parse(f.JoinBody(f.token.secret));
  with_bad_advertise["advertise"] = "no-port";
  CHECK(f.Call("POST", "/v1/join", with_bad_advertise.dump()).status == 400);
  json with_number_region = json::parse(f.JoinBody(f.token.secret));
  with_number_region["region"] = 5;
  CHECK(f.Call("POST", "/v1/join", with_number_region.dump()).status == 400);
  CHECK(f.joins == 1);  // none of the refused requests reached the handler
  json learner = json::parse(f.JoinBody(f.token.secret));
  learner["learner"] = "yes";
  CHECK(f.Call("POST", "/v1/join", learner.dump()).status == 400);
  learner["learner"] = true;
  REQUIRE(f.Call("POST", "/v1/join", learner.dump()).status == 200);
  CHECK(f.last.learner);
}

TEST_CASE(
    "HandleHttpRequest: a member without the CA key, or a failing handler, refuses "
    "joins with a JSON error",
    "[unit]") {
  PureFixture f;
  auto c = std::make_shared<HttpHandlerContext>(*f.ctx);
  auto cert_only = std::make_shared<ClusterCa>();
  cert_only->cert.reset(X509_dup(f.ctx->cas->Get()->cert.get()));
  c->cas = std::make_shared<TrustedCas>(cert_only);
  f.ctx = c;
  CHECK(f.Call("POST", "/v1/join", f.JoinBody(f.token.secret)).status == 503);

  // What a daemon without the CA key really has: no secret either. It must point the joiner to
  // the signer, not call a good token invalid.
  auto no_secret = std::make_shared<HttpHandlerContext>(*c);
  no_secret->join_secret.clear();
  f.ctx = no_secret;
  HttpResponse elsewhere = f.Call("POST", "/v1/join", f.JoinBody(f.token.secret));
  CHECK(elsewhere.status == 503);
  CHECK_THAT(json::parse(elsewhere.body).at("error").get<std::string>(),
             Catch::Contains("join through the member that created the cluster"));

  auto c2 = std::make_shared<HttpHandlerContext>(*c);
  auto full = std::make_shared<ClusterCa>(NewCa());
  c2->cas = std::make_shared<TrustedCas>(full);
  c2->join = [](const JoinRequest&, JoinDone done) {
    done(absl::FailedPreconditionError("node name already taken"));
  };
  f.ctx = c2;
  HttpResponse r = f.Call("POST", "/v1/join", f.JoinBody(f.token.secret));
  CHECK(r.status == 409);
  CHECK(json::parse(r.body).at("error") == "node name already taken");
}

TEST_CASE("HandleHttpRequest answers every mangled join body with exactly one JSON reply",
          "[unit]") {
  PureFixture f;
  const std::string valid = f.JoinBody(f.token.secret);
  std::mt19937 rng(20261122);  // fixed seed: a failure replays
  for (int i = 0; i < 2000; ++i) {
    std::string body = valid;
    int edits = 1 + static_cast<int>(rng() % 8);
    for (int e = 0; e < edits && !body.empty(); ++e) {
      size_t at = rng() % body.size();
      switch (rng() % 3) {
        case 0:
          body[at] = static_cast<char>(rng());
          break;
        case 1:
          body.erase(at, 1 + rng() % 16);
          break;
        default:
          body.insert(at, std::string(1 + rng() % 4, static_cast<char>(rng())));
          break;
      }
    }
    HttpResponse r = f.Call("POST", "/v1/join", body);
    INFO(body);
    CHECK((r.status == 200 || r.status == 400 || r.status == 403));
    json parsed = json::parse(r.body, nullptr, /*allow_exceptions=*/false);
    CHECK(parsed.is_object());
  }
}

// ---------------------------------------------------------------------------------------------
// Over real HTTPS on loopback

// A one-node "cluster": CA, the node's certificate, a token, and the HTTPS server running on a
// background io_context thread.
class LoopbackCluster {
 public:
  explicit LoopbackCluster(HttpsServerOptions options = {}, std::string_view cluster_id = "c0ffee")
      : work_(ioc_.get_executor()) {
    ca_ = std::make_shared<ClusterCa>(NewCa(cluster_id));
    token_ = *NewJoinToken(Fingerprint(ca_->cert.get()));
    node_ = NewNode(*ca_, 1, {{"localhost"}, {"127.0.0.1"}});
    auto ctx = std::make_shared<HttpHandlerContext>();
    ctx->cas = std::make_shared<TrustedCas>(ca_);
    ctx->join_secret = token_.secret;
    ctx->health = [] { return HealthInfo{1, "ACTIVE", "local", "", 0, ""}; };
    ctx->join = [this](const JoinRequest& r, JoinDone done) {
      uint64_t id = 1 + joins_.fetch_add(1) + 1;
      // Like the real handler, answer later from another thread (consensus decides the id).
      std::thread([r, id, done = std::move(done)] {
        done(JoinDecision{id,
                          "c0ffee",
                          1,
                          0,
                          {{1, "local", "127.0.0.1", 7400}, {id, r.region, "127.0.0.1", 7401}},
                          "membership-of-" + std::to_string(id),
                          ""});
      }).detach();
    };
    options.listen = "127.0.0.1:0";
    absl::StatusOr<std::unique_ptr<HttpsServer>> server =
        HttpsServer::Start(ioc_, options, node_.cert.get(), node_.key.get(), ctx);
    REQUIRE(server.ok());
    server_ = std::move(*server);
    url_ = "https://127.0.0.1:" + std::to_string(server_->port());
    thread_ = std::thread([this] { ioc_.run(); });
  }
  ~LoopbackCluster() {
    server_->Stop();
    work_.reset();
    ioc_.stop();
    thread_.join();
    server_.reset();
  }

  JoinOptions Options(JoinToken token) const {
    JoinOptions o;
    o.url = url_;
    o.token = std::move(token);
    o.region = "eu";
    o.advertise = "127.0.0.1:7401";
    o.node_name = "n2";
    o.sans = {{"localhost"}, {"127.0.0.1"}};
    o.timeout = 10s;
    return o;
  }
  absl::StatusOr<HttpResponse> Request(std::string method, std::string target,
                                       std::string body = "") {
    return PinnedHttpsRequest(url_, token_.ca_fingerprint, method, target, body, 10s);
  }

  const JoinToken& token() const { return token_; }
  const ClusterCa& ca() const { return *ca_; }
  const std::string& url() const { return url_; }
  HttpsServer& server() { return *server_; }
  int joins() const { return joins_.load(); }

 private:
  boost::asio::io_context ioc_;
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work_;
  std::shared_ptr<ClusterCa> ca_;
  JoinToken token_;
  NodeCreds node_;
  std::unique_ptr<HttpsServer> server_;
  std::string url_;
  std::thread thread_;
  std::atomic<int> joins_{0};
};

// A plain TCP connection to 127.0.0.1:port with a receive timeout, for what no HTTPS client
// would send.
class RawConnection {
 public:
  explicit RawConnection(uint16_t port) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    REQUIRE(fd_ >= 0);
    timeval tv{5, 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0);
  }
  ~RawConnection() { ::close(fd_); }
  void Send(std::string_view data) {
    REQUIRE(::send(fd_, data.data(), data.size(), MSG_NOSIGNAL) ==
            static_cast<ssize_t>(data.size()));
  }
  // True when the server closed the connection (EOF or reset) before the receive timeout.
  bool ClosedByServer() {
    char buf[4096];
    while (true) {
      ssize_t n = ::recv(fd_, buf, sizeof(buf), 0);
      if (n == 0) return true;
      if (n < 0) return errno == ECONNRESET;
    }
  }

 private:
  int fd_ = -1;
};

TEST_CASE("a node joins over HTTPS and gets a certificate that verifies against the CA", "[unit]") {
  LoopbackCluster cluster;
  absl::StatusOr<JoinResult> joined = JoinCluster(cluster.Options(cluster.token()));
  REQUIRE(joined.ok());
  CHECK(joined->decision.node_id == 2);
  CHECK(joined->decision.cluster_id == "c0ffee");
  CHECK(joined->decision.fn == 1);
  CHECK(joined->decision.fz == 0);
  REQUIRE(joined->decision.members.size() == 2);
  CHECK(joined->decision.members[1] == Member{2, "eu", "127.0.0.1", 7401});
  CHECK(joined->decision.config == "membership-of-2");  // the replicated membership travels
  CHECK(Fingerprint(joined->ca.cert.get()) == cluster.token().ca_fingerprint);
  CHECK(VerifyChain(joined->cert.get(), cluster.ca().cert.get(), Purpose::kServer).ok());
  CHECK(VerifyChain(joined->cert.get(), cluster.ca().cert.get(), Purpose::kClient).ok());
  CHECK(X509_check_private_key(joined->cert.get(), joined->key.get()) == 1);
  CHECK(CertSans(joined->cert.get()) == SubjectAltNames{{"atlasd-node-2"}, {"127.0.0.1"}});

  testing::TempDir dir;
  REQUIRE(SaveJoinCredentials(dir.path(), *joined).ok());
  CHECK(FileMode(dir.path() + "/node-key.pem") == 0600);
  CHECK(FileMode(dir.path() + "/node.pem") == 0644);
  CHECK(Fingerprint(LoadCert(dir.path() + "/ca.pem")->get()) == cluster.token().ca_fingerprint);

  // One token admits several joins (docs/cluster-bootstrap.md §Reuse, expiry, revocation).
  absl::StatusOr<JoinResult> again = JoinCluster(cluster.Options(cluster.token()));
  REQUIRE(again.ok());
  CHECK(again->decision.node_id == 3);
}

TEST_CASE("a join with the wrong secret is refused with 403 and the server's message", "[unit]") {
  LoopbackCluster cluster;
  JoinToken wrong = cluster.token();
  wrong.secret = std::string(64, '0');
  absl::StatusOr<JoinResult> joined = JoinCluster(cluster.Options(wrong));
  REQUIRE(absl::IsPermissionDenied(joined.status()));
  CHECK_THAT(std::string(joined.status().message()),
             Catch::Contains("HTTP 403") && Catch::Contains("invalid join token"));
  CHECK(cluster.joins() == 0);
}

TEST_CASE(
    "a joiner refuses a server whose CA does not match the token, before sending the "
    "secret",
    "[unit]") {
  LoopbackCluster real;
  // An impostor with its own CA that would accept the real secret if it ever saw it.
  LoopbackCluster impostor({}, "impostor");
  JoinToken token = real.token();
  JoinOptions options = impostor.Options(token);
  absl::StatusOr<JoinResult> joined = JoinCluster(options);
  REQUIRE(absl::IsUnauthenticated(joined.status()));
  CHECK_THAT(std::string(joined.status().message()), Catch::Contains("fingerprint"));
  CHECK(impostor.joins() == 0);
  // Same for any request.
  absl::StatusOr<HttpResponse> health =
      PinnedHttpsRequest(impostor.url(), token.ca_fingerprint, "GET", "/health", "", 10s);
  CHECK(absl::IsUnauthenticated(health.status()));
}

TEST_CASE("a joiner refuses a server that presents the pinned CA with a leaf it did not sign",
          "[unit]") {
  LoopbackCluster real;
  // The impostor copies the real CA certificate (public) into its chain, but can only sign its
  // leaf with its own CA.
  ClusterCa other = NewCa("impostor");
  NodeCreds leaf = NewNode(other, 1, {{}, {"127.0.0.1"}});
  auto ctx = std::make_shared<HttpHandlerContext>();
  auto presented = std::make_shared<ClusterCa>();
  presented->cert.reset(X509_dup(real.ca().cert.get()));
  ctx->cas = std::make_shared<TrustedCas>(presented);
  ctx->join_secret = real.token().secret;
  std::atomic<int> requests{0};
  ctx->health = [&] {
    ++requests;
    return HealthInfo{};
  };
  boost::asio::io_context ioc;
  absl::StatusOr<std::unique_ptr<HttpsServer>> server =
      HttpsServer::Start(ioc, {}, leaf.cert.get(), leaf.key.get(), ctx);
  REQUIRE(server.ok());
  std::thread thread([&] { ioc.run(); });
  absl::StatusOr<HttpResponse> r =
      PinnedHttpsRequest("https://127.0.0.1:" + std::to_string((*server)->port()),
                         real.token().ca_fingerprint, "GET", "/health", "", 10s);
  (*server)->Stop();
  ioc.stop();
  thread.join();
  CHECK(absl::IsUnauthenticated(r.status()));
  CHECK_THAT(std::string(r.status().message()), Catch::Contains("does not chain"));
  CHECK(requests == 0);
}

TEST_CASE(
    "the HTTPS port serves /health, and answers unknown paths, malformed JSON and "
    "oversized bodies with JSON errors",
    "[unit]") {
  HttpsServerOptions options;
  options.body_bytes_max = 4096;
  LoopbackCluster cluster(options);

  absl::StatusOr<HttpResponse> health = cluster.Request("GET", "/health");
  REQUIRE(health.ok());
  CHECK(health->status == 200);
  CHECK(health->content_type == "application/json");
  CHECK(json::parse(health->body) == json{{"node_id", 1}, {"status", "ACTIVE"}, {"zone", "local"}});

  absl::StatusOr<HttpResponse> missing = cluster.Request("GET", "/v2/nothing");
  REQUIRE(missing.ok());
  CHECK(missing->status == 404);
  CHECK(json::parse(missing->body).contains("error"));

  absl::StatusOr<HttpResponse> method = cluster.Request("DELETE", "/v1/join");
  REQUIRE(method.ok());
  CHECK(method->status == 405);
  CHECK(method->allow == "POST");

  absl::StatusOr<HttpResponse> malformed = cluster.Request("POST", "/v1/join", "{\"secret\":");
  REQUIRE(malformed.ok());
  CHECK(malformed->status == 400);
  CHECK(json::parse(malformed->body).contains("error"));

  absl::StatusOr<HttpResponse> big =
      cluster.Request("POST", "/v1/join", std::string(64 * 1024, 'x'));
  INFO(big.status().ToString());
  REQUIRE(big.ok());
  CHECK(big->status == 413);
  CHECK(json::parse(big->body).contains("error"));

  // Still serving after all of that.
  CHECK(cluster.Request("GET", "/health")->status == 200);
}

TEST_CASE("plaintext HTTP on the TLS port is dropped and the server keeps serving", "[unit]") {
  LoopbackCluster cluster;
  for (int i = 0; i < 3; ++i) {
    RawConnection raw(cluster.server().port());
    raw.Send("GET /health HTTP/1.1\r\nHost: x\r\n\r\n");
    CHECK(raw.ClosedByServer());
  }
  RawConnection garbage(cluster.server().port());
  garbage.Send(std::string(1000, '\x16'));
  CHECK(garbage.ClosedByServer());
  absl::StatusOr<HttpResponse> health = cluster.Request("GET", "/health");
  REQUIRE(health.ok());
  CHECK(health->status == 200);
}

TEST_CASE("idle connections time out, and over the limit the oldest idle one gives way",
          "[unit]") {
  HttpsServerOptions options;
  options.handshake_timeout = 1s;
  options.io_timeout = 1s;
  options.connections_max = 2;
  LoopbackCluster cluster(options);
  auto start = std::chrono::steady_clock::now();
  {
    RawConnection a(cluster.server().port());
    for (int i = 0; i < 200 && cluster.server().connections() < 1; ++i) {
      std::this_thread::sleep_for(10ms);
    }
    RawConnection b(cluster.server().port());
    for (int i = 0; i < 200 && cluster.server().connections() < 2; ++i) {
      std::this_thread::sleep_for(10ms);
    }
    REQUIRE(cluster.server().connections() == 2);
    RawConnection c(cluster.server().port());
    CHECK(a.ClosedByServer());  // evicted at once for c, long before its handshake timeout
    CHECK(std::chrono::steady_clock::now() - start < 1s);
    CHECK(b.ClosedByServer());  // the handshake timeout
    CHECK(c.ClosedByServer());
  }
  for (int i = 0; i < 200 && cluster.server().connections() > 0; ++i) {
    std::this_thread::sleep_for(10ms);
  }
  CHECK(cluster.server().connections() == 0);
  CHECK(cluster.Request("GET", "/health")->status == 200);
}

TEST_CASE("one source cannot hold more than its share of the HTTPS port", "[unit]") {
  HttpsServerOptions options;
  options.connections_per_source_max = 3;
  LoopbackCluster cluster(options);
  std::vector<std::unique_ptr<RawConnection>> idle;
  for (int i = 0; i < 10; ++i) {
    idle.push_back(std::make_unique<RawConnection>(cluster.server().port()));
  }
  for (int i = 0; i < 200 && cluster.server().connections() > 3; ++i) {
    std::this_thread::sleep_for(10ms);
  }
  CHECK(cluster.server().connections() <= 3);
  CHECK(cluster.Request("GET", "/health")->status == 200);  // and a real client still gets in
}

TEST_CASE("PinnedHttpsRequest reports bad URLs and unreachable servers as errors", "[unit]") {
  std::string fp(64, 'a');
  CHECK(absl::IsInvalidArgument(
      PinnedHttpsRequest("http://127.0.0.1:1", fp, "GET", "/", "", 1s).status()));
  CHECK(absl::IsInvalidArgument(
      PinnedHttpsRequest("https://127.0.0.1:1/x", fp, "GET", "/", "", 1s).status()));
  CHECK(absl::IsInvalidArgument(
      PinnedHttpsRequest("https://127.0.0.1", fp, "GET", "/", "", 1s).status()));
  // Port 1 on loopback: nothing listens, connection refused.
  CHECK(absl::IsUnavailable(
      PinnedHttpsRequest("https://127.0.0.1:1", fp, "GET", "/", "", 1s).status()));
}

// CA rotation (atlasd/cluster/ca_rotation.h), on the key holder's files: each step waits for
// every member, ca.pem follows the replicated list, the new key takes the old one's place.
TEST_CASE("a CA rotation moves on only when every member is ready, and ca.pem and the keys "
          "follow the list",
          "[unit]") {
  testing::TempDir dir;
  absl::StatusOr<ClusterCa> first = CreateClusterCa("c1");
  REQUIRE(first.ok());
  REQUIRE(SaveCert(dir.path() + "/ca.pem", first->cert.get()).ok());
  REQUIRE(SaveKey(dir.path() + "/ca-key.pem", first->key.get()).ok());
  absl::StatusOr<ClusterCa> loaded = LoadClusterCa(dir.path());
  REQUIRE(loaded.ok());
  REQUIRE(loaded->key);  // ca-key.pem matches ca.pem: this node signs
  auto cas = std::make_shared<TrustedCas>(std::make_shared<ClusterCa>(std::move(*loaded)));
  int changes = 0;
  CaRotation rotation(dir.path(), "c1", cas, [&] { ++changes; });
  const std::string old_fp = Fingerprint(first->cert.get());
  CHECK(rotation.Status({}).phase == "idle");

  // Step 1: both trusted, the old one still signs, nothing to do until every member trusts new.
  absl::StatusOr<std::vector<std::string>> step1 = rotation.Begin();
  REQUIRE(step1.ok());
  REQUIRE(step1->size() == 2);
  // One at a time, from the moment it begins (a second would replace ca-next-key.pem).
  CHECK(absl::IsFailedPrecondition(rotation.Begin().status()));
  rotation.Adopt(*step1);
  CHECK(changes == 1);
  CHECK(absl::IsFailedPrecondition(rotation.Begin().status()));
  const RotationStatus trusting = rotation.Status({});
  REQUIRE(trusting.phase == "trusting");
  REQUIRE(trusting.signing == old_fp);
  const std::string new_fp = trusting.trusted.at(1);
  CHECK(LoadClusterCa(dir.path())->also_trusted.size() == 1);
  // Just adopted: gRPC may not have read it yet, so this node does not report it.
  CHECK(rotation.SettledTrust() == std::vector<std::string>{old_fp});
  MemberCas me{1, true, {old_fp, new_fp}, old_fp};
  MemberCas lagging{2, true, {old_fp}, old_fp};
  MemberCas silent{3, false, {}, ""};
  CHECK_FALSE(rotation.Next({me, lagging, silent}));
  CHECK(rotation.Status({me, lagging, silent}).waiting == std::vector<uint64_t>{2, 3});
  lagging.trusted.push_back(new_fp);
  silent = {3, true, {new_fp, old_fp}, old_fp};
  std::optional<std::vector<std::string>> step2 = rotation.Next({me, lagging, silent});
  REQUIRE(step2);

  // Step 2: the new CA signs with ca-next-key.pem; the old is only trusted; done when every
  // member's certificate is from the new one.
  rotation.Adopt(*step2);
  CHECK(rotation.Status({}).phase == "renewing");
  CHECK(rotation.Status({}).signing == new_fp);
  CHECK(IssuerFingerprint(first->cert.get(), *cas->Get()) == old_fp);  // still trusted
  REQUIRE(cas->Get()->key);
  CHECK(LoadClusterCa(dir.path())->key);  // found in ca-next-key.pem
  me.cert_ca = lagging.cert_ca = new_fp;
  CHECK_FALSE(rotation.Next({me, lagging, silent}));
  CHECK(rotation.Status({me, lagging, silent}).waiting == std::vector<uint64_t>{3});
  silent.cert_ca = new_fp;
  std::optional<std::vector<std::string>> step3 = rotation.Next({me, lagging, silent});
  REQUIRE(step3);
  REQUIRE(step3->size() == 1);

  // Step 3: the old CA is trusted no more; its key is gone, the new one is ca-key.pem.
  rotation.Adopt(*step3);
  CHECK(rotation.Status({}).phase == "idle");
  CHECK(rotation.Status({}).trusted == std::vector<std::string>{new_fp});
  CHECK_FALSE(IssuingCa(first->cert.get(), *cas->Get()));
  CHECK_FALSE(std::filesystem::exists(dir.path() + "/ca-next-key.pem"));
  absl::StatusOr<ClusterCa> after = LoadClusterCa(dir.path());
  REQUIRE(after.ok());
  CHECK(Fingerprint(after->cert.get()) == new_fp);
  CHECK(after->key);
  CHECK(after->also_trusted.empty());
  rotation.Adopt(*step3);  // the same list again: nothing to do
  CHECK(changes == 3);
  // A crash inside step 3's rename leaves the signing key only in ca-next-key.pem (and the old
  // one in ca-key.pem): the next rotation moves it to ca-key.pem before it writes a new
  // ca-next-key.pem, so the signing key survives.
  REQUIRE(SaveKey(dir.path() + "/ca-next-key.pem", after->key.get()).ok());
  REQUIRE(SaveKey(dir.path() + "/ca-key.pem", first->key.get()).ok());
  absl::StatusOr<ClusterCa> crashed = LoadClusterCa(dir.path());
  REQUIRE(crashed.ok());
  REQUIRE(crashed->key);  // found in ca-next-key.pem
  CaRotation restarted(dir.path(), "c1",
                       std::make_shared<TrustedCas>(std::make_shared<ClusterCa>(
                           std::move(*crashed))),
                       nullptr);
  REQUIRE(restarted.Begin().ok());
  absl::StatusOr<PkeyPtr> kept = LoadKey(dir.path() + "/ca-key.pem");
  REQUIRE(kept.ok());
  CHECK(X509_check_private_key(after->cert.get(), kept->get()) == 1);
  // A node without the CA key cannot start one.
  auto public_only = std::make_shared<ClusterCa>();
  public_only->cert.reset(X509_dup(after->cert.get()));
  testing::TempDir other;
  CaRotation member(other.path(), "c1", std::make_shared<TrustedCas>(public_only), nullptr);
  CHECK(absl::IsFailedPrecondition(member.Begin().status()));
  CHECK_FALSE(member.Next({me}));
}

}  // namespace
}  // namespace atlas::cluster
