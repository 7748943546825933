// Process lifecycle and durability: restarts, kill -9 under load, one daemon per data dir,
// socket file handling, graceful shutdown.
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <map>
#include <mutex>
#include <thread>

#include <catch2/catch.hpp>

#include "tests/integration/daemon.h"
#include "tests/integration/raw_socket.h"

using atlas::testing::Daemon;
using atlas::testing::Texts;

TEST_CASE("data survives a graceful restart - SIGTERM exits 0") {
  Daemon d;
  REQUIRE(d.Start());
  {
    auto c = d.Connect();
    REQUIRE(c);
    REQUIRE(Texts(*c->Call("KEY PUT keep.a 1")) == "OK");
    REQUIRE(Texts(*c->Call("KEY BLOB SET keep.b 3", std::string_view("x\ny"))) == "OK");
    REQUIRE(Texts(*c->Call("ACL GRANT keep alice PERMS OWNER")) == "OK");
  }
  CHECK(d.Stop() == 0);
  CHECK(d.Log().find("shutting down") != std::string::npos);
  CHECK_FALSE(std::filesystem::exists(d.socket_path()));
  REQUIRE(d.Start());
  auto c = d.Connect();
  REQUIRE(c);
  CHECK(Texts(*c->Call("KEY GET keep.a")) == "ERROR WARN permission denied: READ on keep");
  REQUIRE(Texts(*c->Call("PRINCIPAL ASSUME alice")) == "OK");
  CHECK(Texts(*c->Call("KEY GET keep.a")) == "VALUE:1\nOK");
  CHECK(Texts(*c->Call("ACL LIST keep")) == "ACL alice OWNER\nOK");
  CHECK((*c->Call("KEY BLOB GET keep.b"))[0].blob == std::string("x\ny"));
}

