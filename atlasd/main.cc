// atlasd: the composition root. Wires config, RocksDB, the replicator, the executor and the
// socket server together, and owns process lifecycle (signals, graceful shutdown).
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <tuple>
#include <random>
#include <thread>

#include "absl/cleanup/cleanup.h"
#include "absl/synchronization/mutex.h"
#include "atlasd/acl.h"
#include "atlasd/cluster/ca_rotation.h"
#include "atlasd/cluster/cert_renewer.h"
#include "atlasd/cluster/https_server.h"
#include "atlasd/console/console.h"
#include "atlasd/cluster/join_limiter.h"
#include "atlasd/cluster/pki.h"
#include "atlasd/cluster_node.h"
#include "atlasd/config.h"
#include "atlasd/executor.h"
#include "atlasd/failpoint.h"
#include "atlasd/heap_trimmer.h"
#include "atlasd/logging.h"
#include "atlasd/node/node_loop.h"
#include "atlasd/node_setup.h"
#include "atlasd/watch_hub.h"
#include "boost/asio.hpp"
#include "socketproto/io_pool.h"
#include "socketproto/server.h"
#include "socketproto/str.h"
#include "spdlog/spdlog.h"
#include "storage/keys.h"
#include "storage/store.h"

namespace {

// Room RocksDB needs to open: a new write-ahead log, manifest and options file, with margin.
constexpr uintmax_t kMinFreeBytesToStart = uintmax_t{64} << 20;

// GET /metrics: the node, its commands, its peers, its clients and its RocksDB
// (docs/metrics.md), one Append* per part.
using atlas::AppendHelp;
using atlas::AppendSample;
using atlas::LabelValue;

void AppendNodeMetrics(const atlas::NodeIdentity& self,
                       std::chrono::steady_clock::time_point started, std::string* out) {
  AppendHelp(out, "atlas_node_info", "gauge", "This node: id, region and version (value 1).");
  AppendSample(out, "atlas_node_info",
               atlas::StrCat("node=\"", self.id, "\",region=\"", LabelValue(self.region),
                             "\",version=\"", LabelValue(self.version), "\""),
               1);
  AppendHelp(out, "atlas_uptime_seconds", "gauge", "Seconds since this atlasd started.");
  AppendSample(out, "atlas_uptime_seconds", "",
               std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
}

void AppendOwnershipMetrics(const atlas::NodeIdentity& self, const atlas::OwnershipStats& ownership,
                            std::string* out) {
  // Ownership: sum atlas_tables_owned by region for tables owned per zone.
  const std::string region = atlas::StrCat("region=\"", LabelValue(self.region), "\"");
  AppendHelp(out, "atlas_tables_owned", "gauge",
             "Tables this node owns now (a table group counts once).");
  AppendSample(out, "atlas_tables_owned", region, static_cast<double>(ownership.owned));
  AppendHelp(out, "atlas_ownership_events_total", "counter",
             "Ownership changes on this node: phase 1 started, won (elected), lost (preempted), "
             "ownership lost (stepped_down), migration hints sent (move_suggested).");
  const std::pair<const char*, uint64_t> events[] = {
      {"phase1_started", ownership.phase1_started}, {"elected", ownership.elected},
      {"preempted", ownership.preempted},           {"stepped_down", ownership.stepped_down},
      {"move_suggested", ownership.moves_suggested}};
  for (const auto& [event, n] : events) {
    AppendSample(out, "atlas_ownership_events_total", atlas::StrCat("event=\"", event, "\""),
                 static_cast<double>(n));
  }
}

void AppendReadMetrics(const atlas::NodeLoop::ReadStats& reads, std::string* out) {
  const std::tuple<const char*, const char*, uint64_t> counters[] = {
      {"atlas_reads_local_total",
       "Linearizable reads answered on the client thread, with no round (docs/consensus.md).",
       reads.local},
      {"atlas_read_rounds_total", "Read confirmation rounds run as owner (lease renewals too).",
       reads.rounds},
      {"atlas_read_lease_grants_total", "Times a Q2 granted or renewed this owner's read lease.",
       reads.lease_grants},
      {"atlas_read_lease_prepares_held_total",
       "Prepares this acceptor held until a read lease it granted ended.", reads.prepares_held},
      {"atlas_replica_lease_reads_total",
       "Reads of tables in TABLE READS LOCAL mode answered from this node's replica under a "
       "replica read lease, through the node thread (the client thread's count as local).",
       reads.replica_lease},
      {"atlas_replica_lease_grants_total",
       "Replica read leases this node granted or renewed as owner.", reads.replica_lease_grants},
      {"atlas_replica_lease_refusals_total",
       "Asks for a replica read lease this owner refused: TABLE READS AUTO, writes dominate.",
       reads.replica_lease_refusals},
  };
  for (const auto& [name, help, n] : counters) {
    AppendHelp(out, name, "counter", help);
    AppendSample(out, name, "", static_cast<double>(n));
  }
}

void AppendObjectMetrics(const atlas::NodeLoop::ObjectStats& objects, std::string* out) {
  AppendHelp(out, "atlas_consensus_objects", "gauge", "Consensus objects (tables) held.");
  AppendSample(out, "atlas_consensus_objects", "", static_cast<double>(objects.held));
  AppendHelp(out, "atlas_consensus_objects_at_rest", "gauge",
             "Held objects at rest: idle, kept in their compact form (docs/consensus.md).");
  AppendSample(out, "atlas_consensus_objects_at_rest", "", static_cast<double>(objects.at_rest));
}

void AppendClientMetrics(const atlas::WatchHub& watch, atlas::socketproto::SocketServer& server,
                         std::string* out) {
  AppendHelp(out, "atlas_watchers", "gauge", "WATCH streams open on this node.");
  AppendSample(out, "atlas_watchers", "", static_cast<double>(watch.watchers()));
  AppendHelp(out, "atlas_watch_events_total", "counter", "WATCH events sent by this node.");
  AppendSample(out, "atlas_watch_events_total", "", static_cast<double>(watch.events_sent()));
  AppendHelp(out, "atlas_watch_cut_off_total", "counter",
             "Watchers ended for falling watch-lag-max revisions behind (clients not reading).");
  AppendSample(out, "atlas_watch_cut_off_total", "", static_cast<double>(watch.cut_off()));

  AppendHelp(out, "atlas_socket_connections", "gauge", "Open client connections.");
  AppendSample(out, "atlas_socket_connections", "", static_cast<double>(server.open_sessions()));
  AppendHelp(out, "atlas_socket_inflight_commands", "gauge", "Commands being executed.");
  AppendSample(out, "atlas_socket_inflight_commands", "",
               static_cast<double>(server.inflight_commands()));
}

void AppendClusterMetrics(atlas::ClusterView& cluster, std::string* out) {
  std::vector<atlas::NodeView> nodes = cluster.Nodes();
  AppendHelp(out, "atlas_cluster_members", "gauge", "Members by status, as this node sees them.");
  for (const char* status : {"ACTIVE", "SUSPECT", "DOWN", "LEFT"}) {
    size_t n = 0;
    for (const auto& v : nodes) n += v.status == status;
    AppendSample(out, "atlas_cluster_members", atlas::StrCat("status=\"", status, "\""),
                 static_cast<double>(n));
  }
  // One sample a peer (not this node, not a member that left) for each of the two families.
  auto append_per_peer = [&](const char* name, const char* help, auto value) {
    AppendHelp(out, name, "gauge", help);
    for (const auto& v : nodes) {
      if (v.self || v.status == "LEFT") continue;
      AppendSample(out, name,
                   atlas::StrCat("peer=\"", v.id, "\",region=\"", LabelValue(v.region), "\""),
                   value(v));
    }
  };
  AppendHelp(out, "atlas_node_certificate_expiry_timestamp_seconds", "gauge",
             "When each member's node certificate expires (unix seconds), as it reports it.");
  for (const auto& v : nodes) {
    if (v.status == "LEFT" || v.cert_not_after_ms <= 0) continue;
    AppendSample(out, "atlas_node_certificate_expiry_timestamp_seconds",
                 atlas::StrCat("node=\"", v.id, "\",region=\"", LabelValue(v.region), "\""),
                 static_cast<double>(v.cert_not_after_ms) / 1000.0);
  }
  append_per_peer("atlas_peer_up",
                  "1 while a peer is ACTIVE for this node's failure detector, else 0.",
                  [](const atlas::NodeView& v) { return v.status == "ACTIVE" ? 1 : 0; });
  append_per_peer("atlas_peer_rtt_seconds",
                  "Round-trip time to a peer over the peer channel (the failure detector's pings).",
                  [](const atlas::NodeView& v) { return v.rtt_ms / 1000.0; });
}

void AppendPeerMetrics(const atlas::PeerTransport::Stats& stats, std::string* out) {
  AppendHelp(out, "atlas_peer_messages_sent_total", "counter",
             "Consensus messages this node sent to its peers.");
  AppendSample(out, "atlas_peer_messages_sent_total", "", static_cast<double>(stats.sent.load()));
  AppendHelp(out, "atlas_peer_bytes_sent_total", "counter",
             "Bytes of those messages as serialized (before TLS and HTTP/2 framing).");
  AppendSample(out, "atlas_peer_bytes_sent_total", "",
               static_cast<double>(stats.bytes_sent.load()));
}

// RocksDB, summed over atlasd's column families.
void AppendRocksDbMetrics(atlas::storage::Store* store, std::string* out) {
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
      {"rocksdb.block-cache-usage", "atlas_rocksdb_block_cache_bytes",
       "Memory held by the block cache: data, index and filter blocks, and the memtables' "
       "reservations (memory-budget-bytes bounds it)."},
      {"rocksdb.block-cache-capacity", "atlas_rocksdb_memory_budget_bytes",
       "The block cache's capacity: memory-budget-bytes."},
      {"rocksdb.estimate-table-readers-mem", "atlas_rocksdb_table_readers_bytes",
       "Memory of open SST files outside the block cache (index and filters are inside it)."},
  };
  for (const Property& p : kProperties) {
    AppendHelp(out, p.name, "gauge", p.help);
    AppendSample(out, p.name, "", static_cast<double>(store->Property(p.rocksdb)));
  }
}

// What the HTTPS server's metrics callback reads from.
struct MetricsSources {
  const atlas::NodeIdentity* self;
  const atlas::CommandMetrics* commands;
  const atlas::NodeLoop* node;
  const atlas::WatchHub* watch;
  atlas::ClusterView* cluster;
  atlas::socketproto::SocketServer* server;
  atlas::storage::Store* store;
  const atlas::JoinCounters* joins;
  const atlas::PeerTransport::Stats* peers;
  std::chrono::steady_clock::time_point started;
};

std::string MetricsText(const MetricsSources& m) {
  std::string out;
  AppendNodeMetrics(*m.self, m.started, &out);
  m.commands->Render(&out);
  AppendOwnershipMetrics(*m.self, m.node->ownership(), &out);
  AppendReadMetrics(m.node->reads(), &out);
  AppendObjectMetrics(m.node->objects(), &out);
  AppendClientMetrics(*m.watch, *m.server, &out);
  AppendClusterMetrics(*m.cluster, &out);
  AppendPeerMetrics(*m.peers, &out);
  AppendRocksDbMetrics(m.store, &out);
  m.joins->Render(&out);
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

// The settings, or the exit code when parsing ends the run: 0 after --help or --version
// (printed), 2 for a bad setting.
std::optional<int> ParseOrExit(int argc, char** argv, atlas::Config* config) {
  auto parsed = atlas::ParseConfig(argc, argv);
  if (parsed.ok()) {
    *config = *std::move(parsed);
    return std::nullopt;
  }
  if (absl::IsCancelled(parsed.status())) {
    std::fputs(std::string(parsed.status().message()).c_str(), stdout);
    return 0;
  }
  std::fprintf(stderr, "atlasd: %s\nRun 'atlasd --help' for the settings.\n",
               std::string(parsed.status().message()).c_str());
  return 2;
}

// A join token on the command line is readable by every local user in /proc/<pid>/cmdline:
// overwrite it in our arguments now that it is parsed (join-token-file avoids even this).
void HideJoinToken(int argc, char** argv, const std::string& token) {
  if (token.empty()) return;
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    if (size_t at = arg.find(token); at != std::string_view::npos) {
      std::fill(argv[i] + at, argv[i] + at + token.size(), 'x');
    }
  }
}

// Logging, descriptor limits, SIGPIPE, and the warnings every start repeats.
void PrepareProcess(const atlas::Config& config) {
  atlas::TuneAllocator();
  // Debian's Abseil is built with deadlock detection on: every Mutex::Lock then takes a
  // process-wide lock to update a lock graph (2.4% of a 64-connection GET profile). The lock
  // order is checked by clang's -Wthread-safety and the tests instead.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
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
}

absl::StatusOr<std::unique_ptr<atlas::storage::Store>> OpenStore(const atlas::Config& config) {
  std::error_code ec;
  // The database directory too: RocksDB reports a missing one as an error on first start.
  std::filesystem::create_directories(config.data_dir + "/db", ec);
  if (ec) {
    return absl::InternalError(
        atlas::StrCat("cannot create data directory ", config.data_dir, ": ", ec.message()));
  }
  // Opening RocksDB writes new files (log, manifest): on a full disk refuse plainly, before it
  // fails half-way. A running node that fills its disk stops at the first write it cannot
  // persist (atlasd/node/node_host.cc); docs/storage.md, "Disk full".
  if (auto space = std::filesystem::space(config.data_dir, ec);
      !ec && space.available < kMinFreeBytesToStart) {
    return absl::ResourceExhaustedError(
        atlas::StrCat("data directory ", config.data_dir, " has ", space.available >> 10,
                      " KiB free; atlasd needs at least ", kMinFreeBytesToStart >> 20,
                      " MiB to start. Free some space and start it again: its data is intact."));
  }
  atlas::storage::StoreOptions store_options;
  store_options.info_log = atlas::RocksDbLogger();
  store_options.memory_budget_bytes = config.memory_budget_bytes;
  return atlas::storage::Store::Open(config.data_dir + "/db", store_options);
}

// The CAs this node trusts and their rotation (docs/security.md §Rotating the CA): the
// renewer, once it runs, looks again when the cluster's signing CA changes.
std::shared_ptr<atlas::cluster::CaRotation> CaRotationFor(
    const atlas::Config& config, const atlas::NodeSetup& setup,
    std::atomic<atlas::cluster::CertRenewer*>* renewer) {
  return std::make_shared<atlas::cluster::CaRotation>(
      config.data_dir, setup.cluster_id, std::make_shared<atlas::cluster::TrustedCas>(setup.ca),
      [renewer] {
        if (atlas::cluster::CertRenewer* r = renewer->load()) r->Wake();
      });
}

atlas::ClusterNodeOptions ClusterOptionsFor(const atlas::Config& config,
                                            const atlas::NodeSetup& setup,
                                            std::shared_ptr<atlas::cluster::CaRotation> cas) {
  atlas::ClusterNodeOptions options;
  options.self = setup.node_id;
  options.cluster_id = setup.cluster_id;
  options.desired_quorum = {config.fn, config.fz};
  options.version = atlas::NodeIdentity{}.version;
  options.max_clock_offset_ms = config.max_clock_offset_ms;
  options.ca_fingerprint = atlas::cluster::Fingerprint(setup.ca->cert.get());
  options.legacy_join_secret = setup.join_secret;
  options.cert_not_after_ms = atlas::cluster::CertNotAfterMs(setup.cert.get());
  options.cert_ca = atlas::cluster::IssuerFingerprint(setup.cert.get(), *setup.ca);
  options.ca_rotation = std::move(cas);
  return options;
}

atlas::PeerTransportOptions TransportOptionsFor(const atlas::Config& config,
                                                const atlas::NodeSetup& setup) {
  atlas::PeerTransportOptions options;
  options.self = static_cast<atlas::consensus::NodeId>(setup.node_id);
  options.listen = config.listen;
  options.advertise = config.advertise;
  options.tls.ca_pem = setup.ca_pem;
  options.tls.cert_pem = setup.cert_pem;
  options.tls.key_pem = setup.key_pem;
  // The files themselves, watched: a renewed certificate takes effect without a restart.
  options.tls.watch_dir = config.data_dir;
  // Tests pretend to be a release that speaks only another peer protocol (docs/testing.md).
  if (const char* p = std::getenv("ATLAS_TEST_PEER_PROTOCOL")) {
    options.protocol = options.protocol_min = std::atoi(p);
  }
  return options;
}

// WATCH: the state machine keeps each table's recent row changes; the hub streams them.
atlas::WatchHubOptions WatchOptionsFor(const atlas::Config& config, atlas::storage::Store* store,
                                       atlas::AclCache* acls) {
  atlas::WatchHubOptions options;
  options.lag_max = config.watch_lag_max;
  options.watchers_max = config.watch_max;
  options.backlog_max = std::min<size_t>(size_t{1} << 20, config.max_pending_output_bytes / 2);
  options.may_read = [store, acls](const std::string& table,
                                    const std::optional<std::string>& principal, bool admin) {
    absl::StatusOr<atlas::storage::TableAcl> acl =
        acls->Get(table, [store](const std::string& t) { return store->LoadTableAcl(t); });
    return acl.ok() && atlas::AclAllows(*acl, principal, admin, atlas::AclOp::kRead);
  };
  return options;
}

atlas::NodeLoopOptions NodeOptionsFor(const atlas::Config& config, const atlas::NodeSetup& setup,
                                      atlas::WatchHub* watch_hub, atlas::PeerTransport* transport,
                                      atlas::ClusterNode* cluster_node, atlas::AclCache* acls) {
  atlas::NodeLoopOptions options;
  options.host.acls = acls;
  options.host.change_history = {config.watch_history, config.watch_history_bytes};
  options.host.record_cache_bytes = atlas::RecordCacheBytes(config.memory_budget_bytes);
  options.host.read_lease_ms = config.read_lease_ms;
  options.host.catchup_bytes_per_second = config.catchup_bytes_per_second;
  options.host.clock_drift_ppm = config.max_clock_drift_ppm;
  options.host.node_id = static_cast<atlas::consensus::NodeId>(setup.node_id);
  options.host.may_own = false;  // until the cluster runtime judged this node's clock
  options.host.membership = setup.membership;
  options.host.previous_membership = setup.previous_membership;
  options.host.quorum = {config.fn, 0};
  options.on_changes = [watch_hub](std::vector<std::pair<std::string, uint64_t>> changes,
                                   bool everything) {
    watch_hub->Notify(std::move(changes), everything);
  };
  options.send = [transport](std::vector<atlas::consensus::Message> m) {
    transport->Send(std::move(m));
  };
  options.on_membership = [cluster_node](const atlas::consensus::ClusterConfig& c) {
    cluster_node->OnMembership(c);
  };
  return options;
}

// The node thread. A learner asks to vote first, now that its peers can reach it, and stops
// asking once the node stored the membership it votes in (docs/cluster.md §Learners).
absl::StatusOr<std::unique_ptr<atlas::NodeLoop>> StartNode(
    const atlas::Config& config, atlas::NodeSetup& setup, atlas::storage::Store* store,
    atlas::WatchHub* watch_hub, atlas::PeerTransport* transport,
    atlas::ClusterNode* cluster_node, atlas::AclCache* acls) {
  if (!setup.promote_via.empty()) {
    if (absl::Status s = atlas::PromoteSelf(setup); !s.ok()) return s;
  }
  auto node = atlas::NodeLoop::Start(
      store, NodeOptionsFor(config, setup, watch_hub, transport, cluster_node, acls));
  if (!node.ok()) {
    return absl::Status(node.status().code(),
                        atlas::StrCat("loading consensus state: ", node.status().message()));
  }
  if (!setup.promote_via.empty()) {
    if (absl::Status s = atlas::FinishPromotion(store); !s.ok()) return s;
  }
  return node;
}

atlas::NodeIdentity IdentityFor(const atlas::Config& config, const atlas::NodeSetup& setup) {
  atlas::NodeIdentity self;
  self.id = setup.node_id;
  self.region = config.region;
  self.name = config.node_name;
  std::tie(self.addr, self.port) = SplitHostPort(config.advertise);
  return self;
}

atlas::ExecutorOptions ExecutorOptionsFor(const atlas::Config& config,
                                          atlas::ClusterNode* cluster_node,
                                          atlas::CommandMetrics* metrics,
                                          atlas::WatchHub* watch_hub, atlas::AclCache* acls) {
  atlas::ExecutorOptions options;
  options.acls = acls;
  options.principal_mode = config.principal_mode == "peercred" ? atlas::PrincipalMode::kPeercred
                                                               : atlas::PrincipalMode::kAssume;
  options.admin_users = config.admin_users;
  options.backup_users = config.backup_users;
  options.cluster = cluster_node;
  options.metrics = metrics;
  options.watch = watch_hub;
  return options;
}

atlas::socketproto::ServerOptions ServerOptionsFor(const atlas::Config& config) {
  atlas::socketproto::ServerOptions options;
  options.socket_path = config.socket;
  options.socket_mode = config.socket_mode_bits;
  options.limits.max_line_bytes = config.max_line_bytes;
  options.limits.max_blob_bytes = config.max_blob_bytes;
  options.limits.max_inflight_per_conn = config.max_inflight_per_conn;
  options.max_pending_output_bytes = config.max_pending_output_bytes;
  options.max_connections = config.max_connections;
  options.warn = [](std::string_view m) { spdlog::warn("{}", m); };
  return options;
}

atlas::cluster::ConsoleAccess ConsoleAccessOf(const std::string& setting) {
  using atlas::cluster::ConsoleAccess;
  if (setting == "off") return ConsoleAccess::kOff;
  return setting == "client-cert" ? ConsoleAccess::kClientCert : ConsoleAccess::kOpen;
}

// HTTPS: health, metrics, joins and renewals (answered by the member holding the CA key), and
// the console.
std::shared_ptr<atlas::cluster::HttpHandlerContext> HttpContextFor(
    const atlas::Config& config, std::shared_ptr<atlas::cluster::TrustedCas> cas,
    atlas::ClusterNode* cluster_node, atlas::JoinCounters* join_counters,
    std::function<std::string()> metrics, atlas::console::Console* console) {
  auto context = std::make_shared<atlas::cluster::HttpHandlerContext>();
  context->console_access = ConsoleAccessOf(config.console_access);
  context->console = [console](const atlas::cluster::HttpRequest& request,
                               std::function<void(atlas::cluster::HttpResponse)> reply) {
    console->Handle(request, std::move(reply));
  };
  context->node_cert_validity_seconds = config.node_cert_lifetime_s;
  context->cas = std::move(cas);
  // The replicated token registry decides (the token file only while it is empty).
  context->authorize = [cluster_node](const std::string& secret) {
    return cluster_node->AuthorizeJoin(secret);
  };
  context->join_limiter = std::make_shared<atlas::cluster::JoinLimiter>();
  context->on_join_attempt = [join_counters](const atlas::cluster::JoinAttempt& a) {
    join_counters->Count(a.outcome);
    const bool ok = a.outcome == "accepted";
    atlas::LogEvent(ok ? spdlog::level::info : spdlog::level::warn, "join attempt",
                    {{"source", a.source}, {"outcome", a.outcome}, {"detail", a.detail}});
  };
  context->health = [cluster_node] { return cluster_node->Health(); };
  context->is_member = [cluster_node](uint64_t id) { return cluster_node->IsMember(id); };
  context->metrics = std::move(metrics);
  context->join = [cluster_node](const atlas::cluster::JoinRequest& r,
                                 atlas::cluster::JoinDone done) {
    cluster_node->HandleJoin(r, std::move(done));
  };
  context->promote = [cluster_node](uint64_t id, atlas::cluster::JoinDone done) {
    cluster_node->HandlePromote(id, std::move(done));
  };
  return context;
}

// Renews node.pem in its last third; gRPC reads it again by itself, HTTPS and the reports are
// told here.
atlas::cluster::CertRenewerOptions RenewerOptionsFor(
    const atlas::Config& config, std::shared_ptr<atlas::cluster::TrustedCas> cas,
    atlas::cluster::HttpsServer* https, atlas::ClusterNode* cluster_node) {
  return {config.data_dir, config.join, config.node_cert_lifetime_s,
          [https, cluster_node, cas](X509* cert, EVP_PKEY* key) {
            if (absl::Status s = https->SetCertificate(cert, key); !s.ok()) {
              spdlog::error("certificate renewal: HTTPS keeps the old certificate: {}",
                            s.message());
            }
            cluster_node->SetCertificate(atlas::cluster::CertNotAfterMs(cert),
                                         atlas::cluster::IssuerFingerprint(cert, *cas->Get()));
          }};
}

// Runs the io threads until SIGINT or SIGTERM, then shuts down gracefully: stop accepting,
// let in-flight commands finish (bounded), close sessions; the caller then drains the commit
// queue and closes RocksDB.
void ServeUntilSignalled(atlas::socketproto::IoPool& pool,
                         atlas::socketproto::SocketServer& server,
                         atlas::cluster::HttpsServer& https, atlas::WatchHub& watch_hub) {
  boost::asio::io_context& io = pool.main();
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
    pool.Stop();
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
    https.Stop();
    // Watches never finish on their own: end them so that the drain does not wait for them
    // (the hub's thread does it; it needs nothing from this one).
    watch_hub.EndAll("server shutting down");
    drain();
  });

  pool.Run();
}

}  // namespace

