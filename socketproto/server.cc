#include "socketproto/server.h"

#include <fcntl.h>
#include <pwd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <deque>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/ascii.h"
#include "socketproto/str.h"
#include "socketproto/frame_parser.h"
#include "socketproto/io_pool.h"

namespace atlas::socketproto {

namespace asio = boost::asio;
using stream = asio::local::stream_protocol;

namespace {

std::string UserName(uid_t uid) {
  struct passwd pw;
  struct passwd* result = nullptr;
  char buf[4096];
  if (getpwuid_r(uid, &pw, buf, sizeof buf, &result) == 0 && result != nullptr) {
    return pw.pw_name;
  }
  return StrCat("uid:", uid);
}

}  // namespace

// One client connection. All members are touched only on strand_.
class Session;

// OutputStream of one session: posts frames to the session's strand; counts what is queued.
class SessionStream final : public OutputStream {
 public:
  explicit SessionStream(std::weak_ptr<Session> session) : session_(std::move(session)) {}
  bool Send(std::string frames) override;
  size_t Backlog() const override { return posted_.load() + pending_.load(); }
  bool Closed() const override { return closed_.load(); }
  void Post(std::function<void()> fn) override;

  std::atomic<size_t> posted_{0};   // sent, not yet on the session's queue
  std::atomic<size_t> pending_{0};  // on the session's queue (its pending_output_)
  std::atomic<bool> closed_{false};

 private:
  std::weak_ptr<Session> session_;
};

class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(SocketServer* server, asio::io_context& io, stream::socket socket)
      : server_(server),
        socket_(std::move(socket)),
        strand_(asio::make_strand(io)),
        parser_(server->options_.limits) {}

