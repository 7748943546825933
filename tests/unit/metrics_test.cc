// The Prometheus text of atlasd/metrics.h: cumulative buckets, sums, counts and escaping.
#include <catch2/catch.hpp>

#include "atlasd/executor.h"
#include "atlasd/metrics.h"

using atlas::CommandMetrics;
using atlas::LatencyHistogram;
using namespace std::chrono_literals;

TEST_CASE("a latency histogram renders cumulative buckets, the sum in seconds and the count",
          "[unit]") {
  LatencyHistogram h;
  h.Observe(200us);   // <= 0.0005
  h.Observe(3ms);     // <= 0.005
  h.Observe(3ms);
  h.Observe(20s);     // only +Inf
  std::string out;
  h.Render(&out, "x_seconds", "command=\"KEY PUT\"");
  CHECK_THAT(out, Catch::Contains("x_seconds_bucket{command=\"KEY PUT\",le=\"0.0005\"} 1\n"));
  CHECK_THAT(out, Catch::Contains("x_seconds_bucket{command=\"KEY PUT\",le=\"0.0025\"} 1\n"));
  CHECK_THAT(out, Catch::Contains("x_seconds_bucket{command=\"KEY PUT\",le=\"0.005\"} 3\n"));
  CHECK_THAT(out, Catch::Contains("x_seconds_bucket{command=\"KEY PUT\",le=\"10\"} 3\n"));
  CHECK_THAT(out, Catch::Contains("x_seconds_bucket{command=\"KEY PUT\",le=\"+Inf\"} 4\n"));
  CHECK_THAT(out, Catch::Contains("x_seconds_sum{command=\"KEY PUT\"} 20.0062\n"));
  CHECK_THAT(out, Catch::Contains("x_seconds_count{command=\"KEY PUT\"} 4\n"));
  CHECK(h.count() == 4);
}

TEST_CASE("command metrics count latency and errors per command, by the parser's index",
          "[unit]") {
  CommandMetrics m(atlas::CommandNames());
  m.Observe(0, 1ms, false);  // KEY GET
  m.Observe(1, 1ms, true);   // KEY PUT, failed
  m.Observe(99, 1ms, true);  // out of range: ignored
  std::string out;
  m.Render(&out);
  CHECK_THAT(out, Catch::Contains("# TYPE atlas_command_duration_seconds histogram\n"));
  CHECK_THAT(out, Catch::Contains("atlas_command_duration_seconds_count{command=\"KEY GET\"} 1\n"));
  CHECK_THAT(out, Catch::Contains("atlas_command_errors_total{command=\"KEY GET\"} 0\n"));
  CHECK_THAT(out, Catch::Contains("atlas_command_errors_total{command=\"KEY PUT\"} 1\n"));
  CHECK_THAT(out, Catch::Contains("atlas_command_duration_seconds_count{command=\"TABLE GROUP\"} 0\n"));
  CHECK(atlas::LabelValue("a\"b\\c\nd") == "a\\\"b\\\\c\\nd");
}
