// Byte-level BPE tokenizers: tokenizer.json errors, encoding by hand-checkable merges, the
// chat loss mask from rendering to gradient. Agreement with Hugging Face tokenizers on a
// large multilingual corpus is tests/python/tokenizer_oracle.py.
#include <gtest/gtest.h>
#include <rapidjson/document.h>

#include <cmath>
#include <sstream>

#include "test_support.hpp"
#include "xlhost/core/data/bpe_trainer.hpp"
#include "xlhost/core/data/chat.hpp"
#include "xlhost/core/data/tokenizer_json.hpp"
#include "xlhost/core/data/window_batch.hpp"
#include "xlhost/core/eval/evaluation.hpp"
#include "xlhost/core/train/trainer.hpp"
#include "xlhost/core/util/error.hpp"
#include "xlhost/core/util/file_io.hpp"

using namespace xlhost;
using test::TempDir;
using test::write_text;
using test::error_of;

namespace {

// <|endoftext|> 0, <|im_start|> 1, <|im_end|> 2, bytes 3..258, then the merges
// "h e" → 259 "he", "l l" → 260 "ll", "he ll" → 261 "hell", "Ġ w" → 262 "Ġw".
core::BpeDefinition small_definition() {
  core::BpeDefinition d;
  for (const char* s : {"<|endoftext|>", "<|im_start|>", "<|im_end|>"}) {
    d.added.push_back({s, static_cast<int64_t>(d.vocab.size()), true});
    d.vocab.push_back(s);
  }
  for (int b = 0; b < 256; ++b) d.vocab.push_back(core::byte_level_char(static_cast<uint8_t>(b)));
  auto merge = [&](const std::string& a, const std::string& b) {
    auto id = [&](const std::string& t) { return static_cast<int32_t>(std::find(d.vocab.begin(), d.vocab.end(), t) - d.vocab.begin()); };
    d.merges.emplace_back(id(a), id(b));
    d.vocab.push_back(a + b);
  };
  merge("h", "e"), merge("l", "l"), merge("he", "ll"), merge("Ġ", "w");
  d.pre_tokenizer = {core::PreTokenizerStep{}};
  d.bos = "<|im_start|>", d.eos = "<|im_end|>", d.pad = "<|endoftext|>";
  return d;
}

int64_t byte_id(char c) { return 3 + static_cast<unsigned char>(c); }


}  // namespace

TEST(BpeTokenizer, MergesByRankAndCutsAtSpecialTokens) {
  const core::BpeTokenizer tok(small_definition(), "test");
  // "hello": h e l l o → he l l o → he ll o → hell o
  EXPECT_EQ(tok.encode("hello"), (std::vector<int64_t>{261, byte_id('o')}));
  // " world" is one word (the GPT-2 pattern keeps the space): Ġ w → Ġw, then o r l d
  EXPECT_EQ(tok.encode("hello world"),
            (std::vector<int64_t>{261, byte_id('o'), 262, byte_id('o'), byte_id('r'), byte_id('l'), byte_id('d')}));
  // Special tokens are matched before pre-tokenisation, wherever they are.
  EXPECT_EQ(tok.encode("he<|im_end|>he"), (std::vector<int64_t>{259, 2, 259}));
  EXPECT_EQ(tok.decode({1, 261, byte_id('o'), 2}), "hello") << "special tokens are dropped";
  EXPECT_EQ(tok.decode({byte_id('\xe4'), byte_id('\xb8')}), "\xEF\xBF\xBD") << "a cut-short sequence is one U+FFFD";
  EXPECT_EQ(tok.bos_id(), 1);
  EXPECT_EQ(tok.eos_id(), 2);
  EXPECT_EQ(tok.pad_id(), 0);
  EXPECT_EQ(tok.token_bytes(262), " w");
  EXPECT_EQ(tok.token_bytes(2), "<|im_end|>");
}

TEST(BpeTokenizer, InvalidUtf8IsAnErrorNotACrash) {
  const core::BpeTokenizer tok(small_definition(), "test");
  EXPECT_NE(error_of([&] { tok.encode("ok \xff\xfe bad"); }).find("not valid UTF-8"), std::string::npos);
}

