#include "sample_printer.hpp"

#include <filesystem>
#include <fstream>
#include <sstream>
#include <iostream>

#include "xlhost/core/data/chat.hpp"
#include "xlhost/core/eval/generation_quality.hpp"
#include "xlhost/core/eval/trained_model.hpp"
#include "xlhost/core/run/run_directory.hpp"
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

core::GenerationReport print_samples(sdk::Model& model, const core::Tokenizer& tokenizer,
                                     const std::vector<std::string>& prompts, bool chat,
                                     const core::GenerateOptions& options, const torch::Device& device, std::ostream& out) {
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
  return report;
}

namespace {

// The samples' perplexity under generate.reference_run's model: a run id under run.out_dir,
// or a run folder.
void score_by_reference(core::GenerationQuality& quality, const core::GenerationReport& report,
                        const std::vector<std::string>& prompts, const core::Tokenizer& tokenizer,
                        const core::Options& options, std::ostream& out) {
  const auto& name = options.generate.reference_run;
  const auto folder = std::filesystem::is_directory(name) ? std::filesystem::path(name) : std::filesystem::path(options.run.out_dir) / name;
  if (!std::filesystem::is_directory(folder))
    throw core::UserError("generate.reference_run " + name + ": no run folder " + folder.string());
  auto reference = core::load_trained_model(folder.string(), "", {});
  std::vector<std::string> continuations;
  for (const auto& g : report.generations) continuations.push_back(tokenizer.decode(g.tokens));
  quality.reference_run = name;
  quality.reference_perplexity = core::reference_perplexity(*reference.model, *reference.tokenizer, prompts, continuations,
                                                            reference.config.options.data.seq_len, reference.device);
  out << "  perplexity under " << name << ": " << core::format_fixed(quality.reference_perplexity, 2) << "\n";
}

}  // namespace

core::GenerationQuality write_samples(const core::TrainSummary& summary, const core::Options& options) {
  const auto& g = options.generate;
  if (summary.interrupted || g.prompts_path.empty() || g.samples <= 0) return {};
  auto tokenizer = core::make_tokenizer(options.data.tokenizer);
  std::ostringstream samples;
  const bool chat = options.data.format == core::DocumentFormat::kChat;
  const auto prompts = read_prompts(g.prompts_path, g.samples);
  const auto report =
      print_samples(*summary.model, *tokenizer, prompts, chat, generate_options(g, *tokenizer, chat), summary.device, samples);
  auto quality = core::generation_quality(report);
  samples << "  distinct-1 " << core::format_fixed(quality.distinct_1, 3) << ", distinct-2 "
          << core::format_fixed(quality.distinct_2, 3) << ", repeated 4-grams " << core::format_fixed(quality.repetition_4, 3)
          << "\n";
  if (!g.reference_run.empty()) score_by_reference(quality, report, prompts, *tokenizer, options, samples);
  std::cout << samples.str();
  core::write_file_atomically(core::RunDirectory(summary.run_dir).samples().string(), samples.str());
  return quality;
}

}  // namespace xlhost::host
