#include "atlasd/cluster/ca_rotation.h"

#include <openssl/err.h>

#include <algorithm>
#include <filesystem>

#include "absl/strings/str_join.h"

#include "atlasd/cluster/join_client.h"
#include "consensus/membership.h"
#include "socketproto/command.h"
#include "socketproto/str.h"
#include "spdlog/spdlog.h"

namespace atlas::cluster {
namespace {

using Clock = std::chrono::steady_clock;

std::string PathIn(const std::string& dir, std::string_view file) {
  return dir + "/" + std::string(file);
}

// The key in `file` if it belongs to `cert`; null otherwise.
PkeyPtr KeyIn(const std::string& dir, std::string_view file, X509* cert) {
  const std::string path = PathIn(dir, file);
  if (!std::filesystem::exists(path)) return nullptr;
  absl::StatusOr<PkeyPtr> key = LoadKey(path);
  if (!key.ok()) {
    spdlog::warn("cannot read {}: {}", path, key.status().message());
    return nullptr;
  }
  const bool matches = X509_check_private_key(cert, key->get()) == 1;
  ERR_clear_error();
  return matches ? std::move(*key) : nullptr;
}

// The key in ca-key.pem or ca-next-key.pem that belongs to `cert`; null when neither does.
PkeyPtr KeyFor(const std::string& dir, X509* cert) {
  PkeyPtr key = KeyIn(dir, kCaKeyFile, cert);
  return key ? std::move(key) : KeyIn(dir, kCaNextKeyFile, cert);
}

}  // namespace

absl::StatusOr<ClusterCa> LoadClusterCa(const std::string& data_dir) {
  const std::string path = PathIn(data_dir, kCaCertFile);
  absl::StatusOr<std::string> pem = ReadSmallFile(path, 64 * 1024);
  if (!pem.ok()) return pem.status();
  absl::StatusOr<std::vector<X509Ptr>> certs = CertsFromPem(*pem, consensus::kTrustedCasMax);
  if (!certs.ok()) return absl::InvalidArgumentError(StrCat(path, ": ", certs.status().message()));
  ClusterCa ca;
  ca.cert = std::move(certs->front());
  for (size_t i = 1; i < certs->size(); ++i) ca.also_trusted.push_back(std::move((*certs)[i]));
  ca.key = KeyFor(data_dir, ca.cert.get());
  return ca;
}

std::string IssuerFingerprint(X509* cert, const ClusterCa& ca) {
  X509* issuer = IssuingCa(cert, ca);
  return issuer != nullptr ? Fingerprint(issuer) : "";
}

CaRotation::CaRotation(std::string data_dir, std::string cluster_id,
                       std::shared_ptr<TrustedCas> cas, std::function<void()> on_change)
    : data_dir_(std::move(data_dir)),
      cluster_id_(std::move(cluster_id)),
      cas_(std::move(cas)),
      on_change_(std::move(on_change)) {
  absl::MutexLock lock(&mu_);
  for (const std::string& fp : CaFingerprints(*cas_->Get())) trusted_since_[fp] = {};
}

CaRotation::Step CaRotation::StepOf(const ClusterCa& ca) {
  if (ca.also_trusted.empty()) return Step::kIdle;
  return CertNotBeforeMs(ca.cert.get()) < CertNotBeforeMs(ca.also_trusted.front().get())
             ? Step::kTrusting
             : Step::kRenewing;
}

void CaRotation::Adopt(const std::vector<std::string>& trust) {
  if (trust.empty()) return;
  absl::MutexLock lock(&mu_);
  auto next = std::make_shared<ClusterCa>();
  for (const std::string& text : trust) {
    absl::StatusOr<X509Ptr> cert = CertFromBase64(text);
    if (!cert.ok()) {
      spdlog::error("the cluster's trusted CAs hold an unreadable certificate: {}",
                    cert.status().message());
      return;
    }
    if (next->cert) {
      next->also_trusted.push_back(std::move(*cert));
    } else {
      next->cert = std::move(*cert);
    }
  }
  const std::vector<std::string> fps = CaFingerprints(*next);
  if (fps == CaFingerprints(*cas_->Get())) return;
  if (absl::Status s = WriteFileAtomic(PathIn(data_dir_, kCaCertFile), CasToPem(*next), 0644);
      !s.ok()) {
    spdlog::error("cannot write the cluster's trusted CAs to {}: {}", data_dir_, s.message());
    return;
  }
  next->key = KeyFor(data_dir_, next->cert.get());
  const std::string next_key = PathIn(data_dir_, kCaNextKeyFile);
  if (next->key && next->also_trusted.empty() && std::filesystem::exists(next_key)) {
    // Step 3 done: the new CA's key becomes ca-key.pem (a crash in between leaves two copies).
    if (SaveKey(PathIn(data_dir_, kCaKeyFile), next->key.get()).ok()) {
      std::error_code ignored;
      std::filesystem::remove(next_key, ignored);
    }
  }
  std::map<std::string, Clock::time_point> since;
  for (const std::string& fp : fps) {
    auto it = trusted_since_.find(fp);
    since[fp] = it != trusted_since_.end() ? it->second : Clock::now();
  }
  trusted_since_ = std::move(since);
  begun_ = false;
  spdlog::info("cluster CAs: signing {}, trusted {}", fps.front().substr(0, 16),
               absl::StrJoin(fps, ",", [](std::string* out, const std::string& fp) {
                 out->append(fp.substr(0, 16));
               }));
  cas_->Set(std::move(next));
  if (on_change_) on_change_();
}

absl::StatusOr<std::vector<std::string>> CaRotation::Begin() {
  absl::MutexLock lock(&mu_);
  std::shared_ptr<const ClusterCa> current = cas_->Get();
  if (!current->key) {
    return absl::FailedPreconditionError(
        "this node does not hold the cluster CA key: run CA ROTATE on the node that does");
  }
  if (StepOf(*current) != Step::kIdle || begun_) {
    return absl::FailedPreconditionError("a CA rotation is in progress (CA STATUS)");
  }
  // ca-next-key.pem is about to be overwritten: the signing key must be in ca-key.pem (a crash
  // during the last step's rename can leave it only in ca-next-key.pem).
  if (!KeyIn(data_dir_, kCaKeyFile, current->cert.get())) {
    if (absl::Status s = SaveKey(PathIn(data_dir_, kCaKeyFile), current->key.get()); !s.ok()) {
      return s;
    }
  }
  // A name of its own, so that no tool confuses the two CAs while both are trusted.
  const int64_t now_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                             std::chrono::system_clock::now().time_since_epoch())
                             .count();
  const std::string name =
      StrCat(cluster_id_, " ", socketproto::FormatRfc3339Ms(now_ms).substr(0, 19));
  // Younger than the old one by at least a second, even right after the cluster was made:
  // every node tells the two apart by their dates (StepOf).
  absl::StatusOr<ClusterCa> fresh =
      CreateClusterCa(name, CertNotBeforeMs(current->cert.get()) / 1000 + 1);
  if (!fresh.ok()) return fresh.status();
  if (absl::Status s = SaveKey(PathIn(data_dir_, kCaNextKeyFile), fresh->key.get()); !s.ok()) {
    return s;
  }
  begun_ = true;
  return std::vector<std::string>{CertToBase64(current->cert.get()),
                                  CertToBase64(fresh->cert.get())};
}