TEST(TokenizerJson, WrittenFilesLoadBackToTheSameIds) {
  TempDir dir;
  core::write_tokenizer_files(small_definition(), dir / "tok");
  const auto loaded = core::load_tokenizer_json(dir / "tok/tokenizer.json");
  const core::BpeTokenizer original(small_definition(), "test");
  for (const std::string text : {"hello world", "<|im_start|>user\nhell<|im_end|>", "wheel  \n\n 123 ünïcode 世界"})
    EXPECT_EQ(loaded->encode(text), original.encode(text)) << text;
  EXPECT_EQ(loaded->eos_id(), 2) << "tokenizer_config.json names the eos token";
  EXPECT_EQ(loaded->fingerprint(), core::load_tokenizer_json(dir / "tok/tokenizer.json")->fingerprint());
}

TEST(TokenizerJson, EveryBadFileIsOneClearError) {
  TempDir dir;
  core::write_tokenizer_files(small_definition(), dir / "tok");
  const std::string good = core::read_text_file(dir / "tok/tokenizer.json");
  struct Case {
    std::string from, to, expected;
  };
  const std::vector<Case> cases = {
      {"", "", "invalid JSON"},  // truncated: see below
      {"\"type\": \"BPE\"", "\"type\": \"WordPiece\"", "model.type is string \"WordPiece\""},
      {"\"normalizer\": null", "\"normalizer\": {\"type\": \"NFC\"}", "normalizer is an object"},
      {"\"post_processor\": null", "\"post_processor\": {\"type\": \"TemplateProcessing\"}",
       "post_processor.type is string \"TemplateProcessing\""},
      {"\"byte_fallback\": false", "\"byte_fallback\": true", "model.byte_fallback is true"},
      {"\"dropout\": null", "\"dropout\": 0.1", "model.dropout is number 0.1"},
      {"\"truncation\": null", "\"truncation\": {\"max_length\": 8}", "truncation is an object"},
      {"\"lstrip\": false", "\"lstrip\": true", "added_tokens[0].lstrip is true"},
      {"\"pre_tokenizer\": {\n    \"type\": \"ByteLevel\"", "\"pre_tokenizer\": {\n    \"type\": \"Metaspace\"",
       "pre_tokenizer.type is string \"Metaspace\""},
      {"\"decoder\": {\n    \"type\": \"ByteLevel\"", "\"decoder\": {\n    \"type\": \"WordPiece\"", "decoder is an object"},
      {"[\"h\", \"e\"]", "[\"h\", \"q\", \"e\"]", "model.merges[0] is an array"},
      {"[\"h\", \"e\"]", "\"h e x\"", "expected two tokens separated by one space"},
      {"[\"h\", \"e\"]", "[\"h\", \"\xE2\x82\xAC\"]", "is not in model.vocab"},
      {"\"he\": 259", "\"he\": -4", "id -4 out of range"},
      {"\"he\": 259", "\"he\": \"259\"", "expected an id"},
      {"\"ignore_merges\": false", "\"ignore_merges\": false, \"merge_ranks_v2\": 1", "model.merge_ranks_v2 is a field"},
  };
  for (size_t i = 0; i < cases.size(); ++i) {
    std::string text = good;
    if (i == 0) {
      text = good.substr(0, good.size() / 2);
    } else {
      const auto at = text.find(cases[i].from);
      ASSERT_NE(at, std::string::npos) << "the written file has no " << cases[i].from;
      text.replace(at, cases[i].from.size(), cases[i].to);
    }
    write_text(dir / "tok/tokenizer.json", text);
    const std::string error = error_of([&] { core::load_tokenizer_json(dir / "tok/tokenizer.json"); });
    EXPECT_NE(error.find(cases[i].expected), std::string::npos) << "case " << i << ": " << error;
    EXPECT_NE(error.find(dir / "tok/tokenizer.json"), std::string::npos) << "case " << i << " names the file: " << error;
    EXPECT_EQ(error.find('\n'), std::string::npos) << "one line: " << error;
  }
  EXPECT_NE(error_of([&] { core::make_tokenizer(dir / "missing.json"); }).find("neither \"byte\" nor"), std::string::npos);
}

