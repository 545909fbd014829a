// The commands that load a trained checkpoint: eval, generate, export.
#include <filesystem>
#include <iostream>

#include "cli.hpp"
#include "sample_printer.hpp"
#include "xlhost/core/checkpoint/checkpoint_directory.hpp"
#include "xlhost/core/checkpoint/hugging_face.hpp"
#include "xlhost/core/config/options.hpp"
#include "xlhost/core/eval/evaluation.hpp"
#include "xlhost/core/eval/trained_model.hpp"
#include "xlhost/core/util/error.hpp"
#include "xlhost/core/util/progress.hpp"

namespace xlhost::host {

namespace {

void add_checkpoint_options(po::options_description& options) {
  options.add_options()
      ("checkpoint", po::value<std::string>()->required(), "checkpoint directory, or a run directory (its latest checkpoint)")
      ("plugin,p", po::value<std::string>()->default_value(""), "plugin .so (default: the one recorded in the checkpoint)")
      ("set,s", po::value<std::vector<std::string>>()->composing(), "override a config value (repeatable)");
}

core::TrainedModel load(const po::variables_map& vm) {
  return core::load_trained_model(vm["checkpoint"].as<std::string>(), vm["plugin"].as<std::string>(),
                                  vm.count("set") ? vm["set"].as<std::vector<std::string>>() : std::vector<std::string>{});
}

}  // namespace

int eval_command(const std::vector<std::string>& args) {
  po::options_description options("options");
  add_checkpoint_options(options);
  options.add_options()
      ("data", po::value<std::string>()->default_value(""), "JSON-lines file (default: data.val_path)")
      ("facts", po::value<std::string>()->default_value(""),
       "facts.jsonl: also report fact recall, the share of greedy completions that are right (default: eval.facts_path)");
  po::positional_options_description positional;
  positional.add("checkpoint", 1);
  po::variables_map vm;
  if (!parse_args(args, options, positional, "xlhost eval CHECKPOINT [options]",
                  "Held-out loss and perplexity of a checkpoint (eval.max_batches batches of data.seq_len),\n"
                  "and with --facts the fact recall of greedy completions.\n"
                  "Targets are the inputs shifted by one: the logits at position i score token i+1.",
                  vm))
    return 0;
  auto t = load(vm);
  const auto& config = t.config.options;
  std::string path = vm["data"].as<std::string>();
  if (path.empty()) path = config.data.val_path;
  if (path.empty()) throw core::UserError("no evaluation data: pass --data or set data.val_path");
  auto tokens = core::TokenFile::open_or_build(path, *t.tokenizer, config.data.cache_dir, config.data.skip_malformed,
                                               std::cerr, config.data.format);
  auto r = core::evaluate_loss(*t.model, tokens, config.data.seq_len, config.eval_batch_size(), config.eval.max_batches,
                               t.device);
  std::cout << "checkpoint  " << t.checkpoint << "\ndata        " << path << " (" << r.tokens
            << " target tokens)\nloss        " << core::format_fixed(r.loss, 4) << "\nperplexity  "
            << core::format_fixed(r.perplexity, 3) << "\n";
  std::string facts = vm["facts"].as<std::string>();
  if (facts.empty()) facts = config.eval.facts_path;
  if (!facts.empty()) {
    auto recall = core::fact_recall(*t.model, *t.tokenizer, facts, config.eval.max_facts, t.device,
                                    config.data.format == core::DocumentFormat::kChat);
    std::cout << "fact recall " << core::format_fixed(100 * recall.rate(), 1) << "% of " << recall.facts
              << " facts (in training text " << core::format_fixed(100 * recall.seen_rate(), 1) << "%, knowledge-only "
              << core::format_fixed(100 * recall.unseen_rate(), 1) << "%)\n";
  }
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

  std::vector<std::string> prompts;
  if (vm.count("prompt")) prompts = vm["prompt"].as<std::vector<std::string>>();
  std::string file = vm["prompts"].as<std::string>();
  if (prompts.empty() && file.empty()) file = generate.prompts_path;
  if (!file.empty()) {
    auto more = read_prompts(file, 0);
    prompts.insert(prompts.end(), more.begin(), more.end());
  }
  if (prompts.empty()) throw core::UserError("no prompts: pass --prompt TEXT or --prompts FILE");
  print_samples(*t.model, *t.tokenizer, prompts, chat, o, t.device, std::cout);
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

}  // namespace xlhost::host
