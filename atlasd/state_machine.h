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

#include <algorithm>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "atlasd/meta_cache.h"
#include "consensus/types.h"
#include "proto/command.pb.h"
#include "storage/store.h"

namespace atlas {

class SnapshotStream;
class SnapshotPieces;
class SnapshotParser;

// What an object snapshot says besides its tables' rows: its member records, and the state
// of each table (the last entry of the table's section, so a first pass reads them all).
struct SnapshotHeads {
  std::vector<std::pair<std::string, std::string>> members;  // table, record
  std::map<std::string, storage::TableState> tables;
};  // atlasd/snapshot_stream.h

// A read inside a transaction, as the node that proposed it answers (atlasd/commands/keys.cc).
struct TxnRead {
  proto::Read::Kind kind = proto::Read::GET;
  std::string key;                        // table.row
  std::optional<storage::RowRecord> row;  // nullopt: no such row
  std::string value;                      // GET and BLOB: the value's bytes
};

// What the reads of one transaction may return in all: decided the same on every replica (a
// constant, not a setting), before anything is written.
inline constexpr uint64_t kTxnReadBytesMax = uint64_t{128} << 20;

struct ApplyResult {
  bool ok = true;
  std::string error;      // the ERROR WARN message when !ok
  uint64_t revision = 0;  // the slot the command was applied as
  // Refused because the object whose log carried it does not govern the table (it moved, or
  // has not arrived yet): certainly not executed, safe to retry with the newer routing.
  bool moved = false;
  // Not ordered, and it may still take effect (a timeout, a forward whose answer was lost):
  // the client must not assume either way.
  bool outcome_unknown = false;
  // A TABLE GROUP that sealed the table's interval: its adopt must follow (the proposer
  // builds it, see NodeHost::AdoptAfterSeal).
  bool sealed = false;
  // A row changed (a PUT, or a DEL of an existing row): set by ApplyPut/ApplyDel.
  bool row_changed = false;
  // When a row changed: the table's new revision, whose change is in Cf::kChanges (WATCH).
  uint64_t table_revision = 0;
  // A transaction: its reads in order (when asked for), and each table it changed with the
  // table's last new revision.
  std::vector<TxnRead> reads = {};
  std::vector<std::pair<std::string, uint64_t>> changes = {};
};

// Revisions of row changes each table keeps for WATCH ... FROM (per node; older ones are
// deleted as new ones are written).
inline constexpr uint64_t kDefaultChangeHistory = 10'000;
inline constexpr uint64_t kDefaultChangeHistoryBytes = uint64_t{8} << 20;

// What a node keeps of each table's row changes for WATCH ... FROM (docs/watch.md): the last
// `changes` of them, and no more than about `bytes` of them (0: no bound in bytes).
struct ChangeHistory {
  uint64_t changes = kDefaultChangeHistory;
  uint64_t bytes = kDefaultChangeHistoryBytes;
};

// A table's revision as applied on this node, and the oldest revision a WATCH may resume
// after (the change log holds every change after it). Reads the database.
struct RevisionRange {
  uint64_t latest = 0;
  uint64_t resumable_from = 0;
};
absl::StatusOr<RevisionRange> TableRevisions(storage::Store* store, const std::string& table);

// Largest table state TABLE GROUP moves: the adopt carries it inline in one log entry, which
// must fit a peer message (proto/peer_convert.h: 129 MiB per command, 256 MiB per message)
// next to other commands of its batch.
inline constexpr uint64_t kAdoptBytesMax = 64ull << 20;

// Memory for the table and object records of the applies (atlasd/meta_cache.h): about 100,000
// tables' records. The daemon sizes it from its memory budget (RecordCacheBytes).
inline constexpr size_t kDefaultMetaCacheBytes = size_t{32} << 20;
// Memory for the row records the applies read (a PUT or DEL reads the row it replaces: WORM,
// chunks), kept as the store has them, inline values included.
inline constexpr size_t kDefaultRowCacheBytes = size_t{32} << 20;
// Each of the two record caches for a node of `memory_budget_bytes` (docs/storage.md §Memory):
// an eighth of it, so that one setting scales the node's memory (the default budget, 256 MiB,
// gives the defaults above).
inline size_t RecordCacheBytes(size_t memory_budget_bytes) { return memory_budget_bytes / 8; }

class StateMachine {
 public:
  // `meta`, `rows`: the caches of table and object records and of row records; by default
  // their own, of `cache_bytes` each. Caches shared with an earlier
  // incarnation are the simulator's bug switch (NodeHostOptions::test_meta_cache): they
  // outlive Readies that never reached the disk.
  explicit StateMachine(storage::Store* store, ChangeHistory change_history = {},
                        std::shared_ptr<MetaCache> meta = nullptr,
                        std::shared_ptr<MetaCache> rows = nullptr,
                        size_t cache_bytes = kDefaultMetaCacheBytes)
      : store_(store),
        change_history_(std::max<uint64_t>(change_history.changes, 1)),
        change_history_bytes_(change_history.bytes),
        trim_step_(std::clamp<uint64_t>(change_history_ / 16, 1, 256)),
        meta_(meta ? std::move(meta) : std::make_shared<MetaCache>(cache_bytes)),
        rows_(rows ? std::move(rows) : std::make_shared<MetaCache>(cache_bytes)) {}


