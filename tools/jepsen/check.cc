// atlas-jepsen-check: the offline checks of a fault-injection run (docs/testing.md, "Fault
// injection on real clusters").
//
//   atlas-jepsen-check history FILE
//       FILE: one operation per line, tab-separated:
//         client  key  W|R|C  value  invoke_ns  return_ns  ok|unknown|refused
//       (reads that failed are not recorded; a write whose outcome is unknown has "unknown"
//       and no meaningful return time). C is a compare-and-set, its value "<expected>><new>"
//       (expected "" = absent); "refused" is a compare-and-set refused by its condition.
//       Checks the history for linearizability with the simulator's checker, key by key.
//       Exit 0 when linearizable, 1 when not, 3 when the search was inconclusive.
//   atlas-jepsen-check digest DATA_DIR TABLE...
//       Opens a stopped node's database and prints, per table, the size and an FNV-1a hash of
//       its replicated state (StateMachine::SnapshotTable): converged replicas print the same.
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/str_split.h"
#include "atlasd/state_machine.h"
#include "storage/coding.h"
#include "storage/keys.h"
#include "storage/records.h"
#include "storage/store.h"
#include "tests/sim/linearizability.h"

namespace {

int Usage() {
  std::fprintf(stderr,
               "usage: atlas-jepsen-check history FILE\n"
               "       atlas-jepsen-check digest DATA_DIR TABLE...\n");
  return 2;
}

int CheckHistory(const char* path) {
  std::ifstream in(path);
  if (!in) {
    std::fprintf(stderr, "cannot read %s\n", path);
    return 2;
  }
  std::vector<atlas::sim::Operation> ops;
  uint64_t writes_ok = 0, writes_unknown = 0, reads = 0, cas_refused = 0;
  std::string line;
  int lineno = 0;
  while (std::getline(in, line)) {
    ++lineno;
    if (line.empty()) continue;
    std::vector<std::string> f = absl::StrSplit(line, '\t');
    const bool cas = f.size() == 7 && f[2] == "C";
    if (f.size() != 7 || (f[2] != "W" && f[2] != "R" && !cas) ||
        (f[6] != "ok" && f[6] != "unknown" && !(cas && f[6] == "refused")) ||
        (cas && f[3].find('>') == std::string::npos)) {
      std::fprintf(stderr, "%s:%d: malformed line\n", path, lineno);
      return 2;
    }
    atlas::sim::Operation op;
    op.client = std::stoi(f[0]);
    op.key = f[1];
    op.is_write = f[2] == "W";
    op.value = f[3];
    op.invoke = std::stoull(f[4]);
    op.ret = std::stoull(f[5]);
    op.completed = f[6] != "unknown";
    if (cas) {
      op.is_cas = true;
      op.expected = f[3].substr(0, f[3].find('>'));
      op.value = f[3].substr(f[3].find('>') + 1);
      op.cas_applied = f[6] != "refused";
      if (!op.cas_applied) ++cas_refused;
    }
    if (!op.is_write && !cas && !op.completed) continue;  // A failed read says nothing.
    if (op.is_write || (cas && op.cas_applied)) {
      ++(op.completed ? writes_ok : writes_unknown);
    } else if (!cas) {
      ++reads;
    }
    ops.push_back(std::move(op));
  }
  atlas::sim::LinearizabilityResult r = atlas::sim::CheckLinearizable(ops, 20'000'000);
  std::printf("history: %zu operations (%" PRIu64 " acknowledged writes, %" PRIu64
              " writes with unknown outcome, %" PRIu64 " compare-and-sets refused, %" PRIu64
              " reads); search steps %" PRIu64 "\n",
              ops.size(), writes_ok, writes_unknown, cas_refused, reads, r.steps);
  if (!r.ok) {
    std::printf("NOT LINEARIZABLE: %s\n", r.detail.c_str());
    return 1;
  }
  if (r.inconclusive) {
    std::printf("INCONCLUSIVE: the search bound was hit (%s)\n", r.detail.c_str());
    return 3;
  }
  std::printf("linearizable\n");
  return 0;
}

uint64_t Fnv1a(const std::string& s) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : s) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return h;
}

// A table's snapshot (records of: column family byte, key, value) without what is local to the
// node: the table state's `whole_slot` says how this node reached the state (a snapshot
// installs it whole, the log applies it command by command), not what the state is.
std::string Replicated(const std::string& snapshot) {
  std::string out;
  std::string_view in = snapshot;
  while (!in.empty()) {
    const char cf = in[0];
    in.remove_prefix(1);
    std::string_view key, value;
    if (!atlas::storage::GetLengthPrefixed(&in, &key) ||
        !atlas::storage::GetLengthPrefixed(&in, &value)) {
      return snapshot;  // Not the expected format: compare the bytes as they are.
    }
    std::string v(value);
    if (cf == static_cast<char>(atlas::storage::Cf::kMeta) && atlas::storage::TableOfStateKey(key)) {
      if (auto state = atlas::storage::DecodeTableState(value)) {
        state->whole_slot = false;
        v = atlas::storage::EncodeTableState(*state);
      }
    }
    out.push_back(cf);
    atlas::storage::PutLengthPrefixed(&out, key);
    atlas::storage::PutLengthPrefixed(&out, v);
  }
  return out;
}

int Digest(const std::string& data_dir, const std::vector<std::string>& tables) {
  auto store = atlas::storage::Store::Open(data_dir + "/db", {});
  if (!store.ok()) {
    std::fprintf(stderr, "%s: %s\n", data_dir.c_str(), std::string(store.status().message()).c_str());
    return 2;
  }
  atlas::StateMachine sm(store->get());
  for (const std::string& t : tables) {
    const std::string snap = Replicated(sm.SnapshotTable(t));
    std::printf("%s %zu %016" PRIx64 "\n", t.c_str(), snap.size(), Fnv1a(snap));
    if (std::getenv("ATLAS_DIGEST_DUMP") != nullptr) {  // The bytes, to see what differs.
      for (unsigned char ch : snap) std::printf(ch >= 32 && ch < 127 ? "%c" : "\\x%02x", ch);
      std::printf("\n");
    }
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) return Usage();
  const std::string verb = argv[1];
  if (verb == "history" && argc == 3) return CheckHistory(argv[2]);
  if (verb == "digest" && argc >= 4) {
    return Digest(argv[2], std::vector<std::string>(argv + 3, argv + argc));
  }
  return Usage();
}
