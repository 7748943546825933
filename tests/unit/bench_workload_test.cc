// atlas-bench's pure parts: which key a request touches (zipf skew, locality shares, conflict
// share, the shifting hot zone, key names) and the RESP encoding and incremental parsing.
// Shares are checked against their expected values with bounds of several standard deviations
// of a fixed-seed sample, so the tests are deterministic and not fragile.
#include <catch2/catch.hpp>
#include <cmath>
#include <map>
#include <random>

#include "tools/bench/resp.h"
#include "tools/bench/workload.h"

using namespace atlas::bench;

namespace {

constexpr char kFiveZones[] =
    "# comment\n"
    "zone,va,or,ca,ir,jp\n"
    "va,0.70,0.05,0.10,0.10,0.05\n"
    "or,0.10,0.70,0.10,0.05,0.05\n"
    "ca,0.10,0.10,0.70,0.05,0.05\n"
    "ir,0.10,0.05,0.10,0.70,0.05\n"
    "jp,0.05,0.10,0.10,0.05,0.70\n";

std::shared_ptr<const Workload> Make(WorkloadSpec spec) {
  auto w = Workload::Create(std::move(spec));
  REQUIRE(w.ok());
  return *w;
}

// |observed share - p| within 5 standard deviations of a binomial share over n draws.
void CheckShare(uint64_t hits, uint64_t n, double p) {
  double sd = std::sqrt(p * (1 - p) / static_cast<double>(n));
  INFO("hits " << hits << " of " << n << ", expected share " << p);
  CHECK(std::abs(static_cast<double>(hits) / static_cast<double>(n) - p) <= 5 * sd + 1e-12);
}

}  // namespace

TEST_CASE("zipf: probabilities follow 1/(k+1)^s and samples match them") {
  Zipf z(1000, 0.99);
  double h = 0;
  for (int k = 1; k <= 1000; ++k) h += std::pow(k, -0.99);
  CHECK(z.Probability(0) == Approx(1 / h));
  CHECK(z.Probability(9) == Approx(std::pow(10, -0.99) / h));
  CHECK(z.Probability(0) / z.Probability(1) == Approx(std::pow(2, 0.99)));

  std::mt19937_64 rng(7);
  constexpr uint64_t n = 200000;
  std::vector<uint64_t> counts(1000);
  for (uint64_t i = 0; i < n; ++i) {
    uint64_t k = z(rng);
    REQUIRE(k < 1000);
    ++counts[k];
  }
  CheckShare(counts[0], n, z.Probability(0));
  CheckShare(counts[1], n, z.Probability(1));
  CheckShare(counts[99], n, z.Probability(99));
  // Skew: the hottest 10% of keys take most of the requests (about 70% at s=0.99).
  uint64_t top = 0;
  for (int k = 0; k < 100; ++k) top += counts[static_cast<size_t>(k)];
  CHECK(static_cast<double>(top) / n > 0.6);
}

TEST_CASE("workload: zipfian picks rank 0 as the hottest key of the single table") {
  WorkloadSpec spec;
  spec.distribution = Distribution::kZipfian;
  spec.keys = 100;
  spec.zipf_s = 1.2;
  auto w = Make(spec);
  std::mt19937_64 rng(1);
  std::map<uint64_t, uint64_t> counts;
  for (int i = 0; i < 20000; ++i) {
    KeyChoice k = w->Pick(0, 0, rng);
    CHECK(k.home == kNoHome);
    ++counts[k.index];
  }
  CHECK(counts[0] > counts[1]);
  CHECK(counts[1] > counts[10]);
  CHECK(w->KeyName({kNoHome, 5}) == "bench.k5");
}

TEST_CASE("workload: zipfian needs s > 0") {
  WorkloadSpec spec;
  spec.distribution = Distribution::kZipfian;
  spec.zipf_s = 0;
  CHECK_FALSE(Workload::Create(spec).ok());
}

