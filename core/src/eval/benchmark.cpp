#include "xlhost/core/eval/benchmark.hpp"

#include <cmath>
#include <random>

#include "xlhost/core/util/error.hpp"

namespace xlhost::core {

namespace {

// What goes through the model for a request and where its continuation starts in it. A
// request that fits is fed whole (what `xlhost serve` computes for the same tokens);
// a longer one as lm-eval's Hugging Face backend feeds it, (context + continuation) cut
// from the left to max_length + 1 tokens without the last, whose prediction is not needed.
struct ModelInput {
  std::vector<int64_t> ids;
  int64_t first_predicted = 0;  // row of the logits that predicts the first continuation token
};

ModelInput model_input(const LoglikelihoodRequest& r, int64_t max_length) {
  std::vector<int64_t> whole(r.context);
  whole.insert(whole.end(), r.continuation.begin(), r.continuation.end());
  const auto n = static_cast<int64_t>(whole.size()), cont = static_cast<int64_t>(r.continuation.size());
  ModelInput in;
  if (max_length <= 0 || n <= max_length) {
    in.ids = std::move(whole);
  } else {
    in.ids.assign(whole.end() - std::min(n, max_length + 1), whole.end() - 1);
  }
  in.first_predicted = static_cast<int64_t>(in.ids.size()) + (n <= max_length || max_length <= 0 ? 0 : 1) - cont - 1;
  if (in.first_predicted < 0) throw UserError("a continuation of " + std::to_string(cont) + " tokens does not fit max_length");
  return in;
}

Accuracy accuracy_of(const std::vector<const ChoiceItemScore*>& items) {
  Accuracy a;
  a.items = static_cast<int64_t>(items.size());
  if (items.empty()) return a;
  for (const auto* s : items) a.acc += s->correct, a.acc_norm += s->correct_norm, a.acc_bytes += s->correct_bytes;
  const double n = static_cast<double>(a.items);
  a.acc /= n, a.acc_norm /= n, a.acc_bytes /= n;
  a.acc_stderr = a.items > 1 ? std::sqrt(a.acc * (1 - a.acc) / (n - 1)) : std::nan("");
  return a;
}

// Position of the largest value, the first on ties (numpy's argmax).
int64_t argmax(const std::vector<double>& v) {
  return std::max_element(v.begin(), v.end()) - v.begin();
}

size_t code_points(const std::string& s) {
  size_t n = 0;
  for (unsigned char c : s) n += (c & 0xC0) != 0x80;
  return n;
}

std::vector<const ChoiceItem*> fewshot_examples(const TaskFile& task, size_t item, const BenchmarkOptions& o) {
  std::vector<const ChoiceItem*> pool;
  for (const auto& shot : task.fewshot) pool.push_back(&shot);
  if (o.num_fewshot > static_cast<int64_t>(pool.size()))
    throw UserError(task.path + ": --num-fewshot " + std::to_string(o.num_fewshot) + " but the few-shot pool has " +
                    std::to_string(pool.size()) + " items (lines with \"fewshot\": true)");
  std::mt19937_64 rng(o.fewshot_seed + item);  // modulo draws: the same on every standard library
  for (int64_t i = 0; i < o.num_fewshot; ++i)
    std::swap(pool[static_cast<size_t>(i)], pool[static_cast<size_t>(i) + rng() % (pool.size() - static_cast<size_t>(i))]);
  pool.resize(static_cast<size_t>(o.num_fewshot));
  return pool;
}

}  // namespace

LoglikelihoodRequest encode_pair(const Tokenizer& tokenizer, std::string context, std::string continuation,
                                 int64_t prefix_id) {
  LoglikelihoodRequest r;
  if (context.empty()) {
    r.continuation = tokenizer.encode(continuation);
    if (!r.continuation.empty() && r.continuation.front() == prefix_id) {
      r.context.push_back(prefix_id);
      r.continuation.erase(r.continuation.begin());
    } else {
      r.context = {prefix_id};
    }
    return r;
  }
  const size_t end = context.find_last_not_of(" \t\r\n\f\v") + 1;  // Python's rstrip(): all whitespace moves
  continuation = context.substr(end) + continuation;
  context.resize(end);
  const auto whole = tokenizer.encode(context + continuation);
  r.context = tokenizer.encode(context);
  r.continuation.assign(whole.begin() + static_cast<std::ptrdiff_t>(std::min(r.context.size(), whole.size())), whole.end());
  return r;
}

torch::Tensor next_token_logprobs(sdk::Model& model, const std::vector<int64_t>& ids, const torch::Device& device) {
  torch::NoGradGuard no_grad;
  auto input = torch::tensor(ids, torch::kInt64).unsqueeze(0).to(device);
  return model.forward(input).logits[0].to(torch::kFloat32).log_softmax(-1).to(torch::kCPU);
}

std::vector<Loglikelihood> loglikelihoods(sdk::Model& model, const std::vector<LoglikelihoodRequest>& requests,
                                          int64_t max_length, int64_t batch_size, const torch::Device& device,
                                          const std::function<void(int64_t)>& progress) {
  std::vector<ModelInput> inputs;
  std::map<size_t, std::vector<size_t>> by_length;
  for (size_t i = 0; i < requests.size(); ++i) {
    if (requests[i].context.empty() || requests[i].continuation.empty())
      throw UserError("a log-likelihood request needs a context and a continuation of at least one token");
    inputs.push_back(model_input(requests[i], max_length));
    by_length[inputs.back().ids.size()].push_back(i);
  }
  std::vector<Loglikelihood> out(requests.size());
  torch::NoGradGuard no_grad;
  int64_t done = 0;
  for (const auto& [length, members] : by_length) {
    for (size_t start = 0; start < members.size(); start += static_cast<size_t>(std::max<int64_t>(1, batch_size))) {
      const size_t end = std::min(members.size(), start + static_cast<size_t>(std::max<int64_t>(1, batch_size)));
      std::vector<torch::Tensor> rows;
      for (size_t m = start; m < end; ++m) rows.push_back(torch::tensor(inputs[members[m]].ids, torch::kInt64));
      auto logprobs = model.forward(torch::stack(rows).to(device)).logits.to(torch::kFloat32).log_softmax(-1).to(torch::kCPU);
      for (size_t m = start; m < end; ++m) {
        const auto& request = requests[members[m]];
        const auto cont = static_cast<int64_t>(request.continuation.size());
        auto span = logprobs[static_cast<int64_t>(m - start)].slice(0, inputs[members[m]].first_predicted,
                                                                      inputs[members[m]].first_predicted + cont);
        auto target = torch::tensor(request.continuation, torch::kInt64);
        out[members[m]].logprob = span.gather(1, target.unsqueeze(1)).sum().item<double>();
        out[members[m]].greedy = span.argmax(1).equal(target);
      }
      done += static_cast<int64_t>(end - start);
      if (progress) progress(done);
    }
  }
  return out;
}

MultipleChoiceScore score_multiple_choice(sdk::Model& model, const Tokenizer& tokenizer, const TaskFile& task,
                                          const BenchmarkOptions& o, const torch::Device& device,
                                          const std::function<void(int64_t, int64_t)>& progress) {
  const size_t n = o.limit > 0 ? std::min(task.items.size(), static_cast<size_t>(o.limit)) : task.items.size();
  std::vector<LoglikelihoodRequest> requests;
  for (size_t i = 0; i < n; ++i) {
    const auto& item = task.items[i];
    const auto context = fewshot_context(item, fewshot_examples(task, i, o));
    for (const auto& choice : item.choices) requests.push_back(encode_pair(tokenizer, context, " " + choice, tokenizer.bos_id()));
  }
  const bool was_training = model.is_training();
  model.eval();
  const auto total = static_cast<int64_t>(requests.size());
  const auto lls = loglikelihoods(model, requests, o.max_length, o.batch_size, device, [&](int64_t done) {
    if (progress) progress(done, total);
  });
  model.train(was_training);

  MultipleChoiceScore score;
  size_t next = 0;
  std::map<std::string, std::vector<const ChoiceItemScore*>> groups;
  score.items.resize(n);
  for (size_t i = 0; i < n; ++i) {
    const auto& item = task.items[i];
    auto& s = score.items[i];
    std::vector<double> raw, per_char, per_byte;
    for (const auto& choice : item.choices) {
      s.choices.push_back(lls[next++]);
      raw.push_back(s.choices.back().logprob);
      per_char.push_back(raw.back() / static_cast<double>(code_points(choice)));
      per_byte.push_back(raw.back() / static_cast<double>(choice.size()));
    }
    s.predicted = argmax(raw), s.predicted_norm = argmax(per_char);
    s.correct = s.predicted == item.gold, s.correct_norm = s.predicted_norm == item.gold;
    s.correct_bytes = argmax(per_byte) == item.gold;
    if (!item.group.empty()) groups[item.group].push_back(&s);
  }
  std::vector<const ChoiceItemScore*> all;
  for (const auto& s : score.items) all.push_back(&s);
  score.all = accuracy_of(all);
  for (const auto& [name, members] : groups) score.groups[name] = accuracy_of(members);
  return score;
}

RollingScore score_rolling(sdk::Model& model, const Tokenizer& tokenizer, const TaskFile& task, const BenchmarkOptions& o,
                           const torch::Device& device) {
  if (o.max_length < 2) throw UserError("rolling log-likelihood needs a max_length of at least 2");
  const auto window = static_cast<size_t>(o.max_length);
  std::vector<LoglikelihoodRequest> requests;
  RollingScore r;
  const size_t n = o.limit > 0 ? std::min(task.texts.size(), static_cast<size_t>(o.limit)) : task.texts.size();
  for (size_t d = 0; d < n; ++d) {
    const auto& text = task.texts[d];
    const auto tokens = tokenizer.encode(text);
    // lm-eval's get_rolling_token_windows(context_len=1) made disjoint: each window predicts
    // up to max_length tokens and is given the token before it (BOS before the first).
    for (size_t predicted = 0; predicted < tokens.size();) {
      const size_t count = std::min(window, tokens.size() - predicted);
      LoglikelihoodRequest req;
      req.context = {predicted == 0 ? tokenizer.bos_id() : tokens[predicted - 1]};
      req.continuation.assign(tokens.begin() + static_cast<std::ptrdiff_t>(predicted),
                              tokens.begin() + static_cast<std::ptrdiff_t>(predicted + count));
      requests.push_back(std::move(req));
      predicted += count;
    }
    ++r.documents;
    r.tokens += static_cast<int64_t>(tokens.size());
    r.bytes += static_cast<int64_t>(text.size());
    // Python's len(re.split(r"\s+", text)): one more than the runs of whitespace.
    int64_t words = 1;
    for (size_t i = 0; i < text.size(); ++i)
      if (std::isspace(static_cast<unsigned char>(text[i])) && (i == 0 || !std::isspace(static_cast<unsigned char>(text[i - 1]))))
        ++words;
    r.words += words;
  }
  const bool was_training = model.is_training();
  model.eval();
  for (const auto& ll : loglikelihoods(model, requests, o.max_length, o.batch_size, device)) r.loglikelihood += ll.logprob;
  model.train(was_training);
  r.word_perplexity = std::exp(-r.loglikelihood / static_cast<double>(r.words));
  r.byte_perplexity = std::exp(-r.loglikelihood / static_cast<double>(r.bytes));
  r.bits_per_byte = -r.loglikelihood / static_cast<double>(r.bytes) / std::log(2.0);
  return r;
}

std::vector<std::string> item_texts(const TaskFile& task, int64_t limit) {
  if (task.rolling) return task.texts;
  std::vector<std::string> texts;
  const size_t n = limit > 0 ? std::min(task.items.size(), static_cast<size_t>(limit)) : task.items.size();
  for (size_t i = 0; i < n; ++i)
    texts.push_back(task.items[i].context + " " + task.items[i].choices[static_cast<size_t>(task.items[i].gold)]);
  return texts;
}

}  // namespace xlhost::core
