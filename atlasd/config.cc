#include "atlasd/config.h"

#include <unistd.h>

#include "CLI/CLI.hpp"
#include "socketproto/command.h"
#include "socketproto/str.h"

namespace atlas {

namespace {

// Where the node is, how it joins, and who may do what.
void AddNodeOptions(CLI::App* app, Config* c) {
  app->add_option("--data-dir", c->data_dir, "Data directory (RocksDB, socket, join token)");
  app->add_option("--socket", c->socket, "Unix socket path (default <data-dir>/atlas.sock)");
  app->add_option("--socket-mode", c->socket_mode, "Socket file mode, octal");
  app->add_option("--region", c->region, "Zone (region) this node lives in");
  app->add_option("--node-name", c->node_name, "Human-readable node name (default host name)");
  app->add_option("--listen", c->listen, "Peer gRPC/TLS listen address host:port");
  app->add_option("--advertise", c->advertise, "Address peers dial (default: listen)");
  app->add_option("--http-listen", c->http_listen,
                  "HTTPS address: bootstrap, health, metrics, console");
  app->add_option("--console-access", c->console_access,
                  "Who may see the console on the HTTPS port: open | client-cert | off")
      ->check(CLI::IsMember({"open", "client-cert", "off"}));
  app->add_option("--node-cert-lifetime", c->node_cert_lifetime,
                  "How long the node certificates this node signs are valid (365d; 1m at least);"
                  " nodes renew theirs in its last third");
  app->add_option("--join", c->join, "https://host:port of any member, to join its cluster");
  app->add_option("--join-token", c->join_token,
                  "Join token from the cluster (prefer join-token-file: arguments are visible to "
                  "every local user)");
  app->add_option("--join-token-file", c->join_token_file,
                  "File holding the join token (read at the first start only)");
  app->add_option("--join-token-ttl", c->join_token_ttl,
                  "Lifetime of the first join token of a new cluster (24h, 7d, ..., never)");
  app->add_option("--fn", c->fn, "Node failures tolerated per zone (new cluster only)")
      ->check(CLI::Range(0, 16));
  app->add_option("--fz", c->fz, "Zone failures tolerated (new cluster only)")
      ->check(CLI::Range(0, 16));
  app->add_option("--principal-mode", c->principal_mode, "assume | peercred")
      ->check(CLI::IsMember({"assume", "peercred"}));
  app->add_option("--admin-users", c->admin_users, "Principals that may always GRANT/REVOKE")
      ->delimiter(',');
  app->add_option("--backup-users", c->backup_users,
                  "Principals that may read every table for backups (audited in the log)")
      ->delimiter(',');
}

// The limits on clients, watchers and clocks, and logging.
void AddLimitOptions(CLI::App* app, Config* c) {
  app->add_option("--max-line-bytes", c->max_line_bytes, "Longest command line")
      ->check(CLI::Range(size_t{1024}, size_t{1} << 30));
  app->add_option("--max-blob-bytes", c->max_blob_bytes, "Largest KEY BLOB SET payload")
      ->check(CLI::Range(size_t{0}, size_t{1} << 32));
  app->add_option("--max-inflight-per-conn", c->max_inflight_per_conn,
                  "Tagged requests in flight per connection")
      ->check(CLI::Range(size_t{1}, size_t{1} << 20));
  app->add_option("--max-pending-output-bytes", c->max_pending_output_bytes,
                  "Reply bytes queued per connection before it stops reading commands")
      ->check(CLI::Range(size_t{64} << 10, size_t{1} << 34));
  app->add_option("--max-connections", c->max_connections,
                  "Client connections at once (more are refused with ERROR FATAL)")
      ->check(CLI::Range(size_t{1}, size_t{1} << 24));
  app->add_option("--memory-budget-bytes", c->memory_budget_bytes,
                  "RocksDB's memory (block cache, memtables, index and filter blocks together); "
                  "the record caches take 1/8 and 1/8 more, the ACL cache 1/16")
      ->check(CLI::Range(size_t{16} << 20, size_t{1} << 42));
  app->add_option("--catchup-bytes-per-second", c->catchup_bytes_per_second,
                  "Catch-up this node sends to joining or lagging nodes, all together (0: no "
                  "limit)")
      ->check(CLI::Range(uint64_t{0}, uint64_t{1} << 40));
  app->add_option("--io-threads", c->io_threads, "Threads serving client connections")
      ->check(CLI::Range(1, 64));
  app->add_option("--watch-history", c->watch_history,
                  "Row changes kept per table for WATCH ... FROM (revisions)")
      ->check(CLI::Range(uint64_t{16}, uint64_t{1} << 32));
  app->add_option("--watch-history-bytes", c->watch_history_bytes,
                  "Bytes of a table's row changes kept for WATCH ... FROM, at most about (0: "
                  "no bound but --watch-history)")
      ->check(CLI::Range(uint64_t{0}, uint64_t{1} << 42));
  app->add_option("--watch-lag-max", c->watch_lag_max,
                  "Revisions a watcher may fall behind before it is cut off")
      ->check(CLI::Range(uint64_t{1}, uint64_t{1} << 32));
  app->add_option("--watch-max", c->watch_max, "Watchers on this node")
      ->check(CLI::Range(size_t{0}, size_t{1} << 24));
  app->add_option("--max-clock-offset", c->max_clock_offset,
                  "Largest clock offset from the peers a node may own tables and serve with");
  app->add_option("--read-lease", c->read_lease,
                  "Owner read lease: reads with no round for this long after a grant (or off)");
  app->add_option("--max-clock-drift", c->max_clock_drift_ppm,
                  "Largest rate error of any node's clock, in ppm (read leases assume it)")
      ->check(CLI::Range(int64_t{0}, int64_t{200'000}));
  app->add_option("--log-level", c->log_level, "trace | debug | info | warn | error")
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error"}));
  app->add_option("--log-format", c->log_format, "text | json")
      ->check(CLI::IsMember({"text", "json"}));
}

// Settings derived from others, and the checks CLI11 cannot express.
absl::Status Finish(int argc, Config* c) {
  c->embedded_default = argc <= 1;
  // An empty data dir would put the database in the working directory and the socket at
  // "/atlas.sock" (found by the config-file fuzzer).
  if (c->data_dir.empty()) return absl::InvalidArgumentError("--data-dir: must not be empty");
  if (c->socket.empty()) c->socket = c->data_dir + "/atlas.sock";
  if (c->advertise.empty()) c->advertise = c->listen;
  if (c->node_name.empty()) {
    char host[256] = {};
    gethostname(host, sizeof host - 1);
    c->node_name = host;
  }
  try {
    size_t pos = 0;
    unsigned long mode = std::stoul(c->socket_mode, &pos, 8);
    if (pos != c->socket_mode.size() || mode > 0777) throw std::invalid_argument("mode");
    c->socket_mode_bits = static_cast<unsigned>(mode);
  } catch (const std::exception&) {
    return absl::InvalidArgumentError(
        StrCat("--socket-mode: '", c->socket_mode, "' is not an octal mode like 0660"));
  }
  if (c->region.empty() || c->region.find_first_of(" \t\r\n") != std::string::npos) {
    return absl::InvalidArgumentError("--region: must be one word");
  }
  std::optional<int64_t> offset = ParseShortDurationMs(c->max_clock_offset);
  if (!offset || *offset < 10 || *offset > 3'600'000) {
    return absl::InvalidArgumentError(StrCat("--max-clock-offset: '", c->max_clock_offset,
                                             "' is not a duration from 10ms to 1h like 500ms"));
  }
  c->max_clock_offset_ms = *offset;
  if (c->read_lease == "off") {
    c->read_lease_ms = 0;
  } else if (auto lease = ParseShortDurationMs(c->read_lease);
             lease && *lease >= 100 && *lease <= 60'000) {
    c->read_lease_ms = *lease;
  } else {
    return absl::InvalidArgumentError(StrCat("--read-lease: '", c->read_lease,
                                             "' is not off or a duration from 100ms to 1m"));
  }
  if (c->join_token_ttl == "never") {
    c->join_token_ttl_ms = 0;
  } else if (auto ttl = socketproto::ParseDurationMs(c->join_token_ttl)) {
    c->join_token_ttl_ms = *ttl;
  } else {
    return absl::InvalidArgumentError(StrCat("--join-token-ttl: '", c->join_token_ttl,
                                             "' is not a duration like 24h, 7d or never"));
  }
  if (auto life = socketproto::ParseDurationMs(c->node_cert_lifetime); life && *life >= 60'000) {
    c->node_cert_lifetime_s = *life / 1000;
  } else {
    return absl::InvalidArgumentError(StrCat("--node-cert-lifetime: '", c->node_cert_lifetime,
                                             "' is not a duration of 1m or more, like 365d"));
  }
  if (!c->join_token.empty() && !c->join_token_file.empty()) {
    return absl::InvalidArgumentError("--join-token and --join-token-file: give one of them");
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<Config> ParseConfig(int argc, char** argv) {
  Config c;
  CLI::App app{
      "atlasd - WAN-replicated, strongly consistent key-value store (WPaxos)\n"
      "With no arguments: a single-node cluster with data in ./atlas-data.",
      "atlasd"};
  app.set_config("--config", "", "TOML config file with the same setting names");
  app.allow_config_extras(false);
  app.option_defaults()->always_capture_default();
  AddNodeOptions(&app, &c);
  AddLimitOptions(&app, &c);
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp&) {
    return absl::CancelledError(app.help());
  } catch (const CLI::CallForAllHelp&) {
    return absl::CancelledError(app.help());
  } catch (const CLI::ParseError& e) {
    return absl::InvalidArgumentError(e.what());
  }
  if (absl::Status s = Finish(argc, &c); !s.ok()) return s;
  return c;
}

std::optional<int64_t> ParseShortDurationMs(std::string_view text) {
  int64_t unit = 0;
  if (text.ends_with("ms")) {
    unit = 1;
    text.remove_suffix(2);
  } else if (text.ends_with('s')) {
    unit = 1000;
    text.remove_suffix(1);
  } else if (text.ends_with('m')) {
    unit = 60'000;
    text.remove_suffix(1);
  }
  if (unit == 0 || text.empty() || text.size() > 9) return std::nullopt;
  int64_t n = 0;
  for (char ch : text) {
    if (ch < '0' || ch > '9') return std::nullopt;
    n = n * 10 + (ch - '0');
  }
  return n * unit;
}

}  // namespace atlas
