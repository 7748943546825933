// The line format of `atlas dump` (docs/operations.md, "Backup and restore"), both ways: a row
// or a table's grants as one JSON object, and a dump line back into the socket commands that
// restore it. Pure (no I/O), so the restore side is fuzzed (tests/fuzz/fuzz_dump_line.cc).
//
// A dump is untrusted input: it may come from another cluster, a backup anyone could write to,
// or an attacker. Every field is validated with the server's own rules (socketproto/command.h)
// before it reaches the wire, and values travel as blob payloads (exact bytes), so no dump can
// make restore send a command it did not mean (a CR/LF in a key once smuggled `KEY DEL`s).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace atlas::client {

// One command for the server: a line without its terminator, and a blob payload if it has one.
struct RestoreCommand {
  std::string line;
  std::optional<std::string> blob;
};

// What one dump line means.
struct DumpLine {
  // kTable: the line that begins a table's rows (its revision at the dump), nothing to send.
  enum class Kind { kEmpty, kTable, kRow, kGrants } kind = Kind::kEmpty;
  std::string table;  // kRow: the key's table; kTable, kGrants: the table
  // kRow: one KEY BLOB SET with the row's retention and expiry, or none for a row that has
  // expired by the restore's `now_ms` (`expired`); kGrants: ACL GRANTs, READ and WRITE before OWNER (until a table has
  // an owner anyone may grant, after it only an owner or an admin user may).
  std::vector<RestoreCommand> commands;
  bool expired = false;
};

// Parses and validates one dump line. InvalidArgument says what is wrong (never echoing more
// than a bounded, sanitised part of the input). A row that expired by `now_ms` (unix ms) is
// not restored.
absl::StatusOr<DumpLine> ParseDumpLine(std::string_view line, int64_t now_ms);

// One row as TABLE DUMP gives it.
struct DumpRow {
  std::string key;
  std::string value;
  uint64_t revision = 0;
  int64_t worm_until_ms = 0;  // 0: none
  int64_t expires_ms = 0;     // 0: never
};

// The line that begins a table's rows: the table and its revision, which every row of it was
// read at.
std::string TableLine(const std::string& table, uint64_t revision);
// The dump line of one row (a value that is not UTF-8 goes base64).
std::string RowLine(const DumpRow& row);
// The dump line of a table's grants, [principal, PERM] pairs.
std::string GrantsLine(const std::string& table,
                       const std::vector<std::pair<std::string, std::string>>& grants);

}  // namespace atlas::client
