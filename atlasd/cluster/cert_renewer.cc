#include "atlasd/cluster/cert_renewer.h"

#include <algorithm>

#include "atlasd/cluster/ca_rotation.h"
#include "atlasd/cluster/join_client.h"
#include "nlohmann/json.hpp"
#include "socketproto/str.h"
#include "spdlog/spdlog.h"

namespace atlas::cluster {
namespace {

int64_t NowSeconds() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::chrono::seconds Clamp(int64_t seconds) {
  return std::chrono::seconds(std::clamp<int64_t>(seconds, 1, 600));
}

}  // namespace

CertRenewer::CertRenewer(CertRenewerOptions options) : options_(std::move(options)) {}

CertRenewer::~CertRenewer() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  if (thread_.joinable()) thread_.join();
}

void CertRenewer::Start() { thread_ = std::thread([this] { Run(); }); }

void CertRenewer::Wake() {
  absl::MutexLock lock(&mu_);
  woken_ = true;
}

void CertRenewer::Run() {
  absl::MutexLock lock(&mu_);
  while (!stopping_) {
    woken_ = false;
    mu_.Unlock();
    const std::chrono::seconds wait = CheckOnce();
    mu_.Lock();
    auto stop_or_wake = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return stopping_ || woken_;
    };
    mu_.AwaitWithTimeout(absl::Condition(&stop_or_wake), absl::FromChrono(wait));
  }
}

std::chrono::seconds CertRenewer::CheckOnce() {
  const std::string dir = options_.data_dir + "/";
  absl::StatusOr<X509Ptr> cert = LoadCert(dir + std::string(kNodeCertFile));
  absl::StatusOr<PkeyPtr> key = LoadKey(dir + std::string(kNodeKeyFile));
  absl::StatusOr<ClusterCa> ca = LoadClusterCa(options_.data_dir);
  for (const absl::Status& s : {cert.status(), key.status(), ca.status()}) {
    if (s.ok()) continue;
    spdlog::warn("certificate renewal: cannot read this node's certificates and key: {}",
                 s.message());
    return Clamp(600);
  }
  // Its lifetime as signed (certificates are back-dated by kClockSkewSeconds).
  const int64_t not_after = CertNotAfterMs(cert->get()) / 1000;
  const int64_t lifetime =
      std::max<int64_t>(60, not_after - CertNotBeforeMs(cert->get()) / 1000 - kClockSkewSeconds);
  const int64_t left = not_after - NowSeconds();
  // During a CA rotation every node renews once the new CA signs (a certificate from an
  // untrusted CA would not verify at all: renewing could not help it).
  const bool other_ca = !VerifyChain(cert->get(), ca->cert.get()).ok() &&
                        VerifyToCluster(cert->get(), *ca).ok();
  if (left >= lifetime / 3 && !other_ca) {
    return Clamp(std::min(lifetime / 12, left - lifetime / 3 + 1));
  }
  if (absl::Status s = Renew(cert->get(), key->get(), *ca); !s.ok()) {
    spdlog::warn("certificate renewal: this node's certificate expires in {} s and was not "
                 "renewed: {}",
                 left, s.message());
    return Clamp(lifetime / 24);
  }
  return Clamp(lifetime / 12);
}

absl::Status CertRenewer::Renew(X509* current, EVP_PKEY* key, const ClusterCa& ca) {
  SubjectAltNames hosts;
  std::optional<uint64_t> id = NodeOfCert(current, &hosts);
  if (!id) return absl::FailedPreconditionError("this node's certificate names no node");
  // The same key: the new certificate and the key on disk always match.
  absl::StatusOr<NodeKeyAndCsr> csr = CreateNodeCsr(hosts, key);
  if (!csr.ok()) return csr.status();
  const std::string dir = options_.data_dir + "/";
  absl::StatusOr<X509Ptr> fresh;
  if (ca.key) {  // this node is the signer
    fresh = SignNodeCsr(csr->csr.get(), ca, *id, hosts, options_.validity_seconds);
  } else {
    if (options_.signer_url.empty()) {
      return absl::FailedPreconditionError(
          "no signer to ask: set `join` to the HTTPS URL of the member that holds the CA key");
    }
    const std::string body = nlohmann::json{{"csr", CsrToPem(csr->csr.get())}}.dump();
    absl::StatusOr<HttpResponse> r =
        PinnedHttpsRequest(options_.signer_url, CaFingerprints(ca), "POST", "/v1/renew", body,
                           std::chrono::seconds(30), current, key);
    if (!r.ok()) return r.status();
    nlohmann::json answer = nlohmann::json::parse(r->body, nullptr, false);
    if (r->status != 200 || !answer.is_object() || !answer.contains("cert") ||
        !answer["cert"].is_string()) {
      return absl::UnavailableError(
          StrCat(options_.signer_url, " refused (HTTP ", r->status, "): ", r->body.substr(0, 200)));
    }
    fresh = CertFromPem(answer["cert"].get<std::string>());
  }
  if (!fresh.ok()) return fresh.status();
  if (absl::Status s = VerifyChain(fresh->get(), ca.cert.get()); !s.ok()) return s;
  if (absl::Status s = SaveCert(dir + std::string(kNodeCertFile), fresh->get()); !s.ok()) {
    return s;
  }
  spdlog::info("certificate renewal: node {} has a new certificate, valid until {} (unix s)",
               *id, CertNotAfterMs(fresh->get()) / 1000);
  if (options_.on_renewed) options_.on_renewed(fresh->get(), key);
  return absl::OkStatus();
}

}  // namespace atlas::cluster
