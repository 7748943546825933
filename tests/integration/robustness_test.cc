// Framing, limits, FATAL vs WARN, tagged concurrency and large values against a real atlasd.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/resource.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <map>
#include <set>
#include <thread>

#include <catch2/catch.hpp>

#include "tests/integration/daemon.h"
#include "tests/integration/local_cluster.h"
#include "tests/integration/raw_socket.h"

using atlas::client::Connection;
using atlas::testing::Daemon;
using atlas::testing::RawSocket;
using atlas::testing::Texts;

namespace {
constexpr const char* kReady = "WELCOME 1.0 atlasd/0.1.0\r\nREADY\r\n";
}

TEST_CASE("handshake: WELCOME, HELLO 1.0 <id>, READY - anything else is FATAL and closes") {
  Daemon d;
  REQUIRE(d.Start());
  {
    RawSocket s(d.socket_path());
    REQUIRE(s.ok());
    s.Send("hello 1.0 clientId=x\n");
    CHECK(s.ReadUntil("READY\r\n") == kReady);
  }
  {
    RawSocket s(d.socket_path());
    s.Send("KEY GET a.b\r\n");
    CHECK(s.WaitClosed());
    CHECK(s.buffer() == "WELCOME 1.0 atlasd/0.1.0\r\nERROR FATAL invalid handshake\r\n");
  }
  {
    RawSocket s(d.socket_path());
    s.Send("HELLO 2.0 me\r\n");
    CHECK(s.WaitClosed());
    CHECK(s.buffer() == "WELCOME 1.0 atlasd/0.1.0\r\nERROR FATAL invalid protocol version\r\n");
  }
  {
    RawSocket s(d.socket_path());
    s.Send("HELLO 1.0\r\n");
    CHECK(s.WaitClosed());
    CHECK(s.buffer().find("ERROR FATAL invalid handshake") != std::string::npos);
  }
}

TEST_CASE("empty lines are ignored and untagged replies come back in order") {
  Daemon d;
  REQUIRE(d.Start());
  RawSocket s(d.socket_path());
  s.Send("HELLO 1.0 c\r\n\r\n\n  \r\nKEY PUT a.b 1\r\n\r\nKEY GET a.b\nKEY GET a.c\r\n");
  std::string out = s.ReadUntil("NOT_FOUND\r\nOK\r\n");
  CHECK(out == std::string(kReady) + "OK\r\nVALUE:1\r\nOK\r\nNOT_FOUND\r\nOK\r\n");
}

TEST_CASE("a line over the limit is FATAL - exactly at the limit is served") {
  Daemon d;
  REQUIRE(d.Start());
  {
    auto c = d.Connect();
    REQUIRE(c);
    std::string line = "KEY PUT big.line " + std::string((1 << 20) - 17, 'x');
    REQUIRE(line.size() == (1u << 20));
    auto r = c->Call(line);
    REQUIRE(r.ok());
    CHECK(Texts(*r) == "OK");
  }
  RawSocket s(d.socket_path());
  s.Send("HELLO 1.0 c\r\n");
  s.ReadUntil("READY\r\n");
  std::string line = "KEY PUT big.line " + std::string((1 << 20) - 16, 'x') + "\r\n";
  s.Send(line);
  CHECK(s.WaitClosed());
  CHECK(s.buffer() == std::string(kReady) + "ERROR FATAL line too large (limit 1048576 bytes)\r\n");
  // The daemon serves others.
  auto c = d.Connect();
  REQUIRE(c);
  auto r = c->Call("KEY GET big.line");
  REQUIRE(r.ok());
  CHECK(r->back().text == "OK");
}

