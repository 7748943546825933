#include "socketproto/formatter.h"

#include "socketproto/str.h"

namespace atlas::socketproto {

std::string SanitizeMessage(std::string_view m) {
  std::string out;
  out.reserve(m.size());
  size_t i = 0;
  while (i < m.size()) {
    auto c = static_cast<unsigned char>(m[i]);
    if (c < 0x20 || c == 0x7F) {
      out.push_back(' ');
      ++i;
    } else if (c < 0x80) {
      out.push_back(static_cast<char>(c));
      ++i;
    } else {
      // Copy one well-formed UTF-8 sequence, or replace one bad byte.
      size_t len = (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 ? 4 : 0;
      bool ok = len != 0 && i + len <= m.size();
      uint32_t cp = len == 2 ? (c & 0x1F) : len == 3 ? (c & 0x0F) : (c & 0x07);
      for (size_t k = 1; ok && k < len; ++k) {
        auto b = static_cast<unsigned char>(m[i + k]);
        ok = (b & 0xC0) == 0x80;
        cp = (cp << 6) | (b & 0x3F);
      }
      static constexpr uint32_t kMin[] = {0, 0, 0x80, 0x800, 0x10000};
      ok = ok && cp >= kMin[len] && cp <= 0x10FFFF && !(cp >= 0xD800 && cp <= 0xDFFF);
      if (!ok) {
        out.push_back(' ');
        ++i;
      } else if (cp == 0x85 || cp == 0x2028 || cp == 0x2029 || (cp >= 0x80 && cp < 0xA0)) {
        out.push_back(' ');
        i += len;
      } else {
        out.append(m.substr(i, len));
        i += len;
      }
    }
  }
  return out;
}

void Reply::Prefix() {
  if (id_) StrAppend(&out_, "[ID:", *id_, "] ");
}

Reply& Reply::Line(std::string_view line) {
  Prefix();
  StrAppend(&out_, line, "\r\n");
  return *this;
}

Reply& Reply::Error(ErrorLevel level, std::string_view message) {
  Prefix();
  StrAppend(&out_, level == ErrorLevel::kWarn ? "ERROR WARN " : "ERROR FATAL ",
                  SanitizeMessage(message), "\r\n");
  return *this;
}

Reply& Reply::Blob(std::string_view bytes) {
  Prefix();
  StrAppend(&out_, "BLOB ", bytes.size(), "\r\n");
  out_.append(bytes);
  return *this;
}

}  // namespace atlas::socketproto
