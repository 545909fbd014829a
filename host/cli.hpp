// Shared command-line plumbing of the xlhost subcommands.
#pragma once

#include <boost/program_options.hpp>

#include <atomic>
#include <string>
#include <vector>

namespace xlhost::host {

namespace po = boost::program_options;

// Parses `args` (the words after the subcommand). Returns false when --help was asked
// for, after printing `usage`, the description and the options.
bool parse_args(const std::vector<std::string>& args, const po::options_description& options,
                const po::positional_options_description& positional, const std::string& usage,
                const std::string& description, po::variables_map& vm);

// The options of the commands that read run records: --out DIR (default out).
po::options_description records_options(std::string& out_dir);

// The items one after another with `separator` between them.
std::string join(const std::vector<std::string>& items, const std::string& separator);

// `text` with every occurrence of `from` replaced by `to` (for file templates).
std::string replace_all(std::string text, const std::string& from, const std::string& to);

// Set by SIGINT/SIGTERM; training saves a checkpoint and exits 0 when it sees it.
extern std::atomic<bool> stop_requested;

int run_command(const std::vector<std::string>& args);
int eval_command(const std::vector<std::string>& args);
int generate_command(const std::vector<std::string>& args);
int export_command(const std::vector<std::string>& args);
int inspect_command(const std::vector<std::string>& args);
int serve_command(const std::vector<std::string>& args);
int exp_archive_command(const std::vector<std::string>& args);
int exp_show_command(const std::vector<std::string>& args);
int plugin_command(const std::vector<std::string>& args);
int plugin_new_command(const std::vector<std::string>& args);
int data_command(const std::vector<std::string>& args);
int tokenizer_command(const std::vector<std::string>& args);
int exp_command(const std::vector<std::string>& args);
int exp_serve_command(const std::vector<std::string>& args);

}  // namespace xlhost::host
