#include "xlhost/core/eval/evaluation.hpp"

#include <rapidjson/document.h>

#include <cmath>
#include <fstream>

#include "xlhost/core/data/chat.hpp"
#include "xlhost/core/data/window_batch.hpp"
#include "xlhost/core/eval/generator.hpp"
#include "xlhost/core/util/error.hpp"
#include "xlhost/core/util/file_io.hpp"
#include "xlhost/core/util/json.hpp"

namespace xlhost::core {

torch::Tensor lm_loss(const torch::Tensor& logits, const torch::Tensor& targets) {
  auto flat = logits.reshape({-1, logits.size(-1)}).to(torch::kFloat32);
  auto y = targets.reshape({-1});
  auto ce = torch::nn::functional::cross_entropy(flat, y.clamp_min(0),
                                                 torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kNone));
  auto mask = (y != kIgnoredTarget).to(ce.scalar_type());
  return (ce * mask).sum() / mask.sum().clamp_min(1.0);
}

torch::Tensor logits_predicting(const torch::Tensor& logits, int64_t first, int64_t count) {
  TORCH_CHECK(first >= 1, "the first token of a sequence has no prediction");
  TORCH_CHECK(first + count <= logits.size(0), "span ends after the sequence");
  return logits.slice(0, first - 1, first + count - 1);
}

double continuation_loss(sdk::Model& model, const std::vector<int64_t>& prompt,
                         const std::vector<int64_t>& continuation, const torch::Device& device) {
  if (prompt.empty() || continuation.empty()) throw UserError("continuation_loss: prompt and continuation must be non-empty");
  std::vector<int64_t> ids(prompt);
  ids.insert(ids.end(), continuation.begin(), continuation.end());
  torch::NoGradGuard no_grad;
  auto input = torch::tensor(ids, torch::kInt64).unsqueeze(0).to(device);
  auto logits = model.forward(input).logits[0];
  auto span = logits_predicting(logits, static_cast<int64_t>(prompt.size()), static_cast<int64_t>(continuation.size()));
  auto target = torch::tensor(continuation, torch::kInt64).to(device);
  return torch::nn::functional::cross_entropy(span.to(torch::kFloat32), target).item<double>();
}

EvalResult evaluate_loss(sdk::Model& model, const TokenFile& tokens, int64_t seq_len, int64_t batch_size,
                         int64_t max_batches, const torch::Device& device) {
  WindowSampler sampler(tokens, seq_len, batch_size, 0, /*shuffle=*/false);
  const bool was_training = model.is_training();
  model.eval();
  torch::NoGradGuard no_grad;
  double weighted = 0;
  int64_t counted = 0;
  const int64_t batches = std::min(max_batches, sampler.batches_per_epoch());
  for (int64_t b = 0; b < batches; ++b) {
    const auto window = window_batch(tokens, sampler.window_starts(b), seq_len).to(device);
    const int64_t n = (window.targets != kIgnoredTarget).sum().item<int64_t>();
    weighted += lm_loss(model.forward(window.inputs).logits, window.targets).item<double>() * n;
    counted += n;
  }
  model.train(was_training);
  EvalResult r;
  r.tokens = counted;
  r.loss = counted ? weighted / counted : std::nan("");
  r.perplexity = std::exp(r.loss);
  return r;
}

FactRecall fact_recall(sdk::Model& model, const Tokenizer& tokenizer, const std::string& facts_path,
                       int64_t max_facts, const torch::Device& device, bool chat) {
  require_regular_file(facts_path, "facts");
  std::ifstream in(facts_path);
  if (!in) throw UserError(facts_path + ": cannot open facts file (eval.facts_path)");
  if (chat) require_chatml(tokenizer);
  FactRecall r;
  GenerateOptions greedy;
  greedy.temperature = 0;
  greedy.eos_id = chat ? tokenizer.special_id("<|im_end|>") : tokenizer.eos_id();
  const char* expected_fields = chat ? "{\"prompt\": string, \"answer\": string, \"question\": string, \"in_train\": bool}"
                                     : "{\"prompt\": string, \"answer\": string, \"in_train\": bool}";
  std::string line;
  for (int64_t line_no = 1; std::getline(in, line) && (max_facts <= 0 || r.facts < max_facts); ++line_no) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    rapidjson::Document doc;
    auto is_string = [&](const char* key) { return doc.HasMember(key) && doc[key].IsString(); };
    if (parse_json_into(doc, line) || !doc.IsObject() || !is_string("prompt") || !is_string("answer") ||
        (chat && !is_string("question")))
      throw UserError(facts_path + ":" + std::to_string(line_no) + ": expected " + expected_fields +
                      (chat ? " (a chat model is asked the question; `xlhost data synth` writes it)" : ""));
    const bool seen = !doc.HasMember("in_train") || !doc["in_train"].IsBool() || doc["in_train"].GetBool();
    bool correct = false;
    if (chat) {  // asked as a question: the reply must state the fact, "The capital of X is Y"
      const std::string expected = std::string(doc["prompt"].GetString()) + doc["answer"].GetString();
      const auto prompt = prompt_ids(tokenizer, doc["question"].GetString(), true);
      greedy.max_new_tokens = static_cast<int64_t>(tokenizer.encode(expected).size()) + 2;
      correct = tokenizer.decode(generate(model, prompt, greedy, device).tokens).rfind(expected, 0) == 0;
    } else {
      const auto prompt = prompt_ids(tokenizer, doc["prompt"].GetString(), false);
      const auto answer = tokenizer.encode(doc["answer"].GetString());
      greedy.max_new_tokens = static_cast<int64_t>(answer.size());
      const auto out = generate(model, prompt, greedy, device).tokens;
      correct = out.size() >= answer.size() && std::equal(answer.begin(), answer.end(), out.begin());
    }
    ++r.facts, r.correct += correct;
    if (seen) ++r.seen_facts, r.seen_correct += correct;
  }
  if (r.facts == 0) throw UserError(facts_path + ": no facts");
  return r;
}

}  // namespace xlhost::core
