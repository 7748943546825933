// atlas: the atlasd client. REPL on a terminal, script runner on a pipe, one-shot with -c.
// Exit status (docs/operations.md): 0 every command got OK, 1 any got ERROR, 2 connection or
// usage error.
#include <editline/readline.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <optional>
#include <sstream>

#include "CLI/CLI.hpp"
#include "socketproto/command_table.h"
#include "socketproto/frame_parser.h"
#include "socketproto/str.h"
#include "socketproto/client.h"
#include "tools/atlas/dump.h"
#include "tools/atlas/status.h"
#include "tools/atlas/terminal.h"
#include "tools/atlas/watch.h"

namespace {

using atlas::StrCat;
using atlas::StrAppend;
using atlas::client::Connection;
using atlas::client::ReplyFrame;

constexpr int kExitOk = 0, kExitError = 1, kExitConnection = 2;

// A help topic: a command of the protocol (a row of the command table, or an alias of one) or
// one of the REPL's own. `help`, `help <command>`, completion and "did you mean" use these.
struct Topic {
  enum class Of { kCommand, kAlias, kRepl };  // kRepl: never sent to the server
  Of of;
  std::string name;  // "KEY GET"
  std::string syntax;
  std::string help;
  std::string alias_of{};  // kAlias: the command's own name
  bool repl() const { return of == Of::kRepl; }
};

const std::vector<Topic>& Topics() {
  static const std::vector<Topic> topics = [] {
    namespace sp = atlas::socketproto;
    using Of = Topic::Of;
    std::vector<Topic> out;
    for (const sp::CommandInfo& c : sp::kCommands) {
      out.push_back(
          {Of::kCommand, std::string(c.name), std::string(c.syntax), std::string(c.help)});
      for (const sp::CommandAlias& a : sp::kCommandAliases) {
        if (a.index != c.index) continue;
        // Its command's syntax, under its own name.
        out.push_back({Of::kAlias, std::string(a.name),
                       StrCat(a.name, c.syntax.substr(c.name.size())),
                       StrCat("The same as ", c.name, "."), std::string(c.name)});
      }
    }
    out.push_back({Of::kRepl, "help", "help [<command>]",
                   "Every command's syntax, or the commands starting with those words."});
    out.push_back({Of::kRepl, "quit", "quit", "Leaves (so do exit, \\q and Ctrl-D)."});
    out.push_back(
        {Of::kRepl, "\\timing", "\\timing", "Shows how long each command took (toggle)."});
    return out;
  }();
  return topics;
}

// `help` alone: every command's syntax; `help <words>`: the topics starting with those words.
void PrintHelp(std::string_view topic) {
  if (topic.empty()) {
    std::printf("Commands (docs/commands.md has every detail; 'help <command>' explains one):\n");
    for (const Topic& t : Topics()) {
      if (t.of == Topic::Of::kCommand) std::printf("  %s\n", t.syntax.c_str());
      if (t.of == Topic::Of::kAlias) {
        std::printf("  %s is the same as %s\n", t.name.c_str(), t.alias_of.c_str());
      }
    }
    std::fputs(
        "  Prefix any command with [ID:<id>] to tag it. Keys are <table>.<row>.\n"
        "  In atlas, KEY BLOB SET <key> @<file> sends a file; --out FILE saves a blob.\n"
        "  Backups: atlas dump [tables] > f.jsonl; atlas restore f.jsonl\n"
        "  \\timing shows latencies; quit / exit / Ctrl-D leaves.\n",
        stdout);
    return;
  }
  bool any = false;
  for (const Topic& t : Topics()) {
    std::string_view name = t.name;
    if (name.size() >= topic.size() &&
        atlas::EqualsIgnoreCase(name.substr(0, topic.size()), topic)) {
      std::printf("%s\n    %s\n", t.syntax.c_str(), t.help.c_str());
      any = true;
    }
  }
  if (!any) std::printf("no command starts with '%s'; 'help' lists them all\n", std::string(topic).c_str());
}

// Edit distance (insertions, deletions, substitutions), case-insensitive: "did you mean".
size_t Distance(std::string_view a, std::string_view b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diagonal = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t up = row[j];
      const bool same = std::toupper(static_cast<unsigned char>(a[i - 1])) ==
                        std::toupper(static_cast<unsigned char>(b[j - 1]));
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (same ? 0 : 1)});
      diagonal = up;
    }
  }
  return row[b.size()];
}

