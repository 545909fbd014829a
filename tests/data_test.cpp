#include <gtest/gtest.h>

#include <sstream>

#include "test_support.hpp"
#include "xlhost/core/data/json_lines.hpp"
#include "xlhost/core/data/token_data.hpp"
#include "xlhost/core/data/tokenizer.hpp"
#include "xlhost/core/util/error.hpp"
#include "xlhost/core/util/md5.hpp"
#include "xlhost/core/util/printable_text.hpp"

using namespace xlhost;
using test::TempDir;
using test::write_text;

TEST(ByteTokenizer, RoundTripsAnyBytes) {
  core::ByteTokenizer tok;
  const std::string text = "Hello, 世界! \t\n\x01\xff";
  auto ids = tok.encode(text);
  ASSERT_EQ(ids.size(), text.size());
  for (auto id : ids) {
    EXPECT_GE(id, core::ByteTokenizer::kFirstByte);
    EXPECT_LT(id, tok.vocab_size());
  }
  EXPECT_EQ(tok.decode(ids), text);
  ids.insert(ids.begin(), tok.bos_id());
  ids.push_back(tok.eos_id());
  EXPECT_EQ(tok.decode(ids), text) << "special tokens are dropped";
}

TEST(PrintableText, KeepsUtf8AndMarksEverythingElse) {
  EXPECT_EQ(core::printable_text("The capital of Quaquira is Quiab."), "The capital of Quaquira is Quiab.");
  EXPECT_EQ(core::printable_text("世界 é 😀"), "世界 é 😀");
  EXPECT_EQ(core::printable_text("a\nb\tc\rd\x01\x7f"), "a\\nb\\tc\\rd\\x01\\x7F");
  const std::string bad = "\xEF\xBF\xBD";
  EXPECT_EQ(core::printable_text("x\xffy"), "x" + bad + "y") << "a byte that never starts UTF-8";
  EXPECT_EQ(core::printable_text("\xe4\xb8"), bad + bad) << "a sequence cut short by the end";
  EXPECT_EQ(core::printable_text("\xe4\xb8z"), bad + bad + "z") << "a sequence cut short by ASCII";
  EXPECT_EQ(core::printable_text("\xc0\xaf"), bad + bad) << "overlong encoding of '/'";
  EXPECT_EQ(core::printable_text("\xed\xa0\x80"), bad + bad + bad) << "a UTF-16 surrogate";
  EXPECT_EQ(core::printable_text("\xf4\x90\x80\x80"), bad + bad + bad + bad) << "above U+10FFFF";
}

TEST(Md5, KnownVectors) {
  auto hex = [](const std::string& s) {
    core::Md5 m;
    m.update(s.data(), s.size());
    return m.hex_digest();
  };
  EXPECT_EQ(hex(""), "d41d8cd98f00b204e9800998ecf8427e");
  EXPECT_EQ(hex("abc"), "900150983cd24fb0d6963f7d28e17f72");
  EXPECT_EQ(hex(std::string(1000, 'a')), "cabe45dcc9ae5b66ba86600cca6b8ba8");
}

TEST(JsonLines, MalformedLineNamesFileAndLine) {
  TempDir dir;
  write_text(dir / "d.jsonl", "{\"text\": \"a\"}\n\n{\"text\": 3}\n{oops\n");
  try {
    core::read_json_lines(dir / "d.jsonl", false, [](const std::string&) {});
    FAIL() << "expected an error";
  } catch (const core::UserError& e) {
    EXPECT_NE(std::string(e.what()).find("d.jsonl:3: expected a string field \"text\""), std::string::npos) << e.what();
  }
}

