#include "atlasd/node/membership_state.h"

#include <string_view>

namespace atlas {
namespace {
constexpr std::string_view kCurrentField = "cluster_config";
constexpr std::string_view kPreviousField = "cluster_config_previous";
}  // namespace

absl::Status MembershipState::Load(storage::Store& store, consensus::NodeId self,
                                   const consensus::ClusterConfig& initial,
                                   const std::optional<consensus::ClusterConfig>& initial_previous,
                                   consensus::QuorumSpec quorum) {
  auto stored = store.GetNodeMeta(kCurrentField);
  if (!stored.ok()) return stored.status();
  auto stored_previous = store.GetNodeMeta(kPreviousField);
  if (!stored_previous.ok()) return stored_previous.status();
  if (stored->has_value()) {
    auto decoded = consensus::DecodeClusterConfig(**stored);
    if (!decoded.ok()) return decoded.status();
    current_ = *decoded;
    if (stored_previous->has_value()) {
      auto previous = consensus::DecodeClusterConfig(**stored_previous);
      if (!previous.ok()) return previous.status();
      previous_ = *previous;
    }
    return absl::OkStatus();
  }
  current_ = initial;
  if (current_.members.empty()) {
    current_.epoch = 1;
    current_.next_id = self + 1;
    current_.quorum = quorum;
    current_.members[self] = {self, 1, ""};
  }
  const bool previous_too = initial_previous && initial_previous->epoch > 0;
  if (previous_too) previous_ = *initial_previous;
  std::unique_ptr<storage::WriteSet> writes = store.NewWriteSet();
  Persist(*writes, previous_too);
  return store.Commit(*writes, /*sync=*/true);
}

absl::StatusOr<std::string> MembershipState::Apply(const std::string& command, int64_t stamp_ms,
                                                   storage::WriteSet& writes) {
  consensus::ClusterConfig before = current_;
  absl::StatusOr<std::string> result =
      consensus::ApplyMembershipCommand(current_, command, stamp_ms);
  if (!result.ok()) return result;
  // Only a new configuration has a predecessor (token changes keep the epoch).
  const bool new_epoch = current_.epoch != before.epoch;
  if (new_epoch) previous_ = std::move(before);
  Persist(writes, new_epoch);
  return result;
}

bool MembershipState::Install(const std::string& snapshot, storage::WriteSet& writes) {
  auto config = consensus::DecodeClusterConfig(snapshot);
  if (!config.ok()) return false;
  const bool new_epoch = config->epoch > current_.epoch;
  if (new_epoch) previous_ = current_;
  current_ = *config;
  Persist(writes, new_epoch);
  return true;
}

void MembershipState::Persist(storage::WriteSet& writes, bool previous_too) {
  storage::PutNodeMeta(writes, kCurrentField, consensus::EncodeClusterConfig(current_));
  if (previous_too) {
    storage::PutNodeMeta(writes, kPreviousField, consensus::EncodeClusterConfig(previous_));
  }
}

}  // namespace atlas
