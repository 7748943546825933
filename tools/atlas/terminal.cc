#include "tools/atlas/terminal.h"

#include <unistd.h>

#include <cstdio>

#include "socketproto/utf8.h"

namespace atlas::client {
namespace {

// Characters a terminal acts on or that change how the text around them reads.
bool Hidden(uint32_t cp) {
  return cp < 0x20 || cp == 0x7f || (cp >= 0x80 && cp <= 0x9f) ||
         socketproto::IsFormatCharacter(cp);
}

}  // namespace

std::string ForTerminal(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  size_t i = 0;
  while (i < text.size()) {
    const size_t start = i;
    uint32_t cp = 0;
    char buf[16];
    if (!socketproto::DecodeUtf8(text, &i, &cp)) {
      std::snprintf(buf, sizeof buf, "\\x%02x", static_cast<unsigned char>(text[start]));
      out += buf;
      i = start + 1;
    } else if (Hidden(cp)) {
      std::snprintf(buf, sizeof buf, cp < 0x100 ? "\\x%02x" : "\\u%04x", cp);
      out += buf;
    } else {
      out.append(text, start, i - start);
    }
  }
  return out;
}

bool StdoutIsTerminal() { return isatty(STDOUT_FILENO) == 1; }

}  // namespace atlas::client
