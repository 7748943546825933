// atlasd settings (shared/spec/operations.md §Settings): flags, a TOML config file (--config), and
// defaults, in that order of precedence. Names are the same in both places.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace atlas {

struct Config {
  std::string config_file;
  std::string data_dir = "./atlas-data";
  std::string socket;  // default: <data-dir>/atlas.sock
  std::string socket_mode = "0660";
  std::string region = "local";
  std::string node_name;  // default: the host name
  std::string listen = "127.0.0.1:7400";
  std::string advertise;  // default: listen
  std::string http_listen = "127.0.0.1:7480";
  std::string console_access = "open";  // open | client-cert | off (docs/console.md)
  std::string node_cert_lifetime = "365d";
  std::string join;
  std::string join_token;
  // A file holding the join token (read once at the first start): keeps it out of the process's
  // arguments, which every local user can read in /proc.
  std::string join_token_file;
  // Lifetime of the join token a new cluster creates ("24h"; "never"; "90s", "15m", "2h", "7d").
  std::string join_token_ttl = "24h";
  int fn = 0;
  int fz = 0;
  std::string principal_mode = "assume";
  std::vector<std::string> admin_users;
  std::vector<std::string> backup_users;
  size_t max_line_bytes = size_t{1} << 20;
  size_t max_blob_bytes = size_t{128} << 20;
  size_t max_inflight_per_conn = 1024;
  size_t max_pending_output_bytes = size_t{16} << 20;
  size_t max_connections = 16384;  // client connections at once
  // RocksDB's block cache, memtables and index/filter blocks together (docs/storage.md §Memory).
  size_t memory_budget_bytes = size_t{256} << 20;
  int io_threads = 2;
  // Catch-up (log entries, snapshot chunks) this node sends to learners, all together; 0: no
  // limit (docs/storage.md §Snapshots).
  uint64_t catchup_bytes_per_second = uint64_t{64} << 20;
  uint64_t watch_history = 10'000;  // row changes kept per table for WATCH ... FROM
  uint64_t watch_history_bytes = uint64_t{8} << 20;  // ... and no more bytes of them (0: any)
  uint64_t watch_lag_max = 5'000;   // revisions a watcher may fall behind before it is cut off
  size_t watch_max = 100'000;       // watchers on this node
  // A node whose clock is further than this from its peers' neither owns tables nor serves
  // data commands (docs/consensus.md §Time). "500ms", "1s", ... (CockroachDB's default).
  std::string max_clock_offset = "500ms";
  // Owner read leases (docs/consensus.md §Owner read leases): how long an acceptor's grant
  // lasts ("2s"; "off": every read of a table whose owner some Q1 leaves out runs a round),
  // and the bound on every node's clock rate error that their safety assumes (ppm).
  std::string read_lease = "2s";
  int64_t max_clock_drift_ppm = 10'000;
  std::string log_level = "info";
  std::string log_format = "text";

  bool embedded_default = false;  // started with no arguments at all
  unsigned socket_mode_bits = 0660;
  int64_t max_clock_offset_ms = 500;
  int64_t read_lease_ms = 2000;  // 0: off
  int64_t join_token_ttl_ms = 24 * 3600 * 1000;  // 0: never expires
  int64_t node_cert_lifetime_s = 365 * 24 * 3600;
};

// "250ms", "2s", "1m" (a positive integer and a unit: ms, s, m): milliseconds, or nullopt.
std::optional<int64_t> ParseShortDurationMs(std::string_view text);

// Parses argv (and the config file it names). On --help, prints usage and returns a
// Cancelled status whose message is the help text; on bad input, InvalidArgument with a
// message that names the setting.
absl::StatusOr<Config> ParseConfig(int argc, char** argv);

}  // namespace atlas
