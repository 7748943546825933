#include "socketproto/command.h"

#include <algorithm>
#include <charconv>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/time/time.h"
#include "socketproto/command_table.h"
#include "socketproto/str.h"
#include "socketproto/utf8.h"

namespace atlas::socketproto {
namespace {

bool Eq(std::string_view a, std::string_view b) { return EqualsIgnoreCase(a, b); }

// Control characters, Unicode white space and invisible format characters: never part of a key
// or principal (a principal "admin\u200b" would look like "admin" in every listing).
bool IsControlOrSpace(uint32_t cp) {
  if (cp <= 0x20 || cp == 0x7F || (cp >= 0x80 && cp <= 0xA0)) return true;
  return cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 ||
         cp == 0x202F || cp == 0x205F || cp == 0x3000 || IsFormatCharacter(cp);
}

std::string Usage(std::string_view syntax) { return StrCat("usage: ", syntax); }

// `usage: <syntax>` of command type T, as the command table writes it.
template <typename T>
std::string UsageOf() {
  return Usage(InfoOf<T>().syntax);
}

// `usage: ` with the syntax of every command named `<family> ...` ("NODE", "KEY BLOB"), in
// table order, separated by " | ": what a verb with a wrong or missing sub-verb gets.
std::string FamilyUsage(std::string_view family) {
  std::string out = "usage: ";
  bool first = true;
  for (const CommandInfo& c : kCommands) {
    if (c.name.size() <= family.size() || !c.name.starts_with(family) ||
        c.name[family.size()] != ' ') {
      continue;
    }
    StrAppend(&out, first ? "" : " | ", c.syntax);
    first = false;
  }
  return out;
}

// Family summaries shorter than the list of their commands' syntaxes.
constexpr std::string_view kUsageKey = "KEY GET|PUT|SET|DEL|INFO|BLOB SET|BLOB GET <key> ...";
constexpr std::string_view kUsageAcl =
    "ACL GRANT|REVOKE <table> <principal> PERMS <READ|WRITE|OWNER> | ACL LIST <table>";

struct Parser {
  std::string_view rest;      // the line after the request id
  std::vector<Token> tok;     // tokens of rest
  std::optional<std::string> id;
  std::optional<std::string>* blob;
  Frame* frame;  // the whole frame: a TXN's commands are in its body

  ParseError Err(std::string msg) const { return ParseError{id, std::move(msg)}; }
  // The second word (the sub-verb), or "".
  std::string_view sub() const { return tok.size() > 1 ? tok[1].text : std::string_view(); }

  std::variant<Key, std::string> ParseKey(std::string_view k) const {
    std::string why = ValidateKey(k);
    if (!why.empty()) return why;
    return Key{std::string(k)};
  }

  std::variant<TableRange, std::string> ParseRange(std::string_view s) const {
    size_t dot = s.find('.');
    std::string_view table = s.substr(0, dot);
    std::string why = ValidateTableName(table);
    if (!why.empty()) return StrCat("invalid key '", s, "': ", why);
    if (dot != std::string_view::npos) {
      // The prefix obeys the key rules (printable, no white space) but may be empty.
      std::string_view prefix = s.substr(dot + 1);
      if (s.size() > kMaxKeyBytes) return StrCat("invalid key '", s, "': longer than 1024 bytes");
      if (!prefix.empty()) {
        std::string why2 = ValidateKey(s);
        if (!why2.empty()) return why2;
      }
      return TableRange{std::string(table), std::string(prefix)};
    }
    return TableRange{std::string(table), ""};
  }

