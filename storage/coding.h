// Little helpers for the byte formats of docs/storage.md: varints and big-endian integers.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace atlas::storage {

void PutVarint(std::string* out, uint64_t v);
// Reads a varint from the front of *in; false on truncation or overflow.
bool GetVarint(std::string_view* in, uint64_t* v);
void PutLengthPrefixed(std::string* out, std::string_view s);
bool GetLengthPrefixed(std::string_view* in, std::string_view* s);
// Big-endian so that byte order equals numeric order inside keys.
void PutBigEndian64(std::string* out, uint64_t v);
uint64_t GetBigEndian64(std::string_view in);  // requires in.size() >= 8
void PutBigEndian32(std::string* out, uint32_t v);

}  // namespace atlas::storage
