#include "xlhost/core/conformance.hpp"

#include <chrono>
#include <cmath>
#include <filesystem>
#include <random>
#include <sstream>

#include "xlhost/core/checkpoint.hpp"
#include "xlhost/core/error.hpp"
#include "xlhost/core/progress.hpp"
#include "xlhost/core/safetensors.hpp"

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

}  // namespace

std::vector<CheckResult> run_conformance(const LoadedPlugin& plugin, const sdk::ModelConfig& config,
                                         const ConformanceOptions& o) {
  std::vector<CheckResult> results;
  auto add = [&](std::string name, Status status, std::string detail) {
    results.push_back({std::move(name), status, std::move(detail)});
  };
  torch::manual_seed(o.seed);
  auto model = plugin.create(config);
  model->eval();
  const int64_t T = o.seq_len, B = o.batch;

  std::mt19937_64 rng(o.seed + 1);
  torch::Tensor logits;
  int64_t vocab = 0;
  {
    torch::NoGradGuard no_grad;
    auto probe = model->forward(torch::zeros({B, T}, torch::kInt64));
    logits = probe.logits;
    vocab = logits.dim() == 3 ? logits.size(2) : 0;
    const bool shape_ok = logits.dim() == 3 && logits.size(0) == B && logits.size(1) == T && vocab > 0;
    const bool dtype_ok = logits.is_floating_point();
    const bool aux_ok = !probe.aux_loss.defined() || probe.aux_loss.numel() == 1;
    std::string detail = "logits " + c10::str(logits.sizes()) + " " + std::string(c10::toString(logits.scalar_type()));
    if (probe.aux_loss.defined()) detail += ", aux loss " + c10::str(probe.aux_loss.sizes());
    add("shapes and dtypes", shape_ok && dtype_ok && aux_ok ? Status::Pass : Status::Fail,
        shape_ok ? detail : "expected logits [" + std::to_string(B) + ", " + std::to_string(T) + ", V], got " + detail);
  }
  if (vocab == 0) return results;  // nothing below can run without logits

  // Integer table buffers (token-id memories) get random ids: in an all-padding memory
  // every retrieval returns the same content, and a retrieval leak would stay invisible.
  for (auto& buffer : model->named_buffers())
    if (buffer.value().scalar_type() == torch::kInt64 && buffer.value().dim() == 2)
      buffer.value().random_(std::min<int64_t>(3, vocab - 1), vocab);

  auto random_tokens = [&] {
    auto t = torch::empty({B, T}, torch::kInt64);
    auto a = t.accessor<int64_t, 2>();
    for (int64_t b = 0; b < B; ++b)
      for (int64_t i = 0; i < T; ++i) a[b][i] = static_cast<int64_t>(rng() % static_cast<uint64_t>(vocab));
    return t;
  };
  const auto tokens = random_tokens();
  torch::NoGradGuard no_grad_scope;

  auto eval_logits = [&](const torch::Tensor& ids) { return model->forward(ids).logits.to(torch::kFloat32); };
  const auto reference = eval_logits(tokens);
  add("finite outputs", torch::isfinite(reference).all().item<bool>() ? Status::Pass : Status::Fail,
      torch::isfinite(reference).all().item<bool>() ? "random tokens give finite logits" : "NaN or Inf in the logits");

  const double repeat = max_abs_diff(reference, eval_logits(tokens));
  add("determinism (eval)", repeat == 0 ? Status::Pass : Status::Fail,
      repeat == 0 ? "two forwards are identical" : "two eval forwards differ by " + number(repeat));

  // Causality: replace every token after position t of row 0; no position <= t of row 0
  // and no position of row 1 may change.
  {
    std::string leak;
    int64_t first_leak = T;
    std::vector<int64_t> probes{0, T / 2, T - 2};  // position 0 always, so a one-step leak shows there
    for (int i = 0; i < o.causality_probes; ++i) probes.push_back(static_cast<int64_t>(rng() % static_cast<uint64_t>(T - 1)));
    for (int64_t t : probes) {
      auto changed = tokens.clone();
      auto a = changed.accessor<int64_t, 2>();
      for (int64_t j = t + 1; j < T; ++j)
        a[0][j] = (a[0][j] + 1 + static_cast<int64_t>(rng() % static_cast<uint64_t>(vocab - 1))) % vocab;
      auto out = eval_logits(changed);
      for (int64_t p = 0; p <= t && p < first_leak; ++p) {
        const double d = max_abs_diff(out[0][p], reference[0][p]);
        if (d > 1e-5) {
          first_leak = p;
          leak = "position " + std::to_string(p) + " changes when the tokens after position " + std::to_string(t) +
                 " change (max |Δlogit| " + number(d) + ")";
        }
      }
      if (B > 1 && leak.empty()) {
        const double d = max_abs_diff(out[1], reference[1]);
        if (d > 1e-5) leak = "row 1 changes when only row 0 changes (max |Δlogit| " + number(d) + ")";
      }
    }
    const std::string warning = model->causality_warning();
    if (leak.empty() && !warning.empty())
      add("causality", Status::Info,
          "no leak seen in " + std::to_string(probes.size()) + " probes, but the plugin declares: " + warning);
    else if (leak.empty())
      add("causality", Status::Pass, "no position saw a later token in " + std::to_string(probes.size()) + " probes");
    else
      add("causality", warning.empty() ? Status::Fail : Status::KnownLeak,
          leak + (warning.empty() ? "" : "; declared: " + warning));
  }

  // Train mode against eval mode: they may differ only through stochastic layers.
  {
    model->train();
    const double train_a = max_abs_diff(eval_logits(tokens), reference);
    model->eval();
    add("train vs eval", Status::Info,
        train_a == 0 ? "identical (no active dropout or noise)"
                     : "differ by " + number(train_a) + " (dropout or noise in training mode)");
  }

  // Gradient reach: every trainable parameter must get a non-zero gradient from a LM loss.
  {
    torch::AutoGradMode enable(true);
    model->train();
    model->zero_grad();
    auto out = model->forward(tokens.slice(1, 0, T - 1));
    auto loss = torch::nn::functional::cross_entropy(out.logits.reshape({-1, vocab}).to(torch::kFloat32),
                                                     tokens.slice(1, 1, T).reshape({-1}));
    if (out.aux_loss.defined() && out.aux_loss.requires_grad()) loss = loss + out.aux_loss;
    loss.backward();
    std::vector<std::string> none;
    for (const auto& p : model->named_parameters())
      if (p.value().requires_grad() && (!p.value().grad().defined() || p.value().grad().abs().sum().item<double>() == 0))
        none.push_back(p.key());
    model->zero_grad();
    model->eval();
    std::string list;
    for (size_t i = 0; i < none.size() && i < 8; ++i) list += (i ? ", " : "") + none[i];
    if (none.size() > 8) list += ", ... (" + std::to_string(none.size()) + " in all)";
    add("gradient reach", none.empty() ? Status::Pass : Status::Fail,
        none.empty() ? "every trainable parameter gets a gradient" : "no gradient: " + list);
  }

  add("size", Status::Info,
      std::to_string(model->parameter_count()) + " trainable parameters (" +
          format_count(static_cast<double>(model->parameter_count())) + "), " +
          format_count(model->flops_per_token(T)) + " training FLOPs/token at seq " + std::to_string(T));

  // State dict round trip through safetensors into a fresh instance.
  {
    const auto path = std::filesystem::temp_directory_path() / ("xlhost_check_" + std::to_string(::getpid()) + ".safetensors");
    save_safetensors(path.string(), state_tensors(*model));
    torch::manual_seed(o.seed + 7);  // a differently initialised second instance
    auto copy = plugin.create(config);
    copy->eval();
    load_model_weights(*copy, path.string());
    std::filesystem::remove(path);
    const double d = max_abs_diff(copy->forward(tokens).logits.to(torch::kFloat32), reference);
    add("save/load", d == 0 ? Status::Pass : Status::Fail,
        d == 0 ? "reloaded weights give identical logits" : "reloaded model differs by " + number(d));
  }

  if (auto cache = model->new_cache()) {
    std::vector<torch::Tensor> pieces{model->forward(tokens.slice(1, 0, T / 2), cache.get()).logits};
    for (int64_t t = T / 2; t < T; ++t) pieces.push_back(model->forward(tokens.slice(1, t, t + 1), cache.get()).logits);
    const double d = max_abs_diff(torch::cat(pieces, 1).to(torch::kFloat32), reference);
    add("decode cache", d < 1e-4 ? Status::Pass : Status::Fail,
        "incremental logits differ from a full forward by " + number(d));
  } else {
    add("decode cache", Status::Skip, "no cache: generation recomputes the prefix");
  }

  {
    torch::AutoGradMode enable(true);
    model->train();
    auto time = [](auto&& f) {
      auto t0 = std::chrono::steady_clock::now();
      f();
      return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    };
    torch::Tensor loss;
    const double forward_ms = time([&] { loss = model->forward(tokens).logits.to(torch::kFloat32).logsumexp(-1).mean(); });
    const double backward_ms = time([&] { loss.backward(); });
    add("timing", Status::Info,
        "forward " + number(forward_ms, 4) + " ms, backward " + number(backward_ms, 4) + " ms at batch " +
            std::to_string(B) + " x " + std::to_string(T));
  }
  return results;
}

}  // namespace xlhost::core