TEST_CASE("locality CSV: parsed, rows normalised, errors named") {
  auto m = ParseLocalityCsv(kFiveZones);
  REQUIRE(m.ok());
  CHECK(m->zones == std::vector<std::string>{"va", "or", "ca", "ir", "jp"});
  CHECK(m->rows[0][0] == Approx(0.70));
  CHECK(m->rows[4][1] == Approx(0.10));

  auto pct = ParseLocalityCsv("zone,a,b\na,70,30\nb,50,50\n");
  REQUIRE(pct.ok());
  CHECK(pct->rows[0][0] == Approx(0.7));

  CHECK_FALSE(ParseLocalityCsv("zone,a,b\na,1,0\n").ok());          // no row for b
  CHECK_FALSE(ParseLocalityCsv("zone,a,b\na,1,0\nc,0,1\n").ok());   // c is no column
  CHECK_FALSE(ParseLocalityCsv("zone,a,b\na,1\nb,0,1\n").ok());     // short row
  CHECK_FALSE(ParseLocalityCsv("zone,a,b\na,1,x\nb,0,1\n").ok());   // not a number
  CHECK_FALSE(ParseLocalityCsv("zone,a,b\na,-1,2\nb,0,1\n").ok());  // negative
  CHECK_FALSE(ParseLocalityCsv("zone,a,b\na,0,0\nb,0,1\n").ok());   // sums to 0
  CHECK_FALSE(ParseLocalityCsv("# only a comment\n").ok());
}

TEST_CASE("workload: locality draws each zone's homes with the CSV row's probabilities") {
  WorkloadSpec spec;
  spec.distribution = Distribution::kLocality;
  spec.locality = *ParseLocalityCsv(kFiveZones);
  spec.zones = {"jp", "va"};  // clients in two of the five zones
  spec.keys = 1000;
  auto w = Make(spec);
  std::mt19937_64 rng(3);
  constexpr uint64_t n = 100000;
  for (int zone = 0; zone < 2; ++zone) {
    std::vector<uint64_t> counts(5);
    for (uint64_t i = 0; i < n; ++i) {
      KeyChoice k = w->Pick(zone, 0, rng);
      REQUIRE(k.home >= 0);
      REQUIRE(k.home < 5);
      REQUIRE(k.index < 1000);
      ++counts[static_cast<size_t>(k.home)];
    }
    const auto& row = spec.locality.rows[zone == 0 ? 4 : 0];
    for (size_t h = 0; h < 5; ++h) CheckShare(counts[h], n, row[h]);
  }
  // Homes are the CSV's zones, all of them preloaded, named after their zone.
  CHECK(w->Homes().size() == 5);
  CHECK(w->KeyName({1, 42}) == "bench_or.k42");
}

TEST_CASE("workload: locality refuses a client zone without a CSV row") {
  WorkloadSpec spec;
  spec.distribution = Distribution::kLocality;
  spec.locality = *ParseLocalityCsv(kFiveZones);
  spec.zones = {"default"};
  CHECK_FALSE(Workload::Create(spec).ok());
}

TEST_CASE("workload: conflict sends c percent to the shared tables, the rest home") {
  for (double c : {0.0, 0.02, 0.25, 1.0}) {
    WorkloadSpec spec;
    spec.distribution = Distribution::kConflict;
    spec.conflict = c;
    spec.zones = {"a", "b", "c"};
    auto w = Make(spec);
    std::mt19937_64 rng(11);
    constexpr uint64_t n = 100000;
    uint64_t shared = 0;
    for (uint64_t i = 0; i < n; ++i) {
      KeyChoice k = w->Pick(1, 0, rng);
      if (k.home == kShared) {
        ++shared;
      } else {
        REQUIRE(k.home == 1);  // never another zone's own tables
      }
    }
    CheckShare(shared, n, c);
    CHECK(w->KeyName({kShared, 3}) == "bench_shared.k3");
    CHECK(w->Homes().size() == (c > 0 ? 4u : 3u));
  }
}

TEST_CASE("workload: shift makes one zone hot at a time, in turn") {
  WorkloadSpec spec;
  spec.distribution = Distribution::kShift;
  spec.shift_period_s = 5;
  spec.zones = {"a", "b", "c"};
  auto w = Make(spec);
  CHECK(w->HotZone(0) == 0);
  CHECK(w->HotZone(4.99) == 0);
  CHECK(w->HotZone(5) == 1);
  CHECK(w->HotZone(14) == 2);
  CHECK(w->HotZone(15) == 0);
  CHECK(w->Active(1, 7));
  CHECK_FALSE(w->Active(0, 7));
  CHECK(w->NextChange(7) == Approx(10));
  std::mt19937_64 rng(1);
  CHECK(w->Pick(1, 7, rng).home == kShared);

  WorkloadSpec uniform;
  auto u = Make(uniform);
  CHECK(u->Active(0, 1e9));
  CHECK(std::isinf(u->NextChange(3)));
}

