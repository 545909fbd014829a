// What LibTorch was built with and which devices it saw: a fact of a run that records keep
// and `xlhost --version` prints. device/device_info.hpp reads it from LibTorch.
#pragma once

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

// Multi-line text for --version: one "name: value" per line.
std::string describe(const RuntimeInfo& info);

}  // namespace xlhost::core