  // The key at token `idx`, or the usage error (too few tokens) or the key's problem.
  std::variant<Key, ParseError> KeyAt(size_t idx, const std::string& usage) const {
    if (tok.size() <= idx) return Err(usage);
    auto k = ParseKey(tok[idx].text);
    if (auto* e = std::get_if<std::string>(&k)) return Err(*e);
    return std::get<Key>(std::move(k));
  }
};

std::optional<uint64_t> ParseU64(std::string_view s) {
  uint64_t v = 0;
  if (s.empty()) return std::nullopt;
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || ptr != s.data() + s.size()) return std::nullopt;
  return v;
}

std::optional<Perm> ParsePerm(std::string_view s) {
  if (Eq(s, "READ")) return Perm::kRead;
  if (Eq(s, "WRITE")) return Perm::kWrite;
  if (Eq(s, "OWNER")) return Perm::kOwner;
  return std::nullopt;
}

// Table names for ACL / QUORUM / TABLE: a bare table name (a key's table part is accepted too,
// so that `QUORUM INFO atlas.nodes` names the `atlas` table as the original README shows).
std::variant<std::string, ParseError> TableArg(const Parser& p, std::string_view s) {
  std::string_view table = s.substr(0, s.find('.'));
  std::string why = ValidateTableName(table);
  if (!why.empty()) return p.Err(StrCat("invalid table '", s, "': ", why));
  return std::string(table);
}

// `WORM TTL <duration>` or `WORM EXPIRES <rfc3339>` at tokens i..i+2 (i names WORM).
std::variant<Worm, ParseError> ParseWorm(const Parser& p, size_t i) {
  const auto& t = p.tok;
  if (Eq(t[i + 1].text, "TTL")) {
    auto ms = ParseDurationMs(t[i + 2].text);
    if (!ms) {
      return p.Err(
          StrCat("invalid WORM duration '", t[i + 2].text, "': expected e.g. 90s, 15m, 2h, 7d"));
    }
    return Worm{Worm::Kind::kTtl, *ms, 0};
  }
  if (Eq(t[i + 1].text, "EXPIRES")) {
    auto ms = ParseRfc3339Ms(t[i + 2].text);
    if (!ms) {
      return p.Err(StrCat("invalid WORM expiry '", t[i + 2].text,
                          "': expected RFC 3339, e.g. 2030-01-01T00:00:00Z"));
    }
    return Worm{Worm::Kind::kExpires, 0, *ms};
  }
  return p.Err(UsageOf<KeyPut>());
}

// `IF REV <r>` at tokens i..i+2 (i names IF).
std::variant<uint64_t, ParseError> ParseIfRev(const Parser& p, size_t i,
                                              const std::string& usage) {
  const auto& t = p.tok;
  if (i + 2 >= t.size() || !Eq(t[i + 1].text, "REV")) return p.Err(usage);
  std::optional<uint64_t> r = ParseU64(t[i + 2].text);
  if (!r) {
    return p.Err(StrCat("invalid revision '", t[i + 2].text.substr(0, 32),
                        "': expected a number >= 0"));
  }
  return *r;
}

// The write options of KEY PUT and KEY BLOB SET from token i on, each at most once; an option
// and its values must end before token `end` (what follows them: the value, the length).
// Stops at the first token that starts none (before `stop`); returns its index.
struct WriteOptions {
  std::optional<std::string> principal;
  std::optional<Worm> worm;
  std::optional<uint64_t> if_rev;
  std::optional<Expiry> expire;
};

// `EXPIRE <duration>` or `EXPIRE AT <rfc3339>` at token i (i names EXPIRE), ending before
// token `end`; sets *used to the tokens it took.
std::variant<Expiry, ParseError> ParseExpire(const Parser& p, size_t i, size_t end,
                                             const std::string& usage, size_t* used) {
  const auto& t = p.tok;
  if (i + 2 <= end && Eq(t[i + 1].text, "AT")) {
    if (i + 3 > end) return p.Err(usage);
    auto ms = ParseRfc3339Ms(t[i + 2].text);
    if (!ms) {
      return p.Err(StrCat("invalid EXPIRE time '", t[i + 2].text.substr(0, 64),
                          "': expected RFC 3339, e.g. 2030-01-01T00:00:00Z"));
    }
    *used = 3;
    return Expiry{Expiry::Kind::kAt, 0, *ms};
  }
  if (i + 2 > end) return p.Err(usage);
  auto ms = ParseDurationMs(t[i + 1].text);
  if (!ms) {
    return p.Err(StrCat("invalid EXPIRE duration '", t[i + 1].text.substr(0, 64),
                        "': expected e.g. 90s, 15m, 2h, 7d"));
  }
  *used = 2;
  return Expiry{Expiry::Kind::kTtl, *ms, 0};
}
std::variant<size_t, ParseError> ParseWriteOptions(const Parser& p, size_t i, size_t end,
                                                   size_t stop, bool principal_allowed,
                                                   const std::string& usage, WriteOptions* o) {
  const auto& t = p.tok;
  while (i < stop) {
    if (principal_allowed && Eq(t[i].text, "PRINCIPAL") && !o->principal) {
      if (i + 2 > end) return p.Err(usage);
      std::string why = ValidatePrincipal(t[i + 1].text);
      if (!why.empty()) return p.Err(StrCat("invalid principal: ", why));
      o->principal = std::string(t[i + 1].text);
      i += 2;
    } else if (Eq(t[i].text, "WORM") && !o->worm) {
      if (i + 3 > end) return p.Err(usage);
      auto worm = ParseWorm(p, i);
      if (auto* e = std::get_if<ParseError>(&worm)) return *e;
      o->worm = std::get<Worm>(worm);
      i += 3;
    } else if (Eq(t[i].text, "EXPIRE") && !o->expire) {
      size_t used = 0;
      auto e = ParseExpire(p, i, end, usage, &used);
      if (auto* err = std::get_if<ParseError>(&e)) return *err;
      o->expire = std::get<Expiry>(e);
      i += used;
    } else if (Eq(t[i].text, "IF") && i + 1 < t.size() && Eq(t[i + 1].text, "REV") &&
               !o->if_rev) {  // (a value may start with "IF")
      if (i + 3 > end) return p.Err(usage);
      auto r = ParseIfRev(p, i, usage);
      if (auto* e = std::get_if<ParseError>(&r)) return *e;
      o->if_rev = std::get<uint64_t>(r);
      i += 3;
    } else {
      break;
    }
  }
  return i;
}

// KEY PUT|SET <key> [PRINCIPAL <name>] [WORM ...] [EXPIRE ...] [IF REV <r>] <value...>
std::variant<Request, ParseError> ParseKeyPut(const Parser& p) {
  const auto& t = p.tok;
  const std::string usage = UsageOf<KeyPut>();
  auto k = p.KeyAt(2, usage);
  if (auto* e = std::get_if<ParseError>(&k)) return *e;
  WriteOptions o;
  // An option needs the value after it (so `KEY PUT t.r WORM` is a usage error, as before).
  auto end = ParseWriteOptions(p, 3, t.size() - 1, t.size(), /*principal_allowed=*/true, usage,
                               &o);
  if (auto* e = std::get_if<ParseError>(&end)) return *e;
  const size_t i = std::get<size_t>(end);
  if (i >= t.size()) return p.Err(usage);
  // The value is the rest of the line, exact bytes (inner and trailing spaces kept).
  return Request{p.id, KeyPut{std::get<Key>(std::move(k)), std::move(o.principal), o.worm,
                              std::string(p.rest.substr(t[i].offset)), o.if_rev, o.expire}};
}

// KEY BLOB SET <key> [IF REV <r>] [WORM ...] [EXPIRE ...] <length> (+ the payload) |
// KEY BLOB GET <key>.
// The length is the last word: that is how the frame parser found the payload.
std::variant<Request, ParseError> ParseKeyBlob(const Parser& p) {
  const auto& t = p.tok;
  if (t.size() >= 3 && Eq(t[2].text, "SET")) {
    const std::string usage = UsageOf<KeyBlobSet>();
    if (t.size() < 5 || !p.blob->has_value()) return p.Err(usage);
    auto k = p.KeyAt(3, usage);
    if (auto* e = std::get_if<ParseError>(&k)) return *e;
    WriteOptions o;
    auto end = ParseWriteOptions(p, 4, t.size() - 1, t.size() - 1, /*principal_allowed=*/false,
                                 usage, &o);
    if (auto* e = std::get_if<ParseError>(&end)) return *e;
    if (std::get<size_t>(end) != t.size() - 1) return p.Err(usage);
    return Request{p.id, KeyBlobSet{std::get<Key>(std::move(k)), std::move(**p.blob), o.if_rev,
                                    o.worm, o.expire}};
  }
  if (t.size() >= 3 && Eq(t[2].text, "GET")) {
    if (t.size() != 4) return p.Err(UsageOf<KeyBlobGet>());
    auto k = p.KeyAt(3, UsageOf<KeyBlobGet>());
    if (auto* e = std::get_if<ParseError>(&k)) return *e;
    return Request{p.id, KeyBlobGet{std::get<Key>(std::move(k))}};
  }
  return p.Err(FamilyUsage("KEY BLOB"));
}

// KEY DEL <key> [IF REV <r>]
std::variant<Request, ParseError> ParseKeyDel(const Parser& p) {
  const auto& t = p.tok;
  const std::string usage = UsageOf<KeyDel>();
  if (t.size() != 3 && t.size() != 6) return p.Err(usage);
  auto k = p.KeyAt(2, usage);
  if (auto* e = std::get_if<ParseError>(&k)) return *e;
  KeyDel del{std::get<Key>(std::move(k)), std::nullopt};
  if (t.size() == 6) {
    if (!Eq(t[3].text, "IF")) return p.Err(usage);
    auto r = ParseIfRev(p, 3, usage);
    if (auto* e = std::get_if<ParseError>(&r)) return *e;
    del.if_rev = std::get<uint64_t>(r);
  }
  return Request{p.id, std::move(del)};
}

std::variant<Request, ParseError> ParseKeyCommand(const Parser& p) {
  const auto& t = p.tok;
  if (t.size() < 2) return p.Err(Usage(kUsageKey));
  std::string_view sub = p.sub();
  if (Eq(sub, "GET") || Eq(sub, "INFO")) {
    const bool get = Eq(sub, "GET");
    std::string usage = get ? UsageOf<KeyGet>() : UsageOf<KeyInfo>();
    if (t.size() != 3) return p.Err(usage);
    auto k = p.KeyAt(2, usage);
    if (auto* e = std::get_if<ParseError>(&k)) return *e;
    if (get) return Request{p.id, KeyGet{std::get<Key>(std::move(k))}};
    return Request{p.id, KeyInfo{std::get<Key>(std::move(k))}};
  }
  if (Eq(sub, "DEL")) return ParseKeyDel(p);
  if (Eq(sub, "PUT") || Eq(sub, "SET")) return ParseKeyPut(p);
  if (Eq(sub, "BLOB")) return ParseKeyBlob(p);
  return p.Err(StrCat("unknown command 'KEY ", sub, "'"));
}

std::variant<Request, ParseError> ParseScan(const Parser& p) {
  const auto& t = p.tok;
  if (t.size() < 2) return p.Err(UsageOf<Scan>());
  auto r = p.ParseRange(t[1].text);
  if (auto* e = std::get_if<std::string>(&r)) return p.Err(*e);
  Scan scan{std::get<TableRange>(std::move(r)), std::nullopt, std::nullopt};
  for (size_t i = 2; i < t.size(); i += 2) {
    if (i + 1 >= t.size()) return p.Err(UsageOf<Scan>());
    if (Eq(t[i].text, "LIMIT") && !scan.limit) {
      auto n = ParseU64(t[i + 1].text);
      if (!n) return p.Err(StrCat("invalid LIMIT '", t[i + 1].text, "'"));
      scan.limit = *n;
    } else if (Eq(t[i].text, "AFTER") && !scan.after) {
      std::string why = ValidateKey(t[i + 1].text);
      if (!why.empty()) return p.Err(why);
      scan.after = std::string(t[i + 1].text);
    } else {
      return p.Err(UsageOf<Scan>());
    }
  }
  return Request{p.id, std::move(scan)};
}

std::variant<Request, ParseError> ParseCount(const Parser& p) {
  const auto& t = p.tok;
  if (t.size() != 2) return p.Err(UsageOf<Count>());
  auto r = p.ParseRange(t[1].text);
  if (auto* e = std::get_if<std::string>(&r)) return p.Err(*e);
  return Request{p.id, Count{std::get<TableRange>(std::move(r))}};
}

std::variant<Request, ParseError> ParseSample(const Parser& p) {
  const auto& t = p.tok;
  if (t.size() != 3) return p.Err(UsageOf<Sample>());
  auto r = p.ParseRange(t[1].text);
  if (auto* e = std::get_if<std::string>(&r)) return p.Err(*e);
  auto n = ParseU64(t[2].text);
  if (!n) return p.Err(StrCat("invalid sample size '", t[2].text, "'"));
  return Request{p.id, Sample{std::get<TableRange>(std::move(r)), *n}};
}

// TOKEN CREATE [TTL <d>|TTL NEVER] [USES <n>]: the options after CREATE.
std::variant<Request, ParseError> ParseTokenCreate(const Parser& p) {
  const auto& t = p.tok;
  TokenCreate create;
  bool ttl = false, uses = false;
  for (size_t i = 2; i < t.size(); i += 2) {
    if (i + 1 >= t.size()) return p.Err(FamilyUsage("TOKEN"));
    if (Eq(t[i].text, "TTL") && !ttl) {
      ttl = true;
      if (Eq(t[i + 1].text, "NEVER")) {
        create.ttl_ms = 0;
        continue;
      }
      auto d = ParseDurationMs(t[i + 1].text);
      if (!d) return p.Err(StrCat("invalid duration '", t[i + 1].text, "'"));
      create.ttl_ms = *d;
    } else if (Eq(t[i].text, "USES") && !uses) {
      uses = true;
      auto n = ParseU64(t[i + 1].text);
      if (!n || *n == 0 || *n > 1'000'000) {
        return p.Err(StrCat("invalid USES '", t[i + 1].text, "': 1 to 1000000"));
      }
      create.uses = static_cast<uint32_t>(*n);
    } else {
      return p.Err(FamilyUsage("TOKEN"));
    }
  }
  return Request{p.id, create};
}

// TOKEN CREATE ... | TOKEN LIST | TOKEN REVOKE <id>
std::variant<Request, ParseError> ParseToken(const Parser& p) {
  const auto& t = p.tok;
  const std::string_view sub = p.sub();
  if (Eq(sub, "LIST") && t.size() == 2) return Request{p.id, TokenList{}};
  if (Eq(sub, "REVOKE") && t.size() == 3) {
    std::string id(t[2].text);
    const bool hex = id.size() == 12 && std::all_of(id.begin(), id.end(), [](char c) {
                       return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
                     });
    if (!hex) return p.Err(StrCat("invalid token id '", id, "': 12 hex digits"));
    return Request{p.id, TokenRevoke{std::move(id)}};
  }
  if (!Eq(sub, "CREATE")) return p.Err(FamilyUsage("TOKEN"));
  return ParseTokenCreate(p);
}

// CA STATUS | CA ROTATE
std::variant<Request, ParseError> ParseCa(const Parser& p) {
  if (p.tok.size() == 2 && Eq(p.sub(), "STATUS")) return Request{p.id, CaStatus{}};
  if (p.tok.size() == 2 && Eq(p.sub(), "ROTATE")) return Request{p.id, CaRotate{}};
  return p.Err(FamilyUsage("CA"));
}

std::variant<Request, ParseError> ParsePrincipal(const Parser& p) {
  const auto& t = p.tok;
  if (Eq(p.sub(), "ASSUME")) {
    if (t.size() != 3) return p.Err(UsageOf<PrincipalAssume>());
    std::string why = ValidatePrincipal(t[2].text);
    if (!why.empty()) return p.Err(StrCat("invalid principal: ", why));
    return Request{p.id, PrincipalAssume{std::string(t[2].text)}};
  }
  if (Eq(p.sub(), "WHOAMI") && t.size() == 2) return Request{p.id, PrincipalWhoami{}};
  return p.Err(FamilyUsage("PRINCIPAL"));
}

std::variant<Request, ParseError> ParseAcl(const Parser& p) {
  const auto& t = p.tok;
  const std::string_view sub = p.sub();
  if (Eq(sub, "GRANT") || Eq(sub, "REVOKE")) {
    if (t.size() != 6 || !Eq(t[4].text, "PERMS")) return p.Err(Usage(kUsageAcl));
    auto table = TableArg(p, t[2].text);
    if (auto* e = std::get_if<ParseError>(&table)) return *e;
    std::string why = ValidatePrincipal(t[3].text);
    if (!why.empty()) return p.Err(StrCat("invalid principal: ", why));
    auto perm = ParsePerm(t[5].text);
    if (!perm) {
      return p.Err(StrCat("invalid permission '", t[5].text, "': expected READ, WRITE or OWNER"));
    }
    std::string& name = std::get<std::string>(table);
    if (Eq(sub, "GRANT")) return Request{p.id, AclGrant{name, std::string(t[3].text), *perm}};
    return Request{p.id, AclRevoke{name, std::string(t[3].text), *perm}};
  }
  if (Eq(sub, "LIST") && t.size() == 3) {
    auto table = TableArg(p, t[2].text);
    if (auto* e = std::get_if<ParseError>(&table)) return *e;
    return Request{p.id, AclList{std::get<std::string>(table)}};
  }
  return p.Err(Usage(kUsageAcl));
}

std::variant<Request, ParseError> ParseNode(const Parser& p) {
  const auto& t = p.tok;
  const std::string_view sub = p.sub();
  if (Eq(sub, "LIST") && t.size() == 2) return Request{p.id, NodeList{}};
  if (Eq(sub, "STATUS") && t.size() == 2) return Request{p.id, NodeStatus{}};
  if ((Eq(sub, "INFO") || Eq(sub, "PING") || Eq(sub, "LEAVE")) && t.size() == 3) {
    auto id = ParseU64(t[2].text);
    if (!id) return p.Err(StrCat("invalid node id '", t[2].text, "'"));
    if (Eq(sub, "INFO")) return Request{p.id, NodeInfo{*id}};
    if (Eq(sub, "LEAVE")) return Request{p.id, NodeLeave{*id}};
    return Request{p.id, NodePing{*id}};
  }
  return p.Err(FamilyUsage("NODE"));
}

std::variant<Request, ParseError> ParseQuorum(const Parser& p) {
  const auto& t = p.tok;
  if (Eq(p.sub(), "SET") && t.size() == 4) {
    std::optional<uint64_t> fn = ParseU64(t[2].text), fz = ParseU64(t[3].text);
    if (!fn || !fz || *fn > 1000 || *fz > 1000) {
      return p.Err(StrCat("invalid Fn/Fz '", t[2].text.substr(0, 16), " ",
                          t[3].text.substr(0, 16), "': numbers of failures, 0 or more"));
    }
    return Request{p.id, QuorumSet{static_cast<int>(*fn), static_cast<int>(*fz)}};
  }
  if (!Eq(p.sub(), "INFO") || t.size() != 3) return p.Err(FamilyUsage("QUORUM"));
  auto table = TableArg(p, t[2].text);
  if (auto* e = std::get_if<ParseError>(&table)) return *e;
  return Request{p.id, QuorumInfo{std::get<std::string>(table)}};
}

// TABLE LIST [LIMIT <n>] [AFTER <table>]
std::variant<Request, ParseError> ParseTableList(const Parser& p) {
  const auto& t = p.tok;
  TableList list;
  for (size_t i = 2; i < t.size(); i += 2) {
    if (i + 1 >= t.size()) return p.Err(FamilyUsage("TABLE"));
    if (Eq(t[i].text, "LIMIT") && !list.limit) {
      auto n = ParseU64(t[i + 1].text);
      if (!n) return p.Err(StrCat("invalid LIMIT '", t[i + 1].text, "'"));
      list.limit = *n;
    } else if (Eq(t[i].text, "AFTER") && !list.after) {
      auto table = TableArg(p, t[i + 1].text);
      if (auto* e = std::get_if<ParseError>(&table)) return *e;
      list.after = std::get<std::string>(table);
    } else {
      return p.Err(FamilyUsage("TABLE"));
    }
  }
  return Request{p.id, std::move(list)};
}

// TABLE DUMP <table> [AT <rev>] [AFTER <key>] [LIMIT <n>], the table at tokens[2] (valid).
std::variant<Request, ParseError> ParseTableDump(const Parser& p, std::string table) {
  const auto& t = p.tok;
  const std::string usage = UsageOf<TableDump>();
  TableDump dump{std::move(table), std::nullopt, std::nullopt, std::nullopt};
  for (size_t i = 3; i < t.size(); i += 2) {
    if (i + 1 >= t.size()) return p.Err(usage);
    const std::string_view arg = t[i + 1].text;
    if (Eq(t[i].text, "AT") && !dump.at) {
      dump.at = ParseU64(arg);
      if (!dump.at) return p.Err(StrCat("invalid revision '", arg.substr(0, 32), "'"));
    } else if (Eq(t[i].text, "AFTER") && !dump.after) {
      std::string why = ValidateKey(arg);
      if (!why.empty()) return p.Err(why);
      dump.after = std::string(arg);
    } else if (Eq(t[i].text, "LIMIT") && !dump.limit) {
      dump.limit = ParseU64(arg);
      if (!dump.limit || *dump.limit == 0) {
        return p.Err(StrCat("invalid LIMIT '", arg.substr(0, 32), "'"));
      }
    } else {
      return p.Err(usage);
    }
  }
  // The pages of one dump share its snapshot: a page that goes on from a key names it.
  if (dump.after && !dump.at) return p.Err(StrCat("AFTER needs AT <rev>; ", usage));
  return Request{p.id, std::move(dump)};
}

// TABLE INFO|MOVE|PIN|GROUP|READS|DUMP <table> ... | TABLE LIST ...
std::variant<Request, ParseError> ParseTable(const Parser& p) {
  const auto& t = p.tok;
  const std::string_view sub = p.sub();
  if (t.size() >= 2 && Eq(sub, "LIST")) return ParseTableList(p);
  if (t.size() < 3) return p.Err(FamilyUsage("TABLE"));
  auto table = TableArg(p, t[2].text);
  if (auto* e = std::get_if<ParseError>(&table)) return *e;
  std::string name = std::get<std::string>(table);
  if (Eq(sub, "INFO") && t.size() == 3) return Request{p.id, TableInfo{name}};
  if (Eq(sub, "DUMP")) return ParseTableDump(p, std::move(name));
  if (t.size() != 4) return p.Err(FamilyUsage("TABLE"));
  std::string arg(t[3].text);
  if (Eq(sub, "MOVE")) return Request{p.id, TableMove{name, arg}};
  if (Eq(sub, "READS")) {
    using Mode = TableReads::Mode;
    if (Eq(arg, "LOCAL")) return Request{p.id, TableReads{name, Mode::kLocal}};
    if (Eq(arg, "OWNER")) return Request{p.id, TableReads{name, Mode::kOwner}};
    if (Eq(arg, "AUTO")) return Request{p.id, TableReads{name, Mode::kAuto}};
    return p.Err(StrCat("invalid read mode '", arg, "': LOCAL, OWNER or AUTO"));
  }
  std::optional<std::string> opt;
  if (!Eq(arg, "NONE")) {
    std::string why = ValidateTableName(arg);  // regions and groups share the table-name rules
    if (!why.empty()) return p.Err(StrCat("invalid name '", arg, "': ", why));
    opt = arg;
  }
  if (Eq(sub, "PIN")) return Request{p.id, TablePin{name, opt}};
  if (Eq(sub, "GROUP")) return Request{p.id, TableGroup{name, opt}};
  return p.Err(FamilyUsage("TABLE"));
}

std::variant<Request, ParseError> ParseWatch(const Parser& p) {
  const auto& t = p.tok;
  if (t.size() != 2 && t.size() != 4) return p.Err(UsageOf<Watch>());
  auto r = p.ParseRange(t[1].text);
  if (auto* e = std::get_if<std::string>(&r)) return p.Err(*e);
  Watch watch{std::get<TableRange>(std::move(r)), std::nullopt};
  if (t.size() == 4) {
    if (!Eq(t[2].text, "FROM")) return p.Err(UsageOf<Watch>());
    auto n = ParseU64(t[3].text);
    if (!n) return p.Err(StrCat("invalid revision '", t[3].text, "'"));
    watch.from = *n;
  }
  return Request{p.id, std::move(watch)};
}

std::variant<Request, ParseError> ParseUnwatch(const Parser& p) {
  const auto& t = p.tok;
  if (t.size() != 2) return p.Err(UsageOf<Unwatch>());
  std::string_view id = t[1].text;
  if (id.size() > 64 || id.find(']') != std::string_view::npos) {
    return p.Err(StrCat("invalid request id '", id.substr(0, 64), "'"));
  }
  return Request{p.id, Unwatch{std::string(id)}};
}

// The parser of each verb (the first word, case-insensitive).
struct VerbParser {
  std::string_view verb;
  std::variant<Request, ParseError> (*parse)(const Parser& p);
};
// Takes a command into a transaction if it is one a transaction may hold.
bool AddToTxn(Command& c, Txn& txn) {
  return std::visit(
      [&](auto& command) {
        using T = std::decay_t<decltype(command)>;
        if constexpr (std::is_constructible_v<TxnCommand, T>) {
          if constexpr (std::is_same_v<T, KeyPut>) {
            if (command.principal) return false;
          }
          txn.ops.emplace_back(std::move(command));
          return true;
        } else {
          return false;
        }
      },
      c);
}

// TXN <n>; the framer gathered the n commands after it into the frame's body.
std::variant<Request, ParseError> ParseTxn(const Parser& p) {
  const std::string usage = UsageOf<Txn>();
  if (!p.frame->body_error.empty()) {
    return p.Err(StrCat("transaction too large: ", p.frame->body_error));
  }
  if (p.tok.size() != 2 || p.frame->body.empty()) return p.Err(usage);
  Txn txn;
  txn.ops.reserve(p.frame->body.size());
  for (size_t i = 0; i < p.frame->body.size(); ++i) {
    Frame& f = p.frame->body[i];
    const std::string where = StrCat(" (command ", i + 1, " of the transaction)");
    std::optional<std::string> id;
    std::string_view rest;
    std::string err;
    if (!SplitRequestId(f.line, &id, &rest, &err) || id) {
      return p.Err(StrCat("a transaction's commands carry no tags", where));
    }
    auto parsed = ParseCommand(std::move(f));
    if (auto* e = std::get_if<ParseError>(&parsed)) return p.Err(e->message + where);
    if (!AddToTxn(std::get<Request>(parsed).command, txn)) {
      return p.Err(StrCat(usage, "; no PRINCIPAL option", where));
    }
  }
  return Request{p.id, std::move(txn)};
}

constexpr VerbParser kVerbParsers[] = {
    {"KEY", ParseKeyCommand}, {"SCAN", ParseScan},           {"COUNT", ParseCount},
    {"SAMPLE", ParseSample},  {"PRINCIPAL", ParsePrincipal}, {"ACL", ParseAcl},
    {"NODE", ParseNode},      {"TOKEN", ParseToken},         {"QUORUM", ParseQuorum},
    {"TABLE", ParseTable},    {"WATCH", ParseWatch},         {"UNWATCH", ParseUnwatch},
    {"TXN", ParseTxn},        {"CA", ParseCa},
};

}  // namespace

