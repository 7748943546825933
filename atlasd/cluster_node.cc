#include "atlasd/cluster_node.h"

#include <algorithm>
#include <future>
#include <optional>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "atlasd/cluster/join_token.h"
#include "atlasd/cluster/members.h"
#include "atlasd/logging.h"
#include "consensus/quorum.h"
#include "socketproto/str.h"
#include "spdlog/spdlog.h"

namespace atlas {

namespace {
// Operator pings (threads) and waits (continuation chains) in progress at once, each.
constexpr int kHelpersMax = 32;
constexpr int kChainsMax = 64;
// How often waits look again: an ownership move, a settled epoch.
constexpr std::chrono::milliseconds kMovePoll{20};
constexpr std::chrono::milliseconds kSettlePoll{100};
// A full heartbeat round: every 10th heartbeat carries every table's commit index, heartbeats
// go every 250 ms (NodeHost), so 2.5 s; plus a margin. (A node holding more than 256
// tables re-announces in rolling windows over a longer cycle: see docs/cluster.md.)
constexpr int64_t kHeartbeatRoundMs = 3000;

using Clock = std::chrono::steady_clock;
}  // namespace

ClusterNode::ClusterNode(ClusterNodeOptions options, PeerTransport* transport)
    : options_(std::move(options)),
      transport_(transport),
      cert_not_after_ms_(options_.cert_not_after_ms),
      // A sample is evidence for three ping rounds.
      clock_(options_.max_clock_offset_ms, 3 * options_.ping_interval.count()),
      cert_ca_(options_.cert_ca) {}

ClusterNode::~ClusterNode() { Stop(); }

void ClusterNode::Attach(NodeLoop* replicator) {
  replicator_.store(replicator);
  absl::MutexLock lock(&mu_);
  replicator->SetMayOwn(clock_.state() == ClockState::kTrusted);
}

void ClusterNode::Deliver(std::vector<consensus::Message> messages) {
  if (NodeLoop* r = replicator_.load()) r->Deliver(std::move(messages));
}

void ClusterNode::OnMembership(const consensus::ClusterConfig& config) {
  // ca.pem follows the replicated list (rewritten only when it changed).
  if (options_.ca_rotation) options_.ca_rotation->Adopt(config.trust);
  absl::MutexLock lock(&mu_);
  for (const auto& [id, m] : membership_.members) {
    if (!config.members.contains(id)) {
      // A node that left keeps its transport address: until the change settles, joint
      // quorums still count it and it must learn the anchors that let it settle.
      left_[id] = m.address;
      left_epoch_[id] = config.epoch;
      peers_.erase(id);
    }
  }
  for (const auto& [id, m] : config.members) {
    left_.erase(id);
    if (id == options_.self) continue;
    auto addr = cluster::DecodeMemberAddress(m.address);
    if (!addr) {
      spdlog::warn("member {} has an unreadable address '{}'", id, m.address);
      continue;
    }
    peers_.try_emplace(id);
    if (transport_) transport_->SetPeer(id, addr->HostPort());
  }
  // After SetPeer: a newcomer the change made a member stays; one it did not goes.
  if (transport_) transport_->SetNewcomerFloor(static_cast<consensus::NodeId>(config.next_id));
  membership_ = config;
  std::vector<uint64_t> others;  // a learner's node may never have run: its clock is no evidence
  for (const auto& [id, m] : config.members) {
    if (id != options_.self && !m.learner) others.push_back(id);
  }
  clock_.SetPeers(others);
  EvaluateClockLocked();
}

void ClusterNode::EvaluateClockLocked() {
  const int64_t now_ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now().time_since_epoch())
          .count();
  const ClockState state = clock_.Evaluate(now_ms);
  if (state == announced_clock_) return;
  announced_clock_ = state;
  if (state == ClockState::kOffset) {
    spdlog::error("{}", *clock_.Problem());
  } else if (state == ClockState::kTrusted) {
    spdlog::info("clock: within max-clock-offset {} ms of the peers' (offset {:.3f} ms): this "
                 "node may own tables",
                 clock_.max_offset_ms(), clock_.offset_ms());
  }
  if (NodeLoop* r = replicator_.load()) r->SetMayOwn(state == ClockState::kTrusted);
}

std::optional<std::string> ClusterNode::ServingProblem() {
  absl::MutexLock lock(&mu_);
  return clock_.Problem();
}

