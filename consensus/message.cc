#include "consensus/message.h"

#include "absl/strings/str_cat.h"

namespace atlas::consensus {

const char* MessageTypeName(MessageType type) {
  switch (type) {
    case MessageType::kPrepare: return "Prepare";
    case MessageType::kPromise: return "Promise";
    case MessageType::kAccept: return "Accept";
    case MessageType::kAccepted: return "Accepted";
    case MessageType::kCommit: return "Commit";
    case MessageType::kConfirm: return "Confirm";
    case MessageType::kConfirmAck: return "ConfirmAck";
    case MessageType::kForward: return "Forward";
    case MessageType::kForwardReject: return "ForwardReject";
    case MessageType::kReadIndexRequest: return "ReadIndexRequest";
    case MessageType::kReadIndexResponse: return "ReadIndexResponse";
    case MessageType::kCatchupRequest: return "CatchupRequest";
    case MessageType::kCatchupResponse: return "CatchupResponse";
    case MessageType::kHeartbeat: return "Heartbeat";
    case MessageType::kMoveHint: return "MoveHint";
    case MessageType::kDirectoryRequest: return "DirectoryRequest";
    case MessageType::kDirectory: return "Directory";
    case MessageType::kRangeRequest: return "RangeRequest";
    case MessageType::kRange: return "Range";
    case MessageType::kLeaseRequest: return "LeaseRequest";
    case MessageType::kLeaseGrant: return "LeaseGrant";
  }
  return "?";
}

std::string Message::DebugString() const {
  std::string out = absl::StrCat(MessageTypeName(type), " ", from, "->", to);
  if (!object.empty()) absl::StrAppend(&out, " obj=", object);
  if (!ballot.IsZero()) absl::StrAppend(&out, " b=", ballot.ToString());
  if (ok) absl::StrAppend(&out, " ok");
  if (lease_ms) absl::StrAppend(&out, " lease=", lease_ms);
  if (holders) absl::StrAppend(&out, " holders");
  if (slot) absl::StrAppend(&out, " slot=", slot);
  if (commit_index) absl::StrAppend(&out, " ci=", commit_index);
  if (round) absl::StrAppend(&out, " round=", round);
  if (seq) absl::StrAppend(&out, " seq=", seq);
  if (!entries.empty()) {
    absl::StrAppend(&out, " entries=[");
    for (const SlotEntry& e : entries) {
      absl::StrAppend(&out, e.slot, "@", e.entry.ballot.ToString(), "x", e.entry.value.size(), " ");
    }
    absl::StrAppend(&out, "]");
  }
  if (!slots.empty()) absl::StrAppend(&out, " slots=", slots.front(), "..", slots.back());
  if (!commands.empty()) absl::StrAppend(&out, " cmds=", commands.size());
  if (!request_ids.empty()) absl::StrAppend(&out, " ids=", request_ids.size());
  if (snapshot_slot) {
    absl::StrAppend(&out, " snap=", snapshot_slot, "/", snapshot.size(), "B@", snapshot_offset,
                    "/", snapshot_total);
  }
  if (epoch) absl::StrAppend(&out, " e=", epoch);
  if (anchor_epoch) absl::StrAppend(&out, " anchor=", anchor_epoch);
  if (!commit_indexes.empty()) absl::StrAppend(&out, " objs=", commit_indexes.size());
  if (!digest.lo.empty()) {
    absl::StrAppend(&out, " digest=[", digest.lo, "..", digest.hi, "]x", digest.count);
  }
  return out;
}

}  // namespace atlas::consensus
