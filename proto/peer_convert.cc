#include "proto/peer_convert.h"

#include "fmt/format.h"

namespace atlas::proto {
namespace {

using consensus::MessageType;

constexpr int kTypeMax = static_cast<int>(MessageType::kLeaseGrant);

// Object names are table names, 1-255 bytes of [A-Za-z0-9_-] (shared/spec/protocol.md §4), a
// group's object "@<group>" (docs/design.md §Groups), or a system object such as "atlas.nodes"
// (hence '.').
bool ValidObject(const std::string& s, size_t max) {
  if (s.empty() || s.size() > max + (s[0] == '@' ? 1 : 0) || s == "@") return false;
  for (size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-' || c == '.' || (c == '@' && i == 0);
    if (!ok) return false;
  }
  return true;
}

absl::Status Invalid(std::string_view what) {
  return absl::InvalidArgumentError(fmt::format("invalid peer message: {}", what));
}

void CommandToProto(const consensus::Command& c, PeerCommand* out) {
  out->mutable_id()->set_node(c.id.node);
  out->mutable_id()->set_seq(c.id.seq);
  out->set_data(c.data);
  if (c.stamp_ms != 0) out->set_stamp_ms(c.stamp_ms);
}

// `anchor_allowed`: the first command of a log entry's batch may be an anchor, the core's own
// record of a configuration (id.node 0; docs/consensus.md §Reconfiguration); the commands that
// waited for it follow it in the same batch.
absl::Status CommandFromProto(const PeerCommand& in, const PeerLimits& limits,
                              consensus::Command* out, bool anchor_allowed = false) {
  if (in.data().size() > limits.command_bytes_max) return Invalid("command too large");
  if (in.id().node() == consensus::kNoNode && !anchor_allowed) {
    return Invalid("command without origin node");
  }
  if (in.stamp_ms() < 0) return Invalid("negative command stamp");
  out->id = {in.id().node(), in.id().seq()};
  out->data = in.data();
  out->stamp_ms = in.stamp_ms();
  return absl::OkStatus();
}

}  // namespace

void ToProto(const consensus::Message& m, PeerMessage* out) {
  out->Clear();
  out->set_type(static_cast<PeerMessage::Type>(m.type));
  out->set_from(m.from);
  out->set_to(m.to);
  out->set_object(m.object);
  out->mutable_ballot()->set_counter(m.ballot.counter);
  out->mutable_ballot()->set_node(m.ballot.node);
  out->set_ok(m.ok);
  out->set_lease_ms(static_cast<uint64_t>(m.lease_ms));
  out->set_holders(m.holders);
  out->set_read_rate(m.read_rate);
  out->set_slot(m.slot);
  out->set_commit_index(m.commit_index);
  out->set_round(m.round);
  out->set_seq(m.seq);
  for (const consensus::SlotEntry& e : m.entries) {
    PeerSlotEntry* pe = out->add_entries();
    pe->set_slot(e.slot);
    pe->mutable_ballot()->set_counter(e.entry.ballot.counter);
    pe->mutable_ballot()->set_node(e.entry.ballot.node);
    for (const consensus::Command& c : e.entry.value) CommandToProto(c, pe->add_value());
  }
  for (consensus::Slot s : m.slots) out->add_slots(s);
  for (const consensus::Command& c : m.commands) CommandToProto(c, out->add_commands());
  for (const consensus::RequestId& id : m.request_ids) {
    RequestId* p = out->add_request_ids();
    p->set_node(id.node);
    p->set_seq(id.seq);
  }
  out->set_snapshot_slot(m.snapshot_slot);
  out->set_snapshot(m.snapshot);
  out->set_snapshot_offset(m.snapshot_offset);
  out->set_snapshot_total(m.snapshot_total);
  out->set_epoch(m.epoch);
  out->set_anchor_epoch(m.anchor_epoch);
  out->set_anchor_config(m.anchor_config);
  for (const auto& [object, index] : m.commit_indexes) {
    ObjectCommit* oc = out->add_commit_indexes();
    oc->set_object(object);
    oc->set_commit_index(index);
  }
  if (!m.digest.lo.empty()) {
    RangeDigest* d = out->mutable_digest();
    d->set_lo(m.digest.lo);
    d->set_hi(m.digest.hi);
    d->set_count(m.digest.count);
    d->set_hash(m.digest.hash);
  }
}

absl::StatusOr<consensus::Message> FromProto(const PeerMessage& in, const PeerLimits& limits,
                                             consensus::NodeId authenticated_from) {
  consensus::Message m;
  if (static_cast<int>(in.type()) < 0 || static_cast<int>(in.type()) > kTypeMax) {
    return Invalid(fmt::format("unknown type {}", static_cast<int>(in.type())));
  }
  m.type = static_cast<MessageType>(in.type());
  if (in.from() == consensus::kNoNode || in.to() == consensus::kNoNode) {
    return Invalid("missing sender or receiver");
  }
  if (authenticated_from != consensus::kNoNode && in.from() != authenticated_from) {
    return Invalid(fmt::format("claims sender {} but the peer is node {}", in.from(),
                               authenticated_from));
  }
  m.from = in.from();
  m.to = in.to();
  // Heartbeats concern the node, not one object; a directory's first page has no cursor.
  const bool object_optional =
      m.type == MessageType::kHeartbeat || m.type == MessageType::kDirectoryRequest ||
      m.type == MessageType::kDirectory || m.type == MessageType::kRangeRequest ||
      m.type == MessageType::kRange;
  if (!object_optional || !in.object().empty()) {
    if (!ValidObject(in.object(), limits.object_bytes_max)) return Invalid("bad object name");
  }
  m.object = in.object();
  m.ballot = {in.ballot().counter(), in.ballot().node()};
  m.ok = in.ok();
  if (in.lease_ms() > static_cast<uint64_t>(consensus::kLeaseMsMax)) {
    return Invalid("read lease too long");
  }
  m.lease_ms = static_cast<int64_t>(in.lease_ms());
  m.holders = in.holders();
  m.read_rate = in.read_rate();
  m.slot = in.slot();
  m.commit_index = in.commit_index();
  m.round = in.round();
  m.seq = in.seq();
  if (static_cast<size_t>(in.entries_size()) > limits.entries_max) return Invalid("too many entries");
  consensus::Slot previous = 0;
  for (const PeerSlotEntry& pe : in.entries()) {
    // Entries are sent in increasing slot order; anything else is malformed.
    if (pe.slot() == 0 || pe.slot() <= previous) return Invalid("entries out of order");
    previous = pe.slot();
    if (static_cast<size_t>(pe.value_size()) > limits.commands_per_entry_max) {
      return Invalid("batch too large");
    }
    consensus::SlotEntry e;
    e.slot = pe.slot();
    e.entry.ballot = {pe.ballot().counter(), pe.ballot().node()};
    e.entry.value.resize(static_cast<size_t>(pe.value_size()));
    for (int i = 0; i < pe.value_size(); ++i) {
      if (auto s = CommandFromProto(pe.value(i), limits, &e.entry.value[static_cast<size_t>(i)],
                                    /*anchor_allowed=*/i == 0);
          !s.ok()) {
        return s;
      }
    }
    m.entries.push_back(std::move(e));
  }
  if (static_cast<size_t>(in.slots_size()) > limits.ids_max) return Invalid("too many slots");
  m.slots.assign(in.slots().begin(), in.slots().end());
  if (static_cast<size_t>(in.commands_size()) > limits.commands_max) {
    return Invalid("too many commands");
  }
  m.commands.resize(static_cast<size_t>(in.commands_size()));
  for (int i = 0; i < in.commands_size(); ++i) {
    if (auto s = CommandFromProto(in.commands(i), limits, &m.commands[static_cast<size_t>(i)]);
        !s.ok()) {
      return s;
    }
  }
  if (static_cast<size_t>(in.request_ids_size()) > limits.ids_max) {
    return Invalid("too many request ids");
  }
  for (const RequestId& id : in.request_ids()) {
    if (id.node() == consensus::kNoNode) return Invalid("request id without node");
    m.request_ids.push_back({id.node(), id.seq()});
  }
  if (in.snapshot().size() > limits.snapshot_bytes_max) return Invalid("snapshot too large");
  m.snapshot_slot = in.snapshot_slot();
  m.snapshot = in.snapshot();
  m.snapshot_offset = in.snapshot_offset();
  m.snapshot_total = in.snapshot_total();
  if (in.snapshot_total() > limits.snapshot_total_bytes_max || !m.SnapshotFieldsConsistent()) {
    return Invalid("bad snapshot chunk");
  }
  if (in.anchor_config().size() > limits.anchor_config_bytes_max) {
    return Invalid("anchor configuration too large");
  }
  m.epoch = in.epoch();
  m.anchor_epoch = in.anchor_epoch();
  m.anchor_config = in.anchor_config();
  if (static_cast<size_t>(in.commit_indexes_size()) > limits.commit_indexes_max) {
    return Invalid("too many commit indexes");
  }
  const std::string* last_object = nullptr;
  for (const ObjectCommit& oc : in.commit_indexes()) {
    if (!ValidObject(oc.object(), limits.object_bytes_max)) return Invalid("bad object name");
    // Sorted and unique, as the core emits them.
    if (last_object != nullptr && !(*last_object < oc.object())) {
      return Invalid("commit indexes not sorted");
    }
    last_object = &oc.object();
    m.commit_indexes.emplace_back(oc.object(), oc.commit_index());
  }
  if (in.has_digest() && !in.digest().lo().empty()) {
    const RangeDigest& d = in.digest();
    if (!ValidObject(d.lo(), limits.object_bytes_max) ||
        !ValidObject(d.hi(), limits.object_bytes_max) || d.hi() < d.lo()) {
      return Invalid("bad digest range");
    }
    m.digest = {d.lo(), d.hi(), d.count(), d.hash()};
  }
  return m;
}

}  // namespace atlas::proto
