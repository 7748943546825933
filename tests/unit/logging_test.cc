// Structured log lines (atlasd/logging.h): what operators grep and what log shippers parse.
#include <catch2/catch.hpp>

#include <sstream>

#include "atlasd/logging.h"
#include "nlohmann/json.hpp"
#include "spdlog/sinks/ostream_sink.h"
#include "spdlog/spdlog.h"

namespace {

std::string LogOnce(const std::string& format, uint64_t node) {
  std::ostringstream out;
  auto previous = spdlog::default_logger();
  const auto level = spdlog::get_level();
  auto sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(out);
  atlas::SetupLogging("info", format, sink);
  atlas::SetLogNode(node);
  atlas::LogEvent(spdlog::level::info, "owner elected",
                  {{"table", "users"}, {"ballot", "7.2"}, {"detail", "a \"quoted\" word"}});
  atlas::LogEvent(spdlog::level::debug, "phase1 started", {{"table", "users"}});  // below level
  spdlog::info("plain {}", "line");
  atlas::SetLogNode(0);
  spdlog::set_default_logger(previous);  // `out` goes away
  spdlog::set_level(level);
  return out.str();
}

}  // namespace

TEST_CASE("text logs: fields after the message and the node after the program name") {
  std::string out = LogOnce("text", 2);
  INFO(out);
  CHECK(out.find(" I atlasd n2: owner elected table=users ballot=7.2 "
                 "detail=\"a \\\"quoted\\\" word\"\n") != std::string::npos);
  CHECK(out.find("phase1 started") == std::string::npos);
  // Fields belong to their event only.
  CHECK(out.find(" I atlasd n2: plain line\n") != std::string::npos);
}

TEST_CASE("JSON logs: one object per line with the node and every field as a key") {
  std::string out = LogOnce("json", 3);
  std::istringstream lines(out);
  std::string first, second, extra;
  REQUIRE(std::getline(lines, first));
  REQUIRE(std::getline(lines, second));
  CHECK_FALSE(std::getline(lines, extra));
  auto event = nlohmann::json::parse(first);
  CHECK(event["level"] == "info");
  CHECK(event["node"] == 3);
  CHECK(event["msg"] == "owner elected");
  CHECK(event["table"] == "users");
  CHECK(event["ballot"] == "7.2");
  CHECK(event["detail"] == "a \"quoted\" word");
  auto plain = nlohmann::json::parse(second);
  CHECK(plain["msg"] == "plain line");
  CHECK_FALSE(plain.contains("table"));
}

TEST_CASE("logs name no node until the node knows its id") {
  std::string out = LogOnce("json", 0);
  std::istringstream lines(out);
  std::string first;
  REQUIRE(std::getline(lines, first));
  CHECK_FALSE(nlohmann::json::parse(first).contains("node"));
}
