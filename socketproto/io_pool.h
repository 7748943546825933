// The threads that serve client connections: one io_context per thread, each connection pinned
// to one of them for its life.
//
// Why not one io_context run by every thread (the usual Asio pattern, and what atlasd did): a
// handler posted from the node thread then wakes whichever thread waits in the reactor, the
// connection's strand hops between threads, and every hand-off costs futex and epoll_ctl calls
// (measured at one client: ~7 futex and 2.4 epoll_ctl calls per PUT on the io threads). With a
// context per thread a reply wakes exactly the thread that owns the connection.
#pragma once

#include <atomic>
#include <memory>
#include <vector>

#include "boost/asio/executor_work_guard.hpp"
#include "boost/asio/io_context.hpp"

namespace atlas::socketproto {

class IoPool {
 public:
  explicit IoPool(int threads);  // at least one
  IoPool(const IoPool&) = delete;
  IoPool& operator=(const IoPool&) = delete;

  // The context Run() drives on the calling thread (listeners, timers, signals); it also serves
  // connections. Run() returns once it has nothing left to do or Stop() was called.
  boost::asio::io_context& main() { return *contexts_.front(); }
  // The context of a new connection (round-robin).
  boost::asio::io_context& Next();
  size_t size() const { return contexts_.size(); }

  // Runs main() on this thread and every other context on a thread of its own; joins them.
  void Run();
  void Stop();

 private:
  using Guard = boost::asio::executor_work_guard<boost::asio::io_context::executor_type>;
  std::vector<std::unique_ptr<boost::asio::io_context>> contexts_;
  std::vector<Guard> guards_;  // keep the other contexts running while they serve nobody
  std::atomic<size_t> next_{0};
};

}  // namespace atlas::socketproto
