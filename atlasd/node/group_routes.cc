#include "atlasd/node/group_routes.h"

#include <algorithm>

namespace atlas {

const StateMachine::Route& GroupRoutes::Of(const std::string& table) {
  auto it = cache_.find(table);
  if (it != cache_.end()) return it->second;
  if (cache_.size() >= kCachedMax) EmptyKeepingMemory(cache_);
  return cache_.emplace(table, state_machine_->RouteOf(table)).first->second;
}

int64_t GroupRoutes::BackoffMs(int attempt) { return int64_t{5} << std::min(attempt, 6); }

}  // namespace atlas
