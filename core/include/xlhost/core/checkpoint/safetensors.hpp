// The safetensors format (8-byte little-endian header length, JSON header, raw data),
// so weights are readable by Python tools (safetensors.torch.load_file).
#pragma once

#include <torch/torch.h>

#include <map>
#include <string>
#include <utility>
#include <vector>

namespace xlhost::core {

void save_safetensors(const std::string& path, const std::vector<std::pair<std::string, torch::Tensor>>& tensors,
                      const std::map<std::string, std::string>& metadata = {});

// Tensors on the CPU, in file order of names. Throws UserError on a malformed file.
std::map<std::string, torch::Tensor> load_safetensors(const std::string& path,
                                                      std::map<std::string, std::string>* metadata = nullptr);

}  // namespace xlhost::core
