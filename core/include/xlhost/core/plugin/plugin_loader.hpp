#pragma once

#include <memory>
#include <string>

#include "xlhost/sdk/plugin.hpp"

namespace boost::dll {
class shared_library;
}

namespace xlhost::core {

// A plugin whose ABI and LibTorch versions have been checked. Copies share the library;
// every model made by create() holds the library too, so it stays loaded while any of
// them lives, whatever happens to this handle.
class LoadedPlugin {
 public:
  const sdk::PluginDescriptor& descriptor() const { return descriptor_; }
  const std::string& path() const { return path_; }
  const std::string& torch_version() const { return torch_version_; }
  unsigned abi_version() const { return abi_version_; }
  // Whether the file was verified against the checksum its build wrote beside it
  // (NAME.so.md5; a plugin without one loads unverified).
  bool checksum_verified() const { return checksum_verified_; }

  // Throws UserError (naming the plugin) if the plugin rejects the config.
  std::shared_ptr<sdk::Model> create(const sdk::ModelConfig& config) const;

 private:
  friend LoadedPlugin load_plugin(const std::string& path);
  std::shared_ptr<boost::dll::shared_library> library_;
  sdk::FactoryFn* factory_ = nullptr;
  sdk::PluginDescriptor descriptor_;
  std::string path_, torch_version_;
  unsigned abi_version_ = 0;
  bool checksum_verified_ = false;
};

// Throws UserError with one line naming the file and the problem: missing file, not a
// shared object, damaged since its build, not an xlhost plugin, SDK ABI or LibTorch
// version mismatch.
LoadedPlugin load_plugin(const std::string& path);

// "major.minor" of a version string, the part that must match between host and plugin.
std::string torch_major_minor(const std::string& version);

}  // namespace xlhost::core
