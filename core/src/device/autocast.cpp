#include "xlhost/core/device/autocast.hpp"

#include <ATen/autocast_mode.h>

#include "xlhost/core/device/device_info.hpp"
#include "xlhost/sdk/linear.hpp"

namespace xlhost::core {

bool uses_bf16_autocast(const std::string& dtype, const torch::Device& device) {
  return dtype == "bfloat16" || (dtype == "auto" && (device.is_cuda() || cpu_has_bf16_matrix_units()));
}

std::string bf16_speed_warning(bool autocast, const torch::Device& device) {
  if (!autocast || !device.is_cpu() || sdk::onednn_runs_bfloat16()) return "";
  return "train.dtype=bfloat16 on a CPU without oneDNN's bfloat16 kernels (they need AVX-512, AVX-NE-CONVERT or "
         "AMX): ATen's fallback runs bfloat16 matrix products at about a tenth of float32's rate, so float32 is "
         "several times faster here (--set train.dtype=float32, or auto, which picks it)";
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