std::string_view PermName(Perm p) {
  switch (p) {
    case Perm::kRead: return "READ";
    case Perm::kWrite: return "WRITE";
    case Perm::kOwner: return "OWNER";
  }
  return "?";
}

bool IsValidUtf8(std::string_view s) {
  size_t i = 0;
  uint32_t cp;
  while (i < s.size()) {
    if (!DecodeUtf8(s, &i, &cp)) return false;
  }
  return true;
}

std::string ValidateTableName(std::string_view table) {
  if (table.empty()) return "empty table name";
  if (table.size() > kMaxTableBytes) return "table name longer than 255 bytes";
  for (char c : table) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '_' && c != '-') {
      return "table name may only contain A-Z a-z 0-9 _ -";
    }
  }
  return "";
}

std::string ValidateKey(std::string_view key) {
  auto bad = [&](std::string_view why) {
    // Quote at most 1 KiB of a bad key back; the message is sanitised by the formatter.
    return StrCat("invalid key '", key.substr(0, kMaxKeyBytes), "': ", why);
  };
  if (key.empty()) return bad("empty key");
  if (key.size() > kMaxKeyBytes) return bad("longer than 1024 bytes");
  size_t i = 0;
  uint32_t cp;
  while (i < key.size()) {
    if (!DecodeUtf8(key, &i, &cp)) return bad("not valid UTF-8");
    if (IsControlOrSpace(cp)) return bad("control, white-space or invisible character");
  }
  size_t dot = key.find('.');
  if (dot == std::string_view::npos) return bad("expected <table>.<row>");
  std::string why = ValidateTableName(key.substr(0, dot));
  if (!why.empty()) return bad(why);
  if (dot + 1 == key.size()) return bad("empty row; expected <table>.<row>");
  return "";
}

