#include "atlasd/watch_hub.h"

#include <pthread.h>

#include <algorithm>
#include <set>
#include <string_view>
#include <tuple>

#include "atlasd/acl.h"
#include "atlasd/state_machine.h"
#include "socketproto/formatter.h"
#include "socketproto/str.h"
#include "storage/keys.h"
#include "storage/records.h"

namespace atlas {

struct WatchHub::Change {
  uint64_t revision = 0;
  bool del = false;
  std::string row;
  std::string value;
};

struct WatchHub::Watcher {
  Spec spec;
  uint64_t cursor = 0;  // the last revision delivered (or skipped by the prefix); hub thread
  bool ended = false;   // hub thread
  // Since when its backlog has been full (hub thread).
  std::optional<std::chrono::steady_clock::time_point> paused_since;
};

WatchHub::WatchHub(storage::Store* store, WatchHubOptions options)
    : store_(store), options_(std::move(options)) {
  thread_ = std::thread([this] {
    pthread_setname_np(pthread_self(), "atlas-watch");
    Run();
  });
}

WatchHub::~WatchHub() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;  // the hub thread waits on a condition of mu_: this wakes it
  }
  if (thread_.joinable()) thread_.join();
}

absl::Status WatchHub::Add(Spec spec) {
  absl::MutexLock lock(&mu_);
  if (stopping_ || end_all_) return absl::UnavailableError("server shutting down");
  if (watchers_.size() >= options_.watchers_max) {
    return absl::ResourceExhaustedError(StrCat("too many watchers on this node (",
                                               options_.watchers_max, "; setting watch-max)"));
  }
  auto w = std::make_shared<Watcher>();
  w->cursor = spec.after;
  w->spec = std::move(spec);
  // First frame, before any event: the stream keeps the order of what is sent to it.
  w->spec.stream->Send(
      socketproto::Reply(w->spec.tag).Line(StrCat("WATCHING ", w->cursor)).Take());
  uint64_t& latest = latest_[w->spec.table];
  latest = std::max(latest, w->spec.latest);
  dirty_[w->spec.table] = latest;
  watchers_.push_back(std::move(w));
  count_ = watchers_.size();
  return absl::OkStatus();
}

bool WatchHub::Cancel(uint64_t connection_id, const std::string& tag,
                      std::function<void()> after) {
  absl::MutexLock lock(&mu_);
  for (const auto& w : watchers_) {
    if (w->spec.connection_id == connection_id && w->spec.tag == tag &&
        !cancels_.contains(w.get())) {
      cancels_[w.get()] = std::move(after);
      return true;
    }
  }
  return false;
}

void WatchHub::Notify(std::vector<std::pair<std::string, uint64_t>> changes, bool everything) {
  // The hub thread waits for a condition on these; unlocking mu_ wakes it.
  absl::MutexLock lock(&mu_);
  everything_ = everything_ || (everything && !latest_.empty());
  for (auto& [table, revision] : changes) {
    auto it = latest_.find(table);
    if (it == latest_.end()) continue;  // nobody watches it: nothing to remember (bounded)
    uint64_t& d = dirty_[table];
    d = std::max(d, revision);
  }
}

void WatchHub::EndAll(const std::string& why) {
  absl::MutexLock lock(&mu_);
  end_all_ = why;
  auto ended = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return watchers_.empty(); };
  mu_.AwaitWithTimeout(absl::Condition(&ended), absl::Seconds(2));
}

void WatchHub::Run() {
  // After EndAll, only watchers still to end are work (else this loop would spin until the hub
  // is destroyed).
  auto work_to_do = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return stopping_ || (end_all_ && !watchers_.empty()) || everything_ || !dirty_.empty() ||
           !cancels_.empty();
  };
  mu_.Lock();
  for (;;) {
    mu_.AwaitWithTimeout(absl::Condition(&work_to_do), absl::FromChrono(options_.tick));
    if (stopping_) break;
    const bool everything = std::exchange(everything_, false);
    for (const auto& [table, revision] : dirty_) {
      uint64_t& latest = latest_[table];
      latest = std::max(latest, revision);
    }
    dirty_.clear();
    std::vector<std::shared_ptr<Watcher>> work = watchers_;
    std::map<std::string, uint64_t> latest = latest_;
    const std::optional<std::string> end_all = end_all_;
    std::vector<bool> cancel;
    std::vector<std::function<void()>> after_cancel;
    for (const auto& w : work) {
      auto c = cancels_.find(w.get());
      cancel.push_back(c != cancels_.end());
      after_cancel.push_back(c != cancels_.end() ? std::exchange(c->second, nullptr) : nullptr);
    }
    mu_.Unlock();

    if (everything) {
      // Snapshots replaced tables' states: their revisions may have jumped.
      for (auto& [table, revision] : latest) {
        if (auto r = TableRevisions(store_, table); r.ok()) revision = std::max(revision, r->latest);
      }
    }
    pages_.clear();
    for (size_t i = 0; i < work.size(); ++i) {
      Watcher& w = *work[i];
      if (end_all) {
        End(w, *end_all);
      } else if (cancel[i]) {
        End(w, std::nullopt);
      } else {
        // A cancel that arrived after this round's snapshot is handled next round.
        Deliver(w, latest[w.spec.table]);
      }
    }
    pages_.clear();
    for (auto& after : after_cancel) {
      if (after) after();
    }

    mu_.Lock();
    for (const auto& [table, revision] : latest) {
      uint64_t& l = latest_[table];
      l = std::max(l, revision);
    }
    std::erase_if(cancels_, [](const auto& c) { return c.first->ended; });
    std::erase_if(watchers_, [](const auto& w) { return w->ended; });
    count_ = watchers_.size();
    // Only watched tables are remembered.
    std::set<std::string_view> watched;
    for (const auto& w : watchers_) watched.insert(w->spec.table);
    std::erase_if(latest_, [&](const auto& entry) { return !watched.contains(entry.first); });
  }
  mu_.Unlock();
}

