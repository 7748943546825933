// Framing, command parsing and reply formatting of docs/protocol.md, without any I/O.
#include <catch2/catch.hpp>

#include <map>

#include "socketproto/command.h"
#include "socketproto/command_table.h"
#include "socketproto/formatter.h"
#include "socketproto/frame_parser.h"
#include "socketproto/str.h"

using namespace atlas::socketproto;
using atlas::StrCat;

namespace {

struct Parsed {
  std::vector<Frame> frames;
  std::optional<std::string> fatal;
};

// Feeds `input` in chunks of `chunk` bytes (0: all at once).
Parsed Feed(std::string_view input, size_t chunk = 0, Limits limits = {}, bool handshake = true) {
  FrameParser p(limits);
  if (handshake) p.set_handshake_done();
  Parsed out;
  size_t pos = 0;
  while (pos < input.size()) {
    size_t n = chunk == 0 ? input.size() - pos : std::min(chunk, input.size() - pos);
    std::string_view piece = input.substr(pos, n);
    pos += n;
    for (;;) {
      Frame f;
      std::string err;
      ParseStatus st = p.Next(&piece, &f, &err);
      if (st == ParseStatus::kFrame) {
        out.frames.push_back(std::move(f));
        continue;
      }
      if (st == ParseStatus::kFatal) {
        out.fatal = err;
        return out;
      }
      break;
    }
  }
  return out;
}

Request MustParse(std::string line, std::optional<std::string> blob = std::nullopt) {
  auto r = ParseCommand(Frame{std::move(line), std::move(blob)});
  if (auto* e = std::get_if<ParseError>(&r)) FAIL("unexpected parse error: " << e->message);
  return std::get<Request>(std::move(r));
}

std::string MustFail(std::string line, std::optional<std::string> blob = std::nullopt) {
  auto r = ParseCommand(Frame{std::move(line), std::move(blob)});
  if (std::holds_alternative<Request>(r)) FAIL("expected a parse error");
  return std::get<ParseError>(r).message;
}

}  // namespace

TEST_CASE("frames end in CRLF or LF alone, and blank lines are skipped") {
  auto p = Feed("KEY GET a.b\r\n\r\n   \nKEY GET a.c\n");
  REQUIRE(p.frames.size() == 2);
  CHECK(p.frames[0].line == "KEY GET a.b");
  CHECK(p.frames[1].line == "KEY GET a.c");
}

TEST_CASE("framing is the same whatever the chunking of the byte stream") {
  std::string input =
      "KEY PUT a.b hello  world\r\n[ID:7] KEY BLOB SET a.c 7\r\nab\r\ncd\nKEY GET a.c\r\n"
      "KEY BLOB SET a.z 0\r\nSCAN a\n";
  auto whole = Feed(input);
  REQUIRE(whole.frames.size() == 5);
  for (size_t chunk = 1; chunk <= 9; ++chunk) {
    auto split = Feed(input, chunk);
    REQUIRE(split.frames.size() == whole.frames.size());
    for (size_t i = 0; i < whole.frames.size(); ++i) {
      CHECK(split.frames[i].line == whole.frames[i].line);
      CHECK(split.frames[i].blob == whole.frames[i].blob);
    }
  }
  CHECK(whole.frames[1].blob == std::string("ab\r\ncd\n"));
  CHECK(whole.frames[3].blob == std::string());
}

TEST_CASE("a bad blob length is fatal: the stream can no longer be framed") {
  for (const char* bad : {"KEY BLOB SET a.b abc\r\n", "KEY BLOB SET a.b -1\r\n",
                          "KEY BLOB SET a.b +5\r\n", "KEY BLOB SET a.b 99999999999999999999999\r\n"}) {
    auto p = Feed(bad);
    REQUIRE(p.fatal);
    CHECK(p.fatal->find("invalid blob length") == 0);
  }
  Limits small;
  small.max_blob_bytes = 10;
  auto p = Feed("KEY BLOB SET a.b 11\r\n", 0, small);
  REQUIRE(p.fatal);
  CHECK(p.fatal->find("too large") != std::string::npos);
}

