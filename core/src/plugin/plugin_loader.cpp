#include "xlhost/core/plugin/plugin_loader.hpp"

#include <boost/core/demangle.hpp>
#include <boost/dll/shared_library.hpp>

#include <dlfcn.h>
#include <elf.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <thread>

#include "xlhost/core/plugin/plugin_crash_report.hpp"
#include "xlhost/core/util/error.hpp"
#include "xlhost/core/util/file_io.hpp"
#include "xlhost/core/util/md5.hpp"

namespace xlhost::core {

std::string torch_major_minor(const std::string& version) {
  auto first = version.find('.');
  if (first == std::string::npos) return version;
  auto second = version.find('.', first + 1);
  return version.substr(0, second);
}

namespace {

// dlopen maps a shared object's segments as its headers say; a truncated file then
// faults (SIGBUS) on first touch. Headers and segments are checked against the file first.
void check_elf_layout(const std::string& path) {
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  const auto size = static_cast<uint64_t>(in.tellg());
  auto read_at = [&](uint64_t offset, void* into, size_t bytes) {
    if (offset > size || bytes > size - offset) return false;
    in.seekg(static_cast<std::streamoff>(offset));
    in.read(static_cast<char*>(into), static_cast<std::streamsize>(bytes));
    return static_cast<bool>(in);
  };
  const std::string broken = path + ": cannot load as a shared object (";
  Elf64_Ehdr header{};
  if (!read_at(0, &header, sizeof header) || std::memcmp(header.e_ident, ELFMAG, SELFMAG) != 0)
    throw UserError(broken + "no ELF header)");
  if (header.e_ident[EI_CLASS] != ELFCLASS64 || header.e_phentsize != sizeof(Elf64_Phdr))
    throw UserError(broken + "not a 64-bit ELF file)");
  for (uint16_t i = 0; i < header.e_phnum; ++i) {
    Elf64_Phdr segment{};
    if (!read_at(header.e_phoff + uint64_t{i} * sizeof segment, &segment, sizeof segment))
      throw UserError(broken + "program headers beyond the end: truncated?)");
    if (segment.p_offset > size || segment.p_filesz > size - segment.p_offset)
      throw UserError(broken + "segment " + std::to_string(i) + " ends beyond the file's " + std::to_string(size) +
                      " bytes: truncated?)");
  }
  if (header.e_shoff != 0 && (header.e_shoff > size || uint64_t{header.e_shnum} * header.e_shentsize > size - header.e_shoff))
    throw UserError(broken + "section headers beyond the end: truncated?)");
}

// The build writes NAME.so.md5 beside each plugin (cmake/xlhost_plugin_checksum.cmake).
// Returns whether there was one to verify; throws when the file no longer matches it.
bool verify_build_checksum(const std::string& path) {
  const std::string sidecar = path + ".md5";
  if (!std::filesystem::is_regular_file(sidecar)) return false;
  const std::string recorded = read_text_file(sidecar, "plugin checksum").substr(0, 32);
  const std::string actual = md5_file(path);
  if (actual != recorded)
    throw UserError(path + ": damaged: its MD5 is " + actual + ", its build recorded " + recorded + " in " + sidecar +
                    " (rebuild the plugin; one rebuilt without the SDK's xlhost_add_plugin: delete " + sidecar + ")");
  return true;
}

// Loads the library once in a child process first: a damaged file whose initialisation
// code crashes (SIGSEGV, SIGBUS) then costs the child, and the host reports it.
void probe_load_in_child(const std::string& path) {
  const pid_t child = fork();
  if (child < 0) return;  // no probe; the load below is then the only try
  if (child == 0) {
    default_crash_signals();
    void* handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
    _exit(handle ? 0 : 1);  // a failed dlopen is reported by the real load, with its message
  }
  int status = 0;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (waitpid(child, &status, WNOHANG) == 0) {
    if (std::chrono::steady_clock::now() > deadline) {
      kill(child, SIGKILL);
      waitpid(child, &status, 0);
      throw UserError(path + ": loading it did not finish within 60 s");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  if (WIFSIGNALED(status))
    throw UserError(path + ": cannot load as a shared object (loading it crashed with " + strsignal(WTERMSIG(status)) +
                    "; the file may be damaged: rebuild it)");
}

// dlopen's "undefined symbol: NAME" as what the plugin needs: a plugin built against another
// SDK (or LibTorch) than the host's, one that calls a function the host's lacks.
std::string missing_symbol(const std::string& path, const std::string& dlopen_error, const std::string& rebuild) {
  const std::string marker = "undefined symbol: ";
  const auto at = dlopen_error.find(marker);
  if (at == std::string::npos) return "";
  const auto from = at + marker.size();
  const auto name = dlopen_error.substr(from, dlopen_error.find_first_of(" ,()\n", from) - from);
  return path + ": needs " + boost::core::demangle(name.c_str()) +
         ", which this host does not have: it was built against another xlhost SDK or LibTorch" + rebuild;
}

}  // namespace

LoadedPlugin load_plugin(const std::string& path) {
  const std::string rebuild = "; rebuild it against this host's SDK (see CONTRIBUTING.md)";
  if (!std::filesystem::exists(path)) throw UserError(path + ": no such plugin file");
  if (std::filesystem::is_directory(path)) throw UserError(path + ": is a directory, expected a plugin .so file");
  check_elf_layout(path);
  LoadedPlugin plugin;
  plugin.checksum_verified_ = verify_build_checksum(path);
  probe_load_in_child(path);

  plugin.path_ = path;
  try {
    // The code range is released just before the library is unloaded, when this handle
    // and the last model made from it are gone.
    plugin.library_ = std::shared_ptr<boost::dll::shared_library>(
        // Bound now: a symbol the host lacks is then this error, not the dynamic linker ending
        // the process at the plugin's first call to it.
        new boost::dll::shared_library(path, boost::dll::load_mode::rtld_now | boost::dll::load_mode::rtld_local),
        [](boost::dll::shared_library* unloading) {
          forget_plugin_code(unloading->native());
          delete unloading;
        });
  } catch (const std::exception& e) {
    const std::string needs = missing_symbol(path, e.what(), rebuild);
    throw UserError(needs.empty() ? path + ": cannot load as a shared object (" + e.what() + ")" : needs);
  }
  register_plugin_code(path, plugin.library_->native(), plugin.checksum_verified_);  // a crash in its code now names it
  auto& lib = *plugin.library_;
  if (!lib.has("xlhost_sdk_abi_version") || !lib.has("xlhost_torch_version"))
    throw UserError(path + ": not an xlhost plugin (no xlhost_sdk_abi_version symbol; a plugin uses XLHOST_PLUGIN)");

  plugin.abi_version_ = lib.get<const unsigned>("xlhost_sdk_abi_version");
  plugin.torch_version_ = &lib.get<const char>("xlhost_torch_version");
  if (plugin.abi_version_ != XLHOST_SDK_ABI_VERSION)
    throw UserError(path + ": built against xlhost SDK ABI " + std::to_string(plugin.abi_version_) +
                    ", this host has ABI " + std::to_string(XLHOST_SDK_ABI_VERSION) + rebuild);
  if (torch_major_minor(plugin.torch_version_) != torch_major_minor(TORCH_VERSION))
    throw UserError(path + ": built against LibTorch " + plugin.torch_version_ + ", this host uses LibTorch " +
                    TORCH_VERSION + rebuild);
  if (!lib.has("xlhost_plugin_descriptor") || !lib.has("xlhost_create_model"))
    throw UserError(path + ": xlhost plugin without descriptor or factory symbol" + rebuild);

  auto& describe = lib.get_alias<sdk::DescriptorFn>("xlhost_plugin_descriptor");
  plugin.factory_ = &lib.get_alias<sdk::FactoryFn>("xlhost_create_model");
  try {
    plugin.descriptor_ = describe();
  } catch (const std::exception& e) {
    throw UserError(path + ": plugin descriptor failed: " + e.what());
  }
  return plugin;
}

std::shared_ptr<sdk::Model> LoadedPlugin::create(const sdk::ModelConfig& config) const {
  sdk::Model* raw = nullptr;
  try {
    raw = factory_(config);
  } catch (const c10::Error& e) {
    throw UserError(descriptor_.name + " (" + path_ + "): cannot build the model: " + e.what_without_backtrace());
  } catch (const std::exception& e) {
    throw UserError(descriptor_.name + " (" + path_ + "): cannot build the model: " + e.what());
  }
  if (!raw) throw UserError(descriptor_.name + " (" + path_ + "): factory returned no model");
  // The deleter owns a reference to the library: the model's destructor is plugin code.
  auto library = library_;
  return std::shared_ptr<sdk::Model>(raw, [library](sdk::Model* m) { delete m; });
}

}  // namespace xlhost::core
