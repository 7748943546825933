#include "atlasd/replicator.h"

#include <chrono>
#include <cstdio>
#include <cstdlib>

namespace atlas {

LocalReplicator::LocalReplicator(storage::Store* store, LocalReplicatorOptions options)
    : store_(store), options_(options), state_machine_(store) {
  thread_ = std::thread([this] { Run(); });
}

LocalReplicator::~LocalReplicator() { Shutdown(); }

void LocalReplicator::Propose(proto::Command cmd, Done done) {
  size_t bytes = cmd.ByteSizeLong();
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!stopping_ && queue_.size() < options_.queue_commands_max &&
        queue_bytes_ + bytes <= options_.queue_bytes_max) {
      queue_bytes_ += bytes;
      queue_.push_back(Pending{std::move(cmd), std::move(done), bytes});
      cv_.notify_one();
      return;
    }
  }
  ApplyResult r;
  r.ok = false;
  r.error = "overloaded: commit queue full, retry later";
  done(std::move(r));
}

void LocalReplicator::ReadBarrier(const std::string&, std::function<void(absl::Status)> done) {
  // One node: a write is acknowledged only after its synced batch is visible in RocksDB, so
  // every read that starts now already sees it.
  done(absl::OkStatus());
}

void LocalReplicator::Shutdown() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_ && !thread_.joinable()) return;
    stopping_ = true;
    cv_.notify_all();
  }
  if (thread_.joinable()) thread_.join();
}

void LocalReplicator::Run() {
  std::deque<Pending> batch;
  for (;;) {
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stopping, and everything queued was committed
      // Group commit: take everything that queued up while the previous batch was syncing.
      size_t bytes = 0;
      while (!queue_.empty() && batch.size() < options_.batch_commands_max &&
             (batch.empty() || bytes + queue_.front().bytes <= options_.batch_bytes_max)) {
        bytes += queue_.front().bytes;
        batch.push_back(std::move(queue_.front()));
        queue_.pop_front();
      }
      queue_bytes_ -= bytes;
    }
    CommitBatch(batch);
    batch.clear();
  }
}

void LocalReplicator::CommitBatch(std::deque<Pending>& batch) {
  rocksdb::WriteBatchWithIndex wb(rocksdb::BytewiseComparator(), 0, /*overwrite_key=*/true);
  std::vector<ApplyResult> results;
  results.reserve(batch.size());
  auto now_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                    std::chrono::system_clock::now().time_since_epoch())
                    .count();
  for (Pending& p : batch) {
    // The owner stamps each command; never decreasing, so WORM retention cannot be shortened
    // by a clock step backwards.
    last_timestamp_ms_ = std::max<int64_t>(last_timestamp_ms_, now_ms);
    p.cmd.set_timestamp_ms(last_timestamp_ms_);
    auto it = commit_index_.find(p.cmd.table());
    if (it == commit_index_.end()) {
      it = commit_index_.emplace(p.cmd.table(), state_machine_.CommitIndex(p.cmd.table(), &wb))
               .first;
    }
    uint64_t slot = ++it->second;
    results.push_back(state_machine_.Apply(p.cmd, slot, &wb));
  }
  absl::Status s = store_->Write(wb.GetWriteBatch(), options_.sync);
  if (!s.ok()) {
    // A failed (synced) write leaves durability unknown: stop rather than acknowledge.
    std::fprintf(stderr, "FATAL: commit write failed: %s\n", s.ToString().c_str());
    std::abort();
  }
  commits_ += batch.size();
  ++batches_;
  for (size_t i = 0; i < batch.size(); ++i) batch[i].done(std::move(results[i]));
}

}  // namespace atlas
