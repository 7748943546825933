// wan-proxy: emulates a WAN between real processes in user space (this kernel has no netem).
// Every node's peer traffic is addressed to a port of this proxy (the node advertises it);
// the proxy tells the sending node by the connection's source address (each node lives in its
// own network namespace, tools/wan/lab), connects on to the destination node, and delays the
// byte stream of each direction by the one-way delay of that directed link (link_model.h).
// Bytes are never reordered, dropped or altered, so TLS and gRPC run unchanged on top.
//
//   wan-proxy --config FILE
//
// FILE (written by tools/wan/lab):
//   rtt <csv>                   zone RTT matrix in ms (../shared/wan/rtt-5zones.csv format)
//   intra_zone_rtt_ms <ms>      RTT between two nodes of one zone
//   jitter_ms <ms>              uniform extra delay per chunk, in [0, ms]
//   control <unix-socket>       line commands: cut A B | heal [A B] | slow A B MS | jitter MS
//   node <id> <zone> <source-ip>
//   listen <node-id> <host:port> <target host:port>   connections to that node
//
// A cut link holds its bytes (as a black hole would: senders see no progress, TCP buffers
// fill and then the sender blocks); healing releases them in order. Each direction buffers at
// most 64 MiB before it stops reading.
#include <array>
#include <utility>  // before Boost.Asio: its awaitable.hpp uses std::exchange

#include <boost/asio.hpp>
#include <chrono>
#include <cstdio>
#include <deque>
#include <fstream>
#include <iostream>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include <unistd.h>

#include "tools/wan/link_model.h"

namespace asio = boost::asio;
using asio::ip::tcp;

namespace atlas::wan {
namespace {

constexpr size_t kChunkBytes = 64 << 10;
constexpr size_t kQueueBytesMax = 64 << 20;
constexpr auto kCutPoll = std::chrono::milliseconds(10);

int64_t NowUs() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

class Session;

// One direction of a proxied connection.
class Pipe {
 public:
  Pipe(Session* session, tcp::socket& in, tcp::socket& out, int from, int to)
      : session_(session), in_(in), out_(out), timer_(in.get_executor()), from_(from), to_(to) {}

  void Start() { Read(); }
  void Cancel() { timer_.cancel(); }

 private:
  struct Chunk {
    int64_t at_us;
    std::string data;
  };
  void Read();
  void Deliver();
  void Fail();

  Session* session_;
  tcp::socket& in_;
  tcp::socket& out_;
  asio::steady_timer timer_;
  int from_, to_;
  InOrderClock clock_;
  std::deque<Chunk> queue_;
  size_t queued_bytes_ = 0;
  bool reading_ = false, writing_ = false, waiting_ = false, eof_ = false;
  std::array<char, kChunkBytes> buf_{};
};

class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(tcp::socket client, LinkModel& model, int from, int to)
      : client_(std::move(client)),
        upstream_(client_.get_executor()),
        model_(model),
        up_(this, client_, upstream_, from, to),
        down_(this, upstream_, client_, to, from) {}

  void Start(const tcp::endpoint& target) {
    upstream_.async_connect(target, [self = shared_from_this()](boost::system::error_code ec) {
      if (ec) return self->Close();
      boost::system::error_code ignored;
      self->upstream_.set_option(tcp::no_delay(true), ignored);
      self->client_.set_option(tcp::no_delay(true), ignored);
      self->up_.Start();
      self->down_.Start();
    });
  }
  void Close() {
    boost::system::error_code ignored;
    client_.close(ignored);
    upstream_.close(ignored);
    up_.Cancel();
    down_.Cancel();
  }
  LinkModel& model() { return model_; }
  std::shared_ptr<Session> Self() { return shared_from_this(); }