void CaRotation::Abandon() {
  absl::MutexLock lock(&mu_);
  begun_ = false;
}

RotationStatus CaRotation::Status(const std::vector<MemberCas>& members) {
  std::shared_ptr<const ClusterCa> ca = cas_->Get();
  RotationStatus out;
  out.trusted = CaFingerprints(*ca);
  out.signing = out.trusted.front();
  const Step step = StepOf(*ca);
  out.phase = step == Step::kIdle ? "idle" : step == Step::kTrusting ? "trusting" : "renewing";
  for (const MemberCas& m : members) {
    const bool ready =
        step == Step::kTrusting
            ? m.reported && std::count(m.trusted.begin(), m.trusted.end(), out.trusted[1]) > 0
            : m.cert_ca == out.signing;
    if (step != Step::kIdle && !ready) out.waiting.push_back(m.id);
  }
  return out;
}

bool CaRotation::InProgress() { return StepOf(*cas_->Get()) != Step::kIdle; }

std::optional<std::vector<std::string>> CaRotation::Next(const std::vector<MemberCas>& members) {
  std::shared_ptr<const ClusterCa> ca = cas_->Get();
  const Step step = StepOf(*ca);
  if (!ca->key || step == Step::kIdle || !Status(members).waiting.empty()) return std::nullopt;
  if (step == Step::kRenewing) return std::vector<std::string>{CertToBase64(ca->cert.get())};
  X509* fresh = ca->also_trusted.front().get();
  if (!KeyFor(data_dir_, fresh)) return std::nullopt;  // the new CA's key is not here
  return std::vector<std::string>{CertToBase64(fresh), CertToBase64(ca->cert.get())};
}

std::vector<std::string> CaRotation::SettledTrust() {
  absl::MutexLock lock(&mu_);
  std::vector<std::string> out;
  const Clock::time_point now = Clock::now();
  for (const auto& [fp, since] : trusted_since_) {
    if (since == Clock::time_point{} || now - since >= kSettle) out.push_back(fp);
  }
  return out;
}

}  // namespace atlas::cluster
