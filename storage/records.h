// Value formats of the rows and meta column families (docs/storage.md §Values).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace atlas::storage {

// Values up to this size live inline in the row record; larger ones are split into chunks of
// kBlobChunkBytes in the blobs column family (RocksDB blob files), so a 100 MiB value is never
// one RocksDB value and can be read chunk by chunk.
inline constexpr size_t kInlineValueBytesMax = 64 * 1024;
inline constexpr size_t kBlobChunkBytes = 1024 * 1024;

inline constexpr uint64_t kLegacyRevisionBase = uint64_t{1} << 62;

struct RowRecord {
  bool chunked = false;       // value lives in the blobs CF
  bool binary = false;        // value contains CR or LF: KEY GET refuses it
  int64_t worm_until_ms = 0;  // 0: not WORM-protected
  uint64_t size = 0;          // value bytes
  // The table revision of the change that wrote this row (shared/spec/transactions.md §1). Rows written
  // before row revisions (format 1) stored a log slot instead, which a later table revision
  // could equal: they read as kLegacyRevisionBase + that slot, a number no table reaches.
  uint64_t revision = 0;
  int64_t expires_ms = 0;     // 0: never; else gone for readers from this instant
  std::string inline_value;   // when !chunked

  uint32_t chunk_count() const {
    return chunked ? static_cast<uint32_t>((size + kBlobChunkBytes - 1) / kBlobChunkBytes) : 0;
  }
};

std::string EncodeRowRecord(const RowRecord& r);
std::optional<RowRecord> DecodeRowRecord(std::string_view in);
// Whether a row has expired by `now_ms`: gone for every reader from its expiry on.
inline bool Expired(const RowRecord& r, int64_t now_ms) {
  return r.expires_ms > 0 && r.expires_ms <= now_ms;
}
// The expiry of an encoded row record (0: none, or it does not decode), without copying its
// value: for scans, which look at every row.
int64_t RowExpiryMs(std::string_view encoded);
// Expired(), for an encoded row record.
inline bool ExpiredRecord(std::string_view encoded, int64_t now_ms) {
  const int64_t expires = RowExpiryMs(encoded);
  return expires > 0 && expires <= now_ms;
}

enum class AclPerm : uint8_t { kRead = 0, kWrite = 1, kOwner = 2 };

// A table's access-control list (shared/spec/protocol.md §6). Replicated with the table's data.
struct TableAcl {
  struct Grant {
    std::string principal;
    AclPerm perm;
    bool operator==(const Grant&) const = default;
  };
  std::vector<Grant> grants;  // sorted by (principal, perm), no duplicates
  bool ever_owned = false;    // once an OWNER existed, ownerless means "administered by nobody"
};

std::string EncodeTableAcl(const TableAcl& acl);
std::optional<TableAcl> DecodeTableAcl(std::string_view in);

// Replicated per-table placement settings and the apply position (docs/design.md §Groups).
// A table's data is governed by one consensus object at a time; each stay in one object is a
// numbered "interval" (gen). The table's position is (gen, commit_index): later positions
// include every earlier one, which is how replicas that apply two objects' logs in different
// interleavings still converge.
struct TableState {
  uint64_t commit_index = 0;  // last slot applied to this table, in its current object's log
  std::string pinned_region;  // empty: not pinned
  std::string group;          // empty: no group (after a seal: the group it is moving to)
  bool local_reads = false;   // TABLE READS LOCAL or AUTO (docs/consensus.md §Replica read leases)
  bool auto_reads = false;    // TABLE READS AUTO: leases only where reads dominate
  uint64_t gen = 0;           // index of the current interval (number of seals before it)
  bool pending = false;       // the current interval was sealed; the adopt has not applied yet
  // commit_index's slot is included whole (the state came from a snapshot); otherwise later
  // commands of that same slot may still apply.
  bool whole_slot = false;
  // Row changes applied to the table so far (PUT and DEL of an existing row): the table's
  // revision, the position WATCH streams and resumes from. Same on every replica.
  uint64_t revision = 0;
  // The table's time: the highest owner stamp applied to it (unix ms). A command is judged at
  // max(its stamp, this), so the time WORM retention is judged at never goes backwards within
  // a table, whichever owner stamped (docs/consensus.md §Time).
  int64_t clock_ms = 0;
  // Bytes of change records (EncodeRowChange) the table's revisions made so far: the same on
  // every replica. Marks of it bound a node's change history in bytes (docs/watch.md).
  uint64_t change_bytes = 0;
};

// TABLE INFO's reads= field.
inline const char* ReadsModeName(const TableState& s) {
  return !s.local_reads ? "owner" : s.auto_reads ? "auto" : "local";
}

std::string EncodeTableState(const TableState& s);

// One row change of a table at a revision (Cf::kChanges): what WATCH streams.
struct RowChange {
  bool del = false;
  std::string row;
  std::string value;  // PUT: the whole new value
};
std::string EncodeRowChange(const RowChange& c);
std::optional<RowChange> DecodeRowChange(std::string_view in);
std::optional<TableState> DecodeTableState(std::string_view in);

// Every interval of a table, oldest first (meta field "moves"; absent = one open interval in
// the table's own object from slot 0). Needed only by seals, adopts and lagging replicas.
struct TableInterval {
  std::string object;  // the consensus object whose log governed the table
  uint64_t start = 0;  // slot of the adopt that opened it (0: the table's first interval)
  uint64_t end = 0;    // slot of the seal that closed it; 0: open
  bool operator==(const TableInterval&) const = default;
};
std::string EncodeTableMoves(const std::vector<TableInterval>& moves);
std::optional<std::vector<TableInterval>> DecodeTableMoves(std::string_view in);

// An object's record of one table, written only by that object's log: whether the object
// governs the table now (open) and for which interval; after a seal, where it went.
struct ObjectMember {
  uint64_t gen = 0;
  bool open = false;
  std::string to;  // after a seal: the object the table moved to
  bool operator==(const ObjectMember&) const = default;
};
std::string EncodeObjectMember(const ObjectMember& m);
std::optional<ObjectMember> DecodeObjectMember(std::string_view in);

}  // namespace atlas::storage