  void Start() {
    ctx_.connection_id = server_->next_connection_id_++;
    // Reads take what is there without blocking (Read); set once, not per read.
    boost::system::error_code ec;
    socket_.non_blocking(true, ec);
    stream_ = std::make_shared<SessionStream>(weak_from_this());
    ctx_.stream = stream_;
    budget_ = std::make_shared<ReplyBudget>(server_->options_.max_pending_output_bytes);
    ctx_.budget = budget_;
    struct ucred cred {};
    socklen_t len = sizeof cred;
    if (getsockopt(socket_.native_handle(), SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0) {
      ctx_.peer_uid = cred.uid;
      ctx_.peer_pid = cred.pid;
      ctx_.peer_user = UserName(cred.uid);
    }
    asio::dispatch(strand_, [self = shared_from_this()] {
      self->Enqueue(StrCat("WELCOME 1.0 ", self->server_->options_.server_id, "\r\n"));
      self->Pump();
    });
  }

  // Ends the session for a server shutdown: says so, then closes once that frame is written.
  void Close() {
    asio::dispatch(strand_, [self = shared_from_this()] {
      if (self->closed_) return;
      self->Fatal(std::nullopt, "server shutting down");
    });
  }

  SessionContext& ctx() { return ctx_; }
  void Post(std::function<void()> fn) { asio::post(strand_, std::move(fn)); }

  // SessionStream::Send, on the strand.
  void EnqueueStreamed(std::string bytes, size_t n) {
    asio::dispatch(strand_, [self = shared_from_this(), bytes = std::move(bytes), n]() mutable {
      self->stream_->posted_ -= n;
      self->Enqueue(std::move(bytes));
    });
  }

 private:
  // Parses and dispatches as much buffered input as the ordering rules allow, then reads more.
  void Pump() {
    // While the server drains for shutdown, no new command starts; in-flight ones finish.
    while (!closed_ && !closing_ && !waiting_untagged_ && !server_->draining_.load() &&
           budget_->used() <= budget_->bytes_max()) {
      std::string_view view(inbuf_);
      view.remove_prefix(inbuf_pos_);
      Frame frame;
      std::string error;
      ParseStatus st = parser_.Next(&view, &frame, &error);
      inbuf_pos_ = inbuf_.size() - view.size();
      if (inbuf_pos_ == inbuf_.size()) {
        inbuf_.clear();
        inbuf_pos_ = 0;
      }
      if (st == ParseStatus::kFatal) {
        Fatal(std::nullopt, error);
        return;
      }
      if (st == ParseStatus::kNeedMore) {
        if (eof_) {
          MaybeFinish();
          return;
        }
        Read();
        return;
      }
      if (!handshake_done_) {
        Handshake(frame.line);
      } else {
        Dispatch(std::move(frame));
      }
    }
  }

  void Handshake(std::string_view line) {
    std::vector<Token> t = Tokenize(line);
    if (t.size() == 3 && EqualsIgnoreCase(t[0].text, "HELLO")) {
      if (t[1].text != "1.0") {
        Fatal(std::nullopt, "invalid protocol version");
        return;
      }
      handshake_done_ = true;
      parser_.set_handshake_done();
      Enqueue("READY\r\n");
      return;
    }
    Fatal(std::nullopt, "invalid handshake");
  }

  void Dispatch(Frame frame) {
    auto parsed = ParseCommand(std::move(frame));
    if (auto* err = std::get_if<ParseError>(&parsed)) {
      Enqueue(Reply(err->id).Warn(err->message).Take());
      return;
    }
    Request req = std::get<Request>(std::move(parsed));
    std::optional<std::string> id = req.id;
    if (id) {
      if (inflight_ids_.size() >= server_->options_.limits.max_inflight_per_conn) {
        Enqueue(Reply(id).Warn("too many requests in flight").Take());
        return;
      }
      if (!inflight_ids_.insert(*id).second) {
        // Two live requests with one id could not be told apart by the client.
        Enqueue(Reply(id).Warn(StrCat("request id '", *id, "' is already in flight")).Take());
        return;
      }
    } else {
      waiting_untagged_ = true;
    }
    ++server_->inflight_;
    server_->handler_->Execute(
        std::move(req), ctx_, [self = shared_from_this(), id](Reply reply) mutable {
          asio::post(self->strand_, [self, id = std::move(id), reply = std::move(reply)]() mutable {
            --self->server_->inflight_;
            const size_t reserved = reply.reserved();
            self->Enqueue(reply.Take(), reserved);
            if (id) {
              self->inflight_ids_.erase(*id);
            } else {
              self->waiting_untagged_ = false;
            }
            self->Pump();
            self->MaybeFinish();
          });
        });
  }

  void Fatal(const std::optional<std::string>& id, std::string_view message) {
    Enqueue(Reply(id).Error(ErrorLevel::kFatal, message).Take());
    closing_ = true;  // close once the frame is written
    MaybeFinish();
  }

  void Read() {
    if (reading_ || closed_ || eof_) return;
    reading_ = true;
    // Wait for bytes without a buffer, then take them with a non-blocking read into a
    // per-thread one: an idle connection holds no read buffer (a 64 KiB one per session made
    // 10,000 idle clients cost 660 MB).
    socket_.async_wait(
        stream::socket::wait_read,
        asio::bind_executor(strand_, [self = shared_from_this()](boost::system::error_code ec) {
          self->reading_ = false;
          if (!ec) {
            thread_local std::array<char, 64 * 1024> buf;
            size_t n = self->socket_.read_some(asio::buffer(buf), ec);
            if (ec == asio::error::would_block || ec == asio::error::try_again) {
              self->Read();  // Readiness without bytes (spurious): wait again.
              return;
            }
            if (!ec) self->inbuf_.append(buf.data(), n);
          }
          if (ec) {
            // EOF: the client may have half-closed after sending its commands (a script piping
            // into the socket); finish what it sent and write the replies before closing.
            // Streams (WATCH) end: nobody will ask for them to stop.
            self->eof_ = true;
            self->stream_->closed_ = true;
            if (ec != asio::error::eof) self->broken_ = true;
          }
          self->Pump();
          self->MaybeFinish();
        }));
  }

  // `reserved`: what the reply had reserved in the budget while it was built.
  void Enqueue(std::string bytes, size_t reserved = 0) {
    if (closed_ || broken_ || bytes.empty()) {
      budget_->Queued(0, reserved);
      return;
    }
    budget_->Queued(bytes.size(), reserved);
    pending_output_ += bytes.size();
    stream_->pending_ = pending_output_;
    outq_.push_back(std::move(bytes));
    Write();
  }

  void Write() {
    if (writing_ || outq_.empty() || closed_) return;
    writing_ = true;
    batch_.clear();
    while (!outq_.empty() && batch_.size() < 64) {
      batch_.push_back(std::move(outq_.front()));
      outq_.pop_front();
    }
    std::vector<asio::const_buffer> bufs;
    bufs.reserve(batch_.size());
    for (const auto& b : batch_) bufs.push_back(asio::buffer(b));
    asio::async_write(
        socket_, bufs,
        asio::bind_executor(strand_, [self = shared_from_this()](boost::system::error_code ec,
                                                                 size_t n) {
          self->writing_ = false;
          self->pending_output_ -= n;
          self->stream_->pending_ = self->pending_output_;
          self->budget_->Written(n);
          if (ec) {
            self->broken_ = true;
            self->outq_.clear();
            self->pending_output_ = 0;
            self->stream_->pending_ = 0;
            self->Shutdown();
            return;
          }
          self->batch_.clear();
          self->Write();
          self->Pump();
          self->MaybeFinish();
        }));
  }

  // Closes the connection once nothing more will be written to it.
  void MaybeFinish() {
    if (closed_ || writing_ || !outq_.empty()) return;
    if (closing_ || broken_ || (eof_ && inflight_ids_.empty() && !waiting_untagged_ &&
                                inbuf_pos_ == inbuf_.size())) {
      Shutdown();
    }
  }

  void Shutdown() {
    if (closed_) return;
    closed_ = true;
    stream_->closed_ = true;
    budget_->Close();  // reads waiting for room answer at once: nobody will read them
    boost::system::error_code ignored;
    socket_.shutdown(stream::socket::shutdown_both, ignored);
    socket_.close(ignored);
    server_->Forget(this);
  }

  SocketServer* server_;
  stream::socket socket_;
  asio::strand<asio::io_context::executor_type> strand_;
  FrameParser parser_;
  SessionContext ctx_;
  std::shared_ptr<SessionStream> stream_;
  std::shared_ptr<ReplyBudget> budget_;
  std::string inbuf_;
  size_t inbuf_pos_ = 0;
  bool handshake_done_ = false;
  bool waiting_untagged_ = false;
  absl::flat_hash_set<std::string> inflight_ids_;
  std::deque<std::string> outq_;
  std::vector<std::string> batch_;
  size_t pending_output_ = 0;
  bool reading_ = false, writing_ = false;
  bool eof_ = false, broken_ = false, closing_ = false, closed_ = false;
};

bool SessionStream::Send(std::string frames) {
  if (closed_.load()) return false;
  std::shared_ptr<Session> s = session_.lock();
  if (!s) return false;
  const size_t n = frames.size();
  posted_ += n;
  s->EnqueueStreamed(std::move(frames), n);
  return true;
}

void SessionStream::Post(std::function<void()> fn) {
  std::shared_ptr<Session> s = session_.lock();
  if (s) {
    s->Post(std::move(fn));
  } else {
    fn();  // the connection is gone; the work still has to finish (and answer nobody)
  }
}

SocketServer::SocketServer(asio::io_context& io, ServerOptions options, CommandHandler* handler,
                           IoPool* pool)
    : io_(io),
      pool_(pool),
      options_(std::move(options)),
      handler_(handler),
      acceptor_(io),
      accept_retry_(io),
      reserve_fd_(::open("/dev/null", O_RDONLY | O_CLOEXEC)) {}

SocketServer::~SocketServer() {
  StopAccepting();
  if (reserve_fd_ >= 0) ::close(reserve_fd_);
}

absl::Status SocketServer::Start() {
  const std::string& path = options_.socket_path;
  if (path.size() >= sizeof(sockaddr_un::sun_path)) {
    return absl::InvalidArgumentError(
        StrCat("socket path too long (max ", sizeof(sockaddr_un::sun_path) - 1,
                     " bytes): ", path));
  }
  struct stat st {};
  if (lstat(path.c_str(), &st) == 0) {
    if (!S_ISSOCK(st.st_mode)) {
      return absl::FailedPreconditionError(
          StrCat(path, " exists and is not a socket; refusing to replace it"));
    }
    stream::socket probe(io_);
    boost::system::error_code ec;
    probe.connect(stream::endpoint(path), ec);
    if (!ec) {
      return absl::FailedPreconditionError(
          StrCat("socket ", path, " is served by a live process; is atlasd already running?"));
    }
    ::unlink(path.c_str());  // stale: its daemon is gone
  }
  boost::system::error_code ec;
  acceptor_.open(stream(), ec);
  if (!ec) {
    // Create the socket file with its final mode: no window in which it is more open.
    mode_t old = ::umask(static_cast<mode_t>(~options_.socket_mode & 0777));
    acceptor_.bind(stream::endpoint(path), ec);
    ::umask(old);
  }
  if (!ec) ::chmod(path.c_str(), static_cast<mode_t>(options_.socket_mode));
  if (!ec) acceptor_.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) return absl::UnavailableError(StrCat("listening on ", path, ": ", ec.message()));
  accepting_ = true;
  Accept();
  return absl::OkStatus();
}

