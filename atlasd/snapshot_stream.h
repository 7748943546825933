// Snapshots of objects, streamed (docs/storage.md §Snapshots): the bytes a lagging replica
// installs, produced a chunk at a time from one store snapshot, so that a transfer holds a
// chunk of a table rather than the table.
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "consensus/replica.h"
#include "storage/store.h"

namespace atlas {

// The sections of an object's snapshot: a member record, a governed table's snapshot.
inline constexpr char kSectionMember = 'M';
inline constexpr char kSectionTable = 'T';
// The column families a table's snapshot covers, in snapshot order.
inline constexpr storage::Cf kSnapshotCfs[] = {storage::Cf::kRows, storage::Cf::kBlobs,
                                              storage::Cf::kMeta};
// The table's keys in `cf`: [first, limit).
std::pair<std::string, std::string> TableRange(storage::Cf cf, const std::string& table);

// A table's snapshot entries (u8 column family, len-prefixed key, len-prefixed value), one at
// a time, from `reader`.
class TableEntries {
 public:
  TableEntries(storage::Reader* reader, std::string table);
  // Appends the next entry to *out; false when there is none left.
  bool Next(std::string* out) { return Step(out, nullptr); }
  // Adds the next entry's size to *bytes without copying it; false when there is none left.
  bool Measure(uint64_t* bytes) { return Step(nullptr, bytes); }

 private:
  bool Step(std::string* out, uint64_t* bytes);

  storage::Reader* reader_;
  std::string table_;
  size_t cf_ = 0;  // index into kSnapshotCfs
  std::unique_ptr<storage::Cursor> cursor_;
};

// An object's snapshot: `head` (its member sections), then a section per governed table
// ('T', len-prefixed name, varint length, the table's entries). The sizes are measured when
// it opens, with one pass over the tables' keys and values; the entries are read again as
// the chunks are asked for.
class SnapshotStream final : public consensus::SnapshotReader {
 public:
  SnapshotStream(std::unique_ptr<storage::Reader> pinned, consensus::Slot slot, std::string head,
                 std::vector<std::string> tables);
  consensus::Slot slot() const override { return slot_; }
  uint64_t size() const override { return size_; }
  std::string Read(uint64_t offset, size_t len) override;
  size_t buffered() const { return buf_.size(); }  // bytes held (tests: bounded by a chunk)

 private:
  // Appends the next piece (the head, a table's header, or one entry) to buf_; false at the end.
  bool Emit();
  void Restart();

  std::unique_ptr<storage::Reader> pinned_;  // the store as of `slot_`, for the stream's life
  consensus::Slot slot_;
  std::string head_;
  std::vector<std::string> tables_;
  std::vector<uint64_t> table_bytes_;
  uint64_t size_ = 0;
  // Where the pieces are: the next table (its header next when `entries_` is null).
  bool head_done_ = false;
  size_t table_ = 0;
  std::unique_ptr<TableEntries> entries_;
  // Bytes produced and not yet read past: [buf_start_, buf_start_ + buf_.size()).
  std::string buf_;
  uint64_t buf_start_ = 0;
};

}  // namespace atlas
