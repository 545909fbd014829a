// What LibTorch was built with and which devices it sees, for `xlhost --version`,
// records and metrics. The same binary runs with and without a GPU: on a machine
// without one the CUDA, cuDNN and NCCL versions are still those LibTorch was built with.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace xlhost::core {

struct RuntimeInfo {
  std::string libtorch;             // e.g. "2.15.0"
  std::string cuda;                 // CUDA runtime LibTorch was built with, e.g. "13.2"; empty for a CPU-only LibTorch
  std::string cudnn;                // e.g. "9.26.0"; empty without cuDNN
  std::string nccl;                 // e.g. "2.30.7"; empty without NCCL
  std::vector<std::string> cuda_devices;  // names of the GPUs this process can use
};

RuntimeInfo runtime_info();

// Multi-line text for --version: one "name: value" per line.
std::string describe(const RuntimeInfo& info);

// Bytes of CUDA memory held by LibTorch's caching allocator on one device (zeros on a
// machine without CUDA). peak_allocated counts since the process started or the last reset.
struct CudaMemory {
  int64_t allocated = 0, reserved = 0, peak_allocated = 0;
};
CudaMemory cuda_memory(int device = 0);

// The most resident memory this process has held, in bytes.
int64_t peak_rss_bytes();

}  // namespace xlhost::core
