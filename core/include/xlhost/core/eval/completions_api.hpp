// OpenAI's completions API over a trained model (`xlhost serve`), enough for
// lm-evaluation-harness's `local-completions` and other OpenAI clients:
//   GET  /v1/models        the one model served
//   POST /v1/completions   prompt (text, token ids, or a list of either), max_tokens (0 and
//                          more), temperature, top_p, stop, echo, logprobs (0-5 alternatives),
//                          seed; answers choices with text, finish_reason, logprobs and usage
// A text prompt is encoded as it is, without BOS (as `xlhost eval --task` and lm-eval's
// default encode); send token ids to choose the special tokens. Bad requests are answered
// 4xx with OpenAI's {"error": {"message", "type", "param", "code"}}.
#pragma once

#include <torch/torch.h>

#include <mutex>
#include <string>

#include "xlhost/core/data/tokenizer.hpp"
#include "xlhost/core/http/http_server.hpp"
#include "xlhost/sdk/model.hpp"

namespace xlhost::core {

struct ServedModel {
  std::string name;              // what clients pass as "model"
  sdk::Model* model = nullptr;
  const Tokenizer* tokenizer = nullptr;
  torch::Device device = torch::kCPU;
  int64_t context_length = 0;    // prompt + max_tokens may not exceed it
  std::mutex lock;               // one request at a time reaches the model
};

constexpr size_t kMaxCompletionRequestBytes = size_t{4} << 20;

// The whole HTTP answer to one request.
std::string answer_completions_request(const http::Request& request, ServedModel& served);

// An error answer in OpenAI's form (also for what the HTTP server refuses itself: 413, 431).
std::string completions_error(int status, const std::string& message, const std::string& param = "");

}  // namespace xlhost::core
