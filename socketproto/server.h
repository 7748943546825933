// The Unix-socket server of docs/protocol.md: handshake, framing, [ID:x] concurrency, limits,
// FATAL vs WARN, socket file creation. It knows nothing about what commands do: each parsed
// Request goes to a CommandHandler, whose reply comes back as one buffer of complete frames.
//
// Threading: a session's state is touched only on its strand; handlers may reply from any
// thread (the reply is posted back). The server object itself is used from the thread that
// owns the io_context's lifetime (Start/Stop).
#pragma once

#include <sys/types.h>

#include <atomic>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "boost/asio.hpp"
#include "socketproto/command.h"
#include "socketproto/formatter.h"
#include "socketproto/limits.h"
#include "socketproto/reply_budget.h"

namespace atlas::socketproto {

// Frames a command sends before its final reply (WATCH events): complete frames, written in
// order with the connection's other output. Thread-safe; safe to use after the session ended.
class OutputStream {
 public:
  virtual ~OutputStream() = default;
  // Queues complete frames; false (dropped) once the connection is closing.
  virtual bool Send(std::string frames) = 0;
  // Bytes queued for the connection and not yet written: how far the client is behind.
  virtual size_t Backlog() const = 0;
  // The client closed (or lost) the connection: streams should end.
  virtual bool Closed() const = 0;
  // Runs `fn` on the thread that serves the connection (work that must not hold up the thread
  // that finished it, e.g. a read after its barrier). Default: at once, on the caller's thread.
  virtual void Post(std::function<void()> fn) { fn(); }
};

// Per-connection state visible to the command handler.
struct SessionContext {
  uint64_t connection_id = 0;
  std::optional<std::string> principal;
  uid_t peer_uid = static_cast<uid_t>(-1);
  pid_t peer_pid = 0;
  std::string peer_user;  // the peer's Unix user name (SO_PEERCRED), empty if unknown
  std::shared_ptr<OutputStream> stream;  // this connection's, for commands that stream
  // This connection's reply memory: reserve a large reply's bytes here before building it.
  std::shared_ptr<ReplyBudget> budget;
  // The command handler's own per-connection state (set and used only by it).
  std::shared_ptr<void> handler_state;
};

class CommandHandler {
 public:
  virtual ~CommandHandler() = default;
  // Runs one command. `done` must be called exactly once, from any thread, with the whole reply.
  // Changes to `ctx` (PRINCIPAL ASSUME) must be made before Execute returns: `ctx` is only
  // valid during the call. The handler must not block for long (no waiting on consensus).
  virtual void Execute(Request request, SessionContext& ctx,
                       std::function<void(Reply)> done) = 0;
};

struct ServerOptions {
  std::string socket_path;
  unsigned socket_mode = 0660;
  std::string server_id = "atlasd/0.1.0";
  Limits limits;
  // A connection's reply memory (its ReplyBudget): replies queued and not yet written plus
  // replies being built. Over it, the session stops reading new commands and large reads wait,
  // so a client that never reads cannot grow the server's memory without bound.
  size_t max_pending_output_bytes = size_t{16} << 20;
  // Connections at once; more are answered `ERROR FATAL too many connections` and closed.
  size_t max_connections = 16384;
  // Where the server's own warnings go (the daemon's log); null: stderr.
  std::function<void(std::string_view)> warn;
};

class Session;
class IoPool;

class SocketServer {
 public:
  // Listens on `io`; connections are served on `io` too, or on the contexts of `pool` (one
  // each, round-robin) when one is given.
  SocketServer(boost::asio::io_context& io, ServerOptions options, CommandHandler* handler,
               IoPool* pool = nullptr);
  ~SocketServer();

  // Creates the socket file (replacing a stale one, refusing one a live process serves),
  // applies the mode, and starts accepting.
  absl::Status Start();
  // Stops accepting, removes the socket file, and stops sessions from starting new commands
  // (commands already running finish and their replies are written).
  void StopAccepting();
  // Ends every session with `ERROR FATAL server shutting down` (after StopAccepting, once
  // in-flight commands are done).
  void CloseAll();

  size_t inflight_commands() const { return inflight_.load(); }
  size_t open_sessions();

 private:
  friend class Session;
  void Accept();
  // After an accept error (out of descriptors): refuse one waiting client with a frame (through
  // the reserve descriptor) instead of leaving it hanging, and retry after a backoff instead of
  // spinning on a listening socket that stays readable.
  void AcceptFailed(const boost::system::error_code& ec);
  // Answers `ERROR FATAL <why>` on a connection it will not serve, and closes it.
  static void Refuse(int fd, std::string_view why);
  void Forget(Session* s);

  boost::asio::io_context& io_;
  IoPool* pool_;
  ServerOptions options_;
  CommandHandler* handler_;
  boost::asio::local::stream_protocol::acceptor acceptor_;
  boost::asio::steady_timer accept_retry_;
  std::chrono::milliseconds accept_backoff_{0};
  std::chrono::steady_clock::time_point accept_warned_{};
  int reserve_fd_ = -1;  // a descriptor kept free for refusing clients when none are left
  std::atomic<uint64_t> next_connection_id_{1};
  std::atomic<size_t> inflight_{0};
  std::atomic<bool> draining_{false};
  bool accepting_ = false;
  absl::Mutex mu_;
  // Owned here until the session closes: a session waiting on nothing (e.g. draining for
  // shutdown) has no pending handler to keep it alive.
  absl::flat_hash_map<Session*, std::shared_ptr<Session>> sessions_ ABSL_GUARDED_BY(mu_);
};

}  // namespace atlas::socketproto
