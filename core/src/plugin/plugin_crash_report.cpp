#include "xlhost/core/plugin/plugin_crash_report.hpp"

#include <dlfcn.h>
#include <execinfo.h>
#include <fcntl.h>
#include <link.h>
#include <signal.h>
#include <ucontext.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstring>
#include <filesystem>

namespace xlhost::core {

namespace {

// SIGABRT too: the allocator aborts on a bad free, and so does std::terminate.
constexpr int kCrashSignals[] = {SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT};

// Only what a signal handler may read: fixed slots, atomics, no allocation. A slot is in
// use while `end` is non-zero; writers fill the rest first.
struct CodeRange {
  std::atomic<uintptr_t> begin{0}, end{0};
  void* handle = nullptr;
  bool verified = false;  // against the checksum its build wrote
  char path[512] = {};
};
CodeRange ranges[32];
char crash_copy_path[4096];  // "" when no run folder wants a copy

struct Lookup {
  uintptr_t address, begin = 0, end = 0;
};

int find_object(dl_phdr_info* info, size_t, void* data) {
  auto* lookup = static_cast<Lookup*>(data);
  uintptr_t begin = UINTPTR_MAX, end = 0;
  for (int i = 0; i < info->dlpi_phnum; ++i) {
    const auto& segment = info->dlpi_phdr[i];
    if (segment.p_type != PT_LOAD) continue;
    begin = std::min<uintptr_t>(begin, info->dlpi_addr + segment.p_vaddr);
    end = std::max<uintptr_t>(end, info->dlpi_addr + segment.p_vaddr + segment.p_memsz);
  }
  if (lookup->address < begin || lookup->address >= end) return 0;
  lookup->begin = begin, lookup->end = end;
  return 1;
}

const CodeRange* plugin_at(uintptr_t address) {
  for (const auto& range : ranges) {
    const uintptr_t end = range.end.load(std::memory_order_acquire);
    if (end != 0 && address >= range.begin.load(std::memory_order_relaxed) && address < end) return &range;
  }
  return nullptr;
}

uintptr_t faulting_instruction(void* context) {
  [[maybe_unused]] const auto* uc = static_cast<const ucontext_t*>(context);
#if defined(__x86_64__)
  return static_cast<uintptr_t>(uc->uc_mcontext.gregs[REG_RIP]);
#elif defined(__aarch64__)
  return static_cast<uintptr_t>(uc->uc_mcontext.pc);
#else
  return 0;  // the backtrace alone then finds the plugin
#endif
}

// After a call through a bad pointer (a damaged vtable: the fault is at the target, often
// 0) there is no code to unwind from; the caller's return address is where the call left it.
uintptr_t return_address_of_bad_call(void* context) {
  [[maybe_unused]] const auto* uc = static_cast<const ucontext_t*>(context);
#if defined(__x86_64__)
  return *reinterpret_cast<const uintptr_t*>(uc->uc_mcontext.gregs[REG_RSP]);
#elif defined(__aarch64__)
  return static_cast<uintptr_t>(uc->uc_mcontext.regs[30]);
#else
  return 0;
#endif
}

// A message assembled without allocating (the heap may be what broke).
class Line {
 public:
  Line& operator<<(const char* text) {
    while (*text && length_ < sizeof(text_) - 1) text_[length_++] = *text++;
    return *this;
  }
  Line& hex(uintptr_t value) {
    char digits[2 + 16 + 1] = "0x";
    int n = 2;
    for (int shift = 60; shift >= 0; shift -= 4)
      if (const int d = (value >> shift) & 0xf; d || n > 2 || shift == 0) digits[n++] = "0123456789abcdef"[d];
    digits[n] = '\0';
    return *this << digits;
  }
  void write_to(int fd) const {
    for (size_t done = 0; done < length_;) {
      const ssize_t n = ::write(fd, text_ + done, length_ - done);
      if (n <= 0) return;
      done += static_cast<size_t>(n);
    }
  }
  // On stderr and, when a run asked for it, into its crash report.
  void report() const {
    write_to(STDERR_FILENO);
    if (!crash_copy_path[0]) return;
    const int fd = ::open(crash_copy_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return;
    write_to(fd);
    ::close(fd);
  }

 private:
  char text_[2048];
  size_t length_ = 0;
};

const char* describe(int signal) {
  switch (signal) {
    case SIGSEGV: return "SIGSEGV (invalid memory access)";
    case SIGBUS: return "SIGBUS (bad memory access)";
    case SIGILL: return "SIGILL (illegal instruction)";
    case SIGFPE: return "SIGFPE (arithmetic fault, e.g. an integer division by zero)";
    case SIGABRT: return "SIGABRT (aborted, e.g. by the allocator on a bad free)";
    default: return "a fatal signal";
  }
}

const char* file_name(const char* path) {
  const char* slash = std::strrchr(path, '/');
  return slash ? slash + 1 : path;
}

void on_crash(int signal, siginfo_t* info, void* context) {
  if (info->si_code <= 0 && info->si_pid != getpid()) {  // sent by another process: the default action
    raise(signal);
    return;
  }
  const uintptr_t pc = faulting_instruction(context);
  const CodeRange* plugin = plugin_at(pc);
  uintptr_t where = pc;
  const char* how = " in its code at ";
  const bool jumped_to_nowhere = signal == SIGSEGV && pc == reinterpret_cast<uintptr_t>(info->si_addr);
  if (!plugin && jumped_to_nowhere && (plugin = plugin_at(return_address_of_bad_call(context))))
    where = return_address_of_bad_call(context), how = " calling a bad address from its code at ";
  // Unwinding a stack the damaged code may have scribbled on can fault itself: last.
  void* frames[64];
  const int depth = plugin ? 0 : backtrace(frames, 64);
  for (int i = 0; !plugin && i < depth; ++i)
    if ((plugin = plugin_at(reinterpret_cast<uintptr_t>(frames[i]))))
      where = reinterpret_cast<uintptr_t>(frames[i]), how = " in code it called, from ";
  Line line;
  if (plugin) {
    line << "xlhost: error: plugin " << plugin->path << " crashed: " << describe(signal) << how << file_name(plugin->path) << "+";
    line.hex(where - plugin->begin.load(std::memory_order_relaxed))
        << ". Its file may be damaged, or the plugin has a bug: rebuild it and run `xlhost plugin check` on it. "
           "Checkpoints written before the crash are intact (continue with --resume auto).\n";
    line.report();
    _exit(2);
  }
  line << "xlhost: crashed with " << describe(signal) << " at ";
  line.hex(pc) << ": an internal error";
  // Damaged plugin code can also break the host's state and crash it later, elsewhere.
  for (const auto& range : ranges)
    if (range.end.load(std::memory_order_acquire) != 0 && !range.verified)
      line << " (or damage in plugin " << range.path << ", whose file was not verified: no checksum beside it)";
  line << ", please report it with this backtrace:\n";
  line.report();
  backtrace_symbols_fd(frames, depth, STDERR_FILENO);
  // SA_RESETHAND restored the default action: the faulting instruction, run again on
  // return, ends the process with a core dump; a raised signal needs raising again.
  raise(signal);
}

}  // namespace

void register_plugin_code(const std::string& path, void* handle, bool verified) {
  link_map* map = nullptr;
  if (dlinfo(handle, RTLD_DI_LINKMAP, &map) != 0 || !map) return;
  Lookup lookup{reinterpret_cast<uintptr_t>(map->l_ld)};  // its dynamic section lies inside its mapping
  if (!dl_iterate_phdr(find_object, &lookup)) return;
  for (auto& range : ranges) {
    if (range.end.load(std::memory_order_relaxed) != 0) continue;
    range.handle = handle;
    range.verified = verified;
    std::strncpy(range.path, path.c_str(), sizeof(range.path) - 1);
    range.begin.store(lookup.begin, std::memory_order_relaxed);
    range.end.store(lookup.end, std::memory_order_release);
    return;
  }
}

void forget_plugin_code(void* handle) {
  for (auto& range : ranges)
    if (range.end.load(std::memory_order_relaxed) != 0 && range.handle == handle) range.end.store(0, std::memory_order_release);
}

void report_plugin_crashes() {
  static char alternate_stack[64 * 1024];
  stack_t stack{};
  stack.ss_sp = alternate_stack;
  stack.ss_size = sizeof(alternate_stack);
  sigaltstack(&stack, nullptr);
  void* warm_up[1];
  backtrace(warm_up, 1);  // its first call loads libgcc_s: not something to do in a handler
  struct sigaction action {};
  action.sa_sigaction = on_crash;
  sigemptyset(&action.sa_mask);
  action.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_RESETHAND;
  for (const int signal : kCrashSignals) sigaction(signal, &action, nullptr);
}

void copy_crash_reports_to(const std::string& path) {
  std::filesystem::remove(path);
  crash_copy_path[0] = '\0';
  if (path.size() < sizeof(crash_copy_path)) std::memcpy(crash_copy_path, path.c_str(), path.size() + 1);
}

void default_crash_signals() {
  for (const int signal : kCrashSignals) ::signal(signal, SIG_DFL);
}

}  // namespace xlhost::core
