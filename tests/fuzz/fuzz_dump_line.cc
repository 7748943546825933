// libFuzzer target for `atlas restore`'s input (tools/atlas/dump_format.h): one dump line,
// which may come from anyone who could write the backup file.
//
// Invariants (each failure prints what broke and aborts, which libFuzzer reports as a crash):
//   - ParseDumpLine never throws or crashes, whatever the bytes;
//   - every command it produces is one line with no control character (nothing a dump holds
//     can add a command to the stream), and parses with the server's own parser into exactly
//     the command restore means: KEY BLOB SET of the row's key with the value as its payload,
//     or ACL GRANT on the line's table;
//   - a row line yields one command (none when it has expired), a table line none, a grants
//     line only ACL GRANTs, OWNER grants last.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <variant>

#include "socketproto/command.h"
#include "tests/fuzz/fuzz_check.h"
#include "tools/atlas/dump_format.h"

namespace {

using atlas::client::DumpLine;
using atlas::client::RestoreCommand;
namespace sp = atlas::socketproto;

void CheckCommand(const DumpLine& parsed, const RestoreCommand& c, bool* owner_seen) {
  for (unsigned char ch : c.line) FUZZ_CHECK(ch >= 0x20 && ch != 0x7f);
  sp::Frame frame{c.line, c.blob};
  auto result = sp::ParseCommand(std::move(frame));
  FUZZ_CHECK(std::holds_alternative<sp::Request>(result));
  const sp::Request& req = std::get<sp::Request>(result);
  FUZZ_CHECK(!req.id.has_value());
  if (parsed.kind == DumpLine::Kind::kRow) {
    const auto* set = std::get_if<sp::KeyBlobSet>(&req.command);
    FUZZ_CHECK(set != nullptr);
    FUZZ_CHECK(c.blob.has_value() && set->value == *c.blob);
    FUZZ_CHECK(set->key.table() == parsed.table);
    FUZZ_CHECK(!sp::IsReservedTable(set->key.table()));
  } else {
    const auto* grant = std::get_if<sp::AclGrant>(&req.command);
    FUZZ_CHECK(grant != nullptr && !c.blob.has_value());
    FUZZ_CHECK(grant->table == parsed.table);
    FUZZ_CHECK(sp::ValidatePrincipal(grant->principal).empty());
    const bool owner = grant->perm == sp::Perm::kOwner;
    FUZZ_CHECK(owner || !*owner_seen);  // READ and WRITE first
    *owner_seen = *owner_seen || owner;
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view line(reinterpret_cast<const char*>(data), size);
  // A fixed "now" (2026-01-01), so that a run replays the same way.
  absl::StatusOr<DumpLine> parsed = atlas::client::ParseDumpLine(line, 1'767'225'600'000);
  if (!parsed.ok()) {
    FUZZ_CHECK(!parsed.status().message().empty());
    return 0;
  }
  if (parsed->kind == DumpLine::Kind::kEmpty) {
    FUZZ_CHECK(line.empty() && parsed->commands.empty());
    return 0;
  }
  if (parsed->kind == DumpLine::Kind::kRow) {
    FUZZ_CHECK(parsed->commands.size() == (parsed->expired ? 0u : 1u));
  }
  if (parsed->kind == DumpLine::Kind::kTable) FUZZ_CHECK(parsed->commands.empty());
  bool owner_seen = false;
  for (const RestoreCommand& c : parsed->commands) CheckCommand(*parsed, c, &owner_seen);
  return 0;
}