TEST_CASE("bad blob lengths are FATAL and the daemon keeps serving other connections") {
  Daemon d;
  REQUIRE(d.Start());
  auto other = d.Connect();
  REQUIRE(other);
  for (const char* bad : {"KEY BLOB SET a.b xyz", "KEY BLOB SET a.b -5",
                          "KEY BLOB SET a.b 999999999999", "[ID:1] KEY BLOB SET a.b 1e3"}) {
    RawSocket s(d.socket_path());
    s.Send(std::string("HELLO 1.0 c\r\n") + bad + "\r\n");
    CHECK(s.WaitClosed());
    CHECK(s.buffer().find("ERROR FATAL invalid blob length") != std::string::npos);
  }
  auto r = other->Call("KEY PUT a.b still-here");
  REQUIRE(r.ok());
  CHECK(Texts(*r) == "OK");
}

TEST_CASE("a blob behind a malformed tag is never executed as commands") {
  Daemon d;
  REQUIRE(d.Start());
  auto c = d.Connect();
  REQUIRE(c);
  REQUIRE(Texts(*c->Call("KEY PUT t.a precious")) == "OK");
  RawSocket s(d.socket_path());
  s.Send("HELLO 1.0 c\r\n[ID:" + std::string(65, 'x') +
         "] KEY BLOB SET t.upload 13\r\nKEY DEL t.a\r\n");
  CHECK(s.WaitClosed());
  CHECK(s.buffer() == std::string(kReady) +
                          "ERROR FATAL invalid request id on KEY BLOB SET: the blob cannot be "
                          "framed\r\n");
  CHECK(Texts(*c->Call("KEY GET t.a")) == "VALUE:precious\nOK");
}

TEST_CASE("tagged requests run concurrently, every frame is tagged, blobs interleave whole") {
  Daemon d;
  REQUIRE(d.Start());
  auto c = d.Connect();
  REQUIRE(c);
  // Pipeline 200 tagged blob writes with payloads that contain CRLF and fake frames.
  std::string batch;
  const int n = 200;
  auto payload = [](int i) {
    return "[ID:x] OK\r\nBLOB 3\r\n" + std::string(static_cast<size_t>(i * 37 % 5000), 'p') +
           std::to_string(i);
  };
  for (int i = 0; i < n; ++i) {
    std::string p = payload(i);
    batch += "[ID:w" + std::to_string(i) + "] KEY BLOB SET blobs.k" + std::to_string(i) + " " +
             std::to_string(p.size()) + "\r\n" + p;
  }
  REQUIRE(c->Send(batch).ok());
  std::set<std::string> done;
  while (done.size() < static_cast<size_t>(n)) {
    auto f = c->Read();
    REQUIRE(f.ok());
    REQUIRE(f->id);
    CHECK(f->text == "OK");
    CHECK(done.insert(*f->id).second);
  }
  // Now read them back concurrently, interleaved with untagged commands.
  batch.clear();
  for (int i = 0; i < n; ++i) {
    batch += "[ID:r" + std::to_string(i) + "] KEY BLOB GET blobs.k" + std::to_string(i) + "\r\n";
    if (i % 50 == 0) batch += "COUNT blobs\r\n";
  }
  REQUIRE(c->Send(batch).ok());
  int oks = 0, counts = 0;
  std::map<std::string, std::string> got;
  while (oks < n || counts < 4) {
    auto f = c->Read();
    REQUIRE(f.ok());
    if (!f->id) {
      if (f->text.rfind("COUNT:", 0) == 0) {
        CHECK(f->text == "COUNT:200");
        ++counts;
      } else {
        CHECK(f->text == "OK");
      }
      continue;
    }
    REQUIRE(f->id->rfind("r", 0) == 0);
    if (f->blob) got[*f->id] = *f->blob;
    else if (f->text == "OK") ++oks;
    else FAIL("unexpected frame " << f->text);
  }
  for (int i = 0; i < n; ++i) CHECK(got["r" + std::to_string(i)] == payload(i));
}

