#include "storage/keys.h"

#include <initializer_list>

#include "storage/coding.h"

namespace atlas::storage {
namespace {

// The parts joined by 0x00, the separator of every composite key (docs/storage.md §Keys); no
// part but the last may contain it.
std::string NulJoined(std::initializer_list<std::string_view> parts) {
  size_t size = 0;
  for (std::string_view p : parts) size += p.size() + 1;
  std::string k;
  k.reserve(size);
  for (const std::string_view* p = parts.begin(); p != parts.end(); ++p) {
    if (p != parts.begin()) k.push_back('\0');
    k.append(*p);
  }
  return k;
}

// `name` 0x00 then `n` big-endian, so that a name's keys sort by number.
std::string NameAndNumber(std::string_view name, uint64_t n) {
  std::string k(name);
  k.push_back('\0');
  PutBigEndian64(&k, n);
  return k;
}

}  // namespace

std::string RowKey(std::string_view table, std::string_view row) { return NulJoined({table, row}); }

std::string RowRangeStart(std::string_view table, std::string_view row_prefix) {
  return RowKey(table, row_prefix);
}

std::string RowRangeLimit(std::string_view table, std::string_view row_prefix) {
  std::string k = RowKey(table, row_prefix);
  // Smallest string greater than every string with this prefix: strip trailing 0xFF bytes and
  // increment the last byte. The table part ends in 0x00 so this never runs off the front.
  while (!k.empty() && static_cast<unsigned char>(k.back()) == 0xFF) k.pop_back();
  k.back() = static_cast<char>(static_cast<unsigned char>(k.back()) + 1);
  return k;
}

bool DecodeRowKey(std::string_view encoded, std::string* table, std::string* row) {
  size_t z = encoded.find('\0');
  if (z == std::string_view::npos || z == 0) return false;
  table->assign(encoded.substr(0, z));
  row->assign(encoded.substr(z + 1));
  return true;
}

std::string BlobChunkKey(std::string_view table, std::string_view row, uint32_t chunk) {
  std::string k = RowKey(table, row);
  k.push_back('\0');
  PutBigEndian32(&k, chunk);
  return k;
}

std::string TableMetaKey(std::string_view table, std::string_view field) {
  return NulJoined({"t", table, field});
}

std::string TableMetaPrefix() { return std::string("t\0", 2); }
std::string TableMetaLimit() { return std::string("t\x01", 2); }

std::optional<std::string_view> TableOfStateKey(std::string_view key) {
  const std::string_view prefix("t\0", 2), suffix("\0state", 6);
  if (key.size() <= prefix.size() + suffix.size() || !key.starts_with(prefix) ||
      !key.ends_with(suffix)) {
    return std::nullopt;
  }
  std::string_view table = key.substr(prefix.size(), key.size() - prefix.size() - suffix.size());
  if (table.find('\0') != std::string_view::npos) return std::nullopt;  // another field's key
  return table;
}

std::string ExpiryKey(std::string_view table, int64_t expires_ms, std::string_view row) {
  std::string field = "x";
  for (int shift = 56; shift >= 0; shift -= 8) {
    field.push_back(static_cast<char>((static_cast<uint64_t>(expires_ms) >> shift) & 0xff));
  }
  field.append(row);
  return TableMetaKey(table, field);
}

std::pair<std::string, std::string> ExpiryRange(std::string_view table) {
  return {TableMetaKey(table, "x"), TableMetaKey(table, "y")};
}

bool DecodeExpiryKey(std::string_view table, std::string_view key, int64_t* expires_ms,
                     std::string* row) {
  const std::string prefix = TableMetaKey(table, "x");
  if (!key.starts_with(prefix) || key.size() < prefix.size() + 8) return false;
  uint64_t t = 0;
  for (size_t i = 0; i < 8; ++i) t = (t << 8) | static_cast<uint8_t>(key[prefix.size() + i]);
  if (t > static_cast<uint64_t>(INT64_MAX)) return false;
  *expires_ms = static_cast<int64_t>(t);
  row->assign(key.substr(prefix.size() + 8));
  return true;
}

std::string ExpiringTableKey(std::string_view table) { return NulJoined({"e", table}); }

std::pair<std::string, std::string> AllExpiringTablesRange() {
  return {{"e\0", 2}, {"e\x01", 2}};
}

std::string NodeMetaKey(std::string_view field) { return NulJoined({"n", field}); }

std::string ObjectMetaKey(std::string_view object, std::string_view field) {
  return NulJoined({"o", object, field});
}

std::string ObjectMemberPrefix(std::string_view object) {
  std::string k = ObjectMetaKey(object, "m");
  k.push_back('\0');
  return k;
}

std::string ObjectMemberKey(std::string_view object, std::string_view table) {
  std::string k = ObjectMemberPrefix(object);
  k.append(table);
  return k;
}

std::string StagedChunkKey(std::string_view object, uint64_t offset) {
  std::string k = NulJoined({"s", object, ""});
  PutBigEndian64(&k, offset);
  return k;
}

std::pair<std::string, std::string> StagedRange(std::string_view object) {
  std::string lo = NulJoined({"s", object, ""});
  std::string hi = lo;
  hi.back() = '\x01';
  return {lo, hi};
}

std::pair<std::string, std::string> AllStagedRange() { return {{"s\0", 2}, {"s\x01", 2}}; }

std::string InstallingKey(std::string_view object) { return NulJoined({"i", object}); }

std::pair<std::string, std::string> AllInstallingRange() {
  return {{"i\0", 2}, {"i\x01", 2}};
}

std::string ChangeKey(std::string_view table, uint64_t revision) {
  return NameAndNumber(table, revision);
}

std::string ChangeRangeLimit(std::string_view table) {
  std::string k(table);
  k.push_back('\x01');
  return k;
}

std::string ChangeMarkKey(std::string_view table, uint64_t revision) {
  return "\x01" + NameAndNumber(table, revision);
}

std::string ChangeMarkLimit(std::string_view table) {
  return "\x01" + ChangeRangeLimit(table);
}

std::string ChangeTrimKey(std::string_view table) { return "\x02" + std::string(table); }

std::optional<uint64_t> ChangeRevision(std::string_view table, std::string_view key) {
  if (key.size() != table.size() + 9 || !key.starts_with(table) || key[table.size()] != '\0') {
    return std::nullopt;
  }
  uint64_t rev = 0;
  for (size_t i = table.size() + 1; i < key.size(); ++i) {
    rev = (rev << 8) | static_cast<unsigned char>(key[i]);
  }
  return rev;
}

std::string LogKey(std::string_view object, uint64_t slot) { return NameAndNumber(object, slot); }

}  // namespace atlas::storage
