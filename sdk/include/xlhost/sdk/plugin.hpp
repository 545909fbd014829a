// The plugin ABI. A plugin is a shared object that uses XLHOST_PLUGIN exactly once.
// The host reads two plain data symbols (ABI and LibTorch version) before it calls
// anything, so a plugin built against another SDK or LibTorch is refused, not run.
#pragma once

#include <boost/config.hpp>
#include <boost/dll/alias.hpp>
#include <torch/version.h>

#include <string>

#include "xlhost/sdk/config_schema.hpp"
#include "xlhost/sdk/model.hpp"

// Bump on any change to a type that crosses the plugin boundary (Model, ForwardResult,
// DecodeCache, ParamGroups, DataContext, PluginDescriptor, SchemaEntry, SectionValues,
// WeightInterop, MemoryRead) or to a shared layer's signature. 2: Model::weight_interop().
// 3: memory probes and ablations. 4: SchemaEntry::only_when. 5: embed_memory_rows returns
// MemoryRows (each distinct row once), which CrossAttentionFusion takes. 6: attention()
// takes the keys each query sees as a Visibility (attention.hpp), not a mask tensor.
#define XLHOST_SDK_ABI_VERSION 6

namespace xlhost::sdk {

struct PluginDescriptor {
  std::string name;
  std::string version;
  std::string description;
  Schema schema;  // keys of the config's `model` section
  // A plugin whose default settings let position t see tokens after t (to reproduce an
  // old result) says so here; `xlhost plugin info` shows it. The warning before training
  // comes from Model::causality_warning(), which knows the configured settings.
  bool causal = true;
  std::string causality_note;
};

using DescriptorFn = PluginDescriptor();
// Returns a model allocated with `new`; the host takes ownership and frees it while the
// plugin library is still loaded.
using FactoryFn = Model*(const ModelConfig&);

}  // namespace xlhost::sdk

// DESCRIBE: a function `xlhost::sdk::PluginDescriptor ()`.
// CREATE:   a function `xlhost::sdk::Model* (const xlhost::sdk::ModelConfig&)`.
#define XLHOST_PLUGIN(DESCRIBE, CREATE)                                                       \
  extern "C" BOOST_SYMBOL_EXPORT const unsigned xlhost_sdk_abi_version = XLHOST_SDK_ABI_VERSION; \
  extern "C" BOOST_SYMBOL_EXPORT const char xlhost_torch_version[] = TORCH_VERSION;          \
  BOOST_DLL_ALIAS(DESCRIBE, xlhost_plugin_descriptor)                                         \
  BOOST_DLL_ALIAS(CREATE, xlhost_create_model)
