#include "xlhost/core/eval/generator.hpp"

#include <ATen/CPUGeneratorImpl.h>

#include <limits>
#include <set>

#include "xlhost/core/data/chat.hpp"
#include "xlhost/core/util/error.hpp"

namespace xlhost::core {

std::vector<int64_t> prompt_ids(const Tokenizer& tokenizer, const std::string& prompt, bool chat) {
  if (chat) return tokenizer.encode(render_chatml({{"user", prompt}}, /*add_generation_prompt=*/true).text);
  std::vector<int64_t> ids{tokenizer.bos_id()};
  for (int64_t id : tokenizer.encode(prompt)) ids.push_back(id);
  return ids;
}

int64_t sample_next(torch::Tensor logits, const std::vector<int64_t>& seen, const GenerateOptions& o,
                    at::Generator& rng) {
  logits = logits.to(torch::kCPU, torch::kFloat32).clone();
  if (o.repetition_penalty != 1.0 && !seen.empty()) {
    // MiniMind divides every seen token's logit by the penalty, negative ones included.
    const std::set<int64_t> unique(seen.begin(), seen.end());
    auto ids = torch::tensor(std::vector<int64_t>(unique.begin(), unique.end()), torch::kInt64);
    logits.index_copy_(0, ids, logits.index_select(0, ids) / o.repetition_penalty);
  }
  if (o.temperature <= 0) return logits.argmax().item<int64_t>();
  logits = logits / (o.temperature + 1e-9);
  if (o.top_p < 1.0) {
    auto sorted = logits.sort(/*dim=*/-1, /*descending=*/true);
    auto sorted_logits = std::get<0>(sorted), order = std::get<1>(sorted);
    auto cumulative = sorted_logits.softmax(-1).cumsum(-1);
    // Drop tokens once the mass before them already exceeds top_p; the first always stays.
    auto drop = (cumulative - sorted_logits.softmax(-1)) > o.top_p;
    logits.index_fill_(0, order.masked_select(drop), -std::numeric_limits<float>::infinity());
  }
  return torch::multinomial(logits.softmax(-1), 1, false, rng).item<int64_t>();
}

Generation generate(sdk::Model& model, const std::vector<int64_t>& prompt, const GenerateOptions& o,
                    const torch::Device& device, const TokenObserver& on_token) {
  if (prompt.empty()) throw UserError("generate: empty prompt (the tokenizer adds BOS; pass at least that)");
  torch::NoGradGuard no_grad;
  const bool was_training = model.is_training();
  model.eval();
  auto rng = at::make_generator<at::CPUGeneratorImpl>(o.seed);
  auto cache = o.use_cache ? model.new_cache() : nullptr;
  std::vector<int64_t> ids(prompt);
  Generation out;
  const size_t start = prompt.size();
  while (ids.size() < start + static_cast<size_t>(o.max_new_tokens)) {
    torch::Tensor input;
    if (cache && cache->length > 0)
      input = torch::tensor(std::vector<int64_t>(ids.begin() + cache->length, ids.end()), torch::kInt64);
    else
      input = torch::tensor(ids, torch::kInt64);
    const auto logits = model.forward(input.unsqueeze(0).to(device), cache.get()).logits[0][-1].to(torch::kCPU, torch::kFloat32);
    const int64_t next = sample_next(logits, ids, o, rng);
    ids.push_back(next);
    out.tokens.push_back(next);
    const bool go_on = !on_token || on_token(logits, out.tokens);
    if (next == o.eos_id) {
      out.hit_eos = true;
      break;
    }
    if (!go_on) break;
  }
  model.train(was_training);
  return out;
}

GenerationReport generate_all(sdk::Model& model, const std::vector<std::vector<int64_t>>& prompts,
                              const GenerateOptions& options, const torch::Device& device) {
  GenerationReport report;
  double total = 0, eos = 0;
  for (size_t i = 0; i < prompts.size(); ++i) {
    GenerateOptions per_prompt = options;
    per_prompt.seed = options.seed + i;
    report.generations.push_back(generate(model, prompts[i], per_prompt, device));
    total += static_cast<double>(report.generations.back().tokens.size());
    eos += report.generations.back().hit_eos ? 1 : 0;
  }
  if (!prompts.empty()) {
    report.eos_rate = eos / static_cast<double>(prompts.size());
    report.mean_new_tokens = total / static_cast<double>(prompts.size());
  }
  return report;
}

}  // namespace xlhost::core