TEST_CASE("in-flight tagged requests are limited per connection") {
  Daemon d({"--max-inflight-per-conn", "4"});
  REQUIRE(d.Start());
  auto c = d.Connect();
  REQUIRE(c);
  std::string batch;
  for (int i = 0; i < 64; ++i) batch += "[ID:" + std::to_string(i) + "] KEY PUT lim.k v\r\n";
  REQUIRE(c->Send(batch).ok());
  int ok = 0, limited = 0;
  for (int i = 0; i < 64; ++i) {
    auto f = c->Read();
    REQUIRE(f.ok());
    if (f->text == "OK") ++ok;
    else if (f->text == "ERROR WARN too many requests in flight") ++limited;
    else FAIL(f->text);
  }
  CHECK(ok + limited == 64);
  CHECK(ok >= 4);
  auto r = c->Call("KEY GET lim.k");  // still usable
  REQUIRE(r.ok());
  CHECK(Texts(*r) == "VALUE:v\nOK");
}

TEST_CASE("a 100 MiB blob is stored and read back intact") {
  Daemon d;
  REQUIRE(d.Start());
  auto c = d.Connect(std::chrono::milliseconds(120000));
  REQUIRE(c);
  std::string big(100u << 20, '\0');
  for (size_t i = 0; i < big.size(); i += 8) {
    uint64_t v = i * 0x9E3779B97F4A7C15ull;
    std::memcpy(&big[i], &v, 8);
  }
  auto w = c->Call("KEY BLOB SET huge.one " + std::to_string(big.size()), big);
  REQUIRE(w.ok());
  CHECK(Texts(*w) == "OK");
  auto r = c->Call("KEY BLOB GET huge.one");
  REQUIRE(r.ok());
  REQUIRE(r->size() == 2);
  CHECK((*r)[0].text == "BLOB 104857600");
  CHECK((*r)[0].blob == big);
}

TEST_CASE("abrupt disconnects mid-command and mid-blob leave the daemon serving") {
  Daemon d;
  REQUIRE(d.Start());
  for (int i = 0; i < 20; ++i) {
    RawSocket s(d.socket_path());
    s.Send("HELLO 1.0 c\r\nKEY BLOB SET cut.x 1000\r\nhalf");
    s.Send("[ID:a] KEY PU");
  }
  auto c = d.Connect();
  REQUIRE(c);
  auto r = c->Call("KEY GET cut.x");
  REQUIRE(r.ok());
  CHECK(Texts(*r) == "NOT_FOUND\nOK");  // a half-written blob is never applied
  CHECK(d.Running());
}

namespace {
// The daemon still serves a fresh client (after something tried to break it).
void CheckStillServes(Daemon& d, const std::string& key) {
  auto c = d.Connect();
  REQUIRE(c);
  auto r = c->Call("KEY PUT " + key + " still-serving");
  REQUIRE(r.ok());
  CHECK(Texts(*r) == "OK");
  CHECK(d.Running());
}

using atlas::testing::RssKiB;
}  // namespace

