// Every command of shared/spec/protocol.md §5 and its error paths, against a real atlasd.
#include <catch2/catch.hpp>

#include <algorithm>
#include <chrono>
#include <thread>

#include "tests/integration/daemon.h"

using atlas::client::Connection;
using atlas::testing::Daemon;
using atlas::testing::Texts;

namespace {

std::string Call(Connection& c, const std::string& line) {
  auto r = c.Call(line);
  REQUIRE(r.ok());
  return Texts(*r);
}

struct Fixture {
  Fixture() { REQUIRE(daemon.Start()); conn = daemon.Connect(); REQUIRE(conn); }
  Daemon daemon;
  std::unique_ptr<Connection> conn;
};

}  // namespace

TEST_CASE_METHOD(Fixture, "KEY PUT/SET/GET/DEL round-trip with exact value bytes") {
  CHECK(Call(*conn, "KEY PUT users.alice hello   world ") == "OK");
  CHECK(Call(*conn, "KEY GET users.alice") == "VALUE:hello   world \nOK");
  CHECK(Call(*conn, "key set users.alice v2") == "OK");
  CHECK(Call(*conn, "KEY GET users.alice") == "VALUE:v2\nOK");
  CHECK(Call(*conn, "KEY DEL users.alice") == "OK");
  CHECK(Call(*conn, "KEY GET users.alice") == "NOT_FOUND\nOK");
  CHECK(Call(*conn, "KEY DEL users.nobody") == "OK");
  CHECK(Call(*conn, "KEY PUT Users.Bob x") == "OK");  // case-preserving keys
  CHECK(Call(*conn, "KEY GET users.bob") == "NOT_FOUND\nOK");
}

TEST_CASE_METHOD(Fixture, "blobs: any value can be read as a blob - binary values need BLOB GET") {
  auto r = conn->Call("KEY BLOB SET files.a 6", std::string_view("a\r\nb\0c", 6));
  REQUIRE(r.ok());
  CHECK(Texts(*r) == "OK");
  CHECK(Call(*conn, "KEY GET files.a") == "ERROR WARN value is binary; use KEY BLOB GET");
  auto b = conn->Call("KEY BLOB GET files.a");
  REQUIRE(b.ok());
  REQUIRE(b->size() == 2);
  CHECK((*b)[0].text == "BLOB 6");
  CHECK((*b)[0].blob == std::string("a\r\nb\0c", 6));
  CHECK(Call(*conn, "KEY BLOB GET files.none") == "EMPTY\nOK");
  CHECK(Call(*conn, "KEY PUT files.t text") == "OK");
  auto t = conn->Call("KEY BLOB GET files.t");
  REQUIRE(t.ok());
  CHECK((*t)[0].blob == std::string("text"));
  auto z = conn->Call("KEY BLOB SET files.z 0", std::string_view());
  REQUIRE(z.ok());
  CHECK(Texts(*z) == "OK");
  CHECK(Call(*conn, "KEY BLOB GET files.z") == "BLOB 0\nOK");
}

TEST_CASE_METHOD(Fixture, "SCAN, COUNT and SAMPLE over a table and a row prefix") {
  for (const char* k : {"users.alice", "users.albert", "users.bob", "other.x", "usersx.y"}) {
    REQUIRE(Call(*conn, std::string("KEY PUT ") + k + " v") == "OK");
  }
  CHECK(Call(*conn, "SCAN users") == "KEYS:3\nusers.albert\nusers.alice\nusers.bob\nOK");
  CHECK(Call(*conn, "SCAN users.al") == "KEYS:2\nusers.albert\nusers.alice\nOK");
  CHECK(Call(*conn, "SCAN users LIMIT 2") == "KEYS:2\nusers.albert\nusers.alice\nOK");
  CHECK(Call(*conn, "SCAN users LIMIT 2 AFTER users.alice") == "KEYS:1\nusers.bob\nOK");
  CHECK(Call(*conn, "SCAN nothing") == "KEYS:0\nOK");
  CHECK(Call(*conn, "COUNT users") == "COUNT:3\nOK");
  CHECK(Call(*conn, "COUNT users.b") == "COUNT:1\nOK");
  auto s = Call(*conn, "SAMPLE users 2");
  CHECK(s.rfind("KEYS:2\nusers.", 0) == 0);
  CHECK(Call(*conn, "SAMPLE users 10").rfind("KEYS:3\n", 0) == 0);
  CHECK(Call(*conn, "SAMPLE users 0") == "KEYS:0\nOK");
}

