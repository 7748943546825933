// Process-wide log setup: readable text (default) or one JSON object per line.
#pragma once

#include <memory>
#include <string>

#include "rocksdb/env.h"

namespace atlas {

void SetupLogging(const std::string& level, const std::string& format);

// RocksDB's own messages, at warning level and above, into our log (stderr) instead of its LOG
// files in the data directory. A full disk is when those messages matter, and the LOG file
// cannot be written then (Debian's RocksDB even aborts on an assertion when its LOG writer is
// used again after a failed write).
std::shared_ptr<rocksdb::Logger> RocksDbLogger();

}  // namespace atlas
