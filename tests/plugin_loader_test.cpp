#include <dlfcn.h>
#include <gtest/gtest.h>

#include <filesystem>

#include "test_support.hpp"
#include "xlhost/core/plugin/plugin_loader.hpp"
#include "xlhost/core/util/error.hpp"

using namespace xlhost;

namespace {

std::string load_error(const std::string& path) {
  try {
    core::load_plugin(path);
  } catch (const core::UserError& e) {
    return e.what();
  }
  return "";
}

std::string fixture(const std::string& name) { return std::string(XLHOST_TEST_PLUGIN_DIR) + "/" + name + ".so"; }

}  // namespace

TEST(PluginLoader, LoadsModelOriginalWithDescriptor) {
  auto plugin = core::load_plugin(test::plugin_path("model_original"));
  const auto& d = plugin.descriptor();
  EXPECT_EQ(d.name, "model_original");
  EXPECT_TRUE(d.causal);
  EXPECT_EQ(plugin.abi_version(), static_cast<unsigned>(XLHOST_SDK_ABI_VERSION));
  EXPECT_EQ(plugin.torch_version(), TORCH_VERSION);
  bool has_dim = false;
  for (const auto& e : d.schema) has_dim |= e.key == "dim";
  EXPECT_TRUE(has_dim);
}

TEST(PluginLoader, MissingFile) {
  auto e = load_error("/nonexistent/model.so");
  EXPECT_EQ(e, "/nonexistent/model.so: no such plugin file");
}

TEST(PluginLoader, TextFileIsNotASharedObject) {
  test::TempDir dir;
  test::write_text(dir / "fake.so", "this is not ELF");
  auto e = load_error(dir / "fake.so");
  EXPECT_NE(e.find("fake.so: cannot load as a shared object"), std::string::npos) << e;
}

TEST(PluginLoader, SharedObjectWithoutStampIsNotAPlugin) {
  auto e = load_error(fixture("not_a_plugin"));
  EXPECT_NE(e.find("not_a_plugin.so: not an xlhost plugin"), std::string::npos) << e;
}

TEST(PluginLoader, WrongAbiNamesBothVersionsAndTheFix) {
  auto e = load_error(fixture("wrong_abi_plugin"));
  EXPECT_NE(e.find("wrong_abi_plugin.so: built against xlhost SDK ABI 999, this host has ABI " +
                   std::to_string(XLHOST_SDK_ABI_VERSION)),
            std::string::npos)
      << e;
  EXPECT_NE(e.find("rebuild it against this host's SDK"), std::string::npos) << e;
}

// Bound when loaded, not at the first call, where the dynamic linker would end the process.
TEST(PluginLoader, AFunctionTheHostsSdkLacksIsNamedAtLoad) {
  auto e = load_error(fixture("newer_sdk_plugin"));
  EXPECT_NE(e.find("newer_sdk_plugin.so: needs xlhost::sdk::from_a_newer_sdk(int), which this host does not have"),
            std::string::npos)
      << e;
  EXPECT_NE(e.find("rebuild it against this host's SDK"), std::string::npos) << e;
}

TEST(PluginLoader, WrongLibTorchNamesBothVersions) {
  auto e = load_error(fixture("wrong_torch_plugin"));
  EXPECT_NE(e.find("built against LibTorch 0.4.1, this host uses LibTorch " + std::string(TORCH_VERSION)),
            std::string::npos)
      << e;
}

TEST(PluginLoader, BadModelConfigIsAUserError) {
  auto plugin = core::load_plugin(test::plugin_path("model_original"));
  auto config = sdk::SectionValues::defaults(plugin.descriptor().schema);
  config.set("n_heads", int64_t{3});
  try {
    plugin.create(config);
    FAIL() << "expected an error";
  } catch (const core::UserError& e) {
    EXPECT_NE(std::string(e.what()).find("cannot build the model: dim 512 is not divisible by n_heads 3"), std::string::npos) << e.what();
  }
}

// The model and an optimizer over its parameters outlive every LoadedPlugin handle; the
// library must stay mapped (the model's code lives there) until the model is gone.
TEST(PluginLoader, ModelAndOptimizerOutliveThePluginHandle) {
  const std::string path = std::filesystem::canonical(test::plugin_path("model_original")).string();
  std::shared_ptr<sdk::Model> model;
  {
    auto plugin = core::load_plugin(path);
    auto config = sdk::SectionValues::defaults(plugin.descriptor().schema);
    config.set("dim", int64_t{32}), config.set("n_layers", int64_t{1}), config.set("n_heads", int64_t{4});
    config.set("n_kv_heads", int64_t{2}), config.set("vocab_size", int64_t{50});
    model = plugin.create(config);
  }  // handle destroyed here
  void* still_loaded = dlopen(path.c_str(), RTLD_NOW | RTLD_NOLOAD);
  ASSERT_NE(still_loaded, nullptr) << "library unloaded while a model from it is alive";
  dlclose(still_loaded);

  auto optimizer = std::make_unique<torch::optim::AdamW>(model->parameters(), torch::optim::AdamWOptions(1e-2));
  auto tokens = torch::randint(0, 50, {2, 8}, torch::kInt64);
  double first = 0, last = 0;
  for (int step = 0; step < 5; ++step) {
    auto logits = model->forward(tokens.slice(1, 0, 7)).logits;
    auto loss = torch::nn::functional::cross_entropy(logits.reshape({-1, 50}), tokens.slice(1, 1, 8).reshape({-1}));
    optimizer->zero_grad();
    loss.backward();
    optimizer->step();
    (step == 0 ? first : last) = loss.item<double>();
  }
  EXPECT_LT(last, first);
  optimizer.reset();
  model.reset();  // runs the plugin's destructor while the library is still loaded
  SUCCEED();
}
