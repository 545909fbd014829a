#include "xlhost/core/train/device_info.hpp"

#include <ATen/cuda/CUDAContextLight.h>
#include <ATen/detail/CUDAHooksInterface.h>
#include <c10/cuda/CUDACachingAllocator.h>
#include <torch/csrc/distributed/c10d/NCCLUtils.hpp>
#include <torch/cuda.h>
#include <torch/version.h>
#include <sys/resource.h>

#include <sstream>

namespace xlhost::core {

namespace {

// CUDA and cuDNN encode versions as decimal numbers: 13020 = 13.2, 92600 = 9.26.0.
std::string cuda_version(long v) { return std::to_string(v / 1000) + "." + std::to_string(v % 1000 / 10); }
std::string cudnn_version(long v) {
  return std::to_string(v / 10000) + "." + std::to_string(v % 10000 / 100) + "." + std::to_string(v % 100);
}

}  // namespace

RuntimeInfo runtime_info() {
  RuntimeInfo info;
  info.libtorch = TORCH_VERSION;
  const auto& hooks = at::detail::getCUDAHooks();
  if (hooks.isBuilt()) {
    info.cuda = cuda_version(hooks.versionCUDART());
    if (hooks.compiledWithCuDNN()) info.cudnn = cudnn_version(hooks.versionCuDNN());
    info.nccl = c10d::getNcclVersion();
  }
  for (int i = 0, n = static_cast<int>(torch::cuda::device_count()); i < n; ++i)
    info.cuda_devices.push_back(at::cuda::getDeviceProperties(static_cast<c10::DeviceIndex>(i))->name);
  return info;
}

std::string describe(const RuntimeInfo& info) {
  auto or_none = [](const std::string& s) { return s.empty() ? std::string("none") : s; };
  std::ostringstream out;
  out << "libtorch: " << info.libtorch << "\n"
      << "cuda (built with): " << or_none(info.cuda) << "\n"
      << "cudnn: " << or_none(info.cudnn) << "\n"
      << "nccl: " << or_none(info.nccl) << "\n"
      << "cuda devices: " << info.cuda_devices.size();
  for (size_t i = 0; i < info.cuda_devices.size(); ++i) out << (i ? ", " : " (") << info.cuda_devices[i];
  if (!info.cuda_devices.empty()) out << ")";
  out << "\n";
  return out.str();
}

CudaMemory cuda_memory(int device) {
  if (!torch::cuda::is_available()) return {};
  namespace alloc = c10::cuda::CUDACachingAllocator;
  const auto stats = alloc::getDeviceStats(static_cast<c10::DeviceIndex>(device));
  const auto all = static_cast<size_t>(c10::CachingAllocator::StatType::AGGREGATE);
  return {stats.allocated_bytes[all].current, stats.reserved_bytes[all].current, stats.allocated_bytes[all].peak};
}

int64_t peak_rss_bytes() {
  struct rusage usage {};
  getrusage(RUSAGE_SELF, &usage);
  return static_cast<int64_t>(usage.ru_maxrss) * 1024;
}

}  // namespace xlhost::core
