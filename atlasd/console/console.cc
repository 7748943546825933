#include "atlasd/console/console.h"

#include <algorithm>
#include <map>
#include <vector>

#include "atlasd/commands/call.h"
#include "atlasd/console/status.h"
#include "consensus/membership.h"
#include "nlohmann/json.hpp"
#include "atlasd/state_machine.h"
#include "socketproto/str.h"

namespace atlas::console {
namespace {

using cluster::HttpResponse;
using json = nlohmann::json;

HttpResponse JsonResponse(const json& j) {
  HttpResponse r;
  // Table names are bytes: whatever is not UTF-8 shows as U+FFFD rather than failing.
  r.body = j.dump(-1, ' ', false, json::error_handler_t::replace);
  return r;
}

}  // namespace

// One walk over the node's replica (Replica::ForEachObject): owners counted, the busiest kept.
struct Console::Summary {
  struct Object {
    std::string name;
    uint64_t owner = 0;
    std::string ballot;
    uint64_t commit_index = 0;
  };
  uint64_t objects = 0;
  std::map<uint64_t, uint64_t> by_owner;
  std::vector<Object> busiest;  // most commits first, at most kBusiestMax
  int64_t wall_ms = 0;
  std::chrono::steady_clock::duration walk{0};  // node-thread time it took