TEST_CASE_METHOD(Fixture, "PRINCIPAL and ACL: grants enforced for reads and writes") {
  CHECK(Call(*conn, "PRINCIPAL WHOAMI") == "PRINCIPAL (none)\nOK");
  CHECK(Call(*conn, "KEY PUT docs.a v") == "OK");
  CHECK(Call(*conn, "PRINCIPAL ASSUME alice") == "OK");
  CHECK(Call(*conn, "PRINCIPAL WHOAMI") == "PRINCIPAL alice\nOK");
  CHECK(Call(*conn, "ACL GRANT docs alice PERMS OWNER") == "OK");
  CHECK(Call(*conn, "ACL GRANT docs bob PERMS write") == "OK");
  CHECK(Call(*conn, "ACL GRANT docs carol PERMS READ") == "OK");
  CHECK(Call(*conn, "ACL LIST docs") ==
        "ACL alice OWNER\nACL bob WRITE\nACL carol READ\nOK");

  auto other = daemon.Connect();
  REQUIRE(other);
  CHECK(Call(*other, "KEY GET docs.a") == "ERROR WARN permission denied: READ on docs");
  CHECK(Call(*other, "KEY PUT docs.a x") == "ERROR WARN permission denied: WRITE on docs");
  CHECK(Call(*other, "PRINCIPAL ASSUME bob") == "OK");
  CHECK(Call(*other, "KEY PUT docs.b x") == "OK");
  CHECK(Call(*other, "KEY GET docs.b") ==
        "ERROR WARN permission denied for principal 'bob': READ on docs");
  CHECK(Call(*other, "SCAN docs") ==
        "ERROR WARN permission denied for principal 'bob': READ on docs");
  CHECK(Call(*other, "ACL GRANT docs bob PERMS OWNER") ==
        "ERROR WARN permission denied for principal 'bob': ACL GRANT on docs");
  CHECK(Call(*other, "PRINCIPAL ASSUME carol") == "OK");
  CHECK(Call(*other, "KEY GET docs.b") == "VALUE:x\nOK");
  CHECK(Call(*other, "KEY DEL docs.b") ==
        "ERROR WARN permission denied for principal 'carol': WRITE on docs");
  // KEY PUT ... PRINCIPAL acts as that principal for one command.
  CHECK(Call(*other, "KEY PUT docs.c PRINCIPAL alice v") == "OK");
  CHECK(Call(*conn, "ACL REVOKE docs carol PERMS READ") == "OK");
  CHECK(Call(*other, "KEY GET docs.b") ==
        "ERROR WARN permission denied for principal 'carol': READ on docs");
  // Other tables stay open.
  CHECK(Call(*other, "KEY PUT open.x 1") == "OK");
}

TEST_CASE_METHOD(Fixture, "WORM rows refuse changes until retention ends") {
  CHECK(Call(*conn, "KEY PUT audit.e1 WORM TTL 1h entry") == "OK");
  std::string put = Call(*conn, "KEY PUT audit.e1 changed");
  CHECK(put.rfind("ERROR WARN row 'audit.e1' is WORM-protected until 20", 0) == 0);
  CHECK(Call(*conn, "KEY DEL audit.e1").rfind("ERROR WARN row 'audit.e1' is WORM-protected", 0) == 0);
  auto blob = conn->Call("KEY BLOB SET audit.e1 1", std::string_view("x"));
  REQUIRE(blob.ok());
  CHECK(Texts(*blob).rfind("ERROR WARN row 'audit.e1' is WORM-protected", 0) == 0);
  CHECK(Call(*conn, "KEY GET audit.e1") == "VALUE:entry\nOK");
  CHECK(Call(*conn, "KEY PUT audit.e2 WORM EXPIRES 2000-01-01T00:00:00Z old") == "OK");
  CHECK(Call(*conn, "KEY PUT audit.e2 new") == "OK");
}