int main(int argc, char** argv) {
  atlas::Config config;
  if (std::optional<int> exit_code = ParseOrExit(argc, argv, &config)) return *exit_code;
  HideJoinToken(argc, argv, config.join_token);
  PrepareProcess(config);
  auto store = OpenStore(config);
  if (!store.ok()) {
    spdlog::error("{}", store.status().message());
    return 1;
  }
  config.listen = ResolveListen(config.listen);
  if (config.advertise.empty() || config.advertise.ends_with(":0"))
    config.advertise = config.listen;
  auto setup = atlas::SetUpNode(config, store->get());
  if (!setup.ok()) {
    // Join errors name the member that answered (join_client.cc).
    spdlog::error("{}", setup.status().message());
    return 1;
  }
  atlas::SetLogNode(setup->node_id);

  // The peer transport (gRPC, mutual TLS with the cluster CA) and the node's cluster runtime.
  std::unique_ptr<atlas::ClusterNode> cluster_node;
  atlas::PeerTransport transport(TransportOptionsFor(config, *setup),
                                 [&cluster_node](std::vector<atlas::consensus::Message> ms) {
                                   if (cluster_node) cluster_node->Deliver(std::move(ms));
                                 });
  atlas::CommandMetrics command_metrics(atlas::CommandNames());
  std::atomic<atlas::cluster::CertRenewer*> renewer_slot{nullptr};
  auto ca_rotation = CaRotationFor(config, *setup, &renewer_slot);
  atlas::ClusterNodeOptions cluster_options = ClusterOptionsFor(config, *setup, ca_rotation);
  cluster_options.load = [&command_metrics] { return command_metrics.Totals(); };
  cluster_node = std::make_unique<atlas::ClusterNode>(std::move(cluster_options), &transport);
  transport.SetReportSource([&cluster_node] { return cluster_node->Report(); });
  // Declared after both: runs before either goes away, on every return path.
  absl::Cleanup unset_report = [&transport] { transport.SetReportSource(nullptr); };
  if (absl::Status s = transport.Start(); !s.ok()) {
    spdlog::error("peer transport on {} (setting listen): {}", config.listen, s.message());
    return 1;
  }

  // The node keeps it coherent.
  atlas::AclCache acls(atlas::AclCacheBytes(config.memory_budget_bytes));
  atlas::WatchHub watch_hub(store->get(), WatchOptionsFor(config, store->get(), &acls));
  auto replicator_or = StartNode(config, *setup, store->get(), &watch_hub, &transport,
                                 cluster_node.get(), &acls);
  if (!replicator_or.ok()) {
    spdlog::error("{}", replicator_or.status().message());
    return 1;
  }
  atlas::NodeLoop& replicator = **replicator_or;
  cluster_node->Attach(&replicator);
  cluster_node->StartFailureDetector();
  // On every return from here on: the node loop stops first (its pending timers end the
  // runtime's waits), then the cluster runtime, before either is destroyed (a server that
  // fails to start must not leave the failure detector calling into a freed node loop).
  absl::Cleanup stop_node = [&replicator, &cluster_node] {
    replicator.Shutdown();
    cluster_node->Stop();
  };
  atlas::HeapTrimmer heap_trimmer([&replicator] { return replicator.objects().rested; },
                                  atlas::HeapTrimmer::kAfterRests, absl::Seconds(10));

  atlas::NodeIdentity self = IdentityFor(config, *setup);
  // Client connections are spread over io-threads threads; the first also runs the listeners.
  atlas::socketproto::IoPool pool(config.io_threads);
  boost::asio::io_context& io = pool.main();
  atlas::Executor executor(
      store->get(), &replicator, self,
      ExecutorOptionsFor(config, cluster_node.get(), &command_metrics, &watch_hub, &acls));
  atlas::socketproto::SocketServer server(io, ServerOptionsFor(config), &executor, &pool);
  if (absl::Status s = server.Start(); !s.ok()) {
    spdlog::error("{}", s.message());
    return 1;
  }
  atlas::JoinCounters join_counters;
  const MetricsSources metrics{&self,
                               &command_metrics,
                               &replicator,
                               &watch_hub,
                               cluster_node.get(),
                               &server,
                               store->get(),
                               &join_counters,
                               &transport.stats(),
                               std::chrono::steady_clock::now()};
  atlas::console::Console console({self, cluster_node.get(), &replicator, store->get()});
  atlas::cluster::HttpsServerOptions https_options;
  https_options.listen = config.http_listen;
  auto https = atlas::cluster::HttpsServer::Start(
      io, https_options, setup->cert.get(), setup->key.get(),
      HttpContextFor(config, ca_rotation->cas(), cluster_node.get(), &join_counters,
                     [&metrics] { return MetricsText(metrics); }, &console));
  if (!https.ok()) {
    spdlog::error("HTTPS on {} (setting http-listen): {}", config.http_listen,
                  https.status().message());
    return 1;
  }
  atlas::cluster::CertRenewer renewer(
      RenewerOptionsFor(config, ca_rotation->cas(), https->get(), cluster_node.get()));
  renewer_slot.store(&renewer);
  renewer.Start();
  spdlog::info(
      "atlasd {} serving cluster {} as node {} (region {}) on {}; peers on {}, HTTPS "
      "on port {}",
      self.version, setup->cluster_id, self.id, self.region, config.socket, config.listen,
      (*https)->port());

  ServeUntilSignalled(pool, server, **https, watch_hub);
  std::move(stop_node).Invoke();
  transport.Shutdown();
  store->reset();
  spdlog::info("stopped");
  return 0;
}