  void Add(const std::string& name, const consensus::Replica::ObjectSummary& s) {
    if (name == consensus::kMembershipObject) return;
    ++objects;
    ++by_owner[s.owner];
    // A heap with the least busy on top: one pass keeps the kBusiestMax busiest.
    if (busiest.size() == kBusiestMax) {
      if (busiest.front().commit_index >= s.commit_index) return;
      std::pop_heap(busiest.begin(), busiest.end(), MoreCommits);
      busiest.pop_back();
    }
    busiest.push_back({name, s.owner, s.promised.ToString(), s.commit_index});
    std::push_heap(busiest.begin(), busiest.end(), MoreCommits);
  }
  void Finish() { std::sort_heap(busiest.begin(), busiest.end(), MoreCommits); }
  static bool MoreCommits(const Object& a, const Object& b) {
    return a.commit_index > b.commit_index;
  }
};

void Console::Handle(const cluster::HttpRequest& request,
                     std::function<void(HttpResponse)> reply) {
  using Kind = cluster::ConsoleRoute::Kind;
  const cluster::ConsoleRoute route = cluster::ParseConsoleTarget(request.target);
  if (!route.error.empty()) return reply(cluster::ErrorResponse(400, route.error));
  switch (route.kind) {
    case Kind::kStatus:
      return reply(Status());
    case Kind::kTables:
      return Tables(route.limit, std::move(reply));
    case Kind::kTable:
      return Table(route.table, std::move(reply));
    case Kind::kAsset:
    case Kind::kNone:
      break;
  }
  std::string_view body, type;
  if (!FindAsset(route.path, &body, &type)) {
    return reply(cluster::ErrorResponse(404, "no such page"));
  }
  HttpResponse r;
  r.body = std::string(body);
  r.content_type = std::string(type);
  reply(std::move(r));
}

HttpResponse Console::Status() {
  return JsonResponse(ClusterStatus(*sources_.cluster, sources_.self));
}

void Console::Tables(size_t limit, std::function<void(HttpResponse)> reply) {
  // Shares a recent walk; otherwise walks on the node thread and answers from there.
  auto answer = [this, limit, reply](std::shared_ptr<const Summary> s) {
    if (!s) return reply(cluster::ErrorResponse(503, "the node is busy; try again"));
    const std::vector<NodeView> nodes = sources_.cluster->Nodes();
    json by_owner = json::array();
    std::map<std::string, uint64_t> by_region;
    for (const auto& [owner, count] : s->by_owner) {
      const std::string region = owner == 0 ? "" : RegionOf(nodes, owner);
      by_owner.push_back({{"owner", owner}, {"region", region}, {"tables", count}});
      by_region[region.empty() ? "-" : region] += count;
    }
    json busiest = json::array();
    for (size_t i = 0; i < s->busiest.size() && i < limit; ++i) {
      const Summary::Object& o = s->busiest[i];
      busiest.push_back({{"table", o.name},
                         {"owner", o.owner},
                         {"region", RegionOf(nodes, o.owner)},
                         {"ballot", o.ballot},
                         {"commit_index", o.commit_index}});
    }
    reply(JsonResponse({{"node", sources_.self.id},
                        {"time_ms", s->wall_ms},
                        {"tables", s->objects},
                        {"walk_ms", std::chrono::duration<double, std::milli>(s->walk).count()},
                        {"by_owner", by_owner},
                        {"by_region", by_region},
                        {"busiest", busiest}}));
  };
  std::shared_ptr<const Summary> recent;
  {
    absl::MutexLock lock(&mu_);
    if (std::chrono::steady_clock::now() < summary_until_) {
      recent = summary_;
    } else {
      // Viewers that come while a walk runs wait for it (a bounded few; others are told to
      // come back); the first starts it.
      if (waiting_.size() >= kWaitingMax) {
        return reply(cluster::ErrorResponse(503, "the node is busy; try again"));
      }
      waiting_.push_back(std::move(answer));
      if (waiting_.size() > 1) return;
    }
  }
  if (recent) return answer(recent);
  Walk(std::make_shared<Summary>(), "");
}

void Console::Walk(std::shared_ptr<Summary> s, std::string after) {
  bool posted = sources_.node->Inspect([this, s, after](const consensus::Replica& replica) {
    const auto t0 = std::chrono::steady_clock::now();
    std::optional<std::string> next = replica.ForEachObject(
        after, kWalkSlice,
        [&](const std::string& name, const consensus::Replica::ObjectSummary& o) {
          s->Add(name, o);
        });
    const auto t1 = std::chrono::steady_clock::now();
    s->walk += t1 - t0;
    if (next) return Walk(s, *next);  // the next slice queues behind the node's other work
    s->Finish();
    s->wall_ms = WallNowMs();
    Answered(s, t1 + std::max<std::chrono::steady_clock::duration>(kSummaryMaxAge,
                                                                  kWalkShare * s->walk));
  });
  if (!posted) Answered(nullptr, std::chrono::steady_clock::now());
}

void Console::Answered(std::shared_ptr<const Summary> s,
                       std::chrono::steady_clock::time_point until) {
  std::vector<Answer> waiting;
  {
    absl::MutexLock lock(&mu_);
    if (s) {
      summary_ = s;
      summary_until_ = until;
    }
    waiting.swap(waiting_);
  }
  for (Answer& a : waiting) a(s);
}

void Console::Table(const std::string& table, std::function<void(HttpResponse)> reply) {
  absl::StatusOr<storage::TableState> st = sources_.store->LoadTableState(table);
  if (!st.ok()) return reply(cluster::ErrorResponse(500, ToStd(st.status().message())));
  uint64_t rows = 0;
  absl::Status counted = sources_.store->ForEachRow(
      table, "", std::nullopt, [&](std::string_view) { return ++rows <= kRowsCountedMax; },
      WallNowMs());
  if (!counted.ok()) return reply(cluster::ErrorResponse(500, ToStd(counted.message())));
  json j = {{"table", table},
            {"object", StateMachine::ObjectOf(table, st->group)},
            {"group", st->group.empty() ? "-" : st->group},
            {"pinned", st->pinned_region.empty() ? "-" : st->pinned_region},
            {"reads", storage::ReadsModeName(*st)},
            {"revision", st->revision},
            {"rows", std::min(rows, kRowsCountedMax)},
            {"rows_more", rows > kRowsCountedMax}};
  // Then the replica's view (node thread), then the quorums its owner uses.
  ClusterView* cluster = sources_.cluster;
  sources_.node->Describe(table, [cluster, j, reply](ObjectInfo info) mutable {
    if (info.owner == 0 && info.commit_index == 0 && j["revision"] == 0) {
      return reply(cluster::ErrorResponse(404, "no such table on this node"));
    }
    const std::vector<NodeView> nodes = cluster->Nodes();
    const std::string object = j["object"];
    j.update({{"owner", info.owner},
              {"region", RegionOf(nodes, info.owner)},
              {"ballot", info.ballot},
              {"commit_index", info.commit_index},
              {"lease_holders", info.lease_holders},
              {"moves", MovesJson(nodes, object)}});
    cluster->Quorums(object, [j, reply](absl::StatusOr<QuorumView> q) mutable {
      if (q.ok()) {
        j.update({{"q1", q->q1}, {"q2", q->q2}});
      } else {
        j["quorum_error"] = ToStd(q.status().message());
      }
      reply(JsonResponse(j));
    });
  });
}

}  // namespace atlas::console
