// etcd v3 over gRPC (plaintext, as on loopback): Put, and Range with the default
// serializable=false, i.e. linearizable reads. Pipelining is gRPC's: every request is its own
// HTTP/2 stream on the connection, completed through a CompletionQueue.
#include <grpcpp/grpcpp.h>

#include <memory>
#include <unordered_map>

#include "socketproto/str.h"
#include "tools/bench/driver.h"
#include "tools/bench/etcd_kv.grpc.pb.h"

namespace atlas::bench {
namespace {

class EtcdDriver : public Driver {
 public:
  EtcdDriver(std::string address, int channel_index)
      : address_(std::move(address)), channel_index_(channel_index) {}

  ~EtcdDriver() override {
    // Cancel what is still in flight and drain the queue before the calls are freed.
    for (auto& [token, call] : calls_) call->ctx.TryCancel();
    cq_.Shutdown();
    void* tag;
    bool ok;
    while (cq_.Next(&tag, &ok)) {
    }
  }

  absl::Status Connect(std::chrono::milliseconds timeout) override {
    timeout_ = timeout;
    grpc::ChannelArguments args;
    // Channels with equal arguments share one TCP connection; a distinct argument gives each
    // worker its own, like every other driver.
    args.SetInt("atlas_bench.channel", channel_index_);
    args.SetMaxReceiveMessageSize(64 << 20);
    channel_ = grpc::CreateCustomChannel(address_, grpc::InsecureChannelCredentials(), args);
    if (!channel_->WaitForConnected(std::chrono::system_clock::now() + timeout)) {
      return absl::UnavailableError(
          StrCat("etcd ", address_, ": not connected within ", timeout.count(), " ms"));
    }
    stub_ = etcdserverpb::KV::NewStub(channel_);
    return absl::OkStatus();
  }

  void StartGet(uint64_t token, std::string_view key) override {
    auto call = NewCall(token, true);
    etcdserverpb::RangeRequest req;
    req.set_key(std::string(key));
    call->range = stub_->PrepareAsyncRange(&call->ctx, req, &cq_);
    call->range->StartCall();
    call->range->Finish(&call->range_resp, &call->status, call);
  }

  void StartPut(uint64_t token, std::string_view key, std::string_view value) override {
    auto call = NewCall(token, false);
    etcdserverpb::PutRequest req;
    req.set_key(std::string(key));
    req.set_value(std::string(value));
    call->put = stub_->PrepareAsyncPut(&call->ctx, req, &cq_);
    call->put->StartCall();
    call->put->Finish(&call->put_resp, &call->status, call);
  }

  absl::Status Flush() override { return absl::OkStatus(); }  // gRPC sends as calls start

  absl::Status Poll(Clock::time_point deadline, std::vector<Completion>* out) override {
    size_t before = out->size();
    auto wall_deadline = std::chrono::system_clock::now() + (deadline - Clock::now());
    for (;;) {
      void* tag;
      bool ok;
      // Wait for the first completion, then take whatever else is already there.
      auto until = out->size() > before ? std::chrono::system_clock::now() : wall_deadline;
      auto st = cq_.AsyncNext(&tag, &ok, until);
      if (st != grpc::CompletionQueue::GOT_EVENT) return absl::OkStatus();
      auto* call = static_cast<Call*>(tag);
      Completion c{call->token, Completion::Outcome::kOk, {}};
      if (!call->status.ok()) {
        c.outcome = Completion::Outcome::kError;
        c.error = StrCat("grpc ", static_cast<int>(call->status.error_code()), ": ",
                         call->status.error_message().substr(0, 250));
      } else if (call->get && call->range_resp.kvs_size() == 0) {
        c.outcome = Completion::Outcome::kNotFound;
      }
      out->push_back(std::move(c));
      calls_.erase(call->token);
    }
  }

 private:
  struct Call {
    uint64_t token = 0;
    bool get = false;
    grpc::ClientContext ctx;
    grpc::Status status;
    etcdserverpb::RangeResponse range_resp;
    etcdserverpb::PutResponse put_resp;
    std::unique_ptr<grpc::ClientAsyncResponseReader<etcdserverpb::RangeResponse>> range;
    std::unique_ptr<grpc::ClientAsyncResponseReader<etcdserverpb::PutResponse>> put;
  };

  Call* NewCall(uint64_t token, bool get) {
    auto call = std::make_unique<Call>();
    call->token = token;
    call->get = get;
    call->ctx.set_deadline(std::chrono::system_clock::now() + timeout_);
    Call* raw = call.get();
    calls_[token] = std::move(call);
    return raw;
  }

  std::string address_;
  int channel_index_;
  std::chrono::milliseconds timeout_{10000};
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<etcdserverpb::KV::Stub> stub_;
  grpc::CompletionQueue cq_;
  std::unordered_map<uint64_t, std::unique_ptr<Call>> calls_;
};

}  // namespace

std::unique_ptr<Driver> MakeEtcdDriver(const std::string& address, int channel_index) {
  return std::make_unique<EtcdDriver>(address, channel_index);
}

}  // namespace atlas::bench
