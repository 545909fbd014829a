// `xlhost run`: one run, N seeds of it, or its launch in the background or as --nproc ranks.
#include <chrono>
#include <filesystem>
#include <iomanip>
#include <iostream>
#include <optional>
#include <sstream>
#include <thread>

#include "build_info.hpp"
#include "cli.hpp"
#include "run_folder.hpp"
#include "run_launch.hpp"
#include "sample_printer.hpp"
#include "xlhost/core/device/device_info.hpp"
#include "xlhost/core/experiments/experiment_record.hpp"
#include "xlhost/core/experiments/git_provenance.hpp"
#include "xlhost/core/experiments/record_comparison.hpp"
#include "xlhost/core/experiments/seed_group.hpp"
#include "xlhost/core/metrics/metrics_server.hpp"
#include "xlhost/core/plugin/plugin_crash_report.hpp"
#include "xlhost/core/train/run_record.hpp"
#include "xlhost/core/train/trainer.hpp"
#include "xlhost/core/util/error.hpp"
#include "xlhost/core/util/file_io.hpp"
#include "xlhost/core/util/progress.hpp"

namespace xlhost::host {

namespace {

void require_clean_tree(const std::string& config_path) {
  const auto git = core::read_git_state(std::filesystem::absolute(config_path).parent_path().string());
  if (!git.found)
    throw core::UserError("--require-clean: " + config_path + " is not inside a git work tree, so the code version cannot be recorded");
  if (git.dirty) {
    std::string files;
    for (const auto& f : git.dirty_files) files += "\n  " + f;
    throw core::UserError("--require-clean: " + git.root + " has uncommitted changes (commit them, or run without "
                          "--require-clean to record them in diff.patch):" + files);
  }
}


// The Prometheus endpoint of a run: the registry the trainer fills and the server that
// exposes it. Both null when metrics.enabled is false.
struct MetricsServing {
  std::unique_ptr<core::metrics::Registry> registry;
  std::unique_ptr<core::metrics::MetricsServer> server;
};

MetricsServing serve_metrics(const core::MetricsOptions& mc, bool listen_chosen) {
  MetricsServing m;
  if (!mc.enabled) return m;
  auto address = core::metrics::parse_listen_address(mc.listen, "metrics.listen");
  if (!address.is_loopback() && !mc.allow_remote)
    throw core::UserError("metrics.listen=" + mc.listen +
                          " is not a loopback address; set metrics.allow_remote=true to serve metrics to other "
                          "machines (anyone who can reach the port can read them)");
  m.registry = std::make_unique<core::metrics::Registry>();
  m.registry->gauge("xl_build_info", "xlhost build: version, git commit, LibTorch version.",
                    {{"version", XLHOST_VERSION}, {"commit", XLHOST_GIT_COMMIT}, {"torch_version", TORCH_VERSION}})
      .set(1);
  try {
    m.server = std::make_unique<core::metrics::MetricsServer>(*m.registry, address);
  } catch (const core::UserError&) {
    // Several runs on one machine: only an explicitly chosen port is worth failing for.
    if (listen_chosen || mc.listen != "127.0.0.1:9464") throw;
    address.port = 0;
    m.server = std::make_unique<core::metrics::MetricsServer>(*m.registry, address);
    std::cerr << "metrics: 127.0.0.1:9464 is taken (another run?), using a free port\n";
  }
  std::cerr << "metrics: " << m.server->url() << "\n";
  return m;
}

void print_summary(const core::TrainSummary& summary, const std::string& plugin_name, const std::string& id,
                   const std::string& record_path) {
  auto row = [](const std::string& name, const std::string& value) {
    std::cout << "  " << std::left << std::setw(16) << name << value << "\n";
  };
  std::cout << "\n" << (summary.interrupted ? "interrupted" : "finished") << ": " << plugin_name << ", experiment " << id << "\n";
  row("parameters", core::format_count(static_cast<double>(summary.parameters)) + " (" +
                        std::to_string(summary.parameters) + ")" +
                        (summary.dead_parameters.empty()
                             ? ""
                             : ", of which " + std::to_string(summary.dead_parameters.size()) +
                                   " tensors receive no gradient (see the warning above)"));
  row("steps", std::to_string(summary.steps) +
                   (summary.skipped_steps ? " (" + std::to_string(summary.skipped_steps) + " skipped)" : ""));
  if (!summary.losses.empty())
    row("train loss", core::format_fixed(summary.losses.front(), 4) + " (step " +
                          std::to_string(summary.first_step + 1) + ") -> " + core::format_fixed(summary.losses.back(), 4) +
                          " (step " + std::to_string(summary.steps) + "), cross-entropy");
  if (std::isfinite(summary.final_aux_loss))
    row("aux loss", core::format_fixed(summary.final_aux_loss, 4) + " (the plugin's, minimised with it; step " +
                        std::to_string(summary.steps) + ")");
  if (summary.val.tokens > 0)
    row("val loss", core::format_fixed(summary.val.loss, 4) + ", perplexity " +
                        core::format_fixed(summary.val.perplexity, 2));
  if (summary.facts.facts > 0)
    row("fact recall", core::format_fixed(100 * summary.facts.rate(), 1) + "% of " + std::to_string(summary.facts.facts) +
                           " facts (in training text " + core::format_fixed(100 * summary.facts.seen_rate(), 1) +
                           "%, knowledge-only " + core::format_fixed(100 * summary.facts.unseen_rate(), 1) + "%)");
  row("throughput", core::format_count(summary.tokens_per_second) + " tokens/s");
  const int64_t steps_run = summary.steps - summary.first_step;
  if (summary.communication_seconds > 0 && steps_run > 0)
    row("all-reduce", core::format_fixed(1000 * summary.communication_seconds / static_cast<double>(steps_run), 1) +
                          " ms per step (" +
                          core::format_fixed(100 * summary.communication_seconds / std::max(summary.wall_seconds, 1e-9), 1) +
                          "% of the wall time)");
  row("wall time", core::format_duration(summary.wall_seconds));
  auto mib = [](int64_t bytes) { return core::format_fixed(static_cast<double>(bytes) / (1 << 20), 0) + " MiB"; };
  row("peak memory", mib(summary.peak_rss_bytes) + " RSS" +
                         (summary.peak_cuda_bytes > 0 ? ", " + mib(summary.peak_cuda_bytes) + " CUDA" : ""));
  row("checkpoint", summary.checkpoint);
  row("train.log", core::RunDirectory(summary.run_dir).train_log().string());
  row("record", record_path);
}

// Where training starts: --resume (a checkpoint, this experiment's newest valid one, or
// auto), --rewind-to STEP, and the data --skip-batches passes over.
void set_start_point(const po::variables_map& vm, const core::RunDirectory& run_dir, const std::string& id,
                     core::TrainJob& job) {
  if (vm.count("resume")) {
    const std::string from = vm["resume"].as<std::string>();
    job.resume_from = from.empty() || from == "auto" ? run_dir.root().string() : from;
    if (from == "auto" && core::list_checkpoints(run_dir.checkpoints()).empty()) {
      std::cerr << "--resume auto: experiment " << id << " has no checkpoint yet, starting afresh\n";
      job.resume_from.clear();
    }
  }
  if (vm.count("rewind-to"))
    job.resume_from = (run_dir.checkpoints() / core::checkpoint_name(vm["rewind-to"].as<int64_t>())).string();
  if (vm.count("skip-batches")) {
    const std::string range = vm["skip-batches"].as<std::string>();
    const auto colon = range.find(':');
    try {
      job.skip_batches_first = std::stoll(range.substr(0, colon));
      job.skip_batches_end = std::stoll(range.substr(colon + 1));
    } catch (const std::exception&) {  // not numbers: reported below
      job.skip_batches_first = job.skip_batches_end = -1;
    }
    if (colon == std::string::npos || job.skip_batches_first < 0 || job.skip_batches_end <= job.skip_batches_first)
      throw core::UserError("--skip-batches " + range + ": expected A:B with 0 <= A < B (micro-batch numbers)");
  }
}

// The record says the run failed and why; when even that cannot be written (a full disk),
// the reason is printed and the run's own error, not the record's, is the one that ends it.
void mark_failed(core::ExperimentRecord& record, const std::exception& e) {
  try {
    record.finish(nullptr, "failed", e.what());
  } catch (const std::exception& unwritten) {
    std::cerr << "xlhost: the record could not be marked failed (" << unwritten.what() << ")\n";
  }
}

// Trains and keeps the record true: a run that trains nothing (failed set-up, stopped
// before its first step, resumed at its last) leaves an earlier finished record as it
// was; nothing is returned then.
std::optional<core::TrainSummary> train_recorded(const core::TrainJob& job, core::ExperimentRecord& record,
                                                 const std::string& id) {
  std::optional<core::Trainer> trainer;
  try {
    trainer.emplace(job);
  } catch (const std::exception& e) {  // nothing trained: an earlier run's record stays as it was
    if (record.restore_previous()) std::cerr << "the earlier record of experiment " << id << " is kept\n";
    else mark_failed(record, e);
    throw;
  }
  core::TrainSummary summary;
  try {
    summary = trainer->run();
  } catch (const std::exception& e) {
    mark_failed(record, e);
    throw;
  }
  if (summary.steps == summary.first_step && record.restore_previous()) {
    std::cout << "experiment " << id << ": no step trained (at step " << summary.steps
              << "); its earlier record is unchanged\n";
    return std::nullopt;
  }
  return summary;
}

// Keeps serving the last values for a final scrape (metrics.linger_seconds); Ctrl-C ends it.
void linger(const core::metrics::MetricsServer& server, double seconds) {
  std::cerr << "metrics: serving " << server.url() << " for " << seconds << " s more (Ctrl-C ends)\n";
  const auto until = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  stop_requested = false;
  while (std::chrono::steady_clock::now() < until && !stop_requested)
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
}

std::string command_line_of(const std::vector<std::string>& args) {
  std::string command_line = "xlhost run";
  for (const auto& a : args) command_line += " " + (a.find_first_of(" \t'\"") == std::string::npos ? a : "'" + a + "'");
  return command_line;
}

// What `xlhost run` was asked, parsed: the arguments as given (for records and the
// processes a run starts), the plugin, and the config's file and overrides.
struct RunRequest {
  std::vector<std::string> args;
  po::variables_map vm;
  std::string config_path;
  std::vector<std::string> overrides;
  const core::LoadedPlugin& plugin;

