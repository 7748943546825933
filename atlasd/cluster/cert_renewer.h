// Renews this node's certificate before it expires (docs/security.md §Certificates). A thread
// looks at node.pem now and then; once less than a third of its lifetime is left, or when the
// cluster signs with another CA (a CA rotation), it gets a new one for the same node, names
// and key: signed here when this node holds the CA key,
// otherwise from the signer (`join`'s URL) over POST /v1/renew, authenticated by the
// certificate it replaces. The new node.pem replaces the old atomically; the peer transport
// reads it again by itself (PeerTlsConfig::watch_dir) and `on_renewed` tells the rest.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "atlasd/cluster/pki.h"

namespace atlas::cluster {

struct CertRenewerOptions {
  std::string data_dir;    // ca.pem, node.pem, node-key.pem, maybe ca-key.pem
  std::string signer_url;  // https://host:port of the member holding the CA key ("": none)
  int64_t validity_seconds = kNodeValiditySeconds;  // when this node signs its own
  // Called with the new certificate and the key after node.pem was replaced.
  std::function<void(X509* cert, EVP_PKEY* key)> on_renewed;
};

class CertRenewer {
 public:
  explicit CertRenewer(CertRenewerOptions options);
  ~CertRenewer();  // stops the thread
  CertRenewer(const CertRenewer&) = delete;
  CertRenewer& operator=(const CertRenewer&) = delete;

  void Start();
  // Looks again now (the cluster's signing CA changed: docs/security.md §Rotating the CA).
  void Wake() ABSL_LOCKS_EXCLUDED(mu_);
  // Renews if node.pem is in its last third or is not from the CA that signs now; how long to
  // wait before looking again.
  std::chrono::seconds CheckOnce();

 private:
  absl::Status Renew(X509* current, EVP_PKEY* key, const ClusterCa& ca);
  void Run();

  const CertRenewerOptions options_;
  absl::Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  bool woken_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

}  // namespace atlas::cluster