void ClusterNode::StartFailureDetector() {
  if (!transport_) return;
  detector_ = std::thread([this] { DetectorLoop(); });
}

void ClusterNode::Stop() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;  // wakes the detector; ends chains at their next step
  }
  if (detector_.joinable()) detector_.join();
  std::list<Helper> helpers;
  {
    absl::MutexLock lock(&mu_);
    helpers.swap(helpers_);
  }
  for (Helper& h : helpers) h.thread.join();  // bounded by ping_timeout
  // Chains hold `this`: wait for each to see stopping_ (one poll) or to end with the node loop.
  absl::MutexLock lock(&chains_mu_);
  chains_closed_ = true;
  chains_mu_.Await(absl::Condition(
      +[](int* chains) { return *chains == 0; }, &chains_));
}

absl::Status ClusterNode::NoRoom(std::string_view what) {
  if (Stopping()) return absl::UnavailableError("node is stopping");
  return absl::UnavailableError(StrCat("overloaded: too many ", what, " in progress"));
}

bool ClusterNode::Stopping() {
  absl::MutexLock lock(&mu_);
  return stopping_;
}

std::shared_ptr<void> ClusterNode::HoldChain() {
  {
    absl::MutexLock lock(&chains_mu_);
    if (chains_closed_ || chains_ >= kChainsMax) return nullptr;
    ++chains_;
  }
  return std::shared_ptr<void>(this, [](ClusterNode* self) {
    absl::MutexLock lock(&self->chains_mu_);
    --self->chains_;
  });
}

// Failure detection over the same gRPC channels the consensus messages use: a peer is ACTIVE
// while its messages arrive (heartbeats every 250 ms) or it answers our pings. Pings, every
// ping_interval, also measure RTTs; they used to be the only evidence and ran every 500 ms,
// which with 14 peers cost an idle node more than its heartbeats did.
void ClusterNode::DetectorLoop() {
  auto next_ping = Clock::now();  // at once: this node's clock is unknown until then
  for (;;) {
    std::vector<uint64_t> ids;
    bool clock_known = true;
    {
      absl::MutexLock lock(&mu_);
      if (Clock::now() < next_ping) {
        mu_.AwaitWithTimeout(absl::Condition(&stopping_), absl::FromChrono(options_.check_interval));
      }
      if (stopping_) return;
      for (const auto& [id, p] : peers_) ids.push_back(id);
      clock_known = clock_.state() != ClockState::kUnknown;
    }
    std::shared_ptr<void> hold = HoldChain();  // the sample holds `this` on the node thread
    if (NodeLoop* r = replicator_.load(); r && hold) {
      r->Inspect([this, hold](const consensus::Replica& rep) {
        // A node still reading a peer's directory may not yet know the tables it lacks.
        lagging_.store(rep.LaggingObjects() + (rep.ScanningDirectory() ? 1 : 0));
        if (rep.Settled()) settled_epoch_.store(rep.epoch());
      });
    }
    ForgetSettledDepartures();
    if (Clock::now() < next_ping) continue;
    // Until this node knows its clock it may not own anything: measure it at every check.
    next_ping = Clock::now() + (clock_known ? options_.ping_interval : options_.check_interval);
    PingRound(ids);
    AdvanceCaRotation();
  }
}

void ClusterNode::PingRound(const std::vector<uint64_t>& ids) {
  // All peers at once: one after the other, a round over a WAN (14 peers at 150 ms) would
  // outlast suspect_after and far peers would flap to SUSPECT.
  std::vector<std::future<absl::StatusOr<Pong>>> pings;
  for (uint64_t id : ids) {
    pings.push_back(std::async(std::launch::async, [this, id] {
      return transport_->Ping(static_cast<consensus::NodeId>(id));
    }));
  }
  for (size_t k = 0; k < ids.size(); ++k) {
    const uint64_t id = ids[k];
    absl::StatusOr<Pong> pong = pings[k].get();
    absl::MutexLock lock(&mu_);
    if (stopping_) return;
    auto it = peers_.find(id);
    if (it == peers_.end() || !pong.ok()) continue;
    Peer& p = it->second;
    const double rtt = pong->rtt_ms;
    if (pong->report) p.report = std::move(pong->report);
    if (pong->clock_offset_ms) {
      clock_.Sample(id, *pong->clock_offset_ms, rtt,
                    std::chrono::duration_cast<std::chrono::milliseconds>(
                        Clock::now().time_since_epoch())
                        .count());
    }
    if (first_peer_ok_ms_.load() < 0) {
      first_peer_ok_ms_.store(std::chrono::duration_cast<std::chrono::milliseconds>(
                                  Clock::now().time_since_epoch())
                                  .count());
    }
    // A smoothed RTT (like TCP's SRTT, gain 1/8) so one slow sample does not reorder quorums.
    p.rtt_ms = p.ever_ok ? p.rtt_ms + (rtt - p.rtt_ms) / 8 : rtt;
    p.ever_ok = true;
    p.last_ok = Clock::now();
  }
  absl::MutexLock lock(&mu_);
  EvaluateClockLocked();
}

