/* Shared objects that look like xlhost plugins to different degrees, for loader tests. */
#ifdef CRASH_ON_LOAD
/* What a damaged file's initialisation code does to the process that loads it (a null
   store would be UB, which GCC deletes together with the function). */
#include <signal.h>
__attribute__((constructor)) static void crash(void) { raise(SIGSEGV); }
#endif
#ifdef FAULTS
/* Damaged or buggy plugin code crashing after loading: a fault in the plugin itself, and
   one in code the plugin called (the asm keeps the call from becoming a tail call, which
   would take the plugin's frame off the stack). */
#include <stdint.h>
__attribute__((visibility("default"))) void xlhost_test_fault(void) {
  volatile uintptr_t address = 8;
  *(volatile int*)address = 1;
}
__attribute__((visibility("default"))) void xlhost_test_call(void (*function)(void)) {
  function();
  __asm__ volatile("" ::: "memory");
}
#endif
#ifdef NEEDS_NEWER_SDK
/* A plugin built against an SDK with a function this host's SDK lacks (the mangled name of
   xlhost::sdk::from_a_newer_sdk(int)), where that SDK kept the ABI number. */
int _ZN6xlhost3sdk16from_a_newer_sdkEi(int);
__attribute__((visibility("default"))) int xlhost_test_calls_newer_sdk(int x) {
  return _ZN6xlhost3sdk16from_a_newer_sdkEi(x);
}
#endif
#ifdef NO_STAMP
__attribute__((visibility("default"))) int some_unrelated_function(void) { return 42; }
#else
__attribute__((visibility("default"))) const unsigned xlhost_sdk_abi_version = STAMP_ABI;
__attribute__((visibility("default"))) const char xlhost_torch_version[] = STAMP_TORCH;
#endif