TEST_CASE_METHOD(Fixture, "KEY INFO and IF REV: row revisions and conditional writes over the "
                          "socket (shared/spec/transactions.md §1-2)") {
  CHECK(Call(*conn, "KEY INFO acct.a") == "NOT_FOUND\nOK");
  CHECK(Call(*conn, "KEY PUT acct.a IF REV 0 10") == "OK");
  CHECK(Call(*conn, "KEY INFO acct.a") ==
        "ROW key=acct.a rev=1 size=2 worm_until=- expires=-\nOK");
  CHECK(Call(*conn, "[ID:c1] KEY PUT acct.a IF REV 0 11") ==
        "[ID:c1] ERROR WARN condition failed: 'acct.a' is at revision 1");
  CHECK(Call(*conn, "KEY SET acct.a IF REV 1 11") == "OK");
  CHECK(Call(*conn, "KEY GET acct.a") == "VALUE:11\nOK");
  CHECK(Call(*conn, "KEY DEL acct.a IF REV 1") ==
        "ERROR WARN condition failed: 'acct.a' is at revision 2");
  auto blob = conn->Call("KEY BLOB SET acct.b IF REV 0 WORM TTL 1h 3", std::string_view("x\0y", 3));
  REQUIRE(blob.ok());
  CHECK(Texts(*blob) == "OK");
  // A refused blob's payload is consumed all the same: the stream stays framed.
  auto again = conn->Call("KEY BLOB SET acct.b IF REV 0 3", std::string_view("zzz", 3));
  REQUIRE(again.ok());
  CHECK(Texts(*again) == "ERROR WARN condition failed: 'acct.b' is at revision 3");
  std::string info = Call(*conn, "KEY INFO acct.b");
  CHECK(info.starts_with("ROW key=acct.b rev=3 size=3 worm_until=20"));
  CHECK(info.ends_with(" expires=-\nOK"));
  CHECK(Call(*conn, "KEY DEL acct.a IF REV 2") == "OK");
  CHECK(Call(*conn, "KEY INFO acct.a") == "NOT_FOUND\nOK");
  CHECK(Call(*conn, "KEY PUT acct.a IF REV 0 again") == "OK");
  CHECK(Call(*conn, "KEY INFO acct.a").starts_with("ROW key=acct.a rev=5 "));
  CHECK(Call(*conn, "KEY PUT acct.a IF REV x v") ==
        "ERROR WARN invalid revision 'x': expected a number >= 0");
  CHECK(Call(*conn, "KEY INFO acct").starts_with("ERROR WARN invalid key 'acct'"));
  // KEY INFO needs READ, like KEY GET.
  CHECK(Call(*conn, "PRINCIPAL ASSUME alice") == "OK");
  CHECK(Call(*conn, "ACL GRANT acct alice PERMS OWNER") == "OK");
  auto other = daemon.Connect();
  REQUIRE(other);
  CHECK(Call(*other, "PRINCIPAL ASSUME bob") == "OK");
  CHECK(Call(*other, "KEY INFO acct.a") ==
        "ERROR WARN permission denied for principal 'bob': READ on acct");
}

TEST_CASE_METHOD(Fixture, "TXN: one OK after the commands' data frames, all or none, tagged or "
                          "not (shared/spec/transactions.md §3)") {
  auto txn = [&](const std::string& head, const std::string& body) {
    auto r = conn->Call(head, body);
    REQUIRE(r.ok());
    return Texts(*r);
  };
  CHECK(Call(*conn, "KEY PUT bank.a 100") == "OK");
  CHECK(txn("[ID:t1] TXN 5", "KEY GET bank.a\r\nKEY SET bank.a IF REV 1 70\r\n"
                             "KEY PUT bank.b 30\r\nKEY INFO bank.b\r\nKEY BLOB GET bank.b\r\n") ==
        "[ID:t1] VALUE:100\n[ID:t1] ROW key=bank.b rev=3 size=2 worm_until=- expires=-\n"
        "[ID:t1] BLOB 2\n[ID:t1] OK");
  CHECK(txn("TXN 2", "KEY SET bank.a IF REV 2 60\r\nKEY SET bank.b IF REV 2 40\r\n") ==
        "ERROR WARN transaction aborted: condition failed: 'bank.b' is at revision 3");
  CHECK(Call(*conn, "KEY GET bank.a") == "VALUE:70\nOK");
  // A blob inside: its payload follows its line, as outside.
  CHECK(txn("TXN 2", "KEY BLOB SET bank.c IF REV 0 3\r\nx\ryKEY GET bank.missing\r\n") ==
        "NOT_FOUND\nOK");
  CHECK(txn("TXN 2", "KEY GET bank.a\r\nSCAN bank\r\n").starts_with(
        "ERROR WARN usage: TXN <n>, then n lines of "));
  CHECK(txn("TXN 2", "KEY PUT bank.x 1\r\nKEY PUT vault.x 1\r\n") ==
        "ERROR WARN transaction spans 'bank' and 'vault', which are not in one group");
  CHECK(Call(*conn, "TXN 0") == "ERROR WARN usage: TXN <n>, then n lines of KEY GET|INFO|PUT|"
                                "SET|DEL|BLOB SET|BLOB GET");
  // The connection carries on after each of them.
  CHECK(Call(*conn, "KEY INFO bank.x") == "NOT_FOUND\nOK");
  // A count that cannot be read ends the connection: what follows cannot be framed.
  CHECK(Call(*conn, "TXN many") == "ERROR FATAL invalid transaction length 'many'");
}