void SocketServer::Accept() {
  asio::io_context& serving = pool_ != nullptr ? pool_->Next() : io_;
  acceptor_.async_accept(serving, [this, &serving](boost::system::error_code ec,
                                                   stream::socket socket) {
    if (!accepting_ || ec == asio::error::operation_aborted) return;
    if (ec) return AcceptFailed(ec);
    accept_backoff_ = std::chrono::milliseconds(0);
    if (open_sessions() >= options_.max_connections) {
      Refuse(socket.native_handle(),
             StrCat("too many connections (max-connections ", options_.max_connections, ")"));
    } else {
      auto session = std::make_shared<Session>(this, serving, std::move(socket));
      {
        absl::MutexLock lock(&mu_);
        sessions_[session.get()] = session;
      }
      session->Start();
    }
    Accept();
  });
}

void SocketServer::Refuse(int fd, std::string_view why) {
  const std::string frame = Reply().Error(ErrorLevel::kFatal, why).Take();
  // Best effort, never blocking: a client that cannot take one line gets the close alone.
  [[maybe_unused]] ssize_t n = ::send(fd, frame.data(), frame.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
  ::shutdown(fd, SHUT_RDWR);
}

void SocketServer::AcceptFailed(const boost::system::error_code& ec) {
  const auto now = std::chrono::steady_clock::now();
  if (now - accept_warned_ > std::chrono::seconds(10)) {
    accept_warned_ = now;
    const std::string message =
        StrCat("accepting clients on ", options_.socket_path, " failed: ", ec.message(),
               "; refusing new clients until descriptors free up (raise LimitNOFILE, or lower "
               "max-connections)");
    if (options_.warn) {
      options_.warn(message);
    } else {
      std::fprintf(stderr, "atlasd: %s\n", message.c_str());
    }
  }
  if (reserve_fd_ >= 0) {
    // The reserve descriptor buys accepts: every client waiting now is told why, not ignored
    // (the backlog is bounded by the kernel's somaxconn, so is this loop).
    ::close(reserve_fd_);
    for (int fd; (fd = ::accept4(acceptor_.native_handle(), nullptr, nullptr,
                                 SOCK_CLOEXEC | SOCK_NONBLOCK)) >= 0;) {
      Refuse(fd, "too many open files: the server cannot take more connections now");
      ::close(fd);
    }
    reserve_fd_ = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  }
  accept_backoff_ = std::clamp(accept_backoff_ * 2, std::chrono::milliseconds(10),
                               std::chrono::milliseconds(1000));
  accept_retry_.expires_after(accept_backoff_);
  accept_retry_.async_wait([this](boost::system::error_code wait_ec) {
    if (!wait_ec && accepting_) Accept();
  });
}

void SocketServer::StopAccepting() {
  draining_ = true;
  if (!accepting_) return;
  accepting_ = false;
  boost::system::error_code ignored;
  accept_retry_.cancel();
  acceptor_.close(ignored);
  ::unlink(options_.socket_path.c_str());
}

void SocketServer::CloseAll() {
  std::vector<std::shared_ptr<Session>> live;
  {
    absl::MutexLock lock(&mu_);
    for (auto& [ptr, session] : sessions_) live.push_back(session);
  }
  for (auto& s : live) s->Close();
}

size_t SocketServer::open_sessions() {
  absl::MutexLock lock(&mu_);
  return sessions_.size();
}

void SocketServer::Forget(Session* s) {
  std::shared_ptr<Session> last;  // released outside the lock
  absl::MutexLock lock(&mu_);
  auto it = sessions_.find(s);
  if (it == sessions_.end()) return;
  last = std::move(it->second);
  sessions_.erase(it);
}

}  // namespace atlas::socketproto