TEST(JsonLines, SkipCountsMalformedLines) {
  TempDir dir;
  write_text(dir / "d.jsonl", "{\"text\": \"a\"}\n[1]\n{oops\n{\"text\": \"b\"}\n");
  std::vector<std::string> texts;
  auto report = core::read_json_lines(dir / "d.jsonl", true, [&](const std::string& t) { texts.push_back(t); });
  EXPECT_EQ(texts, (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(report.skipped, 2u);
  ASSERT_EQ(report.first_problems.size(), 2u);
  EXPECT_NE(report.first_problems[1].find("d.jsonl:3: not valid JSON"), std::string::npos) << report.first_problems[1];
}

TEST(TokenFile, CachesByContentAndRebuildsOnChange) {
  TempDir dir;
  core::ByteTokenizer tok;
  std::ostringstream log;
  write_text(dir / "d.jsonl", "{\"text\": \"ab\"}\n{\"text\": \"c\"}\n");
  auto first = core::TokenFile::open_or_build(dir / "d.jsonl", tok, dir / "cache", false, log);
  ASSERT_EQ(first.size(), 7u);  // bos a b eos bos c eos
  EXPECT_EQ(first[0], tok.bos_id());
  EXPECT_EQ(first[1], tok.encode("a")[0]);
  EXPECT_EQ(first[3], tok.eos_id());
  EXPECT_EQ(first.documents(), 2u);
  EXPECT_NE(log.str().find("tokenised"), std::string::npos);

  log.str("");
  auto again = core::TokenFile::open_or_build(dir / "d.jsonl", tok, dir / "cache", false, log);
  EXPECT_EQ(again.path(), first.path());
  EXPECT_EQ(log.str(), "") << "second open must reuse the cache";

  write_text(dir / "d.jsonl", "{\"text\": \"abc\"}\n");
  auto changed = core::TokenFile::open_or_build(dir / "d.jsonl", tok, dir / "cache", false, log);
  EXPECT_NE(changed.path(), first.path());
  EXPECT_EQ(changed.size(), 5u);
}

TEST(TokenFile, CorruptCacheIsReported) {
  TempDir dir;
  write_text(dir / "bad.tok", "not a token file at all, but long enough for a header....");
  EXPECT_THROW(core::TokenFile::open(dir / "bad.tok"), core::UserError);
}

TEST(WindowSampler, DeterministicShuffledAndComplete) {
  TempDir dir;
  core::ByteTokenizer tok;
  std::ostringstream log;
  std::string lines;
  for (int i = 0; i < 50; ++i) lines += "{\"text\": \"document number " + std::to_string(i) + "\"}\n";
  write_text(dir / "d.jsonl", lines);
  auto tokens = core::TokenFile::open_or_build(dir / "d.jsonl", tok, dir / "cache", false, log);
  core::WindowSampler a(tokens, 8, 4, 7, true), b(tokens, 8, 4, 7, true), other(tokens, 8, 4, 8, true);
  const int64_t per_epoch = a.batches_per_epoch();
  ASSERT_GT(per_epoch, 3);
  std::set<int64_t> seen;
  bool differs_from_other_seed = false;
  for (int64_t g = 0; g < per_epoch; ++g) {
    auto starts = a.window_starts(g);
    EXPECT_EQ(starts, b.window_starts(g));
    differs_from_other_seed |= starts != other.window_starts(g);
    for (auto s : starts) {
      EXPECT_EQ(s % 8, 0);
      EXPECT_TRUE(seen.insert(s).second) << "window " << s << " twice in one epoch";
    }
  }
  EXPECT_TRUE(differs_from_other_seed);
  EXPECT_NE(a.window_starts(per_epoch), a.window_starts(0)) << "each epoch has its own order";
}

TEST(WindowSampler, TooLittleDataIsAClearError) {
  TempDir dir;
  core::ByteTokenizer tok;
  std::ostringstream log;
  write_text(dir / "d.jsonl", "{\"text\": \"tiny\"}\n");
  auto tokens = core::TokenFile::open_or_build(dir / "d.jsonl", tok, dir / "cache", false, log);
  EXPECT_THROW(core::WindowSampler(tokens, 64, 4, 1, true), core::UserError);
}

TEST(SyntheticFacts, DeterministicAndConsistent) {
  TempDir dir;
  core::SynthOptions o;
  o.entities = 10, o.train_documents = 20, o.val_documents = 5;
  auto s = core::write_synthetic_facts(dir / "a", o);
  core::write_synthetic_facts(dir / "b", o);
  EXPECT_EQ(s.facts, 40);
  for (const char* f : {"train.jsonl", "val.jsonl", "knowledge.txt", "facts.jsonl", "prompts.txt"})
    EXPECT_EQ(core::md5_file(dir / (std::string("a/") + f)), core::md5_file(dir / (std::string("b/") + f))) << f;
  std::ifstream knowledge(dir / "a/knowledge.txt");
  int lines = 0;
  for (std::string line; std::getline(knowledge, line);) ++lines;
  EXPECT_EQ(lines, 40);
  o.seed = 2;
  core::write_synthetic_facts(dir / "c", o);
  EXPECT_NE(core::md5_file(dir / "a/train.jsonl"), core::md5_file(dir / "c/train.jsonl"));
}