// The command an input line names: the longest name its first words spell, or nullptr.
const Topic* HelpFor(std::string_view line) {
  const Topic* best = nullptr;
  for (const Topic& t : Topics()) {
    std::string_view name = t.name;
    if (t.repl() || line.size() < name.size() ||
        !atlas::EqualsIgnoreCase(line.substr(0, name.size()), name)) {
      continue;
    }
    if (line.size() > name.size() && line[name.size()] != ' ') continue;
    if (best == nullptr || name.size() > best->name.size()) best = &t;
  }
  return best;
}

// The command closest to what was typed (as many words as its name has), if close enough to
// be a typo.
const Topic* Closest(std::string_view line) {
  const Topic* best = nullptr;
  size_t best_distance = 3;  // at most two edits
  for (const Topic& t : Topics()) {
    if (t.repl()) continue;
    std::string_view name = t.name;
    // As many words of the line as the name has.
    size_t words = static_cast<size_t>(std::count(name.begin(), name.end(), ' ')) + 1;
    size_t end = 0;
    while (end < line.size() && !(line[end] == ' ' && --words == 0)) ++end;
    std::string_view typed = line.substr(0, end);
    const size_t d = Distance(typed, name);
    if (d < best_distance) {
      best_distance = d;
      best = &t;
    }
  }
  return best;
}

// A REPL user's view of an ERROR frame: the message without protocol framing, and what to try
// next. (Scripts get the frames exactly as the server sent them.)
std::vector<std::string> ReadableError(std::string_view frame, std::string_view line) {
  const bool fatal = frame.starts_with("ERROR FATAL");
  std::string_view message = frame.substr(std::min(frame.size(), fatal ? size_t{12} : size_t{11}));
  if (!frame.starts_with("ERROR WARN ") && !fatal) message = frame;
  std::vector<std::string> out;
  out.push_back(fatal ? StrCat("error: ", message, " (the server closed the connection)")
                      : StrCat("error: ", message));
  const Topic* help = HelpFor(line);
  if (message.starts_with("unknown command")) {
    if (const Topic* near = Closest(line)) {
      out.push_back(StrCat("hint: did you mean ", near->name, "?  ", near->syntax));
    } else {
      out.push_back("hint: 'help' lists the commands");
    }
  } else if (message.find("permission denied") != std::string_view::npos) {
    out.push_back("hint: PRINCIPAL WHOAMI shows who you are; ACL LIST <table> shows the grants");
  } else if (message.find("quorum unavailable") != std::string_view::npos ||
             message.starts_with("timeout")) {
    out.push_back("hint: NODE LIST shows which members this node can reach");
  } else if (help != nullptr && !message.starts_with("usage:") &&
             (message.find("invalid") != std::string_view::npos ||
              message.find("expected") != std::string_view::npos ||
              message.find("missing") != std::string_view::npos)) {
    out.push_back(StrCat("usage: ", help->syntax));
  }
  return out;
}

struct Options {
  std::string socket_path;
  std::vector<std::string> commands;
  std::string out_file;
  std::string history_file;
};

// Shows a blob as its size and a preview: text when it is printable, else hex.
std::string Preview(const std::string& b) {
  bool text = true;
  for (unsigned char c : b) {
    if ((c < 0x20 && c != '\n' && c != '\t' && c != '\r') || c == 0x7f) {
      text = false;
      break;
    }
  }
  constexpr size_t kMax = 256;
  std::string out;
  if (text) {
    out = "  text: \"";
    for (size_t i = 0; i < b.size() && i < kMax; ++i) {
      char c = b[i];
      if (c == '\n') out += "\\n";
      else if (c == '\r') out += "\\r";
      else if (c == '\t') out += "\\t";
      else if (c == '"') out += "\\\"";
      else out += c;
    }
    out += b.size() > kMax ? "\"..." : "\"";
  } else {
    out = "  hex:";
    for (size_t i = 0; i < b.size() && i < 64; ++i) {
      char hex[4];
      std::snprintf(hex, sizeof hex, " %02x", static_cast<unsigned char>(b[i]));
      out += hex;
    }
    if (b.size() > 64) out += " ...";
  }
  return out;
}

class Runner {
 public:
  Runner(Connection* conn, const Options& opt) : conn_(conn), opt_(opt) {}

