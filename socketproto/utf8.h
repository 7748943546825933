// UTF-8 decoding shared by key/principal validation and error-message sanitising.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace atlas::socketproto {

// Decodes one code point starting at s[*i] and advances *i past it. False on any malformed
// sequence (truncated, overlong forms, surrogates, values above U+10FFFF); *i is then unchanged.
inline bool DecodeUtf8(std::string_view s, size_t* i, uint32_t* cp) {
  auto b = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
  unsigned char c = b(*i);
  size_t len;
  uint32_t min;
  if (c < 0x80) {
    *cp = c;
    *i += 1;
    return true;
  } else if ((c & 0xE0) == 0xC0) {
    len = 2, *cp = c & 0x1F, min = 0x80;
  } else if ((c & 0xF0) == 0xE0) {
    len = 3, *cp = c & 0x0F, min = 0x800;
  } else if ((c & 0xF8) == 0xF0) {
    len = 4, *cp = c & 0x07, min = 0x10000;
  } else {
    return false;
  }
  if (*i + len > s.size()) return false;
  for (size_t k = 1; k < len; ++k) {
    if ((b(*i + k) & 0xC0) != 0x80) return false;
    *cp = (*cp << 6) | (b(*i + k) & 0x3F);
  }
  if (*cp < min || *cp > 0x10FFFF || (*cp >= 0xD800 && *cp <= 0xDFFF)) return false;
  *i += len;
  return true;
}

}  // namespace atlas::socketproto
