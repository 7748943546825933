// Conversion between consensus::Message and its wire form (proto/peer.proto).
//
// Messages come from the network, so FromProto validates everything the core would otherwise
// trust: enum ranges, node ids, object names, bounded counts and sizes. A message that fails
// validation is dropped by the transport (and counted), never handed to Replica::Step.
#pragma once

#include <cstddef>

#include "absl/status/statusor.h"
#include "consensus/message.h"
#include "proto/peer.pb.h"

namespace atlas::proto {

struct PeerLimits {
  size_t object_bytes_max = 255;          // a table or group name (a group's object adds '@')
  size_t entries_max = 4096;              // slot entries per message
  size_t commands_per_entry_max = 4096;   // commands in one slot's batch
  size_t commands_max = 65536;            // forwarded commands per message
  size_t command_bytes_max = size_t{129} << 20;  // one command (a 128 MiB blob + framing)
  size_t ids_max = 65536;                 // request ids / slots per message
  size_t snapshot_bytes_max = size_t{64} << 20;         // one snapshot chunk
  uint64_t snapshot_total_bytes_max = uint64_t{1} << 40;  // a whole snapshot
  size_t commit_indexes_max = size_t{1} << 22;  // objects listed in one heartbeat
  size_t anchor_config_bytes_max = size_t{1} << 20;  // an encoded configuration
};

void ToProto(const consensus::Message& in, PeerMessage* out);

// Validates and converts. `authenticated_from`, when non-zero, is the peer id proven by its
// TLS certificate: a message claiming another sender is rejected.
absl::StatusOr<consensus::Message> FromProto(const PeerMessage& in, const PeerLimits& limits,
                                             consensus::NodeId authenticated_from = 0);

}  // namespace atlas::proto
