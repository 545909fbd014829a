// A crash after loading, in a plugin's code or in code it called, is one line naming the
// plugin and exit status 2; a crash anywhere else stays a crash (a host bug to report).
#include <dlfcn.h>
#include <gtest/gtest.h>
#include <signal.h>

#include <cstdint>
#include <cstdlib>
#include <string>

#include "xlhost/core/plugin/plugin_crash_report.hpp"

namespace {

const std::string kPlugin = std::string(XLHOST_TEST_PLUGIN_DIR) + "/faulting_plugin.so";

[[gnu::noinline]] void fault_in_the_host() {
  volatile std::uintptr_t address = 8;
  *reinterpret_cast<volatile int*>(address) = 1;
}

// Loads the fixture as load_plugin would register it, with the handlers installed.
void* load_registered() {
  void* handle = dlopen(kPlugin.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!handle) throw std::runtime_error(dlerror());
  xlhost::core::register_plugin_code(kPlugin, handle, false);
  xlhost::core::report_plugin_crashes();
  return handle;
}

class PluginCrashReportDeathTest : public testing::Test {
 protected:
  // Each death test runs in a fresh process, not a fork of this multi-threaded one.
  void SetUp() override { GTEST_FLAG_SET(death_test_style, "threadsafe"); }
};

TEST_F(PluginCrashReportDeathTest, FaultInPluginCodeNamesThePlugin) {
  EXPECT_EXIT(
      {
        auto fault = reinterpret_cast<void (*)()>(dlsym(load_registered(), "xlhost_test_fault"));
        fault();
      },
      testing::ExitedWithCode(2), "plugin .*faulting_plugin.so crashed: SIGSEGV .* in its code at faulting_plugin.so\\+0x");
}

TEST_F(PluginCrashReportDeathTest, FaultInCodeThePluginCalledNamesThePlugin) {
  EXPECT_EXIT(
      {
        auto call = reinterpret_cast<void (*)(void (*)())>(dlsym(load_registered(), "xlhost_test_call"));
        call(fault_in_the_host);
      },
      testing::ExitedWithCode(2), "plugin .*faulting_plugin.so crashed: SIGSEGV .* in code it called, from faulting_plugin.so\\+0x");
}

TEST_F(PluginCrashReportDeathTest, CallThroughABadPointerNamesThePlugin) {
  EXPECT_EXIT(
      {
        auto call = reinterpret_cast<void (*)(void (*)())>(dlsym(load_registered(), "xlhost_test_call"));
        call(nullptr);  // what a damaged vtable does
      },
      testing::ExitedWithCode(2), "plugin .*faulting_plugin.so crashed: SIGSEGV .* calling a bad address from its code at faulting_plugin.so\\+0x");
}

TEST_F(PluginCrashReportDeathTest, AbortInCodeThePluginCalledNamesThePlugin) {
  EXPECT_EXIT(
      {
        auto call = reinterpret_cast<void (*)(void (*)())>(dlsym(load_registered(), "xlhost_test_call"));
        call(std::abort);
      },
      testing::ExitedWithCode(2), "plugin .*faulting_plugin.so crashed: SIGABRT .* in code it called, from faulting_plugin.so\\+0x");
}

TEST_F(PluginCrashReportDeathTest, FaultElsewhereIsAnInternalCrash) {
  EXPECT_EXIT(
      {
        load_registered();
        fault_in_the_host();
      },
      testing::KilledBySignal(SIGSEGV),
      "crashed with SIGSEGV .*an internal error \\(or damage in plugin .*faulting_plugin.so, whose file was not verified");
}

TEST_F(PluginCrashReportDeathTest, ForgottenCodeIsNoLongerAttributed) {
  EXPECT_EXIT(
      {
        void* handle = load_registered();
        auto fault = reinterpret_cast<void (*)()>(dlsym(handle, "xlhost_test_fault"));
        xlhost::core::forget_plugin_code(handle);
        fault();
      },
      testing::KilledBySignal(SIGSEGV), "an internal error");
}

}  // namespace
