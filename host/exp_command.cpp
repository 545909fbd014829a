// `xlhost exp`: the experiments recorded under out/.
#include <rapidjson/document.h>
#include <rapidjson/error/en.h>
#include <rapidjson/prettywriter.h>
#include <rapidjson/stringbuffer.h>

#include <filesystem>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <regex>
#include <sstream>

#include "cli.hpp"
#include "xlhost/core/error.hpp"
#include "xlhost/core/file_io.hpp"
#include "xlhost/core/experiment_record.hpp"
#include "xlhost/core/progress.hpp"

namespace xlhost::host {

namespace {

namespace fs = std::filesystem;

void check_version(const std::string& id, const std::string& what) {
  if (!std::regex_match(id, std::regex(R"(\d+\.\d+\.\d+)")))
    throw core::UserError(what + " '" + id + "' is not a version X.Y.Z (major = architecture, minor = feature, "
                          "patch = tuning), e.g. 1.4.9");
}

const char* kRecordTemplate = R"(# Experiment {ID}

{DESC}

## Plan (fill in before running)

- **Based on**: {BASE}
- **Goal**:
- **Hypothesis**:
- **Expected result**:
- **Focus** (what to watch in the curves and samples):

## Run

    xlhost run --plugin <plugin.so> --config experiments/{ID}/exp.json

The machine record is written to `out/{ID}/record.json` (`xlhost exp show {ID}`): commit and
dirty state, data md5, resolved config, environment, results, how to reproduce.

## Findings (fill in after the run)

)";

int new_command(const std::vector<std::string>& args) {
  po::options_description options("options");
  options.add_options()
      ("id", po::value<std::string>()->required(), "version X.Y.Z of the new experiment")
      ("from", po::value<std::string>()->default_value(""), "copy the config of experiment A.B.C")
      ("desc", po::value<std::string>()->default_value(""), "one-line description")
      ("dir", po::value<std::string>()->default_value("experiments"), "where experiment folders live")
      ("force", "overwrite an existing experiment folder");
  po::positional_options_description positional;
  positional.add("id", 1);
  po::variables_map vm;
  if (!parse_args(args, options, positional, "xlhost exp new X.Y.Z [--from A.B.C] [--desc TEXT]",
                  "Creates <dir>/X.Y.Z/ with exp.json (the base experiment's config with the new id, or a\n"
                  "template whose [PLACEHOLDER] values must be filled before `xlhost run` accepts it) and\n"
                  "record.md (goal, hypothesis, expected result, focus: the human part of the record).",
                  vm))
    return 0;
  const std::string id = vm["id"].as<std::string>(), from = vm["from"].as<std::string>();
  const std::string desc = vm["desc"].as<std::string>();
  check_version(id, "experiment id");
  const fs::path root = vm["dir"].as<std::string>(), dir = root / id;
  if (fs::exists(dir) && !vm.count("force"))
    throw core::UserError(dir.string() + " exists: experiment " + id + " was already created (--force overwrites it)");

  rapidjson::Document config;
  if (!from.empty()) {
    check_version(from, "--from");
    const fs::path base = root / from / "exp.json";
    if (!fs::exists(base)) throw core::UserError("no experiment " + from + " to start from (" + base.string() + " is missing)");
    const std::string text = core::read_text_file(base.string(), "base config");
    config.Parse<rapidjson::kParseCommentsFlag | rapidjson::kParseTrailingCommasFlag>(text.c_str());
    if (config.HasParseError() || !config.IsObject())
      throw core::UserError(base.string() + ": not a valid config (" + rapidjson::GetParseError_En(config.GetParseError()) + ")");
  } else {
    config.Parse(R"({"experiment": {}, "model": {},
      "data": {"train_path": "[TRAIN_JSONL]", "val_path": "[VAL_JSONL]", "seq_len": "[SEQ_LEN]"},
      "train": {"batch_size": "[BATCH_SIZE]", "accumulation_steps": 1, "lr": "[LEARNING_RATE]",
                "max_steps": "[MAX_STEPS]", "warmup_steps": 0}})");
  }
  auto& a = config.GetAllocator();
  if (!config.HasMember("experiment") || !config["experiment"].IsObject())
    config.AddMember("experiment", rapidjson::Value(rapidjson::kObjectType), a);
  auto& experiment = config["experiment"];
  experiment.RemoveMember("id");
  experiment.AddMember("id", rapidjson::Value(id.c_str(), a), a);
  if (!desc.empty() || !experiment.HasMember("description")) {
    experiment.RemoveMember("description");
    experiment.AddMember("description", rapidjson::Value(desc.empty() ? "[DESCRIPTION]" : desc.c_str(), a), a);
  }
  rapidjson::StringBuffer buffer;
  rapidjson::PrettyWriter<rapidjson::StringBuffer> w(buffer);
  w.SetIndent(' ', 2);
  config.Accept(w);
  fs::create_directories(dir);
  std::ofstream(dir / "exp.json") << buffer.GetString() << "\n";
  std::ofstream(dir / "record.md") << replace_all(replace_all(replace_all(kRecordTemplate, "{ID}", id), "{DESC}", desc.empty() ? "(no description yet)" : desc),
                                           "{BASE}", from.empty() ? "none" : from);
  std::cout << "wrote " << (dir / "exp.json").string() << " and " << (dir / "record.md").string() << "\n";
  return 0;
}

