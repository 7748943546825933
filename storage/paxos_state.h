// Durable WPaxos state (docs/storage.md §Column families, §Values): the acceptor/learner hard state
// of each object in the `acceptor` column family and its log entries in `log`.
//
// The host writes every Ready::persist through AddHardStateUpdate into the same WriteSet as
// the state machine's apply of Ready::committed, syncs it, and only then sends messages — so a
// promise or accepted entry is on disk before any peer can learn of it.
#pragma once

#include <functional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "consensus/replica.h"
#include "storage/store.h"

namespace atlas::storage {

std::string EncodeLogEntry(const consensus::LogEntry& entry);
std::optional<consensus::LogEntry> DecodeLogEntry(std::string_view in);

// Adds one object's hard-state update to `writes`, with the deletion of the log entries its
// truncation drops (update.truncated_from, update.truncated_through].
// Fails only if reading the log to delete fails.
absl::Status AddHardStateUpdate(const consensus::HardStateUpdate& update, WriteSet& writes);

// Everything written through AddHardStateUpdate, for constructing a Replica on restart.
// With `applied`, an object's log entries at or below applied(object) are left on disk (the
// Replica reads them through its LogSource when it needs them): a restart with a million
// tables does not read a million values into memory.
absl::StatusOr<consensus::PersistentState> LoadPersistentState(
    Store& store,
    const std::function<consensus::Slot(const consensus::ObjectId&)>& applied = nullptr);

// The redo marker of a staged snapshot's install (InstallingKey): written before the install's
// first part, deleted with the hard state that completes it (docs/storage.md §Snapshots).
std::string EncodeInstalling(const consensus::Snapshot& snapshot);
// Every marker left by installs a stop interrupted, by object.
absl::StatusOr<std::vector<std::pair<consensus::ObjectId, consensus::Snapshot>>> LoadInstalling(
    Store& store);

}  // namespace atlas::storage
