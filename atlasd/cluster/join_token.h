// The join token: what an operator hands to a new node so it can join the cluster.
// Format and threat model: docs/cluster-bootstrap.md §Join token.
//
//   atlas1.<secret: 64 lowercase hex = 32 random bytes>.<CA fingerprint: 64 lowercase hex>
//
// The secret authenticates the joiner to the cluster; the fingerprint (SHA-256 of the cluster
// CA certificate's DER) authenticates the cluster to the joiner (kubeadm's
// --discovery-token-ca-cert-hash approach). Hex rather than base64 keeps the token free of
// characters that shells, URLs or YAML treat specially, and makes parsing trivially strict.
#pragma once

#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace atlas::cluster {

inline constexpr std::string_view kJoinTokenPrefix = "atlas1";
inline constexpr size_t kJoinSecretBytes = 32;
inline constexpr size_t kJoinSecretHexChars = 2 * kJoinSecretBytes;
inline constexpr size_t kFingerprintHexChars = 64;  // SHA-256
inline constexpr std::string_view kJoinTokenFileName = "join-token";

struct JoinToken {
  std::string secret;          // kJoinSecretHexChars lowercase hex
  std::string ca_fingerprint;  // kFingerprintHexChars lowercase hex

  bool operator==(const JoinToken&) const = default;
};

// A token with a fresh secret from RAND_bytes for the CA with this fingerprint.
absl::StatusOr<JoinToken> NewJoinToken(std::string_view ca_fingerprint);

// "atlas1.<secret>.<fingerprint>".
std::string FormatJoinToken(const JoinToken& token);

// Strict: exactly the format above (surrounding whitespace, e.g. from a file, is trimmed;
// upper-case hex is accepted and normalised). InvalidArgument says what is wrong without
// echoing the token, which is a credential.
absl::StatusOr<JoinToken> ParseJoinToken(std::string_view text);

// Compares a presented secret with the expected one in time independent of where they differ
// (CRYPTO_memcmp), so response timing does not leak the secret byte by byte. The length is not
// secret (it is fixed by the format), so a length mismatch returns early.
bool SecretMatches(std::string_view expected, std::string_view presented);

// Writes the formatted token to <data_dir>/join-token with mode 0600, atomically.
absl::Status WriteJoinToken(const std::string& data_dir, const JoinToken& token);
absl::StatusOr<JoinToken> ReadJoinToken(const std::string& data_dir);

}  // namespace atlas::cluster
