// The client library's pure half (socketproto/client.h): frames decoded from any split of the
// byte stream, replies as status codes, row and dump descriptions, and the commands it builds
// parsed back by the server's own parser.
#include <catch2/catch.hpp>

#include "socketproto/client.h"
#include "socketproto/command.h"
#include "socketproto/frame_parser.h"

using namespace atlas::client;
namespace sp = atlas::socketproto;

namespace {

std::vector<ReplyFrame> Frames(std::string_view wire) {
  std::vector<ReplyFrame> out;
  while (!wire.empty()) {
    ReplyFrame f;
    absl::StatusOr<size_t> n = DecodeFrame(wire, &f);
    REQUIRE(n.ok());
    REQUIRE(*n > 0);
    wire.remove_prefix(*n);
    out.push_back(std::move(f));
  }
  return out;
}

}  // namespace

TEST_CASE("client: frames decode from every split of the stream, payloads and tags included") {
  const std::string wire =
      "[ID:7] BLOB 5\r\na\r\nbc[ID:7] OK\r\nWATCHING 3\r\n[ID:w] EVENT 4 PUT t.k 2\r\nxy"
      "EVENT 5 DEL t.k\nOK\r\n";
  const std::vector<ReplyFrame> all = Frames(wire);
  REQUIRE(all.size() == 6);
  CHECK((all[0].id == std::string("7") && all[0].text == "BLOB 5"));
  CHECK(all[0].blob == std::string("a\r\nbc"));
  CHECK((all[1].IsFinal() && all[2].text == "WATCHING 3" && !all[2].id));
  CHECK(all[3].blob == std::string("xy"));
  CHECK((all[4].text == "EVENT 5 DEL t.k" && !all[4].blob));
  // Any prefix short of a whole frame decodes to nothing (0 bytes), never to a wrong frame.
  for (size_t cut = 0; cut < 22; ++cut) {
    ReplyFrame f;
    absl::StatusOr<size_t> n = DecodeFrame(std::string_view(wire).substr(0, cut), &f);
    REQUIRE(n.ok());
    CHECK(*n == (cut >= 20 ? 20u : 0u));  // the first frame: 15 bytes of line, 5 of payload
  }
  ReplyFrame f;
  CHECK(absl::IsDataLoss(DecodeFrame("BLOB x\r\n", &f).status()));
  // A length no buffer could hold never wraps the frame's size around.
  CHECK(absl::IsDataLoss(DecodeFrame("BLOB 18446744073709551615\r\nxy", &f).status()));
  CHECK(absl::IsDataLoss(DecodeFrame("[ID:1] BLOB 99999999999999999999\r\n", &f).status()));
}

TEST_CASE("client: a reply's status says what a program can do about it") {
  auto status = [](std::string last) { return StatusOf({ReplyFrame{{}, std::move(last), {}}}); };
  CHECK(status("OK").ok());
  CHECK(absl::IsFailedPrecondition(status("ERROR WARN condition failed: 't.a' is at revision 3")));
  CHECK(absl::IsFailedPrecondition(
      status("ERROR WARN transaction aborted: condition failed: 't.a' is at revision 3")));
  CHECK(absl::IsPermissionDenied(status("ERROR WARN permission denied: READ on t")));
  CHECK(absl::IsPermissionDenied(status("ERROR WARN row 't.a' is WORM-protected until 2030")));
  CHECK(absl::IsUnavailable(status("ERROR WARN timeout: write to t (outcome unknown)")));
  CHECK(absl::IsUnavailable(status("ERROR WARN quorum unavailable: 1 of 3 nodes live")));
  CHECK(absl::IsUnavailable(status("ERROR WARN overloaded: proposal queue full")));
  CHECK(absl::IsInvalidArgument(status("ERROR WARN unknown command 'FROB'")));
  CHECK(absl::IsAborted(status("ERROR FATAL line too large (limit 1048576 bytes)")));
  CHECK(status("ERROR WARN unknown command 'FROB'").message() ==
        "ERROR WARN unknown command 'FROB'");
}

TEST_CASE("client: rows and dump pages as KEY INFO and TABLE DUMP describe them") {
  std::optional<RowInfo> r =
      ParseRowInfo("ROW key=t.a rev=12 size=3 worm_until=2030-01-01T00:00:00.250Z expires=-");
  REQUIRE(r);
  CHECK((r->key == "t.a" && r->revision == 12 && r->size == 3 && r->expires_ms == 0));
  CHECK(r->worm_until_ms == 1'893'456'000'250);
  CHECK_FALSE(ParseRowInfo("NOT_FOUND"));
  CHECK_FALSE(ParseRowInfo("ROW key=t.a rev=x size=3 worm_until=- expires=-"));
  absl::StatusOr<DumpPage> page = ParseDumpPage(Frames(
      "DUMP table=t rev=9 rows=1 more=1\r\nROW key=t.a rev=2 size=1 worm_until=- expires=-\r\n"
      "BLOB 1\r\nzOK\r\n"));
  REQUIRE(page.ok());
  CHECK((page->revision == 9 && page->more && page->rows.size() == 1));
  CHECK((page->rows[0].first.key == "t.a" && page->rows[0].second == "z"));
  CHECK(absl::IsDataLoss(ParseDumpPage(Frames("DUMP table=t rev=9 rows=2 more=0\r\nOK\r\n"))
                             .status()));
  CHECK(absl::IsInvalidArgument(ParseDumpPage(Frames("ERROR WARN no dump\r\n")).status()));
}

TEST_CASE("client: the commands it builds are what the server's parser reads") {
  Txn txn;
  txn.Get("t.a").Info("t.a").Put("t.b", std::string("x\r\n\0", 4),
                                  {.if_rev = 3, .worm_until_ms = 1'893'456'000'250,
                                   .expire_at_ms = 1'924'992'000'000});
  txn.Del("t.c", 7);
  const std::string wire = "TXN " + std::to_string(txn.size()) + "\r\n" + txn.body();
  sp::FrameParser parser{sp::Limits{}};
  parser.set_handshake_done();
  std::string_view in = wire;
  sp::Frame frame;
  std::string err;
  REQUIRE(parser.Next(&in, &frame, &err) == sp::ParseStatus::kFrame);
  auto parsed = sp::ParseCommand(std::move(frame));
  REQUIRE(std::holds_alternative<sp::Request>(parsed));
  const auto& ops = std::get<sp::Txn>(std::get<sp::Request>(parsed).command).ops;
  REQUIRE(ops.size() == 4);
  const auto& put = std::get<sp::KeyBlobSet>(ops[2]);
  CHECK((put.value == std::string("x\r\n\0", 4) && put.if_rev == 3u));
  CHECK((put.worm && put.worm->expires_ms == 1'893'456'000'250));
  CHECK((put.expire && put.expire->at_ms == 1'924'992'000'000));
  CHECK(std::get<sp::KeyDel>(ops[3]).if_rev == 7u);
  std::optional<WatchEvent> e = ParseWatchEvent(Frames("EVENT 4 PUT t.k 2\r\nxy")[0]);
  REQUIRE(e);
  CHECK((e->revision == 4 && !e->del && e->key == "t.k" && e->value == "xy"));
  CHECK(ParseWatchEvent(Frames("EVENT 5 DEL t.k\r\n")[0])->del);
  CHECK_FALSE(ParseWatchEvent(Frames("WATCHING 3\r\n")[0]));
}