TEST(BpeTrainer, LearnsTheMostFrequentPairsAndNeverMergesSpecialTokens) {
  TempDir dir;
  write_text(dir / "c.jsonl",
             "{\"text\": \"low lower lowest<|endoftext|>low\"}\n{\"text\": \"newest newer low\"}\n"
             "{\"conversations\": [{\"role\": \"user\", \"content\": \"low\"}, {\"role\": \"assistant\", \"content\": \"new\"}]}\n");
  core::BpeTrainingOptions o;
  o.corpus = {dir / "c.jsonl"};
  o.special = {"<|endoftext|>", "<|im_start|>", "<|im_end|>"};
  o.vocab_size = 259 + 3;
  o.threads = 2;
  const auto d = core::train_bpe(o, test::discard());
  ASSERT_EQ(d.vocab.size(), 262u);
  // Words: "low" x3 (one from the chat line), " low" x2, " lower", " lowest", "newest", " newer",
  // "new". "l o" and "o w" occur in every low-word (8 times each); the tie goes to the
  // smaller pair of ids, "l o".
  EXPECT_EQ(d.vocab[259], "lo");
  EXPECT_EQ(d.vocab[260], "low");
  for (const auto& token : d.vocab) EXPECT_EQ(token.find("<|endoftext|>", 1), std::string::npos);
  const core::BpeTokenizer tok(d, "trained");
  EXPECT_EQ(tok.encode("low<|endoftext|>"), (std::vector<int64_t>{260, 0}));
  o.threads = 1;
  EXPECT_EQ(core::train_bpe(o, test::discard()).merges, d.merges) << "deterministic across thread counts";
}

TEST(Chat, MaskKeepsOnlyAssistantContentAndItsEnd) {
  const core::BpeTokenizer tok(small_definition(), "test");
  const auto doc = core::render_chatml({{"system", "be"}, {"user", "hell"}, {"assistant", "hello"}, {"user", "he"}}, false);
  EXPECT_EQ(doc.text,
            "<|im_start|>system\nbe<|im_end|>\n<|im_start|>user\nhell<|im_end|>\n<|im_start|>assistant\nhello<|im_end|>\n"
            "<|im_start|>user\nhe<|im_end|>\n");
  std::vector<int64_t> ids;
  std::vector<uint8_t> in_loss;
  core::tokenize_document(doc, tok, ids, in_loss);
  ASSERT_EQ(ids.size(), in_loss.size());
  std::string kept;
  for (size_t i = 0; i < ids.size(); ++i)
    if (in_loss[i]) kept += tok.token_bytes(ids[i]);
  EXPECT_EQ(kept, "hello<|im_end|>") << "the assistant's content and closing token, nothing else";
  // The assistant header and the newline after <|im_end|> are out.
  const auto first = std::find(in_loss.begin(), in_loss.end(), 1) - in_loss.begin();
  EXPECT_EQ(ids[first], 261) << "\"hell\" of \"hello\"";
  EXPECT_EQ(ids[first - 1], byte_id('\n'));
}

TEST(Chat, ByteTokenizerAndBadLinesAreRefused) {
  EXPECT_NE(error_of([] { core::require_chatml(core::ByteTokenizer()); }).find("<|im_start|>"), std::string::npos);
  rapidjson::Document line;
  std::vector<core::ChatMessage> messages;
  line.Parse(R"({"conversations": [{"role": "user", "content": "hi"}]})");
  EXPECT_NE(core::read_conversation(line, messages).find("without an assistant"), std::string::npos);
  line.Parse(R"({"conversations": [{"role": "bot", "content": "hi"}]})");
  EXPECT_NE(core::read_conversation(line, messages).find("role \"bot\""), std::string::npos);
  line.Parse(R"({"text": "hi"})");
  EXPECT_NE(core::read_conversation(line, messages).find("\"conversations\""), std::string::npos);
}

