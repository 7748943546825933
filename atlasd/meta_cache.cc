#include "atlasd/meta_cache.h"

#include <utility>

#include "atlasd/fatal.h"

namespace atlas {

MetaCache::Entry& MetaCache::Young(const std::string& key) {
  auto [it, inserted] = young_.try_emplace(key);
  if (!inserted) return it->second;
  if (auto old = old_.find(key); old != old_.end()) {
    old_bytes_ -= Cost(key, old->second.record);
    it->second = std::move(old->second);
    old_.erase(old);
  }
  young_bytes_ += Cost(key, it->second.record);
  return it->second;
}

const MetaCache::Record* MetaCache::Find(const std::string& key) {
  if (!young_.contains(key) && !old_.contains(key)) return nullptr;
  return &Young(key).record;
}

void MetaCache::Fill(const std::string& key, Record record) {
  Entry& e = Young(key);
  young_bytes_ += Cost(key, record) - Cost(key, e.record);
  e.record = std::move(record);
}

void MetaCache::Put(const std::string& key, std::string value) {
  Entry& e = Young(key);
  Record record(std::move(value));
  young_bytes_ += Cost(key, record) - Cost(key, e.record);
  e.record = std::move(record);
  MarkDirty(key, e);
}

void MetaCache::Delete(const std::string& key) {
  Entry& e = Young(key);
  young_bytes_ += Cost(key, std::nullopt) - Cost(key, e.record);
  e.record.reset();
  MarkDirty(key, e);
}

void MetaCache::MarkDirty(const std::string& key, Entry& e) {
  if (e.dirty) return;
  e.dirty = true;
  dirty_keys_.push_back(key);
}

void MetaCache::Flush(storage::WriteSet& batch) {
  // Dirty entries are young: Put and Delete move them there, and only Flush ages them.
  for (const std::string& key : dirty_keys_) {
    Entry& e = young_.find(key)->second;
    if (e.record) {
      batch.Put(storage::Cf::kMeta, key, *e.record);
    } else {
      batch.Delete(storage::Cf::kMeta, key);
    }
    e.dirty = false;
  }
  dirty_keys_.clear();
  if (young_bytes_ > bytes_max_ / 2) {
    // The dropped generation's table, emptied, serves the new young one (EmptyKeepingMemory:
    // ~5% of the node thread in page faults while tables were being created).
    std::swap(old_, young_);
    EmptyKeepingMemory(young_);
    old_bytes_ = young_bytes_;
    young_bytes_ = 0;
  }
}

void MetaCache::Clear() {
  if (!dirty_keys_.empty()) Fatal("MetaCache::Clear with unflushed records");
  young_.clear();
  old_.clear();
  young_bytes_ = old_bytes_ = 0;
}

}  // namespace atlas
