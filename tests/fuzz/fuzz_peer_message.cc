// libFuzzer target: peer messages as they arrive from the network (proto/peer_convert.h).
// Any bytes: parse as a PeerMessage, validate; whatever validates must convert back to the same
// wire form (no field is silently changed) and validate again.
#include <cstddef>
#include <cstdint>
#include <cstdlib>

#include "proto/peer_convert.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  atlas::proto::PeerMessage in;
  if (!in.ParseFromArray(data, static_cast<int>(size))) return 0;
  atlas::proto::PeerLimits limits;
  limits.entries_max = 64;
  limits.commands_max = 64;
  limits.commands_per_entry_max = 64;
  limits.command_bytes_max = 4096;
  limits.snapshot_bytes_max = 4096;
  limits.ids_max = 64;
  limits.commit_indexes_max = 64;
  auto m = atlas::proto::FromProto(in, limits);
  if (!m.ok()) return 0;
  atlas::proto::PeerMessage out;
  atlas::proto::ToProto(*m, &out);
  auto again = atlas::proto::FromProto(out, limits);
  if (!again.ok() || again->DebugString() != m->DebugString()) std::abort();
  // Only a heartbeat, a directory's first page (request or answer) and a range exchange name
  // no object.
  using atlas::consensus::MessageType;
  const bool object_optional =
      m->type == MessageType::kHeartbeat || m->type == MessageType::kDirectoryRequest ||
      m->type == MessageType::kDirectory || m->type == MessageType::kRangeRequest ||
      m->type == MessageType::kRange;
  if (m->object.empty() && !object_optional) std::abort();
  return 0;
}