TEST_CASE_METHOD(Fixture, "TABLE DUMP: pages of rows with revision - retention - expiry and "
                          "value - all read from one snapshot at one revision") {
  CHECK(Call(*conn, "KEY PUT inv.a 1") == "OK");
  CHECK(Call(*conn, "KEY PUT inv.b WORM EXPIRES 2100-01-01T00:00:00.250Z two") == "OK");
  auto blob = conn->Call("KEY BLOB SET inv.c EXPIRE AT 2100-01-02T00:00:00Z 3",
                         std::string_view("x\0y", 3));
  REQUIRE(blob.ok());
  CHECK(Call(*conn, "KEY PUT inv.d EXPIRE 1s gone") == "OK");
  CHECK(Call(*conn, "KEY PUT inv.e 5") == "OK");
  CHECK(Call(*conn, "KEY PUT other.x 0") == "OK");
  std::this_thread::sleep_for(std::chrono::milliseconds(1200));  // inv.d has expired
  auto first = conn->Call("TABLE DUMP inv LIMIT 2");
  REQUIRE(first.ok());
  REQUIRE(first->size() == 6);
  // The revision: 5 writes, and the removal of inv.d once the owner's expirer got to it.
  const std::string head = (*first)[0].text;
  const size_t at = head.find("rev=") + 4;
  const std::string rev = head.substr(at, head.find(' ', at) - at);
  CHECK((head == "DUMP table=inv rev=" + rev + " rows=2 more=1" && (rev == "5" || rev == "6")));
  CHECK((*first)[1].text == "ROW key=inv.a rev=1 size=1 worm_until=- expires=-");
  CHECK((*first)[2].blob == std::string("1"));
  CHECK((*first)[3].text ==
        "ROW key=inv.b rev=2 size=3 worm_until=2100-01-01T00:00:00.250Z expires=-");
  // Changes after the first page do not show in the later ones: the dump is the table at
  // that revision.
  CHECK(Call(*conn, "KEY DEL inv.c") == "OK");
  CHECK(Call(*conn, "KEY PUT inv.e changed") == "OK");
  CHECK(Call(*conn, "KEY PUT inv.f new") == "OK");
  CHECK(Call(*conn, "KEY GET inv.e") == "VALUE:changed\nOK");
  auto rest = conn->Call("TABLE DUMP inv AT " + rev + " AFTER inv.b LIMIT 10");
  REQUIRE(rest.ok());
  REQUIRE(rest->size() == 6);
  CHECK((*rest)[0].text == "DUMP table=inv rev=" + rev + " rows=2 more=0");
  CHECK((*rest)[1].text ==
        "ROW key=inv.c rev=3 size=3 worm_until=- expires=2100-01-02T00:00:00.000Z");
  CHECK((*rest)[2].blob == std::string("x\0y", 3));
  CHECK((*rest)[3].text == "ROW key=inv.e rev=5 size=1 worm_until=- expires=-");  // not inv.d
  CHECK((*rest)[4].blob == std::string("5"));
  // The last page let the snapshot go; the next dump starts from the table as it is now.
  CHECK(Call(*conn, "TABLE DUMP inv AT " + rev + " AFTER inv.b") ==
        "ERROR WARN no dump of 'inv' at revision " + rev +
            " on this connection: begin again with TABLE DUMP inv");
  const std::string fresh = Call(*conn, "TABLE DUMP inv LIMIT 1");
  CHECK(fresh.starts_with("DUMP table=inv rev="));
  CHECK_FALSE(fresh.starts_with("DUMP table=inv rev=" + rev + " "));
  // A dump's snapshot is its connection's.
  auto other = daemon.Connect();
  REQUIRE(other);
  CHECK(Call(*other, "TABLE DUMP inv AT 8 AFTER inv.a").starts_with("ERROR WARN no dump of 'inv'"));
  CHECK(Call(*conn, "TABLE DUMP empty") == "DUMP table=empty rev=0 rows=0 more=0\nOK");
  CHECK(Call(*conn, "TABLE DUMP inv AFTER inv.a") ==
        "ERROR WARN AFTER needs AT <rev>; usage: TABLE DUMP <table> [AT <rev> [AFTER <key>]] "
        "[LIMIT <n>]");
  CHECK(Call(*conn, "TABLE DUMP inv AT 8 AFTER other.x") ==
        "ERROR WARN AFTER names a key of another table than 'inv'");
  // It needs READ, like SCAN.
  CHECK(Call(*conn, "PRINCIPAL ASSUME alice") == "OK");
  CHECK(Call(*conn, "ACL GRANT inv alice PERMS OWNER") == "OK");
  CHECK(Call(*other, "PRINCIPAL ASSUME bob") == "OK");
  CHECK(Call(*other, "TABLE DUMP inv") ==
        "ERROR WARN permission denied for principal 'bob': READ on inv");
}