  // REPL: errors are shown readably (ReadableError), in red on a color terminal.
  void SetInteractive(bool color) {
    interactive_ = true;
    color_ = color;
  }

  // Runs one input line. Returns false when the connection is unusable.
  bool Run(const std::string& raw, std::istream* payload_source) {
    std::string line = raw;
    while (!line.empty() && (line.back() == '\r' || line.back() == '\n')) line.pop_back();
    std::string_view rest;
    std::optional<std::string> id;
    std::string err;
    if (!atlas::socketproto::SplitRequestId(line, &id, &rest, &err)) rest = line;
    auto tok = atlas::socketproto::Tokenize(rest);
    if (tok.empty()) return true;
    std::optional<std::string> blob;
    if (!TakePayload(tok, payload_source, &line, &blob)) return true;
    std::optional<std::string> assumes;  // PRINCIPAL ASSUME <name>
    if (tok.size() == 3 && atlas::EqualsIgnoreCase(tok[0].text, "PRINCIPAL") &&
        atlas::EqualsIgnoreCase(tok[1].text, "ASSUME")) {
      assumes = std::string(tok[2].text);
    }
    std::string context(rest);  // what an error message is about
    if (!txn_ && atlas::EqualsIgnoreCase(tok[0].text, "WATCH")) return RunWatch(line);
    if (Gather(tok, id.has_value(), &line, &blob)) return true;
    if (line.starts_with("TXN ") && context != line) context = line;
    auto frames = conn_->Call(line, blob ? std::optional<std::string_view>(*blob) : std::nullopt);
    if (!frames.ok()) {
      std::fprintf(stderr, "atlas: %s\n", std::string(frames.status().message()).c_str());
      lost_ = true;
      return false;
    }
    for (const ReplyFrame& f : *frames) {
      if (interactive_ && f.IsError() && !f.blob) {
        PrintError(f, context);
      } else {
        Print(f);
      }
    }
    if (!frames->empty() && frames->back().IsError()) failed_ = true;
    if (!frames->empty() && frames->back().IsFatal()) {
      lost_ = true;
      return false;
    }
    if (!frames->empty() && frames->back().text == "OK" && assumes) principal_ = *assumes;
    return true;
  }

  // WATCH streams its events until Ctrl-C (or, on a terminal, Enter) ends the watch, not atlas.
  bool RunWatch(const std::string& line) {
    const bool stdin_ends = interactive_ && isatty(STDIN_FILENO);
    const int rc = atlas::client::StreamWatch(*conn_, line, stdin_ends, std::cout, std::cerr);
    if (rc == 1) failed_ = true;
    if (rc == 2) lost_ = true;
    return rc != 2;
  }

  // KEY BLOB SET <key> [options] @file uploads a file; in a script, KEY BLOB SET <key>
  // [options] <n> takes the next n bytes of the script itself. Either is the last word.
  // False (the line is done with) when there is no payload to send.
  bool TakePayload(const std::vector<atlas::socketproto::Token>& tok, std::istream* source,
                   std::string* line, std::optional<std::string>* blob) {
    if (tok.size() < 5 || !atlas::EqualsIgnoreCase(tok[0].text, "KEY") ||
        !atlas::EqualsIgnoreCase(tok[1].text, "BLOB") ||
        !atlas::EqualsIgnoreCase(tok[2].text, "SET")) {
      return true;
    }
    std::string_view arg = tok.back().text;
    if (!arg.empty() && arg[0] == '@') {
      std::ifstream f(std::string(arg.substr(1)), std::ios::binary);
      if (!f) {
        std::fprintf(stderr, "atlas: cannot read %s\n", std::string(arg.substr(1)).c_str());
        failed_ = true;
        return false;
      }
      std::stringstream ss;
      ss << f.rdbuf();
      *blob = ss.str();
      const size_t at = static_cast<size_t>(arg.data() - line->data());
      *line = StrCat(line->substr(0, at), (*blob)->size());
      return true;
    }
    if (source == nullptr) {
      std::fprintf(stderr, "atlas: in the REPL, upload a file with KEY BLOB SET <key> @<file>\n");
      failed_ = true;
      return false;
    }
    size_t n = std::strtoull(std::string(arg).c_str(), nullptr, 10);
    std::string data(n, '\0');
    source->read(data.data(), static_cast<std::streamsize>(n));
    data.resize(static_cast<size_t>(source->gcount()));
    *blob = std::move(data);
    return true;
  }

