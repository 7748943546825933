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

// Invisible characters that change how the text around them reads: bidi controls (U+202E turns
// "alice" around), zero-width characters (U+200B makes a second "admin" look like the first),
// the soft hyphen, word joiners, the byte-order mark, and Unicode tag characters. Never part of
// a key or a principal, and escaped when printed to a terminal.
inline bool IsFormatCharacter(uint32_t cp) {
  return cp == 0x00AD || cp == 0x061C || cp == 0x180E || (cp >= 0x200B && cp <= 0x200F) ||
         (cp >= 0x202A && cp <= 0x202E) || (cp >= 0x2060 && cp <= 0x2064) ||
         (cp >= 0x2066 && cp <= 0x206F) || cp == 0xFEFF || (cp >= 0xFFF9 && cp <= 0xFFFB) ||
         (cp >= 0xE0000 && cp <= 0xE007F);
}

}  // namespace atlas::socketproto
