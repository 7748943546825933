#include "storage/paxos_state.h"

#include <algorithm>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "fmt/format.h"
#include "storage/coding.h"
#include "storage/keys.h"

namespace atlas::storage {
namespace {

// Log entries. Format 2 adds each command's owner stamp (docs/consensus.md §Time); format 1
// entries read as unstamped (0).
constexpr uint8_t kLogFormatV1 = 1;
constexpr uint8_t kLogFormat = 2;
// Format 1: promise, commit index, truncation. Format 2 adds the object's anchor (the
// configuration its log is replicated in, docs/consensus.md §Reconfiguration); format 1
// records (single-node data dirs) read as "no anchor".
constexpr uint8_t kAcceptorFormatV1 = 1;
constexpr uint8_t kAcceptorFormat = 2;

// A truncation past this many slots deletes the entries found, not every slot's key.
constexpr consensus::Slot kPointDeletesMax = 1024;

struct AcceptorRecord {
  consensus::Ballot promised;
  consensus::Slot commit_index = 0;
  consensus::Slot truncated_through = 0;
  uint64_t anchor_epoch = 0;
  std::string anchor_config;
};

std::string EncodeAcceptor(const AcceptorRecord& r) {
  std::string out;
  out.push_back(static_cast<char>(kAcceptorFormat));
  PutVarint(&out, r.promised.counter);
  PutVarint(&out, r.promised.node);
  PutVarint(&out, r.commit_index);
  PutVarint(&out, r.truncated_through);
  PutVarint(&out, r.anchor_epoch);
  PutLengthPrefixed(&out, r.anchor_config);
  return out;
}

std::optional<AcceptorRecord> DecodeAcceptor(std::string_view in) {
  if (in.empty()) return std::nullopt;
  const uint8_t format = static_cast<uint8_t>(in[0]);
  if (format != kAcceptorFormat && format != kAcceptorFormatV1) return std::nullopt;
  in.remove_prefix(1);
  AcceptorRecord r;
  uint64_t node;
  if (!GetVarint(&in, &r.promised.counter) || !GetVarint(&in, &node) ||
      !GetVarint(&in, &r.commit_index) || !GetVarint(&in, &r.truncated_through) ||
      node > UINT32_MAX) {
    return std::nullopt;
  }
  if (format == kAcceptorFormat) {
    std::string_view config;
    if (!GetVarint(&in, &r.anchor_epoch) || !GetLengthPrefixed(&in, &config)) return std::nullopt;
    r.anchor_config = std::string(config);
  }
  if (!in.empty()) return std::nullopt;
  r.promised.node = static_cast<consensus::NodeId>(node);
  return r;
}

}  // namespace

std::string EncodeLogEntry(const consensus::LogEntry& entry) {
  std::string out;
  out.push_back(static_cast<char>(kLogFormat));
  PutVarint(&out, entry.ballot.counter);
  PutVarint(&out, entry.ballot.node);
  PutVarint(&out, entry.value.size());
  for (const consensus::Command& c : entry.value) {
    PutVarint(&out, c.id.node);
    PutVarint(&out, c.id.seq);
    PutVarint(&out, static_cast<uint64_t>(std::max<int64_t>(c.stamp_ms, 0)));
    PutLengthPrefixed(&out, c.data);
  }
  return out;
}

std::optional<consensus::LogEntry> DecodeLogEntry(std::string_view in) {
  if (in.empty()) return std::nullopt;
  const uint8_t format = static_cast<uint8_t>(in[0]);
  if (format != kLogFormat && format != kLogFormatV1) return std::nullopt;
  in.remove_prefix(1);
  consensus::LogEntry e;
  uint64_t node, n;
  if (!GetVarint(&in, &e.ballot.counter) || !GetVarint(&in, &node) || node > UINT32_MAX ||
      !GetVarint(&in, &n) || n > in.size()) {
    return std::nullopt;
  }
  e.ballot.node = static_cast<consensus::NodeId>(node);
  e.value.reserve(n);
  for (uint64_t i = 0; i < n; ++i) {
    consensus::Command c;
    uint64_t cnode;
    std::string_view data;
    uint64_t stamp = 0;
    if (!GetVarint(&in, &cnode) || cnode > UINT32_MAX || !GetVarint(&in, &c.id.seq) ||
        (format == kLogFormat && (!GetVarint(&in, &stamp) || stamp > INT64_MAX)) ||
        !GetLengthPrefixed(&in, &data)) {
      return std::nullopt;
    }
    c.stamp_ms = static_cast<int64_t>(stamp);
    c.id.node = static_cast<consensus::NodeId>(cnode);
    c.data = std::string(data);
    e.value.push_back(std::move(c));
  }
  if (!in.empty()) return std::nullopt;
  return e;
}

absl::Status AddHardStateUpdate(const consensus::HardStateUpdate& u, WriteSet& writes) {
  writes.Put(Cf::kAcceptor, u.object,
             EncodeAcceptor({u.promised, u.commit_index, u.truncated_through, u.anchor_epoch,
                             u.anchor_config}));
  for (const consensus::SlotEntry& e : u.entries) {
    if (e.slot <= u.truncated_through) continue;
    writes.Put(Cf::kLog, LogKey(u.object, e.slot), EncodeLogEntry(e.entry));
  }
  // Compaction of the log after a snapshot: usually the snapshot interval's slots, one by
  // one; after an installed snapshot, which may skip millions of slots this node never
  // held, only the entries that are there.
  if (u.truncated_through <= u.truncated_from) return absl::OkStatus();
  if (u.truncated_through - u.truncated_from <= kPointDeletesMax) {
    for (consensus::Slot s = u.truncated_from + 1; s <= u.truncated_through; ++s) {
      writes.Delete(Cf::kLog, LogKey(u.object, s));
    }
    return absl::OkStatus();
  }
  return DeleteAllIn(writes, Cf::kLog, LogKey(u.object, u.truncated_from + 1),
                     LogKey(u.object, u.truncated_through + 1));
}

absl::StatusOr<consensus::PersistentState> LoadPersistentState(
    Store& store, const std::function<consensus::Slot(const consensus::ObjectId&)>& applied) {
  consensus::PersistentState state;
  std::unique_ptr<Cursor> it = store.Scan(Cf::kAcceptor, "", "");
  for (it->Seek(""); it->Valid(); it->Next()) {
    std::string object(it->key());
    auto rec = DecodeAcceptor(it->value());
    if (!rec) return absl::DataLossError(fmt::format("corrupt acceptor state of {}", object));
    consensus::ObjectHardState& hard = state[object];
    hard.promised = rec->promised;
    hard.commit_index = rec->commit_index;
    hard.truncated_through = rec->truncated_through;
    hard.anchor_epoch = rec->anchor_epoch;
    hard.anchor_config = rec->anchor_config;
    const consensus::Slot first = applied ? applied(object) + 1 : 0;
    const std::string lo = LogKey(object, first), hi = LogKey(object, UINT64_MAX);
    std::unique_ptr<Cursor> log = store.Scan(Cf::kLog, lo, hi);
    for (log->Seek(lo); log->Valid(); log->Next()) {
      std::string_view key = log->key();
      consensus::Slot slot = GetBigEndian64(key.substr(key.size() - 8));
      auto entry = DecodeLogEntry(log->value());
      if (!entry) {
        return absl::DataLossError(fmt::format("corrupt log entry {} of {}", slot, object));
      }
      hard.log.emplace(slot, std::move(*entry));
    }
    if (absl::Status s = log->status(); !s.ok()) return s;
  }
  if (absl::Status s = it->status(); !s.ok()) return s;
  return state;
}

std::string EncodeInstalling(const consensus::Snapshot& snapshot) {
  std::string out;
  PutVarint(&out, snapshot.slot);
  PutVarint(&out, snapshot.anchor_epoch);
  out.append(snapshot.anchor_config);
  return out;
}

absl::StatusOr<std::vector<std::pair<consensus::ObjectId, consensus::Snapshot>>> LoadInstalling(
    Store& store) {
  std::vector<std::pair<consensus::ObjectId, consensus::Snapshot>> out;
  auto [lo, hi] = AllInstallingRange();
  std::unique_ptr<Cursor> it = store.Scan(Cf::kMeta, lo, hi);
  for (it->Seek(lo); it->Valid(); it->Next()) {
    std::string object(it->key().substr(lo.size()));
    std::string_view in = it->value();
    consensus::Snapshot snap;
    if (!GetVarint(&in, &snap.slot) || !GetVarint(&in, &snap.anchor_epoch)) {
      return absl::DataLossError(fmt::format("corrupt install marker of {}", object));
    }
    snap.anchor_config = std::string(in);
    out.emplace_back(std::move(object), std::move(snap));
  }
  if (absl::Status s = it->status(); !s.ok()) return s;
  return out;
}

}  // namespace atlas::storage
