// xlhost tokenizer train|encode|decode|info: Hugging Face byte-level BPE tokenizers.
#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <chrono>
#include <fstream>
#include <iostream>
#include <sstream>

#include "cli.hpp"
#include "xlhost/core/data/bpe_trainer.hpp"
#include "xlhost/core/data/json_lines.hpp"
#include "xlhost/core/data/tokenizer_json.hpp"
#include "xlhost/core/util/error.hpp"
#include "xlhost/core/util/json.hpp"
#include "xlhost/core/util/parallel.hpp"
#include "xlhost/core/util/printable_text.hpp"
#include "xlhost/core/util/progress.hpp"

namespace xlhost::host {

namespace {

using Clock = std::chrono::steady_clock;

std::vector<std::string> split_list(const std::string& s) {
  std::vector<std::string> parts;
  std::stringstream in(s);
  for (std::string part; std::getline(in, part, ',');)
    if (!part.empty()) parts.push_back(part);
  return parts;
}

void print_ids(const std::vector<int64_t>& ids, std::ostream& out) {
  out << "[";
  for (size_t i = 0; i < ids.size(); ++i) out << (i ? ", " : "") << ids[i];
  out << "]\n";
}

int train(const std::vector<std::string>& args) {
  core::BpeTrainingOptions o;
  std::string out_dir, special;
  po::options_description options("options");
  options.add_options()
      ("corpus", po::value(&o.corpus)->multitoken()->required(), "JSON-lines files: {\"text\": ...} or chat lines {\"conversations\": [...]}")
      ("vocab-size", po::value(&o.vocab_size)->default_value(6400), "tokens in all: special tokens, 256 bytes, merges")
      ("special", po::value(&special)->default_value("<|endoftext|>,<|im_start|>,<|im_end|>"),
       "comma-separated special tokens, ids 0, 1, ... in this order")
      ("add-prefix-space", po::bool_switch(&o.add_prefix_space), "prefix a space to text that does not start with one")
      ("skip-malformed", po::bool_switch(&o.skip_malformed), "skip malformed corpus lines instead of stopping")
      ("threads", po::value(&o.threads)->default_value(0), "threads for counting words; 0 = every core")
      ("out,o", po::value(&out_dir)->required(), "output directory for tokenizer.json and tokenizer_config.json");
  po::variables_map vm;
  if (!parse_args(args, options, {}, "xlhost tokenizer train --corpus a.jsonl [b.jsonl ...] --out DIR [options]",
                  "Trains a byte-level BPE tokenizer the way Hugging Face tokenizers' BpeTrainer does\n"
                  "(special tokens first, then the 256 byte characters, then merges of the most frequent\n"
                  "pair) and writes tokenizer.json and tokenizer_config.json that `tokenizers` and\n"
                  "`transformers` load. The same corpus gives the same tokenizer, whatever the thread count.",
                  vm))
    return 0;
  o.special = split_list(special);
  core::BpeTrainingReport report;
  const auto definition = core::train_bpe(o, std::cerr, &report);
  core::write_tokenizer_files(definition, out_dir);
  std::cout << "wrote " << out_dir << "/tokenizer.json: " << definition.vocab.size() << " tokens (" << o.special.size()
            << " special, 256 bytes, " << report.merges << " merges)\n"
            << "corpus: " << report.documents << " documents, " << core::format_count(static_cast<double>(report.bytes))
            << "B, " << report.distinct_words << " distinct words; counting words "
            << core::format_fixed(report.count_seconds, 2) << " s, merging " << core::format_fixed(report.merge_seconds, 2)
            << " s\n";
  if (static_cast<int64_t>(definition.vocab.size()) < o.vocab_size)
    std::cout << "note: the corpus ran out of pairs before --vocab-size " << o.vocab_size << "\n";
  return 0;
}

int encode(const std::vector<std::string>& args) {
  std::string tokenizer_path, jsonl, text;
  int threads = 0;
  po::options_description options("options");
  options.add_options()
      ("tokenizer,t", po::value(&tokenizer_path)->required(), "tokenizer.json, or \"byte\"")
      ("jsonl", po::value(&jsonl), "JSON-lines file: one id array per line's \"text\"")
      ("text", po::value(&text), "one string to encode")
      ("threads", po::value(&threads)->default_value(0), "threads for --jsonl; 0 = every core");
  po::variables_map vm;
  if (!parse_args(args, options, {}, "xlhost tokenizer encode --tokenizer PATH (--jsonl FILE | --text STRING)",
                  "Prints the ids of each text as a JSON array, one line per input, with no special tokens\n"
                  "added (as `tokenizers`' encode(text).ids for a tokenizer without post-processor).\n"
                  "With --jsonl, the throughput goes to stderr.",
                  vm))
    return 0;
  if (vm.count("jsonl") == vm.count("text"))
    throw core::UserError("tokenizer encode: give exactly one of --jsonl and --text");
  const auto tokenizer = core::make_tokenizer(tokenizer_path);
  if (vm.count("text")) {
    print_ids(tokenizer->encode(text), std::cout);
    return 0;
  }
  const int workers = core::worker_threads(threads);
  const auto started = Clock::now();
  size_t bytes = 0;
  auto read_text = [](const rapidjson::Value& line, std::vector<std::string>& texts) {
    texts.emplace_back();
    auto problem = core::read_text_field(line, texts.back());
    if (!problem.empty()) texts.pop_back();
    return problem;
  };
  auto encode_block = [&](std::vector<std::string>& texts) {
    std::vector<std::vector<int64_t>> ids(texts.size());
    core::parallel_for(texts.size(), workers, [&](size_t i, int) { ids[i] = tokenizer->encode(texts[i]); });
    for (size_t i = 0; i < texts.size(); ++i) {
      print_ids(ids[i], std::cout);
      bytes += texts[i].size();
    }
  };
  const auto report = core::read_json_object_blocks<std::string>(jsonl, false, 4u << 20, read_text, encode_block);
  const double seconds = core::seconds_since(started);
  std::cerr << "encoded " << report.documents << " texts, " << core::format_count(static_cast<double>(bytes)) << "B in "
            << core::format_fixed(seconds, 3) << " s: "
            << core::format_fixed(static_cast<double>(bytes) / 1e6 / seconds, 2) << " MB/s on " << workers
            << " thread(s)\n";
  return 0;
}

std::vector<int64_t> ids_of(const rapidjson::Value& doc, const std::string& source) {
  if (!doc.IsArray()) throw core::UserError(source + ": expected a JSON array of ids, got " + core::describe_json(doc));
  std::vector<int64_t> ids;
  for (const auto& v : doc.GetArray()) {
    if (!v.IsInt64()) throw core::UserError(source + ": " + core::describe_json(v) + " is not an id");
    ids.push_back(v.GetInt64());
  }
  return ids;
}

int decode(const std::vector<std::string>& args) {
  std::string tokenizer_path, ids_text, jsonl;
  po::options_description options("options");
  options.add_options()
      ("tokenizer,t", po::value(&tokenizer_path)->required(), "tokenizer.json, or \"byte\"")
      ("ids", po::value(&ids_text), "a JSON array of ids, e.g. \"[72, 105]\"")
      ("jsonl", po::value(&jsonl), "a file with one JSON array of ids per line (as encode --jsonl prints)");
  po::positional_options_description positional;
  positional.add("ids", 1);
  po::variables_map vm;
  if (!parse_args(args, options, positional, "xlhost tokenizer decode --tokenizer PATH (IDS | --jsonl FILE)",
                  "Prints the text of a JSON array of ids (special tokens dropped; invalid UTF-8 becomes\n"
                  "U+FFFD). With --jsonl, one JSON string per input line, so that newlines stay visible.",
                  vm))
    return 0;
  if (vm.count("jsonl") == vm.count("ids")) throw core::UserError("tokenizer decode: give exactly one of IDS and --jsonl");
  const auto tokenizer = core::make_tokenizer(tokenizer_path);
  if (vm.count("ids")) {
    std::cout << tokenizer->decode(ids_of(core::parse_json(ids_text, "--ids"), "--ids")) << "\n";
    return 0;
  }
  std::ifstream in(jsonl);
  if (!in) throw core::UserError(jsonl + ": cannot open");
  size_t line_no = 0;
  for (std::string line; std::getline(in, line);) {
    const std::string where = jsonl + ":" + std::to_string(++line_no);
    const std::string text = tokenizer->decode(ids_of(core::parse_json(line, where), where));
    rapidjson::StringBuffer buffer;
    rapidjson::Writer<rapidjson::StringBuffer> w(buffer);
    w.String(text.data(), static_cast<rapidjson::SizeType>(text.size()));
    std::cout << buffer.GetString() << "\n";
  }
  return 0;
}

std::string describe(const core::PreTokenizerStep& step) {
  if (step.kind == core::PreTokenizerStep::kSplit) return "Split /" + step.pattern + "/ (isolated)";
  return std::string("ByteLevel add_prefix_space=") + (step.add_prefix_space ? "true" : "false") +
         " use_regex=" + (step.use_regex ? "true" : "false");
}

int info(const std::vector<std::string>& args) {
  std::string tokenizer_path;
  po::options_description options("options");
  options.add_options()("tokenizer,t", po::value(&tokenizer_path)->required(), "tokenizer.json, or \"byte\"");
  po::positional_options_description positional;
  positional.add("tokenizer", 1);
  po::variables_map vm;
  if (!parse_args(args, options, positional, "xlhost tokenizer info PATH",
                  "Vocabulary size, special tokens, merges and pre-tokenizer of a tokenizer.", vm))
    return 0;
  const auto tokenizer = core::make_tokenizer(tokenizer_path);
  auto name = [&](int64_t id) { return std::to_string(id) + " " + core::printable_text(tokenizer->token_bytes(id)); };
  std::cout << "tokenizer     " << tokenizer_path << "\nvocabulary    " << tokenizer->vocab_size() << " ids\n"
            << "bos           " << name(tokenizer->bos_id()) << "\neos           " << name(tokenizer->eos_id())
            << "\npad           " << name(tokenizer->pad_id()) << "\nfingerprint   " << tokenizer->fingerprint() << "\n";
  const auto* bpe = dynamic_cast<const core::BpeTokenizer*>(tokenizer.get());
  if (!bpe) return 0;
  const auto& d = bpe->definition();
  std::cout << "merges        " << d.merges.size() << (d.ignore_merges ? " (ignore_merges: whole words first)" : "") << "\n";
  for (const auto& step : d.pre_tokenizer) std::cout << "pre-tokenizer " << describe(step) << "\n";
  for (const auto& t : d.added)
    std::cout << "added token   " << t.id << " " << t.content << (t.special ? " (special)" : "") << "\n";
  const bool chat = d.chatml && bpe->special_id("<|im_start|>") >= 0 && bpe->special_id("<|im_end|>") >= 0;
  std::cout << "chat          " << (chat ? "ChatML" : "unavailable (data.format=chat needs ChatML tokens)") << "\n";
  return 0;
}

}  // namespace

int tokenizer_command(const std::vector<std::string>& args) {
  const std::string sub = args.empty() ? "" : args[0];
  const std::vector<std::string> rest(args.begin() + (args.empty() ? 0 : 1), args.end());
  if (sub == "train") return train(rest);
  if (sub == "encode") return encode(rest);
  if (sub == "decode") return decode(rest);
  if (sub == "info") return info(rest);
  if (!sub.empty() && sub != "--help" && sub != "-h")
    throw core::UserError("unknown tokenizer subcommand '" + sub + "' (available: train, encode, decode, info)");
  std::cout << "usage: xlhost tokenizer train|encode|decode|info [options]\n\n"
               "Hugging Face byte-level BPE tokenizers (tokenizer.json), as data.tokenizer uses them:\n"
               "  train   train one on JSON-lines corpora (--corpus, --vocab-size, --special, --out)\n"
               "  encode  ids of --text or of every line of --jsonl, one JSON array per line\n"
               "  decode  text of a JSON array of ids, or of every line of --jsonl\n"
               "  info    vocabulary, special tokens, merges, pre-tokenizer\n";
  return args.empty() ? 2 : 0;
}

}  // namespace xlhost::host
