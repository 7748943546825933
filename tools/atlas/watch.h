// atlas watch: a table's (or row prefix's) changes as they commit (docs/watch.md).
#pragma once

#include <cstdint>
#include <iosfwd>
#include <optional>
#include <string>

#include "socketproto/client.h"

namespace atlas::client {

struct WatchOptions {
  std::string range;              // <table>[.<row-prefix>]
  std::optional<uint64_t> from;   // resume after this revision
  bool json = false;              // JSON lines instead of text
  uint64_t count = 0;             // stop after this many events (0: run until interrupted)
};

// Prints one line per event (`<rev> PUT <key> <value>` / `<rev> DEL <key>`, or JSON) until
// the server ends the watch or `count` events arrived. Returns 0, 1 (an ERROR: compacted, cut
// off, permission) or 2 (the connection failed).
int Watch(Connection& conn, const WatchOptions& options, std::ostream& out, std::ostream& err);

// A WATCH typed in the REPL or a script (`line`, tagged or not): its events as they arrive,
// until the server ends it, Ctrl-C, or (`stdin_ends`: the REPL on a terminal) Enter; then
// UNWATCH, and the connection goes on. Returns 0, 1 (the server ended it with an ERROR) or 2
// (the connection failed).
int StreamWatch(Connection& conn, const std::string& line, bool stdin_ends, std::ostream& out,
                std::ostream& err);

}  // namespace atlas::client