  // The consensus object of a table in group `group` ("" = none): "@<group>", a name no table
  // can have, or the table itself.
  static std::string ObjectOf(const std::string& table, const std::string& group);
  static bool IsGroupObject(std::string_view object) { return object.starts_with('@'); }
  // Whether log command `c` may change what KEY GET or KEY INFO of `key` ("table.row")
  // returns: only a put or delete of that row does, but anything else (a transaction, an ACL
  // or placement change, an anchor) counts as if it did (ReplicaConfig::may_write).
  static bool MayWrite(const consensus::Command& c, std::string_view key);

  // Applies `cmd` as slot `slot` of consensus object `object`, adding its writes to `batch`
  // (reads see earlier commands of the same batch). Records the object's new commit index.
  // The table and object records it changes reach `batch` in FlushMeta: call it before the
  // batch is committed.
  // A transaction's reads are answered only `with_reads` (the node that proposed it).
  ApplyResult Apply(const proto::Command& cmd, const std::string& object, uint64_t slot,
                    storage::WriteSet* batch, bool with_reads = true);
  // A table's own object.
  ApplyResult Apply(const proto::Command& cmd, uint64_t slot,
                    storage::WriteSet* batch) {
    return Apply(cmd, cmd.table(), slot, batch);
  }

  // Writes the records the applies changed since the last call into `batch`.
  void FlushMeta(storage::WriteSet* batch);

  // The tables that got rows that expire since the last call (written to the store as
  // storage::ExpiringTableKey too): where the owner's expirer looks (NodeHost::ExpireDue).
  std::set<std::string> TakeExpiringTables() { return std::exchange(expiring_, {}); }
  const MetaCache& meta_cache() const { return *meta_; }

  // Records that `slot` of `object` was applied without a command (a no-op slot).
  // (It reaches a WriteSet in the next FlushMeta.)
  void MarkApplied(const std::string& object, uint64_t slot);

  // The object's last applied slot (through the batch; batch may be null).
  uint64_t CommitIndex(const std::string& object, storage::WriteSet* batch);

  // Routing, from the locally applied state in the database.
  struct Route {
    std::string object;    // where the table's commands go now
    bool pending = false;  // sealed here, adopt not applied yet
    // `object` governs the table here and its state is current in it: reads after a read
    // barrier on `object` are linearizable.
    bool live = true;
  };
  // Names that are objects already (a group "@g", "atlas.nodes") route to themselves.
  Route RouteOf(const std::string& table);
  // When the table was sealed here but its adopt has not applied: the adopt to propose.
  std::optional<proto::Command> BuildAdopt(const std::string& table);

