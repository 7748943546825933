// The WAN model of wan-proxy (tools/wan/link_model.h): matrix parsing, per-link delays,
// cuts, control commands, in-order delivery under jitter.
#include <catch2/catch.hpp>

#include "tools/wan/link_model.h"

namespace atlas::wan {
namespace {

const char* kMatrix =
    "# comment\n"
    "zone,va,or,jp\n"
    "va,0,86,156\n"
    "or,86,0,131\n"
    "jp,156,131,0\n";

LinkModel Model() {
  std::string error;
  auto m = RttMatrix::Parse(kMatrix, &error);
  REQUIRE(m.has_value());
  return LinkModel(*m,
                   {{1, "va", "10.77.1.2"}, {2, "va", "10.77.2.2"}, {3, "or", "10.77.3.2"},
                    {4, "jp", "10.77.4.2"}},
                   0.4, 7);
}

TEST_CASE("the RTT matrix parses the shared CSV format and rejects malformed ones", "[unit]") {
  std::string error;
  auto m = RttMatrix::Parse(kMatrix, &error);
  REQUIRE(m.has_value());
  CHECK(m->zones == std::vector<std::string>{"va", "or", "jp"});
  CHECK(m->rtt_ms[2][1] == 131);
  CHECK_FALSE(RttMatrix::Parse("va,0\n", &error));
  CHECK(error.find("header") != std::string::npos);
  CHECK_FALSE(RttMatrix::Parse("zone,a,b\na,0,1\n", &error));             // a row missing
  CHECK_FALSE(RttMatrix::Parse("zone,a,b\na,0,x\nb,1,0\n", &error));       // not a number
  CHECK_FALSE(RttMatrix::Parse("zone,a,b\nb,0,1\na,1,0\n", &error));       // rows out of order
  CHECK_FALSE(RttMatrix::Parse("zone,a\na,-1\n", &error));                 // negative
}

TEST_CASE("each directed link is delayed by half its zones' RTT", "[unit]") {
  LinkModel m = Model();
  CHECK(m.DelayUs(1, 3) == 43000);
  CHECK(m.DelayUs(3, 4) == 65500);
  CHECK(m.DelayUs(1, 2) == 200);  // same zone: half the intra-zone RTT
  CHECK(m.DelayUs(0, 3) == 0);    // a client outside the lab
  CHECK(m.NodeOfSource("10.77.3.2") == 3);
  CHECK(m.NodeOfSource("127.0.0.1") == 0);
}

TEST_CASE("control commands cut, slow and heal single directions", "[unit]") {
  LinkModel m = Model();
  CHECK(m.Control("cut 1 3") == "OK");
  CHECK(m.Cut(1, 3));
  CHECK_FALSE(m.Cut(3, 1));
  CHECK(m.Control("slow 3 1 100") == "OK");
  CHECK(m.DelayUs(3, 1) == 143000);
  CHECK(m.Control("delay 1 3") == "OK 43.000 ms cut");
  CHECK(m.Control("heal 1 3") == "OK");
  CHECK_FALSE(m.Cut(1, 3));
  CHECK(m.Control("cut 4 2") == "OK");
  CHECK(m.Control("heal") == "OK healed every link");
  CHECK_FALSE(m.Cut(4, 2));
  CHECK(m.DelayUs(3, 1) == 43000);
  CHECK(m.Control("cut 1 9").starts_with("ERROR"));   // unknown node
  CHECK(m.Control("cut 1 1").starts_with("ERROR"));   // not a link
  CHECK(m.Control("slow 1 3 -5").starts_with("ERROR"));
  CHECK(m.Control("teleport").starts_with("ERROR"));
}

TEST_CASE("jitter never reorders a link's bytes", "[unit]") {
  LinkModel m = Model();
  m.SetJitterMs(20);
  InOrderClock clock;
  int64_t last = 0;
  bool varied = false;
  for (int64_t now = 0; now < 100000; now += 100) {
    const int64_t d = m.DelayUs(1, 3);
    CHECK(d >= 43000);
    CHECK(d <= 63000);
    varied |= d != 43000;
    const int64_t at = clock.Schedule(now, d);
    CHECK(at >= last);
    CHECK(at >= now + 43000);
    last = at;
  }
  CHECK(varied);
}

}  // namespace
}  // namespace atlas::wan
