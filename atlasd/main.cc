// atlasd: the composition root. Wires config, RocksDB, the replicator, the executor and the
// socket server together, and owns process lifecycle (signals, graceful shutdown).
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <algorithm>
#include <filesystem>
#include <random>
#include <thread>

#include "socketproto/str.h"
#include "atlasd/cluster/https_server.h"
#include "atlasd/cluster/join_limiter.h"
#include "atlasd/cluster/pki.h"
#include "atlasd/cluster_node.h"
#include "atlasd/config.h"
#include "atlasd/failpoint.h"
#include "atlasd/node_setup.h"
#include "atlasd/executor.h"
#include "atlasd/logging.h"
#include "atlasd/node/node_loop.h"
#include "atlasd/acl.h"
#include "atlasd/watch_hub.h"
#include "absl/cleanup/cleanup.h"
#include "boost/asio.hpp"
#include "socketproto/server.h"
#include "spdlog/spdlog.h"
#include "storage/keys.h"
#include "storage/store.h"

namespace {

// Room RocksDB needs to open: a new write-ahead log, manifest and options file, with margin.
constexpr uintmax_t kMinFreeBytesToStart = uintmax_t{64} << 20;

// GET /metrics: the node, its commands, its peers, its clients and its RocksDB
// (docs/metrics.md).
std::string MetricsText(const atlas::NodeIdentity& self, const atlas::CommandMetrics& commands,
                        const atlas::OwnershipStats& ownership,
                        const atlas::WatchHub& watch,
                        atlas::ClusterView& cluster, atlas::socketproto::SocketServer& server,
                        atlas::storage::Store* store,
                        std::chrono::steady_clock::time_point started) {
  using atlas::AppendHelp;
  using atlas::AppendSample;
  using atlas::LabelValue;
  std::string out;
  AppendHelp(&out, "atlas_node_info", "gauge", "This node: id, region and version (value 1).");
  AppendSample(&out, "atlas_node_info",
               atlas::StrCat("node=\"", self.id, "\",region=\"", LabelValue(self.region),
                             "\",version=\"", LabelValue(self.version), "\""),
               1);
  AppendHelp(&out, "atlas_uptime_seconds", "gauge", "Seconds since this atlasd started.");
  AppendSample(&out, "atlas_uptime_seconds", "",
               std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
  commands.Render(&out);

  // Ownership: sum atlas_tables_owned by region for tables owned per zone.
  const std::string region = atlas::StrCat("region=\"", LabelValue(self.region), "\"");
  AppendHelp(&out, "atlas_tables_owned", "gauge",
             "Tables this node owns now (a table group counts once).");
  AppendSample(&out, "atlas_tables_owned", region, static_cast<double>(ownership.owned));
  AppendHelp(&out, "atlas_ownership_events_total", "counter",
             "Ownership changes on this node: phase 1 started, won (elected), lost (preempted), "
             "ownership lost (stepped_down), migration hints sent (move_suggested).");
  const std::pair<const char*, uint64_t> events[] = {
      {"phase1_started", ownership.phase1_started}, {"elected", ownership.elected},
      {"preempted", ownership.preempted},           {"stepped_down", ownership.stepped_down},
      {"move_suggested", ownership.moves_suggested}};
  for (const auto& [event, n] : events) {
    AppendSample(&out, "atlas_ownership_events_total", atlas::StrCat("event=\"", event, "\""),
                 static_cast<double>(n));
  }

  AppendHelp(&out, "atlas_watchers", "gauge", "WATCH streams open on this node.");
  AppendSample(&out, "atlas_watchers", "", static_cast<double>(watch.watchers()));
  AppendHelp(&out, "atlas_watch_events_total", "counter", "WATCH events sent by this node.");
  AppendSample(&out, "atlas_watch_events_total", "", static_cast<double>(watch.events_sent()));
  AppendHelp(&out, "atlas_watch_cut_off_total", "counter",
             "Watchers ended for falling watch-lag-max revisions behind (clients not reading).");
  AppendSample(&out, "atlas_watch_cut_off_total", "", static_cast<double>(watch.cut_off()));

  AppendHelp(&out, "atlas_socket_connections", "gauge", "Open client connections.");
  AppendSample(&out, "atlas_socket_connections", "", static_cast<double>(server.open_sessions()));
  AppendHelp(&out, "atlas_socket_inflight_commands", "gauge", "Commands being executed.");
  AppendSample(&out, "atlas_socket_inflight_commands", "",
               static_cast<double>(server.inflight_commands()));

  std::vector<atlas::NodeView> nodes = cluster.Nodes();
  AppendHelp(&out, "atlas_cluster_members", "gauge", "Members by status, as this node sees them.");
  for (const char* status : {"ACTIVE", "SUSPECT", "DOWN", "LEFT"}) {
    size_t n = 0;
    for (const auto& v : nodes) n += v.status == status;
    AppendSample(&out, "atlas_cluster_members", atlas::StrCat("status=\"", status, "\""),
                 static_cast<double>(n));
  }
  AppendHelp(&out, "atlas_peer_up", "gauge",
             "1 while a peer is ACTIVE for this node's failure detector, else 0.");
  for (const auto& v : nodes) {
    if (v.self || v.status == "LEFT") continue;
    AppendSample(&out, "atlas_peer_up",
                 atlas::StrCat("peer=\"", v.id, "\",region=\"", LabelValue(v.region), "\""),
                 v.status == "ACTIVE" ? 1 : 0);
  }
  AppendHelp(&out, "atlas_peer_rtt_seconds", "gauge",
             "Round-trip time to a peer over the peer channel (the failure detector's pings).");
  for (const auto& v : nodes) {
    if (v.self || v.status == "LEFT") continue;
    AppendSample(&out, "atlas_peer_rtt_seconds",
                 atlas::StrCat("peer=\"", v.id, "\",region=\"", LabelValue(v.region), "\""),
                 v.rtt_ms / 1000.0);
  }

  // RocksDB, summed over atlasd's column families.
  struct Property {
    const char* rocksdb;
    const char* name;
    const char* help;
  };
  static constexpr Property kProperties[] = {
      {"rocksdb.estimate-live-data-size", "atlas_rocksdb_live_data_bytes",
       "Estimated live data in RocksDB."},
      {"rocksdb.total-sst-files-size", "atlas_rocksdb_sst_files_bytes", "Size of all SST files."},
      {"rocksdb.cur-size-all-mem-tables", "atlas_rocksdb_memtable_bytes",
       "Memory held by memtables."},
      {"rocksdb.estimate-num-keys", "atlas_rocksdb_estimated_keys", "Estimated number of keys."},
      {"rocksdb.estimate-pending-compaction-bytes", "atlas_rocksdb_pending_compaction_bytes",
       "Bytes compaction estimates it has to rewrite."},
      {"rocksdb.num-running-compactions", "atlas_rocksdb_running_compactions",
       "Compactions running now."},
  };
  for (const Property& p : kProperties) {
    AppendHelp(&out, p.name, "gauge", p.help);
    AppendSample(&out, p.name, "", static_cast<double>(store->Property(p.rocksdb)));
  }
  AppendHelp(&out, "atlas_rocksdb_block_cache_bytes", "gauge",
             "Memory held by the block cache (shared by the column families).");
  AppendSample(&out, "atlas_rocksdb_block_cache_bytes", "",
               static_cast<double>(store->Property("rocksdb.block-cache-usage")));
  return out;
}

// `listen` with port 0 (tests, ad-hoc clusters): pick a free port now, because the address
// goes into the membership before the transport starts.
std::string ResolveListen(const std::string& listen) {
  size_t colon = listen.rfind(':');
  if (colon == std::string::npos || listen.substr(colon + 1) != "0") return listen;
  std::string host = listen.substr(0, colon);
  boost::asio::io_context io;
  boost::system::error_code ec;
  boost::asio::ip::tcp::acceptor a(io);
  auto addr = boost::asio::ip::make_address(host == "localhost" ? "127.0.0.1" : host, ec);
  if (ec) return listen;
  boost::asio::ip::tcp::endpoint ep(addr, 0);
  a.open(ep.protocol(), ec);
  if (!ec) a.bind(ep, ec);
  if (ec) return listen;
  return atlas::StrCat(host, ":", a.local_endpoint().port());
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
  // A join token on the command line is readable by every local user in /proc/<pid>/cmdline:
  // overwrite it in our arguments now that it is parsed (join-token-file avoids even this).
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    if (!config.join_token.empty() && arg.find(config.join_token) != std::string_view::npos) {
      std::fill(argv[i] + arg.find(config.join_token),
                argv[i] + arg.find(config.join_token) + config.join_token.size(), 'x');
    }
  }
  atlas::failpoint::Init();
  atlas::SetupLogging(config.log_level, config.log_format);
  // Every client connection and peer stream is a descriptor: use all the hard limit allows
  // (the soft default, often 1024, would refuse clients long before memory runs short).
  if (rlimit nofile{}; getrlimit(RLIMIT_NOFILE, &nofile) == 0 && nofile.rlim_cur < nofile.rlim_max) {
    nofile.rlim_cur = nofile.rlim_max;
    setrlimit(RLIMIT_NOFILE, &nofile);
  }
  std::signal(SIGPIPE, SIG_IGN);
  if (rlimit nofile{}; getrlimit(RLIMIT_NOFILE, &nofile) == 0 &&
      config.max_connections + 1024 > nofile.rlim_cur) {
    // RocksDB's files, the peers' streams and the HTTPS port need descriptors too.
    spdlog::warn("max-connections {} is close to the descriptor limit {}: clients may be refused "
                 "with 'too many open files' before max-connections is reached",
                 config.max_connections, nofile.rlim_cur);
  }

  if (config.principal_mode == "assume") {
    // The protocol's default, and the original behaviour: say what it means, every start.
    spdlog::warn("principal-mode assume: any client of the socket may PRINCIPAL ASSUME any name, "
                 "an admin-users one included, so ACLs only keep honest clients apart; set "
                 "principal-mode = \"peercred\" to make a client its Unix user "
                 "(docs/security.md)");
  }
  if (config.embedded_default) {
    spdlog::info("no arguments: starting the embedded default, a single-node cluster with data "
                 "in {} and its socket at {}", config.data_dir, config.socket);
  }

  std::error_code ec;
  // The database directory too: RocksDB reports a missing one as an error on first start.
  std::filesystem::create_directories(config.data_dir + "/db", ec);
  if (ec) {
    spdlog::error("cannot create data directory {}: {}", config.data_dir, ec.message());
    return 1;
  }
  // Opening RocksDB writes new files (log, manifest): on a full disk refuse plainly, before it
  // fails half-way. A running node that fills its disk stops at the first write it cannot
  // persist (atlasd/node/node_host.cc); docs/storage.md, "Disk full".
  if (auto space = std::filesystem::space(config.data_dir, ec);
      !ec && space.available < kMinFreeBytesToStart) {
    spdlog::error("data directory {} has {} KiB free; atlasd needs at least {} MiB to start. "
                  "Free some space and start it again: its data is intact.",
                  config.data_dir, space.available >> 10, kMinFreeBytesToStart >> 20);
    return 1;
  }
  atlas::storage::StoreOptions store_options;
  store_options.info_log = atlas::RocksDbLogger();
  auto store = atlas::storage::Store::Open(config.data_dir + "/db", store_options);
  if (!store.ok()) {
    spdlog::error("{}", store.status().message());
    return 1;
  }
  config.listen = ResolveListen(config.listen);
  if (config.advertise.empty() || config.advertise.ends_with(":0")) config.advertise = config.listen;
  auto setup = atlas::SetUpNode(config, store->get());
  if (!setup.ok()) {
    // Join errors name the member that answered (join_client.cc).
    spdlog::error("{}", setup.status().message());
    return 1;
  }
  atlas::SetLogNode(setup->node_id);

  // The peer transport (gRPC, mutual TLS with the cluster CA) and the node's cluster runtime.
  atlas::ClusterNodeOptions cluster_options;
  cluster_options.self = setup->node_id;
  cluster_options.cluster_id = setup->cluster_id;
  cluster_options.desired_quorum = {config.fn, config.fz};
  cluster_options.version = atlas::NodeIdentity{}.version;
  cluster_options.max_clock_offset_ms = config.max_clock_offset_ms;
  cluster_options.ca_fingerprint = atlas::cluster::Fingerprint(setup->ca->cert.get());
  cluster_options.legacy_join_secret = setup->join_secret;
  std::unique_ptr<atlas::ClusterNode> cluster_node;
  atlas::PeerTransportOptions transport_options;
  transport_options.self = static_cast<atlas::consensus::NodeId>(setup->node_id);
  transport_options.listen = config.listen;
  transport_options.tls = {setup->ca_pem, setup->cert_pem, setup->key_pem};
  atlas::PeerTransport transport(transport_options, [&cluster_node](atlas::consensus::Message m) {
    if (cluster_node) cluster_node->Deliver(std::move(m));
  });
  cluster_node = std::make_unique<atlas::ClusterNode>(cluster_options, &transport);
  transport.SetReportSource([&cluster_node] { return cluster_node->Report(); });
  // Declared after both: runs before either goes away, on every return path.
  absl::Cleanup unset_report = [&transport] { transport.SetReportSource(nullptr); };
  if (absl::Status s = transport.Start(); !s.ok()) {
    spdlog::error("peer transport on {} (setting listen): {}", config.listen, s.message());
    return 1;
  }

  // WATCH: the state machine keeps each table's recent row changes; the hub streams them.
  atlas::WatchHubOptions watch_options;
  watch_options.lag_max = config.watch_lag_max;
  watch_options.watchers_max = config.watch_max;
  watch_options.backlog_max = std::min<size_t>(size_t{1} << 20, config.max_pending_output_bytes / 2);
  atlas::storage::Store* watch_store = store->get();
  watch_options.may_read = [watch_store](const std::string& table,
                                         const std::optional<std::string>& principal,
                                         bool admin) {
    absl::StatusOr<atlas::storage::TableAcl> acl = watch_store->LoadTableAcl(table);
    return acl.ok() && atlas::AclAllows(*acl, principal, admin, atlas::AclOp::kRead);
  };
  atlas::WatchHub watch_hub(store->get(), watch_options);

  atlas::NodeLoopOptions node_options;
  node_options.host.change_history = config.watch_history;
  node_options.host.node_id = static_cast<atlas::consensus::NodeId>(setup->node_id);
  node_options.host.may_own = false;  // until the cluster runtime judged this node's clock
  node_options.host.membership = setup->membership;
  node_options.host.previous_membership = setup->previous_membership;
  node_options.host.quorum = {config.fn, 0};
  node_options.on_changes = [&watch_hub](std::vector<std::pair<std::string, uint64_t>> changes,
                                         bool everything) {
    watch_hub.Notify(std::move(changes), everything);
  };
  node_options.send = [&transport](std::vector<atlas::consensus::Message> m) {
    transport.Send(std::move(m));
  };
  node_options.on_membership = [&cluster_node](const atlas::consensus::ClusterConfig& c) {
    cluster_node->OnMembership(c);
  };
  auto replicator_or = atlas::NodeLoop::Start(store->get(), node_options);
  if (!replicator_or.ok()) {
    spdlog::error("loading consensus state: {}", replicator_or.status().message());
    return 1;
  }
  atlas::NodeLoop& replicator = **replicator_or;
  cluster_node->Attach(&replicator);
  cluster_node->StartFailureDetector();

  atlas::NodeIdentity self;
  self.id = setup->node_id;
  self.region = config.region;
  self.name = config.node_name;
  std::tie(self.addr, self.port) = SplitHostPort(config.advertise);
  atlas::ExecutorOptions exec_options;
  exec_options.principal_mode = config.principal_mode == "peercred"
                                    ? atlas::PrincipalMode::kPeercred
                                    : atlas::PrincipalMode::kAssume;
  exec_options.admin_users = config.admin_users;
  exec_options.backup_users = config.backup_users;
  exec_options.cluster = cluster_node.get();
  atlas::CommandMetrics command_metrics(atlas::CommandNames());
  exec_options.metrics = &command_metrics;
  exec_options.watch = &watch_hub;
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
  server_options.max_connections = config.max_connections;
  server_options.warn = [](std::string_view m) { spdlog::warn("{}", m); };
  atlas::socketproto::SocketServer server(io, server_options, &executor);
  if (absl::Status s = server.Start(); !s.ok()) {
    spdlog::error("{}", s.message());
    return 1;
  }
  // HTTPS: health, and joins (answered by the member holding the CA key and the token).
  auto http_context = std::make_shared<atlas::cluster::HttpHandlerContext>();
  http_context->ca = setup->ca;
  // The replicated token registry decides (the token file only while it is empty).
  http_context->authorize = [&cluster_node](const std::string& secret) {
    return cluster_node->AuthorizeJoin(secret);
  };
  http_context->join_limiter = std::make_shared<atlas::cluster::JoinLimiter>();
  atlas::JoinCounters join_counters;
  http_context->on_join_attempt = [&join_counters](const atlas::cluster::JoinAttempt& a) {
    join_counters.Count(a.outcome);
    const bool ok = a.outcome == "accepted";
    atlas::LogEvent(ok ? spdlog::level::info : spdlog::level::warn, "join attempt",
                    {{"source", a.source}, {"outcome", a.outcome}, {"detail", a.detail}});
  };
  http_context->health = [&cluster_node] { return cluster_node->Health(); };
  const auto started = std::chrono::steady_clock::now();
  http_context->metrics = [&, started] {
    std::string text = MetricsText(self, command_metrics, replicator.ownership(), watch_hub,
                                   *cluster_node, server, store->get(), started);
    join_counters.Render(&text);
    return text;
  };
  http_context->join = [&cluster_node](const atlas::cluster::JoinRequest& r,
                                       atlas::cluster::JoinDone done) {
    cluster_node->HandleJoin(r, std::move(done));
  };
  atlas::cluster::HttpsServerOptions https_options;
  https_options.listen = config.http_listen;
  auto https = atlas::cluster::HttpsServer::Start(io, https_options, setup->cert.get(),
                                                  setup->key.get(), http_context);
  if (!https.ok()) {
    spdlog::error("HTTPS on {} (setting http-listen): {}", config.http_listen,
                  https.status().message());
    return 1;
  }
  spdlog::info("atlasd {} serving cluster {} as node {} (region {}) on {}; peers on {}, HTTPS "
               "on port {}",
               self.version, setup->cluster_id, self.id, self.region, config.socket,
               config.listen, (*https)->port());

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
    (*https)->Stop();
    // Watches never finish on their own: end them so that the drain does not wait for them
    // (the hub's thread does it; it needs nothing from this one).
    watch_hub.EndAll("server shutting down");
    drain();
  });

  std::vector<std::thread> threads;
  for (int i = 1; i < config.io_threads; ++i) threads.emplace_back([&io] { io.run(); });
  io.run();
  for (auto& t : threads) t.join();
  replicator.Shutdown();
  cluster_node->Stop();
  transport.Shutdown();
  store->reset();
  spdlog::info("stopped");
  return 0;
}