  // A table's whole replicated state (rows, chunks, ACL, table state) as one byte string
  // (docs/storage.md §Snapshots).
  std::string SnapshotTable(const std::string& table);
  // Called between the writes of a large install with the batch they go to: it may commit
  // the batch and Clear it (the caller keeps that safe across a crash, docs/storage.md
  // §Snapshots).
  using Spill = std::function<void(storage::WriteSet&)>;
  // Replaces the table's rows, chunks and metadata with the entries of the table's section
  // `p` is in, except its state record (`theirs`), which the caller writes after. False if
  // they do not decode.
  bool InstallTable(const std::string& table, const storage::TableState& theirs,
                    SnapshotParser& p, storage::WriteSet* batch, const Spill& spill);
  // An object's snapshot: its member records and the state of the tables it governs; what a
  // lagging replica installs when the log it misses was truncated. Streamed from a store
  // snapshot taken now, as of the object's applied slot.
  // (`test_unpinned`: TEST ONLY, the stream reads the live store, which moves on under it.)
  std::unique_ptr<SnapshotStream> OpenObjectSnapshot(const std::string& object,
                                                     bool test_unpinned = false);
  // The same bytes at once (tests, small objects).
  std::string SnapshotObject(const std::string& object);
  // Installs it. A table's state is replaced only if the snapshot's is at a later position
  // (gen, commit index) than the local one. False if it does not decode. It is read twice, a
  // piece at a time: a table may be larger than memory. The caller then marks the object
  // applied through the snapshot's slot (MarkApplied).
  // `heads`: what ReadSnapshotHeads read from it, if the caller has it (one pass fewer).
  bool InstallObjectSnapshot(const std::string& object, SnapshotPieces& snapshot,
                             std::optional<SnapshotHeads> heads, storage::WriteSet* batch,
                             const Spill& spill = {});
  // A first pass over an object snapshot: whether all of it decodes (a learner checks what a
  // peer sent), and if so its member records and its tables' state records.
  static std::optional<SnapshotHeads> ReadSnapshotHeads(SnapshotPieces& snapshot);

 private:
  // `now_ms`: the time the command is judged at (its stamp, never before the table's clock);
  // `as`: the command whose principal it acts as (itself, or its transaction).
  // `revision`: the table revision the row gets if it is written.
  ApplyResult ApplyPut(const proto::Command& cmd, const proto::Command& as, int64_t now_ms,
                       uint64_t revision, storage::WriteSet* batch);
  ApplyResult ApplyDel(const proto::Command& cmd, const proto::Command& as, int64_t now_ms,
                       storage::WriteSet* batch);
  // After a command of the table's: its position (slot), clock, and revision if it changed a
  // row, whose change it appends to the history.
  void Settle(const proto::Command& cmd, uint64_t slot, int64_t now_ms, ApplyResult& result,
              storage::WriteSet* batch);
  // Why `cmd` (a put or a del, of its table) may not write over its row as it is now
  // (`current`, null: absent) at `now_ms`, if it may not: IF REV, WORM, the retention bound.
  // Not the ACL.
  static std::optional<std::string> WriteRefused(const proto::Command& cmd, int64_t now_ms,
                                                 const storage::RowRecord* current);
  // The retention a put gives its row at `now_ms` (0: none), and its expiry (0: none).
  static int64_t WormUntil(const proto::Put& put, int64_t now_ms);
  static int64_t ExpiresAt(const proto::Put& put, int64_t now_ms);
  // Keeps the table's expiry index (storage::ExpiryKey) and the node's list of expiring
  // tables right as a row goes from `old` to `now` (null: absent).
  void IndexExpiry(const std::string& table, const std::string& row,
                   const storage::RowRecord* old, const storage::RowRecord* now,
                   storage::WriteSet* batch);
  // The row's record through the batch (and the row cache).
  std::optional<storage::RowRecord> LoadRow(const std::string& table, const std::string& row,
                                            storage::WriteSet* batch);
  // Why `object`'s log may not change `table` at `slot` now, if it may not: the result to
  // answer instead (not governed here, or already included in the table's state).
  std::optional<ApplyResult> NotGoverned(const proto::Command& cmd, const std::string& object,
                                         const std::string& table, uint64_t slot,
                                         storage::WriteSet* batch);
  // TXN (shared/spec/transactions.md §3): TxnRefused checks every command against the state the ones
  // before it would leave, writing nothing; only if none is refused are they applied.
  ApplyResult ApplyTxn(const proto::Command& cmd, const std::string& object, uint64_t slot,
                       storage::WriteSet* batch, bool with_reads);
  std::optional<std::string> TxnRefused(const proto::Command& cmd, const std::string& object,
                                        uint64_t slot, storage::WriteSet* batch,
                                        std::optional<ApplyResult>* not_governed);
  TxnRead ReadInTxn(const proto::Command& op, int64_t now_ms, storage::WriteSet* batch);
  ApplyResult ApplyAcl(const proto::Command& cmd, storage::WriteSet* batch);
  ApplyResult ApplyPlacement(const proto::Command& cmd, const std::string& object, uint64_t slot,
                             storage::WriteSet* batch);
  ApplyResult ApplyAdopt(const proto::Command& cmd, const std::string& object, uint64_t slot,
                         storage::WriteSet* batch);

