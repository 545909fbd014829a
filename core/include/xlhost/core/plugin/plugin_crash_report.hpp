// A plugin whose code is damaged (flipped bytes in its file) or buggy can crash long after
// it loaded, in forward or backward. That is bad input, not a host failure: the process
// ends with one line naming the plugin and exit status 2, like every explained error.
#pragma once

#include <string>

namespace xlhost::core {

// Installs handlers for SIGSEGV, SIGBUS, SIGILL, SIGFPE and SIGABRT (on an alternate
// stack, so a stack overflow of the main thread is caught too). A fault in a registered
// plugin's code, a call through a bad pointer from it, or a fault or abort in code a
// plugin called (LibTorch given a bad pointer) prints one line and exits 2. Any other
// crash prints a backtrace and keeps its default action (a core dump): a host bug. The
// same signals sent by another process keep their default action.
void report_plugin_crashes();

// The address range of the library loaded as `handle` (dlopen's) is attributed to `path`
// until forget_plugin_code(handle). Called by load_plugin and when the library is unloaded.
// A crash elsewhere names the plugins whose file was not `verified` against a checksum.
void register_plugin_code(const std::string& path, void* handle, bool verified);
void forget_plugin_code(void* handle);

// Crash lines are also written to `path` (a run's RunDirectory::crash_report: its record
// cannot be finished from a signal handler). Removes a previous run's file there.
void copy_crash_reports_to(const std::string& path);

// Puts back the default action of the signals above (a child process that probes a
// library must die of its signal, not report it as a registered plugin's).
void default_crash_signals();

}  // namespace xlhost::core
