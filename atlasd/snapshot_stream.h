// Snapshots of objects, streamed (docs/storage.md §Snapshots): the bytes a lagging replica
// installs, produced a chunk at a time from one store snapshot, so that a transfer holds a
// chunk of a table rather than the table.
#pragma once

#include <memory>
#include <string>
#include <string_view>
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

// ---------------------------------------------------------------------------------------------
// The receiving side: a snapshot read back in pieces, never whole.

// The bytes of a received snapshot, front to back, as often as needed.
class SnapshotPieces {
 public:
  virtual ~SnapshotPieces() = default;
  virtual void Rewind() = 0;
  // The next piece into *piece; false at the end.
  virtual bool Next(std::string* piece) = 0;
};

// A snapshot held in memory (a table adopted by a group, tests): one piece.
class StringPieces final : public SnapshotPieces {
 public:
  explicit StringPieces(std::string_view data) : data_(data) {}
  void Rewind() override { done_ = false; }
  bool Next(std::string* piece) override;

 private:
  std::string_view data_;
  bool done_ = false;
};

// The chunks staged for `object` (storage::StagedChunkKey), read through `reader`, which
// must outlive this.
class StagedSnapshot final : public SnapshotPieces {
 public:
  StagedSnapshot(storage::Reader* reader, std::string object)
      : reader_(reader), object_(std::move(object)) {}
  void Rewind() override {
    cursor_.reset();
    bytes_ = 0;
  }
  bool Next(std::string* piece) override;
  uint64_t bytes() const { return bytes_; }  // read since the last Rewind

 private:
  storage::Reader* reader_;
  std::string object_;
  std::unique_ptr<storage::Cursor> cursor_;
  uint64_t bytes_ = 0;
};

// All of it at once (small snapshots: `atlas.nodes`).
std::string ReadWhole(SnapshotPieces& pieces);
// Deletes, in `writes`, the chunks staged for `object`.
void DropStagedChunks(const std::string& object, storage::WriteSet& writes);

// Reads an object's snapshot (the format of SnapshotStream) section by section and a table's
// entries one at a time, holding about one piece. Views it returns last until the next call.
class SnapshotParser {
 public:
  explicit SnapshotParser(SnapshotPieces* in) : in_(in) { in_->Rewind(); }
  // Starts inside one table's section of `bytes` bytes: a bare table snapshot.
  SnapshotParser(SnapshotPieces* in, uint64_t bytes) : SnapshotParser(in) { left_ = bytes; }
  // The next section (the rest of the current one is skipped): its kind and table, and for a
  // member section its record. False at the end, or on bytes that do not frame (!ok()).
  bool NextSection(char* kind, std::string* table, std::string* member);
  // The next entry of the current table section; false at its end, or on error (!ok()).
  bool NextEntry(storage::Cf* cf, std::string_view* key, std::string_view* value);
  bool ok() const { return ok_; }
  size_t buffered() const { return buf_.size(); }  // bytes held (tests: about a piece)

  // No key, value or name is this large: a length past it is corrupt (and must not make the
  // parser buffer the whole snapshot).
  static constexpr uint64_t kItemBytesMax = 16 << 20;

 private:
  bool Fill(size_t n);  // n bytes buffered from pos_ on; false if the input ends first
  bool VarintAt(size_t* at, uint64_t* v);
  bool BytesAt(size_t* at, uint64_t n, size_t* start);  // offsets from pos_
  std::string_view View(size_t start, uint64_t n) const;
  bool Fail() { return ok_ = false; }

  SnapshotPieces* in_;
  std::string buf_;
  size_t pos_ = 0;
  uint64_t left_ = 0;  // bytes left in the current table section
  bool ok_ = true;
};

}  // namespace atlas