TEST_CASE("kill -9 during a write burst loses no acknowledged write") {
  Daemon d;
  REQUIRE(d.Start());
  std::mutex mu;
  std::vector<std::string> acked;
  std::atomic<bool> stop{false};
  std::vector<std::thread> writers;
  for (int w = 0; w < 4; ++w) {
    writers.emplace_back([&, w] {
      auto c = d.Connect(std::chrono::milliseconds(5000));
      if (!c) return;
      // Keep 16 tagged writes in flight per connection.
      int next = 0;
      std::map<std::string, std::string> inflight;
      while (!stop) {
        while (inflight.size() < 16) {
          std::string id = std::to_string(next);
          std::string key = "burst" + std::to_string(w) + ".k" + std::to_string(next++);
          if (!c->Send("[ID:" + id + "] KEY PUT " + key + " v" + id + "\r\n").ok()) return;
          inflight[id] = key;
        }
        auto f = c->Read();
        if (!f.ok()) return;  // the daemon died
        if (f->id && f->text == "OK") {
          std::lock_guard<std::mutex> lock(mu);
          acked.push_back(inflight[*f->id] + "=v" + *f->id);
          inflight.erase(*f->id);
        }
      }
    });
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  d.Kill9();
  stop = true;
  for (auto& t : writers) t.join();
  std::vector<std::string> snapshot;
  {
    std::lock_guard<std::mutex> lock(mu);
    snapshot = acked;
  }
  INFO("acknowledged writes before kill -9: " << snapshot.size());
  REQUIRE(snapshot.size() > 100);
  REQUIRE(d.Start());
  auto c = d.Connect();
  REQUIRE(c);
  size_t missing = 0;
  for (const auto& kv : snapshot) {
    std::string key = kv.substr(0, kv.find('='));
    std::string value = kv.substr(kv.find('=') + 1);
    auto r = c->Call("KEY GET " + key);
    REQUIRE(r.ok());
    if (Texts(*r) != "VALUE:" + value + "\nOK") ++missing;
  }
  CHECK(missing == 0);
}

TEST_CASE("SIGTERM under load: running commands finish, new ones do not start, clients are told") {
  Daemon d;
  REQUIRE(d.Start());
  auto c = d.Connect(std::chrono::milliseconds(10000));
  REQUIRE(c);
  std::vector<std::string> acked;
  std::string last;
  std::thread client([&] {
    std::map<std::string, std::string> inflight;
    int next = 0;
    for (;;) {
      while (inflight.size() < 8) {
        std::string id = std::to_string(next++);
        if (!c->Send("[ID:" + id + "] KEY PUT term.k" + id + " v\r\n").ok()) break;
        inflight[id] = "term.k" + id;
      }
      auto f = c->Read();
      if (!f.ok()) return;  // closed
      last = f->text;
      if (f->id && f->text == "OK") {
        acked.push_back(inflight[*f->id]);
        inflight.erase(*f->id);
      }
    }
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  auto t0 = std::chrono::steady_clock::now();
  CHECK(d.Stop() == 0);
  auto took = std::chrono::steady_clock::now() - t0;
  client.join();
  CHECK(took < std::chrono::seconds(3));
  CHECK(last == "ERROR FATAL server shutting down");
  REQUIRE(acked.size() > 10);
  REQUIRE(d.Start());
  auto check = d.Connect();
  REQUIRE(check);
  for (const auto& key : acked) CHECK(Texts(*check->Call("KEY GET " + key)) == "VALUE:v\nOK");
}

TEST_CASE("a second atlasd on the same data dir is refused with a clear message") {
  Daemon d;
  REQUIRE(d.Start());
  auto [rc, out] = atlas::testing::Run(atlas::testing::BinDir() + "/atlasd --data-dir " +
                                       d.data_dir() + " --socket " + d.data_dir() +
                                       "/other.sock 2>&1");
  CHECK(rc == 1);
  CHECK(out.find("is in use by another process") != std::string::npos);
  // Another data dir but the live daemon's socket path: refused too.
  std::string other = d.data_dir() + "-b";
  auto [rc2, out2] = atlas::testing::Run(atlas::testing::BinDir() + "/atlasd --data-dir " +
                                         other + " --socket " + d.socket_path() + " 2>&1");
  CHECK(rc2 == 1);
  CHECK(out2.find("is served by a live process") != std::string::npos);
  std::filesystem::remove_all(other);
  CHECK(d.Running());
}

TEST_CASE("a stale socket file from a killed daemon is replaced - the socket has mode 0660") {
  Daemon d;
  REQUIRE(d.Start());
  d.Kill9();
  REQUIRE(std::filesystem::exists(d.socket_path()));
  REQUIRE(d.Start());
  struct stat st {};
  REQUIRE(stat(d.socket_path().c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0660);
  auto c = d.Connect();
  CHECK(c);
}

TEST_CASE("bad settings exit 2 with a message naming the setting") {
  auto [rc, out] = atlas::testing::Run(atlas::testing::BinDir() +
                                       "/atlasd --principal-mode trust 2>&1");
  CHECK(rc == 2);
  CHECK(out.find("principal-mode") != std::string::npos);
  auto [rc2, out2] = atlas::testing::Run(atlas::testing::BinDir() + "/atlasd --help");
  CHECK(rc2 == 0);
  for (const char* setting : {"--data-dir", "--socket", "--socket-mode", "--region", "--node-name",
                              "--listen", "--advertise", "--http-listen", "--join", "--join-token",
                              "--fn", "--fz", "--principal-mode", "--admin-users",
                              "--max-line-bytes", "--max-blob-bytes", "--max-inflight-per-conn",
                              "--log-level", "--log-format", "--config"}) {
    CHECK(out2.find(setting) != std::string::npos);
  }
}

namespace {

// A small ext4 file system on a loop device mounted over a daemon's data directory, so a test
// can fill one node's disk (root only).
struct LoopDisk {
  std::string image, dir;
  bool mounted = false;
  LoopDisk(const std::string& data_dir, int megabytes) : image(data_dir + ".img"), dir(data_dir) {
    std::filesystem::create_directories(dir);
    mounted = atlas::testing::Run("truncate -s " + std::to_string(megabytes) + "M " + image +
                                  " && mkfs.ext4 -q -F -m 0 " + image + " && mount -o loop " +
                                  image + " " + dir + " && rmdir " + dir + "/lost+found")
                  .first == 0;
  }
  // Everything but `keep` bytes; returns false if the disk did not fill.
  bool Fill() {
    atlas::testing::Run("dd if=/dev/zero of=" + dir + "/filler bs=1M 2>/dev/null; dd "
                        "if=/dev/zero of=" + dir + "/filler2 bs=4k 2>/dev/null");
    return std::filesystem::space(dir).available < (1 << 20);
  }
  void Free() { atlas::testing::Run("rm -f " + dir + "/filler " + dir + "/filler2"); }
  ~LoopDisk() {
    if (mounted) atlas::testing::Run("umount -l " + dir + " && rm -f " + image);
  }
};

}  // namespace

TEST_CASE("a full disk stops the node at the first write it cannot persist - it refuses to start "
          "until space is freed and then has every acknowledged write") {
  if (geteuid() != 0) {
    WARN("skipped: needs root to mount a small file system");
    return;
  }
  Daemon d;
  LoopDisk disk(d.data_dir(), 256);
  REQUIRE(disk.mounted);
  REQUIRE(d.Start());
  std::vector<std::string> acked;
  const std::string value(256 << 10, 'v');
  {
    auto c = d.Connect();
    REQUIRE(c);
    REQUIRE(Texts(*c->Call("KEY PUT full.before 1")) == "OK");
    acked.push_back("full.before");
    REQUIRE(disk.Fill());
    // RocksDB appends its log into space it preallocated, so writes go on for a while; the
    // first one it cannot append stops the daemon (never an acknowledgement on a failed write).
    for (int k = 0; k < 2000; ++k) {
      std::string key = "full.k" + std::to_string(k);
      auto r = c->Call("KEY BLOB SET " + key + " " + std::to_string(value.size()), value);
      if (!r.ok() || Texts(*r) != "OK") break;
      acked.push_back(key);
    }
  }
  CHECK(d.WaitExit(std::chrono::seconds(20)) != 0);
  CHECK(d.Log().find("FATAL: persisting consensus state failed") != std::string::npos);
  CHECK(d.Log().find("No space left on device") != std::string::npos);
  INFO(acked.size() << " writes acknowledged before the disk was full");
  CHECK(acked.size() > 1);

  // On the full disk it refuses to start, saying why.
  CHECK_FALSE(d.Start());
  CHECK(d.WaitExit(std::chrono::seconds(10)) == 1);
  CHECK(d.Log().find("needs at least 64 MiB to start") != std::string::npos);

  disk.Free();
  REQUIRE(d.Start());
  auto c = d.Connect();
  REQUIRE(c);
  for (const std::string& key : acked) {
    auto r = c->Call("KEY BLOB GET " + key);
    REQUIRE(r.ok());
    INFO(key);
    CHECK(r->back().text == "OK");
    CHECK(r->front().blob.value_or("").size() == (key == "full.before" ? 1 : value.size()));
  }
  // The write the daemon died on was not acknowledged: its outcome is unknown (its log entry
  // may have reached the disk, its apply not; the restart applies it).
  const std::string count = Texts(*c->Call("COUNT full"));
  CHECK((count == "COUNT:" + std::to_string(acked.size()) + "\nOK" ||
         count == "COUNT:" + std::to_string(acked.size() + 1) + "\nOK"));
  d.Stop();
}