TEST_CASE("a blob announced under a malformed tag is FATAL, never executed as commands") {
  // Found by the fuzzer: the payload used to be parsed as command lines (a smuggled KEY DEL).
  for (std::string tag : {"[ID:" + std::string(65, 'x') + "]", std::string("[ID:]"),
                          std::string("[ID:7\0] ", 8), std::string("[ID:abc"),
                          // A verb glued to the bad tag (found by CI's fuzz run).
                          std::string("[ID:]"), std::string("[ID:a b]")}) {
    auto p = Feed(tag + " KEY BLOB SET t.upload 13\r\nKEY DEL t.a\r\n");
    auto glued = Feed(tag + "KEY BLOB SET t.upload 13\r\nKEY DEL t.a\r\n");
    CHECK(glued.fatal.has_value() == (tag.find(']') != std::string::npos));
    REQUIRE(p.fatal);
    CHECK(*p.fatal == "invalid request id on KEY BLOB SET: the blob cannot be framed");
    CHECK(p.frames.empty());
  }
  // A malformed tag on any other command stays a WARN of ParseCommand.
  auto ok = Feed("[ID:] KEY GET a.b\r\n");
  CHECK_FALSE(ok.fatal);
  CHECK(ok.frames.size() == 1);
}

TEST_CASE("a line over the limit is fatal, one at the limit is not") {
  Limits l;
  l.max_line_bytes = 1024;
  std::string ok = "KEY PUT a.b " + std::string(1024 - 12, 'x');
  REQUIRE(ok.size() == 1024);
  CHECK(Feed(ok + "\r\n", 0, l).frames.size() == 1);
  CHECK(Feed(ok + "\n", 7, l).frames.size() == 1);
  auto p = Feed(ok + "y\r\n", 0, l);
  REQUIRE(p.fatal);
  CHECK(*p.fatal == "line too large (limit 1024 bytes)");
  // Detected before the terminator arrives: an endless line never grows the buffer.
  FrameParser parser(l);
  std::string endless(5000, 'x');
  std::string_view v = endless;
  Frame f;
  std::string err;
  CHECK(parser.Next(&v, &f, &err) == ParseStatus::kFatal);
}

TEST_CASE("before the handshake no line is taken as a blob announcement") {
  auto p = Feed("KEY BLOB SET a.b 5\r\n", 0, {}, /*handshake=*/false);
  REQUIRE(p.frames.size() == 1);
  CHECK_FALSE(p.frames[0].blob);
}

TEST_CASE("request ids are 1-64 printable characters, no closing bracket or white space") {
  auto r = MustParse("[ID:abc-1] KEY GET a.b");
  CHECK(r.id == std::string("abc-1"));
  CHECK(MustParse("[id:x]key get a.b").id == std::string("x"));
  CHECK(MustFail("[ID:] KEY GET a.b").find("invalid request id") == 0);
  CHECK(MustFail("[ID:" + std::string(65, 'a') + "] KEY GET a.b").find("invalid request id") == 0);
  CHECK(MustFail("[ID:abc KEY GET a.b").find("invalid request id") == 0);
  auto e = ParseCommand(Frame{"[ID:9]", std::nullopt});
  REQUIRE(std::holds_alternative<ParseError>(e));
  CHECK(std::get<ParseError>(e).id == std::string("9"));
}

TEST_CASE("verbs are case-insensitive, keys case-preserving") {
  auto r = MustParse("key get Users.Alice");
  CHECK(std::get<KeyGet>(r.command).key.full == "Users.Alice");
}

TEST_CASE("KEY PUT takes the rest of the line verbatim as the value") {
  auto r = MustParse("KEY PUT a.b   hello   world  ");
  CHECK(std::get<KeyPut>(r.command).value == "hello   world  ");
  auto s = MustParse("KEY SET a.b x");
  CHECK(std::get<KeyPut>(s.command).value == "x");
  auto tagged = MustParse("[ID:1] KEY PUT a.b v");
  CHECK(std::get<KeyPut>(tagged.command).value == "v");  // the key never leaks into the value
}