void ClusterNode::ForgetSettledDepartures() {
  absl::MutexLock lock(&mu_);
  const uint64_t settled = settled_epoch_.load();
  for (auto it = left_epoch_.begin(); it != left_epoch_.end();) {
    if (it->second > settled) {
      ++it;
      continue;
    }
    // Every table here is anchored in a configuration without it: nothing needs to reach it
    // any more. Stop dialling its address, which a replacement may hold by now (it would
    // answer with another node's certificate, forever).
    if (transport_) transport_->RemovePeer(static_cast<consensus::NodeId>(it->first));
    spdlog::info("node {} left at epoch {}, settled: no longer connecting to it", it->first,
                 it->second);
    it = left_epoch_.erase(it);
  }
}

std::string ClusterNode::StatusOf(uint64_t id, const Peer& p, Clock::time_point now) const {
  bool ever = p.ever_ok;
  Clock::time_point last = p.last_ok;
  if (auto heard = transport_->LastHeard(static_cast<consensus::NodeId>(id))) {
    last = ever ? std::max(last, *heard) : *heard;
    ever = true;
  }
  Clock::time_point ref = ever ? last : p.since;
  if (ever && now - ref <= options_.suspect_after) return "ACTIVE";
  if (now - ref <= options_.down_after) return "SUSPECT";
  return "DOWN";
}

PeerReport ClusterNode::Report() {
  PeerReport r;
  {
    absl::MutexLock lock(&mu_);
    for (const auto& [id, p] : peers_) {
      if (p.ever_ok) r.rtt_ms.emplace_back(static_cast<consensus::NodeId>(id), p.rtt_ms);
    }
  }
  if (NodeLoop* rep = replicator_.load()) {
    r.owned_tables = rep->ownership().owned;
    r.moves = rep->recent_moves();
  }
  r.version = options_.version;
  r.reads_learners = true;
  if (options_.load) r.load = options_.load();
  r.cert_not_after_ms = cert_not_after_ms_.load();
  if (options_.ca_rotation) r.trusted_cas = options_.ca_rotation->SettledTrust();
  {
    absl::MutexLock lock(&mu_);
    r.cert_ca = cert_ca_;
    r.clock = ClockStateName(clock_.state());
    r.clock_offset_ms = clock_.offset_ms();
  }
  r.uptime_s = static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::seconds>(Clock::now() - started_).count());
  return r;
}

bool ClusterNode::IsMember(uint64_t id) {
  absl::MutexLock lock(&mu_);
  return membership_.members.contains(static_cast<consensus::NodeId>(id));
}

consensus::ClusterConfig ClusterNode::Membership() {
  absl::MutexLock lock(&mu_);
  return membership_;
}

