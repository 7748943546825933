#include "tools/atlas/watch.h"

#include <poll.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <ostream>

#include "absl/strings/escaping.h"
#include "nlohmann/json.hpp"
#include "socketproto/command.h"
#include "socketproto/frame_parser.h"
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

// `<rev> PUT <key> <value>` / `<rev> DEL <key>`, or a JSON object.
void PrintEvent(const WatchEvent& e, bool json, std::ostream& out) {
  const char* op = e.del ? "DEL" : "PUT";
  if (json) {
    nlohmann::json j = {{"revision", e.revision}, {"op", op}, {"key", e.key}};
    if (!e.del) {
      if (socketproto::IsValidUtf8(e.value)) {
        j["value"] = e.value;
      } else {
        j["value_base64"] = absl::Base64Escape(e.value);
      }
    }
    out << j.dump() << "\n";
  } else if (!e.del) {
    out << e.revision << " " << op << " " << ForTerminal(e.key) << " "
        << (Printable(e.value) ? ForTerminal(e.value) : StrCat("<", e.value.size(), " bytes>"))
        << "\n";
  } else {
    out << e.revision << " " << op << " " << ForTerminal(e.key) << "\n";
  }
  out.flush();
}

volatile std::sig_atomic_t g_interrupted = 0;
void OnInterrupt(int) { g_interrupted = 1; }

// Ctrl-C while it lives sets g_interrupted (and interrupts a wait) instead of ending atlas.
class InterruptScope {
 public:
  InterruptScope() {
    g_interrupted = 0;
    struct sigaction sa {};
    sa.sa_handler = OnInterrupt;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &previous_);  // no SA_RESTART: a poll() returns at once
  }
  ~InterruptScope() { sigaction(SIGINT, &previous_, nullptr); }

 private:
  struct sigaction previous_ {};
};

enum class Wake { kFrame, kStop, kNothing };

// Waits up to 250 ms for a frame, Ctrl-C or (`stdin_ends`) a line typed on stdin.
Wake WaitForFrame(Connection& conn, bool stdin_ends) {
  if (g_interrupted) return Wake::kStop;
  if (conn.HasFrame()) return Wake::kFrame;
  pollfd fds[2] = {{conn.fd(), POLLIN, 0}, {STDIN_FILENO, POLLIN, 0}};
  const int n = poll(fds, stdin_ends ? 2 : 1, 250);
  if (g_interrupted) return Wake::kStop;
  if (n <= 0) return Wake::kNothing;
  if (stdin_ends && (fds[1].revents & (POLLIN | POLLHUP)) != 0) {
    char buf[256];
    (void)!read(STDIN_FILENO, buf, sizeof buf);  // the line typed (Enter) ends the watch
    return Wake::kStop;
  }
  return (fds[0].revents & (POLLIN | POLLHUP | POLLERR)) != 0 ? Wake::kFrame : Wake::kNothing;
}

// After UNWATCH: the watch's last frames (events are still printed), then UNWATCH's own OK.
int EndWatch(Connection& conn, const std::string& tag, std::ostream& out, std::ostream& err) {
  if (absl::Status s = conn.Send(StrCat("UNWATCH ", tag, "\r\n")); !s.ok()) {
    err << "atlas: " << s.message() << "\n";
    return 2;
  }
  bool watch_done = false, unwatch_done = false;
  while (!watch_done || !unwatch_done) {
    absl::StatusOr<ReplyFrame> f = conn.Read();
    if (!f.ok()) {
      err << "atlas: " << f.status().message() << "\n";
      return 2;
    }
    if (f->id == std::optional<std::string>(tag)) {
      if (std::optional<WatchEvent> e = ParseWatchEvent(*f)) PrintEvent(*e, false, out);
      watch_done = f->IsFinal();
    } else if (!f->id && f->IsFinal()) {
      unwatch_done = true;  // (an ERROR: the watch had already ended)
    }
  }
  return 0;
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
    PrintEvent(*e, options.json, out);
    if (options.count > 0 && ++events >= options.count) return 0;
  }
}

int StreamWatch(Connection& conn, const std::string& line, bool stdin_ends, std::ostream& out,
                std::ostream& err) {
  std::optional<std::string> tag;
  std::string_view rest;
  std::string why;
  socketproto::SplitRequestId(line, &tag, &rest, &why);
  const bool user_tag = tag.has_value();
  const std::string sent = tag ? line : StrCat("[ID:", kTag, "] ", line);
  if (!tag) tag = kTag;
  InterruptScope interrupts;
  if (absl::Status s = conn.Send(sent + "\r\n"); !s.ok()) {
    err << "atlas: " << s.message() << "\n";
    return 2;
  }
  for (;;) {
    const Wake wake = WaitForFrame(conn, stdin_ends);
    if (wake == Wake::kStop) break;
    if (wake == Wake::kNothing) continue;
    absl::StatusOr<ReplyFrame> f = conn.Read();
    if (!f.ok()) {
      err << "atlas: " << f.status().message() << "\n";
      return 2;
    }
    if (f->id != tag) continue;  // (nothing else is in flight on this connection)
    if (f->text.starts_with("WATCHING ")) {
      err << "watching " << ForTerminal(std::string(rest.substr(rest.find(' ') + 1)))
          << " after revision " << f->text.substr(9) << " (Ctrl-C"
          << (stdin_ends ? " or Enter" : "") << " ends it)\n";
      continue;
    }
    if (f->IsFinal()) {  // ended by the server: compacted, cut off, permission, shutdown
      // As any reply's last frame: on stdout, with the tag if the command had one.
      out << (user_tag ? StrCat("[ID:", *tag, "] ") : "") << ForTerminal(f->text) << "\n";
      out.flush();
      return f->IsError() ? 1 : 0;
    }
    if (std::optional<WatchEvent> e = ParseWatchEvent(*f)) PrintEvent(*e, false, out);
  }
  const int rc = EndWatch(conn, *tag, out, err);
  if (rc == 0) err << "watch ended\n";
  return rc;
}

}  // namespace atlas::client
