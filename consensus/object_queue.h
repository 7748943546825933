// A first-in first-out queue of distinct objects: the objects waiting for a catch-up slot, and
// the owned objects waiting for a re-anchoring turn (replica.h). Pushing one already queued
// keeps its place.
#ifndef ATLAS_CONSENSUS_OBJECT_QUEUE_H_
#define ATLAS_CONSENSUS_OBJECT_QUEUE_H_

#include <cstddef>
#include <deque>
#include <optional>
#include <utility>

#include "absl/container/btree_set.h"
#include "consensus/types.h"

namespace atlas::consensus::internal {

class ObjectQueue {
 public:
  void Push(const ObjectId& object) {
    if (queued_.insert(object).second) order_.push_back(object);
  }
  std::optional<ObjectId> Pop() {
    if (order_.empty()) return std::nullopt;
    ObjectId object = std::move(order_.front());
    order_.pop_front();
    queued_.erase(object);
    return object;
  }
  bool contains(const ObjectId& object) const { return queued_.contains(object); }
  bool empty() const { return order_.empty(); }
  size_t size() const { return order_.size(); }

 private:
  std::deque<ObjectId> order_;
  absl::btree_set<ObjectId> queued_;
};

}  // namespace atlas::consensus::internal

#endif  // ATLAS_CONSENSUS_OBJECT_QUEUE_H_
