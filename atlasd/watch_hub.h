// WATCH delivery (docs/watch.md): streams each watched table's row changes, by revision, from
// the change log the state machine writes (Cf::kChanges) to the watchers' connections.
//
// One thread. The node thread only queues "table T is at revision R" (Notify); the hub reads
// the changes from RocksDB and sends them, so a watcher costs no memory for the events it has
// not received yet: it holds a cursor, and its connection holds at most `backlog_max` unsent
// bytes (plus one event) before delivery to it pauses. A watcher paused for `stall` (its client
// is not reading) and more than `lag_max` revisions behind is cut off with an error that says where to resume; one
// whose cursor the history no longer covers is told it was compacted.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "socketproto/server.h"
#include "storage/store.h"

namespace atlas {

struct WatchHubOptions {
  uint64_t lag_max = 5'000;  // revisions a paused watcher may be behind before it is cut off
  size_t backlog_max = size_t{1} << 20;  // unsent bytes at which delivery to a watcher pauses
  size_t watchers_max = 100'000;      // on this node
  size_t page_events = 256;           // changes read from RocksDB at once
  size_t page_bytes = size_t{4} << 20;
  std::chrono::milliseconds tick{50};  // paused, closed and cancelled watchers are looked at
  // A watcher counts as not reading once its backlog stayed full this long.
  std::chrono::milliseconds stall{2000};
  // May `principal` (admin: one of admin-users) read `table` now? Asked before each page of
  // events, so a revoke ends the watch before anything more is sent.
  std::function<bool(const std::string& table, const std::optional<std::string>& principal,
                     bool admin)>
      may_read;
};

class WatchHub {
 public:
  WatchHub(storage::Store* store, WatchHubOptions options);
  ~WatchHub();
  WatchHub(const WatchHub&) = delete;
  WatchHub& operator=(const WatchHub&) = delete;

  struct Spec {
    std::string table;
    std::string row_prefix;
    uint64_t after = 0;   // events with revisions after this one
    uint64_t latest = 0;  // the table's revision on this node when the watch started
    std::optional<std::string> tag;  // the WATCH's [ID:x]: every frame carries it
    uint64_t connection_id = 0;
    std::optional<std::string> principal;
    bool admin = false;
    std::shared_ptr<socketproto::OutputStream> stream;
    // Ends the WATCH request: nullopt = `OK`, else `ERROR WARN <message>`. Called once.
    std::function<void(std::optional<std::string> error)> end;
  };
  // Sends `WATCHING <after>` and registers the watcher; its events follow. An error (and
  // nothing sent) when the node has watchers_max watchers or the tag is in use.
  absl::Status Add(Spec spec);
  // UNWATCH: ends the connection's watch tagged `tag` with OK, then calls `after` (so the
  // UNWATCH's own OK follows the watch's). False (and `after` dropped) when there is none.
  bool Cancel(uint64_t connection_id, const std::string& tag, std::function<void()> after);
  // From the node thread: the tables' revisions moved (everything: snapshots replaced states).
  // Never blocks for long.
  void Notify(std::vector<std::pair<std::string, uint64_t>> changes, bool everything);
  // Shutdown: ends every watch with `ERROR WARN <why>` and waits until they have ended.
  void EndAll(const std::string& why);

  size_t watchers() const { return count_.load(); }
  uint64_t events_sent() const { return events_sent_.load(); }
  uint64_t cut_off() const { return cut_off_.load(); }

 private:
  struct Watcher;
  struct Change;
  void Run();
  // Sends what the watcher has not seen, as far as its connection takes it; true when it ended.
  bool Deliver(Watcher& w, uint64_t latest);
  void End(Watcher& w, std::optional<std::string> error);
  // Changes of `table` after `after`, up to `latest`, one page (cached for this round).
  const std::vector<Change>* Page(const std::string& table, uint64_t after, uint64_t latest);

  storage::Store* store_;
  WatchHubOptions options_;
  mutable absl::Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::optional<std::string> end_all_ ABSL_GUARDED_BY(mu_);
  std::vector<std::shared_ptr<Watcher>> watchers_ ABSL_GUARDED_BY(mu_);
  // UNWATCH asked for these (of watchers_), with what to run after their OK.
  std::map<const Watcher*, std::function<void()>> cancels_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, uint64_t> latest_ ABSL_GUARDED_BY(mu_);  // watched tables
  std::map<std::string, uint64_t> dirty_ ABSL_GUARDED_BY(mu_);
  bool everything_ ABSL_GUARDED_BY(mu_) = false;
  // This round's pages: (table, after) -> changes. Hub thread only.
  std::map<std::pair<std::string, uint64_t>, std::vector<Change>> pages_;
  std::atomic<size_t> count_{0};
  std::atomic<uint64_t> events_sent_{0}, cut_off_{0};
  std::thread thread_;
};

}  // namespace atlas
