#include "xlhost/sdk/linear.hpp"

#include <ATen/Config.h>
#include <ATen/autocast_mode.h>
#include <ATen/core/dispatch/Dispatcher.h>

#if AT_MKLDNN_ENABLED()
// ATen's oneDNN matrix product (aten/src/ATen/native/mkldnn/Matmul.cpp), exported by
// libtorch_cpu but not among the wheel's headers: result = alpha·mat1·mat2 + beta·result for
// 2-D float32, bfloat16 or half operands of any strides. Plugins and host are built against
// one LibTorch major.minor (the loader checks), so the signature is that of the build's.
namespace at::native {
void mkldnn_matmul(const at::Tensor& mat1, const at::Tensor& mat2, const at::Tensor& result, float beta, float alpha);
}
#endif

namespace xlhost::sdk {
namespace {

namespace F = torch::nn::functional;

#if AT_MKLDNN_ENABLED()
torch::Tensor onednn_mm(const torch::Tensor& a, const torch::Tensor& b) {
  auto out = torch::empty({a.size(0), b.size(1)}, a.options());
  at::native::mkldnn_matmul(a, b, out, 0.0f, 1.0f);
  return out;
}

// x [rows, in] · wᵀ; the backward's products (dx = g·w, dw = gᵀ·x) on oneDNN too.
struct Linear : torch::autograd::Function<Linear> {
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& x, const torch::Tensor& w) {
    ctx->save_for_backward({x, w});
    return onednn_mm(x, w.t());
  }
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const auto g = grads[0].contiguous();  // oneDNN takes strides, not the 0 of an expanded gradient
    torch::Tensor dx, dw;
    if (ctx->needs_input_grad(0)) dx = onednn_mm(g, saved[1]);
    if (ctx->needs_input_grad(1)) dw = onednn_mm(g.t(), saved[0]);
    return {dx, dw};
  }
};

bool on_onednn(const torch::Tensor& x, const torch::Tensor& w) {
  auto fits = [](const torch::Tensor& t) { return t.is_cpu() && t.scalar_type() == torch::kFloat32; };
  return fits(x) && fits(w) && w.dim() == 2 && x.dim() >= 1 && x.size(-1) == w.size(1) && x.numel() > 0 &&
         !at::autocast::is_autocast_enabled(at::kCPU) && onednn_runs_bfloat16();
}
#endif

}  // namespace

// ATen's own test, asked once through the dispatcher (absent: no). mkldnn_matmul refuses float32
// as well as bfloat16 where it fails, so project() takes F::linear there.
bool onednn_runs_bfloat16() {
#if AT_MKLDNN_ENABLED()
  static const bool runs = [] {
    const auto test = c10::Dispatcher::singleton().findSchema({"mkldnn::_is_mkldnn_bf16_supported", ""});
    return at::hasMKLDNN() && test.has_value() && test->typed<bool()>().call();
  }();
  return runs;
#else
  return false;
#endif
}

torch::Tensor project(const torch::Tensor& x, const torch::Tensor& w) {
#if AT_MKLDNN_ENABLED()
  if (on_onednn(x, w)) {
    auto shape = x.sizes().vec();
    shape.back() = w.size(0);
    return Linear::apply(x.reshape({-1, x.size(-1)}), w).view(shape);
  }
#endif
  return F::linear(x, w);
}

}  // namespace xlhost::sdk
