// NODE LIST / INFO / STATUS / PING / LEAVE and QUORUM INFO: this node's view of the cluster
// (docs/protocol.md §NODE, QUORUM, TABLE). No read barrier: they must answer when quorums
// cannot form.
#include "absl/strings/str_format.h"
#include "atlasd/commands/call.h"
#include "atlasd/console/status.h"
#include "atlasd/state_machine.h"
#include "socketproto/str.h"
#include "storage/keys.h"

namespace atlas {

namespace sp = socketproto;

void Executor::Run(const CallPtr& call, const sp::NodeList&) {
  for (const NodeView& n : Nodes()) call->reply.Line(NodeLine(n, false));
  call->Ok();
}

void Executor::Run(const CallPtr& call, const sp::NodeInfo& c) {
  for (const NodeView& n : Nodes()) {
    if (n.id != c.id) continue;
    call->reply.Line(NodeLine(n, true));
    return call->Ok();
  }
  call->Warn(StrCat("unknown node ", c.id));
}

void Executor::Run(const CallPtr& call, const sp::NodeStatus&) {
  if (!options_.cluster) return call->Warn("NODE STATUS: this node runs without a cluster");
  call->reply.Blob(console::ClusterStatus(*options_.cluster, self_)
                       .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
  call->Ok();
}

void Executor::Run(const CallPtr& call, const sp::NodePing& c) {
  const uint64_t id = c.id;
  auto pong = [call, id](absl::StatusOr<double> ms) {
    if (!ms.ok()) return call->Warn(ToStd(ms.status().message()));
    call->reply.Line(absl::StrFormat("PONG node=%d rtt_ms=%.3f", id, *ms));
    call->Ok();
  };
  if (options_.cluster) return options_.cluster->Ping(id, std::move(pong));
  if (id != self_.id) return call->Warn(StrCat("unknown node ", id));
  // One node: the round trip is through this node's own command path.
  auto t0 = std::chrono::steady_clock::now();
  replicator_->Ping([pong, t0]() {
    pong(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  });
}

void Executor::Run(const CallPtr& call, const sp::NodeLeave& c) {
  if (!options_.cluster) return call->Warn("NODE LEAVE: this node runs without a cluster");
  options_.cluster->RemoveNode(c.id, [call](absl::Status s) {
    if (!s.ok()) return call->Warn(ToStd(s.message()));
    call->Ok();
  });
}

void Executor::Run(const CallPtr& call, const sp::QuorumSet& c) {
  if (!options_.cluster) return call->Warn("QUORUM SET: this node runs without a cluster");
  options_.cluster->SetQuorum(c.fn, c.fz, [call](absl::Status s) {
    if (!s.ok()) return call->Warn(ToStd(s.message()));
    call->Ok();
  });
}

void Executor::Run(const CallPtr& call, const sp::QuorumInfo& c) {
  if (!options_.cluster) {
    std::string member = StrCat("id=", self_.id, " region=", self_.region, " addr=", self_.addr,
                                " port=", self_.port);
    call->reply.Line("Q1 size=1").Line(member).Line("Q2 size=1").Line(member);
    return call->Ok();
  }
  std::vector<NodeView> nodes = Nodes();
  // A grouped table's quorums are its group's object's.
  std::string object = c.table;
  if (auto raw = store_->Get(storage::Cf::kMeta, storage::TableMetaKey(object, "state"));
      raw.ok() && raw->has_value()) {
    if (auto st = storage::DecodeTableState(**raw)) {
      object = StateMachine::ObjectOf(c.table, st->group);
    }
  }
  options_.cluster->Quorums(object, [call, nodes](absl::StatusOr<QuorumView> q) {
    if (!q.ok()) return call->Warn(ToStd(q.status().message()));
    auto lines = [&](const char* name, const std::vector<uint64_t>& ids) {
      call->reply.Line(StrCat(name, " size=", ids.size()));
      for (uint64_t id : ids) {
        NodeView v;
        for (const NodeView& n : nodes) {
          if (n.id == id) v = n;
        }
        call->reply.Line(
            StrCat("id=", id, " region=", v.region, " addr=", v.addr, " port=", v.port));
      }
    };
    lines("Q1", q->q1);
    lines("Q2", q->q2);
    call->Ok();
  });
}

std::string Executor::NodeLine(const NodeView& node, bool detailed) {
  std::string line = StrCat("NODE id=", node.id, " region=", node.region, " status=", node.status,
                            absl::StrFormat(" rtt_ms=%.3f", node.rtt_ms), " addr=", node.addr,
                            " port=", node.port);
  if (node.learner) StrAppend(&line, " role=learner");
  if (!detailed) return line;
  StrAppend(&line, " name=", node.name.empty() ? "-" : node.name);
  if (node.reported) {
    // The node's own figures: from its last ping answer, or this node's.
    StrAppend(&line, " owned_tables=", node.owned_tables, " version=", node.version,
              " uptime_s=", node.uptime_s, " rtts=");
    if (node.rtts.empty()) StrAppend(&line, "-");
    for (size_t i = 0; i < node.rtts.size(); ++i) {
      StrAppend(&line, i ? "," : "", node.rtts[i].first,
                absl::StrFormat(":%.3f", node.rtts[i].second));
    }
    if (!node.clock.empty()) {
      StrAppend(&line, " clock=", node.clock,
                absl::StrFormat(" clock_offset_ms=%.3f", node.clock_offset_ms));
    }
    if (node.cert_not_after_ms > 0) {
      StrAppend(&line, " cert_expires=", sp::FormatRfc3339Ms(node.cert_not_after_ms));
    }
  } else if (node.self) {  // No cluster runtime (executor tests): one node owns every table.
    auto uptime = std::chrono::duration_cast<std::chrono::seconds>(
                      std::chrono::steady_clock::now() - started_)
                      .count();
    StrAppend(&line, " owned_tables=", OwnedTables(), " version=", self_.version,
              " uptime_s=", uptime, " rtts=-");
  } else {
    StrAppend(&line, " owned_tables=-", " version=-", " uptime_s=-", " rtts=-");
  }
  return line;
}

uint64_t Executor::OwnedTables() {
  // Every table with replicated state has been written; on one node this node owns them all.
  uint64_t n = 0;
  ForEachTable(std::nullopt, [&](std::string_view) {
    ++n;
    return true;
  }).IgnoreError();  // NODE INFO shows what it counted
  return n;
}

}  // namespace atlas
