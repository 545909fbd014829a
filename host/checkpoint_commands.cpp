// The commands that load a trained checkpoint: eval (with memory ablations and benchmarks),
// generate, inspect, export, serve.
#include <algorithm>
#include <cmath>
#include <filesystem>
#include <iomanip>
#include <iostream>
#include <map>
#include <optional>
#include <thread>

#include "benchmark_command.hpp"
#include "cli.hpp"
#include "sample_printer.hpp"
#include "xlhost/core/checkpoint/checkpoint_directory.hpp"
#include "xlhost/core/checkpoint/hugging_face.hpp"
#include "xlhost/core/config/options.hpp"
#include "xlhost/core/device/autocast.hpp"
#include "xlhost/core/eval/completions_api.hpp"
#include "xlhost/core/eval/evaluation.hpp"
#include "xlhost/core/eval/generator.hpp"
#include "xlhost/core/eval/memory_inspection.hpp"
#include "xlhost/core/eval/trained_model.hpp"
#include "xlhost/core/run/run_directory.hpp"
#include "xlhost/core/util/error.hpp"
#include "xlhost/core/util/file_io.hpp"
#include "xlhost/core/util/json_writer.hpp"
#include "xlhost/core/util/printable_text.hpp"
#include "xlhost/core/util/progress.hpp"