std::vector<NodeView> ClusterNode::Nodes() {
  PeerReport own = Report();
  std::vector<NodeView> out;
  absl::MutexLock lock(&mu_);
  const auto now = Clock::now();
  // Runs under the lock taken above (lambdas are checked on their own).
  auto add = [&](uint64_t id, const std::string& address, std::string status)
                 ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    NodeView v;
    v.id = id;
    v.self = id == options_.self;
    if (auto a = cluster::DecodeMemberAddress(address)) {
      v.region = a->region;
      v.name = a->name;
      v.addr = a->host;
      v.port = a->port;
    }
    v.status = std::move(status);
    const PeerReport* report = v.self ? &own : nullptr;
    if (auto it = peers_.find(id); it != peers_.end()) {
      v.rtt_ms = it->second.rtt_ms;
      if (it->second.report) report = &*it->second.report;
    }
    if (report != nullptr) {
      v.reported = true;
      for (const auto& [peer, ms] : report->rtt_ms) v.rtts.emplace_back(peer, ms);
      v.owned_tables = report->owned_tables;
      v.version = report->version;
      v.uptime_s = report->uptime_s;
      v.clock = report->clock;
      v.clock_offset_ms = report->clock_offset_ms;
      v.load = report->load;
      v.cert_not_after_ms = report->cert_not_after_ms;
      v.moves = report->moves;
    }
    out.push_back(std::move(v));
  };
  for (const auto& [id, m] : membership_.members) {
    if (id == options_.self) {
      add(id, m.address, "ACTIVE");
    } else if (auto it = peers_.find(id); it != peers_.end()) {
      add(id, m.address, StatusOf(id, it->second, now));
    } else {
      add(id, m.address, "SUSPECT");
    }
    out.back().learner = m.learner;
  }
  for (const auto& [id, address] : left_) add(id, address, "LEFT");
  std::sort(out.begin(), out.end(), [](const NodeView& a, const NodeView& b) { return a.id < b.id; });
  return out;
}

bool ClusterNode::StartHelper(std::function<void()> fn) {
  std::list<Helper> finished;
  absl::MutexLock lock(&mu_);
  for (auto it = helpers_.begin(); it != helpers_.end();) {
    auto next = std::next(it);
    if (it->done) finished.splice(finished.end(), helpers_, it);
    it = next;
  }
  // Done means past its last use of mu_; joining is then immediate.
  for (Helper& h : finished) h.thread.join();
  if (stopping_ || helpers_.size() >= kHelpersMax) return false;
  Helper& h = helpers_.emplace_back();
  h.thread = std::thread([this, &h, fn = std::move(fn)] {
    fn();
    absl::MutexLock lock(&mu_);
    h.done = true;
  });
  return true;
}