  core::RunConfig config(const std::vector<std::string>& more_overrides = {}) const {
    auto all = overrides;
    all.insert(all.end(), more_overrides.begin(), more_overrides.end());
    return core::Config::load(config_path, core::full_schema(plugin.descriptor().schema), all);
  }
};

// One run: trains with `config` (this rank's part of it), keeps the record on rank 0,
// prints the summary and the samples. `command_line` reproduces it.
int train_run(const RunRequest& request, const core::RunConfig& config, const std::string& command_line) {
  const auto& options = config.options;
  const std::string& id = options.experiment.id;
  const auto run_dir = options.run_directory();
  core::TrainJob job;
  job.config = config;
  job.model = core::model_source(request.plugin);
  set_start_point(request.vm, run_dir, id, job);
  job.should_stop = [](int64_t) { return stop_requested.load(); };
  const auto ranks = join_ranks(options);
  job.communicator = ranks.get();
  const int rank = ranks ? ranks->rank() : 0;
  auto metrics_options = options.metrics;
  if (ranks) metrics_options.listen = rank_listen_address(metrics_options.listen, ranks->local_rank());
  const auto metrics = serve_metrics(metrics_options, request.vm.count("metrics-listen") > 0);
  const auto& plugin_name = request.plugin.descriptor().name;
  const auto training_metrics =
      metrics.registry ? core::run_metrics(config, plugin_name, rank, *metrics.registry) : nullptr;
  if (training_metrics) job.observers.push_back(training_metrics.get());

  if (rank != 0) {  // rank 0 keeps the record, prints and samples; the others train
    static std::ostream discard(nullptr);
    job.log = &discard;
    core::train(job);
    return 0;
  }
  const auto claim = claim_run_folder(run_dir, id);
  job.run_uid = run_identity(run_dir, id, job.resume_from.empty(), request.vm.count("overwrite") > 0);
  auto description = core::describe_run(config, request.config_path, command_line, metrics.server ? metrics.server->url() : "");
  description.run_uid = job.run_uid;
  if (ranks) description.distributed = {ranks->world_size(), ranks->backend_name(), ranks->launcher(), ranks->hosts()};
  core::ExperimentRecord record(description, core::plugin_identity(request.plugin), core::runtime_info());
  core::copy_crash_reports_to(run_dir.crash_report().string());
  auto summary = train_recorded(job, record, id);
  if (!summary) return 0;
  const std::string status = summary->interrupted ? "interrupted" : "completed";
  try {  // the samples' figures go into the record, which says the run completed even when they fail
    summary->generation = write_samples(*summary, options);
  } catch (const std::exception&) {
    record.finish(&*summary, status);
    throw;
  }
  record.finish(&*summary, status);
  print_summary(*summary, plugin_name, id, record.path());
  if (metrics.server && options.metrics.linger_seconds > 0) linger(*metrics.server, options.metrics.linger_seconds);
  return 0;
}

// The seeds one after another, then the group's record from theirs. `trained`: whether a
// seed has finished (a failure after it leaves the group failed, before it untouched).
int run_seed_group(const RunRequest& request, const core::Options& group, int seeds, bool& trained) {
  const std::string& id = group.experiment.id;
  const auto run_dir = group.run_directory();
  const auto base = without_option(request.args, "--seeds");
  std::vector<std::string> dirs, ids;
  std::vector<long long> used;
  for (int k = 0; k < seeds && !stop_requested; ++k) {
    const long long seed = group.train.seed + k;
    const std::vector<std::string> sub_overrides{"train.seed=" + std::to_string(seed),
                                                 "experiment.id=" + core::seed_run_id(id, seed),
                                                 "run.out_dir=" + run_dir.seeds().string()};
    auto sub_args = base;  // the command that reproduces this sub-run alone
    for (const auto& s : sub_overrides) sub_args.insert(sub_args.end(), {"--set", s});
    std::cout << "\n== experiment " << id << ", seed " << seed << " (" << k + 1 << " of " << seeds << ")\n" << std::flush;
    const auto config = request.config(sub_overrides);
    refuse_if_running(config.options.run_directory(), config.options.experiment.id);
    train_run(request, config, command_line_of(sub_args));
    trained = true;
    ids.push_back(core::seed_run_id(id, seed));
    dirs.push_back((run_dir.seeds() / ids.back()).string());
    used.push_back(seed);
  }
  core::write_seed_group_record(run_dir.root().string(), id, dirs, used, command_line_of(request.args));
  std::cout << "\nexperiment " << id << ": " << used.size() << " seeds, record " << run_dir.record().string()
            << " (mean ± standard deviation)\n"
            << core::format_comparison(core::compare_records(run_dir.seeds().string(), ids), false);
  return 0;
}

// `--seeds N`: N sub-runs with their own seed, id and folder, then the group's record (mean ±
// standard deviation). Until then a "running" record of this process stands in the group's
// folder: exp status, exp stop (ends the seed in training, then the group) and --detach see it.
int run_seeds(const RunRequest& request, const core::RunConfig& config, int seeds) {
  const auto& group = config.options;
  const std::string& id = group.experiment.id;
  const auto run_dir = group.run_directory();
  const auto claim = claim_run_folder(run_dir, id);
  auto description = core::describe_run(config, request.config_path, command_line_of(request.args), "");
  description.run_uid = core::new_run_uid();
  core::ExperimentRecord record(description, core::plugin_identity(request.plugin), core::runtime_info());
  bool trained = false;
  try {
    return run_seed_group(request, group, seeds, trained);
  } catch (const std::exception& e) {  // nothing trained (a seed refused, say): an earlier group's record stays
    if (trained || !record.restore_previous()) mark_failed(record, e);
    throw;
  }
}

po::options_description run_options(std::string& plugin_path, std::string& config_path) {
  po::options_description options("options");
  options.add_options()
      ("plugin,p", po::value(&plugin_path)->required(), "architecture plugin (.so)")
      ("config,c", po::value(&config_path)->required(), "experiment config (JSON)")
      ("set,s", po::value<std::vector<std::string>>()->composing(),
       "override a config value: --set train.lr=3e-4 (repeatable)")
      ("resume,r", po::value<std::string>()->implicit_value(""),
       "continue from a checkpoint directory; without a value from this experiment's newest valid checkpoint "
       "(corrupt ones are skipped with a warning); 'auto' the same, or a fresh start when there is none")
      ("overwrite", "start afresh in a folder that holds an earlier run of this experiment.id: that run's files "
       "are first moved to <run.out_dir>/.archive/<id>-<time>/ (without it such a run is refused)")
      ("init-from", po::value<std::string>(),
       "initial weights, fresh optimizer and schedule (train.init_from): an xlhost run or checkpoint, a Hugging Face "
       "folder (xlhost export), a PyTorch state dict (.pth, MiniMind's) or a .safetensors file; the record keeps "
       "the parent (exp show prints the lineage)")
      ("rewind-to", po::value<int64_t>(), "continue from this experiment's checkpoint of step N (checkpoints/step_N)")
      ("skip-batches", po::value<std::string>(),
       "A:B: pass over data micro-batches A to B-1 (after a divergence, with --rewind-to; the error names them)")
      ("metrics-listen", po::value<std::string>(),
       "serve /metrics on host:port (metrics.listen, default 127.0.0.1:9464; port 0 = any free port)")
      ("metrics-linger", po::value<double>(), "keep serving metrics this many seconds after the run (metrics.linger_seconds)")
      ("no-metrics", "do not serve metrics (metrics.enabled=false)")
      ("require-clean", "refuse to run when the git tree around the config has uncommitted changes")
      ("detach", "run in the background: returns once the run has started, output goes to <run dir>/run.log")
      ("nproc", po::value<int>(),
       "data-parallel on this machine: N ranks started and watched by xlhost (torchrun, srun or any launcher "
       "that sets RANK, WORLD_SIZE, MASTER_ADDR and MASTER_PORT works too), "
       "Gloo on the CPU, NCCL with one GPU per rank; the global batch is batch_size x accumulation_steps x N")
      ("seeds", po::value<int>()->default_value(1),
       "train N times, with train.seed, train.seed+1, ...: sub-runs in <run dir>/seeds/, and a record of the mean "
       "and standard deviation of every result that exp list/compare/report show");
  return options;
}

// The config overrides the command line makes: --set, and the options that stand for keys.
std::vector<std::string> overrides_of(const po::variables_map& vm) {
  auto overrides = vm.count("set") ? vm["set"].as<std::vector<std::string>>() : std::vector<std::string>{};
  if (vm.count("metrics-listen")) overrides.push_back("metrics.listen=" + vm["metrics-listen"].as<std::string>());
  if (vm.count("metrics-linger")) overrides.push_back("metrics.linger_seconds=" + std::to_string(vm["metrics-linger"].as<double>()));
  if (vm.count("no-metrics")) overrides.push_back("metrics.enabled=false");
  if (vm.count("init-from")) overrides.push_back("train.init_from=" + vm["init-from"].as<std::string>());
  return overrides;
}

}  // namespace

int run_command(const std::vector<std::string>& args) {
  std::string plugin_path, config_path;
  const auto options = run_options(plugin_path, config_path);
  po::variables_map vm;
  if (!parse_args(args, options, {}, "xlhost run --plugin P.so --config exp.json [options]",
                  "Trains the plugin's model as the config says. Writes <run.out_dir>/<experiment.id>/ with\n"
                  "config.json (resolved), train.log (JSON lines), checkpoints/, record.json (provenance and\n"
                  "results, see experiments/README.md) and samples.txt. Serves Prometheus metrics while it\n"
                  "runs. Ctrl-C or SIGTERM saves a checkpoint and exits 0; --resume continues from it.\n"
                  "With --detach it runs in the background (`xlhost exp status`, `xlhost exp stop ID`).",
                  vm))
    return 0;
  const int seeds = vm["seeds"].as<int>();
  if (vm.count("nproc")) {
    const int nproc = vm["nproc"].as<int>();
    if (nproc < 1) throw core::UserError("--nproc must be at least 1");
    if (vm.count("detach") || seeds > 1)
      throw core::UserError("--nproc with --detach or --seeds is not supported: run it from a script");
    return launch_ranks(args, nproc);
  }
  const auto plugin = core::load_plugin(plugin_path);
  const RunRequest request{args, vm, config_path, overrides_of(vm), plugin};
  const auto config = request.config();
  const std::string& id = config.options.experiment.id;
  const auto run_dir = config.options.run_directory();
  if (vm.count("require-clean")) require_clean_tree(config_path);
  refuse_if_running(run_dir, id);
  if (seeds < 1) throw core::UserError("--seeds must be at least 1");
  if (vm.count("detach")) return run_detached(args, run_dir, id);
  if (seeds > 1) return run_seeds(request, config, seeds);
  return train_run(request, config, command_line_of(args));
}

}  // namespace xlhost::host
