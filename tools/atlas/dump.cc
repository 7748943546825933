#include "tools/atlas/dump.h"

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <istream>
#include <ostream>

#include "socketproto/command.h"
#include "socketproto/str.h"
#include "tools/atlas/dump_format.h"

namespace atlas::client {
namespace {

using Clock = std::chrono::steady_clock;

int64_t WallNowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

constexpr int kOk = 0, kError = 1, kConnection = 2, kIncomplete = 3;
constexpr int kPage = 1000;  // rows per TABLE DUMP page / tables per TABLE LIST


// One command; `error` gets the reason when it did not end in OK.
struct Result {
  int status = kOk;
  std::vector<ReplyFrame> frames;
  std::string error;
};

Result Run(Connection& conn, const std::string& line,
           std::optional<std::string_view> blob = std::nullopt) {
  Result r;
  auto frames = conn.Call(line, blob);
  if (!frames.ok()) {
    r.status = kConnection;
    r.error = std::string(frames.status().message());
    return r;
  }
  r.frames = std::move(*frames);
  if (r.frames.empty() || r.frames.back().text != "OK") {
    r.status = kError;
    r.error = r.frames.empty() ? "no reply" : r.frames.back().text;
  }
  return r;
}

// A `<WORD>:<n>` header and the n lines after it (SCAN, TABLE LIST).
std::vector<std::string> Listed(const Result& r) {
  std::vector<std::string> out;
  for (size_t i = 1; i + 1 < r.frames.size(); ++i) out.push_back(r.frames[i].text);
  return out;
}

class Progress {
 public:
  Progress(std::ostream& out, const char* verb) : out_(out), verb_(verb) {}
  void Row(const std::string& table) {
    ++rows_;
    if (Clock::now() - last_ >= std::chrono::seconds(1)) {
      last_ = Clock::now();
      out_ << "atlas " << verb_ << ": " << rows_ << " rows (table " << table << ")" << std::endl;
    }
  }
  void Done(size_t tables, const char* what) {
    double s = std::chrono::duration<double>(Clock::now() - start_).count();
    out_ << "atlas " << verb_ << ": " << rows_ << " rows, " << tables << " " << what << " in "
         << s << " s" << std::endl;
  }

 private:
  std::ostream& out_;
  const char* verb_;
  size_t rows_ = 0;
  Clock::time_point start_ = Clock::now(), last_ = Clock::now();
};

}  // namespace

int ListTables(Connection& conn, size_t max, std::vector<std::string>* tables,
               std::ostream& err) {
  std::string after;
  while (tables->size() < max) {
    const size_t want = std::min(max - tables->size(), static_cast<size_t>(kPage));
    Result r = Run(conn, "TABLE LIST LIMIT " + std::to_string(want) +
                             (after.empty() ? "" : " AFTER " + after));
    if (r.status != kOk) {
      err << "atlas: TABLE LIST: " << r.error << std::endl;
      return r.status;
    }
    std::vector<std::string> page = Listed(r);
    tables->insert(tables->end(), page.begin(), page.end());
    if (page.size() < want) break;
    after = page.back();
  }
  return kOk;
}

namespace {

bool PermissionDenied(const std::string& error) {
  return error.starts_with("ERROR WARN permission denied");
}

// One page's rows, written to `out`. Returns the last key.
std::string WriteRows(DumpPage& page, std::ostream& out, Progress& p, const std::string& table) {
  std::string last;
  for (auto& [info, value] : page.rows) {
    DumpRow row{std::move(info.key), std::move(value), info.revision, info.worm_until_ms,
                info.expires_ms};
    out << RowLine(row) << '\n';
    p.Row(table);
    last = std::move(row.key);
  }
  return last;
}

// Writes one table's rows, then its grants. kOk, or the failure (after saying so); a table the
// principal may not read returns kError with `*denied` set and nothing of it written. Every
// page comes from the snapshot the first one took: the rows are the table at one revision.
int DumpTable(Connection& conn, const std::string& table, std::ostream& out, Progress& p,
              std::ostream& progress, bool* denied) {
  std::string next = "TABLE DUMP " + table;
  for (bool first = true;; first = false) {
    Result page = Run(conn, next + " LIMIT " + std::to_string(kPage));
    if (page.status != kOk) {
      *denied = PermissionDenied(page.error);
      if (!*denied) {
        progress << "atlas dump: TABLE DUMP " << table << ": " << page.error << std::endl;
      }
      return page.status;
    }
    absl::StatusOr<DumpPage> rows = ParseDumpPage(std::move(page.frames));
    if (!rows.ok()) {
      progress << "atlas dump: TABLE DUMP " << table << ": " << rows.status().message()
               << std::endl;
      return kError;
    }
    if (first) out << TableLine(table, rows->revision) << '\n';
    const std::string last = WriteRows(*rows, out, p, table);
    if (!rows->more || last.empty()) break;
    next = StrCat("TABLE DUMP ", table, " AT ", rows->revision, " AFTER ", last);
  }
  Result acl = Run(conn, "ACL LIST " + table);
  if (acl.status != kOk) {
    progress << "atlas dump: ACL LIST " << table << ": " << acl.error << std::endl;
    return acl.status;
  }
  std::vector<std::pair<std::string, std::string>> grants;
  for (size_t i = 0; i + 1 < acl.frames.size(); ++i) {
    // "ACL <principal> <PERM>"
    const std::string& line = acl.frames[i].text;
    size_t a = line.find(' '), b = line.rfind(' ');
    if (a == std::string::npos || b <= a) continue;
    grants.emplace_back(line.substr(a + 1, b - a - 1), line.substr(b + 1));
  }
  if (!grants.empty()) out << GrantsLine(table, grants) << '\n';
  return kOk;
}

}  // namespace

int Dump(Connection& conn, std::vector<std::string> tables, std::ostream& out,
         std::ostream& progress) {
  if (tables.empty()) {
    if (int rc = ListTables(conn, SIZE_MAX, &tables, progress)) return rc;
  }
  Progress p(progress, "dump");
  // A table the principal may not read is skipped and named at the end: one table with a
  // hostile ACL must not cost the backup of every other table.
  std::vector<std::string> skipped;
  for (const std::string& table : tables) {
    bool denied = false;
    int rc = DumpTable(conn, table, out, p, progress, &denied);
    if (rc != kOk && !denied) return rc;
    if (denied) skipped.push_back(table);
  }
  out.flush();
  p.Done(tables.size() - skipped.size(), "tables");
  if (!out) return kError;
  if (skipped.empty()) return kOk;
  progress << "atlas dump: " << skipped.size() << " table(s) not dumped, permission denied:";
  for (size_t i = 0; i < skipped.size() && i < 100; ++i) progress << " " << skipped[i];
  if (skipped.size() > 100) progress << " ...";
  progress << " (dump as a backup-users principal to read every table)" << std::endl;
  return kIncomplete;
}

namespace {

// Rows of one table written together: a TXN of up to kBatchRows rows and kBatchBytes, one
// round trip instead of one per row. A batch the server refuses (a TXN writes nothing then) is
// written again row by row, so that the restore stops at the exact line it cannot apply with
// every row before it written.
class RowBatch {
 public:
  static constexpr size_t kBatchRows = 100;
  static constexpr size_t kBatchBytes = size_t{4} << 20;

