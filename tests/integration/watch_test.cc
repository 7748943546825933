// WATCH (docs/watch.md) on real daemons: ordering and completeness on every node across an
// ownership move and a restart, resuming with FROM, compaction, ACLs, many watchers, and a
// watcher that stops reading.
#include <sys/resource.h>

#include <catch2/catch.hpp>

#include <map>
#include <thread>
#include <sstream>
#include <memory>
#include <string>
#include <vector>

#include "tests/integration/daemon.h"
#include "tests/integration/local_cluster.h"
#include "tests/integration/raw_socket.h"

namespace {

using atlas::testing::Daemon;
using atlas::testing::Eventually;
using atlas::testing::LocalCluster;
using atlas::testing::RawSocket;

struct Event {
  uint64_t revision = 0;
  std::string text;  // "PUT <key> <value>" / "DEL <key>"
};

// The EVENT frames tagged `tag` in a byte stream, in order.
std::vector<Event> ParseEvents(const std::string& buf, const std::string& tag) {
  std::vector<Event> out;
  const std::string prefix = "[ID:" + tag + "] EVENT ";
  size_t pos = 0;
  while (pos < buf.size()) {
    size_t eol = buf.find("\r\n", pos);
    if (eol == std::string::npos) break;
    std::string line = buf.substr(pos, eol - pos);
    pos = eol + 2;
    if (!line.starts_with(prefix)) continue;
    std::istringstream words(line.substr(prefix.size()));
    Event e;
    std::string op, key;
    words >> e.revision >> op >> key;
    if (op == "PUT") {
      size_t n = 0;
      words >> n;
      if (pos + n > buf.size()) break;  // incomplete
      e.text = "PUT " + key + " " + buf.substr(pos, n);
      pos += n;
    } else {
      e.text = "DEL " + key;
    }
    out.push_back(std::move(e));
  }
  return out;
}

std::unique_ptr<RawSocket> Watcher(const std::string& socket, const std::string& command) {
  auto s = std::make_unique<RawSocket>(socket);
  REQUIRE(s->ok());
  REQUIRE(s->Send("HELLO 1.0 watcher\r\n" + command + "\r\n"));
  REQUIRE(s->ReadUntil("WATCHING ").find("WATCHING ") != std::string::npos);
  return s;
}

// Every event from revision 1 to expected.size(), in order, as expected.
void CheckEvents(const std::vector<Event>& got, const std::vector<std::string>& expected) {
  REQUIRE(got.size() == expected.size());
  for (size_t i = 0; i < got.size(); ++i) {
    INFO("event " << i);
    CHECK(got[i].revision == i + 1);
    CHECK(got[i].text == expected[i]);
  }
}

}  // namespace

