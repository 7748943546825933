// Which consensus object governs a table now (docs/design.md §Groups: a table is its own
// object, or the object "@<group>" of its group), cached from the locally applied state, and
// the retry rule for commands and reads that reached an object which no longer (or not yet)
// governs their table.
//
// Thread-compatible (the NodeHost's).
#pragma once

#include <cstdint>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "atlasd/state_machine.h"

namespace atlas {

class GroupRoutes {
 public:
  explicit GroupRoutes(StateMachine* state_machine) : state_machine_(state_machine) {}

  // The table's current route (cached; reads the store on a miss).
  const StateMachine::Route& Of(const std::string& table);
  // A placement, adopt or snapshot may have changed it.
  void Forget(const std::string& table) { cache_.erase(table); }
  void ForgetAll() { cache_.clear(); }

  // A command or read refused because its table moved is retried with the newer routing this
  // many times, backing off from 5 ms to 320 ms (~2.5 s in all).
  static constexpr int kRetries = 10;
  static int64_t BackoffMs(int attempt);

 private:
  static constexpr size_t kCachedMax = 65536;  // bounded; misses just read the store
  StateMachine* state_machine_;
  absl::flat_hash_map<std::string, StateMachine::Route> cache_;
};

}  // namespace atlas
