// The client-serving threads (socketproto/io_pool.h): a SocketServer on an IoPool pins each
// connection to one thread, spreads connections over the threads, runs a read's continuation
// (OutputStream::Post) on its connection's thread, and stops when asked.
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <mutex>
#include <set>
#include <string>
#include <thread>

#include "socketproto/io_pool.h"
#include "socketproto/server.h"
#include "temp_dir.h"

namespace atlas::socketproto {
namespace {

// Answers every command with OK from a thread of its own (as the node thread does), after
// recording which thread served the connection and which ran the continuation.
class ThreadRecorder final : public CommandHandler {
 public:
  void Execute(Request, SessionContext& ctx, std::function<void(Reply)> done) override {
    const std::thread::id parsed_on = std::this_thread::get_id();
    std::shared_ptr<OutputStream> stream = ctx.stream;
    std::thread([this, stream, parsed_on, done = std::move(done)]() mutable {
      stream->Post([this, parsed_on, done = std::move(done)] {
        std::lock_guard<std::mutex> lock(mu);
        served_on.insert(parsed_on);
        if (std::this_thread::get_id() != parsed_on) continuation_elsewhere = true;
        done(Reply().Ok());
      });
    }).detach();
  }
  std::mutex mu;
  std::set<std::thread::id> served_on;
  bool continuation_elsewhere = false;
};

int Connect(const std::string& path) {
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::snprintf(addr.sun_path, sizeof addr.sun_path, "%s", path.c_str());
  REQUIRE(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
  return fd;
}

// Reads until `want` appears (or the peer closes); returns what was read.
std::string ReadUntil(int fd, std::string_view want) {
  std::string got;
  char buf[512];
  while (got.find(want) == std::string::npos) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n <= 0) break;
    got.append(buf, static_cast<size_t>(n));
  }
  return got;
}

TEST_CASE("an io pool serves each connection on one thread and spreads connections") {
  testing::TempDir dir;
  IoPool pool(2);
  ThreadRecorder handler;
  ServerOptions options;
  options.socket_path = dir.path() + "/s.sock";
  SocketServer server(pool.main(), options, &handler, &pool);
  REQUIRE(server.Start().ok());
  std::thread runner([&pool] { pool.Run(); });

  int a = Connect(options.socket_path);
  int b = Connect(options.socket_path);
  for (int fd : {a, b}) {
    const std::string script = "HELLO 1.0 clientId=t\r\nKEY GET t.a\r\nKEY GET t.b\r\n";
    REQUIRE(::write(fd, script.data(), script.size()) == static_cast<ssize_t>(script.size()));
  }
  for (int fd : {a, b}) {
    std::string got = ReadUntil(fd, "OK\r\nOK\r\n");
    CHECK(got.find("OK\r\nOK\r\n") != std::string::npos);
    ::close(fd);
  }
  {
    std::lock_guard<std::mutex> lock(handler.mu);
    CHECK(handler.served_on.size() == 2);       // two connections, two threads
    CHECK_FALSE(handler.continuation_elsewhere);  // Post ran on the connection's thread
  }
  server.StopAccepting();
  pool.Stop();
  runner.join();  // Run returns once stopped
}

TEST_CASE("an io pool of one thread runs everything on the caller") {
  IoPool pool(0);  // clamped to one
  CHECK(pool.size() == 1);
  CHECK(&pool.Next() == &pool.main());
  std::thread::id ran_on;
  boost::asio::post(pool.main(), [&] {
    ran_on = std::this_thread::get_id();
    pool.Stop();
  });
  pool.Run();
  CHECK(ran_on == std::this_thread::get_id());
}

}  // namespace
}  // namespace atlas::socketproto