TEST(Chat, MaskedTargetsCarryNoGradient) {
  TempDir dir;
  write_text(dir / "chat.jsonl",
             "{\"conversations\": [{\"role\": \"user\", \"content\": \"hello hello\"}, "
             "{\"role\": \"assistant\", \"content\": \"hell world\"}]}\n");
  const core::BpeTokenizer tok(small_definition(), "test");
  auto tokens = core::TokenFile::open_or_build(dir / "chat.jsonl", tok, dir / "cache", false, test::discard(),
                                               core::DocumentFormat::kChat);
  const auto seq_len = static_cast<int64_t>(tokens.size()) - 1;
  const auto batch = core::window_batch(tokens, {0}, seq_len);
  // Targets are kept exactly where the token file marks them in the loss.
  int64_t kept = 0;
  for (int64_t t = 0; t < seq_len; ++t) {
    const bool in = tokens.in_loss(static_cast<size_t>(t + 1));
    EXPECT_EQ(batch.targets[0][t].item<int64_t>(), in ? tokens[t + 1] : core::kIgnoredTarget);
    kept += in;
  }
  EXPECT_EQ(kept, 7) << "hell, Ġw, o, r, l, d, <|im_end|>";

  // A bigram table (the same random one each time) as the model.
  auto bigram_table = [&] {
    torch::manual_seed(0);
    return torch::randn({tok.vocab_size(), tok.vocab_size()}, torch::kFloat64).set_requires_grad(true);
  };
  auto gradient = [&](const torch::Tensor& targets) {
    auto table = bigram_table();
    core::lm_loss(torch::nn::functional::embedding(batch.inputs, table), targets).backward();
    return table.grad().clone();
  };
  const auto masked = gradient(batch.targets);
  // The loss over assistant positions alone, written out: the same gradient.
  auto table = bigram_table();
  auto logits = torch::nn::functional::embedding(batch.inputs, table)[0];
  auto keep = (batch.targets[0] != core::kIgnoredTarget).nonzero().squeeze(1);
  torch::nn::functional::cross_entropy(logits.index_select(0, keep), batch.targets[0].index_select(0, keep)).backward();
  EXPECT_TRUE(torch::allclose(masked, table.grad(), 1e-5, 1e-7)) << "lm_loss computes in float32";
  // Every target in the loss, user tokens included: a different gradient.
  const auto unmasked = gradient(batch.inputs.roll(-1, 1));
  EXPECT_FALSE(torch::allclose(masked, unmasked, 1e-6, 1e-6));
}

TEST(Chat, TrainsOnChatDataWithATrainedTokenizer) {
  TempDir dir;
  core::SynthOptions synth;
  synth.entities = 10, synth.train_documents = 20, synth.val_documents = 10, synth.chat_documents = 300;
  core::write_synthetic_facts(dir / "data", synth);
  core::BpeTrainingOptions o;
  o.corpus = {dir / "data/chat_train.jsonl"};
  o.special = {"<|endoftext|>", "<|im_start|>", "<|im_end|>"};
  o.vocab_size = 400;
  core::write_tokenizer_files(core::train_bpe(o, test::discard()), dir / "tok");
  auto job = test::bigram_job(dir, {"data.train_path=" + dir / "data/chat_train.jsonl",
                                    "data.val_path=" + dir / "data/chat_val.jsonl", "data.format=chat",
                                    "data.tokenizer=" + dir / "tok/tokenizer.json", "model.vocab_size=400",
                                    "train.max_steps=30", "train.checkpoint_interval=0"});
  core::Trainer trainer(job);
  const auto s = trainer.run();
  ASSERT_EQ(s.losses.size(), 30u);
  EXPECT_NEAR(s.losses.front(), std::log(400.0), 1e-4) << "a zero table predicts uniformly";
  EXPECT_LT(s.losses.back(), s.losses.front() - 1.0);
  EXPECT_GT(s.val.tokens, 0);
  // Only assistant tokens are targets: less than half of the chat tokens.
  const auto loaded = core::load_tokenizer_json(dir / "tok/tokenizer.json");
  auto val = core::TokenFile::open_or_build(dir / "data/chat_val.jsonl", *loaded, dir / "cache", false, test::discard(),
                                            core::DocumentFormat::kChat);
  size_t in_loss = 0;
  for (size_t i = 0; i < val.size(); ++i) in_loss += val.in_loss(i);
  EXPECT_GT(in_loss, 0u);
  EXPECT_LT(in_loss * 2, val.size());
}