void ClusterNode::Ping(uint64_t id, std::function<void(absl::StatusOr<double>)> done) {
  if (id == options_.self) {
    NodeLoop* r = replicator_.load();
    if (!r) return done(absl::UnavailableError("node is starting"));
    auto t0 = Clock::now();
    r->Ping([t0, done = std::move(done)] {
      done(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
    });
    return;
  }
  {
    absl::MutexLock lock(&mu_);
    if (!membership_.members.contains(id)) {
      return done(absl::NotFoundError(StrCat("unknown node ", id)));
    }
  }
  auto shared = std::make_shared<std::function<void(absl::StatusOr<double>)>>(std::move(done));
  bool ok = StartHelper([this, id, shared] {
    absl::StatusOr<double> rtt = transport_->PingMs(static_cast<consensus::NodeId>(id));
    if (!rtt.ok()) {
      rtt = absl::UnavailableError(StrCat("node ", id, " did not answer: ", rtt.status().message()));
    }
    (*shared)(rtt);
  });
  if (!ok) (*shared)(absl::UnavailableError("overloaded: too many pings in progress"));
}

void ClusterNode::Quorums(const std::string& table,
                          std::function<void(absl::StatusOr<QuorumView>)> done) {
  NodeLoop* r = replicator_.load();
  if (!r) return done(absl::UnavailableError("node is starting"));
  consensus::NodeSet live;
  std::vector<std::pair<uint64_t, double>> rtts;  // live peers
  for (const NodeView& n : Nodes()) {
    if (n.status != "ACTIVE") continue;
    live.insert(static_cast<consensus::NodeId>(n.id));
    if (!n.self) rtts.emplace_back(n.id, n.rtt_ms);
  }
  auto shared = std::make_shared<std::function<void(absl::StatusOr<QuorumView>)>>(std::move(done));
  const uint64_t self = options_.self;
  // Errors name regions, not zone ids.
  auto named = [membership = Membership()](const absl::Status& s) {
    return absl::Status(s.code(), cluster::NameZones(ToStd(s.message()), membership));
  };
  bool posted = r->Inspect([table, live, rtts, shared, self,
                            named](const consensus::Replica& replica) {
    // Owners send to every member and the nearest answer first, so the quorums really used
    // are the nearest live ones: rank zones by the RTTs measured here.
    consensus::Topology topology = replica.quorums().topology();
    std::vector<std::pair<consensus::ZoneId, double>> zone_rtts;
    for (const auto& [id, ms] : rtts) {
      auto z = topology.zone_of.find(static_cast<consensus::NodeId>(id));
      if (z != topology.zone_of.end()) zone_rtts.emplace_back(z->second, ms);
    }
    if (topology.zone_of.contains(static_cast<consensus::NodeId>(self))) {
      for (const auto& [pair, us] : cluster::MeasuredZoneDistances(
               topology.ZoneOf(static_cast<consensus::NodeId>(self)), zone_rtts)) {
        topology.distance[pair] = us;
      }
    }
    const consensus::QuorumSystem qs(std::move(topology), replica.quorums().spec());
    consensus::NodeId owner = replica.IsOwner(table) ? static_cast<consensus::NodeId>(self)
                                                     : replica.BelievedOwner(table);
    // A table nobody owns yet is owned by whoever writes it first; show this node's view.
    if (owner == consensus::kNoNode || !qs.topology().zone_of.contains(owner)) {
      owner = static_cast<consensus::NodeId>(self);
    }
    consensus::ZoneId zone = qs.topology().ZoneOf(owner);
    auto q1 = qs.ChooseQ1(zone, live);
    auto q2 = qs.ChooseQ2(zone, live);
    // The owner's zone short of live nodes: its writes still commit once the acks of other
    // zones form a Q2 (IsQ2 asks for Fz+1 zones, not the owner's), a WAN round trip later.
    // Show the nearest such Q2: the one they commit with.
    for (consensus::ZoneId other : qs.ZonesByDistance(zone)) {
      if (q2.ok()) break;
      if (auto alt = qs.ChooseQ2(other, live); alt.ok() && qs.IsQ2(*alt)) q2 = std::move(alt);
    }
    if (!q1.ok()) return (*shared)(named(q1.status()));
    if (!q2.ok()) return (*shared)(named(q2.status()));
    QuorumView v;
    v.q1.assign(q1->begin(), q1->end());
    v.q2.assign(q2->begin(), q2->end());
    (*shared)(std::move(v));
  });
  if (!posted) (*shared)(absl::UnavailableError("overloaded: replication queue full"));
}

struct ClusterNode::MoveWait {
  std::string table;
  uint64_t target = 0;
  Clock::time_point deadline, last_hint;
  std::function<void(absl::Status)> done;
  std::shared_ptr<void> hold;
};

void ClusterNode::MoveTable(const std::string& table, uint64_t target,
                            std::function<void(absl::Status)> done) {
  NodeLoop* r = replicator_.load();
  if (!r) return done(absl::UnavailableError("node is starting"));
  std::shared_ptr<void> hold = HoldChain();
  if (!hold) return done(NoRoom("moves"));
  MoveStep(r, std::make_shared<MoveWait>(MoveWait{table, target,
                                                  Clock::now() + options_.move_timeout,
                                                  Clock::time_point{}, std::move(done),
                                                  std::move(hold)}));
}

// One look at the table's owner, kMovePoll after (re-)asking for the move.
void ClusterNode::MoveStep(NodeLoop* r, std::shared_ptr<MoveWait> m) {
  if (Stopping()) return m->done(absl::UnavailableError("node is stopping"));
  if (Clock::now() >= m->deadline) {
    return m->done(absl::DeadlineExceededError(
        StrCat("move of ", m->table, " to node ", m->target, " did not complete within ",
               options_.move_timeout.count() / 1000, " s")));
  }
  // Re-ask every second: a hint or a steal can lose to a concurrent proposer.
  if (Clock::now() - m->last_hint > std::chrono::seconds(1)) {
    r->Move(m->table, static_cast<consensus::NodeId>(m->target));
    m->last_hint = Clock::now();
  }
  bool waiting = r->After(kMovePoll, [this, r, m] {
    r->Describe(m->table, [this, r, m](ObjectInfo info) {
      if (info.owner == m->target) return m->done(absl::OkStatus());
      MoveStep(r, m);
    });
  });
  if (!waiting) m->done(absl::UnavailableError("node is stopping"));
}

// OK only once the change settled (every table re-anchored in the configuration without the
// node): until then joint quorums still count the leaving node, so stopping it earlier could
// leave tables without a quorum. Repeating NODE LEAVE for a node that already left waits again.
void ClusterNode::RemoveNode(uint64_t id, std::function<void(absl::Status)> done) {
  NodeLoop* r = replicator_.load();
  if (!r) return done(absl::UnavailableError("node is starting"));
  auto shared = std::make_shared<std::function<void(absl::Status)>>(std::move(done));
  auto wait_settled = [this, r, id, shared] {
    std::shared_ptr<void> hold = HoldChain();
    if (!hold) return (*shared)(NoRoom("changes"));
    AwaitSettled(r, Clock::now() + options_.settle_timeout, [id, shared, hold](Settle s) {
      if (s == Settle::kSettled) return (*shared)(absl::OkStatus());
      (*shared)(absl::UnavailableError(StrCat(
          "node ", id, " was removed but not every table has moved to the new configuration "
          "yet; keep it running and repeat NODE LEAVE ", id, " to wait again")));
    });
  };
  bool left = false;
  {
    absl::MutexLock lock(&mu_);
    left = left_.contains(id);
    if (!left && !membership_.members.contains(static_cast<consensus::NodeId>(id))) {
      return (*shared)(absl::NotFoundError(StrCat("no node ", id)));
    }
  }
  if (left) return wait_settled();  // outside mu_: the wait starts on the node thread
  ProposeChange(
      [id](const consensus::ClusterConfig& now) {
        return consensus::EncodeLeave(static_cast<consensus::NodeId>(id), now.epoch);
      },
      [id, shared, wait_settled](absl::StatusOr<NodeLoop::MembershipResult> res) {
        if (!res.ok()) return (*shared)(res.status());
        spdlog::info("node {} left (epoch {})", id, res->config.epoch);
        wait_settled();
      });
}

void ClusterNode::SetQuorum(int fn, int fz, std::function<void(absl::Status)> done) {
  const consensus::QuorumSpec want{fn, fz};
  consensus::ClusterConfig next;
  {
    absl::MutexLock lock(&mu_);
    next = membership_;
  }
  if (next.quorum.fn == fn && next.quorum.fz == fz) return done(absl::OkStatus());
  // The rules the change will be applied by, on a copy: the same refusal, before proposing.
  if (auto applied = consensus::ApplyMembershipCommand(
          next, consensus::EncodeSetQuorum(want, next.epoch));
      !applied.ok()) {
    return done(absl::FailedPreconditionError(
        StrCat("cannot set Fn=", fn, " Fz=", fz, ": ", applied.status().message())));
  }
  // Whether the members alive now could form both of the new quorums: a change they could
  // not serve would stop every write the moment it applied.
  consensus::NodeSet live;
  for (const NodeView& n : Nodes()) {
    const auto id = static_cast<consensus::NodeId>(n.id);
    if (n.status == "ACTIVE" && next.members.contains(id)) live.insert(id);
  }
  const auto self = next.members.find(static_cast<consensus::NodeId>(options_.self));
  const consensus::QuorumSystem quorums(next.ToTopology({}), want);
  if (self != next.members.end()) {
    if (absl::Status s = quorums.CheckAvailable(self->second.zone, live); !s.ok()) {
      return done(absl::FailedPreconditionError(StrCat(
          "cannot set Fn=", fn, " Fz=", fz, ": the live members could not serve it (",
          cluster::NameZones(ToStd(s.message()), next), ")")));
    }
  }
  ProposeChange([want](const consensus::ClusterConfig& now) {
                  return consensus::EncodeSetQuorum(want, now.epoch);
                },
                [want, done = std::move(done)](absl::StatusOr<NodeLoop::MembershipResult> res) {
                  if (!res.ok()) return done(res.status());
                  spdlog::info("quorum is now Fn={} Fz={} (QUORUM SET, epoch {})", want.fn,
                               want.fz, res->config.epoch);
                  done(absl::OkStatus());
                });
}

cluster::HealthInfo ClusterNode::Health() {
  cluster::HealthInfo h;
  h.node_id = options_.self;
  absl::MutexLock lock(&mu_);
  auto it = membership_.members.find(static_cast<consensus::NodeId>(options_.self));
  if (it == membership_.members.end()) {
    h.status = left_.contains(options_.self) ? "LEFT" : "JOINING";
    return h;
  }
  if (auto a = cluster::DecodeMemberAddress(it->second.address)) h.zone = a->region;
  h.clock = ClockStateName(clock_.state());
  h.clock_offset_ms = clock_.offset_ms();
  if (auto problem = clock_.Problem()) {
    h.status = "CLOCK_OFFSET";  // serves no data: a 503 for load balancers
    h.reason = *problem;
    return h;
  }
  // ACTIVE once caught up: alone, at once; otherwise after a peer answered, a full heartbeat
  // round (every table's commit index) had time to arrive, and no table is behind it.
  h.status = "ACTIVE";
  if (membership_.ToTopology({}).zone_of.size() > 1) {  // peers to catch up from: voters
    const int64_t first = first_peer_ok_ms_.load();
    const int64_t now_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                               Clock::now().time_since_epoch())
                               .count();
    if (first < 0 || now_ms - first < kHeartbeatRoundMs || lagging_.load() > 0) {
      h.status = "CATCHING_UP";
    }
  }
  return h;
}

