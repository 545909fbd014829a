/* Shared objects that look like xlhost plugins to different degrees, for loader tests. */
#ifdef NO_STAMP
__attribute__((visibility("default"))) int some_unrelated_function(void) { return 42; }
#else
__attribute__((visibility("default"))) const unsigned xlhost_sdk_abi_version = STAMP_ABI;
__attribute__((visibility("default"))) const char xlhost_torch_version[] = STAMP_TORCH;
#endif
