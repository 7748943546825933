// Synchronous helpers for tests that drive a Replicator directly.
#pragma once

#include <future>
#include <memory>
#include <string>

#include "atlasd/replicator.h"
#include "proto/command.pb.h"

namespace atlas::testing {

inline proto::Command PutCommand(const std::string& table, const std::string& row,
                                 const std::string& value) {
  proto::Command c;
  c.set_table(table);
  c.mutable_put()->set_row(row);
  c.mutable_put()->set_value(value);
  return c;
}

inline ApplyResult ProposeSync(Replicator& r, proto::Command c) {
  auto p = std::make_shared<std::promise<ApplyResult>>();
  auto f = p->get_future();
  r.Propose(std::move(c), [p](ApplyResult res) { p->set_value(std::move(res)); });
  return f.get();
}

inline absl::Status ReadBarrierSync(Replicator& r, const std::string& table) {
  auto p = std::make_shared<std::promise<absl::Status>>();
  auto f = p->get_future();
  r.ReadBarrier(table, "", [p](absl::Status s) { p->set_value(std::move(s)); });
  return f.get();
}

}  // namespace atlas::testing
