// The line-protocol drivers: atlasd (docs/protocol.md, tagged requests) and Redis (RESP).
#include <charconv>
#include <deque>
#include <functional>

#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "socketproto/client.h"
#include "socketproto/str.h"
#include "tools/bench/driver.h"
#include "tools/bench/resp.h"
#include "tools/bench/stream.h"

namespace atlas::bench {

const char* SystemName(Target::System s) {
  switch (s) {
    case Target::System::kAtlas:
      return "atlas";
    case Target::System::kRedis:
      return "redis";
    case Target::System::kEtcd:
      return "etcd";
  }
  return "?";
}

namespace {

// Parses the complete replies at the front of `in` into `out`; returns the bytes used.
using ReplyParser =
    std::function<absl::StatusOr<size_t>(std::string_view in, std::vector<Completion>* out)>;

// Driver::Poll for a stream protocol: parses what has arrived, receiving more until a request
// completes or `deadline` passes.
absl::Status PollStream(Stream& stream, Clock::time_point deadline, std::vector<Completion>* out,
                        const ReplyParser& parse) {
  size_t before = out->size();
  for (;;) {
    absl::StatusOr<size_t> used = parse(stream.in(), out);
    if (!used.ok()) return used.status();
    stream.Consume(*used);
    if (out->size() > before || Clock::now() >= deadline) return absl::OkStatus();
    if (auto s = stream.Receive(deadline); !s.ok()) return s;
  }
}

// `[ID:<token>] KEY GET|PUT ...`; replies carry the tag, so they may come back in any order.
class AtlasDriver : public Driver {
 public:
  AtlasDriver(std::string path, std::string client_id)
      : path_(std::move(path)), client_id_(std::move(client_id)) {}

  absl::Status Connect(std::chrono::milliseconds timeout) override {
    timeout_ = timeout;
    auto deadline = Clock::now() + timeout;
    if (auto s = stream_.Connect(path_, deadline); !s.ok()) return s;
    client::ReplyFrame frame;
    if (auto s = ReadFrame(deadline, &frame); !s.ok()) return s;
    if (frame.text.rfind("WELCOME ", 0) != 0) {
      return absl::UnavailableError(StrCat("unexpected greeting: ", frame.text.substr(0, 200)));
    }
    StrAppend(&stream_.out(), "HELLO 1.0 clientId=", client_id_, "\r\n");
    if (auto s = stream_.Flush(deadline); !s.ok()) return s;
    if (auto s = ReadFrame(deadline, &frame); !s.ok()) return s;
    if (frame.text != "READY") {
      return absl::UnavailableError(StrCat("handshake: ", frame.text.substr(0, 200)));
    }
    return absl::OkStatus();
  }

  void StartGet(uint64_t token, std::string_view key) override {
    StrAppend(&stream_.out(), "[ID:", token, "] KEY GET ", key, "\r\n");
  }
  void StartPut(uint64_t token, std::string_view key, std::string_view value) override {
    StrAppend(&stream_.out(), "[ID:", token, "] KEY PUT ", key, " ", value, "\r\n");
  }
  void StartTxn(uint64_t token, const std::vector<std::string>& keys,
                std::string_view value) override {
    StrAppend(&stream_.out(), "[ID:", token, "] TXN ", keys.size(), "\r\n");
    for (const std::string& key : keys) {
      StrAppend(&stream_.out(), "KEY PUT ", key, " ", value, "\r\n");
    }
  }
  absl::Status Flush() override { return stream_.Flush(Clock::now() + timeout_); }

  absl::Status Poll(Clock::time_point deadline, std::vector<Completion>* out) override {
    return PollStream(stream_, deadline, out,
                      [this](std::string_view in, std::vector<Completion>* done) {
                        return ParseLines(in, done);
                      });
  }

 private:
  // The frames at the front of `in` (socketproto/client.h decodes them, blobs included).
  absl::StatusOr<size_t> ParseLines(std::string_view in, std::vector<Completion>* out) {
    size_t used = 0;
    for (;;) {
      client::ReplyFrame frame;
      absl::StatusOr<size_t> n = client::DecodeFrame(in.substr(used), &frame);
      if (!n.ok()) return n.status();
      if (*n == 0) return used;
      used += *n;
      if (auto s = OnFrame(frame, out); !s.ok()) return s;
    }
  }

  absl::Status ReadFrame(Clock::time_point deadline, client::ReplyFrame* frame) {
    for (;;) {
      absl::StatusOr<size_t> n = client::DecodeFrame(stream_.in(), frame);
      if (!n.ok()) return n.status();
      if (*n > 0) {
        stream_.Consume(*n);
        return absl::OkStatus();
      }
      if (Clock::now() >= deadline) return absl::DeadlineExceededError("handshake timed out");
      if (auto s = stream_.Receive(deadline); !s.ok()) return s;
    }
  }

