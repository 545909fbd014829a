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
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int main(int, char** argv) {
  sigset_t stops;
  sigemptyset(&stops);
  sigaddset(&stops, SIGINT);
  sigaddset(&stops, SIGTERM);
  sigprocmask(SIG_BLOCK, &stops, nullptr);

  // LibTorch's OpenMP workers spin while idle by default. Alone on a machine that costs
  // nothing, but two processes on the same cores (ctest -j2, two experiments at once)
  // then starve each other (measured: 12 s instead of ~1 s per quickstart memory-model
  // step). An explicit setting by the user wins.
  setenv("OMP_WAIT_POLICY", "PASSIVE", 0);

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
