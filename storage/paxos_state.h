// Durable WPaxos state (docs/storage.md §Column families, §Values): the acceptor/learner hard state
// of each object in the `acceptor` column family and its log entries in `log`.
//
// The host writes every Ready::persist through AddHardStateUpdate into the same WriteSet as
// the state machine's apply of Ready::committed, syncs it, and only then sends messages — so a
// promise or accepted entry is on disk before any peer can learn of it.
#pragma once

#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "consensus/replica.h"
#include "storage/store.h"

namespace atlas::storage {

std::string EncodeLogEntry(const consensus::LogEntry& entry);
std::optional<consensus::LogEntry> DecodeLogEntry(std::string_view in);

// Adds one object's hard-state update to `writes`. `previous_truncated_through` is what the
// object's log was truncated through before this update (log entries in between are deleted).
void AddHardStateUpdate(const consensus::HardStateUpdate& update,
                        consensus::Slot previous_truncated_through, WriteSet& writes);

// Everything written through AddHardStateUpdate, for constructing a Replica on restart.
absl::StatusOr<consensus::PersistentState> LoadPersistentState(Store& store);

}  // namespace atlas::storage
