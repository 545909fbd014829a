// Which library the binary's libstdc++ calls bind to. The torch wheels export statically
// linked copies of parts of libstdc++ (std::filesystem among them); the top-level
// CMakeLists.txt puts libstdc++ first in every binary's needed list so that xlhost's calls run
// on the real one (LibTorch 2.11's copy of remove_all jumps to address 0).
#include <dlfcn.h>
#include <gtest/gtest.h>

#include <cstdint>
#include <filesystem>
#include <string>

TEST(Linking, StdFilesystemIsLibstdcxxsNotLibTorchsCopy) {
  using RemoveAll = std::uintmax_t (*)(const std::filesystem::path&);
  const RemoveAll remove_all = &std::filesystem::remove_all;
  Dl_info info{};
  ASSERT_NE(dladdr(reinterpret_cast<void*>(remove_all), &info), 0);
  ASSERT_NE(info.dli_fname, nullptr);
  EXPECT_NE(std::string(info.dli_fname).find("libstdc++.so"), std::string::npos) << "bound in " << info.dli_fname;
}
