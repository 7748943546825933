// One client connection of atlas-bench to one system under test. A worker thread owns one
// driver: it queues requests (Start*), sends them (Flush) and collects their outcomes (Poll), so
// every system is driven by the same pipelined loop in main.cc.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"

namespace atlas::bench {

using Clock = std::chrono::steady_clock;

struct Completion {
  enum class Outcome { kOk, kNotFound, kError };
  uint64_t token = 0;
  Outcome outcome = Outcome::kOk;
  std::string error;  // kError: the server's message
};

class Driver {
 public:
  virtual ~Driver() = default;
  // Connects (and performs any handshake) within `timeout`.
  virtual absl::Status Connect(std::chrono::milliseconds timeout) = 0;
  // Queue one request; `token` comes back in its Completion.
  virtual void StartGet(uint64_t token, std::string_view key) = 0;
  virtual void StartPut(uint64_t token, std::string_view key, std::string_view value) = 0;
  // One transaction of a KEY PUT of `value` to each key (atlasd only; the others never get one:
  // main.cc refuses --txn-size for them).
  virtual void StartTxn(uint64_t token, const std::vector<std::string>& keys,
                        std::string_view value) {
    (void)token, (void)keys, (void)value;
  }
  // Sends every queued request.
  virtual absl::Status Flush() = 0;
  // Waits until at least one completion arrived or `deadline` passed, appending what arrived.
  // An error means the connection is unusable (its in-flight requests are lost).
  virtual absl::Status Poll(Clock::time_point deadline, std::vector<Completion>* out) = 0;
};

// A target as given by --target: `[zone=<name>@]<system>:<address>`.
struct Target {
  enum class System { kAtlas, kRedis, kEtcd };
  System system = System::kAtlas;
  std::string address;  // socket path, host:port
  std::string zone;     // "default" when not given
  std::string spec;     // as written, for reports
};

const char* SystemName(Target::System s);

std::unique_ptr<Driver> MakeAtlasDriver(const std::string& socket_path, std::string client_id);
// `address` is a Unix socket path (contains '/') or host:port.
std::unique_ptr<Driver> MakeRedisDriver(const std::string& address);
std::unique_ptr<Driver> MakeEtcdDriver(const std::string& address, int channel_index);

}  // namespace atlas::bench
