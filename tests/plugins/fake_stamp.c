/* Shared objects that look like xlhost plugins to different degrees, for loader tests. */
#ifdef CRASH_ON_LOAD
/* What a damaged file's initialisation code does to the process that loads it (a null
   store would be UB, which GCC deletes together with the function). */
#include <signal.h>
__attribute__((constructor)) static void crash(void) { raise(SIGSEGV); }
#endif
#ifdef NO_STAMP
__attribute__((visibility("default"))) int some_unrelated_function(void) { return 42; }
#else
__attribute__((visibility("default"))) const unsigned xlhost_sdk_abi_version = STAMP_ABI;
__attribute__((visibility("default"))) const char xlhost_torch_version[] = STAMP_TORCH;
#endif