void WatchHub::End(Watcher& w, std::optional<std::string> error) {
  if (w.ended) return;
  w.ended = true;
  w.spec.end(std::move(error));
}

const std::vector<WatchHub::Change>* WatchHub::Page(const std::string& table, uint64_t after,
                                                     uint64_t latest) {
  auto key = std::make_pair(table, after);
  if (auto it = pages_.find(key); it != pages_.end()) return &it->second;
  std::vector<Change>& page = pages_[key];
  const std::string lo = storage::ChangeKey(table, after + 1);
  std::unique_ptr<storage::Cursor> it =
      store_->Scan(storage::Cf::kChanges, lo, storage::ChangeRangeLimit(table));
  size_t bytes = 0;
  for (it->Seek(lo);
       it->Valid() && page.size() < options_.page_events && bytes < options_.page_bytes;
       it->Next()) {
    std::optional<uint64_t> rev = storage::ChangeRevision(table, it->key());
    if (!rev || *rev > latest) break;
    std::optional<storage::RowChange> c = storage::DecodeRowChange(it->value());
    if (!c) break;  // unreadable: treated as the end of the history (the watcher is told)
    bytes += c->row.size() + c->value.size();
    page.push_back({*rev, c->del, std::move(c->row), std::move(c->value)});
  }
  return &page;
}

bool WatchHub::Deliver(Watcher& w, uint64_t latest) {
  const Spec& s = w.spec;
  if (s.stream->Closed()) {  // disconnect: the stream ends (its OK goes nowhere)
    End(w, std::nullopt);
    return true;
  }
  while (w.cursor < latest) {
    const size_t backlog = s.stream->Backlog();
    if (backlog >= options_.backlog_max) {
      // Paused until the client reads. One that is far behind and has not read for `stall` is
      // cut off (a watcher catching up from far back is fine while it reads).
      const auto now = std::chrono::steady_clock::now();
      if (!w.paused_since) w.paused_since = now;
      if (latest - w.cursor <= options_.lag_max || now - *w.paused_since < options_.stall) {
        return false;
      }
      ++cut_off_;
      End(w, StrCat("watch cut off: ", latest - w.cursor,
                    " revisions behind (the client does not read fast enough); resume with "
                    "WATCH ... FROM ",
                    w.cursor));
      return true;
    }
    w.paused_since.reset();
    if (options_.may_read && !options_.may_read(s.table, s.principal, s.admin)) {
      End(w, PermissionDenied(s.principal, "READ", s.table));
      return true;
    }
    const std::vector<Change>* page = Page(s.table, w.cursor, latest);
    if (page->empty() || page->front().revision != w.cursor + 1) {
      absl::StatusOr<RevisionRange> r = TableRevisions(store_, s.table);
      End(w, StrCat("revision ", w.cursor, " compacted; latest snapshot is ",
                    r.ok() ? r->resumable_from : latest));
      return true;
    }
    socketproto::Reply out(s.tag);
    uint64_t sent = 0;
    for (const Change& c : *page) {
      w.cursor = c.revision;
      if (!c.row.starts_with(s.row_prefix)) continue;
      ++sent;
      if (c.del) {
        out.Line(StrCat("EVENT ", c.revision, " DEL ", s.table, ".", c.row));
      } else {
        out.Payload(StrCat("EVENT ", c.revision, " PUT ", s.table, ".", c.row, " ", c.value.size()),
                    c.value);
      }
      // No more than the backlog allows (plus this event): the rest waits for the client.
      if (backlog + out.buffer().size() >= options_.backlog_max) break;
    }
    if (!out.buffer().empty() && !s.stream->Send(out.Take())) {
      End(w, std::nullopt);
      return true;
    }
    events_sent_ += sent;
  }
  return false;
}

}  // namespace atlas
