// One object in the Replica's map (consensus/replica_rest.cc): awake, with its ObjectState on
// the heap, or at rest, with its compact encoding in place when it fits (nearly always: an
// idle table encodes in 30-45 bytes). 48 bytes either way, so that a resting table costs its
// map slot and no allocation of its own.
#ifndef ATLAS_CONSENSUS_STORED_OBJECT_H_
#define ATLAS_CONSENSUS_STORED_OBJECT_H_

#include <cstdint>
#include <cstring>
#include <memory>
#include <string_view>

#include "consensus/object_state.h"

namespace atlas::consensus::internal {

class StoredObject {
 public:
  StoredObject() = default;
  ~StoredObject() { Reset(); }
  StoredObject(const StoredObject&) = delete;
  StoredObject& operator=(const StoredObject&) = delete;
  // The map moves its values around: the bytes move, the state or heap bytes stay put.
  StoredObject(StoredObject&& other) noexcept { Steal(other); }
  StoredObject& operator=(StoredObject&& other) noexcept {
    if (this != &other) {
      Reset();
      Steal(other);
    }
    return *this;
  }

  // The state of an awake object; null at rest.
  ObjectState* state() const { return tag_ == kAwake ? Load<ObjectState*>() : nullptr; }
  // The encoding of an object at rest; empty when awake.
  std::string_view at_rest() const {
    if (tag_ <= kInline) return {reinterpret_cast<const char*>(raw_), tag_};
    if (tag_ == kHeap) return {Load<const char*>(), Load<uint32_t>(sizeof(char*))};
    return {};
  }

  ObjectState& Wake(std::unique_ptr<ObjectState> state) {
    Reset();
    ObjectState* p = state.release();
    Store(p);
    tag_ = kAwake;
    return *p;
  }
  // Frees the state; the object is `bytes` from now on.
  void Rest(std::string_view bytes) {
    Reset();
    if (bytes.size() <= kInline) {
      std::memcpy(raw_, bytes.data(), bytes.size());
      tag_ = static_cast<uint8_t>(bytes.size());
      return;
    }
    char* heap = new char[bytes.size()];
    std::memcpy(heap, bytes.data(), bytes.size());
    Store(heap);
    Store(static_cast<uint32_t>(bytes.size()), sizeof(char*));
    tag_ = kHeap;
  }

 private:
  static constexpr uint8_t kInline = 47;  // tag_ 0..kInline: that many bytes in raw_
  static constexpr uint8_t kAwake = 254;  // raw_ holds the ObjectState*
  static constexpr uint8_t kHeap = 255;   // raw_ holds a char* and its uint32_t length

  template <typename T>
  T Load(size_t at = 0) const {
    T v;
    std::memcpy(&v, raw_ + at, sizeof v);
    return v;
  }
  template <typename T>
  void Store(T v, size_t at = 0) {
    std::memcpy(raw_ + at, &v, sizeof v);
  }
  void Reset() {
    if (tag_ == kAwake) delete Load<ObjectState*>();
    if (tag_ == kHeap) delete[] Load<char*>();
    tag_ = 0;
  }
  void Steal(StoredObject& other) {
    std::memcpy(raw_, other.raw_, sizeof raw_);
    tag_ = other.tag_;
    other.tag_ = 0;
  }

  alignas(8) unsigned char raw_[kInline];
  uint8_t tag_ = 0;
};

static_assert(sizeof(StoredObject) == 48);

}  // namespace atlas::consensus::internal

#endif  // ATLAS_CONSENSUS_STORED_OBJECT_H_