  // Transactions as typed: `TXN <n>` and its n lines, or BEGIN, the commands, COMMIT (or
  // ABORT). True while one is being gathered (nothing to send yet); when one is complete,
  // *line and *blob become its TXN line and the bytes of its commands.
  bool Gather(const std::vector<atlas::socketproto::Token>& tok, bool tagged, std::string* line,
              std::optional<std::string>* blob) {
    auto word = [&](std::string_view w) {
      return tok.size() == 1 && atlas::EqualsIgnoreCase(tok[0].text, w);
    };
    if (!txn_) {
      if (word("BEGIN") && !tagged) {
        txn_.emplace();
        return true;
      }
      if (tok.size() != 2 || !atlas::EqualsIgnoreCase(tok[0].text, "TXN") ||
          tok[1].text.find_first_not_of("0123456789") != std::string_view::npos) {
        return false;
      }
      const uint64_t n = std::strtoull(std::string(tok[1].text).c_str(), nullptr, 10);
      if (n == 0) return false;  // the server explains
      txn_.emplace(Txn{*line, "", n, 0});  // the server waits for all n lines too
      return true;
    }
    if (word("ABORT") || word("ROLLBACK")) {
      txn_.reset();
      return true;
    }
    if (!word("COMMIT") || txn_->want > 0) {
      StrAppend(&txn_->body, *line, "\r\n", blob->value_or(""));
      if (++txn_->have < txn_->want || txn_->want == 0) return true;
    }
    if (txn_->have == 0) {  // BEGIN, then COMMIT: nothing to send
      txn_.reset();
      return true;
    }
    *line = txn_->want > 0 ? std::move(txn_->line) : StrCat("TXN ", txn_->have);
    *blob = std::move(txn_->body);
    txn_.reset();
    return false;
  }

  void Print(const ReplyFrame& f) {
    std::string prefix = f.id ? StrCat("[ID:", *f.id, "] ") : "";
    // Stored values reach a person's terminal escaped: a row must not drive the terminal.
    const std::string text = terminal_ ? atlas::client::ForTerminal(f.text) : f.text;
    if (f.blob) {
      if (!opt_.out_file.empty()) {
        std::ofstream out(opt_.out_file, std::ios::binary | std::ios::trunc);
        out.write(f.blob->data(), static_cast<std::streamsize>(f.blob->size()));
        std::printf("%s%s (saved to %s)\n", prefix.c_str(), text.c_str(), opt_.out_file.c_str());
      } else {
        std::printf("%s%s\n%s\n", prefix.c_str(), text.c_str(), Preview(*f.blob).c_str());
      }
    } else {
      std::printf("%s%s\n", prefix.c_str(), text.c_str());
    }
    std::fflush(stdout);
  }

  void PrintError(const ReplyFrame& f, std::string_view line) {
    std::string prefix = f.id ? StrCat("[ID:", *f.id, "] ") : "";
    std::vector<std::string> lines =
        ReadableError(terminal_ ? atlas::client::ForTerminal(f.text) : f.text, line);
    for (size_t i = 0; i < lines.size(); ++i) {
      const char* on = !color_ ? "" : i == 0 ? "\033[31m" : "\033[2m";  // red; dim hints
      std::printf("%s%s%s%s\n", prefix.c_str(), on, lines[i].c_str(), color_ ? "\033[0m" : "");
    }
    std::fflush(stdout);
  }

  bool failed() const { return failed_; }
  bool lost() const { return lost_; }
  const std::string& principal() const { return principal_; }
  bool InTransaction() const { return txn_.has_value(); }
  // At the end of the input: a transaction still being typed is not sent, and is an error.
  void Finish() {
    if (!txn_) return;
    std::fprintf(stderr, "atlas: the input ended inside a transaction (%llu command(s) typed%s);"
                 " nothing of it was sent\n", static_cast<unsigned long long>(txn_->have),
                 txn_->want > 0 ? "" : ", no COMMIT");
    txn_.reset();
    failed_ = true;
  }
  // The REPL's prompt inside a transaction: how many of its commands are typed.
  std::string TxnPrompt() const {
    if (txn_->want > 0) return StrCat("txn ", txn_->have + 1, "/", txn_->want, "> ");
    return StrCat("txn ", txn_->have + 1, " (COMMIT or ABORT)> ");
  }

