// The line format of `atlas dump` (docs/operations.md, "Backup and restore"), both ways: a row
// or a table's grants as one JSON object, and a dump line back into the socket commands that
// restore it. Pure (no I/O), so the restore side is fuzzed (tests/fuzz/fuzz_dump_line.cc).
//
// A dump is untrusted input: it may come from another cluster, a backup anyone could write to,
// or an attacker. Every field is validated with the server's own rules (socketproto/command.h)
// before it reaches the wire, and values travel as blob payloads (exact bytes), so no dump can
// make restore send a command it did not mean (a CR/LF in a key once smuggled `KEY DEL`s).
#pragma once

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
  enum class Kind { kEmpty, kRow, kGrants } kind = Kind::kEmpty;
  std::string table;  // kRow: the key's table; kGrants: the table
  // kRow: one KEY BLOB SET; kGrants: ACL GRANTs, READ and WRITE before OWNER (until a table has
  // an owner anyone may grant, after it only an owner or an admin user may).
  std::vector<RestoreCommand> commands;
};

// Parses and validates one dump line. InvalidArgument says what is wrong (never echoing more
// than a bounded, sanitised part of the input).
absl::StatusOr<DumpLine> ParseDumpLine(std::string_view line);

// The dump line of one row (a value that is not UTF-8 goes base64).
std::string RowLine(const std::string& key, const std::string& value);
// The dump line of a table's grants, [principal, PERM] pairs.
std::string GrantsLine(const std::string& table,
                       const std::vector<std::pair<std::string, std::string>>& grants);

}  // namespace atlas::client
