#include "run_launch.hpp"

#include <c10/cuda/CUDAFunctions.h>
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <optional>
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

namespace {

// A port for the rendezvous that nothing listens on now (rank 0 binds it a moment later).
int free_loopback_port() {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t size = sizeof address;
  const bool bound = fd >= 0 && bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0 &&
                     getsockname(fd, reinterpret_cast<sockaddr*>(&address), &size) == 0;
  if (fd >= 0) close(fd);
  if (!bound) throw core::UserError(std::string("--nproc: no free loopback port for the rendezvous: ") + std::strerror(errno));
  return ntohs(address.sin_port);
}

// This process's environment with the rank variables of `rank` set (others' values dropped).
std::vector<std::string> rank_environment(int rank, int nproc, int port) {
  const std::vector<std::pair<std::string, std::string>> ours{
      {"RANK", std::to_string(rank)},  {"LOCAL_RANK", std::to_string(rank)},
      {"WORLD_SIZE", std::to_string(nproc)}, {"LOCAL_WORLD_SIZE", std::to_string(nproc)},
      {"MASTER_ADDR", "127.0.0.1"},    {"MASTER_PORT", std::to_string(port)},
      {"XLHOST_LAUNCHER", "xlhost"}};
  std::vector<std::string> env;
  for (char** e = environ; *e; ++e) {
    const std::string entry = *e, name = entry.substr(0, entry.find('='));
    if (std::none_of(ours.begin(), ours.end(), [&](const auto& o) { return o.first == name; }) &&
        name.rfind("TORCHELASTIC_", 0) != 0)
      env.push_back(entry);
  }
  for (const auto& [name, value] : ours) env.push_back(name + "=" + value);
  return env;
}

std::string describe_end(int rank, int status) {
  if (WIFSIGNALED(status))
    return "rank " + std::to_string(rank) + " was killed by signal " + std::to_string(WTERMSIG(status)) + " (" +
           strsignal(WTERMSIG(status)) + ")";
  return "rank " + std::to_string(rank) + " exited " + std::to_string(WEXITSTATUS(status));
}

}  // namespace

int launch_ranks(const std::vector<std::string>& args, int nproc) {
  const int port = free_loopback_port();
  std::vector<std::string> words{"xlhost", "run"};
  for (const auto& a : without_option(args, "--nproc")) words.push_back(a);
  std::vector<char*> argv;
  for (auto& w : words) argv.push_back(w.data());
  argv.push_back(nullptr);
  const std::string launcher = launcher_path();
  std::cerr << "xlhost: starting " << nproc << " ranks on this machine (rendezvous 127.0.0.1:" << port << ")\n";
  std::vector<pid_t> pids;
  pid_t group = 0;  // the ranks' own process group: a Ctrl-C reaches this process, which stops them once
  for (int rank = 0; rank < nproc; ++rank) {
    auto env = rank_environment(rank, nproc, port);
    std::vector<char*> envp;
    for (auto& e : env) envp.push_back(e.data());
    envp.push_back(nullptr);
    const pid_t pid = fork();
    if (pid < 0) throw std::runtime_error("fork failed");
    if (pid == 0) {  // only async-signal-safe calls until exec
      setpgid(0, group);
      prctl(PR_SET_PDEATHSIG, SIGTERM);  // ranks do not outlive this process
      execve(launcher.c_str(), argv.data(), envp.data());
      _exit(127);
    }
    setpgid(pid, group);  // both sides, so the group exists before either goes on
    if (group == 0) group = pid;
    pids.push_back(pid);
  }
  // Watch: a stop is passed on once; after the first failure the others get time to say why
  // they stopped (a dead peer ends their collective), then SIGTERM, then SIGKILL.
  std::vector<int> ended;  // ranks in the order they ended
  std::vector<int> status(pids.size(), 0);
  std::optional<std::chrono::steady_clock::time_point> failed_at;
  bool stopped = false, termed = false, killed = false;
  while (ended.size() < pids.size()) {
    if (stop_requested && !stopped) stopped = true, kill(-group, SIGTERM);
    int st = 0;
    const pid_t pid = waitpid(-group, &st, WNOHANG);
    if (pid > 0) {
      const int rank = static_cast<int>(std::find(pids.begin(), pids.end(), pid) - pids.begin());
      status[rank] = st, ended.push_back(rank);
      if (!failed_at && !(WIFEXITED(st) && WEXITSTATUS(st) == 0)) failed_at = std::chrono::steady_clock::now();
      continue;
    }
    const double since = failed_at ? std::chrono::duration<double>(std::chrono::steady_clock::now() - *failed_at).count() : 0;
    if (since > 30 && !termed) termed = true, kill(-group, SIGTERM);
    if (since > 45 && !killed) killed = true, kill(-group, SIGKILL);
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  const auto first = std::find_if(ended.begin(), ended.end(), [&](int r) {
    return !(WIFEXITED(status[r]) && WEXITSTATUS(status[r]) == 0);
  });
  if (first == ended.end()) return 0;
  std::string line = "xlhost: the run stopped: " + describe_end(*first, status[*first]) + " first";
  for (const int r : ended)
    if (r != *first) line += "; " + describe_end(r, status[r]);
  std::cerr << line << " (the ranks' own errors are above)\n";
  const int code = WIFEXITED(status[*first]) ? WEXITSTATUS(status[*first]) : 2;
  return code >= 1 && code <= 3 ? code : 3;
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
