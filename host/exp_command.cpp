// `xlhost exp`: the experiments recorded under out/.
#include <rapidjson/document.h>
#include <rapidjson/prettywriter.h>
#include <rapidjson/stringbuffer.h>

#include <signal.h>

#include <cerrno>
#include <chrono>
#include <cmath>
#include <ctime>
#include <filesystem>
#include <iomanip>
#include <iostream>
#include <numeric>
#include <regex>
#include <sstream>
#include <thread>

#include "cli.hpp"
#include "xlhost/core/experiments/dashboard.hpp"
#include "xlhost/core/experiments/experiment_record.hpp"
#include "xlhost/core/experiments/experiment_report.hpp"
#include "xlhost/core/experiments/record_comparison.hpp"
#include "xlhost/core/http/http_server.hpp"
#include "xlhost/core/run/run_directory.hpp"
#include "xlhost/core/experiments/train_log.hpp"
#include "xlhost/core/util/error.hpp"
#include "xlhost/core/util/file_io.hpp"
#include "xlhost/core/util/json.hpp"
#include "xlhost/core/util/progress.hpp"

namespace xlhost::host {

namespace {

namespace fs = std::filesystem;

// Where the runs' records are: every subcommand but `new` reads them.
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

// The config that `exp new --from` copies (see its --help for the order of the places).
fs::path base_config(const std::string& from, const fs::path& experiments, const fs::path& out_dir) {
  std::vector<fs::path> looked;
  auto found = [&](const fs::path& p) {
    looked.push_back(p);
    return fs::is_regular_file(p);
  };
  if (fs::is_directory(from)) {
    for (const char* name : {"exp.json", "config.json"})
      if (found(fs::path(from) / name)) return fs::path(from) / name;
  } else if (fs::is_regular_file(from)) {
    return from;
  } else {
    if (found(experiments / from / "exp.json")) return experiments / from / "exp.json";
    if (found(core::RunDirectory(out_dir.string(), from).config())) return core::RunDirectory(out_dir.string(), from).config();
    looked.push_back("configs/*.json with experiment.id " + from);
    if (fs::is_directory("configs"))
      for (const auto& entry : fs::directory_iterator("configs")) {
        if (entry.path().extension() != ".json") continue;
        rapidjson::Document d;
        const std::string text = core::read_text_file(entry.path().string(), "config");
        if (!core::parse_json_into(d, text, /*relaxed=*/true) && d.IsObject() && d.HasMember("experiment") && d["experiment"].IsObject() &&
            d["experiment"].HasMember("id") && d["experiment"]["id"].IsString() && d["experiment"]["id"].GetString() == from)
          return entry.path();
      }
  }
  std::string places;
  for (const auto& p : looked) places += "\n  " + p.string();
  throw core::UserError("--from " + from + ": no config to start from; looked for" + places);
}

int new_command(const std::vector<std::string>& args) {
  po::options_description options("options");
  options.add_options()
      ("id", po::value<std::string>()->required(), "version X.Y.Z of the new experiment")
      ("from", po::value<std::string>()->default_value(""),
       "start from: an experiment id A.B.C (experiments/A.B.C/exp.json, else the run out/A.B.C, else the configs/ "
       "file with that experiment.id), or the path of an experiment folder, a run folder or a config file")
      ("out", po::value<std::string>()->default_value("out"), "where runs live (for --from a run id)")
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
    const fs::path base = base_config(from, root, vm["out"].as<std::string>());
    config = core::parse_json(core::read_text_file(base.string(), "base config"), base.string(), /*relaxed=*/true);
    if (!config.IsObject()) throw core::UserError(base.string() + ": not a valid config (a JSON object is expected)");
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
  const fs::path config_path = dir / "exp.json", record_md = core::record_markdown_beside(config_path.string());
  core::write_file(config_path.string(), std::string(buffer.GetString()) + "\n");
  core::write_file(record_md.string(),
                   replace_all(replace_all(replace_all(kRecordTemplate, "{ID}", id), "{DESC}",
                                           desc.empty() ? "(no description yet)" : desc),
                               "{BASE}", from.empty() ? "none" : from));
  std::cout << "wrote " << config_path.string() << " and " << record_md.string() << "\n";
  return 0;
}

int compare_command(const std::vector<std::string>& args) {
  std::string out_dir;
  auto options = records_options(out_dir);
  options.add_options()
      ("ids", po::value<std::vector<std::string>>()->required()->multitoken(), "experiment ids")
      ("markdown", "print a markdown table");
  po::positional_options_description positional;
  positional.add("ids", -1);
  po::variables_map vm;
  if (!parse_args(args, options, positional, "xlhost exp compare A B [C ...] [--out DIR] [--markdown]",
                  "Shows only what differs between the runs' resolved configs (plus plugin and code version),\n"
                  "then their results side by side with the best value of each metric marked.",
                  vm))
    return 0;
  const auto comparison = core::compare_records(out_dir, vm["ids"].as<std::vector<std::string>>());
  std::cout << core::format_comparison(comparison, vm.count("markdown") > 0);
  return 0;
}

int report_command(const std::vector<std::string>& args) {
  std::string out_dir;
  auto options = records_options(out_dir);
  options.add_options()
      ("ids", po::value<std::vector<std::string>>()->required()->multitoken(), "the experiment, then runs to compare it with")
      ("dest,d", po::value<std::string>()->default_value(""), "report folder (default <out>/<id>/report)");
  po::positional_options_description positional;
  positional.add("ids", -1);
  po::variables_map vm;
  if (!parse_args(args, options, positional, "xlhost exp report ID [A B ...] [--dest DIR]",
                  "Writes a report folder: report.md (code, data, command, the plan and findings of the\n"
                  "experiment's record.md, results or a comparison with A B ..., samples) and loss, learning\n"
                  "rate and throughput curves as SVG drawn by gnuplot from the runs' train.log.",
                  vm))
    return 0;
  const auto ids = vm["ids"].as<std::vector<std::string>>();
  std::string dest = vm["dest"].as<std::string>();
  if (dest.empty()) dest = core::RunDirectory(out_dir, ids[0]).report().string();
  const auto files = core::write_report(out_dir, ids, dest);
  if (!files.unequal_budgets.empty())
    std::cerr << "warning: the runs trained unequal budgets (" << files.unequal_budgets << ")\n";
  std::cout << "wrote " << files.markdown << "\n";
  for (const auto& p : files.pictures) std::cout << "      " << p << "\n";
  return 0;
}

// Step, loss, rate and time left of a running run; of a seed group (--seeds), its seed now training.
void print_progress(const core::RecordSummary& r) {
  const core::RunDirectory run(r.run_dir);
  auto train_log = run.train_log();
  if (!std::filesystem::exists(train_log))
    for (const auto& seed : core::list_records(run.seeds().string(), nullptr))
      if (seed.status == "running") {
        std::cout << "  seed run " << seed.id;
        train_log = core::RunDirectory(seed.run_dir).train_log();
      }
  if (const auto step = core::last_logged_step(train_log); step && step->total_steps > 0) {
    const double left = static_cast<double>(step->total_steps - step->step) * step->step_seconds;
    std::cout << "  step " << step->step << "/" << step->total_steps << "  loss " << core::format_fixed(step->loss, 4) << "  "
              << core::format_count(step->tokens_per_second) << " tokens/s  ETA " << core::format_duration(left);
    return;
  }
  std::tm start{};
  const bool parsed = strptime(r.start_time.c_str(), "%Y-%m-%dT%H:%M:%SZ", &start) != nullptr;
  std::cout << "  no step finished yet"
            << (parsed ? " (running " + core::format_duration(std::difftime(std::time(nullptr), timegm(&start))) + ")" : "");
}

int status_command(const std::vector<std::string>& args) {
  std::vector<std::string> out_dirs;
  po::options_description options("options");
  options.add_options()("out,o", po::value(&out_dirs)->composing(),
                        "directory holding <id>/record.json (repeatable; default out)");
  po::variables_map vm;
  if (!parse_args(args, options, {}, "xlhost exp status [--out DIR]...",
                  "The runs in progress in every --out folder: pid, step, loss, tokens/s, time left and where\n"
                  "their metrics are served.",
                  vm))
    return 0;
  if (out_dirs.empty()) out_dirs = {"out"};
  std::vector<std::string> problems;
  std::vector<core::RecordSummary> records;
  for (const auto& out_dir : out_dirs) {
    auto more = core::list_records(out_dir, &problems);
    records.insert(records.end(), more.begin(), more.end());
  }
  int running = 0;
  for (const auto& r : records) {
    if (r.status != "running") continue;
    ++running;
    std::cout << r.id << "  " << r.plugin << "  pid " << r.pid << (out_dirs.size() > 1 ? "  in " + r.run_dir : "");
    print_progress(r);
    std::cout << (r.metrics_url.empty() ? "" : "  metrics " + r.metrics_url) << "\n";
  }
  if (running == 0) std::cout << "no experiment is running (xlhost exp list shows the finished ones)\n";
  for (const auto& p : problems) std::cerr << "warning: " << p << "\n";
  return 0;
}

int stop_command(const std::vector<std::string>& args) {
  std::string out_dir;
  auto options = records_options(out_dir);
  options.add_options()
      ("id", po::value<std::string>()->required(), "experiment id")
      ("wait", po::value<double>()->default_value(600), "seconds to wait for the checkpoint before giving up");
  po::positional_options_description positional;
  positional.add("id", 1);
  po::variables_map vm;
  if (!parse_args(args, options, positional, "xlhost exp stop ID [--wait SECONDS]",
                  "Asks a running experiment to stop (SIGTERM): it finishes its step, saves a checkpoint and\n"
                  "records status interrupted. Waits for that and prints the checkpoint to --resume from.",
                  vm))
    return 0;
  const std::string id = vm["id"].as<std::string>();
  const std::string run_dir = core::RunDirectory(out_dir, id).root().string();
  const auto r = core::read_record_summary(run_dir);
  if (r.status != "running") throw core::UserError("experiment " + id + " is not running (status " + r.status + ")");
  if (r.pid <= 0 || kill(static_cast<pid_t>(r.pid), SIGTERM) != 0) {
    const bool foreign = errno == EPERM;
    throw core::UserError("experiment " + id + ": cannot signal pid " + std::to_string(r.pid) +
                          (foreign ? " (another user's process)" : ""));
  }
  std::cout << "asked experiment " << id << " (pid " << r.pid << ") to stop; waiting for its checkpoint\n";
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(vm["wait"].as<double>());
  while (std::chrono::steady_clock::now() < deadline) {
    const auto now = core::read_record_summary(run_dir);
    if (now.status != "running") {
      std::cout << "experiment " << id << ": " << now.status
                << (now.last_checkpoint.empty() ? "" : ", checkpoint " + now.last_checkpoint) << "\n";
      return 0;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  throw core::UserError("experiment " + id + " did not stop within " + core::format_fixed(vm["wait"].as<double>(), 0) +
                        " s (a long step or checkpoint?); `kill " + std::to_string(r.pid) + "` again ends it without one");
}

int list_command(const std::vector<std::string>& args) {
  std::string out_dir;
  const auto options = records_options(out_dir);
  po::variables_map vm;
  if (!parse_args(args, options, {}, "xlhost exp list [--out DIR]",
                  "One line per run: id, start time, plugin, status, final training and validation loss\n"
                  "(cross-entropy), tokens/s. A run whose process died without finishing its record shows\n"
                  "as interrupted.",
                  vm))
    return 0;
  std::vector<std::string> problems;
  const auto records = core::list_records(out_dir, &problems);
  std::cout << std::left << std::setw(12) << "id" << std::setw(22) << "started" << std::setw(16) << "plugin"
            << std::setw(13) << "status" << std::setw(18) << "final loss" << std::setw(18) << "val loss" << std::setw(10)
            << "tokens/s" << "benchmarks\n";
  auto loss = [](const core::RecordSummary& r, double mean, double spread) -> std::string {
    if (!r.has_results || !std::isfinite(mean)) return "-";
    return core::format_fixed(mean, 4) + (std::isfinite(spread) ? " ± " + core::format_fixed(spread, 4) : "");
  };
  for (const auto& r : records)
    std::cout << std::setw(12) << r.id << std::setw(22) << r.start_time << std::setw(16) << r.plugin << std::setw(13)
              << r.status << std::setw(18) << loss(r, r.final_loss, r.final_loss_std) << std::setw(18)
              << loss(r, r.val_loss, r.val_loss_std) << std::setw(10)
              << (r.has_results ? core::format_count(r.tokens_per_second) : "-") << join(r.benchmarks, ", ") << "\n";
  for (const auto& r : records) {
    if ((r.status == "interrupted" || r.status == "crashed") && !r.last_checkpoint.empty())
      std::cout << r.id << ": " << r.status << "; last good checkpoint " << r.last_checkpoint << " (xlhost run ... --resume)\n";
    if (!r.crash.empty()) std::cout << r.id << ": " << r.crash << "\n";
  }
  for (const auto& p : problems) std::cerr << "warning: " << p << "\n";
  return 0;
}

}  // namespace

int exp_command(const std::vector<std::string>& args) {
  const std::string usage = "xlhost exp new X.Y.Z [--from A.B.C] | list | show ID | compare A B... | report ID [A...] | status | stop ID | serve";
  if (args.empty() || args[0] == "--help" || args[0] == "-h") {
    std::cout << "usage: " << usage << "\n\n"
              << "new      create experiments/X.Y.Z/ (exp.json, record.md) from a template or a base experiment\n"
              << "list     the runs recorded in out/*/record.json\n"
              << "show     one run's record\n"
              << "compare  what differs between runs, and their results side by side\n"
              << "report   a folder with report.md and curves (gnuplot SVG) for one run, compared with others\n"
              << "status   the runs in progress (started with `xlhost run --detach` or elsewhere)\n"
              << "stop     stop a running experiment; it saves a checkpoint\n"
              << "archive  move runs (a failed one) to <out>/.archive/, out of every listing\n"
              << "serve    a live web page over the runs: table, filters, curves, comparisons\n";
    return args.empty() ? 2 : 0;
  }
  const std::vector<std::string> rest(args.begin() + 1, args.end());
  if (args[0] == "new") return new_command(rest);
  if (args[0] == "list") return list_command(rest);
  if (args[0] == "show") return exp_show_command(rest);
  if (args[0] == "compare") return compare_command(rest);
  if (args[0] == "report") return report_command(rest);
  if (args[0] == "status") return status_command(rest);
  if (args[0] == "stop") return stop_command(rest);
  if (args[0] == "archive") return exp_archive_command(rest);
  if (args[0] == "serve") return exp_serve_command(rest);
  throw core::UserError("unknown exp subcommand '" + args[0] + "' (usage: " + usage + ")");
}

}  // namespace xlhost::host