TEST_CASE("WATCH: watchers on every node get every change once in order across a move and a restart") {
  LocalCluster c({"east", "west", "north"});
  for (int i = 0; i < 3; ++i) REQUIRE(c.Add());
  std::vector<std::string> expected;
  auto put = [&](size_t via, const std::string& row, const std::string& value) {
    REQUIRE(c.Call(via, "KEY PUT feed." + row + " " + value) == "OK");
    expected.push_back("PUT feed." + row + " " + value);
  };
  auto del = [&](size_t via, const std::string& row) {
    REQUIRE(c.Call(via, "KEY DEL feed." + row) == "OK");
    expected.push_back("DEL feed." + row);
  };
  put(1, "seed", "0");
  std::vector<std::unique_ptr<RawSocket>> w;
  for (size_t i = 1; i <= 3; ++i) w.push_back(Watcher(c.node(i).socket_path(), "[ID:w] WATCH feed FROM 0"));
  for (int k = 1; k <= 40; ++k) {
    put(1, "k" + std::to_string(k), "v" + std::to_string(k));
    if (k % 10 == 0) del(1, "k" + std::to_string(k - 5));
  }
  REQUIRE(c.Call(3, "TABLE MOVE feed 2") == "OK");  // the owner moves west
  for (int k = 41; k <= 80; ++k) put(3, "k" + std::to_string(k), "w" + std::to_string(k));
  del(2, "seed");
  // Node 3 restarts: its watcher loses the connection and resumes FROM what it saw last.
  REQUIRE(w[2]->ReadUntil("] EVENT " + std::to_string(expected.size()) + " ").find(
              "] EVENT " + std::to_string(expected.size()) + " ") != std::string::npos);
  std::vector<Event> before_restart = ParseEvents(w[2]->buffer(), "w");
  REQUIRE(c.node(3).Stop() == 0);
  CHECK(w[2]->WaitClosed());
  for (int k = 81; k <= 88; ++k) put(2, "k" + std::to_string(k), "x" + std::to_string(k));
  REQUIRE(c.node(3).Start());
  const uint64_t last = before_restart.back().revision;
  auto resumed = Watcher(c.node(3).socket_path(), "[ID:w] WATCH feed FROM " + std::to_string(last));
  CHECK(resumed->buffer().find("[ID:w] WATCHING " + std::to_string(last) + "\r\n") !=
        std::string::npos);
  for (int k = 89; k <= 100; ++k) put(1 + k % 3, "k" + std::to_string(k), "y" + std::to_string(k));

  const std::string end = "] EVENT " + std::to_string(expected.size()) + " ";
  for (size_t i = 0; i < 2; ++i) {
    INFO("watcher on node " << i + 1);
    REQUIRE(w[i]->ReadUntil(end, 30000).find(end) != std::string::npos);
    CheckEvents(ParseEvents(w[i]->buffer(), "w"), expected);
  }
  INFO("watcher on node 3, across its restart");
  REQUIRE(resumed->ReadUntil(end, 30000).find(end) != std::string::npos);
  std::vector<Event> all = before_restart;
  for (Event& e : ParseEvents(resumed->buffer(), "w")) all.push_back(std::move(e));
  CheckEvents(all, expected);
}

TEST_CASE("WATCH: FROM resumes and compacted or future revisions are refused and READ is required") {
  Daemon d({"--watch-history", "16"});
  REQUIRE(d.Start());
  auto conn = d.Connect();
  REQUIRE(conn);
  for (int k = 1; k <= 40; ++k) {
    REQUIRE(atlas::testing::Texts(*conn->Call("KEY PUT t.r" + std::to_string(k) + " " +
                                              std::to_string(k))) == "OK");
  }
  auto call = [&](const std::string& line) { return atlas::testing::Texts(*conn->Call(line)); };
  // The history holds revisions 25..40: resuming after 24 is the oldest possible.
  CHECK(call("WATCH t FROM 10") == "ERROR WARN revision 10 compacted; latest snapshot is 24");
  CHECK(call("WATCH t FROM 41") == "ERROR WARN revision 41 is ahead of table 't' (latest 40)");
  CHECK(call("WATCH t.r FROM x") == "ERROR WARN invalid revision 'x'");
  CHECK(call("WATCH") == "ERROR WARN usage: WATCH <table>[.<row-prefix>] [FROM <revision>]");
  CHECK(call("UNWATCH nope") == "ERROR WARN no WATCH tagged 'nope' on this connection");

  // A row prefix, resumed from the oldest revision kept.
  auto w = Watcher(d.socket_path(), "[ID:a] WATCH t.r3 FROM 24");
  std::string end = "[ID:a] EVENT 39 PUT t.r39 2\r\n39";
  REQUIRE(w->ReadUntil(end).find(end) != std::string::npos);
  std::vector<Event> got = ParseEvents(w->buffer(), "a");
  REQUIRE(got.size() == 10);  // r30..r39 (revisions 30..39); r3 is revision 3, compacted
  CHECK(got.front().revision == 30);
  CHECK(got.back().text == "PUT t.r39 39");
  // UNWATCH ends it with OK, then answers OK itself; the connection goes on.
  REQUIRE(w->Send("UNWATCH a\r\nPRINCIPAL WHOAMI\r\n"));
  CHECK(w->ReadUntil("PRINCIPAL (none)\r\nOK\r\n").ends_with(
      "[ID:a] OK\r\nOK\r\nPRINCIPAL (none)\r\nOK\r\n"));

  // READ is required to start, and a revoke ends a running watch before its next event.
  CHECK(call("PRINCIPAL ASSUME alice") == "OK");
  CHECK(call("ACL GRANT acl alice PERMS OWNER") == "OK");
  CHECK(call("ACL GRANT acl bob PERMS READ") == "OK");
  CHECK(call("KEY PUT acl.x 1") == "OK");
  auto bob = Watcher(d.socket_path(), "PRINCIPAL ASSUME bob\r\n[ID:b] WATCH acl");
  auto eve = std::make_unique<RawSocket>(d.socket_path());
  REQUIRE(eve->Send("HELLO 1.0 e\r\nPRINCIPAL ASSUME eve\r\n[ID:e] WATCH acl\r\n"));
  CHECK(eve->ReadUntil("[ID:e] ERROR").find(
            "[ID:e] ERROR WARN permission denied for principal 'eve': READ on acl") !=
        std::string::npos);
  CHECK(call("KEY PUT acl.y 2") == "OK");
  REQUIRE(bob->ReadUntil("EVENT 2 PUT acl.y").find("EVENT 2 PUT acl.y") != std::string::npos);
  CHECK(call("ACL REVOKE acl bob PERMS READ") == "OK");
  CHECK(call("KEY PUT acl.z 3") == "OK");
  CHECK(bob->ReadUntil("[ID:b] ERROR").find(
            "[ID:b] ERROR WARN permission denied for principal 'bob': READ on acl") !=
        std::string::npos);
  CHECK(bob->buffer().find("acl.z") == std::string::npos);
}

