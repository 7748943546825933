// atlasd: the composition root. Wires config, RocksDB, the replicator, the executor and the
// socket server together, and owns process lifecycle (signals, graceful shutdown).
#include <sys/stat.h>
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <filesystem>
#include <random>
#include <thread>

#include "socketproto/str.h"
#include "atlasd/config.h"
#include "atlasd/executor.h"
#include "atlasd/logging.h"
#include "atlasd/paxos_replicator.h"
#include "boost/asio.hpp"
#include "socketproto/server.h"
#include "spdlog/spdlog.h"
#include "storage/keys.h"
#include "storage/store.h"

namespace {

// Node identity is created once, on first start, and kept in node metadata.
absl::StatusOr<std::string> LoadOrCreateClusterId(atlas::storage::Store* store) {
  const std::string key = atlas::storage::NodeMetaKey("cluster_id");
  auto existing = store->Get(atlas::storage::Cf::kMeta, key);
  if (!existing.ok()) return existing.status();
  if (existing->has_value()) return **existing;
  std::random_device rd;
  std::string id = StrCat(absl::Hex(rd(), absl::kZeroPad8), absl::Hex(rd(), absl::kZeroPad8));
  rocksdb::WriteBatch batch;
  batch.Put(store->cf(atlas::storage::Cf::kMeta), key, id);
  batch.Put(store->cf(atlas::storage::Cf::kMeta), atlas::storage::NodeMetaKey("node_id"), "1");
  absl::Status s = store->Write(&batch, /*sync=*/true);
  if (!s.ok()) return s;
  spdlog::info("created cluster {} (node id 1)", id);
  return id;
}

std::pair<std::string, int> SplitHostPort(const std::string& addr) {
  size_t colon = addr.rfind(':');
  if (colon == std::string::npos) return {addr, 0};
  try {
    return {addr.substr(0, colon), std::stoi(addr.substr(colon + 1))};
  } catch (const std::exception&) {
    return {addr.substr(0, colon), 0};
  }
}

}  // namespace

int main(int argc, char** argv) {
  auto parsed = atlas::ParseConfig(argc, argv);
  if (!parsed.ok()) {
    if (absl::IsCancelled(parsed.status())) {
      std::fputs(std::string(parsed.status().message()).c_str(), stdout);
      return 0;
    }
    std::fprintf(stderr, "atlasd: %s\nRun 'atlasd --help' for the settings.\n",
                 std::string(parsed.status().message()).c_str());
    return 2;
  }
  atlas::Config config = *parsed;
  atlas::SetupLogging(config.log_level, config.log_format);
  std::signal(SIGPIPE, SIG_IGN);

  if (!config.join.empty()) {
    spdlog::error("--join: this build runs single-node clusters only; multi-node clusters "
                  "arrive with the cluster transport (see docs/design.md)");
    return 2;
  }
  if (config.embedded_default) {
    spdlog::info("no arguments: starting the embedded default, a single-node cluster with data "
                 "in {} and its socket at {}", config.data_dir, config.socket);
  }

  std::error_code ec;
  std::filesystem::create_directories(config.data_dir, ec);
  if (ec) {
    spdlog::error("cannot create data directory {}: {}", config.data_dir, ec.message());
    return 1;
  }
  auto store = atlas::storage::Store::Open(config.data_dir + "/db", {});
  if (!store.ok()) {
    spdlog::error("{}", store.status().message());
    return 1;
  }
  auto cluster_id = LoadOrCreateClusterId(store->get());
  if (!cluster_id.ok()) {
    spdlog::error("reading node metadata: {}", cluster_id.status().message());
    return 1;
  }

  atlas::PaxosReplicatorOptions paxos_options;
  paxos_options.node_id = 1;
  paxos_options.quorum = {config.fn, config.fz};
  auto replicator_or = atlas::PaxosReplicator::Start(store->get(), paxos_options);
  if (!replicator_or.ok()) {
    spdlog::error("loading consensus state: {}", replicator_or.status().message());
    return 1;
  }
  atlas::PaxosReplicator& replicator = **replicator_or;
  atlas::NodeIdentity self;
  self.region = config.region;
  self.name = config.node_name;
  std::tie(self.addr, self.port) = SplitHostPort(config.advertise);
  atlas::ExecutorOptions exec_options;
  exec_options.principal_mode = config.principal_mode == "peercred"
                                    ? atlas::PrincipalMode::kPeercred
                                    : atlas::PrincipalMode::kAssume;
  exec_options.admin_users = config.admin_users;
  boost::asio::io_context io;
  exec_options.post_read = [&io](std::function<void()> fn) { boost::asio::post(io, std::move(fn)); };
  atlas::Executor executor(store->get(), &replicator, self, exec_options);

  atlas::socketproto::ServerOptions server_options;
  server_options.socket_path = config.socket;
  server_options.socket_mode = config.socket_mode_bits;
  server_options.limits.max_line_bytes = config.max_line_bytes;
  server_options.limits.max_blob_bytes = config.max_blob_bytes;
  server_options.limits.max_inflight_per_conn = config.max_inflight_per_conn;
  server_options.max_pending_output_bytes = config.max_pending_output_bytes;
  atlas::socketproto::SocketServer server(io, server_options, &executor);
  if (absl::Status s = server.Start(); !s.ok()) {
    spdlog::error("{}", s.message());
    return 1;
  }
  spdlog::info("atlasd {} serving cluster {} as node {} (region {}) on {}", self.version,
               *cluster_id, self.id, self.region, config.socket);

  // Graceful shutdown: stop accepting, let in-flight commands finish (bounded), close
  // sessions, then drain the commit queue and close RocksDB.
  boost::asio::signal_set signals(io, SIGINT, SIGTERM);
  boost::asio::steady_timer drain_timer(io);
  int drain_polls = 0;
  std::function<void()> close_sessions = [&] {
    // Give the "server shutting down" frames up to a second to reach their clients.
    if (server.open_sessions() > 0 && ++drain_polls < 20) {
      drain_timer.expires_after(std::chrono::milliseconds(50));
      drain_timer.async_wait([&](boost::system::error_code) { close_sessions(); });
      return;
    }
    io.stop();
  };
  std::function<void()> drain = [&] {
    // In-flight commands finish (bounded by the replication timeout, at most 10 s here).
    if (server.inflight_commands() > 0 && ++drain_polls < 200) {
      drain_timer.expires_after(std::chrono::milliseconds(50));
      drain_timer.async_wait([&](boost::system::error_code) { drain(); });
      return;
    }
    server.CloseAll();
    drain_polls = 0;
    close_sessions();
  };
  signals.async_wait([&](boost::system::error_code err, int sig) {
    if (err) return;
    spdlog::info("received {}, shutting down", sig == SIGINT ? "SIGINT" : "SIGTERM");
    server.StopAccepting();
    drain();
  });

  std::vector<std::thread> threads;
  for (int i = 1; i < config.io_threads; ++i) threads.emplace_back([&io] { io.run(); });
  io.run();
  for (auto& t : threads) t.join();
  replicator.Shutdown();
  store->reset();
  spdlog::info("stopped");
  return 0;
}