  bool Fits(const std::string& table, const RestoreCommand& c) const {
    return rows_.empty() || (table == table_ && rows_.size() < kBatchRows &&
                             bytes_ + Bytes(c) <= kBatchBytes);
  }
  void Add(size_t line, const std::string& table, RestoreCommand c) {
    table_ = table;
    bytes_ += Bytes(c);
    rows_.push_back({line, std::move(c)});
  }
  // Writes the rows: kOk, or the failure with the line it stopped at and why.
  int Flush(Connection& conn, size_t* line, std::string* why) {
    int status = kOk;
    if (rows_.size() > 1) {
      std::string body;
      body.reserve(bytes_);
      for (const auto& [n, c] : rows_) StrAppend(&body, c.line, "\r\n", *c.blob);
      Result r = Run(conn, StrCat("TXN ", rows_.size()), body);
      status = r.status;
      if (status == kConnection) *line = rows_.front().first, *why = r.error;
    }
    if (rows_.size() == 1 || status == kError) {
      status = kOk;
      for (const auto& [n, c] : rows_) {
        Result r = Run(conn, c.line, *c.blob);
        if (r.status == kOk) continue;
        // (The command without its length: the key names it.)
        *line = n, *why = StrCat(c.line.substr(0, c.line.rfind(' ')), ": ", r.error);
        status = r.status;
        break;
      }
    }
    rows_.clear();
    bytes_ = 0;
    return status;
  }

 private:
  static size_t Bytes(const RestoreCommand& c) { return c.line.size() + 2 + c.blob->size(); }

  std::string table_;
  std::vector<std::pair<size_t, RestoreCommand>> rows_;  // (line number, its command)
  size_t bytes_ = 0;
};

}  // namespace

int Restore(Connection& conn, std::istream& in, std::ostream& progress) {
  Progress p(progress, "restore");
  RowBatch batch;
  std::string line, why;
  size_t number = 0, tables = 0, expired = 0, failed_line = 0;
  auto fail = [&](size_t at, std::string_view reason, int status) {
    progress << "atlas restore: line " << at << ": " << reason << std::endl;
    return status;
  };
  auto flush = [&] { return batch.Flush(conn, &failed_line, &why); };
  while (std::getline(in, line)) {
    ++number;
    // Nothing reaches the server before the whole line passed the server's own rules.
    absl::StatusOr<DumpLine> parsed = ParseDumpLine(line, WallNowMs());
    if (!parsed.ok()) {
      if (int rc = flush()) return fail(failed_line, why, rc);  // the lines before it first
      return fail(number, ToStd(parsed.status().message()), kError);
    }
    if (parsed->expired) {
      ++expired;
      continue;
    }
    if (parsed->kind == DumpLine::Kind::kRow) {
      RestoreCommand& c = parsed->commands.front();
      if (!batch.Fits(parsed->table, c)) {
        if (int rc = flush()) return fail(failed_line, why, rc);
      }
      batch.Add(number, parsed->table, std::move(c));
      p.Row(parsed->table);
      continue;
    }
    // A table's grants follow its rows: those are written first.
    if (int rc = flush()) return fail(failed_line, why, rc);
    for (const RestoreCommand& c : parsed->commands) {
      Result r = Run(conn, c.line);
      if (r.status != kOk) return fail(number, StrCat(c.line, ": ", r.error), r.status);
    }
    if (parsed->kind == DumpLine::Kind::kGrants) ++tables;
  }
  if (int rc = flush()) return fail(failed_line, why, rc);
  p.Done(tables, "tables with grants");
  if (expired > 0) {
    progress << "atlas restore: " << expired << " row(s) not restored: expired since the dump"
             << std::endl;
  }
  return kOk;
}

}  // namespace atlas::client