 private:
  tcp::socket client_;
  tcp::socket upstream_;
  LinkModel& model_;
  Pipe up_;
  Pipe down_;
};

void Pipe::Read() {
  if (reading_ || eof_ || queued_bytes_ >= kQueueBytesMax) return;  // resumes after a write
  reading_ = true;
  in_.async_read_some(asio::buffer(buf_), [this, self = session_->Self()](
                                              boost::system::error_code ec, size_t n) {
    reading_ = false;
    if (ec == asio::error::eof) {
      eof_ = true;
      Deliver();  // half-close once the queue drains
      return;
    }
    if (ec) return Fail();
    const int64_t at = clock_.Schedule(NowUs(), session_->model().DelayUs(from_, to_));
    queue_.push_back({at, std::string(buf_.data(), n)});
    queued_bytes_ += n;
    Deliver();
    Read();
  });
}

void Pipe::Deliver() {
  if (writing_ || waiting_) return;
  if (queue_.empty()) {
    if (eof_) {
      boost::system::error_code ignored;
      out_.shutdown(tcp::socket::shutdown_send, ignored);
    }
    return;
  }
  const bool cut = session_->model().Cut(from_, to_);
  const int64_t wait_us = queue_.front().at_us - NowUs();
  if (cut || wait_us > 0) {
    waiting_ = true;
    timer_.expires_after(cut ? std::chrono::duration_cast<std::chrono::microseconds>(kCutPoll)
                             : std::chrono::microseconds(wait_us));
    timer_.async_wait([this, self = session_->Self()](boost::system::error_code ec) {
      waiting_ = false;
      if (ec) return;
      Deliver();
    });
    return;
  }
  writing_ = true;
  asio::async_write(out_, asio::buffer(queue_.front().data),
                    [this, self = session_->Self()](boost::system::error_code ec, size_t n) {
                      writing_ = false;
                      if (ec) return Fail();
                      queued_bytes_ -= n;
                      queue_.pop_front();
                      Deliver();
                      Read();
                    });
}

void Pipe::Fail() { session_->Close(); }

struct Listen {
  int node = 0;
  tcp::endpoint listen, target;
};

std::optional<tcp::endpoint> ParseEndpoint(const std::string& hp) {
  size_t colon = hp.rfind(':');
  if (colon == std::string::npos) return std::nullopt;
  boost::system::error_code ec;
  auto addr = asio::ip::make_address(hp.substr(0, colon), ec);
  if (ec) return std::nullopt;
  try {
    int port = std::stoi(hp.substr(colon + 1));
    if (port <= 0 || port > 65535) return std::nullopt;
    return tcp::endpoint(addr, static_cast<uint16_t>(port));
  } catch (...) {
    return std::nullopt;
  }
}

class Proxy {
 public:
  Proxy(asio::io_context& io, LinkModel& model) : io_(io), model_(model) {}

  void AddListener(const Listen& l) {
    auto acceptor = std::make_shared<tcp::acceptor>(io_);
    acceptor->open(l.listen.protocol());
    acceptor->set_option(asio::socket_base::reuse_address(true));
    acceptor->bind(l.listen);
    acceptor->listen();
    Accept(acceptor, l);
  }

  void AddControl(const std::string& path) {
    ::unlink(path.c_str());
    control_ = std::make_unique<asio::local::stream_protocol::acceptor>(
        io_, asio::local::stream_protocol::endpoint(path));
    AcceptControl();
  }

 private:
  void Accept(std::shared_ptr<tcp::acceptor> acceptor, Listen l) {
    acceptor->async_accept([this, acceptor, l](boost::system::error_code ec, tcp::socket s) {
      if (!ec) {
        boost::system::error_code rec;
        auto remote = s.remote_endpoint(rec);
        const int from = rec ? 0 : model_.NodeOfSource(remote.address().to_string());
        std::make_shared<Session>(std::move(s), model_, from, l.node)->Start(l.target);
      }
      Accept(acceptor, l);
    });
  }

  void AcceptControl() {
    control_->async_accept([this](boost::system::error_code ec,
                                  asio::local::stream_protocol::socket s) {
      if (!ec) ServeControl(std::make_shared<asio::local::stream_protocol::socket>(std::move(s)),
                            std::make_shared<asio::streambuf>());
      AcceptControl();
    });
  }

  void ServeControl(std::shared_ptr<asio::local::stream_protocol::socket> s,
                    std::shared_ptr<asio::streambuf> buf) {
    asio::async_read_until(*s, *buf, '\n', [this, s, buf](boost::system::error_code ec, size_t) {
      if (ec) return;
      std::istream in(buf.get());
      std::string line;
      std::getline(in, line);
      auto reply = std::make_shared<std::string>(model_.Control(line) + "\n");
      std::fprintf(stderr, "wan-proxy: %s -> %s", line.c_str(), reply->c_str());
      asio::async_write(*s, asio::buffer(*reply),
                        [this, s, buf, reply](boost::system::error_code wec, size_t) {
                          if (!wec) ServeControl(s, buf);
                        });
    });
  }

