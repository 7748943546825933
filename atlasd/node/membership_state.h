// The node's copy of the replicated membership (`atlas.nodes`, docs/cluster.md): the current
// configuration and the one before it (joint quorums of a change still settling need it),
// persisted in node metadata in the same WriteSet as the entry or snapshot that changed them.
//
// Thread-compatible (the NodeHost's).
#pragma once

#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "consensus/membership.h"
#include "storage/store.h"

namespace atlas {

class MembershipState {
 public:
  // The store's copy if it has one; else `initial` (empty members: a one-node cluster of
  // `self` in zone 1 with `quorum`) and `initial_previous`, persisted now so that a restart
  // never depends on how the node was first started.
  absl::Status Load(storage::Store& store, consensus::NodeId self,
                    const consensus::ClusterConfig& initial,
                    const std::optional<consensus::ClusterConfig>& initial_previous,
                    consensus::QuorumSpec quorum);

  // Applies one committed `atlas.nodes` command at the owner's stamp `stamp_ms` into
  // `writes`; returns the proposer's outcome. Changes of members or Fn/Fz make a new epoch
  // (the current configuration becomes the previous one); token changes keep it.
  absl::StatusOr<std::string> Apply(const std::string& command, int64_t stamp_ms,
                                    storage::WriteSet& writes);
  // Installs a snapshot of `atlas.nodes` (its encoded configuration) into `writes`. False if
  // it does not decode.
  bool Install(const std::string& snapshot, storage::WriteSet& writes);

  const consensus::ClusterConfig& current() const { return current_; }
  const consensus::ClusterConfig& previous() const { return previous_; }  // epoch 0: none

 private:
  void Persist(storage::WriteSet& writes, bool previous_too);

  consensus::ClusterConfig current_;
  consensus::ClusterConfig previous_;
};

}  // namespace atlas
