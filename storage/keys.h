// Key encoding of every column family (docs/storage.md §Keys).
//
// rows:   <table> 0x00 <row>                 a table's rows are one contiguous, ordered range
// blobs:  <table> 0x00 <row> 0x00 <be32 i>   chunk i of a large value
// meta:   "t" 0x00 <table> 0x00 <field>      per-table replicated state (ACL, table state)
//         "n" 0x00 <field>                   node-local metadata (identity, cluster)
//         "o" 0x00 <object> 0x00 "ci"        a consensus object's applied slot
//         "o" 0x00 <object> 0x00 "m" 0x00 <table>   the object's record of a member table
//         "s" 0x00 <object> 0x00 <be64 offset>      a snapshot being received (staged)
//         "i" 0x00 <object>                  a staged snapshot being installed (a redo marker)
//         "e" 0x00 <table>                   a table with rows that expire (node-local hint)
// log / acceptor: <object> 0x00 <be64 slot>  per-object Paxos log and acceptor state
//
// Table names never contain 0x00 and rows are printable UTF-8, so 0x00 separates unambiguously
// and sorts before every row byte: byte order of the encoded key equals byte order of the key.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

namespace atlas::storage {

std::string RowKey(std::string_view table, std::string_view row);
// The first encoded key of rows in `table` starting with `row_prefix`, and the first key past
// them (exclusive upper bound).
std::string RowRangeStart(std::string_view table, std::string_view row_prefix);
std::string RowRangeLimit(std::string_view table, std::string_view row_prefix);
// Splits an encoded row key back into "table.row"; false if it is not a row key.
bool DecodeRowKey(std::string_view encoded, std::string* table, std::string* row);

std::string BlobChunkKey(std::string_view table, std::string_view row, uint32_t chunk);

std::string TableMetaKey(std::string_view table, std::string_view field);
// The range of every TableMetaKey: ["t" 0x00, "t" 0x01).
std::string TableMetaPrefix();
std::string TableMetaLimit();
// The table of a TableMetaKey(table, "state") (the record every table with replicated state
// has); nullopt for any other key.
std::optional<std::string_view> TableOfStateKey(std::string_view key);
// A table's rows that expire, by time (shared/spec/transactions.md §4): the field
// "x" <be64 expires_ms> <row>, replicated with the table (its snapshots carry them). The
// range of a table's, and the instant and row of one.
std::string ExpiryKey(std::string_view table, int64_t expires_ms, std::string_view row);
std::pair<std::string, std::string> ExpiryRange(std::string_view table);
bool DecodeExpiryKey(std::string_view table, std::string_view key, int64_t* expires_ms,
                     std::string* row);
// Node-local: the tables that have (or lately had) rows that expire, "e" 0x00 <table>; what
// the owner's expirer looks at. Not replicated: each node writes its own as it applies.
std::string ExpiringTableKey(std::string_view table);
std::pair<std::string, std::string> AllExpiringTablesRange();
std::string NodeMetaKey(std::string_view field);
// Per consensus object (a table, a group "@<g>", atlas.nodes): state kept by its own log.
std::string ObjectMetaKey(std::string_view object, std::string_view field);
std::string ObjectMemberKey(std::string_view object, std::string_view table);
// The prefix of every ObjectMemberKey of `object`.
std::string ObjectMemberPrefix(std::string_view object);

// Snapshot transfers being received (staged, not state): the chunk at byte `offset` of the
// transfer of `object`, the range of the object's chunks, and the range of every object's.
std::string StagedChunkKey(std::string_view object, uint64_t offset);
std::pair<std::string, std::string> StagedRange(std::string_view object);
std::pair<std::string, std::string> AllStagedRange();
// The marker of an install of a staged snapshot that a restart must redo, and their range.
std::string InstallingKey(std::string_view object);
std::pair<std::string, std::string> AllInstallingRange();

std::string LogKey(std::string_view object, uint64_t slot);

// Change log (Cf::kChanges): <table> 00 <revision big-endian>; a table's entries are
// contiguous and in revision order.
std::string ChangeKey(std::string_view table, uint64_t revision);
std::string ChangeRangeLimit(std::string_view table);  // just past the table's entries
// The revision of a ChangeKey of `table`; nullopt if `key` is not one.
std::optional<uint64_t> ChangeRevision(std::string_view table, std::string_view key);
// A table's change marks (docs/watch.md): its change_bytes at every trim step, "\x01" <table>
// 00 <revision, 8 bytes big-endian>, before every table's changes (no name starts with 01).
std::string ChangeMarkKey(std::string_view table, uint64_t revision);
std::string ChangeMarkLimit(std::string_view table);  // just past the table's marks
// How far a table's changes have been trimmed (varint: every change up to that revision is
// deleted), "\x02" <table>: the next trim goes on from there without a seek over tombstones.
std::string ChangeTrimKey(std::string_view table);

}  // namespace atlas::storage
