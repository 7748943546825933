// Which key each request of atlas-bench touches (docs/atlas-bench.md, «Workloads»). Pure: no
// I/O and no clock; the caller passes the elapsed time and its own random generator, so the unit
// tests can check the distributions exactly.
//
// Keys are grouped by *home*: a zone's own tables, the shared tables, or (uniform / zipfian) no
// home at all. Within a home, --tables T spreads the K keys over T tables, because in atlasd a
// table is the unit of ownership and ordering (one consensus object each).
#pragma once

#include <cstdint>
#include <memory>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace atlas::bench {

enum class Distribution { kUniform, kZipfian, kLocality, kConflict, kShift };

// Samples ranks 0..n-1 with P(k) proportional to 1/(k+1)^s: rank 0 is the hottest key.
// Inversion of a precomputed CDF (8 bytes per key, shared read-only by every worker).
class Zipf {
 public:
  Zipf(uint64_t n, double s);
  uint64_t operator()(std::mt19937_64& rng) const;
  double Probability(uint64_t rank) const;  // for tests and docs

 private:
  std::vector<double> cdf_;
};

// Per-zone probabilities of picking each home zone's tables (the locality CSV).
struct LocalityMatrix {
  std::vector<std::string> zones;         // column (= row) order
  std::vector<std::vector<double>> rows;  // rows[client zone][home zone], each row sums to 1
};

// Parses "zone,a,b,...\n a,0.7,0.1,...": '#' lines are comments; every row needs one cell per
// column, cells >= 0; each row is normalised to sum 1 (so percentages work too). A row's name
// must be one of the columns; every column needs a row.
absl::StatusOr<LocalityMatrix> ParseLocalityCsv(std::string_view text);

struct WorkloadSpec {
  Distribution distribution = Distribution::kUniform;
  uint64_t keys = 10000;        // per home
  uint32_t tables = 1;          // per home
  std::string table = "bench";  // table name prefix
  double write_ratio = 1.0;
  double zipf_s = 0.99;
  double conflict = 0.0;           // share (0..1) of requests to the shared tables
  double shift_period_s = 10;      // shift: the hot zone changes this often
  LocalityMatrix locality;         // kLocality only
  std::vector<std::string> zones;  // the client zones, in target order
};

// The home of a request: an index into the home zones (the locality CSV's columns under
// kLocality, the client zones under kConflict), or one of these.
inline constexpr int kNoHome = -1;
inline constexpr int kShared = -2;

struct KeyChoice {
  int home = kNoHome;
  uint64_t index = 0;  // 0..keys-1 within the home
};

class Workload {
 public:
  // Checks the spec (e.g. every client zone has a locality row) and builds the Zipf table.
  static absl::StatusOr<std::shared_ptr<const Workload>> Create(WorkloadSpec spec);

  const WorkloadSpec& spec() const { return spec_; }

  // The key of a request from a client of zone `zone` (index into spec().zones) at `elapsed_s`
  // seconds into the run. Under kShift a client whose zone is not hot gets nothing to do:
  // callers ask Active() first.
  KeyChoice Pick(int zone, double elapsed_s, std::mt19937_64& rng) const;
  bool IsWrite(std::mt19937_64& rng) const;

  // Shift: whether `zone`'s clients issue requests now, and when that next changes.
  bool Active(int zone, double elapsed_s) const;
  double NextChange(double elapsed_s) const;
  int HotZone(double elapsed_s) const;

  // `<table>[_<home>][_<t>].k<index>`: e.g. bench.k7, bench_va.k7, bench_shared_3.k7.
  std::string KeyName(const KeyChoice& k) const;
  // Every home this workload touches, for the preload.
  std::vector<int> Homes() const;
  // Home zone name (`shared` for kShared, empty for kNoHome).
  std::string HomeName(int home) const;

 private:
  explicit Workload(WorkloadSpec spec) : spec_(std::move(spec)) {}

  WorkloadSpec spec_;
  std::unique_ptr<Zipf> zipf_;
  std::vector<std::string> home_zones_;  // what a home index names: CSV columns or client zones
  // kLocality: per client zone, cumulative probabilities over home_zones_.
  std::vector<std::vector<double>> locality_cdf_;
};

}  // namespace atlas::bench
