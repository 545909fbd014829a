#include "xlhost/core/device/device_info.hpp"

#include <ATen/cuda/CUDAContextLight.h>
#include <ATen/detail/CUDAHooksInterface.h>
#include <c10/cuda/CUDACachingAllocator.h>
#include <torch/csrc/distributed/c10d/NCCLUtils.hpp>
#include <torch/cuda.h>
#include <torch/torch.h>
#include <torch/version.h>
#include <sys/resource.h>

#include <dlfcn.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>

#include <chrono>
#include <fstream>

#include "xlhost/sdk/linear.hpp"

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

CudaMemory cuda_memory(int device) {
  if (!torch::cuda::is_available()) return {};
  namespace alloc = c10::cuda::CUDACachingAllocator;
  const auto stats = alloc::getDeviceStats(static_cast<c10::DeviceIndex>(device));
  const auto all = static_cast<size_t>(c10::CachingAllocator::StatType::AGGREGATE);
  return {stats.allocated_bytes[all].current, stats.reserved_bytes[all].current, stats.allocated_bytes[all].peak};
}

namespace {

// The three NVML entry points used, by their C ABI: nvmlReturn_t is an int (0: success),
// nvmlDevice_t a pointer, nvmlUtilization_t two unsigned percentages {gpu, memory}.
struct Nvml {
  int (*by_pci_bus_id)(const char*, void**) = nullptr;
  int (*utilization)(void*, unsigned*) = nullptr;

  Nvml() {
    void* library = dlopen("libnvidia-ml.so.1", RTLD_NOW | RTLD_LOCAL);
    if (!library) return;
    auto init = reinterpret_cast<int (*)()>(dlsym(library, "nvmlInit_v2"));
    by_pci_bus_id = reinterpret_cast<int (*)(const char*, void**)>(dlsym(library, "nvmlDeviceGetHandleByPciBusId_v2"));
    utilization = reinterpret_cast<int (*)(void*, unsigned*)>(dlsym(library, "nvmlDeviceGetUtilizationRates"));
    if (!init || !by_pci_bus_id || !utilization || init() != 0) by_pci_bus_id = nullptr, utilization = nullptr;
  }
};

}  // namespace

double gpu_utilization_percent(int device) {
  if (!torch::cuda::is_available()) return std::nan("");
  static const Nvml nvml;
  if (!nvml.utilization) return std::nan("");
  const auto* properties = at::cuda::getDeviceProperties(static_cast<c10::DeviceIndex>(device));
  char bus_id[32];
  std::snprintf(bus_id, sizeof bus_id, "%08x:%02x:%02x.0", static_cast<unsigned>(properties->pciDomainID),
                static_cast<unsigned>(properties->pciBusID), static_cast<unsigned>(properties->pciDeviceID));
  void* handle = nullptr;
  unsigned rates[2] = {0, 0};
  if (nvml.by_pci_bus_id(bus_id, &handle) != 0 || nvml.utilization(handle, rates) != 0) return std::nan("");
  return rates[0];
}

int64_t peak_rss_bytes() {
  struct rusage usage {};
  getrusage(RUSAGE_SELF, &usage);
  return static_cast<int64_t>(usage.ru_maxrss) * 1024;
}

double measure_peak_flops(bool cuda) {
  torch::NoGradGuard no_grad;
  const auto device = cuda ? torch::Device(torch::kCUDA) : torch::Device(torch::kCPU);
  const auto dtype = cuda ? torch::kBFloat16 : torch::kFloat32;
  const int64_t n = cuda ? 4096 : 512;
  // Constant operands: drawing random ones would advance the global generator, and a
  // run's dropout (and so its losses) would then depend on whether metrics are served.
  auto a = torch::full({n, n}, 0.5, torch::TensorOptions().device(device).dtype(dtype));
  auto b = torch::full({n, n}, 0.25, torch::TensorOptions().device(device).dtype(dtype));
  // On the CPU the product the SDK's layers use (oneDNN: about twice MKL's torch::mm on AMD
  // CPUs, where the ratio would otherwise pass 1).
  auto product = [&] { return cuda ? torch::mm(a, b) : sdk::project(a, b); };
  auto sync = [&] {
    if (cuda) torch::cuda::synchronize();
  };
  product();
  sync();
  int64_t reps = 0;
  const auto start = std::chrono::steady_clock::now();
  double elapsed = 0;
  while (elapsed < 0.2) {
    product();
    sync();
    ++reps;
    elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  }
  return 2.0 * n * n * n * reps / elapsed;
}

double process_cpu_seconds() {
  struct rusage usage {};
  getrusage(RUSAGE_SELF, &usage);
  auto seconds = [](const timeval& t) { return static_cast<double>(t.tv_sec) + 1e-6 * static_cast<double>(t.tv_usec); };
  return seconds(usage.ru_utime) + seconds(usage.ru_stime);
}

int64_t resident_memory_bytes() {
  std::ifstream statm("/proc/self/statm");
  int64_t size = 0, resident = 0;
  statm >> size >> resident;
  return resident * sysconf(_SC_PAGESIZE);
}

bool cpu_has_bf16_matrix_units() {
  std::ifstream cpuinfo("/proc/cpuinfo");
  for (std::string line; std::getline(cpuinfo, line);)
    if (line.rfind("flags", 0) == 0) return line.find(" amx_bf16") != std::string::npos;
  return false;
}

}  // namespace xlhost::core
