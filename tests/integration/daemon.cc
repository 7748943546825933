#include "tests/integration/daemon.h"

#include <sys/resource.h>

#include <algorithm>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

namespace atlas::testing {

// ATLAS_TEST_BIN_DIR runs the suite against other binaries (e.g. an older release, to show a
// regression test fails there).
std::string BinDir() {
  const char* dir = std::getenv("ATLAS_TEST_BIN_DIR");
  return dir != nullptr && *dir != 0 ? dir : ATLAS_BIN_DIR;
}

Daemon::Daemon(std::vector<std::string> extra_args) : args_(std::move(extra_args)) {
  std::string tmpl = (std::filesystem::temp_directory_path() / "atlasd-it-XXXXXX").string();
  root_ = mkdtemp(tmpl.data());
  data_dir_ = root_ + "/data";
}

// ATLAS_TEST_KEEP_DIRS=1 keeps each daemon's directory (data and log) for a post-mortem.
Daemon::~Daemon() {
  if (pid_ > 0) Kill9();
  const char* keep = std::getenv("ATLAS_TEST_KEEP_DIRS");
  if (keep != nullptr && *keep == '1') {
    std::fprintf(stderr, "kept %s\n", root_.c_str());
    return;
  }
  std::error_code ec;
  std::filesystem::remove_all(root_, ec);
}

bool Daemon::Start() {
  std::filesystem::create_directories(data_dir_);
  std::vector<std::string> argv = {BinDir() + "/atlasd", "--data-dir", data_dir_};
  argv.insert(argv.end(), args_.begin(), args_.end());
  // Tests run daemons side by side: unless a test chose ports, let each pick free ones.
  auto has = [&](const std::string& flag) {
    return std::find(args_.begin(), args_.end(), flag) != args_.end();
  };
  if (!has("--listen")) argv.insert(argv.end(), {"--listen", "127.0.0.1:0"});
  if (!has("--http-listen")) argv.insert(argv.end(), {"--http-listen", "127.0.0.1:0"});
  // ATLAS_TEST_LOG_LEVEL=debug: every test daemon logs more (with ATLAS_TEST_KEEP_DIRS=1).
  const char* level = std::getenv("ATLAS_TEST_LOG_LEVEL");
  if (level != nullptr && *level != 0 && !has("--log-level")) {
    argv.insert(argv.end(), {"--log-level", level});
  }
  pid_ = fork();
  if (pid_ == 0) {
    // If the test process dies (a ctest timeout kills it), its daemons go with it.
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    FILE* log = std::fopen(log_path().c_str(), "a");
    if (log != nullptr) {
      dup2(fileno(log), 1);
      dup2(fileno(log), 2);
    }
    for (const auto& [name, value] : env_) setenv(name.c_str(), value.c_str(), 1);
    if (fd_limit_ > 0) {
      rlimit limit{fd_limit_, fd_limit_};
      setrlimit(RLIMIT_NOFILE, &limit);
    }
    std::vector<char*> cargv;
    for (auto& a : argv) cargv.push_back(a.data());
    cargv.push_back(nullptr);
    execv(cargv[0], cargv.data());
    _exit(127);
  }
  for (int i = 0; i < 400; ++i) {
    if (!Running()) return false;
    if (std::filesystem::exists(socket_path())) {
      auto c = client::Connection::Open(socket_path(), "clientId=probe",
                                        std::chrono::milliseconds(2000));
      if (c.ok()) return true;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(25));
  }
  return false;
}

bool Daemon::Running() {
  if (pid_ <= 0) return false;
  int status;
  pid_t r = waitpid(pid_, &status, WNOHANG);
  if (r == pid_) {
    pid_ = -1;
    exit_status_ = WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status);
    return false;
  }
  return true;
}

int Daemon::Stop() {
  if (pid_ <= 0) return -1;
  kill(pid_, SIGTERM);
  int status = 0;
  waitpid(pid_, &status, 0);
  pid_ = -1;
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  return -WTERMSIG(status);
}

void Daemon::Kill9() {
  if (pid_ <= 0) return;
  kill(pid_, SIGKILL);
  int status;
  waitpid(pid_, &status, 0);
  pid_ = -1;
}

void Daemon::Pause() {
  if (pid_ > 0) kill(pid_, SIGSTOP);
}

void Daemon::Resume() {
  if (pid_ > 0) kill(pid_, SIGCONT);
}

std::unique_ptr<client::Connection> Daemon::Connect(std::chrono::milliseconds timeout) {
  auto c = client::Connection::Open(socket_path(), "clientId=test", timeout);
  if (!c.ok()) return nullptr;
  return std::move(*c);
}

std::string Daemon::Log() const {
  std::ifstream f(log_path());
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

int FreePort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof addr;
  int port = -1;
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 &&
      getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
    port = ntohs(addr.sin_port);
  }
  close(fd);
  return port;
}

int Daemon::WaitExit(std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (!Running()) return exit_status_;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return -1;
}

std::pair<int, std::string> Run(const std::string& command) {
  std::string out;
  FILE* p = popen(command.c_str(), "r");
  if (p == nullptr) return {-1, ""};
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  int status = pclose(p);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, out};
}

std::string Texts(const std::vector<client::ReplyFrame>& frames) {
  std::string out;
  for (const auto& f : frames) {
    if (!out.empty()) out += "\n";
    if (f.id) out += "[ID:" + *f.id + "] ";
    out += f.text;
  }
  return out;
}

long RssKiB(pid_t pid) {
  auto [status, out] = Run("awk '/^VmRSS/ {print $2}' /proc/" + std::to_string(pid) + "/status");
  return status == 0 ? std::atol(out.c_str()) : -1;
}

}  // namespace atlas::testing
