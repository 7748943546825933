// The seam between command execution and replication (docs/design.md §Write path).
//
// The executor turns a client write into a proto::Command and Propose()s it; the replicator
// orders it in the table's log, makes it durable, applies it through the StateMachine and
// reports the outcome. Reads call ReadBarrier() first so that they observe every write
// acknowledged before them (linearizability).
//
// NodeLoop (node/node_loop.h) implements it: the node thread driving a NodeHost, the WPaxos
// core with a replicated log in front of the StateMachine, group commit of many commands per
// synced write.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "absl/status/status.h"
#include "atlasd/state_machine.h"
#include "proto/command.pb.h"

namespace atlas {

// Who owns a table, as the replication layer sees it (TABLE INFO, QUORUM INFO).
struct ObjectInfo {
  uint64_t owner = 0;      // node id, 0 when unknown
  std::string ballot;      // "<counter>.<node>"
  uint64_t commit_index = 0;
  // Replica read leases: on the owner, the members holding one; elsewhere, this node if it
  // holds one (docs/consensus.md §Replica read leases).
  std::vector<uint64_t> lease_holders;
};

class Replicator {
 public:
  using Done = std::function<void(ApplyResult)>;
  virtual ~Replicator() = default;
  // Orders `cmd` in its table's log. `done` runs exactly once, on a replicator thread, after the
  // command is durable and applied (ok or not), or with an error when it could not be ordered
  // (overload, shutdown). Never blocks the caller.
  virtual void Propose(proto::Command cmd, Done done) = 0;
  // `done` runs once reads issued after it observe every write acknowledged before the call:
  // of the whole table, or (`key` "table.row") of that row alone.
  virtual void ReadBarrier(const std::string& table, const std::string& key,
                           std::function<void(absl::Status)> done) = 0;
  // True when reads of `table` need no barrier now: this node may read it from its own applied
  // state (docs/consensus.md §Reads without a round). Any thread; never blocks.
  virtual bool ReadsLocally(const std::string& /*table*/) { return false; }
  // `done` runs after a round trip through the replication layer's own thread (NODE PING).
  virtual void Ping(std::function<void()> done) = 0;
  // Reports the table's ownership as currently known.
  virtual void Describe(const std::string& table, std::function<void(ObjectInfo)> done) = 0;
  // Stops accepting proposals, finishes queued ones, joins threads.
  virtual void Shutdown() = 0;
};

}  // namespace atlas
