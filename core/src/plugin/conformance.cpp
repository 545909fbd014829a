#include "xlhost/core/plugin/conformance.hpp"

#include <chrono>
#include <cmath>
#include <filesystem>
#include <random>
#include <sstream>

#include "xlhost/core/checkpoint/checkpoint.hpp"
#include "xlhost/core/checkpoint/safetensors.hpp"
#include "xlhost/core/util/error.hpp"
#include "xlhost/core/util/progress.hpp"

namespace xlhost::core {

using Status = CheckResult::Status;

const char* status_name(Status status) {
  switch (status) {
    case Status::Pass: return "PASS";
    case Status::Fail: return "FAIL";
    case Status::KnownLeak: return "KNOWN LEAK";
    case Status::Skip: return "skip";
    case Status::Info: return "info";
  }
  return "?";
}

namespace {

std::string number(double x, int digits = 3) {
  std::ostringstream out;
  out.precision(digits);
  out << x;
  return out.str();
}

double max_abs_diff(const torch::Tensor& a, const torch::Tensor& b) { return (a - b).abs().max().item<double>(); }

// What the checks share: the model under test, a batch of random tokens and the eval-mode
// logits they give.
struct Probe {
  std::shared_ptr<sdk::Model> model;
  int64_t batch = 0, seq_len = 0, vocab = 0;
  std::mt19937_64 rng;
  torch::Tensor tokens, reference;

