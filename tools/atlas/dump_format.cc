#include "tools/atlas/dump_format.h"

#include "absl/strings/escaping.h"
#include "nlohmann/json.hpp"
#include "socketproto/command.h"
#include "socketproto/formatter.h"
#include "socketproto/str.h"

namespace atlas::client {
namespace {

using json = nlohmann::json;

absl::Status Bad(std::string_view why) { return absl::InvalidArgumentError(std::string(why)); }

// An optional instant of a row line: 0 when absent; nullopt when it is not RFC 3339.
std::optional<int64_t> InstantField(const json& j, const char* name) {
  if (!j.contains(name)) return 0;
  if (!j[name].is_string()) return std::nullopt;
  std::optional<int64_t> ms = socketproto::ParseRfc3339Ms(j[name].get_ref<const std::string&>());
  if (!ms || *ms <= 0) return std::nullopt;
  return ms;
}

absl::StatusOr<DumpLine> ParseRow(const json& j, int64_t now_ms) {
  if (!j["key"].is_string()) return Bad("'key' must be a string");
  const std::string& key = j["key"].get_ref<const std::string&>();
  if (std::string why = socketproto::ValidateKey(key); !why.empty()) {
    return Bad(socketproto::SanitizeMessage(why));
  }
  DumpLine out;
  out.kind = DumpLine::Kind::kRow;
  out.table = key.substr(0, key.find('.'));
  if (socketproto::IsReservedTable(out.table)) {
    return Bad(StrCat("table '", out.table, "' is reserved"));
  }
  std::string value;
  if (j.contains("value") && j["value"].is_string()) {
    value = j["value"].get<std::string>();
  } else if (j.contains("value_base64") && j["value_base64"].is_string()) {
    if (!absl::Base64Unescape(j["value_base64"].get<std::string>(), &value)) {
      return Bad("'value_base64' is not base64");
    }
  } else {
    return Bad("a row needs 'value' or 'value_base64'");
  }
  const std::optional<int64_t> worm = InstantField(j, "worm_until");
  const std::optional<int64_t> expires = InstantField(j, "expires");
  if (!worm || !expires) return Bad("'worm_until' and 'expires' are RFC 3339 instants");
  if (*expires > 0 && *expires <= now_ms) {
    out.expired = true;
    return out;
  }
  // The retention goes as it was, to the millisecond: the server judges it by its own clock
  // (one already over protects nothing), so a restore never shortens it.
  std::string line = StrCat("KEY BLOB SET ", key);
  if (*worm > 0) StrAppend(&line, " WORM EXPIRES ", socketproto::FormatRfc3339Ms(*worm));
  if (*expires > 0) StrAppend(&line, " EXPIRE AT ", socketproto::FormatRfc3339Ms(*expires));
  StrAppend(&line, " ", value.size());
  out.commands.push_back({std::move(line), std::move(value)});
  return out;
}

// A table line or a table's grants line, its "table" a string: the name checked.
absl::StatusOr<DumpLine> LineOfTable(const json& j, DumpLine::Kind kind) {
  DumpLine out;
  out.kind = kind;
  out.table = j["table"].get<std::string>();
  if (std::string why = socketproto::ValidateTableName(out.table); !why.empty()) {
    return Bad(StrCat("invalid table: ", socketproto::SanitizeMessage(why)));
  }
  return out;
}

absl::StatusOr<DumpLine> ParseTable(const json& j) {
  if (!j["table"].is_string() || !j["rev"].is_number_unsigned()) {
    return Bad("'table' must be a string and 'rev' a number");
  }
  return LineOfTable(j, DumpLine::Kind::kTable);
}

absl::StatusOr<DumpLine> ParseGrants(const json& j) {
  if (!j["table"].is_string() || !j["acl"].is_array()) {
    return Bad("'table' must be a string and 'acl' a list");
  }
  absl::StatusOr<DumpLine> line = LineOfTable(j, DumpLine::Kind::kGrants);
  if (!line.ok()) return line.status();
  DumpLine& out = *line;
  if (socketproto::IsReservedTable(out.table)) {
    return Bad(StrCat("table '", out.table, "' is reserved"));
  }
  for (const json& g : j["acl"]) {
    if (!g.is_array() || g.size() != 2 || !g[0].is_string() || !g[1].is_string()) {
      return Bad("each grant must be [principal, permission]");
    }
    const std::string& principal = g[0].get_ref<const std::string&>();
    if (std::string why = socketproto::ValidatePrincipal(principal); !why.empty()) {
      return Bad(StrCat("invalid principal: ", socketproto::SanitizeMessage(why)));
    }
    const std::string& perm = g[1].get_ref<const std::string&>();
    if (perm != "READ" && perm != "WRITE" && perm != "OWNER") {
      return Bad("a permission is READ, WRITE or OWNER");
    }
  }
  for (bool owners : {false, true}) {
    for (const json& g : j["acl"]) {
      if ((g[1].get_ref<const std::string&>() == "OWNER") != owners) continue;
      out.commands.push_back({StrCat("ACL GRANT ", out.table, " ", g[0].get<std::string>(),
                                     " PERMS ", g[1].get<std::string>()),
                              std::nullopt});
    }
  }
  return line;
}

}  // namespace

absl::StatusOr<DumpLine> ParseDumpLine(std::string_view line, int64_t now_ms) {
  if (line.empty()) return DumpLine{};
  json j = json::parse(line, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object()) return Bad("not a JSON object");
  if (j.contains("key")) return ParseRow(j, now_ms);
  if (j.contains("table") && j.contains("acl")) return ParseGrants(j);
  if (j.contains("table") && j.contains("rev")) return ParseTable(j);
  return Bad("neither a row ('key'), a table ('table', 'rev') nor its grants ('table', 'acl')");
}

std::string TableLine(const std::string& table, uint64_t revision) {
  return nlohmann::ordered_json{{"table", table}, {"rev", revision}}.dump(-1, ' ', false,
                                                         json::error_handler_t::replace);
}

std::string RowLine(const DumpRow& r) {
  nlohmann::ordered_json row = {{"key", r.key}};  // in this order, for people reading it
  if (socketproto::IsValidUtf8(r.value)) {
    row["value"] = r.value;
  } else {
    row["value_base64"] = absl::Base64Escape(r.value);
  }
  row["rev"] = r.revision;
  if (r.worm_until_ms > 0) row["worm_until"] = socketproto::FormatRfc3339Ms(r.worm_until_ms);
  if (r.expires_ms > 0) row["expires"] = socketproto::FormatRfc3339Ms(r.expires_ms);
  return row.dump();
}

std::string GrantsLine(const std::string& table,
                       const std::vector<std::pair<std::string, std::string>>& grants) {
  json list = json::array();
  for (const auto& [principal, perm] : grants) list.push_back({principal, perm});
  return json{{"table", table}, {"acl", list}}.dump(-1, ' ', false,
                                                     json::error_handler_t::replace);
}

}  // namespace atlas::client
