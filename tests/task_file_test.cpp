// Benchmark task files and contamination: the parts lm-eval has no counterpart for. The
// prompts and scores themselves are checked against lm-eval in tests/python/lm_eval_oracle.py.
#include <gtest/gtest.h>

#include <sstream>

#include "test_support.hpp"
#include "xlhost/core/data/contamination.hpp"
#include "xlhost/core/data/task_file.hpp"
#include "xlhost/core/util/error.hpp"

using namespace xlhost;

TEST(TaskFile, CsvRecordsHoldQuotedCommasNewlinesAndQuotes) {
  std::istringstream in("a,\"b, c\",\"line 1\nline 2\",\"say \"\"hi\"\"\"\r\nnext,row\n");
  std::vector<std::string> fields;
  int64_t line = 0;
  ASSERT_TRUE(core::read_csv_record(in, fields, line));
  EXPECT_EQ(fields, (std::vector<std::string>{"a", "b, c", "line 1\nline 2", "say \"hi\""}));
  EXPECT_EQ(line, 2) << "the quoted newline counts";
  ASSERT_TRUE(core::read_csv_record(in, fields, line));
  EXPECT_EQ(fields, (std::vector<std::string>{"next", "row"}));
  EXPECT_EQ(line, 3);
  EXPECT_FALSE(core::read_csv_record(in, fields, line));
}

TEST(TaskFile, FewShotPoolIsKeptApartAndFormatIsTold) {
  test::TempDir dir;
  const auto path = dir / "t.jsonl";
  test::write_text(path,
                   "{\"context\": \"Q1\", \"choices\": [\"a\", \"b\"], \"gold\": 1, \"fewshot\": true}\n"
                   "{\"context\": \"Q2\", \"choices\": [\"c\", \"d\"], \"gold\": 0, \"group\": \"g\"}\n");
  const auto task = core::read_task_file(path);
  EXPECT_EQ(task.format, "xlhost");
  ASSERT_EQ(task.items.size(), 1u);
  ASSERT_EQ(task.fewshot.size(), 1u);
  EXPECT_EQ(task.items[0].group, "g");
  EXPECT_EQ(core::fewshot_context(task.items[0], {&task.fewshot[0]}), "Q1 b\n\nQ2");
  test::write_text(path, "{\"prompt\": \"x\"}\n");
  EXPECT_THROW(core::read_task_file(path), core::UserError);
}

TEST(Contamination, ShortItemsWholeLongItemsByThirteenWordsNeverAcrossDocuments) {
  const std::vector<std::string> items{
      "The capital of Quaquira is Ruba",                                      // 6 words: whole item
      "The capital of Quaquira is Pesor",                                     // one word differs
      "one two three four five six seven eight nine ten eleven twelve thirteen fourteen",  // 13-grams
      "红色的河流",                                                            // a character is a word
      "split across documents"};
  core::NgramOverlap overlap(items);
  overlap.scan("Facts. THE CAPITAL of quaquira, is Ruba! And more.");
  overlap.scan("zero one two three four five six seven eight nine ten eleven twelve thirteen");
  overlap.scan("这是红色的河流。");
  overlap.scan("split across");
  overlap.scan("documents");
  EXPECT_EQ(overlap.hits(), (std::vector<bool>{true, false, true, true, false}));
  EXPECT_EQ(overlap.count(), 3);
}
