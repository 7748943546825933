#include "tools/atlas/dump.h"

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <istream>
#include <ostream>

#include "absl/strings/escaping.h"
#include "nlohmann/json.hpp"
#include "socketproto/utf8.h"

namespace atlas::client {
namespace {

using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

constexpr int kOk = 0, kError = 1, kConnection = 2;
constexpr int kPage = 1000;  // keys per SCAN / tables per TABLE LIST

bool IsUtf8(std::string_view s) {
  size_t i = 0;
  uint32_t cp = 0;
  while (i < s.size()) {
    if (!socketproto::DecodeUtf8(s, &i, &cp)) return false;
  }
  return true;
}

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

int Dump(Connection& conn, std::vector<std::string> tables, std::ostream& out,
         std::ostream& progress) {
  if (tables.empty()) {
    if (int rc = ListTables(conn, SIZE_MAX, &tables, progress)) return rc;
  }
  Progress p(progress, "dump");
  for (const std::string& table : tables) {
    std::string after;
    for (;;) {
      Result scan = Run(conn, "SCAN " + table + " LIMIT " + std::to_string(kPage) +
                                  (after.empty() ? "" : " AFTER " + after));
      if (scan.status != kOk) {
        progress << "atlas dump: SCAN " << table << ": " << scan.error << std::endl;
        return scan.status;
      }
      std::vector<std::string> keys = Listed(scan);
      for (const std::string& key : keys) {
        Result get = Run(conn, "KEY BLOB GET " + key);
        if (get.status != kOk) {
          progress << "atlas dump: KEY BLOB GET " << key << ": " << get.error << std::endl;
          return get.status;
        }
        const std::string value = get.frames.front().blob.value_or("");  // EMPTY: ""
        json row = {{"key", key}};
        if (IsUtf8(value)) {
          row["value"] = value;
        } else {
          row["value_base64"] = absl::Base64Escape(value);
        }
        out << row.dump() << '\n';
        p.Row(table);
      }
      if (keys.size() < static_cast<size_t>(kPage)) break;
      after = keys.back();
    }
    Result acl = Run(conn, "ACL LIST " + table);
    if (acl.status != kOk) {
      progress << "atlas dump: ACL LIST " << table << ": " << acl.error << std::endl;
      return acl.status;
    }
    json grants = json::array();
    for (size_t i = 0; i + 1 < acl.frames.size(); ++i) {
      // "ACL <principal> <PERM>"
      const std::string& line = acl.frames[i].text;
      size_t a = line.find(' '), b = line.rfind(' ');
      if (a == std::string::npos || b <= a) continue;
      grants.push_back({line.substr(a + 1, b - a - 1), line.substr(b + 1)});
    }
    if (!grants.empty()) out << json{{"table", table}, {"acl", grants}}.dump() << '\n';
  }
  out.flush();
  p.Done(tables.size(), "tables");
  return out ? kOk : kError;
}

int Restore(Connection& conn, std::istream& in, std::ostream& progress) {
  Progress p(progress, "restore");
  std::string line;
  size_t number = 0, tables = 0;
  auto fail = [&](const std::string& why, int status) {
    progress << "atlas restore: line " << number << ": " << why << std::endl;
    return status;
  };
  while (std::getline(in, line)) {
    ++number;
    if (line.empty()) continue;
    json j = json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (!j.is_object()) return fail("not a JSON object", kError);
    if (j.contains("key")) {
      if (!j["key"].is_string()) return fail("'key' must be a string", kError);
      std::string key = j["key"], value;
      if (j.contains("value") && j["value"].is_string()) {
        value = j["value"];
      } else if (j.contains("value_base64") && j["value_base64"].is_string()) {
        if (!absl::Base64Unescape(j["value_base64"].get<std::string>(), &value)) {
          return fail("'value_base64' is not base64", kError);
        }
      } else {
        return fail("a row needs 'value' or 'value_base64'", kError);
      }
      Result r = Run(conn, "KEY BLOB SET " + key + " " + std::to_string(value.size()), value);
      if (r.status != kOk) return fail("KEY BLOB SET " + key + ": " + r.error, r.status);
      p.Row(key.substr(0, key.find('.')));
    } else if (j.contains("table") && j.contains("acl")) {
      if (!j["table"].is_string() || !j["acl"].is_array()) {
        return fail("'table' must be a string and 'acl' a list", kError);
      }
      std::string table = j["table"];
      // READ and WRITE first: until the table has an OWNER anyone may grant, after it only an
      // owner (or an admin user) may.
      for (bool owners : {false, true}) {
        for (const json& g : j["acl"]) {
          if (!g.is_array() || g.size() != 2 || !g[0].is_string() || !g[1].is_string()) {
            return fail("each grant must be [principal, permission]", kError);
          }
          std::string perm = g[1];
          if ((perm == "OWNER") != owners) continue;
          std::string cmd = "ACL GRANT " + table + " " + g[0].get<std::string>() + " PERMS " + perm;
          Result r = Run(conn, cmd);
          if (r.status != kOk) return fail(cmd + ": " + r.error, r.status);
        }
      }
      ++tables;
    } else {
      return fail("neither a row ('key') nor a table's grants ('table', 'acl')", kError);
    }
  }
  p.Done(tables, "tables with grants");
  return kOk;
}

}  // namespace atlas::client
