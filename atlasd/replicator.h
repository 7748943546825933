// The seam between command execution and replication (docs/design.md §Write path).
//
// The executor turns a client write into a proto::Command and Propose()s it; the replicator
// orders it in the table's log, makes it durable, applies it through the StateMachine and
// reports the outcome. Reads call ReadBarrier() first so that they observe every write
// acknowledged before them (linearizability).
//
// LocalReplicator is the one-node implementation: one commit thread, group commit of many
// commands per synced RocksDB write. The WPaxos node («Consensus core») implements the same
// interface with a replicated log in front of the same StateMachine.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "atlasd/state_machine.h"
#include "proto/command.pb.h"
#include "storage/store.h"

namespace atlas {

class Replicator {
 public:
  using Done = std::function<void(ApplyResult)>;
  virtual ~Replicator() = default;
  // Orders `cmd` in its table's log. `done` runs exactly once, on a replicator thread, after the
  // command is durable and applied (ok or not), or with an error when it could not be ordered
  // (overload, shutdown). Never blocks the caller.
  virtual void Propose(proto::Command cmd, Done done) = 0;
  // `done` runs once reads issued after it observe every write acknowledged before the call.
  virtual void ReadBarrier(const std::string& table, std::function<void(absl::Status)> done) = 0;
  // Stops accepting proposals, finishes queued ones, joins threads.
  virtual void Shutdown() = 0;
};

struct LocalReplicatorOptions {
  size_t queue_commands_max = 65536;
  size_t queue_bytes_max = size_t{1} << 30;
  size_t batch_commands_max = 4096;
  size_t batch_bytes_max = size_t{64} << 20;
  bool sync = true;  // fsync every commit batch (the durability contract); tests may relax
};

class LocalReplicator final : public Replicator {
 public:
  LocalReplicator(storage::Store* store, LocalReplicatorOptions options);
  ~LocalReplicator() override;

  void Propose(proto::Command cmd, Done done) override;
  void ReadBarrier(const std::string& table, std::function<void(absl::Status)> done) override;
  void Shutdown() override;

  uint64_t commits() const { return commits_.load(); }
  uint64_t batches() const { return batches_.load(); }

 private:
  struct Pending {
    proto::Command cmd;
    Done done;
    size_t bytes;
  };
  void Run();
  void CommitBatch(std::deque<Pending>& batch);

  storage::Store* store_;
  LocalReplicatorOptions options_;
  StateMachine state_machine_;

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Pending> queue_;  // guarded by mu_
  size_t queue_bytes_ = 0;     // guarded by mu_
  bool stopping_ = false;      // guarded by mu_

  // Commit-thread state.
  int64_t last_timestamp_ms_ = 0;
  absl::flat_hash_map<std::string, uint64_t> commit_index_;

  std::atomic<uint64_t> commits_{0};
  std::atomic<uint64_t> batches_{0};
  std::thread thread_;
};

}  // namespace atlas