TEST_CASE("KEY PUT options: PRINCIPAL and WORM, in either order") {
  auto r = MustParse("KEY PUT a.b PRINCIPAL alice WORM TTL 2h the value");
  auto& put = std::get<KeyPut>(r.command);
  CHECK(put.principal == std::string("alice"));
  REQUIRE(put.worm);
  CHECK(put.worm->kind == Worm::Kind::kTtl);
  CHECK(put.worm->ttl_ms == 2 * 3600 * 1000);
  CHECK(put.value == "the value");
  auto e = MustParse("KEY PUT a.b WORM EXPIRES 2030-01-02T03:04:05Z PRINCIPAL bob v");
  auto& put2 = std::get<KeyPut>(e.command);
  CHECK(put2.worm->kind == Worm::Kind::kExpires);
  CHECK(put2.worm->expires_ms == 1893553445000);
  CHECK(put2.principal == std::string("bob"));
  CHECK(MustFail("KEY PUT a.b WORM TTL 5x v").find("invalid WORM duration") == 0);
  CHECK(MustFail("KEY PUT a.b WORM EXPIRES tomorrow v").find("invalid WORM expiry") == 0);
  CHECK(MustFail("KEY PUT a.b WORM TTL 5m").find("usage: KEY PUT") == 0);
  CHECK(MustFail("KEY PUT a.b").find("usage: KEY PUT") == 0);
}

TEST_CASE("IF REV on KEY PUT, KEY DEL and KEY BLOB SET, and KEY INFO") {
  auto put = std::get<KeyPut>(MustParse("KEY PUT a.b IF REV 7 the value").command);
  CHECK(put.if_rev == 7u);
  CHECK(put.value == "the value");
  auto both = std::get<KeyPut>(MustParse("KEY PUT a.b if rev 0 WORM TTL 1h v").command);
  CHECK(both.if_rev == 0u);
  CHECK(both.worm);
  // A value may start with IF when no REV follows; IF REV is taken once.
  CHECK(std::get<KeyPut>(MustParse("KEY PUT a.b IF only").command).value == "IF only");
  CHECK(std::get<KeyPut>(MustParse("KEY PUT a.b IF REV 1 IF REV 2").command).value == "IF REV 2");
  CHECK(MustFail("KEY PUT a.b IF REV x v") == "invalid revision 'x': expected a number >= 0");
  CHECK(MustFail("KEY PUT a.b IF REV -1 v").starts_with("invalid revision '-1'"));
  CHECK(MustFail("KEY PUT a.b IF REV 3").starts_with("usage: KEY PUT"));  // no value
  CHECK(std::get<KeyDel>(MustParse("KEY DEL a.b IF REV 4").command).if_rev == 4u);
  CHECK_FALSE(std::get<KeyDel>(MustParse("KEY DEL a.b").command).if_rev);
  CHECK(MustFail("KEY DEL a.b IF REV") == "usage: KEY DEL <key> [IF REV <r>]");
  CHECK(MustFail("KEY DEL a.b WHEN REV 4") == "usage: KEY DEL <key> [IF REV <r>]");
  auto blob = std::get<KeyBlobSet>(
      MustParse("KEY BLOB SET a.b IF REV 2 WORM TTL 1d 3", "xyz").command);
  CHECK(blob.if_rev == 2u);
  REQUIRE(blob.worm);
  CHECK(blob.worm->ttl_ms == 86'400'000);
  CHECK(blob.value == "xyz");
  CHECK(MustFail("KEY BLOB SET a.b IF 3", "xyz").starts_with("usage: KEY BLOB SET"));
  CHECK(std::get<KeyInfo>(MustParse("key info a.b").command).key.full == "a.b");
  CHECK(MustFail("KEY INFO a.b c") == "usage: KEY INFO <key>");
}

