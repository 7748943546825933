// The owner's expirer (shared/spec/transactions.md §4, docs/protocol.md §Expiring rows): rows
// whose expiry has passed are removed through their table's log, as deletes that take effect
// only if the row is still expired when applied, so that replicas, dumps and watchers see
// the removal like any other change. Readers hide an expired row before its removal commits.
//
// Which tables to look at: those with an expiry index (storage::ExpiryKey), as this node has
// applied them (StateMachine::TakeExpiringTables, and at start the node's list of them,
// storage::ExpiringTableKey). Only the owner of a table's object proposes removals; the
// others keep the table in the list for when they own it.
#include "atlasd/node/node_host.h"

#include <spdlog/spdlog.h>

#include <map>
#include <utility>

#include "socketproto/str.h"
#include "storage/keys.h"

namespace atlas {

namespace {
// Removals per proposal: a batch as one transaction of deletes. The next batch of a table
// goes as soon as one commits, so a million rows due at once leave at the commit rate.
constexpr size_t kExpireBatchRows = 256;
constexpr size_t kExpireBatchBytes = size_t{1} << 20;
}  // namespace

absl::Status NodeHost::LoadExpiringTables() {
  auto [lo, hi] = storage::AllExpiringTablesRange();
  std::unique_ptr<storage::Cursor> it = store_->Scan(storage::Cf::kMeta, lo, hi);
  for (it->Seek(lo); it->Valid(); it->Next()) {
    expiring_.emplace(it->key().substr(lo.size()));
  }
  ArmExpirer(kExpireEveryMs);
  return it->status();
}

void NodeHost::NoteExpiringTables() {
  std::set<std::string> fresh = state_machine_.TakeExpiringTables();
  if (fresh.empty()) return;
  expiring_.merge(fresh);
  ArmExpirer(kExpireEveryMs);
}

void NodeHost::ArmExpirer(int64_t delay_ms) {
  // An idle node with no expiring rows keeps sleeping. Not a timer: a clean shutdown does not
  // wait for the expirer (NodeHost::Idle).
  if (expiring_.empty()) return;
  const int64_t at = now_ms_ + delay_ms;
  if (expire_at_ms_ < 0 || at < expire_at_ms_) expire_at_ms_ = at;
}

void NodeHost::RunExpirer() {
  if (expire_at_ms_ < 0 || now_ms_ < expire_at_ms_) return;
  expire_at_ms_ = -1;
  ExpireDue();
}

void NodeHost::ExpireDue() {
  std::map<std::string, std::string> from = std::exchange(expire_from_, {});
  for (auto it = expiring_.begin(); it != expiring_.end();) {
    const std::string table = *it;
    if (expiring_busy_.contains(table) || !replica_->IsOwner(routes_.Of(table).object)) {
      ++it;
      continue;
    }
    std::vector<std::string> due;
    std::string next;
    auto cursor = from.find(table);
    if (!DueRows(table, cursor == from.end() ? "" : cursor->second, &due, &next)) {
      if (cursor != from.end()) {  // past the entries of a continued batch: look again later
        ++it;
        continue;
      }
      std::unique_ptr<storage::WriteSet> w = store_->NewWriteSet();
      w->Delete(storage::Cf::kMeta, storage::ExpiringTableKey(table));
      if (absl::Status s = store_->Commit(*w, /*sync=*/false); !s.ok()) {
        spdlog::warn("expirer: {}", s.ToString());
      }
      it = expiring_.erase(it);
      continue;
    }
    if (!due.empty()) ProposeRemovals(table, std::move(due), std::move(next));
    ++it;
  }
  ArmExpirer(kExpireEveryMs);
}

bool NodeHost::DueRows(const std::string& table, const std::string& from,
                       std::vector<std::string>* due, std::string* next) {
  auto [lo, hi] = storage::ExpiryRange(table);
  // A batch's successor starts where it ended: the entries before are deleted (tombstones
  // that a scan from the start would step over again for every batch).
  std::unique_ptr<storage::Cursor> it =
      store_->Scan(storage::Cf::kMeta, std::max(lo, from), hi);
  it->Seek(std::max(lo, from));
  const bool any = it->Valid();
  size_t bytes = 0;
  for (; it->Valid() && due->size() < kExpireBatchRows && bytes < kExpireBatchBytes;
       it->Next()) {
    int64_t expires_ms = 0;
    std::string row;
    if (!storage::DecodeExpiryKey(table, it->key(), &expires_ms, &row)) continue;
    if (expires_ms > wall_ms_) break;  // in time order: the rest are not due yet
    bytes += row.size();
    due->push_back(std::move(row));
    next->assign(it->key());
    next->push_back('\0');  // just after this entry
  }
  return any;
}

void NodeHost::ProposeRemovals(const std::string& table, std::vector<std::string> rows,
                               std::string next) {
  proto::Command cmd;
  cmd.set_table(table);
  cmd.set_admin(true);  // the cluster's own change: no principal's ACL applies
  for (std::string& row : rows) {
    proto::Command* op = cmd.mutable_txn()->add_ops();
    op->set_table(table);
    op->mutable_del()->set_row(std::move(row));
    op->mutable_del()->set_only_expired(true);
  }
  expiring_busy_.insert(table);
  Propose(std::move(cmd), [this, table, next = std::move(next)](ApplyResult r) {
    expiring_busy_.erase(table);
    if (!r.ok) spdlog::debug("expirer: removals in {} not applied: {}", table, r.error);
    // More may be due already: the next batch goes in the next pass of the node thread, not
    // at the next round (which starts from the table's first entry again, for rows written
    // since that are due earlier). Not in this pass: the commands queued meanwhile go first.
    if (!r.ok || r.changes.empty()) return;
    expire_from_[table] = next;
    ArmExpirer(0);
  });
}

}  // namespace atlas