 private:
  // A transaction being typed: `TXN <n>` and its lines (want = n), or BEGIN ... COMMIT.
  struct Txn {
    std::string line;  // the TXN line as typed
    std::string body;  // the commands so far, each line with its payload
    uint64_t want = 0;
    uint64_t have = 0;
  };
  std::optional<Txn> txn_;

  Connection* conn_;
  const Options& opt_;
  bool failed_ = false;
  bool lost_ = false;
  bool interactive_ = false;
  bool color_ = false;
  const bool terminal_ = atlas::client::StdoutIsTerminal();
  std::string principal_;
};

int ExitCode(const Runner& r) {
  if (r.lost()) return r.failed() ? kExitError : kExitConnection;
  return r.failed() ? kExitError : kExitOk;
}

// Completion of verbs: the first two words of a command.
char* CompletionGenerator(const char* text, int state) {
  static size_t index;
  static std::string prefix;
  if (state == 0) {
    index = 0;
    prefix = std::string(rl_line_buffer, static_cast<size_t>(rl_point));
  }
  while (index < Topics().size()) {
    std::string_view verb = Topics()[index++].name;
    if (verb.size() >= prefix.size() && atlas::EqualsIgnoreCase(verb.substr(0, prefix.size()), prefix)) {
      // Complete the current word only.
      size_t word_start = prefix.size() - std::strlen(text);
      std::string_view candidate = verb.substr(word_start);
      candidate = candidate.substr(0, candidate.find(' '));
      return strdup(std::string(candidate).c_str());
    }
  }
  return nullptr;
}

char** Complete(const char* text, int, int) {
  rl_attempted_completion_over = 1;
  return rl_completion_matches(text, CompletionGenerator);
}

int Repl(Connection* conn, const Options& opt) {
  Runner runner(conn, opt);
  // Color unless NO_COLOR (no-color.org) or a dumb terminal.
  const char* term = std::getenv("TERM");
  runner.SetInteractive(std::getenv("NO_COLOR") == nullptr && isatty(STDOUT_FILENO) &&
                        term != nullptr && std::string_view(term) != "dumb");
  std::string history = opt.history_file;
  if (history.empty()) {
    const char* home = std::getenv("HOME");
    history = StrCat(home ? home : ".", "/.atlas_history");
  }
  using_history();
  read_history(history.c_str());
  rl_attempted_completion_function = Complete;
  std::printf("Connected: %s. Type 'help' for commands, 'help <command>' for one, "
              "'\\timing' for latencies, 'quit' to leave.\n",
              conn->welcome().c_str());
  bool timing = false;
  for (;;) {
    std::string prompt =
        runner.InTransaction()    ? runner.TxnPrompt()
        : runner.principal().empty() ? "atlas> "
                                     : StrCat("atlas(", runner.principal(), ")> ");
    char* input = readline(prompt.c_str());
    if (input == nullptr) {
      std::printf("\n");
      break;
    }
    std::string line(input);
    std::free(input);
    std::string_view trimmed = line;
    while (!trimmed.empty() && atlas::socketproto::IsAsciiSpace(trimmed.front())) trimmed.remove_prefix(1);
    while (!trimmed.empty() && atlas::socketproto::IsAsciiSpace(trimmed.back())) trimmed.remove_suffix(1);
    if (trimmed.empty()) continue;
    add_history(line.c_str());
    if (trimmed == "quit" || trimmed == "exit" || trimmed == "\\q") break;
    if (trimmed == "help" || trimmed == "\\h" || trimmed == "?") {
      PrintHelp("");
      continue;
    }
    if (trimmed.starts_with("help ") || trimmed.starts_with("\\h ")) {
      std::string_view topic = trimmed.substr(trimmed.find(' ') + 1);
      while (!topic.empty() && topic.front() == ' ') topic.remove_prefix(1);
      PrintHelp(topic);
      continue;
    }
    if (trimmed == "\\timing") {
      timing = !timing;
      std::printf("Timing is %s.\n", timing ? "on" : "off");
      continue;
    }
    const auto t0 = std::chrono::steady_clock::now();
    if (!runner.Run(line, nullptr)) break;
    if (timing) {
      std::printf("Time: %.3f ms\n", std::chrono::duration<double, std::milli>(
                                             std::chrono::steady_clock::now() - t0).count());
    }
  }
  runner.Finish();
  write_history(history.c_str());
  history_truncate_file(history.c_str(), 10000);
  return runner.lost() ? kExitConnection : kExitOk;
}

