#include "xlhost/core/eval/completions_api.hpp"

#include <rapidjson/document.h>

#include <atomic>
#include <ctime>
#include <optional>

#include "xlhost/core/eval/benchmark.hpp"
#include "xlhost/core/eval/generator.hpp"
#include "xlhost/core/util/json.hpp"
#include "xlhost/core/util/json_writer.hpp"
#include "xlhost/core/util/printable_text.hpp"
#include "xlhost/core/util/progress.hpp"

namespace xlhost::core {

namespace {

constexpr size_t kMaxPrompts = 256;
constexpr int64_t kMaxLogprobs = 5;

struct ApiError : std::runtime_error {
  ApiError(int status, const std::string& message, std::string param = "")
      : std::runtime_error(message), status(status), param(std::move(param)) {}
  int status;
  std::string param;
};

std::string json_answer(int status, const std::string& body) { return http::response(status, "application/json", body + "\n"); }

}  // namespace

std::string completions_error(int status, const std::string& message, const std::string& param) {
  return json_answer(status, write_json([&](JsonWriter& w) {
                       w.StartObject();
                       w.Key("error"), w.StartObject();
                       write_string(w, "message", message);
                       write_string(w, "type", status >= 500 ? "server_error" : "invalid_request_error");
                       w.Key("param");
                       if (param.empty()) w.Null();
                       else w.String(param.c_str());
                       w.Key("code"), w.Null();
                       w.EndObject();
                       w.EndObject();
                     }));
}

namespace {

// Text that JSON can carry: each byte of an invalid UTF-8 sequence becomes U+FFFD (a
// byte-level token may hold part of a character).
std::string valid_utf8(std::string text) {
  for (size_t at; (at = first_invalid_utf8(text)) != std::string::npos;) text.replace(at, 1, "\xEF\xBF\xBD");
  return text;
}

struct CompletionRequest {
  std::vector<std::vector<int64_t>> prompts;
  std::vector<std::optional<std::string>> prompt_texts;  // as sent, for echo; none for token ids
  int64_t max_tokens = 16, logprobs = -1;  // -1: no logprobs
  double temperature = 1, top_p = 1;
  std::vector<std::string> stop;
  bool echo = false;
  uint64_t seed = 0;
};

std::vector<int64_t> token_ids(const rapidjson::Value& array, const ServedModel& served) {
  std::vector<int64_t> ids;
  for (const auto& v : array.GetArray()) {
    if (!v.IsInt64() || v.GetInt64() < 0 || v.GetInt64() >= served.tokenizer->vocab_size())
      throw ApiError(400, "a token id is " + describe_json(v) + ", expected an integer 0 to " +
                              std::to_string(served.tokenizer->vocab_size() - 1), "prompt");
    ids.push_back(v.GetInt64());
  }
  return ids;
}

void read_prompts(const rapidjson::Value& prompt, const ServedModel& served, CompletionRequest& r) {
  auto add_text = [&](const rapidjson::Value& v) {
    const std::string text(v.GetString(), v.GetStringLength());
    r.prompts.push_back(served.tokenizer->encode(text));
    r.prompt_texts.emplace_back(text);
  };
  if (prompt.IsString()) return add_text(prompt);
  if (!prompt.IsArray() || prompt.Empty())
    throw ApiError(400, "prompt is " + describe_json(prompt) + ", expected a string, token ids, or a list of either", "prompt");
  if (prompt[0].IsNumber()) {
    r.prompts.push_back(token_ids(prompt, served));
    r.prompt_texts.emplace_back();
    return;
  }
  if (prompt.Size() > kMaxPrompts)
    throw ApiError(400, "at most " + std::to_string(kMaxPrompts) + " prompts per request", "prompt");
  for (const auto& p : prompt.GetArray()) {
    if (p.IsString()) add_text(p);
    else if (p.IsArray()) r.prompts.push_back(token_ids(p, served)), r.prompt_texts.emplace_back();
    else throw ApiError(400, "a prompt is " + describe_json(p) + ", expected a string or token ids", "prompt");
  }
}

double number_in(const rapidjson::Value& v, const char* key, double min, double max) {
  if (!v.IsNumber() || v.GetDouble() < min || v.GetDouble() > max)
    throw ApiError(400, std::string(key) + " is " + describe_json(v) + ", expected a number " + format_fixed(min, 0) + " to " +
                            format_fixed(max, 0), key);
  return v.GetDouble();
}

CompletionRequest parse_request_body(const std::string& body, const ServedModel& served) {
  rapidjson::Document doc;
  if (const auto problem = parse_json_into(doc, body))
    throw ApiError(400, "the body is not valid JSON: " + problem.reason);
  if (!doc.IsObject()) throw ApiError(400, "the body is " + describe_json(doc) + ", expected a JSON object");
  if (doc.HasMember("model") && !(doc["model"].IsString() && doc["model"].GetString() == served.name))
    throw ApiError(404, "model " + describe_json(doc["model"]) + " is not served here; this server serves \"" + served.name + "\"",
                   "model");
  if (!doc.HasMember("prompt")) throw ApiError(400, "prompt is missing", "prompt");
  CompletionRequest r;
  read_prompts(doc["prompt"], served, r);
  auto field = [&](const char* key) -> const rapidjson::Value* {
    return doc.HasMember(key) && !doc[key].IsNull() ? &doc[key] : nullptr;
  };
  if (const auto* v = field("max_tokens")) {
    if (!v->IsInt64() || v->GetInt64() < 0) throw ApiError(400, "max_tokens is " + describe_json(*v) + ", expected an integer of at least 0", "max_tokens");
    r.max_tokens = v->GetInt64();
  }
  if (const auto* v = field("temperature")) r.temperature = number_in(*v, "temperature", 0, 2);
  if (const auto* v = field("top_p")) r.top_p = number_in(*v, "top_p", 0, 1);
  if (r.top_p <= 0) throw ApiError(400, "top_p must be above 0", "top_p");
  if (const auto* v = field("logprobs")) r.logprobs = static_cast<int64_t>(number_in(*v, "logprobs", 0, kMaxLogprobs));
  if (const auto* v = field("echo")) {
    if (!v->IsBool()) throw ApiError(400, "echo is " + describe_json(*v) + ", expected true or false", "echo");
    r.echo = v->GetBool();
  }
  if (const auto* v = field("seed")) {
    if (!v->IsInt64()) throw ApiError(400, "seed is " + describe_json(*v) + ", expected an integer", "seed");
    r.seed = static_cast<uint64_t>(v->GetInt64());
  }
  if (const auto* v = field("stop")) {
    if (v->IsString()) r.stop.emplace_back(v->GetString(), v->GetStringLength());
    else if (v->IsArray() && v->Size() <= 4)
      for (const auto& s : v->GetArray()) {
        if (!s.IsString() || s.GetStringLength() == 0) throw ApiError(400, "stop holds " + describe_json(s) + ", expected non-empty strings", "stop");
        r.stop.emplace_back(s.GetString(), s.GetStringLength());
      }
    else throw ApiError(400, "stop is " + describe_json(*v) + ", expected a string or up to 4 strings", "stop");
  }
  if (const auto* v = field("n"); v && !(v->IsInt64() && v->GetInt64() == 1)) throw ApiError(400, "only n = 1 is served", "n");
  if (const auto* v = field("best_of"); v && !(v->IsInt64() && v->GetInt64() == 1)) throw ApiError(400, "only best_of = 1 is served", "best_of");
  if (const auto* v = field("stream"); v && !(v->IsBool() && !v->GetBool())) throw ApiError(400, "streaming is not served", "stream");
  if (field("suffix")) throw ApiError(400, "suffix is not served", "suffix");
  for (const auto& p : r.prompts) {
    if (p.empty()) throw ApiError(400, "a prompt is empty: give at least one token", "prompt");
    if (static_cast<int64_t>(p.size()) + r.max_tokens > served.context_length)
      throw ApiError(400, "this model's context is " + std::to_string(served.context_length) + " tokens; a prompt has " +
                              std::to_string(p.size()) + " and max_tokens asks for " + std::to_string(r.max_tokens) + " more",
                     "max_tokens");
  }
  return r;
}

struct TokenLogprob {
  int64_t id = 0;
  std::optional<double> logprob;  // none for the first prompt token
  std::vector<std::pair<int64_t, double>> top;
};

TokenLogprob logprob_of(const torch::Tensor& row, int64_t id, int64_t top) {
  TokenLogprob t;
  t.id = id;
  t.logprob = row[id].item<double>();
  if (top > 0) {
    const auto best = row.topk(top);
    for (int64_t k = 0; k < top; ++k)
      t.top.emplace_back(std::get<1>(best)[k].item<int64_t>(), std::get<0>(best)[k].item<double>());
  }
  return t;
}

struct Choice {
  std::string text, finish_reason = "length";
  std::vector<TokenLogprob> tokens;
  size_t text_offset = 0;  // where the first token's text starts in `text`
  int64_t completion_tokens = 0;
};

// One prompt's completion: the echoed prompt's log-probabilities from one forward, then
// max_tokens new tokens (the model's cache where it has one), cut at a stop string or EOS.
Choice complete(ServedModel& served, const CompletionRequest& r, size_t index) {
  auto& model = *served.model;
  const auto& prompt = r.prompts[index];
  Choice c;
  const int64_t top = std::max<int64_t>(r.logprobs, 0);
  if (!r.echo) c.text_offset = r.prompt_texts[index] ? r.prompt_texts[index]->size() : served.tokenizer->decode(prompt).size();
  if (r.echo) {
    c.text = r.prompt_texts[index] ? *r.prompt_texts[index] : served.tokenizer->decode(prompt);
    c.tokens.push_back({prompt[0], std::nullopt, {}});
    if (r.logprobs >= 0 && prompt.size() > 1) {
      const auto rows = next_token_logprobs(model, prompt, served.device);
      for (size_t j = 1; j < prompt.size(); ++j) c.tokens.push_back(logprob_of(rows[static_cast<int64_t>(j) - 1], prompt[j], top));
    } else {
      for (size_t j = 1; j < prompt.size(); ++j) c.tokens.push_back({prompt[j], std::nullopt, {}});
    }
  }
  GenerateOptions o;
  o.temperature = r.temperature, o.top_p = r.top_p, o.seed = r.seed + index;
  o.max_new_tokens = r.max_tokens, o.eos_id = served.tokenizer->eos_id();
  std::string text;  // the completion, cut before the first stop string
  bool stopped = false;
  const auto generation =
      generate(model, prompt, o, served.device, [&](const torch::Tensor& logits, const std::vector<int64_t>& new_tokens) {
        c.tokens.push_back(logprob_of(logits.log_softmax(-1), new_tokens.back(), top));
        text = served.tokenizer->decode(new_tokens);
        size_t cut = std::string::npos;
        for (const auto& s : r.stop) cut = std::min(cut, text.find(s));
        if (cut != std::string::npos) text.resize(cut), stopped = true;
        return !stopped;
      });
  c.text += text;
  c.finish_reason = stopped || generation.hit_eos ? "stop" : "length";
  c.completion_tokens = static_cast<int64_t>(generation.tokens.size());
  return c;
}

void write_logprobs(JsonWriter& w, const Choice& c, const Tokenizer& tokenizer) {
  w.Key("logprobs"), w.StartObject();
  w.Key("tokens"), w.StartArray();
  for (const auto& t : c.tokens) w.String(valid_utf8(tokenizer.token_bytes(t.id)).c_str());
  w.EndArray();
  w.Key("token_logprobs"), w.StartArray();
  for (const auto& t : c.tokens) t.logprob ? w.Double(*t.logprob) : w.Null();
  w.EndArray();
  w.Key("top_logprobs"), w.StartArray();
  for (const auto& t : c.tokens) {
    if (!t.logprob) {
      w.Null();
      continue;
    }
    w.StartObject();
    for (const auto& [id, lp] : t.top) w.Key(valid_utf8(tokenizer.token_bytes(id)).c_str()), w.Double(lp);
    w.EndObject();
  }
  w.EndArray();
  w.Key("text_offset"), w.StartArray();
  size_t offset = c.text_offset;
  for (const auto& t : c.tokens) w.Uint64(offset), offset += tokenizer.token_bytes(t.id).size();
  w.EndArray();
  w.EndObject();
}

std::string completions(const std::string& body, ServedModel& served) {
  const auto request = parse_request_body(body, served);
  std::vector<Choice> choices;
  {
    std::lock_guard<std::mutex> one_at_a_time(served.lock);
    for (size_t i = 0; i < request.prompts.size(); ++i) choices.push_back(complete(served, request, i));
  }
  static std::atomic<uint64_t> counter{0};
  int64_t prompt_tokens = 0, completion_tokens = 0;
  for (size_t i = 0; i < choices.size(); ++i) {
    prompt_tokens += static_cast<int64_t>(request.prompts[i].size());
    completion_tokens += choices[i].completion_tokens;
  }
  return json_answer(200, write_json([&](JsonWriter& w) {
                       w.StartObject();
                       write_string(w, "id", "cmpl-xlhost-" + std::to_string(++counter));
                       write_string(w, "object", "text_completion");
                       w.Key("created"), w.Int64(static_cast<int64_t>(std::time(nullptr)));
                       write_string(w, "model", served.name);
                       w.Key("choices"), w.StartArray();
                       for (size_t i = 0; i < choices.size(); ++i) {
                         w.StartObject();
                         w.Key("index"), w.Uint64(i);
                         write_string(w, "text", valid_utf8(choices[i].text));
                         if (request.logprobs >= 0) write_logprobs(w, choices[i], *served.tokenizer);
                         else w.Key("logprobs"), w.Null();
                         write_string(w, "finish_reason", choices[i].finish_reason);
                         w.EndObject();
                       }
                       w.EndArray();
                       w.Key("usage"), w.StartObject();
                       w.Key("prompt_tokens"), w.Int64(prompt_tokens);
                       w.Key("completion_tokens"), w.Int64(completion_tokens);
                       w.Key("total_tokens"), w.Int64(prompt_tokens + completion_tokens);
                       w.EndObject();
                       w.EndObject();
                     }));
}

std::string models(const ServedModel& served) {
  return json_answer(200, write_json([&](JsonWriter& w) {
                       w.StartObject();
                       write_string(w, "object", "list");
                       w.Key("data"), w.StartArray();
                       w.StartObject();
                       write_string(w, "id", served.name);
                       write_string(w, "object", "model");
                       w.Key("created"), w.Int64(0);
                       write_string(w, "owned_by", "xlhost");
                       w.EndObject();
                       w.EndArray();
                       w.EndObject();
                     }));
}

}  // namespace

std::string answer_completions_request(const http::Request& request, ServedModel& served) {
  try {
    if (request.path == "/v1/models" && (request.method == "GET" || request.method == "HEAD")) return models(served);
    if (request.path == "/v1/completions") {
      if (request.method != "POST") throw ApiError(405, "POST a JSON body to /v1/completions");
      return completions(request.body, served);
    }
    throw ApiError(404, request.method + " " + request.path + ": this server answers GET /v1/models and POST /v1/completions");
  } catch (const ApiError& e) {
    return completions_error(e.status, e.what(), e.param);
  } catch (const std::exception& e) {
    return completions_error(500, std::string("the model failed: ") + e.what(), "");
  }
}

}  // namespace xlhost::core
