// Objects at rest (docs/consensus.md, "Cost per object"): an object with nothing in progress
// is kept as a compact encoding of its state instead of a full ObjectState (~900 bytes), and
// woken (decoded) by whatever touches it next. Resting must not change what the object is:
// an object rests only if decoding its encoding gives back exactly the state it had.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "consensus/check.h"
#include "consensus/replica.h"

namespace atlas::consensus {
namespace {

// Every scalar field of an ObjectState, in the order of the encoding. A field missing here
// keeps its objects awake whenever it differs from its default (Rest checks the round trip).
template <typename State, typename F>
void VisitScalars(State& o, F&& f) {
  auto ballot = [&f](auto& b) {
    f(b.counter);
    f(b.node);
  };
  ballot(o.hard.promised);
  f(o.hard.commit_index), f(o.hard.truncated_through), f(o.hard.anchor_epoch);
  auto& a = o.acceptor;
  ballot(a.deferred_ballot);
  f(a.deferred_anchor), f(a.deferred_to), f(a.truncated_persisted), f(a.dirty), f(a.must_sync);
  auto& l = o.learner;
  f(l.applied), f(l.snapshot_slot), f(l.snapshot_asked), f(l.applied_bytes);
  f(l.truncate_wanted);
  ballot(l.owner_ballot);
  ballot(l.disowned);
  f(l.owner_heard), f(l.catchup_sent), f(l.behind_since), f(l.behind_at);
  ballot(l.notice_ballot);
  f(l.notice_commit), f(l.heartbeat_commit), f(l.known_commit), f(l.anchor_scanned);
  f(l.known_commit_from);
  auto& t = o.transfer;
  f(t.serving_touched), f(t.served_slot), f(t.served_offset), f(t.served_at), f(t.served_to);
  auto& p = o.proposer;
  ballot(p.ballot);
  f(p.recovered_commit), f(p.phase1_sent), f(p.backoff_until), f(p.next_slot);
  f(p.last_commit_sent), f(p.last_stamp_ms), f(p.adopted), f(p.anchor_slot);
  f(p.recovered_commit_from), f(p.steal_attempts), f(p.role), f(p.want_steal);
  auto& w = o.forwarding;
  ballot(w.forward_ballot);
  f(w.forward_seq);
  ballot(w.window_ballot);
  auto& r = o.reads;
  f(r.round), f(r.read_index), f(r.sent), f(r.ready_slot), f(r.active);
  auto& k = o.bookkeeping;
  f(k.indexed_anchor), f(k.queued_collect), f(k.queued_heartbeat), f(k.queued_check);
  f(k.queued_index), f(k.indexed_held), f(k.indexed_sweep), f(k.indexed_lagging);
}

template <typename T>
uint64_t ToBits(T v) {
  if constexpr (std::is_enum_v<T>) {
    return static_cast<uint64_t>(v);
  } else if constexpr (std::is_signed_v<T>) {  // zigzag: small negatives stay short
    const auto u = static_cast<uint64_t>(static_cast<int64_t>(v));
    return (u << 1) ^ (v < 0 ? ~uint64_t{0} : 0);
  } else {
    return static_cast<uint64_t>(v);
  }
}

template <typename T>
T FromBits(uint64_t b) {
  if constexpr (std::is_enum_v<T> || std::is_same_v<T, bool>) {
    return static_cast<T>(b);
  } else if constexpr (std::is_signed_v<T>) {
    return static_cast<T>(static_cast<int64_t>(b >> 1) ^ -static_cast<int64_t>(b & 1));
  } else {
    return static_cast<T>(b);
  }
}

std::vector<uint64_t> ScalarBits(const internal::ObjectState& o) {
  std::vector<uint64_t> bits;
  VisitScalars(o, [&bits](const auto& v) { bits.push_back(ToBits(v)); });
  return bits;
}

void PutVarint(std::string& out, uint64_t v) {
  while (v >= 0x80) {
    out.push_back(static_cast<char>(v | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<char>(v));
}

bool GetVarint(std::string_view& in, uint64_t& v) {
  v = 0;
  for (int shift = 0; shift < 64 && !in.empty(); shift += 7) {
    const auto byte = static_cast<uint8_t>(in.front());
    in.remove_prefix(1);
    v |= static_cast<uint64_t>(byte & 0x7f) << shift;
    if (byte < 0x80) return true;
  }
  return false;
}

void PutSet(std::string& out, const NodeSet& set) {
  PutVarint(out, set.size());
  for (NodeId node : set) PutVarint(out, node);
}

bool GetSet(std::string_view& in, NodeSet& set) {
  uint64_t n = 0, node = 0;
  if (!GetVarint(in, n)) return false;
  for (uint64_t i = 0; i < n; ++i) {
    if (!GetVarint(in, node)) return false;
    set.insert(static_cast<NodeId>(node));
  }
  return true;
}

// How the anchor's configuration bytes travel: none, the known configuration of its epoch
// (nearly always: no copy per object), or spelled out.
enum AnchorBytes : uint64_t { kNoAnchorBytes = 0, kKnownConfig = 1, kLiteral = 2 };

}  // namespace

std::optional<std::string> Replica::EncodeAtRest(const ObjectState& o) const {
  static const std::vector<uint64_t> kFresh = ScalarBits(ObjectState{});
  const std::vector<uint64_t> bits = ScalarBits(o);
  // Which fields differ from a fresh object's (two words: there are more than 64 fields).
  uint64_t mask[2] = {0, 0};
  ATLAS_CHECK(bits.size() <= 128);
  for (size_t i = 0; i < bits.size(); ++i) {
    if (bits[i] != kFresh[i]) mask[i / 64] |= uint64_t{1} << (i % 64);
  }
  std::string out;
  PutVarint(out, mask[0]);
  PutVarint(out, mask[1]);
  for (size_t i = 0; i < bits.size(); ++i) {
    if (bits[i] != kFresh[i]) PutVarint(out, bits[i]);
  }
  // The containers an object at rest may hold: an owner's phase-1 promises and last read
  // round's acks, forward windows without gaps, the migration policy's last writer per zone.
  PutSet(out, o.proposer.promises);
  PutSet(out, o.reads.acks);
  PutVarint(out, o.forwarding.windows.size());
  for (const auto& [origin, window] : o.forwarding.windows) {
    if (!window.above.empty()) return std::nullopt;
    PutVarint(out, origin);
    PutVarint(out, window.next);
  }
  PutVarint(out, o.forwarding.last_from_zone.size());
  for (const auto& [zone, node] : o.forwarding.last_from_zone) {
    PutVarint(out, zone);
    PutVarint(out, node);
  }
  const ConfigInfo* known = FindConfig(o.hard.anchor_epoch);
  if (o.hard.anchor_config.empty()) {
    PutVarint(out, kNoAnchorBytes);
  } else if (known != nullptr && known->encoded == o.hard.anchor_config) {
    PutVarint(out, kKnownConfig);
  } else {
    PutVarint(out, kLiteral);
    PutVarint(out, o.hard.anchor_config.size());
    out += o.hard.anchor_config;
  }
  return out;
}

Replica::ObjectState Replica::DecodeAtRest(std::string_view in) const {
  static const std::vector<uint64_t> kFresh = ScalarBits(ObjectState{});
  ObjectState o;
  uint64_t mask[2] = {0, 0};
  bool ok = GetVarint(in, mask[0]) && GetVarint(in, mask[1]);
  size_t i = 0;
  VisitScalars(o, [&](auto& field) {
    uint64_t b = kFresh[i];
    if ((mask[i / 64] >> (i % 64)) & 1) ok = ok && GetVarint(in, b);
    field = FromBits<std::remove_reference_t<decltype(field)>>(b);
    ++i;
  });
  ok = ok && GetSet(in, o.proposer.promises) && GetSet(in, o.reads.acks);
  uint64_t n = 0, x = 0, y = 0;
  ok = ok && GetVarint(in, n);
  for (uint64_t j = 0; ok && j < n; ++j) {
    ok = GetVarint(in, x) && GetVarint(in, y);
    o.forwarding.windows[static_cast<NodeId>(x)].next = y;
  }
  ok = ok && GetVarint(in, n);
  for (uint64_t j = 0; ok && j < n; ++j) {
    ok = GetVarint(in, x) && GetVarint(in, y);
    o.forwarding.last_from_zone[static_cast<ZoneId>(x)] = static_cast<NodeId>(y);
  }
  uint64_t tag = 0;
  ok = ok && GetVarint(in, tag);
  if (ok && tag == kKnownConfig) {
    const ConfigInfo* known = FindConfig(o.hard.anchor_epoch);
    ATLAS_CHECK(known != nullptr);  // configs_ only grows
    o.hard.anchor_config = known->encoded;
  } else if (ok && tag == kLiteral) {
    ok = GetVarint(in, n) && n <= in.size();
    if (ok) o.hard.anchor_config = std::string(in.substr(0, n));
  }
  ATLAS_CHECK(ok);  // Only EncodeAtRest wrote it, in this process.
  return o;
}

bool Replica::MayRest(const ObjectId& object, const ObjectState& o) const {
  // In no work list and in none of the per-object maps beside objects_: their entries would
  // otherwise wake the object (or find it missing) at a time nobody touched it.
  const internal::Bookkeeping& k = o.bookkeeping;
  if (k.queued_collect || k.queued_heartbeat || k.queued_index || k.queued_check) return false;
  if (k.indexed_sweep || k.indexed_lagging || o.proposer.role == Role::kCandidate) return false;
  return !active_.contains(object) && !catching_up_.contains(object) &&
         !catchup_queue_.contains(object) && !reanchoring_.contains(object) &&
         !leases_.contains(object) && !lazy_.contains(object) && !grants_.contains(object) &&
         !evict_due_.contains(object);
}

void Replica::RestIdleObjects() {
  if (!config_.rest_idle_objects || awake_.empty()) return;
  size_t budget = std::min(config_.rest_checks_per_tick, awake_.size());
  auto it = awake_.lower_bound(rest_cursor_);
  for (; budget > 0; --budget) {
    if (it == awake_.end()) it = awake_.begin();
    if (TryRest(*it, objects_.find(*it)->second)) {
      it = awake_.erase(it);
    } else {
      ++it;
    }
  }
  rest_cursor_ = it == awake_.end() ? ObjectId{} : *it;
}

bool Replica::ReportLeavesAtRest(const ObjectId& object, Slot commit_index, NodeId from,
                                 std::optional<Ballot> owner) {
  auto it = objects_.find(object);
  if (it == objects_.end() || it->second.state() != nullptr) return false;
  if (config_.test_reports_never_wake) return true;
  ObjectState o = DecodeAtRest(it->second.at_rest());
  if (commit_index > o.hard.commit_index) return false;  // something to learn
  if (owner && (*owner != o.learner.owner_ballot || o.proposer.role != Role::kFollower ||
                commit_index > o.learner.notice_commit)) {
    return false;  // a new owner, or one to step down for, or a notice to record
  }
  const auto before = o.learner;  // all NoteCommitIndex may change
  NoteCommitIndex(o, commit_index, from);
  if (!(o.learner == before)) return false;
  if (!owner) return true;
  // The sweeper reads when the owner was last heard of: write that into the encoding.
  o.learner.owner_heard = now_;
  std::optional<std::string> rest = EncodeAtRest(o);
  if (!rest || !(DecodeAtRest(*rest) == o)) return false;
  it->second.Rest(*rest);
  return true;
}

bool Replica::TryRest(const ObjectId& object, StoredObject& s) {
  if (!config_.rest_idle_objects || !MayRest(object, *s.state())) return false;
  // An idle state the encoding does not carry (a forward window with gaps, say) is tried
  // again only now and then: encoding it at every tick would cost a busy node a few percent.
  auto retry = rest_retry_.find(object);
  if (retry != rest_retry_.end() && now_ < retry->second) return false;
  std::optional<std::string> rest = EncodeAtRest(*s.state());
  if (!rest || (!config_.test_rest_without_round_trip && !(DecodeAtRest(*rest) == *s.state()))) {
    rest_retry_[object] = now_ + config_.rest_retry_ticks;
    return false;
  }
  if (retry != rest_retry_.end()) rest_retry_.erase(retry);
  if (config_.test_rest_forgets_promise) rest = EncodeForgettingPromise(*s.state());
  s.Rest(*rest);
  ++probes_.objects_rested;
  return true;
}

std::string Replica::EncodeForgettingPromise(const ObjectState& o) const {
  ObjectState forgetful = DecodeAtRest(*EncodeAtRest(o));
  forgetful.hard.promised = Ballot{};
  return *EncodeAtRest(forgetful);
}

Replica::ObjectState& Replica::Wake(const ObjectId& object, StoredObject& s) const {
  if (s.state() == nullptr) {
    s.Wake(std::make_unique<ObjectState>(DecodeAtRest(s.at_rest())));
    awake_.insert(object);
    ++probes_.objects_woken;
  }
  return *s.state();
}

size_t Replica::ObjectsAtRest() const { return objects_.size() - awake_.size(); }

size_t Replica::BytesAtRest() const {
  size_t bytes = 0;
  for (const auto& [object, stored] : objects_) bytes += stored.at_rest().size();
  return bytes;
}

}  // namespace atlas::consensus
