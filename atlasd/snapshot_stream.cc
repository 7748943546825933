#include "atlasd/snapshot_stream.h"

#include "atlasd/fatal.h"
#include "socketproto/str.h"
#include "storage/coding.h"
#include "storage/keys.h"

namespace atlas {

using storage::Cf;

std::pair<std::string, std::string> TableRange(Cf cf, const std::string& table) {
  if (cf == Cf::kMeta) {
    std::string lo = storage::TableMetaKey(table, "");
    std::string hi = lo;
    hi.back() = '\x01';  // "t" 00 <table> 01: just past the table's meta keys
    return {lo, hi};
  }
  return {storage::RowRangeStart(table, ""), storage::RowRangeLimit(table, "")};
}

TableEntries::TableEntries(storage::Reader* reader, std::string table)
    : reader_(reader), table_(std::move(table)) {}

namespace {
size_t VarintBytes(uint64_t v) {
  size_t n = 1;
  for (; v >= 0x80; v >>= 7) ++n;
  return n;
}
}  // namespace

bool TableEntries::Step(std::string* out, uint64_t* bytes) {
  while (cf_ < std::size(kSnapshotCfs)) {
    const Cf cf = kSnapshotCfs[cf_];
    if (cursor_ == nullptr) {
      auto [lo, hi] = TableRange(cf, table_);
      cursor_ = reader_->Scan(cf, lo, hi);
      cursor_->Seek(lo);
    } else {
      cursor_->Next();
    }
    if (cursor_->Valid()) {
      const std::string_view k = cursor_->key(), v = cursor_->value();
      if (bytes != nullptr) {
        *bytes += 1 + VarintBytes(k.size()) + k.size() + VarintBytes(v.size()) + v.size();
      }
      if (out != nullptr) {
        out->push_back(static_cast<char>(cf));
        storage::PutLengthPrefixed(out, k);
        storage::PutLengthPrefixed(out, v);
      }
      return true;
    }
    // A read error must not pass for the end of the table: the snapshot would lose rows.
    if (absl::Status s = cursor_->status(); !s.ok()) {
      Fatal(StrCat("reading the snapshot of ", table_, ": ", s.ToString()));
    }
    cursor_.reset();
    ++cf_;
  }
  return false;
}

namespace {
std::string TableHeader(const std::string& table, uint64_t bytes) {
  std::string out(1, kSectionTable);
  storage::PutLengthPrefixed(&out, table);
  storage::PutVarint(&out, bytes);
  return out;
}
}  // namespace

SnapshotStream::SnapshotStream(std::unique_ptr<storage::Reader> pinned, consensus::Slot slot,
                               std::string head, std::vector<std::string> tables)
    : pinned_(std::move(pinned)), slot_(slot), head_(std::move(head)), tables_(std::move(tables)) {
  size_ = head_.size();
  for (const std::string& table : tables_) {
    uint64_t bytes = 0;
    TableEntries entries(pinned_.get(), table);
    while (entries.Measure(&bytes)) {
    }
    table_bytes_.push_back(bytes);
    size_ += TableHeader(table, bytes).size() + bytes;
  }
}

bool SnapshotStream::Emit() {
  if (!head_done_) {
    head_done_ = true;
    buf_ += head_;
    return true;
  }
  while (table_ < tables_.size()) {
    if (entries_ == nullptr) {
      entries_ = std::make_unique<TableEntries>(pinned_.get(), tables_[table_]);
      buf_ += TableHeader(tables_[table_], table_bytes_[table_]);
      return true;
    }
    if (entries_->Next(&buf_)) return true;
    entries_.reset();
    ++table_;
  }
  return false;
}

void SnapshotStream::Restart() {
  head_done_ = false;
  table_ = 0;
  entries_.reset();
  buf_.clear();
  buf_start_ = 0;
}

std::string SnapshotStream::Read(uint64_t offset, size_t len) {
  if (offset < buf_start_) Restart();  // an earlier chunk again: read from the start
  // The buffer keeps the bytes from the last read's offset on, so a retry of the last chunk
  // (a lost response) needs no re-read.
  while (buf_start_ + buf_.size() < offset + len && Emit()) {
    if (buf_start_ + buf_.size() <= offset) {  // skipping forward: hold no more than a piece
      buf_start_ += buf_.size();
      buf_.clear();
    }
  }
  const uint64_t skip = std::min<uint64_t>(offset - buf_start_, buf_.size());
  buf_.erase(0, skip);
  buf_start_ += skip;
  return buf_.substr(0, len);
}

bool StringPieces::Next(std::string* piece) {
  if (done_ || data_.empty()) return false;
  piece->assign(data_);
  done_ = true;
  return true;
}

bool StagedSnapshot::Next(std::string* piece) {
  auto [lo, hi] = storage::StagedRange(object_);
  if (cursor_ == nullptr) {
    cursor_ = reader_->Scan(Cf::kMeta, lo, hi);
    cursor_->Seek(lo);
  } else {
    cursor_->Next();
  }
  if (!cursor_->Valid()) {
    if (absl::Status s = cursor_->status(); !s.ok()) {
      Fatal(StrCat("reading the staged snapshot of ", object_, ": ", s.ToString()));
    }
    return false;
  }
  piece->assign(cursor_->value());
  bytes_ += piece->size();
  return true;
}

std::string ReadWhole(SnapshotPieces& pieces) {
  std::string data, piece;
  pieces.Rewind();
  while (pieces.Next(&piece)) data += piece;
  return data;
}

void DropStagedChunks(const std::string& object, storage::WriteSet& writes) {
  auto [lo, hi] = storage::StagedRange(object);
  if (absl::Status s = storage::DeleteAllIn(writes, Cf::kMeta, lo, hi); !s.ok()) {
    Fatal(StrCat("reading the staged snapshot of ", object, ": ", s.ToString()));
  }
}

bool SnapshotParser::Fill(size_t n) {
  std::string piece;
  while (buf_.size() - pos_ < n) {
    buf_.erase(0, pos_);  // what was read is gone: the buffer stays about a piece long
    pos_ = 0;
    if (!in_->Next(&piece)) return false;
    buf_.append(piece);
  }
  return true;
}

bool SnapshotParser::VarintAt(size_t* at, uint64_t* v) {
  Fill(*at + 10);  // a varint takes at most 10 bytes; fewer may be left
  if (buf_.size() - pos_ < *at) return false;
  std::string_view in(buf_);
  in.remove_prefix(pos_ + *at);
  const size_t before = in.size();
  if (!storage::GetVarint(&in, v)) return false;
  *at += before - in.size();
  return true;
}

bool SnapshotParser::BytesAt(size_t* at, uint64_t n, size_t* start) {
  if (n > kItemBytesMax || !Fill(*at + n)) return false;
  *start = *at;
  *at += n;
  return true;
}

std::string_view SnapshotParser::View(size_t start, uint64_t n) const {
  return std::string_view(buf_).substr(pos_ + start, n);
}

bool SnapshotParser::NextSection(char* kind, std::string* table, std::string* member) {
  storage::Cf cf;
  std::string_view key, value;
  while (NextEntry(&cf, &key, &value)) {
  }
  if (!ok_ || !Fill(1)) return false;  // the end, unless a section was cut short
  // Offsets from pos_ while the header is read: a Fill may move the buffer, not them.
  size_t at = 1, name = 0, record = 0;
  uint64_t name_bytes = 0, record_bytes = 0;
  *kind = buf_[pos_];
  if ((*kind != kSectionMember && *kind != kSectionTable) || !VarintAt(&at, &name_bytes) ||
      !BytesAt(&at, name_bytes, &name)) {
    return Fail();
  }
  if (*kind == kSectionMember) {
    if (!VarintAt(&at, &record_bytes) || !BytesAt(&at, record_bytes, &record)) return Fail();
    member->assign(View(record, record_bytes));
  } else if (!VarintAt(&at, &left_)) {
    return Fail();
  }
  table->assign(View(name, name_bytes));
  pos_ += at;
  return true;
}

bool SnapshotParser::NextEntry(storage::Cf* cf, std::string_view* key, std::string_view* value) {
  if (left_ == 0 || !ok_) return false;
  size_t at = 1, k = 0, v = 0;
  uint64_t k_bytes = 0, v_bytes = 0;
  if (!Fill(1) || !VarintAt(&at, &k_bytes) || !BytesAt(&at, k_bytes, &k) ||
      !VarintAt(&at, &v_bytes) || !BytesAt(&at, v_bytes, &v) || at > left_ ||
      static_cast<uint8_t>(buf_[pos_]) >= static_cast<uint8_t>(Cf::kCount)) {
    return Fail();
  }
  *cf = static_cast<Cf>(static_cast<uint8_t>(buf_[pos_]));
  *key = View(k, k_bytes);
  *value = View(v, v_bytes);
  pos_ += at;
  left_ -= at;
  return true;
}

}  // namespace atlas