TEST_CASE("EXPIRE <duration> and EXPIRE AT <rfc3339> on KEY PUT and KEY BLOB SET") {
  auto put = std::get<KeyPut>(MustParse("KEY PUT s.a EXPIRE 15m IF REV 0 v").command);
  REQUIRE(put.expire);
  CHECK(put.expire->kind == Expiry::Kind::kTtl);
  CHECK(put.expire->ttl_ms == 15 * 60'000);
  CHECK(put.if_rev == 0u);
  auto at = std::get<KeyPut>(MustParse("KEY SET s.a expire at 2030-01-02T03:04:05Z v").command);
  CHECK(at.expire->kind == Expiry::Kind::kAt);
  CHECK(at.expire->at_ms == 1893553445000);
  auto blob = std::get<KeyBlobSet>(MustParse("KEY BLOB SET s.b EXPIRE 2h 1", "x").command);
  CHECK(blob.expire->ttl_ms == 7'200'000);
  CHECK(MustFail("KEY PUT s.a EXPIRE 1x v") ==
        "invalid EXPIRE duration '1x': expected e.g. 90s, 15m, 2h, 7d");
  CHECK(MustFail("KEY PUT s.a EXPIRE AT soon v") ==
        "invalid EXPIRE time 'soon': expected RFC 3339, e.g. 2030-01-01T00:00:00Z");
  CHECK(MustFail("KEY PUT s.a EXPIRE 1h").starts_with("usage: KEY PUT"));  // no value
  CHECK(std::get<KeyPut>(MustParse("KEY PUT s.a EXPIRE 1h EXPIRE 2h").command).value ==
        "EXPIRE 2h");  // once: the second is the value
}

TEST_CASE("a blob's length is the last word of its line, after any options") {
  auto p = Feed("KEY BLOB SET a.b IF REV 0 WORM TTL 1h 3\r\nabcKEY GET a.b\r\n");
  REQUIRE_FALSE(p.fatal);
  REQUIRE(p.frames.size() == 2);
  CHECK(p.frames[0].blob == std::string("abc"));
  CHECK(p.frames[1].line == "KEY GET a.b");
  // Options never hide a bad length: the stream is unframeable as before.
  auto bad = Feed("KEY BLOB SET a.b IF REV 0 x\r\n");
  REQUIRE(bad.fatal);
  CHECK(bad.fatal->find("invalid blob length 'x'") == 0);
}

TEST_CASE("TXN <n> gathers the n frames after it, blobs included, into one frame") {
  auto p = Feed("[ID:t] TXN 3\r\nKEY GET a.b\r\nKEY BLOB SET a.c IF REV 0 2\r\nxyKEY DEL a.d\r\n"
                "KEY GET after.txn\r\n", 5);
  REQUIRE_FALSE(p.fatal);
  REQUIRE(p.frames.size() == 2);
  CHECK(p.frames[0].line == "[ID:t] TXN 3");
  REQUIRE(p.frames[0].body.size() == 3);
  CHECK(p.frames[0].body[1].blob == std::string("xy"));
  CHECK(p.frames[1].line == "KEY GET after.txn");
  auto r = ParseCommand(std::move(p.frames[0]));
  REQUIRE(std::holds_alternative<Request>(r));
  const Request& req = std::get<Request>(r);
  CHECK(req.id == std::string("t"));
  const auto& txn = std::get<Txn>(req.command);
  REQUIRE(txn.ops.size() == 3);
  CHECK(std::get<KeyBlobSet>(txn.ops[1]).if_rev == 0u);
  CHECK(std::holds_alternative<KeyDel>(txn.ops[2]));
  // A count that cannot be read leaves the commands after it unframeable.
  for (const char* bad : {"TXN\r\n", "TXN x\r\n", "TXN -1\r\n", "TXN 2 3\r\n"}) {
    auto f = Feed(bad);
    REQUIRE(f.fatal);
    CHECK(f.fatal->starts_with("invalid transaction length"));
  }
}

TEST_CASE("a transaction holds only row commands, untagged and without PRINCIPAL - over a limit "
          "its commands are read and dropped") {
  auto one = [](std::string line) {
    auto p = Feed("TXN 1\n" + line + "\n");
    REQUIRE(p.frames.size() == 1);
    auto r = ParseCommand(std::move(p.frames[0]));
    return std::holds_alternative<ParseError>(r) ? std::get<ParseError>(r).message : "parsed";
  };
  CHECK(one("KEY INFO a.b") == "parsed");
  CHECK(one("NODE LIST").starts_with("usage: TXN <n>, then n lines of KEY GET|INFO|PUT|SET|DEL"));
  CHECK(one("NODE LIST").ends_with("(command 1 of the transaction)"));
  CHECK(one("KEY PUT a.b PRINCIPAL bob v").find("no PRINCIPAL option") != std::string::npos);
  CHECK(one("[ID:x] KEY GET a.b") ==
        "a transaction's commands carry no tags (command 1 of the transaction)");
  CHECK(one("KEY GET nodot") ==
        "invalid key 'nodot': expected <table>.<row> (command 1 of the transaction)");
  CHECK(one("TXN 1").starts_with("usage: TXN"));  // no nesting
  auto empty = Feed("TXN 0\nKEY GET a.b\n");
  REQUIRE(empty.frames.size() == 2);
  CHECK(std::get<ParseError>(ParseCommand(std::move(empty.frames[0]))).message.starts_with(
      "usage: TXN"));
  Limits small;
  small.max_blob_bytes = 16;
  auto big = Feed("TXN 2\nKEY PUT a.b 0123456789\nKEY PUT a.c 0123456789\nKEY GET a.b\n", 0,
                  small);
  REQUIRE(big.frames.size() == 2);  // the transaction, then the next command
  CHECK(big.frames[0].body.empty());
  CHECK(std::get<ParseError>(ParseCommand(std::move(big.frames[0]))).message ==
        "transaction too large: more than 16 bytes");
  auto many = Feed("TXN 100001\n");
  REQUIRE(many.frames.empty());  // still reading (and dropping) its commands
}

TEST_CASE("durations: a positive integer and one of s m h d") {
  CHECK(ParseDurationMs("90s") == 90000);
  CHECK(ParseDurationMs("15m") == 900000);
  CHECK(ParseDurationMs("7d") == 7 * 86400000LL);
  CHECK_FALSE(ParseDurationMs("0s"));
  CHECK_FALSE(ParseDurationMs("s"));
  CHECK_FALSE(ParseDurationMs("-5s"));
  CHECK_FALSE(ParseDurationMs("5w"));
  CHECK_FALSE(ParseDurationMs("99999999999999999999d"));
}

TEST_CASE("keys: table.row, printable non-whitespace UTF-8, 1-1024 bytes") {
  CHECK(ValidateKey("users.alice") == "");
  CHECK(ValidateKey("t.r.more.dots") == "");
  CHECK(ValidateKey("t.h\xC3\xA9llo") == "");
  CHECK(ValidateKey("nodot") == "invalid key 'nodot': expected <table>.<row>");
  CHECK(ValidateKey("t.") != "");
  CHECK(ValidateKey(".r") != "");
  CHECK(ValidateKey("bad$table.r") != "");
  CHECK(ValidateKey("t.\xff") != "");          // not UTF-8
  CHECK(ValidateKey("t.\xC0\xAF") != "");      // overlong
  CHECK(ValidateKey("t.\xED\xA0\x80") != "");  // surrogate
  CHECK(ValidateKey("t.a\xC2\x85") != "");     // U+0085 NEL
  CHECK(ValidateKey("t.a\xE2\x80\xA8") != "");  // U+2028
  CHECK(ValidateKey("t." + std::string(1022, 'r')) == "");
  CHECK(ValidateKey("t." + std::string(1023, 'r')) != "");
  CHECK(ValidateTableName(std::string(255, 'a')) == "");
  CHECK(ValidateTableName(std::string(256, 'a')) != "");
  CHECK(IsReservedTable("atlas"));
  CHECK(IsReservedTable("atlas_x"));
  CHECK_FALSE(IsReservedTable("users"));
}

TEST_CASE("every command of protocol.md parses") {
  CHECK(std::holds_alternative<KeyDel>(MustParse("KEY DEL a.b").command));
  CHECK(std::holds_alternative<KeyBlobGet>(MustParse("KEY BLOB GET a.b").command));
  CHECK(std::get<KeyBlobSet>(MustParse("KEY BLOB SET a.b 3", "xyz").command).value == "xyz");
  auto scan = std::get<Scan>(MustParse("SCAN users.al LIMIT 10 AFTER users.alice").command);
  CHECK(scan.range.table == "users");
  CHECK(scan.range.row_prefix == "al");
  CHECK(scan.limit == 10u);
  CHECK(scan.after == std::string("users.alice"));
  CHECK(std::get<Count>(MustParse("COUNT users").command).range.row_prefix == "");
  CHECK(std::get<Sample>(MustParse("SAMPLE users 3").command).n == 3);
  CHECK(std::get<PrincipalAssume>(MustParse("PRINCIPAL ASSUME bob").command).name == "bob");
  CHECK(std::holds_alternative<PrincipalWhoami>(MustParse("principal whoami").command));
  auto g = std::get<AclGrant>(MustParse("ACL GRANT users bob perms write").command);
  CHECK(g.perm == Perm::kWrite);
  CHECK(std::holds_alternative<AclRevoke>(MustParse("ACL REVOKE users bob PERMS OWNER").command));
  CHECK(std::get<AclList>(MustParse("ACL LIST users").command).table == "users");
  CHECK(std::holds_alternative<NodeList>(MustParse("NODE LIST").command));
  CHECK(std::get<NodeInfo>(MustParse("NODE INFO 3").command).id == 3);
  CHECK(std::get<NodePing>(MustParse("NODE PING 1").command).id == 1);
  CHECK(std::get<NodeLeave>(MustParse("node leave 4").command).id == 4);
  CHECK(std::get<QuorumInfo>(MustParse("QUORUM INFO atlas.nodes").command).table == "atlas");
  auto set = std::get<QuorumSet>(MustParse("quorum set 1 0").command);
  CHECK((set.fn == 1 && set.fz == 0));
  CHECK(MustFail("QUORUM SET -1 0") == "invalid Fn/Fz '-1 0': numbers of failures, 0 or more");
  CHECK(MustFail("QUORUM SET 1") == "usage: QUORUM INFO <table> | QUORUM SET <Fn> <Fz>");
  CHECK(std::get<TableInfo>(MustParse("TABLE INFO users").command).table == "users");
  CHECK(std::get<TableMove>(MustParse("TABLE MOVE users eu").command).target == "eu");
  CHECK_FALSE(std::get<TablePin>(MustParse("TABLE PIN users none").command).region);
  CHECK(std::get<TableGroup>(MustParse("TABLE GROUP users g1").command).group == std::string("g1"));
  using Mode = TableReads::Mode;
  CHECK(std::get<TableReads>(MustParse("TABLE READS users local").command).mode == Mode::kLocal);
  CHECK(std::get<TableReads>(MustParse("table reads users OWNER").command).mode == Mode::kOwner);
  CHECK(std::get<TableReads>(MustParse("TABLE READS users Auto").command).mode == Mode::kAuto);
  CHECK(MustFail("TABLE READS users ANY") == "invalid read mode 'ANY': LOCAL, OWNER or AUTO");
  CHECK_FALSE(std::get<TableList>(MustParse("TABLE LIST").command).limit);
  auto list = std::get<TableList>(MustParse("table list AFTER users LIMIT 10").command);
  CHECK(list.limit == 10u);
  CHECK(list.after == std::string("users"));
  CHECK(MustFail("TABLE LIST LIMIT").starts_with("usage: TABLE INFO <table>"));
  CHECK(MustFail("TABLE LIST LIMIT x") == "invalid LIMIT 'x'");
  CHECK(MustFail("TABLE LIST AFTER a b") .starts_with("usage: "));
  auto first = std::get<TableDump>(MustParse("TABLE DUMP users").command);
  CHECK(first.table == "users");
  CHECK_FALSE(first.at);
  auto next = std::get<TableDump>(MustParse("table dump users LIMIT 5 AT 9 AFTER users.k").command);
  CHECK(next.at == 9u);
  CHECK(next.after == std::string("users.k"));
  CHECK(next.limit == 5u);
  CHECK(MustFail("TABLE DUMP users AFTER users.k").starts_with("AFTER needs AT <rev>; usage: "));
  CHECK(MustFail("TABLE DUMP users AT") == "usage: TABLE DUMP <table> [AT <rev> [AFTER <key>]] "
                                            "[LIMIT <n>]");
  CHECK(MustFail("TABLE DUMP users AT x") == "invalid revision 'x'");
  CHECK(MustFail("TABLE DUMP users LIMIT 0") == "invalid LIMIT '0'");
  CHECK(MustFail("TABLE DUMP users AT 1 AT 2").starts_with("usage: TABLE DUMP"));
  CHECK(MustFail("TABLE DUMP users AT 1 AFTER bad").starts_with("invalid key 'bad'"));
}

TEST_CASE("errors name the problem the way protocol.md promises") {
  CHECK(MustFail("FROB x") == "unknown command 'FROB'");
  CHECK(MustFail("KEY GET") == "usage: KEY GET <key>");
  CHECK(MustFail("KEY GET a.b extra") == "usage: KEY GET <key>");
  CHECK(MustFail("KEY GET nodot") == "invalid key 'nodot': expected <table>.<row>");
  CHECK(MustFail("KEY BLOB SET a.b 3").starts_with("usage: KEY BLOB SET <key> "));  // no payload
  CHECK(MustFail("ACL GRANT t bob PERMS ROOT").find("invalid permission 'ROOT'") == 0);
  CHECK(MustFail("SCAN t LIMIT x").find("invalid LIMIT") == 0);
  CHECK(MustFail("NODE INFO x").find("invalid node id") == 0);
  CHECK(MustFail("PRINCIPAL ASSUME").find("usage: PRINCIPAL ASSUME") == 0);
}

TEST_CASE("every row of the command table is its alternative's: an example spelled with its "
          "name parses to it") {
  // One example per command: a new row without one fails here.
  const std::map<std::string_view, std::string> examples = {
      {"KEY GET", "KEY GET a.b"},
      {"KEY PUT", "KEY PUT a.b v"},
      {"KEY DEL", "KEY DEL a.b"},
      {"KEY BLOB SET", "KEY BLOB SET a.b 1"},
      {"KEY BLOB GET", "KEY BLOB GET a.b"},
      {"KEY INFO", "KEY INFO a.b"},
      {"SCAN", "SCAN a"},
      {"COUNT", "COUNT a"},
      {"SAMPLE", "SAMPLE a 2"},
      {"PRINCIPAL ASSUME", "PRINCIPAL ASSUME bob"},
      {"PRINCIPAL WHOAMI", "PRINCIPAL WHOAMI"},
      {"ACL GRANT", "ACL GRANT a bob PERMS READ"},
      {"ACL REVOKE", "ACL REVOKE a bob PERMS READ"},
      {"ACL LIST", "ACL LIST a"},
      {"NODE LIST", "NODE LIST"},
      {"NODE INFO", "NODE INFO 1"},
      {"NODE PING", "NODE PING 1"},
      {"NODE LEAVE", "NODE LEAVE 1"},
      {"QUORUM INFO", "QUORUM INFO a"},
      {"QUORUM SET", "QUORUM SET 1 0"},
      {"TABLE INFO", "TABLE INFO a"},
      {"TABLE MOVE", "TABLE MOVE a eu"},
      {"TABLE PIN", "TABLE PIN a NONE"},
      {"TABLE GROUP", "TABLE GROUP a g"},
      {"TABLE READS", "TABLE READS a LOCAL"},
      {"TABLE LIST", "TABLE LIST"},
      {"TABLE DUMP", "TABLE DUMP a"},
      {"WATCH", "WATCH a"},
      {"UNWATCH", "UNWATCH w"},
      {"TOKEN CREATE", "TOKEN CREATE"},
      {"TOKEN LIST", "TOKEN LIST"},
      {"TOKEN REVOKE", "TOKEN REVOKE 0123456789ab"},
      {"NODE STATUS", "NODE STATUS"},
      {"CA STATUS", "CA STATUS"},
      {"CA ROTATE", "CA ROTATE"},
      {"KEY SET", "KEY SET a.b v"},
      {"TXN", "TXN 1"},  // its one command is the frame's body (below)
  };
  auto parses_to = [&](std::string_view name, size_t index) {
    INFO(name);
    auto it = examples.find(name);
    REQUIRE(it != examples.end());
    CHECK(it->second.starts_with(name));
    Frame frame{it->second, std::string("x")};
    if (name == "TXN") frame = Frame{"TXN 1", std::nullopt, {Frame{"KEY GET a.b", std::nullopt}}};
    auto parsed = ParseCommand(std::move(frame));
    REQUIRE(std::holds_alternative<Request>(parsed));
    Request r = std::get<Request>(std::move(parsed));
    CHECK(r.command.index() == index);
    CHECK(&InfoOf(r.command) == &kCommands[index]);
  };
  for (const CommandInfo& c : kCommands) {
    parses_to(c.name, c.index);
    CHECK(c.syntax.starts_with(c.name));
    CHECK_FALSE(c.help.empty());
  }
  for (const CommandAlias& a : kCommandAliases) parses_to(a.name, a.index);
  static_assert(InfoOf<KeyGet>().name == "KEY GET");
  static_assert(InfoOf<TokenRevoke>().name == "TOKEN REVOKE");
  static_assert(InfoOf<TableMove>().kind == CommandKind::kAdmin);
}

TEST_CASE("usage errors quote the command table: a command's syntax, or its family's") {
  CHECK(MustFail("KEY DEL") == StrCat("usage: ", InfoOf<KeyDel>().syntax));
  CHECK(MustFail("SAMPLE a") == StrCat("usage: ", InfoOf<Sample>().syntax));
  CHECK(MustFail("UNWATCH") == "usage: UNWATCH <id>");
  CHECK(MustFail("KEY PUT a.b") ==
        "usage: KEY PUT <key> [PRINCIPAL <name>] [WORM TTL <duration> | WORM EXPIRES <rfc3339>] "
        "[EXPIRE <duration> | EXPIRE AT <rfc3339>] [IF REV <r>] <value>");
  CHECK(MustFail("NODE") ==
        "usage: NODE LIST | NODE INFO <id> | NODE PING <id> | NODE LEAVE <id> | NODE STATUS");
  CHECK(MustFail("PRINCIPAL") == "usage: PRINCIPAL ASSUME <name> | PRINCIPAL WHOAMI");
  CHECK(MustFail("CA ROTATE NOW") == "usage: CA STATUS | CA ROTATE");
  CHECK(MustFail("KEY BLOB") ==
        "usage: KEY BLOB SET <key> [IF REV <r>] [WORM TTL <duration> | WORM EXPIRES <rfc3339>] "
        "[EXPIRE <duration> | EXPIRE AT <rfc3339>] <length> | KEY BLOB GET <key>");
  CHECK(MustFail("TOKEN") ==
        "usage: TOKEN CREATE [TTL <duration>|TTL NEVER] [USES <n>] | TOKEN LIST | "
        "TOKEN REVOKE <id>");
  CHECK(MustFail("TABLE x") ==
        "usage: TABLE INFO <table> | TABLE MOVE <table> <region|node-id> | TABLE PIN <table> "
        "<region|NONE> | TABLE GROUP <table> <group|NONE> | TABLE READS <table> <LOCAL|OWNER|AUTO> | "
        "TABLE LIST [LIMIT <n>] [AFTER <table>] | TABLE DUMP <table> [AT <rev> [AFTER <key>]] "
        "[LIMIT <n>]");
  // Family summaries that are not a list of syntaxes.
  CHECK(MustFail("KEY") == "usage: KEY GET|PUT|SET|DEL|INFO|BLOB SET|BLOB GET <key> ...");
  CHECK(MustFail("ACL") ==
        "usage: ACL GRANT|REVOKE <table> <principal> PERMS <READ|WRITE|OWNER> | ACL LIST <table>");
}

TEST_CASE("every frame of a tagged reply carries the tag") {
  Reply r(std::string("q1"));
  r.Line("KEYS:1").Line("a.b").Ok();
  CHECK(r.Take() == "[ID:q1] KEYS:1\r\n[ID:q1] a.b\r\n[ID:q1] OK\r\n");
  Reply b(std::string("z"));
  b.Blob("a\r\nb").Ok();
  CHECK(b.Take() == "[ID:z] BLOB 4\r\na\r\nb[ID:z] OK\r\n");
}

TEST_CASE("error messages cannot inject frames") {
  Reply r;
  r.Warn("bad\r\nOK\x01\x7f\xC2\x85x\xE2\x80\xA8y\xE2\x80\xA9z\xff");
  std::string out = r.Take();
  CHECK(out == "ERROR WARN bad  OK   x y z \r\n");
  CHECK(SanitizeMessage("h\xC3\xA9llo") == "h\xC3\xA9llo");
}
