#include "xlhost/sdk/model.hpp"

#include <stdexcept>

namespace xlhost::sdk {

ParamGroups Model::parameter_groups() {
  ParamGroups groups;
  for (auto& p : parameters()) {
    if (!p.requires_grad()) continue;
    (p.dim() >= 2 ? groups.decay : groups.no_decay).push_back(p);
  }
  return groups;
}

double Model::flops_per_token(int64_t) { return 6.0 * static_cast<double>(parameter_count()); }

int64_t Model::parameter_count(bool trainable_only) const {
  int64_t n = 0;
  for (const auto& p : parameters())
    if (!trainable_only || p.requires_grad()) n += p.numel();
  return n;
}

void Model::ablate_memory(MemoryAblation, uint64_t) {
  throw std::invalid_argument("this model has no memory to ablate");
}

}  // namespace xlhost::sdk
