#pragma once

#include <cstddef>
#include <functional>

namespace xlhost::core {

// Threads for CPU-bound data work: `requested`, or every core when it is 0.
int worker_threads(int requested);

// Calls work(i, worker) for every i in [0, n) on `threads` threads (worker in [0, threads)),
// handing out indexes in small chunks so uneven items balance. The first exception
// thrown by any call is rethrown here after every thread has stopped.
void parallel_for(size_t n, int threads, const std::function<void(size_t i, int worker)>& work);

}  // namespace xlhost::core
