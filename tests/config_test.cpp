#include <gtest/gtest.h>

#include "test_support.hpp"
#include "xlhost/core/config/options.hpp"
#include "xlhost/core/util/error.hpp"

using namespace xlhost;
using core::Config;
using core::UserError;

namespace {

core::ConfigSchema schema() {
  return core::full_schema({sdk::int_key("dim", 512, "width", 8, 4096), sdk::float_key("dropout", 0.0, "p", 0.0, 1.0),
                            sdk::string_key("pooling", "mean", "how", {"mean", "causal"})});
}

// The message of the UserError `parse` throws, or "" when it does not throw.
std::string error_of(const std::string& json, std::vector<std::string> overrides = {}) {
  try {
    Config::parse(json, "exp.json", schema(), overrides);
  } catch (const UserError& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST(Config, DefaultsFillEveryKey) {
  auto c = Config::parse(R"({"model": {"dim": 64}})", "exp.json", schema());
  EXPECT_EQ(c.section("model").get_int("dim"), 64);
  EXPECT_EQ(c.section("model").get_float("dropout"), 0.0);
  EXPECT_EQ(c.section("train").get_int("batch_size"), 16);
  EXPECT_EQ(c.section("data").get_string("tokenizer"), "byte");
}

TEST(Config, UnknownKeySuggestsClosest) {
  auto e = error_of(R"({"train": {"lrr": 0.1}})");
  EXPECT_NE(e.find("train.lrr: unknown key"), std::string::npos) << e;
  EXPECT_NE(e.find("did you mean 'train.lr'"), std::string::npos) << e;
}

// Issue 32: --set train.learning_rate= got no suggestion (too far from "lr" to be a typo).
TEST(Config, OtherTrainersNamesPointToXlhosts) {
  for (const auto& [json, expected] : {std::pair{R"({"train": {"learning_rate": 1e-3}})", "did you mean 'train.lr'"},
                                       {R"({"train": {"gradient_accumulation_steps": 4}})", "'train.accumulation_steps'"},
                                       {R"({"model": {"hidden_size": 512}})", "'model.dim'"}}) {
    const auto e = error_of(json);
    EXPECT_NE(e.find(expected), std::string::npos) << e;
  }
}

TEST(Config, ChangesBetweenTwoResolvedConfigsByKey) {
  const auto changes = xlhost::core::config_changes(R"({"train": {"lr": 0.002, "max_steps": 40}, "model": {"dim": 64}})",
                                                    R"({"train": {"lr": 0.001, "max_steps": 40}, "model": {"dim": 64, "new_key": 1}})",
                                                    "before.json");
  ASSERT_EQ(changes.size(), 2u);
  EXPECT_EQ(changes[0].key, "model.new_key");  // a key added since: "-" on the side that lacks it
  EXPECT_EQ(changes[0].before, "-");
  EXPECT_EQ(changes[1].key, "train.lr");
  EXPECT_EQ(changes[1].before, "0.002");
  EXPECT_EQ(changes[1].after, "0.001");
}

TEST(Config, UnknownSectionSuggestsClosest) {
  auto e = error_of(R"({"trian": {}})");
  EXPECT_NE(e.find("trian: unknown section; did you mean 'train'"), std::string::npos) << e;
}

TEST(Config, WrongTypeNamesKeyAndExpectation) {
  auto e = error_of(R"({"model": {"dim": "wide"}})");
  EXPECT_NE(e.find("model.dim: expected integer, got string \"wide\""), std::string::npos) << e;
  e = error_of(R"({"model": {"dim": 1.5}})");
  EXPECT_NE(e.find("model.dim: expected integer"), std::string::npos) << e;
}

TEST(Config, OutOfRangeAndBadChoice) {
  auto e = error_of(R"({"model": {"dim": 4, "pooling": "max"}})");
  EXPECT_NE(e.find("model.dim: 4 is out of range"), std::string::npos) << e;
  EXPECT_NE(e.find("model.pooling: \"max\" is not one of: mean, causal"), std::string::npos) << e;
  EXPECT_NE(e.find("2 config errors"), std::string::npos) << e;
}

TEST(Config, EveryPlaceholderIsListed) {
  auto e = error_of(R"({"train": {"batch_size": "[BATCH_SIZE]", "lr": "[LR]"}, "experiment": {"id": "[ID]"}})");
  EXPECT_NE(e.find("3 unreplaced placeholders"), std::string::npos) << e;
  for (const char* p : {"train.batch_size = [BATCH_SIZE]", "train.lr = [LR]", "experiment.id = [ID]"})
    EXPECT_NE(e.find(p), std::string::npos) << p << " missing in: " << e;
}

TEST(Config, SetReplacesPlaceholderAndValue) {
  auto c = Config::parse(R"({"train": {"batch_size": "[BATCH_SIZE]", "lr": 0.1}})", "exp.json", schema(),
                         {"train.batch_size=48", "train.lr=3e-4", "model.pooling=causal"});
  EXPECT_EQ(c.section("train").get_int("batch_size"), 48);
  EXPECT_DOUBLE_EQ(c.section("train").get_float("lr"), 3e-4);
  EXPECT_EQ(c.section("model").get_string("pooling"), "causal");
}

TEST(Config, BadSetIsReported) {
  EXPECT_NE(error_of("{}", {"train.batch_size=many"}).find("--set train.batch_size: expected integer"), std::string::npos);
  EXPECT_NE(error_of("{}", {"train.bach_size=4"}).find("did you mean 'train.batch_size'"), std::string::npos);
  EXPECT_NE(error_of("{}", {"nodot"}).find("expected section.key=value"), std::string::npos);
  EXPECT_NE(error_of("{}", {"model.dim=0"}).find("--set model.dim: 0 is out of range"), std::string::npos);
}

TEST(Config, InvalidJsonGivesLineAndColumn) {
  auto e = error_of("{\n  \"train\": {\n    \"lr\": ,\n  }\n}");
  EXPECT_NE(e.find("exp.json:3:11: invalid JSON"), std::string::npos) << e;
}

// Errors about a key of the file name the line that holds it (after comments, in nested
// objects, several on one line); a --set's has none to name.
TEST(Config, FileErrorsNameTheirLine) {
  const auto e = error_of(
      "// an experiment\n{\n  \"model\": {\"dim\": 64,\n    \"dimm\": 1, \"pooling\": \"max\"},\n"
      "  \"trian\": {},\n  \"train\": {\"lr\": \"fast\"}\n}",
      {"train.bach_size=4"});
  for (const char* expected : {"exp.json:4: model.dimm: unknown key", "exp.json:4: model.pooling: \"max\" is not one of",
                               "exp.json:5: trian: unknown section", "exp.json:6: train.lr: expected number",
                               "\n  --set train.bach_size: unknown key"})
    EXPECT_NE(e.find(expected), std::string::npos) << expected << " missing in: " << e;
}

TEST(Config, SectionMustBeObject) {
  EXPECT_NE(error_of(R"({"train": 3})").find("train: expected an object"), std::string::npos);
}

TEST(Config, ResolvedJsonRoundTrips) {
  auto c = Config::parse(R"({"model": {"dim": 96}, "train": {"lr": 0.00025}})", "exp.json", schema());
  auto again = Config::parse(c.to_json(), "resolved.json", schema());
  EXPECT_EQ(again.to_json(), c.to_json());
  EXPECT_DOUBLE_EQ(again.section("train").get_float("lr"), 0.00025);
}

TEST(Config, EditDistance) {
  EXPECT_EQ(core::edit_distance("lrr", "lr"), 1u);
  EXPECT_EQ(core::edit_distance("kitten", "sitting"), 3u);
}

// A key that takes effect only with another key's value: given without it, a warning says
// so; at its default, or in effect, nothing is said.
TEST(Config, KeyWithoutEffectIsWarnedAbout) {
  const auto with_condition = core::full_schema(
      {sdk::string_key("fusion", "cross", "how", {"cross", "gated"}),
       sdk::int_key("heads", 8, "cross only", 1, 64).only_when("fusion", {"cross"}),
       sdk::bool_key("frozen", true, "fixed bank"), sdk::float_key("decay", 0.9, "EMA", 0.0, 1.0).only_when("frozen", {"false"})});
  auto warnings = [&](const std::string& json, std::vector<std::string> overrides = {}) {
    return Config::parse(json, "exp.json", with_condition, overrides).warnings();
  };
  const auto given = warnings(R"({"model": {"fusion": "gated", "heads": 4}})");
  ASSERT_EQ(given.size(), 1u);
  EXPECT_EQ(given[0], "exp.json:1: model.heads has no effect: it applies when model.fusion is cross, and it is gated");
  const auto set = warnings(R"({"model": {"fusion": "gated"}})", {"model.decay=0.5"});  // by --set too
  ASSERT_EQ(set.size(), 1u);
  EXPECT_EQ(set[0].rfind("model.decay has no effect", 0), 0u) << set[0];
  EXPECT_EQ(warnings(R"({"model": {"fusion": "gated"}})").size(), 0u);                             // at its default
  EXPECT_EQ(warnings(R"({"model": {"heads": 4, "frozen": false, "decay": 0.5}})").size(), 0u);      // in effect
}
