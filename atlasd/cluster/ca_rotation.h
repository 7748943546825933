// The cluster CAs on disk, and rotating them while the cluster runs (docs/security.md
// §Rotating the CA).
//
// ca.pem holds every CA this node trusts, the signing one first. The node holding the CA key
// keeps it in ca-key.pem and, during a rotation, the new CA's in ca-next-key.pem; whichever
// matches the first certificate of ca.pem signs. The list is replicated in atlas.nodes
// (ClusterConfig::trust) and only the key holder changes it, in three steps:
//   1. [old, new]  every node trusts both (ca.pem rewritten; gRPC reads it again within 10 s);
//   2. [new, old]  once every member reports trusting new: new signs, every node renews now;
//   3. [new]       once every member's certificate is from new: old is trusted no more.
// A member that does not report holds the rotation at its step (CA STATUS names it).
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "atlasd/cluster/pki.h"

namespace atlas::cluster {

// The CAs this node trusts now, shared by the HTTPS server, the join and renewal handlers and
// the rotation. Readers take a snapshot; Set replaces it.
class TrustedCas {
 public:
  explicit TrustedCas(std::shared_ptr<const ClusterCa> ca) : ca_(std::move(ca)) {}
  std::shared_ptr<const ClusterCa> Get() const ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    return ca_;
  }
  void Set(std::shared_ptr<const ClusterCa> ca) ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    ca_ = std::move(ca);
  }

 private:
  mutable absl::Mutex mu_;
  std::shared_ptr<const ClusterCa> ca_ ABSL_GUARDED_BY(mu_);
};

// ca.pem (every CA, the signer first) and, on the key holder, the signer's key (ca-key.pem or
// ca-next-key.pem, whichever matches).
absl::StatusOr<ClusterCa> LoadClusterCa(const std::string& data_dir);
// The fingerprint of the CA of `ca` that issued `cert` ("" when none did).
std::string IssuerFingerprint(X509* cert, const ClusterCa& ca);

// What a member reports about its CAs (its ping answers).
struct MemberCas {
  uint64_t id = 0;
  bool reported = false;
  std::vector<std::string> trusted;  // fingerprints of the CAs it has trusted long enough
  std::string cert_ca;               // fingerprint of the CA of its certificate
};

struct RotationStatus {
  std::string phase;  // idle | trusting (step 1) | renewing (step 2)
  std::string signing;
  std::vector<std::string> trusted;
  std::vector<uint64_t> waiting;  // members the next step waits for
};

class CaRotation {
 public:
  // `on_change`: after a new list was adopted (ca.pem and `cas` replaced).
  CaRotation(std::string data_dir, std::string cluster_id, std::shared_ptr<TrustedCas> cas,
             std::function<void()> on_change);

  // ClusterConfig::trust as committed (empty: never rotated): adopts it when it differs.
  void Adopt(const std::vector<std::string>& trust) ABSL_LOCKS_EXCLUDED(mu_);
  // Step 1 on the key holder: a new CA, its key saved; the list to propose. Refused while one
  // is in progress, or begun and neither adopted nor Abandoned.
  absl::StatusOr<std::vector<std::string>> Begin() ABSL_LOCKS_EXCLUDED(mu_);
  // The list Begin returned was not ordered.
  void Abandon() ABSL_LOCKS_EXCLUDED(mu_);
  // The list the next step proposes, when every member is ready for it (key holder only).
  std::optional<std::vector<std::string>> Next(const std::vector<MemberCas>& members)
      ABSL_LOCKS_EXCLUDED(mu_);
  RotationStatus Status(const std::vector<MemberCas>& members) ABSL_LOCKS_EXCLUDED(mu_);
  // The CAs trusted long enough that gRPC has read them (what this node reports).
  std::vector<std::string> SettledTrust() ABSL_LOCKS_EXCLUDED(mu_);
  bool HoldsKey() { return cas_->Get()->key != nullptr; }
  bool InProgress();  // two CAs are trusted
  const std::shared_ptr<TrustedCas>& cas() const { return cas_; }

  // gRPC's certificate provider reads ca.pem again every 10 s (PeerTlsConfig).
  static constexpr std::chrono::seconds kSettle{12};

 private:
  enum class Step { kIdle, kTrusting, kRenewing };
  // From the list alone, so that every node tells the same: two CAs, the older one first, is
  // step 1.
  static Step StepOf(const ClusterCa& ca);

  const std::string data_dir_;
  const std::string cluster_id_;
  const std::shared_ptr<TrustedCas> cas_;
  const std::function<void()> on_change_;
  absl::Mutex mu_;  // serialises Adopt and Begin; guards the times below
  // When this node first trusted each CA (by fingerprint); at start, long ago.
  std::map<std::string, std::chrono::steady_clock::time_point> trusted_since_
      ABSL_GUARDED_BY(mu_);
  bool begun_ ABSL_GUARDED_BY(mu_) = false;  // Begin ran; its list not adopted yet
};

}  // namespace atlas::cluster
