// The part of Redis's RESP2 wire protocol atlas-bench needs: commands are arrays of bulk
// strings; replies are parsed incrementally from a byte buffer (pipelined replies arrive in
// request order, possibly split anywhere). Pure, for the unit tests.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>
#include <vector>

namespace atlas::bench::resp {

// Appends `*<n>\r\n` then `$<len>\r\n<arg>\r\n` per argument (binary-safe).
void AppendCommand(std::string* out, std::initializer_list<std::string_view> args);

struct Reply {
  enum class Type { kSimple, kError, kInteger, kBulk, kNull, kArray };
  Type type = Type::kNull;
  std::string text;  // simple string, error message, bulk payload
  int64_t integer = 0;
  std::vector<Reply> elements;  // kArray
};

enum class ParseResult { kOk, kIncomplete, kInvalid };

// Parses one reply from the start of `in`. kOk: `*reply` is filled and `*consumed` bytes were
// used. kIncomplete: more bytes are needed (nothing consumed). kInvalid: not RESP; the stream
// cannot be resynchronised.
ParseResult Parse(std::string_view in, Reply* reply, size_t* consumed);

}  // namespace atlas::bench::resp
