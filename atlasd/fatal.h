// The one way the daemon stops on state it cannot trust (style.md: never run on uncertain
// state): a failed synced write, an undecodable snapshot or stored record. It logs one critical
// line (and the same on stderr, in case logging is what broke), flushes and aborts: no
// destructor runs, nothing more is written or acknowledged.
#pragma once

#include <string_view>

namespace atlas {

[[noreturn]] void Fatal(std::string_view what);

}  // namespace atlas
