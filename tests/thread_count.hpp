// For the tests whose results must not depend on ATen's thread count.
#pragma once

#include <ATen/Parallel.h>

#include <utility>

namespace xlhost::test {

// f() with ATen's intra-op thread count set to `threads`, the count restored after (also when f
// throws, so that one failing test does not change the thread count of the next).
template <typename F>
auto on_threads(int threads, F&& f) {
  struct Restore {
    int threads;
    ~Restore() { at::set_num_threads(threads); }
  } restore{at::get_num_threads()};
  at::set_num_threads(threads);
  return std::forward<F>(f)();
}

}  // namespace xlhost::test