  absl::Status OnFrame(const client::ReplyFrame& frame, std::vector<Completion>* out) {
    uint64_t token = 0;
    const std::string_view line = frame.text;
    if (!frame.id) {
      // Only an unusable stream produces untagged frames (ERROR FATAL, bad tag).
      return absl::DataLossError(StrCat("untagged frame: ", line.substr(0, 200)));
    }
    const std::string& id = *frame.id;
    if (std::from_chars(id.data(), id.data() + id.size(), token).ptr != id.data() + id.size()) {
      return absl::DataLossError(StrCat("bad tag in frame: ", id.substr(0, 200)));
    }
    if (line == "NOT_FOUND") {
      not_found_.insert(token);
    } else if (line == "OK") {
      Completion::Outcome outcome =
          not_found_.erase(token) != 0 ? Completion::Outcome::kNotFound : Completion::Outcome::kOk;
      out->push_back({token, outcome, {}});
    } else if (line.rfind("ERROR ", 0) == 0) {
      not_found_.erase(token);
      out->push_back({token, Completion::Outcome::kError, std::string(line.substr(0, 300))});
      if (line.rfind("ERROR FATAL", 0) == 0) {
        return absl::UnavailableError(std::string(line.substr(0, 300)));
      }
    }
    // VALUE:... precedes the OK; nothing to keep.
    return absl::OkStatus();
  }

  std::string path_;
  std::string client_id_;
  std::chrono::milliseconds timeout_{10000};
  Stream stream_;
  absl::flat_hash_set<uint64_t> not_found_;
};

// RESP GET / SET, pipelined: Redis answers in request order, so a FIFO of tokens matches them.
class RedisDriver : public Driver {
 public:
  explicit RedisDriver(std::string address) : address_(std::move(address)) {}

  absl::Status Connect(std::chrono::milliseconds timeout) override {
    timeout_ = timeout;
    return stream_.Connect(address_, Clock::now() + timeout);
  }
  void StartGet(uint64_t token, std::string_view key) override {
    resp::AppendCommand(&stream_.out(), {"GET", key});
    pending_.push_back({token, true});
  }
  void StartPut(uint64_t token, std::string_view key, std::string_view value) override {
    resp::AppendCommand(&stream_.out(), {"SET", key, value});
    pending_.push_back({token, false});
  }
  absl::Status Flush() override { return stream_.Flush(Clock::now() + timeout_); }

  absl::Status Poll(Clock::time_point deadline, std::vector<Completion>* out) override {
    return PollStream(stream_, deadline, out,
                      [this](std::string_view in, std::vector<Completion>* done) {
                        return ParseReplies(in, done);
                      });
  }

 private:
  // Redis answers in request order: each reply completes the oldest pending request.
  absl::StatusOr<size_t> ParseReplies(std::string_view in, std::vector<Completion>* out) {
    size_t used = 0;
    resp::Reply reply;
    size_t n = 0;
    for (;;) {
      resp::ParseResult r = resp::Parse(in.substr(used), &reply, &n);
      if (r == resp::ParseResult::kIncomplete) return used;
      if (r == resp::ParseResult::kInvalid) return absl::DataLossError("invalid RESP reply");
      used += n;
      if (pending_.empty()) return absl::DataLossError("RESP reply without a request");
      auto [token, get] = pending_.front();
      pending_.pop_front();
      out->push_back(ToCompletion(token, get, reply));
    }
  }

  static Completion ToCompletion(uint64_t token, bool get, const resp::Reply& r) {
    using T = resp::Reply::Type;
    if (r.type == T::kError) return {token, Completion::Outcome::kError, r.text.substr(0, 300)};
    if (get && r.type == T::kNull) return {token, Completion::Outcome::kNotFound, {}};
    if (get ? r.type == T::kBulk : r.type == T::kSimple && r.text == "OK") {
      return {token, Completion::Outcome::kOk, {}};
    }
    return {token, Completion::Outcome::kError,
            StrCat("unexpected reply to ", get ? "GET" : "SET")};
  }

  struct Pending {
    uint64_t token;
    bool get;
  };
  std::string address_;
  std::chrono::milliseconds timeout_{10000};
  Stream stream_;
  std::deque<Pending> pending_;
};

}  // namespace

std::unique_ptr<Driver> MakeAtlasDriver(const std::string& socket_path, std::string client_id) {
  return std::make_unique<AtlasDriver>(socket_path, std::move(client_id));
}

std::unique_ptr<Driver> MakeRedisDriver(const std::string& address) {
  return std::make_unique<RedisDriver>(address);
}

}  // namespace atlas::bench