namespace xlhost::host {

namespace {

void add_checkpoint_options(po::options_description& options) {
  options.add_options()
      ("checkpoint", po::value<std::string>()->required(), "checkpoint directory, or a run directory (its latest checkpoint)")
      ("plugin,p", po::value<std::string>()->default_value(""), "plugin .so (default: the one recorded in the checkpoint)")
      ("set,s", po::value<std::vector<std::string>>()->composing(), "override a config value (repeatable)");
}

// --prompt (repeatable) and the lines of --prompts FILE, or of `fallback` when neither is given.
std::vector<std::string> prompts_of(const po::variables_map& vm, const std::string& fallback) {
  std::vector<std::string> prompts;
  if (vm.count("prompt")) prompts = vm["prompt"].as<std::vector<std::string>>();
  std::string file = vm["prompts"].as<std::string>();
  if (prompts.empty() && file.empty()) file = fallback;
  if (!file.empty()) {
    auto more = read_prompts(file, 0);
    prompts.insert(prompts.end(), more.begin(), more.end());
  }
  if (prompts.empty()) throw core::UserError("no prompts: pass --prompt TEXT or --prompts FILE");
  return prompts;
}

core::TrainedModel load(const po::variables_map& vm) {
  return core::load_trained_model(vm["checkpoint"].as<std::string>(), vm["plugin"].as<std::string>(),
                                  vm.count("set") ? vm["set"].as<std::vector<std::string>>() : std::vector<std::string>{});
}

}  // namespace

namespace {

struct EvalFigures {
  std::string ablation = "none";
  core::EvalResult loss;
  std::optional<core::FactRecall> facts;
};

EvalFigures evaluate(const core::TrainedModel& t, const core::TokenFile& tokens, const std::string& facts) {
  const auto& config = t.config.options;
  EvalFigures f;
  f.loss = core::evaluate_loss(*t.model, tokens, config.data.seq_len, config.eval_batch_size(), config.eval.max_batches,
                               t.device);
  if (!facts.empty())
    f.facts = core::fact_recall(*t.model, *t.tokenizer, facts, config.eval.max_facts, t.device,
                                config.data.format == core::DocumentFormat::kChat);
  return f;
}

const std::map<std::string, sdk::MemoryAblation> kAblations{
    {"off", sdk::MemoryAblation::kOff}, {"shuffle", sdk::MemoryAblation::kShuffle}, {"random", sdk::MemoryAblation::kRandom}};

// --ablate memory=off|shuffle|random|all → the ablations asked for, checked against the model's.
std::vector<std::string> ablations_asked(const std::string& value, const sdk::Model& model) {
  if (value.rfind("memory=", 0) != 0) throw core::UserError("--ablate " + value + ": expected memory=off|shuffle|random|all");
  const std::string how = value.substr(7);
  std::vector<std::string> asked;
  for (const auto& [name, kind] : kAblations)
    if (how == name || how == "all") asked.push_back(name);
  if (asked.empty()) throw core::UserError("--ablate " + value + ": expected memory=off|shuffle|random|all");
  const auto supported = model.memory_ablations();
  for (const auto& name : asked)
    if (std::find(supported.begin(), supported.end(), kAblations.at(name)) == supported.end())
      throw core::UserError("--ablate memory=" + name + ": this plugin declares no such memory ablation" +
                            (supported.empty() ? " (it has no memory)" : ""));
  return asked;
}

void print_figures(const std::vector<EvalFigures>& rows) {
  std::cout << "\nmemory        loss  perplexity  fact recall\n";
  for (const auto& r : rows)
    std::cout << std::left << std::setw(9) << r.ablation << std::right << std::setw(9) << core::format_fixed(r.loss.loss, 4)
              << std::setw(12) << core::format_fixed(r.loss.perplexity, 3) << std::setw(13)
              << (r.facts ? core::format_fixed(100 * r.facts->rate(), 1) + "%" : "-") << "\n";
}

// <run>/ablations.json: what exp report shows beside the run.
void write_ablations(const std::string& checkpoint, const std::string& data, int64_t seed,
                     const std::vector<EvalFigures>& rows) {
  const auto run_dir = std::filesystem::absolute(checkpoint).parent_path().parent_path();
  if (!std::filesystem::exists(core::RunDirectory(run_dir).record())) return;  // a checkpoint outside a run folder
  const auto json = core::write_json([&](core::JsonWriter& w) {
    w.StartObject();
    core::write_string(w, "checkpoint", std::filesystem::absolute(checkpoint).string());
    core::write_string(w, "data", data);
    w.Key("seed"), w.Int64(seed);
    w.Key("rows"), w.StartArray();
    for (const auto& r : rows) {
      w.StartObject();
      core::write_string(w, "ablation", r.ablation);
      core::write_number(w, "val_loss", r.loss.loss);
      core::write_number(w, "val_perplexity", r.loss.perplexity);
      core::write_number(w, "fact_recall", r.facts ? r.facts->rate() : std::nan(""));
      w.EndObject();
    }
    w.EndArray();
    w.EndObject();
  });
  core::write_file_atomically(core::RunDirectory(run_dir).ablations().string(), json + "\n");
  std::cout << "written to " << core::RunDirectory(run_dir).ablations().string() << "\n";
}

}  // namespace

int eval_command(const std::vector<std::string>& args) {
  po::options_description options("options");
  add_checkpoint_options(options);
  options.add_options()
      ("data", po::value<std::string>()->default_value(""), "JSON-lines file (default: data.val_path)")
      ("facts", po::value<std::string>()->default_value(""),
       "facts.jsonl: also report fact recall, the share of greedy completions that are right (default: eval.facts_path)")
      ("ablate", po::value<std::string>(),
       "memory=off|shuffle|random|all: evaluate again with the memory taken away (off: its path adds nothing; "
       "shuffle: the bank's rows permuted; random: random token rows), beside the unablated figures; kept in "
       "<run>/ablations.json for exp report")
      ("ablate-seed", po::value<int64_t>()->default_value(0), "the seed of shuffle and random");
  add_benchmark_options(options);
  po::positional_options_description positional;
  positional.add("checkpoint", 1);
  po::variables_map vm;
  if (!parse_args(args, options, positional, "xlhost eval CHECKPOINT [options]",
                  "Held-out loss and perplexity of a checkpoint (eval.max_batches batches of data.seq_len),\n"
                  "and with --facts the fact recall of greedy completions.\n"
                  "Targets are the inputs shifted by one: the logits at position i score token i+1.\n\n"
                  "With --task FILE, a benchmark scored as lm-evaluation-harness scores it: the summed\n"
                  "log-likelihood of \" \" + each choice after the context (no BOS, as lm-eval's default);\n"
                  "acc = the best choice is the gold one, acc_norm = per character of the choice, acc_bytes =\n"
                  "per UTF-8 byte; a text task gives word and byte perplexity and bits per byte. Each item is\n"
                  "also looked for, word for word (13-grams), in the run's training data and knowledge file.",
                  vm))
    return 0;
  auto t = load(vm);
  const core::AutocastScope autocast(t.autocast, t.device);
  if (vm.count("task")) return benchmark_eval(vm, t);
  const auto& config = t.config.options;
  std::string path = vm["data"].as<std::string>();
  if (path.empty()) path = config.data.val_path;
  if (path.empty()) throw core::UserError("no evaluation data: pass --data or set data.val_path");
  const auto asked = vm.count("ablate") ? ablations_asked(vm["ablate"].as<std::string>(), *t.model) : std::vector<std::string>{};
  auto tokens = core::TokenFile::open_or_build(path, *t.tokenizer, config.data.cache_dir, config.data.skip_malformed,
                                               std::cerr, config.data.format);
  std::string facts = vm["facts"].as<std::string>();
  if (facts.empty()) facts = config.eval.facts_path;
  std::vector<EvalFigures> rows{evaluate(t, tokens, facts)};
  const auto& r = rows.front();
  std::cout << "checkpoint  " << t.checkpoint << "\ndata        " << path << " (" << r.loss.tokens
            << " target tokens)\nloss        " << core::format_fixed(r.loss.loss, 4) << "\nperplexity  "
            << core::format_fixed(r.loss.perplexity, 3) << "\n";
  if (r.facts)
    std::cout << "fact recall " << core::format_fixed(100 * r.facts->rate(), 1) << "% of " << r.facts->facts
              << " facts (in training text " << core::format_fixed(100 * r.facts->seen_rate(), 1) << "%, knowledge-only "
              << core::format_fixed(100 * r.facts->unseen_rate(), 1) << "%)\n";
  if (asked.empty()) return 0;
  const int64_t seed = vm["ablate-seed"].as<int64_t>();
  for (const auto& name : asked) {
    auto ablated = load(vm);  // shuffle and random rewrite the bank: each ablation from the checkpoint
    ablated.model->ablate_memory(kAblations.at(name), static_cast<uint64_t>(seed));
    rows.push_back(evaluate(ablated, tokens, facts));
    rows.back().ablation = name;
  }
  print_figures(rows);
  write_ablations(t.checkpoint, path, seed, rows);
  return 0;
}

int generate_command(const std::vector<std::string>& args) {
  po::options_description options("options");
  add_checkpoint_options(options);
  options.add_options()
      ("prompt", po::value<std::vector<std::string>>()->composing(), "a prompt (repeatable)")
      ("prompts", po::value<std::string>()->default_value(""), "file with one prompt per line (default: generate.prompts_path)")
      ("max-new-tokens", po::value<int64_t>(), "new tokens per prompt (generate.max_new_tokens)")
      ("temperature", po::value<double>(), "0 = greedy (generate.temperature)")
      ("top-p", po::value<double>(), "nucleus mass (generate.top_p)")
      ("repetition-penalty", po::value<double>(), "generate.repetition_penalty")
      ("seed", po::value<int64_t>(), "sampling seed (generate.seed)")
      ("chat", "each prompt is a user turn: ChatML template, stop at <|im_end|> (default: the run's data.format)")
      ("no-chat", "plain continuation even when the run trained on chat data")
      ("no-cache", "recompute the whole prefix each step instead of using the model's KV cache");
  po::positional_options_description positional;
  positional.add("checkpoint", 1);
  po::variables_map vm;
  if (!parse_args(args, options, positional, "xlhost generate CHECKPOINT [--prompt TEXT]... [options]",
                  "Samples continuations. Generation stops at EOS or after max-new-tokens new tokens (the\n"
                  "prompt does not count), and reports the EOS rate and mean length over the prompts.",
                  vm))
    return 0;
  auto t = load(vm);
  const core::AutocastScope autocast(t.autocast, t.device);
  const auto& generate = t.config.options.generate;
  const bool chat =
      vm.count("chat") || (!vm.count("no-chat") && t.config.options.data.format == core::DocumentFormat::kChat);
  auto o = generate_options(generate, *t.tokenizer, chat);
  if (vm.count("max-new-tokens")) o.max_new_tokens = vm["max-new-tokens"].as<int64_t>();
  if (vm.count("temperature")) o.temperature = vm["temperature"].as<double>();
  if (vm.count("top-p")) o.top_p = vm["top-p"].as<double>();
  if (vm.count("repetition-penalty")) o.repetition_penalty = vm["repetition-penalty"].as<double>();
  if (vm.count("seed")) o.seed = static_cast<uint64_t>(vm["seed"].as<int64_t>());
  o.use_cache = !vm.count("no-cache");
  if (o.max_new_tokens < 1) throw core::UserError("--max-new-tokens must be at least 1");

  print_samples(*t.model, *t.tokenizer, prompts_of(vm, generate.prompts_path), chat, o, t.device, std::cout);
  return 0;
}

int inspect_command(const std::vector<std::string>& args) {
  po::options_description options("options");
  add_checkpoint_options(options);
  options.add_options()
      ("prompt", po::value<std::vector<std::string>>()->composing(), "a prompt (repeatable)")
      ("prompts", po::value<std::string>()->default_value(""), "file with one prompt per line")
      ("top", po::value<int64_t>()->default_value(3), "rows shown per layer and position, by weight")
      ("generate", po::value<int64_t>()->default_value(0), "also greedily generate N tokens, each with what was read to choose it")
      ("json", "one JSON object per prompt instead of the table");
  po::positional_options_description positional;
  positional.add("checkpoint", 1);
  po::variables_map vm;
  if (!parse_args(args, options, positional, "xlhost inspect RUN_OR_CHECKPOINT --prompt TEXT [options]",
                  "What a memory model reads: for every prompt token, each memory layer's rows of its\n"
                  "token-id bank with their weights and their text (decoded with the run's tokenizer); with\n"
                  "--generate, the same for each generated token. Models without a memory say so (exit 2).",
                  vm))
    return 0;
  auto t = load(vm);
  const core::AutocastScope autocast(t.autocast, t.device);
  const auto prompts = prompts_of(vm, "");
  const int64_t top = vm["top"].as<int64_t>(), generate = vm["generate"].as<int64_t>();
  if (top < 1 || generate < 0) throw core::UserError("--top must be at least 1 and --generate at least 0");
  const bool chat = t.config.options.data.format == core::DocumentFormat::kChat;
  for (const auto& prompt : prompts) {
    const auto inspection =
        core::inspect_memory(*t.model, *t.tokenizer, core::prompt_ids(*t.tokenizer, prompt, chat), top, generate, t.device);
    if (vm.count("json")) {
      std::cout << core::memory_inspection_json(inspection) << "\n";
      continue;
    }
    std::cout << "prompt: " << core::printable_text(prompt)
              << (inspection.whole_sequence ? "  (one read for the whole sequence)" : "") << "\n";
    auto print = [](const core::PositionReads& p, const char* mark) {
      std::cout << mark << std::setw(4) << p.position << " " << std::quoted(p.token) << "\n";
      for (size_t layer = 0; layer < p.layers.size(); ++layer)
        for (const auto& r : p.layers[layer])
          std::cout << "      layer " << layer << "  row " << std::setw(7) << r.row << "  " << core::format_fixed(r.score, 3)
                    << "  " << (r.text.empty() ? "(padding row)" : r.text) << "\n";
    };
    for (const auto& p : inspection.prompt) print(p, "  ");
    for (const auto& p : inspection.generated) print(p, "+ ");
  }
  return 0;
}

int export_command(const std::vector<std::string>& args) {
  po::options_description options("options");
  add_checkpoint_options(options);
  options.add_options()
      ("out,o", po::value<std::string>()->required(), "folder to write (must not exist, unless --force)")
      ("force", "replace an existing folder");
  po::positional_options_description positional;
  positional.add("checkpoint", 1);
  po::variables_map vm;
  if (!parse_args(args, options, positional, "xlhost export RUN_OR_CHECKPOINT --out DIR [options]",
                  "Writes a checkpoint as a folder Python tools load. For a plugin with a Hugging Face layout\n"
                  "(model_original: Llama) a Hugging Face folder: config.json, model.safetensors,\n"
                  "generation_config.json and the run's tokenizer files; transformers loads it with\n"
                  "AutoModelForCausalLM.from_pretrained(DIR). The memory plugins have no Hugging Face form:\n"
                  "their own tensor names and xlhost config are written, and the command says so.\n"
                  "xlhost_source.json names the run and step, so `xlhost run --init-from DIR` keeps the lineage.",
                  vm))
    return 0;
  auto t = load(vm);
  const auto& descriptor = t.plugin.descriptor();
  auto spec = core::export_spec(t.config, *t.tokenizer, descriptor);
  spec.checkpoint = std::filesystem::absolute(t.checkpoint).string();
  spec.step = core::read_checkpoint_state(t.checkpoint).step;
  spec.run_dir = std::filesystem::path(spec.checkpoint).parent_path().parent_path().string();
  const std::string out = vm["out"].as<std::string>();
  const auto result = core::export_model(*t.model, spec, out, vm.count("force") > 0);
  std::cout << "exported " << t.checkpoint << " (" << descriptor.name << ", step " << spec.step << ") to " << out
            << (result.hugging_face ? " as a Hugging Face " + t.model->weight_interop().hugging_face.architecture + " folder"
                                    : " with xlhost's tensor names")
            << "\n";
  if (!result.note.empty()) std::cout << "note: " << result.note << "\n";
  return 0;
}

int serve_command(const std::vector<std::string>& args) {
  po::options_description options("options");
  add_checkpoint_options(options);
  options.add_options()
      ("listen", po::value<std::string>()->default_value("127.0.0.1:8000"), "host:port to serve on (port 0: any free port)")
      ("allow-remote", "serve on an address other machines can reach (anyone who can reach it uses the model)")
      ("model-name", po::value<std::string>(), "the model's id in /v1/models and requests (default: the run id)")
      ("context-length", po::value<int64_t>(), "prompt + max_tokens at most this many tokens (default: data.seq_len)");
  po::positional_options_description positional;
  positional.add("checkpoint", 1);
  po::variables_map vm;
  if (!parse_args(args, options, positional, "xlhost serve RUN_OR_CHECKPOINT [--listen 127.0.0.1:PORT] [options]",
                  "OpenAI's completions API over a checkpoint, any plugin: GET /v1/models, POST /v1/completions\n"
                  "(prompt as text or token ids, max_tokens from 0, temperature, top_p, stop, echo, logprobs with\n"
                  "up to 5 alternatives, seed). lm-evaluation-harness drives it with\n"
                  "  lm_eval --model local-completions --model_args model=NAME,base_url=http://HOST:PORT/v1/completions,\n"
                  "          tokenizer=RUN_TOKENIZER_DIR,tokenizer_backend=huggingface\n"
                  "A text prompt is encoded without BOS, as lm-eval and `xlhost eval --task` encode; requests are\n"
                  "answered one at a time. Listens on loopback unless --allow-remote. Ctrl-C stops.",
                  vm))
    return 0;
  auto t = load(vm);
  const auto address = core::http::parse_listen_address(vm["listen"].as<std::string>(), "--listen");
  if (!address.is_loopback() && !vm.count("allow-remote"))
    throw core::UserError("--listen " + vm["listen"].as<std::string>() +
                          " is not a loopback address; add --allow-remote to serve other machines");
  core::ServedModel served;
  served.name = vm.count("model-name")
                    ? vm["model-name"].as<std::string>()
                    : std::filesystem::absolute(t.checkpoint).parent_path().parent_path().filename().string();
  served.model = t.model.get();
  served.tokenizer = t.tokenizer.get();
  served.device = t.device;
  served.context_length = vm.count("context-length") ? vm["context-length"].as<int64_t>() : t.config.options.data.seq_len;
  if (served.context_length < 1) throw core::UserError("--context-length must be at least 1");
  core::http::Server server(
      address, "serve",
      [&served, autocast_on = t.autocast](const std::string& text) {
        const auto request = core::http::parse_request(text);
        if (!request) return core::completions_error(400, "bad request line");
        const core::AutocastScope autocast(autocast_on, served.device);  // this connection's thread
        return core::answer_completions_request(*request, served);
      },
      core::kMaxCompletionRequestBytes, [](int status, const std::string& message) { return core::completions_error(status, message); });
  std::cout << "serving " << served.name << " (" << t.checkpoint << ") at " << server.base_url()
            << "/v1/completions\nCtrl-C stops\n"
            << std::flush;
  while (!stop_requested) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  return 0;
}

}  // namespace xlhost::host
