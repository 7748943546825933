// Test certificates: a cluster CA and node certificates made with the openssl command-line
// tool, so that tests of the transport do not depend on the code that issues certificates in
// production.
#pragma once

#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include <catch2/catch.hpp>

#include "atlasd/peer_transport.h"

namespace atlas::testing {

inline std::string Slurp(const std::string& path) {
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

class Pki {
 public:
  Pki() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "atlas-pki-XXXXXX").string();
    dir_ = mkdtemp(tmpl.data());
  }
  ~Pki() { std::filesystem::remove_all(dir_); }

  void MakeCa(const std::string& ca) {
    Sh("openssl ecparam -name prime256v1 -genkey -noout -out " + ca + ".key && "
       "openssl req -x509 -new -key " + ca + ".key -subj '/CN=atlasd cluster " + ca +
       "' -days 1 -out " + ca + ".pem");
  }
  // Node `id`'s certificate from `ca`; `days` -1 makes an expired one, `name` replaces the
  // node's name (CN and SAN) for certificates that name something else, `sans` the SANs
  // ("DNS:a,DNS:b"; default DNS:<name>).
  atlas::PeerTlsConfig Node(const std::string& ca, uint32_t id, int days = 1,
                            const std::string& name_override = "", const std::string& sans = "") {
    std::string n = ca + "-node" + std::to_string(id) + "-" + std::to_string(++issued_);
    std::string name = name_override.empty() ? atlas::NodeTlsName(id) : name_override;
    Sh("openssl ecparam -name prime256v1 -genkey -noout -out " + n + ".key && "
       "openssl req -new -key " + n + ".key -subj '/CN=" + name + "' -out " + n + ".csr && "
       "printf 'subjectAltName=" + (sans.empty() ? "DNS:" + name : sans) +
       "\\nbasicConstraints=CA:FALSE\\n"
       "extendedKeyUsage=serverAuth,clientAuth\\n' > " + n + ".ext && "
       "openssl x509 -req -in " + n + ".csr -CA " + ca + ".pem -CAkey " + ca + ".key "
       "-CAcreateserial -days " + std::to_string(days) + " -extfile " + n + ".ext -out " + n + ".pem");
    PeerTlsConfig tls;
    tls.ca_pem = Slurp(dir_ + "/" + ca + ".pem");
    tls.cert_pem = Slurp(dir_ + "/" + n + ".pem");
    tls.key_pem = Slurp(dir_ + "/" + n + ".key");
    return tls;
  }

 private:
  void Sh(const std::string& cmd) {
    REQUIRE(std::system(("cd " + dir_ + " && (" + cmd + ") >/dev/null 2>&1").c_str()) == 0);
  }
  std::string dir_;
  int issued_ = 0;
};

}  // namespace atlas::testing
