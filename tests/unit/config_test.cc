// Settings precedence of docs/operations.md: flags over the config file over defaults.
#include <fstream>

#include <catch2/catch.hpp>

#include "atlasd/config.h"
#include "tests/unit/temp_dir.h"

namespace {
absl::StatusOr<atlas::Config> Parse(std::vector<std::string> args) {
  args.insert(args.begin(), "atlasd");
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  return atlas::ParseConfig(static_cast<int>(argv.size()), argv.data());
}
}  // namespace

TEST_CASE("no arguments is the embedded default") {
  auto c = Parse({});
  REQUIRE(c.ok());
  CHECK(c->embedded_default);
  CHECK(c->data_dir == "./atlas-data");
  CHECK(c->socket == "./atlas-data/atlas.sock");
  CHECK(c->socket_mode_bits == 0660);
}

TEST_CASE("flags override the config file, which overrides defaults") {
  atlas::testing::TempDir dir;
  std::string file = dir.path() + "/atlasd.toml";
  std::ofstream(file) << "# comment\nregion = \"eu\"\ndata-dir = \"/srv/atlas\"\n"
                         "admin-users = [\"root\", \"ops\"]\nsocket-mode = \"0600\"\n";
  auto c = Parse({"--config", file, "--region", "us"});
  REQUIRE(c.ok());
  CHECK(c->region == "us");
  CHECK(c->data_dir == "/srv/atlas");
  CHECK(c->socket == "/srv/atlas/atlas.sock");
  CHECK(c->admin_users == std::vector<std::string>{"root", "ops"});
  CHECK(c->socket_mode_bits == 0600);
  CHECK_FALSE(c->embedded_default);
}

TEST_CASE("bad settings are refused with a message naming them") {
  atlas::testing::TempDir dir;
  std::string file = dir.path() + "/bad.toml";
  std::ofstream(file) << "regoin = \"eu\"\n";
  auto typo = Parse({"--config", file});
  REQUIRE_FALSE(typo.ok());
  CHECK(std::string(typo.status().message()).find("regoin") != std::string::npos);
  CHECK_FALSE(Parse({"--principal-mode", "trust-me"}).ok());
  CHECK_FALSE(Parse({"--socket-mode", "999"}).ok());
  CHECK_FALSE(Parse({"--fz", "-1"}).ok());
  CHECK_FALSE(Parse({"--no-such-flag"}).ok());
  // Found by the config-file fuzzer: an empty data dir was accepted.
  auto empty = Parse({"--data-dir", ""});
  REQUIRE_FALSE(empty.ok());
  CHECK(std::string(empty.status().message()).find("--data-dir") != std::string::npos);
}

TEST_CASE("read leases are on by default and can be set or turned off or refused when bad") {
  auto d = Parse({"--data-dir", "/tmp/x"});
  REQUIRE(d.ok());
  CHECK(d->read_lease_ms == 2000);
  CHECK(d->max_clock_drift_ppm == 10'000);
  auto set = Parse({"--read-lease", "500ms", "--max-clock-drift", "500"});
  REQUIRE(set.ok());
  CHECK(set->read_lease_ms == 500);
  CHECK(set->max_clock_drift_ppm == 500);
  auto off = Parse({"--read-lease", "off"});
  REQUIRE(off.ok());
  CHECK(off->read_lease_ms == 0);
  for (const char* bad : {"0", "10ms", "2h", "soon"}) {
    auto r = Parse({"--read-lease", bad});
    REQUIRE_FALSE(r.ok());
    CHECK(std::string(r.status().message()).find("--read-lease") != std::string::npos);
  }
  CHECK_FALSE(Parse({"--max-clock-drift", "300000"}).ok());
}
