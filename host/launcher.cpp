// xlhost: the launcher in front of the host program (xlhost-host, in the same folder).
//
// The host links LibTorch, and the dynamic loader spends ~0.5 s mapping it before the
// host's main() can install its stop handlers: a SIGTERM or Ctrl-C in that time killed
// the process outright. This program is linked statically against libc alone, so it
// reaches main() about 0.2 ms after exec (measured; a signal before that still kills it,
// as it would any program); it blocks the stop signals and execs the host,
// which inherits the blocked mask and receives a pending signal as soon as its handlers
// are in place (host/main.cpp). It also sets the OpenMP wait policy, which the OpenMP
// runtime reads only when it starts.
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

namespace {

bool is_set_above_one(const char* name) {
  const char* value = getenv(name);
  return value && atoi(value) > 1;
}

// Another xlhost process on this machine: it and this one would share the cores.
bool another_host_running() {
  DIR* proc = opendir("/proc");
  if (!proc) return false;
  bool found = false;
  char path[64], name[32];
  for (dirent* entry; !found && (entry = readdir(proc));) {
    const int pid = atoi(entry->d_name);
    if (pid <= 0 || pid == getpid()) continue;
    snprintf(path, sizeof path, "/proc/%d/comm", pid);
    if (FILE* comm = fopen(path, "r")) {
      found = fgets(name, sizeof name, comm) && strncmp(name, "xlhost-host", 11) == 0;
      fclose(comm);
    }
  }
  closedir(proc);
  return found;
}

// LibTorch's OpenMP workers either spin between parallel regions (ACTIVE) or sleep
// (PASSIVE). A training process alone on its cores runs 35-40% faster spinning (issue 31's
// measurement on a 2-core Xeon; see the README); but processes that share cores (ranks of
// --nproc, torchrun or Slurm on one machine, two experiments at once, ctest -j2) starve
// each other spinning (12 s instead of ~1 s per quickstart memory-model step), and a command
// that waits between requests (serve, exp serve) would hold a core busy while idle.
const char* wait_policy(int argc, char** argv) {
  if (argc < 2 || strcmp(argv[1], "run") != 0) return "PASSIVE";
  for (int i = 2; i < argc; ++i)
    if (strcmp(argv[i], "--nproc") == 0 || strncmp(argv[i], "--nproc=", 8) == 0) return "PASSIVE";
  static const char* const kRankCounts[] = {"LOCAL_WORLD_SIZE", "SLURM_NTASKS_PER_NODE", "OMPI_COMM_WORLD_LOCAL_SIZE"};
  for (const char* ranks : kRankCounts)
    if (is_set_above_one(ranks)) return "PASSIVE";
  return another_host_running() ? "PASSIVE" : "ACTIVE";
}

}  // namespace

int main(int argc, char** argv) {
  sigset_t stops;
  sigemptyset(&stops);
  sigaddset(&stops, SIGINT);
  sigaddset(&stops, SIGTERM);
  sigprocmask(SIG_BLOCK, &stops, nullptr);

  setenv("OMP_WAIT_POLICY", wait_policy(argc, argv), 0);  // an explicit setting by the user wins

  static const char kHost[] = "xlhost-host";
  char path[4096];
  const ssize_t limit = static_cast<ssize_t>(sizeof path - sizeof kHost);
  const ssize_t n = readlink("/proc/self/exe", path, static_cast<size_t>(limit));
  if (n <= 0 || n == limit) {
    fprintf(stderr, "xlhost: cannot find this program's own path (/proc/self/exe): %s\n",
            n == limit ? "too long" : strerror(errno));
    return 3;
  }
  path[n] = '\0';
  strcpy(strrchr(path, '/') + 1, kHost);
  execv(path, argv);
  fprintf(stderr, "xlhost: cannot start the host program %s: %s (reinstall or rebuild xlhost)\n", path,
          strerror(errno));
  return 3;
}