namespace {
int64_t WallMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

TokenView ViewOf(const consensus::JoinTokenRecord& t, int64_t now_ms) {
  return {t.Id(), t.created_ms, t.expires_ms, t.uses, t.uses_max, t.Status(now_ms), ""};
}
}  // namespace

absl::Status ClusterNode::AuthorizeJoin(const std::string& secret) {
  absl::MutexLock lock(&mu_);
  if (membership_.tokens.empty()) {
    if (cluster::SecretMatches(options_.legacy_join_secret, secret)) return absl::OkStatus();
    return absl::PermissionDeniedError("invalid join token");
  }
  return consensus::CheckJoinToken(membership_, cluster::JoinTokenHash(secret), WallMs());
}

void ClusterNode::CreateToken(int64_t ttl_ms, uint32_t uses,
                              std::function<void(absl::StatusOr<TokenView>)> done) {
  NodeLoop* r = replicator_.load();
  if (!r) return done(absl::UnavailableError("node is starting"));
  // New tokens pin the CA that signs now (after a CA rotation, the new one).
  absl::StatusOr<cluster::JoinToken> token = cluster::NewJoinToken(
      options_.ca_rotation ? cluster::Fingerprint(options_.ca_rotation->cas()->Get()->cert.get())
                           : options_.ca_fingerprint);
  if (!token.ok()) return done(token.status());
  const std::string hash = cluster::JoinTokenHash(token->secret);
  const int64_t expires = ttl_ms > 0 ? WallMs() + ttl_ms : 0;
  std::string text = cluster::FormatJoinToken(*token);
  r->ProposeMembership(
      consensus::EncodeTokenCreate(hash, expires, uses),
      [done = std::move(done), hash, text = std::move(text)](
          absl::StatusOr<NodeLoop::MembershipResult> res) mutable {
        if (!res.ok()) return done(res.status());
        auto it = res->config.tokens.find(hash);
        if (it == res->config.tokens.end()) return done(absl::InternalError("token not stored"));
        TokenView v = ViewOf(it->second, WallMs());
        v.token = std::move(text);
        LogEvent(spdlog::level::info, "join token created",
                 {{"token_id", v.id}, {"expires_ms", StrCat(v.expires_ms)},
                  {"uses_max", StrCat(v.uses_max)}});
        done(std::move(v));
      });
}

