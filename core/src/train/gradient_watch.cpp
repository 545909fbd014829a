#include "xlhost/core/train/gradient_watch.hpp"

namespace xlhost::core {

GradientWatch::GradientWatch(const torch::OrderedDict<std::string, torch::Tensor>& named_parameters) {
  for (const auto& p : named_parameters)
    if (p.value().requires_grad()) watched_.emplace_back(p.key(), p.value());
  received_.assign(watched_.size(), false);
}

void GradientWatch::observe() {
  if (done()) return;
  ++observed_;
  for (size_t i = 0; i < watched_.size(); ++i) {
    if (received_[i]) continue;
    const auto& grad = watched_[i].second.grad();
    received_[i] = grad.defined() && (grad != 0).any().item<bool>();  // NaN counts: it was reached
  }
}

std::vector<std::string> GradientWatch::dead() const {
  std::vector<std::string> names;
  for (size_t i = 0; i < watched_.size(); ++i)
    if (!received_[i]) names.push_back(watched_[i].first);
  return names;
}

int64_t GradientWatch::values_receiving_gradient() const {
  int64_t n = 0;
  for (size_t i = 0; i < watched_.size(); ++i)
    if (received_[i]) n += watched_[i].second.numel();
  return n;
}

std::string GradientWatch::warning() const {
  const auto names = dead();
  if (names.empty()) return "";
  int64_t values = 0;
  for (size_t i = 0; i < watched_.size(); ++i)
    if (!received_[i]) values += watched_[i].second.numel();
  std::string list;
  for (size_t i = 0; i < names.size() && i < 8; ++i) list += (i ? ", " : "") + names[i];
  if (names.size() > 8) list += ", ... (" + std::to_string(names.size()) + " in all)";
  return std::to_string(names.size()) + " of " + std::to_string(watched_.size()) + " trainable parameter tensors (" +
         std::to_string(values) + " values) received no gradient in the first " + std::to_string(observed_) +
         " step(s), so they do not learn: " + list;
}

}  // namespace xlhost::core