TEST_CASE("a client that never reads its replies holds bounded server memory, others are served") {
  Daemon d;
  REQUIRE(d.Start());
  auto c = d.Connect();
  REQUIRE(c);
  REQUIRE(c->Call("KEY PUT big.v " + std::string(1000000, 'v')).ok());
  const long before = RssKiB(d.pid());
  RawSocket lazy(d.socket_path());
  REQUIRE(lazy.ok());
  lazy.ShrinkReceiveBuffer();
  REQUIRE(lazy.Send("HELLO 1.0 lazy\r\n"));
  // 200,000 GETs of a 1 MB value (200 GB of replies) that it never reads: the daemon must stop
  // reading its commands once max-pending-output-bytes (16 MiB) of replies wait, so the 3 MB
  // of commands cannot all be sent.
  std::string gets;
  for (int i = 0; i < 200000; ++i) gets += "KEY GET big.v\r\n";
  ::fcntl(lazy.fd(), F_SETFL, ::fcntl(lazy.fd(), F_GETFL) | O_NONBLOCK);
  size_t off = 0;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(4);
  while (off < gets.size() && std::chrono::steady_clock::now() < deadline) {
    ssize_t n = ::send(lazy.fd(), gets.data() + off, gets.size() - off, MSG_NOSIGNAL);
    if (n > 0) {
      off += static_cast<size_t>(n);
    } else {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }
  CHECK(off < gets.size());  // It stopped reading: the rest of the commands could not be sent.
  std::this_thread::sleep_for(std::chrono::seconds(1));
  const long during = RssKiB(d.pid());
  INFO("RSS before " << before << " KiB, with the lazy client " << during << " KiB");
  CHECK(during - before < 160 * 1024);  // 16 MiB of replies plus reads in progress, not GBs.
  CheckStillServes(d, "other.k");  // everyone else is served meanwhile
}

TEST_CASE("ten thousand idle connections: the daemon keeps serving with bounded memory per connection") {
  constexpr int kIdle = 10000;
  rlimit nofile{};
  ::getrlimit(RLIMIT_NOFILE, &nofile);
  if (nofile.rlim_max < kIdle + 200) {
    WARN("skipped: the descriptor limit (" << nofile.rlim_max << ") is below " << kIdle + 200);
    return;
  }
  nofile.rlim_cur = nofile.rlim_max;
  ::setrlimit(RLIMIT_NOFILE, &nofile);
  Daemon d;
  REQUIRE(d.Start());
  const long before = RssKiB(d.pid());
  std::vector<std::unique_ptr<RawSocket>> idle;
  for (int i = 0; i < kIdle; ++i) {
    idle.push_back(std::make_unique<RawSocket>(d.socket_path()));
    REQUIRE(idle.back()->ok());
    if (i % 10 == 0) idle.back()->Send("HELLO 1.0 idle\r\n");  // some past the handshake
  }
  REQUIRE(idle.front()->ReadUntil("READY").find("READY") != std::string::npos);
  auto c = d.Connect();
  REQUIRE(c);
  auto r = c->Call("KEY PUT idle.k v");
  REQUIRE(r.ok());
  CHECK(Texts(*r) == "OK");
  r = c->Call("KEY GET idle.k");
  REQUIRE(r.ok());
  CHECK(Texts(*r) == "VALUE:v\nOK");
  const long after = RssKiB(d.pid());
  const long per_conn = (after - before) * 1024 / kIdle;
  INFO("RSS " << before << " -> " << after << " KiB: " << per_conn << " bytes per idle connection");
  CHECK(per_conn < 32 * 1024);
  std::printf("10,000 idle connections: %ld bytes of server RSS each\n", per_conn);
  idle.clear();
  CHECK(d.Running());
}

namespace {
// Connects over TCP to 127.0.0.1:port, sends `bytes`, and waits for the server to close the
// connection (whatever it answers first). True if it closed within the timeout.
bool TcpClosedAfter(int port, const std::string& bytes, int timeout_ms = 10000) {
  int fd = atlas::testing::ConnectLoopbackTcp(port);
  if (fd < 0) return false;
  ::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL);
  bool closed = false;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (!closed && std::chrono::steady_clock::now() < deadline) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 200) > 0) {
      char buf[4096];
      closed = ::recv(fd, buf, sizeof buf, 0) <= 0;
    }
  }
  ::close(fd);
  return closed;
}
}  // namespace

