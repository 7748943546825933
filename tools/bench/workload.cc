#include "tools/bench/workload.h"

#include <algorithm>
#include <cmath>

#include "absl/status/status.h"
#include "socketproto/str.h"

namespace atlas::bench {
namespace {

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t' || s.front() == '\r')) {
    s.remove_prefix(1);
  }
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) {
    s.remove_suffix(1);
  }
  return s;
}

std::vector<std::string> SplitCells(std::string_view line) {
  std::vector<std::string> out;
  for (;;) {
    size_t comma = line.find(',');
    out.emplace_back(Trim(line.substr(0, comma)));
    if (comma == std::string_view::npos) return out;
    line.remove_prefix(comma + 1);
  }
}

double Uniform01(std::mt19937_64& rng) { return std::uniform_real_distribution<double>(0, 1)(rng); }

// Index of the first cumulative value > u (u in [0,1)); the last index absorbs rounding.
size_t Draw(const std::vector<double>& cdf, double u) {
  auto it = std::upper_bound(cdf.begin(), cdf.end(), u);
  return std::min<size_t>(static_cast<size_t>(it - cdf.begin()), cdf.size() - 1);
}

}  // namespace

Zipf::Zipf(uint64_t n, double s) {
  cdf_.resize(n);
  double sum = 0;
  for (uint64_t k = 0; k < n; ++k) {
    sum += std::pow(static_cast<double>(k + 1), -s);
    cdf_[k] = sum;
  }
  for (double& c : cdf_) c /= sum;
}

uint64_t Zipf::operator()(std::mt19937_64& rng) const { return Draw(cdf_, Uniform01(rng)); }

double Zipf::Probability(uint64_t rank) const {
  return rank == 0 ? cdf_[0] : cdf_[rank] - cdf_[rank - 1];
}

absl::StatusOr<LocalityMatrix> ParseLocalityCsv(std::string_view text) {
  LocalityMatrix m;
  bool header = true;
  int line_no = 0;
  while (!text.empty()) {
    size_t nl = text.find('\n');
    std::string_view line = Trim(text.substr(0, nl));
    text.remove_prefix(nl == std::string_view::npos ? text.size() : nl + 1);
    ++line_no;
    if (line.empty() || line.front() == '#') continue;
    std::vector<std::string> cells = SplitCells(line);
    if (header) {
      if (cells.size() < 2) return absl::InvalidArgumentError("locality CSV: header needs zones");
      m.zones.assign(cells.begin() + 1, cells.end());
      m.rows.resize(m.zones.size());
      header = false;
      continue;
    }
    auto zone = std::find(m.zones.begin(), m.zones.end(), cells[0]);
    if (zone == m.zones.end()) {
      return absl::InvalidArgumentError(
          StrCat("locality CSV line ", line_no, ": row '", cells[0], "' is not a column"));
    }
    auto& row = m.rows[static_cast<size_t>(zone - m.zones.begin())];
    if (!row.empty()) {
      return absl::InvalidArgumentError(
          StrCat("locality CSV line ", line_no, ": second row for '", cells[0], "'"));
    }
    if (cells.size() != m.zones.size() + 1) {
      return absl::InvalidArgumentError(StrCat("locality CSV line ", line_no, ": ",
                                               cells.size() - 1, " cells, expected ",
                                               m.zones.size()));
    }
    double sum = 0;
    for (size_t i = 1; i < cells.size(); ++i) {
      char* end = nullptr;
      double v = std::strtod(cells[i].c_str(), &end);
      if (cells[i].empty() || *end != '\0' || !(v >= 0) || !std::isfinite(v)) {
        return absl::InvalidArgumentError(
            StrCat("locality CSV line ", line_no, ": bad probability '", cells[i], "'"));
      }
      row.push_back(v);
      sum += v;
    }
    if (sum <= 0) {
      return absl::InvalidArgumentError(StrCat("locality CSV line ", line_no, ": row sums to 0"));
    }
    for (double& v : row) v /= sum;
  }
  if (m.zones.empty()) return absl::InvalidArgumentError("locality CSV: no header");
  for (size_t i = 0; i < m.zones.size(); ++i) {
    if (m.rows[i].empty()) {
      return absl::InvalidArgumentError(StrCat("locality CSV: no row for zone '", m.zones[i], "'"));
    }
  }
  return m;
}

