#include "atlasd/cluster/join_token.h"

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include <filesystem>

#include "atlasd/cluster/pki.h"
#include "socketproto/str.h"

namespace atlas::cluster {
namespace {

constexpr char kHex[] = "0123456789abcdef";

// Lower-cases `s` in place; false if it is not exactly `len` hex digits.
bool NormaliseHex(std::string* s, size_t len) {
  if (s->size() != len) return false;
  for (char& c : *s) {
    if (c >= 'A' && c <= 'F') c = static_cast<char>(c - 'A' + 'a');
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() &&
         (s.front() == ' ' || s.front() == '\t' || s.front() == '\n' || s.front() == '\r')) {
    s.remove_prefix(1);
  }
  while (!s.empty() &&
         (s.back() == ' ' || s.back() == '\t' || s.back() == '\n' || s.back() == '\r')) {
    s.remove_suffix(1);
  }
  return s;
}

}  // namespace

absl::StatusOr<JoinToken> NewJoinToken(std::string_view ca_fingerprint) {
  JoinToken token;
  token.ca_fingerprint = std::string(ca_fingerprint);
  if (!NormaliseHex(&token.ca_fingerprint, kFingerprintHexChars)) {
    return absl::InvalidArgumentError("CA fingerprint must be 64 hex digits (SHA-256)");
  }
  unsigned char bytes[kJoinSecretBytes];
  if (RAND_bytes(bytes, sizeof(bytes)) != 1) {
    return absl::InternalError(StrCat("drawing a join secret: ", OpenSslError()));
  }
  token.secret.reserve(kJoinSecretHexChars);
  for (unsigned char b : bytes) {
    token.secret.push_back(kHex[b >> 4]);
    token.secret.push_back(kHex[b & 0xf]);
  }
  OPENSSL_cleanse(bytes, sizeof(bytes));
  return token;
}

std::string FormatJoinToken(const JoinToken& token) {
  return StrCat(kJoinTokenPrefix, ".", token.secret, ".", token.ca_fingerprint);
}

absl::StatusOr<JoinToken> ParseJoinToken(std::string_view text) {
  text = Trim(text);
  size_t first = text.find('.');
  size_t second = first == std::string_view::npos ? first : text.find('.', first + 1);
  if (second == std::string_view::npos || text.find('.', second + 1) != std::string_view::npos) {
    return absl::InvalidArgumentError(
        "join token must look like atlas1.<64 hex secret>.<64 hex CA fingerprint>");
  }
  if (text.substr(0, first) != kJoinTokenPrefix) {
    return absl::InvalidArgumentError("join token does not start with 'atlas1.'");
  }
  JoinToken token;
  token.secret = std::string(text.substr(first + 1, second - first - 1));
  token.ca_fingerprint = std::string(text.substr(second + 1));
  if (!NormaliseHex(&token.secret, kJoinSecretHexChars)) {
    return absl::InvalidArgumentError("join token secret must be 64 hex digits");
  }
  if (!NormaliseHex(&token.ca_fingerprint, kFingerprintHexChars)) {
    return absl::InvalidArgumentError("join token CA fingerprint must be 64 hex digits");
  }
  return token;
}

bool SecretMatches(std::string_view expected, std::string_view presented) {
  if (expected.empty() || expected.size() != presented.size()) return false;
  return CRYPTO_memcmp(expected.data(), presented.data(), expected.size()) == 0;
}

absl::Status WriteJoinToken(const std::string& data_dir, const JoinToken& token) {
  std::string path = (std::filesystem::path(data_dir) / kJoinTokenFileName).string();
  std::string text = StrCat(FormatJoinToken(token), "\n");
  absl::Status s = WriteFileAtomic(path, text, 0600);
  OPENSSL_cleanse(text.data(), text.size());
  return s;
}

absl::StatusOr<JoinToken> ReadJoinToken(const std::string& data_dir) {
  std::string path = (std::filesystem::path(data_dir) / kJoinTokenFileName).string();
  absl::StatusOr<std::string> text = ReadSmallFile(path, 4096);
  if (!text.ok()) return text.status();
  absl::StatusOr<JoinToken> token = ParseJoinToken(*text);
  OPENSSL_cleanse(text->data(), text->size());
  if (!token.ok()) return absl::InvalidArgumentError(StrCat(path, ": ", token.status().message()));
  return token;
}

}  // namespace atlas::cluster