std::vector<TokenView> ClusterNode::Tokens() {
  std::vector<TokenView> out;
  const int64_t now = WallMs();
  absl::MutexLock lock(&mu_);
  for (const auto& [hash, t] : membership_.tokens) out.push_back(ViewOf(t, now));
  std::sort(out.begin(), out.end(), [](const TokenView& a, const TokenView& b) {
    return std::tie(a.created_ms, a.id) < std::tie(b.created_ms, b.id);
  });
  return out;
}

void ClusterNode::RevokeToken(const std::string& id, std::function<void(absl::Status)> done) {
  NodeLoop* r = replicator_.load();
  if (!r) return done(absl::UnavailableError("node is starting"));
  r->ProposeMembership(consensus::EncodeTokenRevoke(id),
                       [done = std::move(done), id](
                           absl::StatusOr<NodeLoop::MembershipResult> res) {
                         if (res.ok()) LogEvent(spdlog::level::info, "join token revoked",
                                                {{"token_id", id}});
                         done(res.ok() ? absl::OkStatus() : res.status());
                       });
}

void ClusterNode::AwaitSettled(NodeLoop* r, Clock::time_point deadline,
                               std::function<void(Settle)> then) {
  auto shared_then = std::make_shared<std::function<void(Settle)>>(std::move(then));
  if (Stopping()) return (*shared_then)(Settle::kStopping);
  bool asked = r->Inspect([this, r, deadline, shared_then](const consensus::Replica& rep) {
    if (rep.Settled()) return (*shared_then)(Settle::kSettled);
    if (Clock::now() > deadline) return (*shared_then)(Settle::kTimedOut);
    bool waiting = r->After(kSettlePoll, [this, r, deadline, shared_then] {
      AwaitSettled(r, deadline, std::move(*shared_then));
    });
    if (!waiting) (*shared_then)(Settle::kStopping);
  });
  if (!asked) (*shared_then)(Settle::kRefused);
}

