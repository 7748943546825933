// atlas dump / atlas restore: tables as JSON lines, for backups and copies between clusters
// (docs/operations.md, "Backup and restore").
#pragma once

#include <iosfwd>
#include <string>
#include <vector>

#include "socketproto/client.h"

namespace atlas::client {

// The names of the node's tables (TABLE LIST, page by page), at most `max`. Returns 0, or the
// exit status of the failure after writing it to `err`.
int ListTables(Connection& conn, size_t max, std::vector<std::string>* tables, std::ostream& err);

// Writes every row of `tables` (all tables of the node when empty) to `out`, one JSON object per
// line, then each table's grants; reports progress on `progress`. Returns the exit status:
// 0, 1 (an ERROR reply: printed), 2 (the connection failed), 3 (finished, but tables the
// principal may not read were skipped: named on `progress`).
int Dump(Connection& conn, std::vector<std::string> tables, std::ostream& out,
         std::ostream& progress);

// Replays a dump from `in`: rows with KEY BLOB SET (exact bytes), then the grants. Each line is
// validated whole before anything of it is sent (dump_format.h). Stops at the first line it
// cannot apply, naming it. Exit statuses 0, 1, 2.
int Restore(Connection& conn, std::istream& in, std::ostream& progress);

}  // namespace atlas::client
