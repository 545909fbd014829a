#include <filesystem>
#include <fstream>
#include <iomanip>
#include <iostream>

#include "cli.hpp"
#include "sample_printer.hpp"
#include "xlhost/core/error.hpp"
#include "xlhost/core/progress.hpp"
#include "xlhost/core/trainer.hpp"

namespace xlhost::host {

int run_command(const std::vector<std::string>& args) {
  po::options_description options("options");
  std::string plugin_path, config_path;
  options.add_options()
      ("plugin,p", po::value(&plugin_path)->required(), "architecture plugin (.so)")
      ("config,c", po::value(&config_path)->required(), "experiment config (JSON)")
      ("set,s", po::value<std::vector<std::string>>()->composing(),
       "override a config value: --set train.lr=3e-4 (repeatable)")
      ("resume,r", po::value<std::string>()->implicit_value(""),
       "continue from a checkpoint directory, or without a value from this experiment's latest checkpoint");
  po::variables_map vm;
  if (!parse_args(args, options, {}, "xlhost run --plugin P.so --config exp.json [options]",
                  "Trains the plugin's model as the config says. Writes <run.out_dir>/<experiment.id>/ with\n"
                  "config.json (resolved), train.log (JSON lines) and checkpoints/. Ctrl-C or SIGTERM saves a\n"
                  "checkpoint and exits 0; --resume continues from it.",
                  vm))
    return 0;

  core::TrainJob job;
  job.plugin = core::load_plugin(plugin_path);
  const auto& d = job.plugin.descriptor();
  const auto overrides = vm.count("set") ? vm["set"].as<std::vector<std::string>>() : std::vector<std::string>{};
  job.config = core::Config::load(config_path, core::full_schema(d.schema), overrides);
  if (!d.causal)
    std::cerr << "warning: " << d.name << " is declared non-causal: positions can see later tokens"
              << (d.causality_note.empty() ? "" : " (" + d.causality_note + ")")
              << "; training loss will be optimistic and generation will not match training\n";
  if (vm.count("resume")) {
    job.resume_from = vm["resume"].as<std::string>();
    if (job.resume_from.empty())
      job.resume_from = (std::filesystem::path(job.config.section("run").get_string("out_dir")) /
                         job.config.section("experiment").get_string("id"))
                            .string();
  }
  job.should_stop = [](int64_t) { return stop_requested.load(); };

  const auto summary = core::train(job);
  auto row = [](const std::string& name, const std::string& value) {
    std::cout << "  " << std::left << std::setw(16) << name << value << "\n";
  };
  std::cout << "\n" << (summary.interrupted ? "interrupted" : "finished") << ": " << d.name << ", experiment "
            << job.config.section("experiment").get_string("id") << "\n";
  row("parameters", core::format_count(static_cast<double>(summary.parameters)) + " (" +
                        std::to_string(summary.parameters) + ")");
  row("steps", std::to_string(summary.steps) +
                   (summary.skipped_steps ? " (" + std::to_string(summary.skipped_steps) + " skipped)" : ""));
  if (!summary.losses.empty())
    row("train loss", core::format_fixed(summary.losses.front(), 4) + " (step " +
                          std::to_string(summary.first_step + 1) + ") -> " + core::format_fixed(summary.losses.back(), 4) +
                          " (step " + std::to_string(summary.steps) + ")");
  if (summary.val.tokens > 0)
    row("val loss", core::format_fixed(summary.val.loss, 4) + ", perplexity " +
                        core::format_fixed(summary.val.perplexity, 2));
  row("throughput", core::format_count(summary.tokens_per_second) + " tokens/s");
  row("wall time", core::format_duration(summary.wall_seconds));
  row("peak memory", core::format_fixed(static_cast<double>(summary.peak_rss_bytes) / (1 << 20), 0) + " MiB RSS");
  row("checkpoint", summary.checkpoint);
  row("train.log", (std::filesystem::path(summary.run_dir) / "train.log").string());

  const auto& g = job.config.section("generate");
  if (!summary.interrupted && !g.get_string("prompts_path").empty() && g.get_int("samples") > 0) {
    auto tokenizer = core::make_tokenizer(job.config.section("data").get_string("tokenizer"));
    print_samples(*summary.model, *tokenizer, read_prompts(g.get_string("prompts_path"), g.get_int("samples")),
                  generate_options(g, *tokenizer), summary.device);
  }
  return 0;
}

}  // namespace xlhost::host