std::string ValidatePrincipal(std::string_view name) {
  if (name.empty()) return "empty name";
  size_t i = 0, chars = 0;
  uint32_t cp;
  while (i < name.size()) {
    if (!DecodeUtf8(name, &i, &cp)) return "not valid UTF-8";
    if (IsControlOrSpace(cp)) return "control, white-space or invisible character";
    ++chars;
  }
  if (chars > kMaxPrincipalChars) return "longer than 256 characters";
  return "";
}

bool IsReservedTable(std::string_view table) { return table.substr(0, 5) == "atlas"; }

std::optional<int64_t> ParseDurationMs(std::string_view s) {
  if (s.size() < 2) return std::nullopt;
  int64_t unit;
  switch (absl::ascii_tolower(static_cast<unsigned char>(s.back()))) {
    case 's': unit = 1000; break;
    case 'm': unit = 60 * 1000; break;
    case 'h': unit = 3600 * 1000; break;
    case 'd': unit = 86400 * 1000; break;
    default: return std::nullopt;
  }
  auto n = ParseU64(s.substr(0, s.size() - 1));
  // Bound to 100 years so that timestamp + TTL never overflows.
  if (!n || *n == 0 || *n > static_cast<uint64_t>(kRetentionMsMax) / static_cast<uint64_t>(unit)) {
    return std::nullopt;
  }
  return static_cast<int64_t>(*n) * unit;
}

