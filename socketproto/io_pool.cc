#include "socketproto/io_pool.h"

#include <pthread.h>

#include <algorithm>
#include <thread>

namespace atlas::socketproto {

IoPool::IoPool(int threads) {
  const int n = std::max(threads, 1);
  for (int i = 0; i < n; ++i) {
    // Hint 1: each context is run by one thread, so Asio may skip some of its locking.
    contexts_.push_back(std::make_unique<boost::asio::io_context>(1));
    if (i > 0) guards_.emplace_back(boost::asio::make_work_guard(*contexts_.back()));
  }
}

boost::asio::io_context& IoPool::Next() {
  return *contexts_[next_.fetch_add(1, std::memory_order_relaxed) % contexts_.size()];
}

void IoPool::Run() {
  std::vector<std::thread> threads;
  for (size_t i = 1; i < contexts_.size(); ++i) {
    threads.emplace_back([ctx = contexts_[i].get()] {
      pthread_setname_np(pthread_self(), "atlas-io");
      ctx->run();
    });
  }
  main().run();
  Stop();  // main() ran out of work: the others stop with it
  for (std::thread& t : threads) t.join();
}

void IoPool::Stop() {
  for (auto& ctx : contexts_) ctx->stop();
}

}  // namespace atlas::socketproto
