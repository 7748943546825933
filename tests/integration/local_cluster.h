// A cluster of real atlasd processes on loopback for the integration tests (multinode_test,
// security_test): node 1 creates it, the others join over HTTPS with the token.
#pragma once

#include <chrono>
#include <fstream>
#include <iostream>
#include <memory>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "tests/integration/daemon.h"

namespace atlas::testing {

inline std::string ReadFile(const std::string& path) {
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  std::string s = ss.str();
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r')) s.pop_back();
  return s;
}

// How long a test waits for the reply to `line`. A move waits out the read lease its owner
// may hold (2 s by default) and then a steal with synced writes, which on a loaded CI machine
// has taken over 5 s; the daemon's own bound for it is 10 s (move_timeout), so wait past that
// and see the daemon's error rather than a client timeout.
inline std::chrono::milliseconds ReplyTimeout(std::string_view line) {
  return std::chrono::milliseconds(line.starts_with("TABLE MOVE") ? 15'000 : 5'000);
}

// N nodes on loopback with fixed ports (restarts keep their addresses).
class LocalCluster {
 public:
  explicit LocalCluster(std::vector<std::string> regions, std::vector<std::string> extra = {})
      : regions_(std::move(regions)), extra_(std::move(extra)) {}

  size_t size() const { return nodes_.size(); }

  // Starts node 1 (creates the cluster) or joins node i through node 1.
  bool Add(const std::string& token_override = "", const std::string& failpoints = "") {
    for (int attempt = 0;; ++attempt) {
      if (AddOnce(token_override, failpoints)) return true;
      // Why, for the failure's message: a join refused, a slow start, a port taken meanwhile.
      const std::string log = nodes_.back()->Log();
      std::cerr << "node " << nodes_.size() << " did not start; its log ends:\n"
                << log.substr(log.size() > 4000 ? log.size() - 4000 : 0) << "\n";
      // FreePort's port can be taken by another test's process before the daemon binds it:
      // then the node starts again on new ports (once).
      if (attempt > 0 || log.find("in use") == std::string::npos) return false;
      nodes_.pop_back();
      http_ports_.pop_back();
      peer_ports_.pop_back();
    }
  }

  bool AddOnce(const std::string& token_override, const std::string& failpoints) {
    const size_t i = nodes_.size() + 1;
    const std::string region = regions_[(i - 1) % regions_.size()];
    int peer = FreePort(), http = FreePort();
    std::vector<std::string> args = {"--region",      region,
                                     "--node-name",   "n" + std::to_string(i),
                                     "--listen",      "127.0.0.1:" + std::to_string(peer),
                                     "--http-listen", "127.0.0.1:" + std::to_string(http)};
    args.insert(args.end(), extra_.begin(), extra_.end());
    if (i > 1) {
      args.insert(args.end(), {"--join", "https://127.0.0.1:" + std::to_string(http_ports_[0])});
      if (token_override.empty()) {
        args.insert(args.end(), {"--join-token-file", nodes_.at(0)->data_dir() + "/join-token"});
      } else {
        args.insert(args.end(), {"--join-token", token_override});
      }
    }
    nodes_.push_back(std::make_unique<Daemon>(args));
    http_ports_.push_back(http);
    peer_ports_.push_back(peer);
    if (!failpoints.empty()) nodes_.back()->SetEnv("ATLAS_FAILPOINTS", failpoints);
    return nodes_.back()->Start();
  }

  Daemon& node(size_t i) { return *nodes_.at(i - 1); }
  // GET /health on node i's HTTPS port (curl; the certificate is the cluster's own).
  std::string Health(size_t i) {
    return atlas::testing::Run("curl -sk --max-time 5 https://127.0.0.1:" +
                               std::to_string(http_ports_.at(i - 1)) + "/health")
        .second;
  }
  int HttpPort(size_t i) const { return http_ports_.at(i - 1); }
  // The peer address node i listens on and advertises.
  std::string PeerAddress(size_t i) const {
    return "127.0.0.1:" + std::to_string(peer_ports_.at(i - 1));
  }
  std::string Token() { return ReadFile(nodes_.at(0)->data_dir() + "/join-token"); }

  // One command on node i over a fresh connection; "" when the node cannot be reached.
  // `timeout`: for the connection and the reply (0: ReplyTimeout(line)).
  std::string Call(size_t i, const std::string& line,
                   std::chrono::milliseconds timeout = std::chrono::milliseconds(0)) {
    auto c = node(i).Connect(timeout.count() > 0 ? timeout : ReplyTimeout(line));
    if (!c) return "";
    auto r = c->Call(line);
    return r.ok() ? Texts(*r) : "(call failed: " + std::string(r.status().message()) + ")";
  }

 private:
  std::vector<std::string> regions_;
  std::vector<std::string> extra_;
  std::vector<std::unique_ptr<Daemon>> nodes_;
  std::vector<int> http_ports_;
  std::vector<int> peer_ports_;
};

// Retries `fn` until it returns true or `timeout` passes.
template <typename Fn>
bool Eventually(Fn fn, std::chrono::milliseconds timeout = std::chrono::seconds(20)) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (fn()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return fn();
}

// The last `lines` lines of `text` (a daemon's log, for a failure's message).
inline std::string Tail(const std::string& text, size_t lines) {
  size_t p = text.size();
  for (size_t n = 0; p > 0 && n <= lines; ++n) p = text.rfind('\n', p - 1);
  return p == std::string::npos || p == 0 ? text : text.substr(p + 1);
}

inline int CountOf(const std::string& text, const std::string& needle) {
  int n = 0;
  for (size_t p = text.find(needle); p != std::string::npos; p = text.find(needle, p + 1)) ++n;
  return n;
}

// A counter or gauge from node `node`'s GET /metrics (-1 when absent).
inline double Metric(LocalCluster& c, size_t node, const std::string& name) {
  std::string m = Run("curl -sk --max-time 5 https://127.0.0.1:" +
                      std::to_string(c.HttpPort(node)) + "/metrics")
                      .second;
  size_t p = m.find("\n" + name + " ");
  return p == std::string::npos ? -1.0 : std::stod(m.substr(p + name.size() + 2));
}

inline std::string OwnerOf(LocalCluster& c, size_t via, const std::string& table) {
  std::string info = c.Call(via, "TABLE INFO " + table);
  size_t p = info.find("owner=");
  if (p == std::string::npos) return "";
  return info.substr(p + 6, info.find(' ', p) - p - 6);
}

// One command as `principal` ("" = none) on node `node`, over a fresh connection; `blob` is
// the payload of a KEY BLOB SET.
inline std::string As(LocalCluster& c, size_t node, const std::string& principal,
                      const std::string& line, std::string_view blob = {}) {
  auto conn = c.node(node).Connect(ReplyTimeout(line));
  if (!conn) return "(no connection)";
  if (!principal.empty()) {
    auto r = conn->Call("PRINCIPAL ASSUME " + principal);
    if (!r.ok() || Texts(*r) != "OK") return "(assume failed)";
  }
  auto r = line.starts_with("KEY BLOB SET") ? conn->Call(line, blob) : conn->Call(line);
  return r.ok() ? Texts(*r) : "(" + std::string(r.status().message()) + ")";
}

}  // namespace atlas::testing
