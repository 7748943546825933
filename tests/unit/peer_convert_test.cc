// The peer wire format: lossless for every field, and strict about untrusted input.
#include <catch2/catch.hpp>

#include "proto/peer_convert.h"

using atlas::consensus::Message;
using atlas::consensus::MessageType;
using atlas::proto::FromProto;
using atlas::proto::PeerLimits;
using atlas::proto::PeerMessage;
using atlas::proto::ToProto;

namespace {

Message Full() {
  Message m;
  m.type = MessageType::kCatchupResponse;
  m.from = 3;
  m.to = 7;
  m.object = "users";
  m.ballot = {42, 3};
  m.ok = true;
  m.slot = 9;
  m.commit_index = 11;
  m.round = 5;
  m.lease_ms = 2000;
  m.seq = 77;
  m.entries.push_back({10, {{41, 2}, {{{2, 100}, std::string("a\0b", 3)}}}});
  m.entries.push_back({11, {{42, 3}, {}}});
  m.slots = {10, 11};
  m.commands = {{{3, 1}, "x"}, {{3, 2}, ""}};
  m.request_ids = {{3, 1}, {5, 9}};
  m.snapshot_slot = 8;
  m.snapshot = std::string(1000, 's');
  m.snapshot_offset = 4000;
  m.snapshot_total = 9000;
  m.commit_indexes = {{"atlas.nodes", 4}, {"users", 11}};
  m.epoch = 6;
  m.anchor_epoch = 5;
  m.anchor_config = "5\n1\t1\n";
  m.entries.push_back({12, {{42, 3}, {{{0, 6}, "anchor"}}}});  // an anchor entry: id.node 0
  return m;
}

PeerMessage Wire(const Message& m) {
  PeerMessage p;
  ToProto(m, &p);
  return p;
}

}  // namespace

TEST_CASE("every field survives the round trip through the wire format") {
  Message m = Full();
  auto back = FromProto(Wire(m), PeerLimits{});
  REQUIRE(back.ok());
  CHECK(back->DebugString() == m.DebugString());
  CHECK(back->entries[0].entry.value[0].data == std::string("a\0b", 3));
  CHECK(back->snapshot == m.snapshot);
  CHECK(back->epoch == 6);
  CHECK(back->anchor_epoch == 5);
  CHECK(back->anchor_config == m.anchor_config);
  // And through bytes.
  PeerMessage parsed;
  REQUIRE(parsed.ParseFromString(Wire(m).SerializeAsString()));
  CHECK(FromProto(parsed, PeerLimits{})->DebugString() == m.DebugString());
}

TEST_CASE("a peer cannot speak for another node") {
  CHECK(FromProto(Wire(Full()), PeerLimits{}, 3).ok());
  auto spoof = FromProto(Wire(Full()), PeerLimits{}, 4);
  REQUIRE_FALSE(spoof.ok());
  CHECK(std::string(spoof.status().message()).find("claims sender 3") != std::string::npos);
}

TEST_CASE("malformed messages are rejected, not handed to the core") {
  auto reject = [](auto mutate) {
    PeerMessage p = Wire(Full());
    mutate(p);
    return !FromProto(p, PeerLimits{}).ok();
  };
  CHECK(reject([](PeerMessage& p) { p.set_type(static_cast<PeerMessage::Type>(99)); }));
  CHECK(reject([](PeerMessage& p) { p.set_from(0); }));
  CHECK(reject([](PeerMessage& p) { p.set_to(0); }));
  CHECK(reject([](PeerMessage& p) { p.set_object(""); }));
  CHECK(reject([](PeerMessage& p) { p.set_object("bad name"); }));
  CHECK(reject([](PeerMessage& p) { p.set_object(std::string(256, 'a')); }));
  CHECK(reject([](PeerMessage& p) { p.set_object("@" + std::string(256, 'a')); }));
  CHECK(reject([](PeerMessage& p) { p.set_object("@"); }));
  CHECK(reject([](PeerMessage& p) { p.set_object("a@b"); }));
  PeerMessage group = Wire(Full());
  group.set_object("@" + std::string(255, 'g'));  // a group's object
  CHECK(FromProto(group, PeerLimits{}).ok());
  CHECK(reject([](PeerMessage& p) { p.mutable_entries(1)->set_slot(10); }));  // not increasing
  CHECK(reject([](PeerMessage& p) { p.mutable_entries(0)->set_slot(0); }));
  CHECK(reject([](PeerMessage& p) { p.mutable_commands(0)->mutable_id()->set_node(0); }));
  // Only a batch's first command can be an anchor; client commands may follow it (a table's
  // first write after a membership change rides in its anchor's slot).
  CHECK(reject([](PeerMessage& p) {
    auto* v = p.mutable_entries(0)->add_value();
    v->mutable_id()->set_node(0);
  }));
  PeerMessage folded = Wire(Full());
  atlas::proto::PeerCommand* write = folded.mutable_entries(2)->add_value();  // the anchor's
  write->mutable_id()->set_node(3);
  write->mutable_id()->set_seq(9);
  write->set_data("put a 1");
  auto back = FromProto(folded, PeerLimits{});
  REQUIRE(back.ok());
  CHECK(back->entries[2].entry.value.size() == 2);
  CHECK(back->entries[2].entry.value[0].id.node == atlas::consensus::kNoNode);
  CHECK(reject([](PeerMessage& p) { p.set_anchor_config(std::string((1 << 20) + 1, 'c')); }));
  CHECK(reject([](PeerMessage& p) { p.set_snapshot_offset(8500); }));  // chunk past the end
  CHECK(reject([](PeerMessage& p) { p.set_snapshot_total(100); }));
  CHECK(reject([](PeerMessage& p) { p.mutable_request_ids(0)->set_node(0); }));
  CHECK(reject([](PeerMessage& p) { p.mutable_commit_indexes(0)->set_object("zzz"); }));  // unsorted
  CHECK(reject([](PeerMessage& p) { p.set_lease_ms(60'001); }));  // over kLeaseMsMax
  PeerLimits small;
  small.snapshot_bytes_max = 10;
  CHECK_FALSE(FromProto(Wire(Full()), small).ok());
  small = PeerLimits{};
  small.command_bytes_max = 0;
  CHECK_FALSE(FromProto(Wire(Full()), small).ok());
  small = PeerLimits{};
  small.entries_max = 1;
  CHECK_FALSE(FromProto(Wire(Full()), small).ok());
}

TEST_CASE("a node heartbeat carries no object") {
  Message hb;
  hb.type = MessageType::kHeartbeat;
  hb.from = 1;
  hb.to = 2;
  hb.commit_indexes = {{"a", 1}, {"b", 2}};
  CHECK(FromProto(Wire(hb), PeerLimits{}).ok());
}

TEST_CASE("a directory's first page has no cursor, other messages name their object") {
  for (MessageType type : {MessageType::kDirectoryRequest, MessageType::kDirectory}) {
    Message m;
    m.type = type;
    m.from = 1;
    m.to = 2;
    m.ok = true;
    m.commit_indexes = {{"a", 1}, {"b", 2}};
    auto back = FromProto(Wire(m), PeerLimits{});
    REQUIRE(back.ok());
    CHECK(back->type == type);
    CHECK(back->DebugString() == m.DebugString());
    m.object = "a b";  // a cursor is an object name like any other
    CHECK_FALSE(FromProto(Wire(m), PeerLimits{}).ok());
  }
  Message m;
  m.type = MessageType::kCatchupRequest;
  m.from = 1;
  m.to = 2;
  CHECK_FALSE(FromProto(Wire(m), PeerLimits{}).ok());
}