// Runs commands in order, printing their replies as -c does.
int RunLines(Connection* conn, const Options& opt, const std::vector<std::string>& lines) {
  Runner runner(conn, opt);
  for (const auto& c : lines) {
    if (!runner.Run(c, nullptr)) break;
  }
  runner.Finish();
  return ExitCode(runner);
}

struct TokenOptions {
  std::string ttl = "24h";
  uint32_t uses = 0;
  std::string revoke;
};

// atlas token create: the token alone on stdout (TOKEN=$(atlas token create)), the rest on
// stderr.
int TokenCreate(Connection& conn, const TokenOptions& o) {
  std::string line = StrCat("TOKEN CREATE TTL ", o.ttl == "never" ? "NEVER" : o.ttl);
  if (o.uses > 0) line = StrCat(line, " USES ", o.uses);
  auto frames = conn.Call(line);
  if (!frames.ok()) {
    std::fprintf(stderr, "atlas: %s\n", std::string(frames.status().message()).c_str());
    return kExitConnection;
  }
  if (frames->empty() || frames->back().text != "OK" || frames->size() != 2) {
    std::fprintf(stderr, "atlas token create: %s\n",
                 frames->empty() ? "no reply" : frames->back().text.c_str());
    return kExitError;
  }
  const std::string& text = frames->front().text;  // TOKEN id=... token=atlas1...
  const size_t at = text.find(" token=");
  if (at == std::string::npos) {
    std::fprintf(stderr, "atlas token create: unexpected reply %s\n", text.c_str());
    return kExitError;
  }
  std::fprintf(stderr, "%s\n", text.substr(0, at).c_str());
  std::printf("%s\n", text.substr(at + 7).c_str());
  return kExitOk;
}

// The subcommands and what they were given.
struct Subcommands {
  CLI::App *dump, *status, *restore, *watch, *token, *token_create, *token_revoke;
  std::vector<std::string> dump_tables;
  std::string restore_file, as_principal;
  atlas::client::WatchOptions watch_options;
  TokenOptions token_options;
  bool status_json = false;
};

// Registers the subcommands on `app`; `sub` must outlive the parse.
void AddSubcommands(CLI::App& app, Subcommands* sub) {
  sub->dump = app.add_subcommand(
      "dump", "Write tables (default: all) as JSON lines to stdout; progress on stderr");
  sub->dump->add_option("tables", sub->dump_tables, "Tables to dump");
  sub->dump->add_option("--as", sub->as_principal,
                        "PRINCIPAL ASSUME this name first (one that may read)");
  sub->status = app.add_subcommand("status",
                                   "Members (region, status, version, uptime, tables owned, "
                                   "certificate expiry), the RTT matrix, tables owned per region");
  sub->status->add_flag("--json", sub->status_json,
                        "Print NODE STATUS's JSON document (the console's /v1/status) as is");
  sub->restore = app.add_subcommand(
      "restore", "Write the rows and grants of a dump (a file, or stdin) into this cluster");
  sub->restore->add_option("file", sub->restore_file, "The dump (default: stdin)");
  sub->restore->add_option("--as", sub->as_principal,
                           "PRINCIPAL ASSUME this name first (one that may write)");
  atlas::client::WatchOptions& w = sub->watch_options;
  sub->watch = app.add_subcommand(
      "watch", "Print a table's (or row prefix's) changes as they commit; Ctrl-C stops");
  sub->watch->add_option("range", w.range, "<table>[.<row-prefix>]")->required();
  sub->watch->add_option("--from", w.from, "Resume after this revision");
  sub->watch->add_flag("--json", w.json, "JSON lines (value_base64 for binary values)");
  sub->watch->add_option("--count", w.count, "Stop after this many events");
  sub->watch->add_option("--as", sub->as_principal,
                         "PRINCIPAL ASSUME this name first (one that may read)");
  sub->token = app.add_subcommand("token", "Join tokens: create, list, revoke");
  sub->token->require_subcommand(1);
  sub->token_create = sub->token->add_subcommand(
      "create", "Print a new join token (one line on stdout; details on stderr)");
  sub->token_create
      ->add_option("--ttl", sub->token_options.ttl, "Lifetime: 90s, 15m, 2h, 7d or never")
      ->capture_default_str();
  sub->token_create->add_option("--uses", sub->token_options.uses,
                                "Joins it admits (default: any number)");
  sub->token->add_subcommand("list", "Every join token with its state");
  sub->token_revoke = sub->token->add_subcommand("revoke", "Revoke a join token by its id");
  sub->token_revoke->add_option("id", sub->token_options.revoke, "The token's id (TOKEN LIST)")
      ->required();
}

