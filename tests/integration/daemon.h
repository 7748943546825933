// Test harness: a real atlasd process on a temporary data directory.
#pragma once

#include <signal.h>
#include <sys/resource.h>
#include <sys/types.h>

#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "socketproto/client.h"

namespace atlas::testing {

std::string BinDir();

class Daemon {
 public:
  // Creates a temp data dir; does not start.
  explicit Daemon(std::vector<std::string> extra_args = {});
  ~Daemon();

  // Starts atlasd and waits until its socket accepts connections. Returns false if it exited.
  bool Start();
  // SIGTERM and wait; returns the exit status (or -signal).
  int Stop();
  // SIGKILL and reap.
  void Kill9();
  // SIGSTOP / SIGCONT: a node that is frozen misses everything while it is (a long GC pause, a
  // VM migration), and then carries on with what it had.
  void Pause();
  void Resume();
  bool Running();
  // Environment for the next Start (e.g. ATLAS_FAILPOINTS); "" removes nothing, it sets "".
  void SetEnv(const std::string& name, const std::string& value) { env_[name] = value; }
  void ClearEnv() { env_.clear(); }
  // The descriptor limit (soft and hard) of the next Start's process; 0: inherited.
  void SetFdLimit(rlim_t n) { fd_limit_ = n; }

  std::unique_ptr<client::Connection> Connect(std::chrono::milliseconds timeout =
                                                  std::chrono::milliseconds(30000));

  const std::string& data_dir() const { return data_dir_; }
  std::string socket_path() const { return data_dir_ + "/atlas.sock"; }
  std::string log_path() const { return data_dir_ + "/../atlasd.log"; }
  std::string Log() const;
  pid_t pid() const { return pid_; }
  // Waits for the process to exit on its own; returns its exit status (-1: still running).
  int WaitExit(std::chrono::milliseconds timeout);

 private:
  std::string root_;  // temp dir holding data/ and the log
  std::string data_dir_;
  std::vector<std::string> args_;
  std::map<std::string, std::string> env_;
  rlim_t fd_limit_ = 0;
  pid_t pid_ = -1;
  int exit_status_ = -1;  // of the last process reaped
};

// A TCP port on 127.0.0.1 that was free a moment ago (bind to 0, read, close).
int FreePort();

// Runs a shell command, returns {exit status, stdout}.
std::pair<int, std::string> Run(const std::string& command);

// Joins the text of frames with "\n" (blob payloads left out) for compact assertions.
std::string Texts(const std::vector<client::ReplyFrame>& frames);

// Resident memory of a process, KiB (-1 when unknown).
long RssKiB(pid_t pid);

}  // namespace atlas::testing