struct ClusterNode::Change {
  MakeChange make;
  ChangeDone done;
  Clock::time_point deadline;
  std::shared_ptr<void> hold;
};

void ClusterNode::ProposeChange(MakeChange make, ChangeDone done) {
  NodeLoop* r = replicator_.load();
  if (!r) return done(absl::UnavailableError("node is starting"));
  std::shared_ptr<void> hold = HoldChain();
  if (!hold) return done(NoRoom("changes"));
  ChangeStep(r, std::make_shared<Change>(Change{std::move(make), std::move(done),
                                                Clock::now() + options_.settle_timeout,
                                                std::move(hold)}));
}

// A change may start only when the current epoch is settled (every table re-anchored in it;
// docs/consensus.md §Reconfiguration).
void ClusterNode::ChangeStep(NodeLoop* r, std::shared_ptr<Change> c) {
  AwaitSettled(r, c->deadline, [this, r, c](Settle s) {
    switch (s) {
      case Settle::kRefused:
        return c->done(absl::UnavailableError("overloaded: replication queue full"));
      case Settle::kStopping:
        return c->done(absl::UnavailableError("node is stopping"));
      case Settle::kTimedOut:
        return c->done(absl::UnavailableError(
            "the previous membership change has not settled yet (are all members up?); "
            "retry later"));
      case Settle::kSettled:
        break;
    }
    r->ProposeMembership(c->make(r->Membership()), [this, r, c](auto res) {
      // Lost a race with another change: build it again for the new epoch.
      if (!res.ok() && absl::StrContains(res.status().message(), "changed concurrently") &&
          Clock::now() < c->deadline) {
        return ChangeStep(r, c);
      }
      c->done(std::move(res));
    });
  });
}

// A cluster created with Fz>0 starts at Fz=0 (one zone); the configured Fz applies once the
// membership has more zones than Fz.
std::optional<consensus::QuorumSpec> QuorumToRaise(const consensus::ClusterConfig& config,
                                                   consensus::QuorumSpec desired) {
  // Only ever up: another member answering a join with lower (or default) settings in its
  // file must not quietly take the cluster's fault tolerance down.
  consensus::QuorumSpec want{std::max(config.quorum.fn, desired.fn),
                             std::max(config.quorum.fz, desired.fz)};
  if (want.fn == config.quorum.fn && want.fz == config.quorum.fz) return std::nullopt;
  absl::btree_set<consensus::ZoneId> zones;
  for (const auto& [id, m] : config.members) {
    if (!m.learner) zones.insert(m.zone);
  }
  if (static_cast<int>(zones.size()) <= want.fz) return std::nullopt;  // Not enough zones yet.
  return want;
}

void ClusterNode::MaybeRaiseQuorum(const consensus::ClusterConfig& config) {
  std::optional<consensus::QuorumSpec> raise = QuorumToRaise(config, options_.desired_quorum);
  if (!raise) return;
  const consensus::QuorumSpec want = *raise;
  if (raising_quorum_.exchange(true)) return;
  ProposeChange([want](const consensus::ClusterConfig& now) {
                  return consensus::EncodeSetQuorum(want, now.epoch);
                },
                       [this, want](absl::StatusOr<NodeLoop::MembershipResult> res) {
                         raising_quorum_.store(false);
                         if (res.ok()) {
                           spdlog::info("quorum is now Fn={} Fz={}", want.fn, want.fz);
                         } else {
                           spdlog::warn("could not set Fn={} Fz={}: {}", want.fn, want.fz,
                                        res.status().message());
                         }
                       });
}

}  // namespace atlas