// PRINCIPAL ASSUME for dump, restore and watch --as; the exit code when it failed.
std::optional<int> AssumePrincipal(Connection& conn, const std::string& principal) {
  auto r = conn.Call("PRINCIPAL ASSUME " + principal);
  if (r.ok() && !r->empty() && r->back().text == "OK") return std::nullopt;
  std::fprintf(
      stderr, "atlas: PRINCIPAL ASSUME %s: %s\n", principal.c_str(),
      r.ok() && !r->empty() ? r->back().text.c_str() : std::string(r.status().message()).c_str());
  return r.ok() ? kExitError : kExitConnection;
}

// The subcommand given, run; nullopt when none was.
std::optional<int> RunSubcommand(Connection* conn, const Options& opt, const Subcommands& sub) {
  if (sub.status->parsed()) {
    return atlas::client::Status(*conn, sub.status_json, std::cout, std::cerr);
  }
  if (sub.token->parsed()) {
    if (sub.token_create->parsed()) return TokenCreate(*conn, sub.token_options);
    if (sub.token_revoke->parsed()) {
      return RunLines(conn, opt, {"TOKEN REVOKE " + sub.token_options.revoke});
    }
    return RunLines(conn, opt, {"TOKEN LIST"});
  }
  if (sub.watch->parsed())
    return atlas::client::Watch(*conn, sub.watch_options, std::cout, std::cerr);
  if (sub.dump->parsed()) return atlas::client::Dump(*conn, sub.dump_tables, std::cout, std::cerr);
  if (sub.restore->parsed()) {
    if (sub.restore_file.empty()) return atlas::client::Restore(*conn, std::cin, std::cerr);
    std::ifstream in(sub.restore_file, std::ios::binary);
    if (!in) {
      std::fprintf(stderr, "atlas restore: cannot open %s\n", sub.restore_file.c_str());
      return kExitError;
    }
    return atlas::client::Restore(*conn, in, std::cerr);
  }
  return std::nullopt;
}

}  // namespace

int main(int argc, char** argv) {
  Options opt;
  const char* env_socket = std::getenv("ATLAS_SOCKET");
  opt.socket_path = env_socket ? env_socket : "./atlas-data/atlas.sock";
  CLI::App app{"atlas - client for atlasd (REPL on a terminal, script runner on a pipe)", "atlas"};
  app.add_option("-s,--socket", opt.socket_path, "atlasd Unix socket ($ATLAS_SOCKET)")
      ->capture_default_str();
  app.add_option("-c,--command", opt.commands, "Run this command and exit (repeatable)");
  app.add_option("-o,--out", opt.out_file, "Save BLOB replies to this file");
  app.add_option("--history-file", opt.history_file, "REPL history (default ~/.atlas_history)");
  Subcommands sub;
  AddSubcommands(app, &sub);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int rc = app.exit(e);
    return rc == 0 ? 0 : kExitConnection;
  }
  std::signal(SIGPIPE, SIG_IGN);
  auto conn = Connection::Open(opt.socket_path);
  if (!conn.ok()) {
    std::fprintf(stderr, "atlas: %s\n", std::string(conn.status().message()).c_str());
    return kExitConnection;
  }
  if ((sub.dump->parsed() || sub.restore->parsed() || sub.watch->parsed()) &&
      !sub.as_principal.empty()) {
    if (std::optional<int> rc = AssumePrincipal(**conn, sub.as_principal)) return *rc;
  }
  if (std::optional<int> rc = RunSubcommand(conn->get(), opt, sub)) return *rc;
  if (!opt.commands.empty()) return RunLines(conn->get(), opt, opt.commands);
  if (isatty(STDIN_FILENO)) return Repl(conn->get(), opt);
  // Script: one command per line, in order; KEY BLOB SET <key> <n> reads its n payload bytes
  // from the script right after the line.
  Runner runner(conn->get(), opt);
  std::string line;
  while (std::getline(std::cin, line)) {
    if (!runner.Run(line, &std::cin)) break;
  }
  runner.Finish();
  return ExitCode(runner);
}
