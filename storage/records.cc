#include "storage/records.h"

#include <algorithm>

#include "storage/coding.h"

namespace atlas::storage {
namespace {
constexpr uint8_t kRowFormatV1 = 1;  // revision: the log slot of the last write
constexpr uint8_t kRowFormat = 2;    // revision: the table revision; + expires
constexpr uint8_t kFlagChunked = 1;
constexpr uint8_t kFlagBinary = 2;
constexpr uint8_t kAclFormat = 1;
constexpr uint8_t kStateFormatV1 = 1;  // commit_index, pin, group
constexpr uint8_t kStateFormatV2 = 2;  // + gen, pending
constexpr uint8_t kStateFormatV3 = 3;  // + revision
constexpr uint8_t kStateFormatV4 = 4;  // + clock
constexpr uint8_t kStateFormat = 5;    // + change_bytes
constexpr uint8_t kChangeFormat = 1;
constexpr uint8_t kMovesFormat = 1;
constexpr uint8_t kMemberFormat = 1;

// WORM timestamps are stored zig-zag free: they are never negative (checked on decode).
}  // namespace

std::string EncodeRowRecord(const RowRecord& r) {
  std::string out;
  out.reserve(16 + r.inline_value.size());
  out.push_back(static_cast<char>(kRowFormat));
  out.push_back(static_cast<char>((r.chunked ? kFlagChunked : 0) | (r.binary ? kFlagBinary : 0)));
  PutVarint(&out, static_cast<uint64_t>(r.worm_until_ms));
  PutVarint(&out, r.size);
  PutVarint(&out, r.revision);
  PutVarint(&out, static_cast<uint64_t>(r.expires_ms));
  if (!r.chunked) out.append(r.inline_value);
  return out;
}

int64_t RowExpiryMs(std::string_view in) {
  if (in.size() < 2 || static_cast<uint8_t>(in[0]) != kRowFormat) return 0;
  in.remove_prefix(2);
  uint64_t worm, size, revision, expires;
  if (!GetVarint(&in, &worm) || !GetVarint(&in, &size) || !GetVarint(&in, &revision) ||
      !GetVarint(&in, &expires) || expires > static_cast<uint64_t>(INT64_MAX)) {
    return 0;
  }
  return static_cast<int64_t>(expires);
}

std::optional<RowRecord> DecodeRowRecord(std::string_view in) {
  if (in.size() < 2) return std::nullopt;
  const auto format = static_cast<uint8_t>(in[0]);
  if (format != kRowFormat && format != kRowFormatV1) return std::nullopt;
  RowRecord r;
  auto flags = static_cast<uint8_t>(in[1]);
  r.chunked = flags & kFlagChunked;
  r.binary = flags & kFlagBinary;
  in.remove_prefix(2);
  uint64_t worm;
  if (!GetVarint(&in, &worm) || !GetVarint(&in, &r.size) || !GetVarint(&in, &r.revision)) {
    return std::nullopt;
  }
  if (worm > static_cast<uint64_t>(INT64_MAX)) return std::nullopt;
  r.worm_until_ms = static_cast<int64_t>(worm);
  if (format == kRowFormatV1) {
    // Its number was a log slot, which a later table revision could equal: kept apart.
    if (r.revision >= kLegacyRevisionBase) return std::nullopt;
    r.revision += kLegacyRevisionBase;
  } else {
    uint64_t expires = 0;
    if (!GetVarint(&in, &expires) || expires > static_cast<uint64_t>(INT64_MAX)) {
      return std::nullopt;
    }
    r.expires_ms = static_cast<int64_t>(expires);
  }
  if (!r.chunked) {
    if (in.size() != r.size) return std::nullopt;
    r.inline_value.assign(in);
  }
  return r;
}

std::string EncodeTableAcl(const TableAcl& acl) {
  std::string out;
  out.push_back(static_cast<char>(kAclFormat));
  out.push_back(acl.ever_owned ? 1 : 0);
  PutVarint(&out, acl.grants.size());
  for (const auto& g : acl.grants) {
    PutLengthPrefixed(&out, g.principal);
    out.push_back(static_cast<char>(g.perm));
  }
  return out;
}

std::optional<TableAcl> DecodeTableAcl(std::string_view in) {
  if (in.size() < 2 || static_cast<uint8_t>(in[0]) != kAclFormat) return std::nullopt;
  TableAcl acl;
  acl.ever_owned = in[1] != 0;
  in.remove_prefix(2);
  uint64_t n;
  if (!GetVarint(&in, &n) || n > in.size()) return std::nullopt;
  for (uint64_t i = 0; i < n; ++i) {
    std::string_view p;
    if (!GetLengthPrefixed(&in, &p) || in.empty()) return std::nullopt;
    auto perm = static_cast<uint8_t>(in[0]);
    in.remove_prefix(1);
    if (perm > 2) return std::nullopt;
    acl.grants.push_back({std::string(p), static_cast<AclPerm>(perm)});
  }
  return acl;
}

std::string EncodeTableState(const TableState& s) {
  std::string out;
  out.push_back(static_cast<char>(kStateFormat));
  PutVarint(&out, s.commit_index);
  PutLengthPrefixed(&out, s.pinned_region);
  PutLengthPrefixed(&out, s.group);
  PutVarint(&out, s.gen);
  out.push_back(static_cast<char>((s.pending ? 1 : 0) | (s.whole_slot ? 2 : 0) |
                                  (s.local_reads ? 4 : 0) | (s.auto_reads ? 8 : 0)));
  PutVarint(&out, s.revision);
  PutVarint(&out, static_cast<uint64_t>(std::max<int64_t>(s.clock_ms, 0)));
  PutVarint(&out, s.change_bytes);
  return out;
}

std::string EncodeRowChange(const RowChange& c) {
  std::string out;
  out.reserve(c.row.size() + c.value.size() + 8);
  out.push_back(static_cast<char>(kChangeFormat));
  out.push_back(static_cast<char>(c.del ? 2 : 1));
  PutLengthPrefixed(&out, c.row);
  out.append(c.value);
  return out;
}

std::optional<RowChange> DecodeRowChange(std::string_view in) {
  if (in.size() < 2 || static_cast<uint8_t>(in[0]) != kChangeFormat) return std::nullopt;
  const auto op = static_cast<uint8_t>(in[1]);
  if (op != 1 && op != 2) return std::nullopt;
  in.remove_prefix(2);
  RowChange c;
  c.del = op == 2;
  std::string_view row;
  if (!GetLengthPrefixed(&in, &row) || (c.del && !in.empty())) return std::nullopt;
  c.row = row;
  c.value = in;
  return c;
}

std::optional<TableState> DecodeTableState(std::string_view in) {
  if (in.empty()) return std::nullopt;
  auto format = static_cast<uint8_t>(in[0]);
  if (format < kStateFormatV1 || format > kStateFormat) return std::nullopt;
  in.remove_prefix(1);
  TableState s;
  std::string_view pin, group;
  if (!GetVarint(&in, &s.commit_index) || !GetLengthPrefixed(&in, &pin) ||
      !GetLengthPrefixed(&in, &group)) {
    return std::nullopt;
  }
  s.pinned_region = pin;
  s.group = group;
  if (format >= kStateFormatV2) {
    if (!GetVarint(&in, &s.gen) || in.empty() || static_cast<uint8_t>(in[0]) > 15) {
      return std::nullopt;
    }
    s.pending = in[0] & 1;
    s.whole_slot = in[0] & 2;
    s.local_reads = in[0] & 4;
    s.auto_reads = in[0] & 8;
    in.remove_prefix(1);
  }
  if (format >= kStateFormatV3 && !GetVarint(&in, &s.revision)) return std::nullopt;
  uint64_t clock = 0;
  if (format >= kStateFormatV4 && (!GetVarint(&in, &clock) || clock > INT64_MAX)) {
    return std::nullopt;
  }
  s.clock_ms = static_cast<int64_t>(clock);
  if (format >= kStateFormat && !GetVarint(&in, &s.change_bytes)) return std::nullopt;
  if (!in.empty()) return std::nullopt;
  return s;
}

std::string EncodeTableMoves(const std::vector<TableInterval>& moves) {
  std::string out;
  out.push_back(static_cast<char>(kMovesFormat));
  PutVarint(&out, moves.size());
  for (const auto& m : moves) {
    PutLengthPrefixed(&out, m.object);
    PutVarint(&out, m.start);
    PutVarint(&out, m.end);
  }
  return out;
}

std::optional<std::vector<TableInterval>> DecodeTableMoves(std::string_view in) {
  if (in.empty() || static_cast<uint8_t>(in[0]) != kMovesFormat) return std::nullopt;
  in.remove_prefix(1);
  uint64_t n;
  if (!GetVarint(&in, &n) || n > in.size()) return std::nullopt;
  std::vector<TableInterval> moves(n);
  for (auto& m : moves) {
    std::string_view obj;
    if (!GetLengthPrefixed(&in, &obj) || !GetVarint(&in, &m.start) || !GetVarint(&in, &m.end)) {
      return std::nullopt;
    }
    m.object = obj;
  }
  if (!in.empty()) return std::nullopt;
  return moves;
}

std::string EncodeObjectMember(const ObjectMember& m) {
  std::string out;
  out.push_back(static_cast<char>(kMemberFormat));
  PutVarint(&out, m.gen);
  out.push_back(m.open ? 1 : 0);
  PutLengthPrefixed(&out, m.to);
  return out;
}

std::optional<ObjectMember> DecodeObjectMember(std::string_view in) {
  if (in.size() < 2 || static_cast<uint8_t>(in[0]) != kMemberFormat) return std::nullopt;
  in.remove_prefix(1);
  ObjectMember m;
  std::string_view to;
  if (!GetVarint(&in, &m.gen) || in.empty() || static_cast<uint8_t>(in[0]) > 1) {
    return std::nullopt;
  }
  m.open = in[0] != 0;
  in.remove_prefix(1);
  if (!GetLengthPrefixed(&in, &to) || !in.empty()) return std::nullopt;
  m.to = to;
  return m;
}

}  // namespace atlas::storage
