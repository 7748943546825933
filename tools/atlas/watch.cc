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
    std::optional<WatchEvent> e = ParseWatchEvent(*f);
    if (!e) continue;
    const char* op = e->del ? "DEL" : "PUT";
    if (options.json) {
      nlohmann::json j = {{"revision", e->revision}, {"op", op}, {"key", e->key}};
      if (!e->del) {
        if (socketproto::IsValidUtf8(e->value)) {
          j["value"] = e->value;
        } else {
          j["value_base64"] = absl::Base64Escape(e->value);
        }
      }
      out << j.dump() << "\n";
    } else if (!e->del) {
      out << e->revision << " " << op << " " << ForTerminal(e->key) << " "
          << (Printable(e->value) ? ForTerminal(e->value) : StrCat("<", e->value.size(), " bytes>"))
          << "\n";
    } else {
      out << e->revision << " " << op << " " << ForTerminal(e->key) << "\n";
    }
    out.flush();
    if (options.count > 0 && ++events >= options.count) return 0;
  }
}

}  // namespace atlas::client
