// `xlhost plugin new NAME`: a plugin folder that builds out of tree against the installed
// SDK: NAME.cpp (a copy of model_original), CMakeLists.txt, config.json and a ctest that
// runs `xlhost plugin check` on the result.
#include <filesystem>
#include <fstream>
#include <iostream>
#include <regex>

#include "cli.hpp"
#include "xlhost/core/util/error.hpp"

namespace xlhost::host {

extern const char* const kModelOriginalSource;
extern const char* const kQuickstartConfig;

namespace {

void write(const std::filesystem::path& path, const std::string& text) {
  std::ofstream out(path);
  out << text;
  if (!out) throw core::UserError(path.string() + ": cannot write");
}

}  // namespace

int plugin_new_command(const std::vector<std::string>& args) {
  po::options_description options("options");
  options.add_options()
      ("name", po::value<std::string>()->required(), "plugin name: lower_snake_case, becomes NAME.so")
      ("from", po::value<std::string>()->default_value("model_original"), "template (model_original)")
      ("dir,d", po::value<std::string>()->default_value("."), "where the NAME/ folder is created")
      ("force", "overwrite an existing folder's files");
  po::positional_options_description positional;
  positional.add("name", 1);
  po::variables_map vm;
  if (!parse_args(args, options, positional, "xlhost plugin new NAME [--dir DIR]",
                  "Writes DIR/NAME/ with NAME.cpp (a copy of model_original to change), a CMakeLists.txt\n"
                  "that builds NAME.so against the installed SDK (find_package(xlhost_sdk)), config.json\n"
                  "(a tiny model on the synthetic corpus) and a ctest running `xlhost plugin check`.\n"
                  "Then: cmake -S NAME -B NAME/build -DCMAKE_PREFIX_PATH=<xlhost prefix> && cmake --build NAME/build",
                  vm))
    return 0;
  const std::string name = vm["name"].as<std::string>();
  if (!std::regex_match(name, std::regex("[a-z_][a-z0-9_]*")))
    throw core::UserError("plugin name '" + name + "': use lower_snake_case letters, digits and _");
  if (vm["from"].as<std::string>() != "model_original")
    throw core::UserError("--from " + vm["from"].as<std::string>() + ": the only template is model_original");
  const auto dir = std::filesystem::path(vm["dir"].as<std::string>()) / name;
  if (std::filesystem::exists(dir) && !vm.count("force"))
    throw core::UserError(dir.string() + " exists (pass --force to overwrite its files)");
  std::filesystem::create_directories(dir);

  write(dir / (name + ".cpp"), replace_all(kModelOriginalSource, "model_original", name));
  write(dir / "CMakeLists.txt",
        "cmake_minimum_required(VERSION 3.18)\n"
        "project(" + name + " LANGUAGES CXX)\n\n"
        "# -DCMAKE_PREFIX_PATH=<where xlhost is installed> lets CMake find the SDK.\n"
        "find_package(xlhost_sdk REQUIRED)\n"
        "xlhost_add_plugin(" + name + " " + name + ".cpp)\n\n"
        "enable_testing()\n"
        "add_test(NAME " + name + "_conformance\n"
        "  COMMAND ${XLHOST_EXECUTABLE} plugin check $<TARGET_FILE:" + name + ">\n"
        "          --config ${CMAKE_CURRENT_SOURCE_DIR}/config.json)\n");
  // The quickstart baseline's config with the new plugin's id: same data, steps and
  // evaluation, so `xlhost exp compare` against the baseline's run is a fair comparison.
  const std::string config = replace_all(
      replace_all(kQuickstartConfig, "\"id\": \"0.0.1\"", "\"id\": \"0.9.0\""),
      "\"description\": \"tiny model_original on the synthetic facts corpus\"",
      "\"description\": \"" + name + ", first try\"");
  if (config.find("\"0.9.0\"") == std::string::npos || config.find(name + ", first try") == std::string::npos)
    throw std::logic_error("configs/quickstart.json no longer has the id and description plugin new replaces");
  write(dir / "config.json",
        "// The quickstart baseline's settings (configs/quickstart.json) on the synthetic corpus\n"
        "// (xlhost data synth --out data/synth), for a fair comparison with its run.\n" + config);
  std::cout << "wrote " << dir.string() << "/: " << name << ".cpp, CMakeLists.txt, config.json\n"
            << "next:\n"
            << "  cmake -S " << dir.string() << " -B " << (dir / "build").string()
            << " -DCMAKE_PREFIX_PATH=<xlhost install prefix>\n"
            << "  cmake --build " << (dir / "build").string() << "\n"
            << "  xlhost plugin check " << (dir / "build" / (name + ".so")).string() << " --config "
            << (dir / "config.json").string() << "\n";
  return 0;
}

}  // namespace xlhost::host
