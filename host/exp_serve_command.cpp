// `xlhost exp serve`: the dashboard (core/experiments/dashboard.hpp) on the HTTP server,
// with the one answer that needs a model: what a run's model reads for a prompt.
#include <chrono>
#include <filesystem>
#include <functional>
#include <iostream>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>

#include "cli.hpp"
#include "xlhost/core/checkpoint/checkpoint_directory.hpp"
#include "xlhost/core/eval/generator.hpp"
#include "xlhost/core/eval/memory_inspection.hpp"
#include "xlhost/core/eval/trained_model.hpp"
#include "xlhost/core/experiments/dashboard.hpp"
#include "xlhost/core/experiments/experiment_record.hpp"
#include "xlhost/core/http/http_server.hpp"
#include "xlhost/core/util/error.hpp"

namespace xlhost::host {

extern const char* const kDashboardPage;  // generated from dashboard.html

namespace {

constexpr size_t kMaxPromptBytes = 2000;

struct Loaded {
  std::mutex mutex;  // one model, one forward at a time
  std::string checkpoint;
  std::optional<core::TrainedModel> model;
};

// The inspect box (GET /api/inspect): the run's latest checkpoint is loaded when first asked
// (the last run asked for stays loaded; requests wait their turn) and the answer is
// eval/memory_inspection.hpp's JSON: the top 3 rows per layer and position, and 8 greedily
// generated tokens.
std::function<std::string(const std::filesystem::path&, const std::string&)> dashboard_inspector() {
  auto loaded = std::make_shared<Loaded>();
  return [loaded](const std::filesystem::path& run_dir, const std::string& prompt) {
    if (prompt.empty() || prompt.size() > kMaxPromptBytes)
      throw core::UserError("the prompt must have 1 to " + std::to_string(kMaxPromptBytes) + " bytes");
    const std::string checkpoint = core::latest_checkpoint(run_dir.string());
    if (checkpoint.empty()) throw core::UserError(run_dir.string() + " has no checkpoint yet");
    std::lock_guard<std::mutex> lock(loaded->mutex);
    if (loaded->checkpoint != checkpoint) {
      loaded->model.reset();
      loaded->model.emplace(core::load_trained_model(checkpoint, "", {}));
      loaded->checkpoint = checkpoint;
    }
    auto& t = *loaded->model;
    const bool chat = t.config.options.data.format == core::DocumentFormat::kChat;
    return core::memory_inspection_json(
        core::inspect_memory(*t.model, *t.tokenizer, core::prompt_ids(*t.tokenizer, prompt, chat), 3, 8, t.device));
  };
}

}  // namespace

int exp_serve_command(const std::vector<std::string>& args) {
  std::string listen;
  po::options_description options("options");
  options.add_options()
      ("out,o", po::value<std::vector<std::string>>()->composing(), "folder of runs (repeatable; default out)")
      ("listen", po::value(&listen)->default_value("127.0.0.1:8787"), "host:port to serve on (port 0: any free port)")
      ("allow-remote", "serve on an address other machines can reach (anyone who can reach it reads the records)");
  po::variables_map vm;
  if (!parse_args(args, options, {}, "xlhost exp serve [--listen 127.0.0.1:PORT] [--out DIR]...",
                  "A web page over the runs: a sortable, filterable table (text, or expressions such as\n"
                  "`train.lr<1e-3 and status=completed`), curves of the selected runs against step or\n"
                  "training time (updated while they run), the exp compare table and a parallel-coordinates\n"
                  "view, and each run's record, plan and samples; for a memory model its memory page: the bank\n"
                  "rows read over training, the most- and never-read rows with their text, the ablations, and\n"
                  "an inspect box (the rows each layer reads for a typed prompt). The view is kept in the URL.\n"
                  "Ctrl-C stops.",
                  vm))
    return 0;
  core::Dashboard dashboard;
  dashboard.out_dirs = vm.count("out") ? vm["out"].as<std::vector<std::string>>() : std::vector<std::string>{"out"};
  dashboard.page = kDashboardPage;
  dashboard.inspect = dashboard_inspector();
  dashboard.token = core::new_run_uid() + core::new_run_uid();  // 128 random bits: the page's key to POST notes
  dashboard.scripts = {{"/chart.js", "/usr/share/javascript/chart.js/chart.min.js"},
                       {"/marked.js", "/usr/share/javascript/marked/marked.min.js"}};
  const auto address = core::http::parse_listen_address(listen, "--listen");
  if (!address.is_loopback() && !vm.count("allow-remote"))
    throw core::UserError("--listen " + listen + " is not a loopback address; add --allow-remote to serve other machines");
  core::http::Server server(address, "exp serve",
                            [&dashboard](const std::string& request) { return core::answer_dashboard(request, dashboard); },
                            core::kMaxDashboardPostBytes);
  std::cout << "serving " << server.base_url() << "/ (runs in";
  for (const auto& out : dashboard.out_dirs) std::cout << " " << out;
  std::cout << "); Ctrl-C stops\n" << std::flush;
  while (!stop_requested) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  return 0;
}

}  // namespace xlhost::host
