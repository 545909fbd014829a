#include "run_launch.hpp"

#include <c10/cuda/CUDAFunctions.h>
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <thread>

#include "cli.hpp"
#include "xlhost/core/distributed/launch.hpp"
#include "xlhost/core/experiments/experiment_record.hpp"
#include "xlhost/core/metrics/metrics_server.hpp"
#include "xlhost/core/plugin/model_source.hpp"
#include "xlhost/core/util/error.hpp"
#include "xlhost/core/util/file_io.hpp"

namespace xlhost::host {

namespace {

// The `xlhost` launcher beside this program (launcher.cpp): processes this one starts go
// through it, so that they too block stop signals from their first microseconds.
std::string launcher_path() {
  char self[4096] = {};
  const ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
  if (n <= 0) throw std::runtime_error("cannot find this program's path (/proc/self/exe)");
  return (std::filesystem::path(std::string(self, static_cast<size_t>(n))).parent_path() / "xlhost").string();
}

}  // namespace

int run_detached(const std::vector<std::string>& args, const core::RunDirectory& run_dir, const std::string& id) {
  std::vector<std::string> words{"xlhost", "run"};
  for (const auto& a : args)
    if (a != "--detach") words.push_back(a);
  std::vector<char*> argv;
  for (auto& w : words) argv.push_back(w.data());
  argv.push_back(nullptr);
  const std::string launcher = launcher_path();
  std::filesystem::create_directories(run_dir.root());
  const std::string log_path = run_dir.run_log().string();
  const int log_fd = open(log_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  const int null_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
  if (log_fd < 0 || null_fd < 0) throw core::UserError(log_path + ": cannot create the run's log");
  const pid_t pid = fork();
  if (pid < 0) throw std::runtime_error("fork failed");
  if (pid == 0) {  // only async-signal-safe calls until exec
    setsid();
    dup2(null_fd, 0), dup2(log_fd, 1), dup2(log_fd, 2);
    execv(launcher.c_str(), argv.data());
    _exit(127);
  }
  close(log_fd), close(null_fd);
  const std::string record_path = run_dir.record().string();
  std::string metrics_url;
  bool recorded = false;
  for (int i = 0; i < 1200 && !recorded; ++i) {  // two minutes at most; loading LibTorch takes seconds
    int status = 0;
    if (waitpid(pid, &status, WNOHANG) == pid) {
      std::cerr << core::read_text_file(log_path, "run log");
      const int code = WIFEXITED(status) ? WEXITSTATUS(status) : 1;
      std::cerr << "the detached run ended at once (exit " << code << "); its output is above and in " << log_path << "\n";
      return code == 0 ? 0 : 1;
    }
    try {
      const auto r = core::read_record_summary(run_dir.root().string());
      recorded = r.pid == pid;
      metrics_url = r.metrics_url;
    } catch (const core::UserError&) {  // not written yet
    }
    if (!recorded) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  std::cout << "started experiment " << id << " in the background, pid " << pid << "\n"
            << "  log      " << log_path << "\n"
            << "  record   " << record_path << (recorded ? "" : " (not written yet: the run is still starting)") << "\n"
            << (recorded && !metrics_url.empty() ? "  metrics  " + metrics_url + "\n" : "")
            << "follow it with `xlhost exp status`, stop it with `xlhost exp stop " << id << "` (a checkpoint is saved)\n";
  return 0;
}

std::vector<std::string> without_option(const std::vector<std::string>& args, const std::string& option) {
  std::vector<std::string> rest;
  for (size_t i = 0; i < args.size(); ++i) {
    if (args[i] == option) ++i;
    else if (args[i].rfind(option + "=", 0) != 0) rest.push_back(args[i]);
  }
  return rest;
}

// `--nproc N`: the same command under torchrun, N processes on this machine. torchrun
// starts, watches and (with --max-restarts) restarts them; xlhost manages no processes.
[[noreturn]] void exec_torchrun(const std::vector<std::string>& args, int nproc) {
  // torchrun is `python -m torch.distributed.run`: the module needs no script on PATH.
  std::vector<std::string> words;
  for (const std::string& env : {std::string(std::getenv("XLHOST_VENV") ? std::getenv("XLHOST_VENV") : ""),
                                std::string(XLHOST_PYTHON_ENV)})
    if (words.empty() && !env.empty() && access((env + "/bin/python").c_str(), X_OK) == 0)
      words = {env + "/bin/python", "-m", "torch.distributed.run"};
  if (words.empty()) words = {"torchrun"};  // from PATH
  const std::string python = words.front();
  for (const std::string& w : {std::string("--standalone"), std::string("--nproc-per-node"), std::to_string(nproc),
                               std::string("--no-python"), launcher_path(), std::string("run")})
    words.push_back(w);
  for (const auto& a : without_option(args, "--nproc")) words.push_back(a);
  std::vector<char*> argv;
  for (auto& w : words) argv.push_back(w.data());
  argv.push_back(nullptr);
  std::cerr << "xlhost: starting " << nproc << " ranks with torchrun (" << python << ")\n";
  execvp(argv[0], argv.data());
  throw core::UserError("--nproc: cannot run " + python + " (" + std::strerror(errno) +
                        "); run scripts/setup.sh, or put torchrun on PATH");
}

std::string rank_listen_address(const std::string& listen, int local_rank) {
  const auto address = core::metrics::parse_listen_address(listen, "metrics.listen");
  if (address.port == 0) return listen;
  return core::metrics::ListenAddress{address.host, address.port + local_rank}.to_string();
}

std::unique_ptr<core::distributed::C10dCommunicator> join_ranks(const core::Options& config) {
  const auto env = core::distributed::launch_environment();
  if (!env || env->world_size == 1) return nullptr;
  const bool cuda = core::resolve_device(config.train.device).is_cuda();
  const std::string& b = config.dist.backend;
  const auto kind = b == "nccl" || (b == "auto" && cuda) ? core::distributed::BackendKind::nccl
                                                          : core::distributed::BackendKind::gloo;
  if (cuda && kind == core::distributed::BackendKind::nccl) c10::cuda::set_device(static_cast<c10::DeviceIndex>(env->local_rank));
  const auto timeout = std::chrono::milliseconds(static_cast<int64_t>(config.dist.timeout_s * 1000));
  return std::make_unique<core::distributed::C10dCommunicator>(*env, kind, timeout,
                                                               static_cast<int64_t>(config.dist.bucket_mb * (1 << 20)));
}

}  // namespace xlhost::host
