#include <algorithm>
#include <iomanip>
#include <iostream>

#include "cli.hpp"
#include "xlhost/core/config/config.hpp"
#include "xlhost/core/config/options.hpp"
#include "xlhost/core/data/synthetic_facts.hpp"
#include "xlhost/core/plugin/conformance.hpp"
#include "xlhost/core/plugin/plugin_loader.hpp"
#include "xlhost/core/util/error.hpp"
#include "xlhost/core/util/progress.hpp"

namespace xlhost::host {

namespace {

int check_command(const std::vector<std::string>& args) {
  po::options_description options("options");
  options.add_options()
      ("plugin", po::value<std::string>()->required(), "plugin .so to check")
      ("config,c", po::value<std::string>()->default_value(""), "experiment config whose model section is used")
      ("set,s", po::value<std::vector<std::string>>()->composing(), "override a config value (repeatable)")
      ("seq-len", po::value<int64_t>()->default_value(16), "sequence length of the probes")
      ("seed", po::value<uint64_t>()->default_value(0), "seed for weights and probe tokens");
  po::positional_options_description positional;
  positional.add("plugin", 1);
  po::variables_map vm;
  if (!parse_args(args, options, positional, "xlhost plugin check PLUGIN.so [--config exp.json] [--set model.k=v]...",
                  "Runs the conformance suite: output shapes and dtypes, finite outputs, determinism, causality\n"
                  "(changing the tokens after t never changes positions <= t or other rows), train vs eval, gradient\n"
                  "reach (names parameters that get no gradient), size and FLOPs, save/load, decode cache,\n"
                  "timing. The model is built from the config's model section (plugin defaults without one).\n"
                  "Exit status 1 when a check fails; a leak the plugin declares (KNOWN LEAK) does not fail.",
                  vm))
    return 0;
  auto plugin = core::load_plugin(vm["plugin"].as<std::string>());
  const auto schema = core::full_schema(plugin.descriptor().schema);
  const auto overrides = vm.count("set") ? vm["set"].as<std::vector<std::string>>() : std::vector<std::string>{};
  const std::string config_path = vm["config"].as<std::string>();
  const auto config = config_path.empty() ? core::Config::parse("{}", "defaults", schema, overrides)
                                          : core::Config::load(config_path, schema, overrides);
  core::ConformanceOptions o;
  o.seq_len = vm["seq-len"].as<int64_t>();
  o.seed = vm["seed"].as<uint64_t>();
  if (o.seq_len < 4) throw core::UserError("--seq-len must be at least 4");
  const auto results = core::run_conformance(plugin, config.section("model"), o);
  std::cout << plugin.descriptor().name << " " << plugin.descriptor().version << " (" << plugin.path() << ")\n";
  for (const auto& warning : config.warnings()) std::cout << "  warning: " << warning << "\n";
  bool failed = false;
  for (const auto& r : results) {
    std::cout << "  " << std::left << std::setw(20) << r.name << std::setw(12) << core::status_name(r.status)
              << r.detail << "\n";
    failed |= r.status == core::CheckResult::Status::Fail;
  }
  return failed ? 1 : 0;
}

}  // namespace

int plugin_command(const std::vector<std::string>& args) {
  const std::string usage = "xlhost plugin info PLUGIN.so | check PLUGIN.so [options] | new NAME [options]";
  if (args.empty() || args[0] == "--help" || args[0] == "-h") {
    std::cout << "usage: " << usage << "\n\n"
              << "info   prints the plugin's descriptor (name, version, SDK ABI, LibTorch it was built\n"
              << "       against, causality) and the schema of its config `model` section.\n"
              << "check  runs the conformance suite ('xlhost plugin check --help').\n"
              << "new    writes a plugin folder that builds out of tree ('xlhost plugin new --help').\n";
    return args.empty() ? 2 : 0;
  }
  if (args[0] == "check") return check_command(std::vector<std::string>(args.begin() + 1, args.end()));
  if (args[0] == "new") return plugin_new_command(std::vector<std::string>(args.begin() + 1, args.end()));
  if (args[0] != "info") throw core::UserError("unknown plugin subcommand '" + args[0] + "' (usage: " + usage + ")");
  if (args.size() != 2) throw core::UserError("usage: " + usage);
  auto plugin = core::load_plugin(args[1]);
  const auto& d = plugin.descriptor();
  std::cout << "name         " << d.name << "\nversion      " << d.version << "\ndescription  " << d.description
            << "\nsdk abi      " << plugin.abi_version() << "\nlibtorch     " << plugin.torch_version()
            << "\ncausal       " << (d.causal ? "yes" : "NO") << (d.causality_note.empty() ? "" : " (" + d.causality_note + ")")
            << "\nfile         " << plugin.path()
            << (plugin.checksum_verified() ? ", verified against " : ", not verified (no checksum file beside it: ")
            << plugin.path() << ".md5" << (plugin.checksum_verified() ? "" : ")") << "\n\nmodel section keys:\n";
  size_t key_width = 20, default_width = 10;  // the longest key and default, so columns never run together
  for (const auto& e : d.schema)
    key_width = std::max(key_width, e.key.size() + 2), default_width = std::max(default_width, sdk::to_string(e.default_value).size() + 2);
  for (const auto& e : d.schema) {
    std::string range;
    if (e.min || e.max)
      range = " [" + (e.min ? core::format_fixed(*e.min, 6 * (*e.min != static_cast<int64_t>(*e.min))) : "-inf") + ", " +
              (e.max ? core::format_fixed(*e.max, 6 * (*e.max != static_cast<int64_t>(*e.max))) : "inf") + "]";
    std::cout << "  " << std::left << std::setw(static_cast<int>(key_width)) << e.key << std::setw(9) << sdk::type_name(e.type)
              << std::setw(static_cast<int>(default_width)) << sdk::to_string(e.default_value) << e.doc << range;
    if (!e.applies_when_key.empty()) {
      std::string values;
      for (const auto& v : e.applies_when_values) values += (values.empty() ? "" : "|") + v;
      std::cout << " (only with " << e.applies_when_key << "=" << values << ")";
    }
    std::cout << "\n";
  }
  return 0;
}

int data_command(const std::vector<std::string>& args) {
  if (args.empty() || args[0] != "synth") {
    if (!args.empty() && args[0] != "--help" && args[0] != "-h")
      throw core::UserError("unknown data subcommand '" + args[0] + "' (available: synth)");
    std::cout << "usage: xlhost data synth [--out DIR] [options]\n\nWrites the built-in synthetic facts corpus.\n";
    return args.empty() ? 2 : 0;
  }
  core::SynthOptions o;
  std::string out_dir;
  po::options_description options("options");
  options.add_options()
      ("out,o", po::value(&out_dir)->default_value("data/synth"), "output directory")
      ("entities", po::value(&o.entities)->default_value(o.entities), "invented entities (4 facts each)")
      ("train-docs", po::value(&o.train_documents)->default_value(o.train_documents), "training documents")
      ("val-docs", po::value(&o.val_documents)->default_value(o.val_documents), "held-out documents")
      ("facts-per-doc", po::value(&o.facts_per_document)->default_value(o.facts_per_document), "fact sentences per document")
      ("chat-docs", po::value(&o.chat_documents)->default_value(o.chat_documents),
       "conversations in chat_train.jsonl (chat_val.jsonl has a tenth)")
      ("knowledge-only", po::value(&o.knowledge_only_fraction)->default_value(o.knowledge_only_fraction),
       "fraction of facts kept out of the training text (only in knowledge.txt)")
      ("seed", po::value(&o.seed)->default_value(o.seed), "generator seed; same seed, same files");
  po::variables_map vm;
  if (!parse_args(std::vector<std::string>(args.begin() + 1, args.end()), options, {}, "xlhost data synth [options]",
                  "Writes a deterministic corpus of facts about invented entities:\n"
                  "  train.jsonl, val.jsonl  {\"text\": ...} documents of fact sentences\n"
                  "  knowledge.txt           one fact per line (for memory plugins)\n"
                  "  facts.jsonl             {\"prompt\", \"answer\", \"in_train\"} for fact recall\n"
                  "  fact_choices.jsonl      each fact as a multiple-choice item: xlhost eval RUN --task FILE\n"
                  "  prompts.txt             generation prompts\n"
                  "  chat_train.jsonl, chat_val.jsonl\n"
                  "                          {\"conversations\": [{\"role\", \"content\"}, ...]}: questions about\n"
                  "                          the training facts answered by their sentences (data.format=chat)",
                  vm))
    return 0;
  auto s = core::write_synthetic_facts(out_dir, o);
  std::cout << "wrote " << out_dir << ": " << s.facts << " facts (" << s.knowledge_only_facts
            << " only in knowledge.txt), " << s.train_documents << " train and " << s.val_documents
            << " val documents\n";
  return 0;
}

}  // namespace xlhost::host
