// TABLE INFO / MOVE / PIN / GROUP / LIST: where a table lives and how it moves
// (docs/protocol.md §NODE, QUORUM, TABLE; docs/design.md §Groups).
#include <algorithm>

#include "absl/strings/numbers.h"
#include "absl/strings/str_join.h"
#include "atlasd/acl.h"
#include "atlasd/commands/call.h"
#include "socketproto/str.h"

namespace atlas {

namespace sp = socketproto;

void Executor::Run(const CallPtr& call, const sp::TableInfo& c) {
  auto state = LoadTableState(c.table);
  if (!state.ok()) return call->Warn(StrCat("internal error: ", state.status().message()));
  storage::TableState st = *state;
  // The row count is the table's data (COUNT needs READ): only principals that may read it
  // see it; others get "rows=-" and the placement, which is the cluster's business.
  auto acl = LoadAcl(c.table);
  if (!acl.ok()) return call->Warn(StrCat("internal error: ", acl.status().message()));
  std::string rows = "-";
  if (MayRead(*call, *acl, c.table)) {
    uint64_t n = 0;
    absl::Status s = store_->ForEachRow(c.table, "", std::nullopt, [&](std::string_view) {
      ++n;
      return true;
    }, WallNowMs());
    if (!s.ok()) return call->Warn(StrCat("internal error: ", s.message()));
    rows = StrCat(n);
  }
  std::string table = c.table;
  std::vector<NodeView> nodes = Nodes();
  replicator_->Describe(table, [call, table, nodes, rows, st](ObjectInfo info) {
    std::string region = "-";
    for (const NodeView& n : nodes) {
      if (n.id == info.owner) region = n.region;
    }
    call->reply.Line(StrCat("TABLE name=", table, " owner=", info.owner, " region=", region,
                            " ballot=", info.ballot, " rows=", rows,
                            " group=", st.group.empty() ? "-" : st.group,
                            " pinned=", st.pinned_region.empty() ? "-" : st.pinned_region,
                            " reads=", storage::ReadsModeName(st),
                            " holders=", info.lease_holders.empty()
                                             ? std::string("-")
                                             : absl::StrJoin(info.lease_holders, ",")));
    call->Ok();
  });
}

namespace {

// TABLE MOVE's target: a node id, or a region: then its live member nearest to this node
// (this node if it is in that region). 0 if none.
uint64_t MoveTarget(const std::vector<NodeView>& nodes, const std::string& target) {
  uint64_t as_id = 0;
  if (absl::SimpleAtoi(target, &as_id)) {
    for (const NodeView& n : nodes) {
      if (n.id == as_id && n.status != "LEFT") return n.id;
    }
    return 0;
  }
  uint64_t best_id = 0;
  double best = 0;
  for (const NodeView& n : nodes) {
    if (n.region != target || n.status == "LEFT" || n.status == "DOWN") continue;
    double d = n.self ? -1 : n.rtt_ms;
    if (best_id == 0 || d < best) best_id = n.id, best = d;
  }
  return best_id;
}

}  // namespace

void Executor::Run(const CallPtr& call, const sp::TableMove& c) {
  // Placement is the table's administration, like PIN and GROUP (which the state machine
  // checks the same way): OWNER or an admin user, checked after the read barrier (kRules), so
  // the ACL is the one in force.
  auto state = LoadTableState(c.table);
  if (!state.ok()) return call->Warn(StrCat("internal error: ", state.status().message()));
  std::vector<NodeView> nodes = Nodes();
  const uint64_t target = MoveTarget(nodes, c.target);
  if (target == 0) return call->Warn(StrCat("unknown region or node '", c.target, "'"));
  // A move never breaks a pin: the pinned region is where the table's owner must live.
  if (!state->pinned_region.empty()) {
    for (const NodeView& n : nodes) {
      if (n.id != target || n.region == state->pinned_region) continue;
      return call->Warn(StrCat("table '", c.table, "' is pinned to region '", state->pinned_region,
                               "'; move it within that region, or TABLE PIN ", c.table,
                               " NONE first"));
    }
  }
  if (!options_.cluster) return call->Ok();  // one node: already owned here
  options_.cluster->MoveTable(c.table, target, [call](absl::Status s) {
    if (!s.ok()) return call->Warn(ToStd(s.message()));
    call->Ok();
  });
}

std::optional<std::string> Executor::Build(Call&, sp::TablePin& c, proto::Command* cmd) {
  // Only regions that have members can hold a table.
  if (c.region && !RegionHasMembers(*c.region)) {
    return StrCat("unknown region '", *c.region, "'");
  }
  cmd->set_table(c.table);
  cmd->mutable_placement()->set_pinned_region(c.region.value_or(""));
  return std::nullopt;
}

std::optional<std::string> Executor::Build(Call&, sp::TableGroup& c, proto::Command* cmd) {
  cmd->set_table(c.table);
  cmd->mutable_placement()->set_group(c.group.value_or(""));
  return std::nullopt;
}

std::optional<std::string> Executor::Build(Call&, sp::TableReads& c, proto::Command* cmd) {
  cmd->set_table(c.table);
  cmd->mutable_placement()->set_local_reads(c.mode != sp::TableReads::Mode::kOwner);
  cmd->mutable_placement()->set_auto_reads(c.mode == sp::TableReads::Mode::kAuto);
  return std::nullopt;
}

void Executor::Run(const CallPtr& call, const sp::TableList& c) {
  // Every table with replicated state on this node: its meta "state" key. A table created a
  // moment ago through another node may not be here yet (this is the node's view, like NODE).
  const uint64_t limit = std::min(c.limit.value_or(options_.scan_keys_max), options_.scan_keys_max);
  if (!call->reserved) return ReserveThenResume(call, KeysReplyBytes(limit));
  std::vector<std::string> names;
  absl::Status s = ForEachTable(c.after, [&](std::string_view name) {
    if (names.size() >= limit) return false;
    if (!sp::IsReservedTable(name)) names.emplace_back(name);
    return true;
  });
  if (!s.ok()) return call->Warn(StrCat("internal error: ", s.message()));
  call->reply.Line(StrCat("TABLES:", names.size()));
  for (const std::string& n : names) call->reply.Line(n);
  call->Ok();
}

bool Executor::RegionHasMembers(const std::string& region) {
  for (const NodeView& n : Nodes()) {
    if (n.region == region && n.status != "LEFT") return true;
  }
  return false;
}

}  // namespace atlas