TEST_CASE("workload: --tables spreads a home's keys over tables by index") {
  WorkloadSpec spec;
  spec.distribution = Distribution::kConflict;
  spec.zones = {"eu"};
  spec.tables = 4;
  auto w = Make(spec);
  CHECK(w->KeyName({0, 9}) == "bench_eu_1.k9");
  CHECK(w->KeyName({kShared, 8}) == "bench_shared_0.k8");
  spec.tables = 0;
  CHECK_FALSE(Workload::Create(spec).ok());
}

TEST_CASE("workload: write ratio") {
  WorkloadSpec spec;
  spec.write_ratio = 0.3;
  auto w = Make(spec);
  std::mt19937_64 rng(5);
  uint64_t writes = 0;
  for (int i = 0; i < 100000; ++i) writes += w->IsWrite(rng) ? 1 : 0;
  CheckShare(writes, 100000, 0.3);
}

TEST_CASE("resp: commands are arrays of bulk strings, binary-safe") {
  std::string out;
  resp::AppendCommand(&out, {"SET", "k", "v v"});
  CHECK(out == "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$3\r\nv v\r\n");
  out.clear();
  resp::AppendCommand(&out, {"GET", std::string_view("a\r\nb", 4), ""});
  CHECK(out == "*3\r\n$3\r\nGET\r\n$4\r\na\r\nb\r\n$0\r\n\r\n");
}

TEST_CASE("resp: every reply type parses, and a split reply waits for its rest") {
  const std::string stream =
      "+OK\r\n-ERR wrong type\r\n:42\r\n$5\r\nhe\r\nl\r\n$-1\r\n$0\r\n\r\n"
      "*2\r\n$1\r\na\r\n*1\r\n:-7\r\n*-1\r\n";
  // Feeding one byte more each time: only whole replies come out, at the same places.
  std::vector<resp::Reply> replies;
  size_t pos = 0;
  for (size_t end = 0; end <= stream.size(); ++end) {
    for (;;) {
      resp::Reply r;
      size_t used = 0;
      auto res = resp::Parse(std::string_view(stream).substr(pos, end - pos), &r, &used);
      REQUIRE(res != resp::ParseResult::kInvalid);
      if (res == resp::ParseResult::kIncomplete) break;
      pos += used;
      replies.push_back(std::move(r));
    }
  }
  CHECK(pos == stream.size());
  REQUIRE(replies.size() == 8);
  using T = resp::Reply::Type;
  CHECK((replies[0].type == T::kSimple && replies[0].text == "OK"));
  CHECK((replies[1].type == T::kError && replies[1].text == "ERR wrong type"));
  CHECK((replies[2].type == T::kInteger && replies[2].integer == 42));
  CHECK((replies[3].type == T::kBulk && replies[3].text == "he\r\nl"));
  CHECK(replies[4].type == T::kNull);
  CHECK((replies[5].type == T::kBulk && replies[5].text.empty()));
  REQUIRE(replies[6].type == T::kArray);
  REQUIRE(replies[6].elements.size() == 2);
  CHECK(replies[6].elements[0].text == "a");
  CHECK(replies[6].elements[1].elements[0].integer == -7);
  CHECK(replies[7].type == T::kNull);
}

TEST_CASE("resp: garbage is invalid, not incomplete") {
  resp::Reply r;
  size_t used = 0;
  CHECK(resp::Parse("?what\r\n", &r, &used) == resp::ParseResult::kInvalid);
  CHECK(resp::Parse("$abc\r\n", &r, &used) == resp::ParseResult::kInvalid);
  CHECK(resp::Parse("$-2\r\n", &r, &used) == resp::ParseResult::kInvalid);
  CHECK(resp::Parse("$3\r\nabcd\r\n", &r, &used) == resp::ParseResult::kInvalid);
  CHECK(resp::Parse(":12x\r\n", &r, &used) == resp::ParseResult::kInvalid);
  CHECK(resp::Parse("$3\r\nab", &r, &used) == resp::ParseResult::kIncomplete);
  CHECK(resp::Parse("", &r, &used) == resp::ParseResult::kIncomplete);
}
