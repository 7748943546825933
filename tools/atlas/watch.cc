#include "tools/atlas/watch.h"

#include <ostream>

#include "absl/strings/escaping.h"
#include "nlohmann/json.hpp"
#include "socketproto/command.h"
#include "socketproto/str.h"
#include "tools/atlas/terminal.h"

namespace atlas::client {
namespace {

constexpr const char* kTag = "watch";

// Printable on one line as it is: valid UTF-8 without control characters.
bool Printable(const std::string& v) {
  if (!socketproto::IsValidUtf8(v)) return false;
  for (unsigned char c : v) {
    if (c < 0x20 || c == 0x7f) return false;
  }
  return true;
}

}  // namespace

int Watch(Connection& conn, const WatchOptions& options, std::ostream& out, std::ostream& err) {
  std::string line = StrCat("[ID:", kTag, "] WATCH ", options.range);
  if (options.from) line = StrCat(line, " FROM ", *options.from);
  if (absl::Status s = conn.Send(line + "\r\n"); !s.ok()) {
    err << "atlas watch: " << s.message() << "\n";
    return 2;
  }
  uint64_t events = 0;
  for (;;) {
    absl::StatusOr<ReplyFrame> f = conn.Read();
    if (!f.ok()) {
      err << "atlas watch: " << f.status().message() << "\n";
      return 2;
    }
    if (f->id != std::optional<std::string>(kTag)) continue;
    const std::string& text = f->text;
    if (text.rfind("WATCHING ", 0) == 0) {
      err << "atlas watch: " << options.range << " after revision " << text.substr(9)
          << " (Ctrl-C stops)\n";
      continue;
    }
    if (text == "OK") return 0;
    if (f->IsError()) {
      err << "atlas watch: " << text << "\n";
      return 1;
    }
    if (text.rfind("EVENT ", 0) != 0) continue;
    // EVENT <rev> PUT <key> <n> (payload in blob) | EVENT <rev> DEL <key>
    std::vector<socketproto::Token> t = socketproto::Tokenize(text);
    if (t.size() < 4) continue;
    const std::string rev(t[1].text), op(t[2].text), key(t[3].text);
    if (options.json) {
      nlohmann::json j = {{"revision", std::stoull(rev)}, {"op", op}, {"key", key}};
      if (f->blob) {
        if (socketproto::IsValidUtf8(*f->blob)) {
          j["value"] = *f->blob;
        } else {
          j["value_base64"] = absl::Base64Escape(*f->blob);
        }
      }
      out << j.dump() << "\n";
    } else if (f->blob) {
      out << rev << " " << op << " " << ForTerminal(key) << " "
          << (Printable(*f->blob) ? ForTerminal(*f->blob) : StrCat("<", f->blob->size(), " bytes>"))
          << "\n";
    } else {
      out << rev << " " << op << " " << ForTerminal(key) << "\n";
    }
    out.flush();
    if (options.count > 0 && ++events >= options.count) return 0;
  }
}

}  // namespace atlas::client