TEST_CASE("plaintext on the TLS ports is refused and the daemon keeps serving") {
  const int peer = atlas::testing::FreePort(), https = atlas::testing::FreePort();
  Daemon d({"--listen", "127.0.0.1:" + std::to_string(peer), "--http-listen",
            "127.0.0.1:" + std::to_string(https)});
  REQUIRE(d.Start());
  CHECK(TcpClosedAfter(peer, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
  CHECK(TcpClosedAfter(peer, std::string(64 * 1024, '\x16')));  // junk "handshake records"
  CHECK(TcpClosedAfter(https, "GET /health HTTP/1.1\r\nHost: x\r\n\r\n"));
  CHECK(TcpClosedAfter(https, "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"));
  CheckStillServes(d, "tls.k");
}

TEST_CASE("no secret reaches the log, even at trace level") {
  Daemon d({"--log-level", "trace"});
  REQUIRE(d.Start());
  auto c = d.Connect();
  REQUIRE(c);
  REQUIRE(c->Call("KEY PUT sec.k s3cr3t-value-in-a-row").ok());
  REQUIRE(c->Call("KEY GET sec.k").ok());
  auto grant = c->Call("ACL GRANT sec bob PERMS READ");
  REQUIRE(grant.ok());
  CHECK(Texts(*grant) == "OK");
  REQUIRE(d.Stop() == 0);
  const std::string log = d.Log();
  CHECK(log.find("s3cr3t-value-in-a-row") == std::string::npos);  // values
  CHECK(log.find("PRIVATE KEY") == std::string::npos);            // keys
  // The join token is never logged: the log names its file and its id (logs are read by more
  // people than the data directory).
  CHECK(log.find("atlas1.") == std::string::npos);  // c005a71: printed once at creation
  const std::string secret = atlas::testing::ReadFile(d.data_dir() + "/join-token").substr(7, 64);
  CHECK(log.find(secret) == std::string::npos);
  CHECK(log.find("join token ") != std::string::npos);
  CHECK(log.find("/join-token (mode 0600), expires ") != std::string::npos);
}

TEST_CASE("slow-loris clients dribbling lines and blobs a byte at a time do not slow others, and "
          "their commands run once complete") {
  Daemon d;
  REQUIRE(d.Start());
  constexpr int kSlow = 300;
  std::vector<std::unique_ptr<RawSocket>> slow;
  std::vector<std::string> pending;  // what each slow client has still to send
  for (int i = 0; i < kSlow; ++i) {
    slow.push_back(std::make_unique<RawSocket>(d.socket_path()));
    REQUIRE(slow.back()->ok());
    std::string k = std::to_string(i);
    // Thirds: a slow handshake and command; a slow command line; a slow blob payload.
    std::string script = "KEY PUT loris.k" + k + " value-" + k + "\r\n";
    if (i % 3 == 0) script = "HELLO 1.0 loris\r\n" + script;
    if (i % 3 == 1) slow.back()->Send("HELLO 1.0 loris\r\n");
    if (i % 3 == 2) {
      slow.back()->Send("HELLO 1.0 loris\r\nKEY BLOB SET loris.k" + k + " 40\r\n");
      script = std::string(40 - k.size() - 6, 'b') + "value-" + k;
    }
    pending.push_back(script);
  }
  auto c = d.Connect();
  REQUIRE(c);
  double worst_ms = 0;
  int calls = 0;
  for (size_t step = 0;; ++step) {
    bool any = false;
    for (int i = 0; i < kSlow; ++i) {  // one byte from every slow client per round
      if (step < pending[i].size()) {
        slow[i]->Send(pending[i].substr(step, 1));
        any = true;
      }
    }
    if (step % 4 == 0) {  // meanwhile a normal client writes and reads
      auto t0 = std::chrono::steady_clock::now();
      auto r = c->Call("KEY PUT fast.k" + std::to_string(step) + " v");
      REQUIRE(r.ok());
      CHECK(Texts(*r) == "OK");
      worst_ms = std::max(worst_ms, std::chrono::duration<double, std::milli>(
                                        std::chrono::steady_clock::now() - t0).count());
      ++calls;
    }
    if (!any) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  INFO("worst normal-client write: " << worst_ms << " ms over " << calls << " writes");
  CHECK(worst_ms < 2000);
  for (int i = 0; i < kSlow; ++i) {
    INFO("slow client " << i);
    CHECK(slow[i]->ReadUntil("OK\r\n").ends_with("READY\r\nOK\r\n"));
  }
  for (int i = 0; i < kSlow; i += 37) {
    std::string k = std::to_string(i);
    auto r = c->Call("KEY BLOB GET loris.k" + k);
    REQUIRE(r.ok());
    CHECK(r->front().blob.value_or("").ends_with("value-" + k));
  }
  CHECK(Texts(*c->Call("COUNT loris")) == "COUNT:" + std::to_string(kSlow) + "\nOK");
  CHECK(d.Running());
}
