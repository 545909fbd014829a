#include "xlhost/core/device/autocast.hpp"

#include <ATen/autocast_mode.h>

#include "xlhost/core/device/device_info.hpp"

namespace xlhost::core {

bool uses_bf16_autocast(const std::string& dtype, const torch::Device& device) {
  return dtype == "bfloat16" || (dtype == "auto" && (device.is_cuda() || cpu_has_bf16_matrix_units()));
}

AutocastScope::AutocastScope(bool enabled, const torch::Device& device) : enabled_(enabled), type_(device.type()) {
  if (!enabled_) return;
  at::autocast::set_autocast_enabled(type_, true);
  at::autocast::set_autocast_dtype(type_, at::kBFloat16);
}

AutocastScope::~AutocastScope() {
  if (!enabled_) return;
  at::autocast::set_autocast_enabled(type_, false);
  at::autocast::clear_cache();
}

}  // namespace xlhost::core
