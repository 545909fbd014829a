#include "xlhost/core/eval/generation_quality.hpp"

#include <cmath>
#include <set>

#include "xlhost/core/eval/benchmark.hpp"

namespace xlhost::core {

namespace {

using Gram = std::vector<int64_t>;

std::vector<Gram> ngrams(const std::vector<int64_t>& tokens, size_t n) {
  std::vector<Gram> out;
  for (size_t i = 0; i + n <= tokens.size(); ++i) out.emplace_back(tokens.begin() + i, tokens.begin() + i + n);
  return out;
}

double distinct(const GenerationReport& report, size_t n) {
  std::set<Gram> unique;
  size_t total = 0;
  for (const auto& g : report.generations) {
    const auto grams = ngrams(g.tokens, n);
    unique.insert(grams.begin(), grams.end());
    total += grams.size();
  }
  return total ? static_cast<double>(unique.size()) / static_cast<double>(total) : std::nan("");
}

}  // namespace

GenerationQuality generation_quality(const GenerationReport& report) {
  GenerationQuality q;
  q.samples = static_cast<int64_t>(report.generations.size());
  q.eos_rate = report.eos_rate, q.mean_new_tokens = report.mean_new_tokens;
  q.distinct_1 = distinct(report, 1), q.distinct_2 = distinct(report, 2);
  double repetition = 0;
  int64_t counted = 0;
  for (const auto& g : report.generations) {
    const auto grams = ngrams(g.tokens, 4);
    if (grams.empty()) continue;
    const std::set<Gram> unique(grams.begin(), grams.end());
    repetition += 1.0 - static_cast<double>(unique.size()) / static_cast<double>(grams.size());
    ++counted;
  }
  q.repetition_4 = counted ? repetition / static_cast<double>(counted) : std::nan("");
  return q;
}

double reference_perplexity(sdk::Model& reference, const Tokenizer& tokenizer, const std::vector<std::string>& prompts,
                            const std::vector<std::string>& continuations, int64_t max_length, const torch::Device& device) {
  std::vector<LoglikelihoodRequest> requests;
  int64_t tokens = 0;
  for (size_t i = 0; i < prompts.size() && i < continuations.size(); ++i) {
    auto r = encode_pair(tokenizer, prompts[i], continuations[i], tokenizer.bos_id());
    if (r.context.empty() || r.continuation.empty()) continue;
    tokens += static_cast<int64_t>(r.continuation.size());
    requests.push_back(std::move(r));
  }
  if (requests.empty()) return std::nan("");
  const bool was_training = reference.is_training();
  reference.eval();
  double total = 0;
  for (const auto& ll : loglikelihoods(reference, requests, max_length, 1, device)) total += ll.logprob;
  reference.train(was_training);
  return std::exp(-total / static_cast<double>(tokens));
}

}  // namespace xlhost::core