TEST_CASE_METHOD(Fixture, "NODE, QUORUM and TABLE answer for the one-node cluster") {
  // The harness lets the daemon pick its peer port.
  std::string list = Call(*conn, "NODE LIST");
  std::string port = list.substr(list.find("port=") + 5, list.find('\n') - list.find("port=") - 5);
  CHECK(list == "NODE id=1 region=local status=ACTIVE rtt_ms=0.000 addr=127.0.0.1 port=" + port +
                    "\nOK");
  std::string info = Call(*conn, "NODE INFO 1");
  CHECK(info.find("owned_tables=") != std::string::npos);
  CHECK(info.find("version=0.1.0") != std::string::npos);
  CHECK(info.find("uptime_s=") != std::string::npos);
  CHECK(Call(*conn, "NODE INFO 9") == "ERROR WARN unknown node 9");
  CHECK(Call(*conn, "NODE PING 1").rfind("PONG node=1 rtt_ms=", 0) == 0);
  CHECK(Call(*conn, "QUORUM INFO atlas.nodes") ==
        "Q1 size=1\nid=1 region=local addr=127.0.0.1 port=" + port +
            "\nQ2 size=1\nid=1 region=local addr=127.0.0.1 port=" + port + "\nOK");
  REQUIRE(Call(*conn, "KEY PUT t1.a 1") == "OK");
  REQUIRE(Call(*conn, "KEY PUT t1.b 1") == "OK");
  CHECK(Call(*conn, "TABLE INFO t1") ==
        "TABLE name=t1 owner=1 region=local ballot=1.1 rows=2 group=- pinned=- reads=owner "
        "holders=-\nOK");
  CHECK(Call(*conn, "TABLE PIN t1 local") == "OK");
  CHECK(Call(*conn, "TABLE GROUP t1 g1") == "OK");
  CHECK(Call(*conn, "TABLE INFO t1") ==
        "TABLE name=t1 owner=1 region=local ballot=1.1 rows=2 group=g1 pinned=local "
        "reads=owner holders=-\nOK");
  CHECK(Call(*conn, "TABLE PIN t1 NONE") == "OK");
  CHECK(Call(*conn, "TABLE GROUP t1 none") == "OK");
  CHECK(Call(*conn, "TABLE INFO t1").find("group=- pinned=-") != std::string::npos);
  CHECK(Call(*conn, "TABLE PIN t1 mars") == "ERROR WARN unknown region 'mars'");
  // One node: nobody else to hold a lease; the mode is kept all the same.
  CHECK(Call(*conn, "TABLE READS t1 LOCAL") == "OK");
  CHECK(Call(*conn, "TABLE INFO t1").find(" reads=local holders=-\n") != std::string::npos);
  CHECK(Call(*conn, "TABLE READS t1 OWNER") == "OK");
  CHECK(Call(*conn, "TABLE MOVE t1 local") == "OK");
  CHECK(Call(*conn, "TABLE MOVE t1 1") == "OK");
  CHECK(Call(*conn, "TABLE MOVE t1 mars") == "ERROR WARN unknown region or node 'mars'");
}

