#include "xlhost/core/util/parallel.hpp"

#include <algorithm>
#include <atomic>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

namespace xlhost::core {

int worker_threads(int requested) {
  if (requested > 0) return requested;
  return std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
}

void parallel_for(size_t n, int threads, const std::function<void(size_t i, int worker)>& work) {
  constexpr size_t kChunk = 16;
  std::atomic<size_t> next{0};
  std::atomic<bool> failed{false};
  std::exception_ptr first;
  std::mutex first_mutex;
  auto run = [&](int worker) {
    try {
      for (size_t begin; !failed && (begin = next.fetch_add(kChunk)) < n;)
        for (size_t i = begin; i < std::min(n, begin + kChunk); ++i) work(i, worker);
    } catch (...) {
      std::lock_guard<std::mutex> lock(first_mutex);
      if (!first) first = std::current_exception();
      failed = true;
    }
  };
  const int count = std::max(1, std::min<int>(threads, static_cast<int>((n + kChunk - 1) / kChunk)));
  std::vector<std::thread> pool;
  for (int w = 1; w < count; ++w) pool.emplace_back(run, w);
  run(0);
  for (auto& t : pool) t.join();
  if (first) std::rethrow_exception(first);
}

}  // namespace xlhost::core
