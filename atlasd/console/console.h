// The operator's console on the node's HTTPS port (docs/console.md): a page (GET /, its script
// and styles under /console/, compiled into the binary) and the JSON it reads, which is also
// the cluster's status API:
//   GET /v1/status          members, zones, Fn/Fz and quorums, RTTs, every node's load and
//                           certificate expiry, recent ownership moves
//   GET /v1/tables?limit=n  tables by owner and region, the most written ones
//   GET /v1/tables/<table>  one table: owner, ballot, quorums, revision, rows, owner history
// Read-only, and no keys or values ever: names, counts and placement. Who may see it is the
// HTTPS server's business (cluster::ConsoleAccess).
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "atlasd/cluster/http_handler.h"
#include "atlasd/cluster_view.h"
#include "atlasd/executor.h"
#include "atlasd/node/node_loop.h"
#include "storage/store.h"

namespace atlas::console {

struct ConsoleSources {
  NodeIdentity self;
  ClusterView* cluster = nullptr;  // members, quorums
  NodeLoop* node = nullptr;        // the replica: owners, ballots, commit indexes
  storage::Store* store = nullptr;  // table state (revision, group, pin), row counts
};

class Console {
 public:
  explicit Console(ConsoleSources sources) : sources_(std::move(sources)) {}
  // Answers a GET of a console path (cluster::HttpHandlerContext::console); `reply` runs once,
  // here or on the node thread.
  void Handle(const cluster::HttpRequest& request,
              std::function<void(cluster::HttpResponse)> reply);

  // How many tables /v1/tables lists at most, and how many rows a table's detail counts
  // before it says "more" (the count runs on an HTTPS thread).
  static constexpr size_t kBusiestMax = cluster::kConsoleTablesMax;
  static constexpr uint64_t kRowsCountedMax = 10'000;
  // The table summary walks every table on the node thread, kWalkSlice tables per task so
  // that other work runs in between. Viewers share one walk, redone at most every
  // kSummaryMaxAge, and never more often than it takes 1/kWalkShare of the node thread.
  static constexpr std::chrono::seconds kSummaryMaxAge{2};
  static constexpr size_t kWalkSlice = 10'000;
  static constexpr int kWalkShare = 20;
  static constexpr size_t kWaitingMax = 64;  // viewers waiting for one walk

 private:
  struct Summary;
  using Answer = std::function<void(std::shared_ptr<const Summary>)>;  // null: not walked
  cluster::HttpResponse Status();
  void Tables(size_t limit, std::function<void(cluster::HttpResponse)> reply);
  void Table(const std::string& table, std::function<void(cluster::HttpResponse)> reply);
  // One slice of the walk after `after`, on the node thread; the next slice, or Answered.
  void Walk(std::shared_ptr<Summary> s, std::string after);
  void Answered(std::shared_ptr<const Summary> s, std::chrono::steady_clock::time_point until);

  const ConsoleSources sources_;
  absl::Mutex mu_;
  std::shared_ptr<const Summary> summary_ ABSL_GUARDED_BY(mu_);
  std::chrono::steady_clock::time_point summary_until_ ABSL_GUARDED_BY(mu_);
  std::vector<Answer> waiting_ ABSL_GUARDED_BY(mu_);
};

// The console's page and its assets by path ("/", "/console/console.js", ...); false when
// there is no such asset (console_assets.cc, generated from atlasd/console/assets/).
bool FindAsset(std::string_view path, std::string_view* body, std::string_view* content_type);

}  // namespace atlas::console