TEST_CASE("WATCH: 1000 watchers on one node all get every event in bounded memory") {
  rlimit nofile{};
  REQUIRE(getrlimit(RLIMIT_NOFILE, &nofile) == 0);
  if (nofile.rlim_cur < 4096 && nofile.rlim_max >= 4096) {
    nofile.rlim_cur = 4096;
    setrlimit(RLIMIT_NOFILE, &nofile);
  }
  Daemon d;
  REQUIRE(d.Start());
  auto conn = d.Connect();
  REQUIRE(atlas::testing::Texts(*conn->Call("KEY PUT many.start 0")) == "OK");
  const long rss_before = atlas::testing::RssKiB(d.pid());
  std::vector<std::unique_ptr<RawSocket>> w;
  for (int i = 0; i < 1000; ++i) {
    w.push_back(std::make_unique<RawSocket>(d.socket_path()));
    REQUIRE(w.back()->ok());
    REQUIRE(w.back()->Send("HELLO 1.0 w\r\n[ID:m] WATCH many\r\n"));
  }
  for (auto& s : w) REQUIRE(s->ReadUntil("[ID:m] WATCHING 1").find("WATCHING 1") != std::string::npos);
  for (int k = 1; k <= 100; ++k) {
    REQUIRE(atlas::testing::Texts(*conn->Call("KEY PUT many.k" + std::to_string(k) + " v")) == "OK");
  }
  const long rss_during = atlas::testing::RssKiB(d.pid());
  for (auto& s : w) {
    REQUIRE(s->ReadUntil("[ID:m] EVENT 101 PUT many.k100 1\r\nv").find("EVENT 101 ") !=
            std::string::npos);
    std::vector<Event> got = ParseEvents(s->buffer(), "m");
    REQUIRE(got.size() == 100);
    CHECK(got.front().revision == 2);
    CHECK(got.back().revision == 101);
  }
  INFO("RSS before " << rss_before << " KiB, with 1000 watchers " << rss_during << " KiB");
  // Per watcher: a session and a cursor, no per-event buffering (measured: ~4 KiB each).
  CHECK(rss_during - rss_before < 64 * 1024);
}