  asio::io_context& io_;
  LinkModel& model_;
  std::unique_ptr<asio::local::stream_protocol::acceptor> control_;
};

// The config file's settings.
struct ProxyConfig {
  std::string rtt_path, control;
  double intra = 0.427, jitter = 0;
  std::vector<Node> nodes;
  std::vector<Listen> listens;
};

// One line of the config file into `c`; what is wrong with it, if anything.
std::optional<std::string> ParseConfigLine(const std::string& line, ProxyConfig* c) {
  std::istringstream in(line);
  std::string key;
  if (!(in >> key) || key[0] == '#') return std::nullopt;
  if (key == "rtt") {
    in >> c->rtt_path;
  } else if (key == "intra_zone_rtt_ms") {
    if (!(in >> c->intra) || c->intra < 0) return "bad intra_zone_rtt_ms";
  } else if (key == "jitter_ms") {
    if (!(in >> c->jitter) || c->jitter < 0) return "bad jitter_ms";
  } else if (key == "control") {
    in >> c->control;
  } else if (key == "node") {
    Node n;
    if (!(in >> n.id >> n.zone >> n.source_ip) || n.id <= 0) return "node <id> <zone> <ip>";
    c->nodes.push_back(n);
  } else if (key == "listen") {
    Listen l;
    std::string a, b;
    if (!(in >> l.node >> a >> b)) return "listen <node> <host:port> <host:port>";
    auto la = ParseEndpoint(a), tb = ParseEndpoint(b);
    if (!la || !tb) return "bad address";
    l.listen = *la;
    l.target = *tb;
    c->listens.push_back(l);
  } else {
    return "unknown setting " + key;
  }
  return std::nullopt;
}

// The RTT matrix the config names, checked to hold every node's zone.
std::optional<RttMatrix> LoadMatrix(const ProxyConfig& c, std::string* error) {
  std::ifstream csv(c.rtt_path);
  if (!csv) {
    *error = "cannot read rtt file '" + c.rtt_path + "'";
    return std::nullopt;
  }
  std::stringstream text;
  text << csv.rdbuf();
  auto matrix = RttMatrix::Parse(text.str(), error);
  if (!matrix) {
    *error = c.rtt_path + ": " + *error;
    return std::nullopt;
  }
  for (const Node& n : c.nodes) {
    if (!matrix->IndexOf(n.zone)) {
      *error = "node " + std::to_string(n.id) + ": zone " + n.zone + " is not in " + c.rtt_path;
      return std::nullopt;
    }
  }
  return matrix;
}

int Main(int argc, char** argv) {
  if (argc != 3 || std::string(argv[1]) != "--config") {
    std::fprintf(stderr, "usage: wan-proxy --config FILE\n");
    return 2;
  }
  std::ifstream cfg(argv[2]);
  if (!cfg) {
    std::fprintf(stderr, "wan-proxy: cannot read %s\n", argv[2]);
    return 2;
  }
  ProxyConfig c;
  std::string line;
  int line_no = 0;
  auto bad = [&](const std::string& why) {
    std::fprintf(stderr, "wan-proxy: %s line %d: %s\n", argv[2], line_no, why.c_str());
    return 2;
  };
  while (std::getline(cfg, line)) {
    ++line_no;
    if (std::optional<std::string> why = ParseConfigLine(line, &c)) return bad(*why);
  }
  std::string error;
  std::optional<RttMatrix> matrix = LoadMatrix(c, &error);
  if (!matrix) return bad(error);
  LinkModel model(*matrix, c.nodes, c.intra, /*seed=*/1);
  model.SetJitterMs(c.jitter);
  asio::io_context io(1);
  Proxy proxy(io, model);
  try {
    for (const Listen& l : c.listens) proxy.AddListener(l);
    if (!c.control.empty()) proxy.AddControl(c.control);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "wan-proxy: %s\n", e.what());
    return 1;
  }
  asio::signal_set stop(io, SIGINT, SIGTERM);
  stop.async_wait([&](boost::system::error_code, int) { io.stop(); });
  std::fprintf(stderr, "wan-proxy: %zu node(s), %zu listener(s), matrix %s\n", c.nodes.size(),
               c.listens.size(), c.rtt_path.c_str());
  io.run();
  return 0;
}

}  // namespace
}  // namespace atlas::wan

int main(int argc, char** argv) { return atlas::wan::Main(argc, argv); }
