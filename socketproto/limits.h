// Protocol limits (docs/design.md §Limits). Every buffer a client can grow has a bound here.
#pragma once

#include <cstddef>

namespace atlas::socketproto {

struct Limits {
  size_t max_line_bytes = size_t{1} << 20;    // a command line, without its terminator
  size_t max_blob_bytes = size_t{128} << 20;  // a KEY BLOB SET payload
  size_t max_inflight_per_conn = 1024;        // tagged requests running at once
};

}  // namespace atlas::socketproto