  bool GetThroughBatch(storage::Cf cf, const std::string& key, std::string* value,
                       storage::WriteSet* batch);
  // A record of `cf` held in `cache`: from there, else through the batch (or the store) into it.
  bool GetCached(MetaCache& cache, storage::Cf cf, const std::string& key, std::string* value,
                 storage::WriteSet* batch);
  bool GetMeta(const std::string& key, std::string* value, storage::WriteSet* batch) {
    return GetCached(*meta_, storage::Cf::kMeta, key, value, batch);
  }
  storage::TableAcl LoadAcl(const std::string& table, storage::WriteSet* batch);
  storage::TableState LoadState(const std::string& table, storage::WriteSet* batch);
  void PutState(const std::string& table, const storage::TableState& st);  // via FlushMeta
  std::vector<storage::TableInterval> LoadMoves(const std::string& table,
                                                storage::WriteSet* batch);
  // The object's record of `table`; a table's own object governs it until sealed.
  std::optional<storage::ObjectMember> LoadMember(const std::string& object,
                                                  const std::string& table,
                                                  storage::WriteSet* batch);
  // Bytes of the table's state (what its snapshot would hold).
  uint64_t TableBytes(const std::string& table, storage::WriteSet* batch);
  // Removes the blob chunks of a row's current value, if it has any.
  void DropChunks(const std::string& table, const std::string& row,
                  const storage::RowRecord& old, storage::WriteSet* batch);

  // Writes the change that `cmd` made as the table's revision `state.revision` (adding its
  // bytes to state.change_bytes); every trim step, drops what falls out of the history.
  void AppendChange(const proto::Command& cmd, storage::TableState& state,
                    storage::WriteSet* batch);
  // At a trim step: deletes the changes past the last change_history_ (count_step); marks the
  // table's change_bytes and deletes the changes up to the newest mark that leaves
  // change_history_bytes_ after it (bytes_step).
  void TrimChanges(const std::string& table, const storage::TableState& state, bool count_step,
                   bool bytes_step, storage::WriteSet* batch);
  // The revision of the table's oldest change kept (0: none), as `batch` sees it.
  uint64_t OldestChange(const std::string& table, storage::WriteSet* batch);
  // The revision up to which the table's changes are deleted (ChangeTrimKey).
  uint64_t TrimmedThrough(const std::string& table, storage::WriteSet* batch);
  // Deletes the table's change log (its history no longer leads to its state: a snapshot).
  void DropChanges(const std::string& table, storage::WriteSet* batch);
  // Deletes every key of `cf` in [lo, hi), as seen through `batch`, in `batch`.
  void DeleteRange(storage::Cf cf, const std::string& lo, const std::string& hi,
                   storage::WriteSet* batch);

  storage::Store* store_;
  uint64_t change_history_;
  uint64_t change_history_bytes_;
  // The change history is trimmed every trim_step_ revisions, that many at once (AppendChange):
  // a table keeps between change_history_ and change_history_ + trim_step_ - 1 changes; and
  // every change_history_bytes_ / 16 bytes of changes, down to about change_history_bytes_.
  uint64_t trim_step_;
  std::shared_ptr<MetaCache> meta_;
  // Row records (Cf::kRows), written to the batch directly and held here as written: never
  // dirty, cleared when a snapshot replaces rows.
  std::shared_ptr<MetaCache> rows_;
  std::set<std::string> expiring_;  // TakeExpiringTables
};

}  // namespace atlas
