// xlhost-host: the command-line host, started by the `xlhost` launcher (launcher.cpp).
// Dispatches subcommands, installs signal handlers and turns errors into one clear line
// and a non-zero exit code.
#include <signal.h>

#include <cstring>
#include <filesystem>
#include <iostream>
#include <string>

#include "build_info.hpp"
#include "cli.hpp"
#include "xlhost/core/device/device_info.hpp"
#include "xlhost/core/plugin/plugin_crash_report.hpp"
#include "xlhost/core/util/error.hpp"

namespace {

void on_stop_signal(int) { xlhost::host::stop_requested = true; }

void install_signal_handlers() {
  struct sigaction action {};
  action.sa_handler = on_stop_signal;
  sigemptyset(&action.sa_mask);
  // A second Ctrl-C while the checkpoint is written ends the process the usual way.
  action.sa_flags = SA_RESETHAND;
  sigaction(SIGINT, &action, nullptr);
  sigaction(SIGTERM, &action, nullptr);
  // The launcher (host/launcher.cpp) blocked them before exec: one that arrived while
  // LibTorch was being loaded is pending and is delivered now, to the handler.
  sigset_t stops;
  sigemptyset(&stops);
  sigaddset(&stops, SIGINT), sigaddset(&stops, SIGTERM);
  sigprocmask(SIG_UNBLOCK, &stops, nullptr);
}

const char* kUsage = R"(usage: xlhost <command> [options]

xlhost trains, evaluates and samples language models whose architecture comes from a
plugin (.so) built against the xlhost SDK.

commands:
  run          train a model:   xlhost run --plugin P.so --config exp.json [--set k=v]...
               (--init-from RUN|HF_DIR|FILE.pth: start from other weights, e.g. SFT after pretraining)
  eval         held-out loss and perplexity of a checkpoint (--ablate memory=...: without its memory;
               --task FILE: a multiple-choice or text benchmark scored as lm-evaluation-harness does)
  generate     sample from a checkpoint
  serve        OpenAI-compatible /v1/completions over a checkpoint (lm-eval's local-completions)
  inspect      what a memory model reads: per token and layer, the bank rows, weights and text
  export       a checkpoint as a Hugging Face folder (transformers, vLLM, llama.cpp converters)
  plugin info  print a plugin's descriptor and config schema
  plugin check run the conformance suite (causality, gradients, save/load, cache) on a plugin
  plugin new   scaffold a plugin that builds out of tree against the installed SDK
  data synth   write the built-in synthetic facts corpus (text and chat)
  tokenizer    train, inspect and run Hugging Face byte-level BPE tokenizers (tokenizer.json)
  exp new      create experiments/X.Y.Z/ (config and record template), optionally --from A.B.C
  exp list     the runs recorded under out/ (record.json: git commit, data md5, config, results)
  exp show     one run's record in brief (--json: all of it)
  exp compare  what differs between runs (config, plugin, code) and their results, best marked
  exp report   report.md with curves (gnuplot SVG), plan and findings, comparison, samples
  exp status   runs in progress (xlhost run --detach starts one in the background)
  exp stop     stop a running experiment gracefully (it saves a checkpoint)
  exp archive  move runs (a failed one) to out/.archive/, out of every listing
  exp serve    a live web page over the runs: table, filters, curves, comparisons

'xlhost <command> --help' explains each one; 'xlhost --version' names the build
and the LibTorch, CUDA, cuDNN and NCCL versions it runs on.

exit status: 0 done (a stopped run included), 1 a check failed (plugin check), 2 an error
the message explains (bad input, a plugin damaged since its build or crashing in its own
code, a diverged run), 3 an internal error (please report it).)";

}  // namespace

int main(int argc, char** argv) {
  // First: a stop signal during set-up (loading a plugin, tokenising) ends the run cleanly.
  install_signal_handlers();
  xlhost::core::report_plugin_crashes();
  using namespace xlhost::host;
  if (argc < 2 || !std::strcmp(argv[1], "--help") || !std::strcmp(argv[1], "-h") || !std::strcmp(argv[1], "help")) {
    std::cout << kUsage << "\n";
    return argc < 2 ? 2 : 0;
  }
  const std::string command = argv[1];
  if (command == "--version") {
    std::cout << "xlhost " << XLHOST_VERSION << " (" << XLHOST_GIT_COMMIT << ")\n"
              << xlhost::core::describe(xlhost::core::runtime_info());
    return 0;
  }
  std::vector<std::string> args(argv + 2, argv + argc);
  try {
    if (command == "run") return run_command(args);
    if (command == "eval") return eval_command(args);
    if (command == "generate") return generate_command(args);
    if (command == "export") return export_command(args);
    if (command == "inspect") return inspect_command(args);
    if (command == "serve") return serve_command(args);
    if (command == "plugin") return plugin_command(args);
    if (command == "data") return data_command(args);
    if (command == "tokenizer") return tokenizer_command(args);
    if (command == "exp") return exp_command(args);
    std::cerr << "xlhost: unknown command '" << command << "'\n\n" << kUsage << "\n";
    return 2;
  } catch (const xlhost::core::UserError& e) {
    std::cerr << "xlhost: error: " << e.what() << "\n";
    return 2;
  } catch (const std::filesystem::filesystem_error& e) {  // the user's files: a link loop, a permission
    std::cerr << "xlhost: error: " << e.what() << "\n";
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "xlhost: internal error: " << e.what() << "\n";
    return 3;
  }
}
