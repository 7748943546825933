// The deterministic state machine every replica applies committed commands with
// (docs/design.md §State machine).
//
// Determinism is the whole point: the outcome of a command depends only on the table's prior
// state and the command itself (including the proposer's timestamp and the principal it
// authenticated), never on the local clock, config or anything else a replica might disagree
// on. A command that fails (WORM, permission) still occupies its slot and yields an error.
//
// Thread-compatible: called only by the single commit thread of a node.
#pragma once

#include <cstdint>
#include <string>

#include "proto/command.pb.h"
#include "rocksdb/utilities/write_batch_with_index.h"
#include "storage/store.h"

namespace atlas {

struct ApplyResult {
  bool ok = true;
  std::string error;      // the ERROR WARN message when !ok
  uint64_t revision = 0;  // the slot the command was applied as
};

class StateMachine {
 public:
  explicit StateMachine(storage::Store* store) : store_(store) {}

  // Applies `cmd` as slot `slot` of its table, adding its writes to `batch` (reads see earlier
  // commands of the same batch). Also records the table's new commit index in the batch.
  ApplyResult Apply(const proto::Command& cmd, uint64_t slot,
                    rocksdb::WriteBatchWithIndex* batch);

  // Records that `slot` of `table` was applied without a command (a no-op slot).
  void MarkApplied(const std::string& table, uint64_t slot, rocksdb::WriteBatchWithIndex* batch);

  // The table's last applied slot (through the batch; batch may be null).
  uint64_t CommitIndex(const std::string& table, rocksdb::WriteBatchWithIndex* batch);

  // A table's whole replicated state (rows, chunks, ACL, table state) as one byte string:
  // the application snapshot that lagging replicas install (docs/storage.md §Snapshots).
  std::string SnapshotTable(const std::string& table);
  // Replaces the table's state with `snapshot` in `batch`. False if it does not decode.
  bool InstallSnapshot(const std::string& table, std::string_view snapshot,
                       rocksdb::WriteBatchWithIndex* batch);

 private:
  ApplyResult ApplyPut(const proto::Command& cmd, uint64_t slot,
                       rocksdb::WriteBatchWithIndex* batch);
  ApplyResult ApplyDel(const proto::Command& cmd, rocksdb::WriteBatchWithIndex* batch);
  ApplyResult ApplyAcl(const proto::Command& cmd, rocksdb::WriteBatchWithIndex* batch);
  ApplyResult ApplyPlacement(const proto::Command& cmd, rocksdb::WriteBatchWithIndex* batch);

  bool GetThroughBatch(storage::Cf cf, const std::string& key, std::string* value,
                       rocksdb::WriteBatchWithIndex* batch);
  storage::TableAcl LoadAcl(const std::string& table, rocksdb::WriteBatchWithIndex* batch);
  storage::TableState LoadState(const std::string& table, rocksdb::WriteBatchWithIndex* batch);
  // Removes the blob chunks of a row's current value, if it has any.
  void DropChunks(const std::string& table, const std::string& row,
                  const storage::RowRecord& old, rocksdb::WriteBatchWithIndex* batch);

  storage::Store* store_;
};

}  // namespace atlas
