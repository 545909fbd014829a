#include "cli.hpp"

#include <iostream>

#include "xlhost/core/util/error.hpp"

namespace xlhost::host {

std::atomic<bool> stop_requested{false};

bool parse_args(const std::vector<std::string>& args, const po::options_description& options,
                const po::positional_options_description& positional, const std::string& usage,
                const std::string& description, po::variables_map& vm) {
  po::options_description all(options);
  all.add_options()("help,h", "show this help");
  try {
    po::store(po::command_line_parser(args).options(all).positional(positional).run(), vm);
  } catch (const po::error& e) {
    throw core::UserError(std::string(e.what()) + " (see '" + usage.substr(0, usage.find(" [")) + " --help')");
  }
  if (vm.count("help")) {
    std::cout << "usage: " << usage << "\n\n" << description << "\n\n" << all << "\n";
    return false;
  }
  po::notify(vm);
  return true;
}

po::options_description records_options(std::string& out_dir) {
  po::options_description options("options");
  options.add_options()("out,o", po::value(&out_dir)->default_value("out"), "directory holding <id>/record.json");
  return options;
}

std::string join(const std::vector<std::string>& items, const std::string& separator) {
  std::string out;
  for (const auto& item : items) out += (out.empty() ? "" : separator) + item;
  return out;
}

std::string replace_all(std::string text, const std::string& from, const std::string& to) {
  for (size_t at = 0; (at = text.find(from, at)) != std::string::npos; at += to.size()) text.replace(at, from.size(), to);
  return text;
}

}  // namespace xlhost::host
