#include "socketproto/formatter.h"

#include "socketproto/str.h"
#include "socketproto/utf8.h"

namespace atlas::socketproto {

std::string SanitizeMessage(std::string_view m) {
  std::string out;
  out.reserve(m.size());
  size_t i = 0;
  while (i < m.size()) {
    size_t start = i;
    uint32_t cp;
    if (!DecodeUtf8(m, &i, &cp)) {
      out.push_back(' ');  // one malformed byte
      i = start + 1;
    } else if (cp < 0x20 || cp == 0x7F || (cp >= 0x80 && cp < 0xA0) || cp == 0x2028 ||
               cp == 0x2029) {
      out.push_back(' ');  // C0, DEL, C1 (incl. U+0085), line/paragraph separators
    } else {
      out.append(m.substr(start, i - start));
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
  failed_ = true;
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

Reply& Reply::Payload(std::string_view header, std::string_view bytes) {
  Prefix();
  StrAppend(&out_, header, "\r\n");
  out_.append(bytes);
  return *this;
}

}  // namespace atlas::socketproto