absl::StatusOr<std::shared_ptr<const Workload>> Workload::Create(WorkloadSpec spec) {
  if (spec.keys == 0) return absl::InvalidArgumentError("--keys must be positive");
  if (spec.tables == 0 || spec.tables > spec.keys) {
    return absl::InvalidArgumentError("--tables must be in 1..keys");
  }
  if (spec.zones.empty()) spec.zones.push_back("default");
  std::shared_ptr<Workload> w(new Workload(std::move(spec)));
  const WorkloadSpec& s = w->spec_;
  switch (s.distribution) {
    case Distribution::kUniform:
      break;
    case Distribution::kZipfian:
      if (!(s.zipf_s > 0)) return absl::InvalidArgumentError("--zipf-s must be positive");
      if (s.keys > (uint64_t{1} << 27)) {
        return absl::InvalidArgumentError("zipfian: at most 134217728 keys (1 GiB of CDF)");
      }
      w->zipf_ = std::make_unique<Zipf>(s.keys, s.zipf_s);
      break;
    case Distribution::kLocality: {
      if (s.locality.zones.empty()) return absl::InvalidArgumentError("locality needs --locality");
      w->home_zones_ = s.locality.zones;
      for (const std::string& z : s.zones) {
        auto it = std::find(s.locality.zones.begin(), s.locality.zones.end(), z);
        if (it == s.locality.zones.end()) {
          return absl::InvalidArgumentError(
              StrCat("zone '", z, "' has no row in the locality CSV (give targets zone=<name>@)"));
        }
        const auto& row = s.locality.rows[static_cast<size_t>(it - s.locality.zones.begin())];
        std::vector<double> cdf;
        double sum = 0;
        for (double p : row) cdf.push_back(sum += p);
        w->locality_cdf_.push_back(std::move(cdf));
      }
      break;
    }
    case Distribution::kConflict:
      if (!(s.conflict >= 0 && s.conflict <= 1)) {
        return absl::InvalidArgumentError("--conflict must be in 0..100 (percent)");
      }
      w->home_zones_ = s.zones;
      break;
    case Distribution::kShift:
      if (!(s.shift_period_s > 0)) return absl::InvalidArgumentError("--shift-every must be > 0");
      break;
  }
  return std::shared_ptr<const Workload>(std::move(w));
}

KeyChoice Workload::Pick(int zone, double elapsed_s, std::mt19937_64& rng) const {
  (void)elapsed_s;  // shift: who is active depends on time, what they touch does not
  KeyChoice k;
  switch (spec_.distribution) {
    case Distribution::kUniform:
      break;
    case Distribution::kZipfian:
      k.index = (*zipf_)(rng);
      return k;
    case Distribution::kLocality:
      k.home = static_cast<int>(Draw(locality_cdf_[static_cast<size_t>(zone)], Uniform01(rng)));
      break;
    case Distribution::kConflict:
      k.home = Uniform01(rng) < spec_.conflict ? kShared : zone;
      break;
    case Distribution::kShift:
      k.home = kShared;
      break;
  }
  k.index = std::uniform_int_distribution<uint64_t>(0, spec_.keys - 1)(rng);
  return k;
}

bool Workload::IsWrite(std::mt19937_64& rng) const {
  if (spec_.write_ratio >= 1) return true;
  if (spec_.write_ratio <= 0) return false;
  return Uniform01(rng) < spec_.write_ratio;
}

int Workload::HotZone(double elapsed_s) const {
  auto epoch = static_cast<uint64_t>(std::max(0.0, elapsed_s) / spec_.shift_period_s);
  return static_cast<int>(epoch % spec_.zones.size());
}

bool Workload::Active(int zone, double elapsed_s) const {
  return spec_.distribution != Distribution::kShift || HotZone(elapsed_s) == zone;
}

double Workload::NextChange(double elapsed_s) const {
  if (spec_.distribution != Distribution::kShift) return INFINITY;
  return (std::floor(std::max(0.0, elapsed_s) / spec_.shift_period_s) + 1) * spec_.shift_period_s;
}

std::string Workload::HomeName(int home) const {
  if (home == kNoHome) return "";
  if (home == kShared) return "shared";
  return home_zones_[static_cast<size_t>(home)];
}

std::string Workload::KeyName(const KeyChoice& k) const {
  std::string name = spec_.table;
  if (k.home != kNoHome) StrAppend(&name, "_", HomeName(k.home));
  if (spec_.tables > 1) StrAppend(&name, "_", k.index % spec_.tables);
  StrAppend(&name, ".k", k.index);
  return name;
}

std::vector<int> Workload::Homes() const {
  switch (spec_.distribution) {
    case Distribution::kUniform:
    case Distribution::kZipfian:
      return {kNoHome};
    case Distribution::kShift:
      return {kShared};
    case Distribution::kLocality:
    case Distribution::kConflict: {
      std::vector<int> homes;
      for (size_t i = 0; i < home_zones_.size(); ++i) homes.push_back(static_cast<int>(i));
      if (spec_.distribution == Distribution::kConflict && spec_.conflict > 0) {
        homes.push_back(kShared);
      }
      return homes;
    }
  }
  return {};
}

}  // namespace atlas::bench
