// The devices and the process as LibTorch and the kernel see them: what LibTorch was built
// with, CUDA memory, resident memory and the measured matmul peak. The same binary runs with
// and without a GPU: on a machine without one the CUDA, cuDNN and NCCL versions are still
// those LibTorch was built with.
#pragma once

#include <cstdint>

#include "xlhost/core/run/runtime_info.hpp"

namespace xlhost::core {

RuntimeInfo runtime_info();

// Bytes of CUDA memory held by LibTorch's caching allocator on one device (zeros on a
// machine without CUDA). peak_allocated counts since the process started or the last reset.
struct CudaMemory {
  int64_t allocated = 0, reserved = 0, peak_allocated = 0;
};
CudaMemory cuda_memory(int device = 0);

// The GPU's utilisation in % over the driver's last sample period, from NVIDIA's NVML
// (libnvidia-ml.so.1 of the driver, opened at run time, so that the build needs no header
// and a machine without the driver runs as before); the device is found by its PCI bus id,
// which CUDA and NVML share whatever CUDA_VISIBLE_DEVICES renumbers. NaN without CUDA or NVML.
double gpu_utilization_percent(int device);

// The most resident memory this process has held, and what it holds now, in bytes.
int64_t peak_rss_bytes();
int64_t resident_memory_bytes();
// User and system CPU time of this process (all its threads) since it started.
double process_cpu_seconds();

// Peak FLOP/s for utilisation figures: the measured throughput of a square matmul
// (float32 on the CPU, bfloat16 on CUDA) over about 0.2 s. A measured peak, not the
// datasheet's, so the ratio says how close training gets to what the BLAS achieves.
double measure_peak_flops(bool cuda);

// Whether this CPU has bfloat16 matrix units (AMX-BF16 in /proc/cpuinfo), where bfloat16
// autocast pays on the CPU; AVX-512-BF16 alone has bfloat16 dot products but no tiles.
bool cpu_has_bf16_matrix_units();

}  // namespace xlhost::core
