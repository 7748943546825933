// Process-wide log setup: readable text (default) or one JSON object per line.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>
#include <string_view>

#include "rocksdb/env.h"
#include "spdlog/common.h"

namespace atlas {

// `format`: "text" or "json". `sink` (tests) receives the formatted lines instead of stderr.
void SetupLogging(const std::string& level, const std::string& format,
                  spdlog::sink_ptr sink = nullptr);

// Every line from now on names this node (`n<id>` in text, "node":<id> in JSON); 0 = none yet
// (a joining node learns its id from the cluster).
void SetLogNode(uint64_t node);

// A structured event: a fixed message and fields an operator can filter on (node, table,
// ballot, request). Text: `<msg> key=value ...`; JSON: {"msg":"<msg>","key":"value",...}.
struct LogField {
  std::string_view key;
  std::string value;
};
void LogEvent(spdlog::level::level_enum level, std::string_view msg,
              std::initializer_list<LogField> fields);

// RocksDB's own messages, at warning level and above, into our log (stderr) instead of its LOG
// files in the data directory. A full disk is when those messages matter, and the LOG file
// cannot be written then (Debian's RocksDB even aborts on an assertion when its LOG writer is
// used again after a failed write).
std::shared_ptr<rocksdb::Logger> RocksDbLogger();

}  // namespace atlas
