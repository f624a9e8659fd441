// Work over many hosts on a bounded number of threads ([plan]
// max_parallel_hosts): a lab of hundreds of hosts must not cost hundreds of
// threads and ssh connections on the controller.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <thread>
#include <vector>

namespace vmlat {

// Calls fn(i) for every i in [0, count), in order of i, on at most
// `max_threads` threads (at least one); returns when every call has. `fn`
// must not throw (each call owns its errors). The calling thread only waits:
// a child process that must outlive the calls is started elsewhere (see
// SshMaster).
template <class Fn>
void for_each_bounded(std::size_t count, std::size_t max_threads, Fn&& fn) {
  const std::size_t threads = std::min(count, std::max<std::size_t>(max_threads, 1));
  std::atomic<std::size_t> next{0};
  std::vector<std::thread> pool;
  pool.reserve(threads);
  for (std::size_t t = 0; t < threads; ++t)
    pool.emplace_back([&] {
      for (std::size_t i = next++; i < count; i = next++) fn(i);
    });
  for (auto& t : pool) t.join();
}

}  // namespace vmlat
