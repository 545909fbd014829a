#include "sample_printer.hpp"

#include <fstream>
#include <iostream>

#include "xlhost/core/data/chat.hpp"
#include "xlhost/core/util/error.hpp"
#include "xlhost/core/util/file_io.hpp"
#include "xlhost/core/util/printable_text.hpp"
#include "xlhost/core/util/progress.hpp"

namespace xlhost::host {

std::vector<std::string> read_prompts(const std::string& path, int64_t limit) {
  core::require_regular_file(path, "prompts");
  std::ifstream in(path);
  if (!in) throw core::UserError(path + ": cannot open prompts file");
  std::vector<std::string> prompts;
  std::string line;
  while (std::getline(in, line) && (limit <= 0 || static_cast<int64_t>(prompts.size()) < limit))
    if (!line.empty()) prompts.push_back(line);
  if (prompts.empty()) throw core::UserError(path + ": no prompts (expected one per line)");
  return prompts;
}

core::GenerateOptions generate_options(const core::GenerateSectionOptions& g, const core::Tokenizer& tokenizer,
                                       bool chat) {
  if (chat) core::require_chatml(tokenizer);
  core::GenerateOptions o;
  o.max_new_tokens = g.max_new_tokens, o.temperature = g.temperature, o.top_p = g.top_p;
  o.repetition_penalty = g.repetition_penalty, o.seed = static_cast<uint64_t>(g.seed);
  o.eos_id = chat ? tokenizer.special_id("<|im_end|>") : tokenizer.eos_id();
  return o;
}

void print_samples(sdk::Model& model, const core::Tokenizer& tokenizer, const std::vector<std::string>& prompts,
                   bool chat, const core::GenerateOptions& options, const torch::Device& device, std::ostream& out) {
  std::vector<std::vector<int64_t>> encoded;
  for (const auto& p : prompts) encoded.push_back(core::prompt_ids(tokenizer, p, chat));
  const auto report = core::generate_all(model, encoded, options, device);
  out << "\nsamples (temperature " << options.temperature << ", top-p " << options.top_p << ", at most "
            << options.max_new_tokens << " new tokens):\n";
  for (size_t i = 0; i < prompts.size(); ++i)
    out << "  " << core::printable_text(prompts[i]) << " ->"
        << core::printable_text(tokenizer.decode(report.generations[i].tokens))
        << (report.generations[i].hit_eos ? " <eos>" : " ...") << "\n";
  out << "  EOS rate " << core::format_fixed(report.eos_rate * 100, 1) << "%, mean length "
            << core::format_fixed(report.mean_new_tokens, 1) << " new tokens over " << prompts.size() << " prompts\n";
}

}  // namespace xlhost::host