TEST_CASE("WATCH: a watcher that stops reading is cut off and told where to resume") {
  Daemon d({"--watch-lag-max", "200", "--max-pending-output-bytes", "65536"});
  REQUIRE(d.Start());
  auto conn = d.Connect();
  auto w = Watcher(d.socket_path(), "[ID:s] WATCH slow");
  // Nothing more is read from `w` while 1,500 rows of 2 KB are written.
  const std::string value(2048, 'x');
  for (int k = 1; k <= 1500; ++k) {
    REQUIRE(atlas::testing::Texts(*conn->Call("KEY PUT slow.k" + std::to_string(k) + " " + value)) ==
            "OK");
  }
  // ... and for a while after: a watcher counts as not reading once its backlog stayed full
  // for 2 s (WatchHubOptions::stall).
  std::this_thread::sleep_for(std::chrono::seconds(3));
  std::string all = w->ReadUntil("[ID:s] ERROR WARN watch cut off", 20000);
  size_t at = all.find("[ID:s] ERROR WARN watch cut off: ");
  REQUIRE(at != std::string::npos);
  std::vector<Event> got = ParseEvents(all, "s");
  REQUIRE(!got.empty());
  for (size_t i = 0; i < got.size(); ++i) CHECK(got[i].revision == i + 1);  // no gaps before it
  const std::string resume = "resume with WATCH ... FROM " + std::to_string(got.back().revision);
  CHECK(all.find(resume, at) != std::string::npos);
  CHECK(got.size() < 1500);
  // The connection is still usable, and the watch can resume where it stopped.
  REQUIRE(w->Send("[ID:r] WATCH slow FROM " + std::to_string(got.back().revision) + "\r\n"));
  CHECK(w->ReadUntil("[ID:r] EVENT 1500 ", 20000).find("[ID:r] EVENT 1500 ") != std::string::npos);
}

TEST_CASE("WATCH: a transaction's changes are consecutive events and a refused one sends none") {
  Daemon d;
  REQUIRE(d.Start());
  auto conn = d.Connect();
  REQUIRE(atlas::testing::Texts(*conn->Call("KEY PUT tx.a 1")) == "OK");
  auto w = Watcher(d.socket_path(), "[ID:t] WATCH tx");
  auto txn = [&](const std::string& body) {
    auto r = conn->Call("TXN 3", body);
    REQUIRE(r.ok());
    return atlas::testing::Texts(*r);
  };
  CHECK(txn("KEY SET tx.a IF REV 1 2\r\nKEY PUT tx.b 3\r\nKEY DEL tx.a\r\n") == "OK");
  CHECK(txn("KEY PUT tx.c 9\r\nKEY DEL tx.b IF REV 1\r\nKEY GET tx.c\r\n") ==
        "ERROR WARN transaction aborted: condition failed: 'tx.b' is at revision 3");
  REQUIRE(atlas::testing::Texts(*conn->Call("KEY PUT tx.d 4")) == "OK");
  w->ReadUntil("[ID:t] EVENT 5 PUT tx.d 1\r\n4");
  std::vector<Event> got = ParseEvents(w->buffer(), "t");
  REQUIRE(got.size() == 4);
  CHECK(got[0].revision == 2);
  CHECK(got[0].text == "PUT tx.a 2");
  CHECK(got[1].text == "PUT tx.b 3");
  CHECK(got[2].text == "DEL tx.a");
  CHECK(got[3].revision == 5);  // the refused transaction took none
}

TEST_CASE("WATCH: an expired row's removal is a committed DEL within seconds of its expiry") {
  Daemon d;
  REQUIRE(d.Start());
  auto conn = d.Connect();
  auto w = Watcher(d.socket_path(), "[ID:e] WATCH ttl");
  const auto t0 = std::chrono::steady_clock::now();
  REQUIRE(atlas::testing::Texts(*conn->Call("KEY PUT ttl.s EXPIRE 1s session")) == "OK");
  REQUIRE(atlas::testing::Texts(*conn->Call("KEY PUT ttl.k kept")) == "OK");
  REQUIRE(atlas::testing::Texts(*conn->Call("KEY PUT ttl.old EXPIRE AT 2001-01-01T00:00:00Z x")) ==
          "OK");
  CHECK(atlas::testing::Texts(*conn->Call("KEY GET ttl.old")) == "NOT_FOUND\nOK");  // at once
  CHECK(atlas::testing::Texts(*conn->Call("KEY GET ttl.s")) == "VALUE:session\nOK");
  w->ReadUntil("DEL ttl.s\r\n", 10'000);
  const double waited =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::vector<Event> got = ParseEvents(w->buffer(), "e");
  REQUIRE(got.size() == 5);
  CHECK(got[3].text == "DEL ttl.old");
  CHECK(got[4].text == "DEL ttl.s");
  CHECK(waited < 1 + 5);  // the contract: within 5 s of the expiry on a lightly loaded node
  CHECK(atlas::testing::Texts(*conn->Call("KEY GET ttl.s")) == "NOT_FOUND\nOK");
  CHECK(atlas::testing::Texts(*conn->Call("COUNT ttl")) == "COUNT:1\nOK");
}
