// PyTorch state dicts as `torch.save` writes them (the zip format of PyTorch >= 1.6), read
// with LibTorch's own archive reader and unpickler: MiniMind's `.pth` checkpoints, with no
// Python at run time.
#pragma once

#include <torch/torch.h>

#include <map>
#include <string>

namespace xlhost::core {

// name → tensor (on the CPU, in the file's dtype). UserError naming the file when it is not
// a torch.save archive of a flat dict of tensors (a legacy pickle, a truncated file, a
// whole pickled model, nested dicts).
std::map<std::string, torch::Tensor> load_torch_state_dict(const std::string& path);

}  // namespace xlhost::core