TEST_CASE_METHOD(Fixture, "malformed commands get the WARN frames protocol.md names") {
  CHECK(Call(*conn, "FROB") == "ERROR WARN unknown command 'FROB'");
  CHECK(Call(*conn, "KEY GET") == "ERROR WARN usage: KEY GET <key>");
  CHECK(Call(*conn, "KEY GET a") == "ERROR WARN invalid key 'a': expected <table>.<row>");
  CHECK(Call(*conn, "KEY PUT atlas.nodes x") == "ERROR WARN table 'atlas' is reserved");
  CHECK(Call(*conn, "KEY PUT atlasfoo.x x") == "ERROR WARN table 'atlasfoo' is reserved");
  CHECK(Call(*conn, "KEY GET atlas.nodes") == "NOT_FOUND\nOK");  // readable
  CHECK(Call(*conn, "KEY GET t.\xff\xfe").rfind("ERROR WARN invalid key 't.  ': not valid UTF-8", 0) == 0);
  CHECK(Call(*conn, "SCAN") == "ERROR WARN usage: SCAN <table>[.<row-prefix>] [LIMIT <n>] [AFTER <key>]");
  CHECK(Call(*conn, "ACL GRANT t x PERMS ALL").rfind("ERROR WARN invalid permission", 0) == 0);
  CHECK(Call(*conn, "[ID:q] NODE INFO") == "[ID:q] ERROR WARN usage: NODE LIST | NODE INFO <id> | NODE PING <id> | NODE LEAVE <id> | NODE STATUS");
  CHECK(Call(*conn, "[ID:] KEY GET a.b").rfind("ERROR WARN invalid request id", 0) == 0);
  // The connection is still usable after every one of them.
  CHECK(Call(*conn, "KEY PUT ok.still works") == "OK");
}

TEST_CASE("each command's access rule holds: NODE LEAVE and TOKEN for admin-users alone, ACL "
          "LIST for readers and owners, long grant lists listed whole") {
  Daemon d({"--admin-users", "root"});
  REQUIRE(d.Start());
  auto conn = d.Connect();
  REQUIRE(conn);
  REQUIRE(Call(*conn, "PRINCIPAL ASSUME eve") == "OK");
  CHECK(Call(*conn, "NODE LEAVE 9") ==
        "ERROR WARN permission denied for principal 'eve': NODE LEAVE on atlas.nodes");
  for (const char* token : {"TOKEN CREATE", "TOKEN LIST", "TOKEN REVOKE 0123456789ab"}) {
    CHECK(Call(*conn, token) ==
          "ERROR WARN permission denied for principal 'eve': TOKEN on atlas.nodes");
  }
  // More grants than a reply lists without reserving its room first: reserved, then checked and
  // listed again.
  REQUIRE(Call(*conn, "PRINCIPAL ASSUME alice") == "OK");
  REQUIRE(Call(*conn, "ACL GRANT g alice PERMS OWNER") == "OK");
  for (int i = 0; i < 70; ++i) {
    REQUIRE(Call(*conn, "ACL GRANT g reader" + std::to_string(i) + " PERMS READ") == "OK");
  }
  std::string list = Call(*conn, "ACL LIST g");
  CHECK(std::count(list.begin(), list.end(), '\n') == 71);
  CHECK(list.starts_with("ACL alice OWNER\n"));
  CHECK(list.ends_with("\nOK"));
  REQUIRE(Call(*conn, "PRINCIPAL ASSUME reader7") == "OK");
  CHECK(Call(*conn, "ACL LIST g") == list);
  REQUIRE(Call(*conn, "PRINCIPAL ASSUME eve") == "OK");
  CHECK(Call(*conn, "ACL LIST g") ==
        "ERROR WARN permission denied for principal 'eve': ACL LIST on g");
  // An admin user may do all of it.
  REQUIRE(Call(*conn, "PRINCIPAL ASSUME root") == "OK");
  CHECK(Call(*conn, "ACL LIST g") == list);
  CHECK(Call(*conn, "TOKEN LIST").ends_with("OK"));
}