std::optional<int64_t> ParseRfc3339Ms(std::string_view s) {
  absl::Time t;
  std::string err;
  if (!absl::ParseTime(absl::RFC3339_full, std::string(s), &t, &err)) return std::nullopt;
  int64_t ms = absl::ToUnixMillis(t);
  if (ms < 0 || ms > int64_t{253402300799000}) return std::nullopt;  // 0000..9999 years
  return ms;
}

std::string FormatRfc3339Ms(int64_t ms) {
  return absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", absl::FromUnixMillis(ms), absl::UTCTimeZone());
}

std::variant<Request, ParseError> ParseCommand(Frame frame) {
  Parser p;
  std::string err;
  std::string_view line = frame.line;
  if (!SplitRequestId(line, &p.id, &p.rest, &err)) return ParseError{std::nullopt, err};
  p.tok = Tokenize(p.rest);
  p.blob = &frame.blob;
  p.frame = &frame;
  if (p.tok.empty()) return p.Err(Usage("[ID:<id>] <command>"));
  std::string_view verb = p.tok[0].text;
  // A blob payload only belongs to KEY BLOB SET; the framer guarantees nothing else has one.
  for (const VerbParser& v : kVerbParsers) {
    if (Eq(verb, v.verb)) return v.parse(p);
  }
  return p.Err(StrCat("unknown command '", verb.substr(0, 64), "'"));
}

}  // namespace atlas::socketproto