int show_command(const std::vector<std::string>& args) {
  po::options_description options("options");
  options.add_options()
      ("id", po::value<std::string>()->required(), "experiment id")
      ("out,o", po::value<std::string>()->default_value("out"), "directory holding <id>/record.json");
  po::positional_options_description positional;
  positional.add("id", 1);
  po::variables_map vm;
  if (!parse_args(args, options, positional, "xlhost exp show ID [--out DIR]",
                  "Prints a run's record.json: status, code version, data, results, how to reproduce it.", vm))
    return 0;
  const fs::path path = fs::path(vm["out"].as<std::string>()) / vm["id"].as<std::string>() / "record.json";
  if (!fs::exists(path)) throw core::UserError("no record for " + vm["id"].as<std::string>() + " (" + path.string() + ")");
  const std::string text = core::read_text_file(path.string(), "record");
  rapidjson::Document r;
  r.Parse(text.c_str());
  if (r.HasParseError() || !r.IsObject() || !r.HasMember("versions") || !r.HasMember("experiment"))
    throw core::UserError(path.string() + ": corrupted record (not the record.json schema)");
  std::cout << text;
  return 0;
}

int list_command(const std::vector<std::string>& args) {
  po::options_description options("options");
  std::string out_dir;
  options.add_options()("out,o", po::value(&out_dir)->default_value("out"), "directory holding <id>/record.json");
  po::variables_map vm;
  if (!parse_args(args, options, {}, "xlhost exp list [--out DIR]",
                  "One line per run: id, start time, plugin, status, final training loss, tokens/s. A run whose\n"
                  "process died without finishing its record shows as interrupted.",
                  vm))
    return 0;
  std::vector<std::string> problems;
  const auto records = core::list_records(out_dir, &problems);
  std::cout << std::left << std::setw(12) << "id" << std::setw(22) << "started" << std::setw(16) << "plugin"
            << std::setw(13) << "status" << std::setw(12) << "final loss" << "tokens/s\n";
  for (const auto& r : records)
    std::cout << std::setw(12) << r.id << std::setw(22) << r.start_time << std::setw(16) << r.plugin << std::setw(13)
              << r.status << std::setw(12) << (r.has_results ? core::format_fixed(r.final_loss, 4) : "-")
              << (r.has_results ? core::format_count(r.tokens_per_second) : "-") << "\n";
  for (const auto& r : records)
    if (r.status == "interrupted" && !r.last_checkpoint.empty())
      std::cout << r.id << ": interrupted; last good checkpoint " << r.last_checkpoint << " (xlhost run ... --resume)\n";
  for (const auto& p : problems) std::cerr << "warning: " << p << "\n";
  return 0;
}

}  // namespace

int exp_command(const std::vector<std::string>& args) {
  const std::string usage = "xlhost exp new X.Y.Z [--from A.B.C] | list | show ID";
  if (args.empty() || args[0] == "--help" || args[0] == "-h") {
    std::cout << "usage: " << usage << "\n\n"
              << "new   create experiments/X.Y.Z/ (exp.json, record.md) from a template or a base experiment\n"
              << "list  the runs recorded in out/*/record.json\n"
              << "show  one run's record\n";
    return args.empty() ? 2 : 0;
  }
  const std::vector<std::string> rest(args.begin() + 1, args.end());
  if (args[0] == "new") return new_command(rest);
  if (args[0] == "list") return list_command(rest);
  if (args[0] == "show") return show_command(rest);
  throw core::UserError("unknown exp subcommand '" + args[0] + "' (usage: " + usage + ")");
}

}  // namespace xlhost::host