  torch::Tensor eval_logits(const torch::Tensor& ids) const { return model->forward(ids).logits.to(torch::kFloat32); }
  int64_t random_below(int64_t n) { return static_cast<int64_t>(rng() % static_cast<uint64_t>(n)); }
};

CheckResult check_shapes(Probe& p) {
  torch::NoGradGuard no_grad;
  const int64_t B = p.batch, T = p.seq_len;
  auto probe = p.model->forward(torch::zeros({B, T}, torch::kInt64));
  const auto& logits = probe.logits;
  p.vocab = logits.dim() == 3 ? logits.size(2) : 0;
  const bool shape_ok = logits.dim() == 3 && logits.size(0) == B && logits.size(1) == T && p.vocab > 0;
  const bool dtype_ok = logits.is_floating_point();
  const bool aux_ok = !probe.aux_loss.defined() || probe.aux_loss.numel() == 1;
  std::string detail = "logits " + c10::str(logits.sizes()) + " " + std::string(c10::toString(logits.scalar_type()));
  if (probe.aux_loss.defined()) detail += ", aux loss " + c10::str(probe.aux_loss.sizes());
  return {"shapes and dtypes", shape_ok && dtype_ok && aux_ok ? Status::Pass : Status::Fail,
          shape_ok ? detail : "expected logits [" + std::to_string(B) + ", " + std::to_string(T) + ", V], got " + detail};
}

// Replaces every token after position t of row 0; no position <= t of row 0 and no
// position of row 1 may change.
CheckResult check_causality(Probe& p, int extra_probes) {
  const int64_t T = p.seq_len;
  std::string leak;
  int64_t first_leak = T;
  std::vector<int64_t> positions{0, T / 2, T - 2};  // position 0 always, so a one-step leak shows there
  for (int i = 0; i < extra_probes; ++i) positions.push_back(p.random_below(T - 1));
  for (int64_t t : positions) {
    auto changed = p.tokens.clone();
    auto a = changed.accessor<int64_t, 2>();
    for (int64_t j = t + 1; j < T; ++j) a[0][j] = (a[0][j] + 1 + p.random_below(p.vocab - 1)) % p.vocab;
    auto out = p.eval_logits(changed);
    for (int64_t q = 0; q <= t && q < first_leak; ++q) {
      const double d = max_abs_diff(out[0][q], p.reference[0][q]);
      if (d > 1e-5) {
        first_leak = q;
        leak = "position " + std::to_string(q) + " changes when the tokens after position " + std::to_string(t) +
               " change (max |Δlogit| " + number(d) + ")";
      }
    }
    if (p.batch > 1 && leak.empty()) {
      const double d = max_abs_diff(out[1], p.reference[1]);
      if (d > 1e-5) leak = "row 1 changes when only row 0 changes (max |Δlogit| " + number(d) + ")";
    }
  }
  const std::string warning = p.model->causality_warning();
  if (leak.empty() && !warning.empty())
    return {"causality", Status::Info,
            "no leak seen in " + std::to_string(positions.size()) + " probes, but the plugin declares: " + warning};
  if (leak.empty())
    return {"causality", Status::Pass, "no position saw a later token in " + std::to_string(positions.size()) + " probes"};
  return {"causality", warning.empty() ? Status::Fail : Status::KnownLeak,
          leak + (warning.empty() ? "" : "; declared: " + warning)};
}

// Every trainable parameter must get a non-zero gradient from a language-model loss.
CheckResult check_gradient_reach(Probe& p) {
  torch::AutoGradMode enable(true);
  const int64_t T = p.seq_len;
  p.model->train();
  p.model->zero_grad();
  auto out = p.model->forward(p.tokens.slice(1, 0, T - 1));
  auto loss = torch::nn::functional::cross_entropy(out.logits.reshape({-1, p.vocab}).to(torch::kFloat32),
                                                   p.tokens.slice(1, 1, T).reshape({-1}));
  if (out.aux_loss.defined() && out.aux_loss.requires_grad()) loss = loss + out.aux_loss;
  loss.backward();
  std::vector<std::string> none;
  for (const auto& param : p.model->named_parameters())
    if (param.value().requires_grad() &&
        (!param.value().grad().defined() || param.value().grad().abs().sum().item<double>() == 0))
      none.push_back(param.key());
  p.model->zero_grad();
  p.model->eval();
  std::string list;
  for (size_t i = 0; i < none.size() && i < 8; ++i) list += (i ? ", " : "") + none[i];
  if (none.size() > 8) list += ", ... (" + std::to_string(none.size()) + " in all)";
  return {"gradient reach", none.empty() ? Status::Pass : Status::Fail,
          none.empty() ? "every trainable parameter gets a gradient" : "no gradient: " + list};
}

// State dict round trip through safetensors into a differently initialised instance.
CheckResult check_save_load(Probe& p, const LoadedPlugin& plugin, const sdk::ModelConfig& config, uint64_t seed) {
  const auto path = std::filesystem::temp_directory_path() / ("xlhost_check_" + std::to_string(::getpid()) + ".safetensors");
  save_safetensors(path.string(), state_tensors(*p.model));
  torch::manual_seed(seed);
  auto copy = plugin.create(config);
  copy->eval();
  load_model_weights(*copy, path.string());
  std::filesystem::remove(path);
  const double d = max_abs_diff(copy->forward(p.tokens).logits.to(torch::kFloat32), p.reference);
  return {"save/load", d == 0 ? Status::Pass : Status::Fail,
          d == 0 ? "reloaded weights give identical logits" : "reloaded model differs by " + number(d)};
}

CheckResult check_decode_cache(Probe& p) {
  auto cache = p.model->new_cache();
  if (!cache) return {"decode cache", Status::Skip, "no cache: generation recomputes the prefix"};
  const int64_t T = p.seq_len;
  std::vector<torch::Tensor> pieces{p.model->forward(p.tokens.slice(1, 0, T / 2), cache.get()).logits};
  for (int64_t t = T / 2; t < T; ++t) pieces.push_back(p.model->forward(p.tokens.slice(1, t, t + 1), cache.get()).logits);
  const double d = max_abs_diff(torch::cat(pieces, 1).to(torch::kFloat32), p.reference);
  return {"decode cache", d < 1e-4 ? Status::Pass : Status::Fail, "incremental logits differ from a full forward by " + number(d)};
}

CheckResult time_forward_backward(Probe& p) {
  torch::AutoGradMode enable(true);
  p.model->train();
  auto time = [](auto&& f) {
    auto t0 = std::chrono::steady_clock::now();
    f();
    return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  };
  torch::Tensor loss;
  const double forward_ms = time([&] { loss = p.model->forward(p.tokens).logits.to(torch::kFloat32).logsumexp(-1).mean(); });
  const double backward_ms = time([&] { loss.backward(); });
  return {"timing", Status::Info,
          "forward " + number(forward_ms, 4) + " ms, backward " + number(backward_ms, 4) + " ms at batch " +
              std::to_string(p.batch) + " x " + std::to_string(p.seq_len)};
}

}  // namespace

std::vector<CheckResult> run_conformance(const LoadedPlugin& plugin, const sdk::ModelConfig& config,
                                         const ConformanceOptions& o) {
  torch::manual_seed(o.seed);
  Probe p{plugin.create(config), o.batch, o.seq_len, 0, std::mt19937_64(o.seed + 1), {}, {}};
  p.model->eval();
  std::vector<CheckResult> results{check_shapes(p)};
  if (p.vocab == 0) return results;  // nothing below can run without logits

  // Integer table buffers (token-id memories) get random ids: in an all-padding memory
  // every retrieval returns the same content, and a retrieval leak would stay invisible.
  for (auto& buffer : p.model->named_buffers())
    if (buffer.value().scalar_type() == torch::kInt64 && buffer.value().dim() == 2)
      buffer.value().random_(std::min<int64_t>(3, p.vocab - 1), p.vocab);
  p.tokens = torch::empty({p.batch, p.seq_len}, torch::kInt64);
  auto a = p.tokens.accessor<int64_t, 2>();
  for (int64_t b = 0; b < p.batch; ++b)
    for (int64_t i = 0; i < p.seq_len; ++i) a[b][i] = p.random_below(p.vocab);
  torch::NoGradGuard no_grad_scope;

  p.reference = p.eval_logits(p.tokens);
  const bool finite = torch::isfinite(p.reference).all().item<bool>();
  results.push_back({"finite outputs", finite ? Status::Pass : Status::Fail,
                     finite ? "random tokens give finite logits" : "NaN or Inf in the logits"});
  const double repeat = max_abs_diff(p.reference, p.eval_logits(p.tokens));
  results.push_back({"determinism (eval)", repeat == 0 ? Status::Pass : Status::Fail,
                     repeat == 0 ? "two forwards are identical" : "two eval forwards differ by " + number(repeat)});
  results.push_back(check_causality(p, o.causality_probes));

  // Train mode against eval mode: they may differ only through stochastic layers.
  p.model->train();
  const double train_eval = max_abs_diff(p.eval_logits(p.tokens), p.reference);
  p.model->eval();
  results.push_back({"train vs eval", Status::Info,
                     train_eval == 0 ? "identical (no active dropout or noise)"
                                     : "differ by " + number(train_eval) + " (dropout or noise in training mode)"});
  results.push_back(check_gradient_reach(p));
  results.push_back({"size", Status::Info,
                     std::to_string(p.model->parameter_count()) + " trainable parameters (" +
                         format_count(static_cast<double>(p.model->parameter_count())) + "), " +
                         format_count(p.model->flops_per_token(p.seq_len)) + " training FLOPs/token at seq " +
                         std::to_string(p.seq_len)});
  results.push_back(check_save_load(p, plugin, config, o.seed + 7));
  results.push_back(check_decode_cache(p));
  results.push_back(time_forward_backward(p));
  return results;
}

}  // namespace xlhost::core
