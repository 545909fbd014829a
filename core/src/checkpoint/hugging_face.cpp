#include "xlhost/core/checkpoint/hugging_face.hpp"

#include <rapidjson/prettywriter.h>
#include <rapidjson/stringbuffer.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <set>

#include "xlhost/core/checkpoint/checkpoint.hpp"
#include "xlhost/core/checkpoint/hugging_face_tensors.hpp"
#include "xlhost/core/checkpoint/llama_checks.hpp"
#include "xlhost/core/checkpoint/safetensors.hpp"
#include "xlhost/core/checkpoint/weights_origin.hpp"
#include "xlhost/core/config/options.hpp"
#include "xlhost/core/util/error.hpp"
#include "xlhost/core/util/file_io.hpp"
#include "xlhost/core/util/json.hpp"

namespace xlhost::core {

namespace fs = std::filesystem;

namespace {

using Writer = rapidjson::PrettyWriter<rapidjson::StringBuffer>;

template <typename Body>
std::string json_text(Body&& body) {
  rapidjson::StringBuffer buffer;
  Writer w(buffer);
  w.SetIndent(' ', 2);
  body(w);
  return std::string(buffer.GetString()) + "\n";
}

void write_value(Writer& w, const sdk::Value& v) {
  std::visit(
      [&](const auto& x) {
        using T = std::decay_t<decltype(x)>;
        if constexpr (std::is_same_v<T, int64_t>) w.Int64(x);
        else if constexpr (std::is_same_v<T, double>) w.Double(x);
        else if constexpr (std::is_same_v<T, bool>) w.Bool(x);
        else w.String(x.c_str());
      },
      v);
}


std::string hugging_face_config(const sdk::HuggingFaceLayout& layout, const ExportSpec& spec) {
  return json_text([&](Writer& w) {
    w.StartObject();
    w.Key("architectures"), w.StartArray(), w.String(layout.architecture.c_str()), w.EndArray();
    for (const auto& [key, value] : layout.config) w.Key(key.c_str()), write_value(w, value);
    w.Key("bos_token_id"), w.Int64(spec.bos_id);
    w.Key("eos_token_id"), w.Int64(spec.eos_id);
    w.Key("pad_token_id"), w.Int64(spec.pad_id);
    w.Key("torch_dtype"), w.String("float32");
    w.EndObject();
  });
}

std::string generation_config(const ExportSpec& spec) {
  return json_text([&](Writer& w) {
    w.StartObject();
    w.Key("bos_token_id"), w.Int64(spec.bos_id);
    w.Key("eos_token_id"), w.Int64(spec.eos_id);
    w.Key("pad_token_id"), w.Int64(spec.pad_id);
    w.EndObject();
  });
}

std::string export_source(const ExportSpec& spec, bool hugging_face) {
  return json_text([&](Writer& w) {
    w.StartObject();
    w.Key("format"), w.String(hugging_face ? "hugging_face" : "xlhost");
    w.Key("plugin"), w.String(spec.plugin_name.c_str());
    w.Key("plugin_version"), w.String(spec.plugin_version.c_str());
    w.Key("run_id"), w.String(spec.run_id.c_str());
    w.Key("run_dir"), w.String(spec.run_dir.c_str());
    w.Key("checkpoint"), w.String(spec.checkpoint.c_str());
    w.Key("step"), w.Int64(spec.step);
    w.EndObject();
  });
}

// tokenizer.json and tokenizer_config.json beside it; false for the byte tokenizer.
bool copy_tokenizer(const std::string& tokenizer, const fs::path& dir) {
  if (tokenizer == "byte") return false;
  write_file((dir / "tokenizer.json").string(), read_text_file(tokenizer, "tokenizer"));
  const fs::path config = fs::path(tokenizer).parent_path() / "tokenizer_config.json";
  if (fs::exists(config)) write_file((dir / "tokenizer_config.json").string(), read_text_file(config.string(), "tokenizer config"));
  return true;
}

}  // namespace

ExportSpec export_spec(const RunConfig& config, const Tokenizer& tokenizer, const sdk::PluginDescriptor& plugin) {
  const auto& options = config.options;
  ExportSpec spec;
  spec.plugin_name = plugin.name, spec.plugin_version = plugin.version;
  spec.config_json = config.values.to_json();
  spec.tokenizer = options.data.tokenizer;
  spec.bos_id = tokenizer.bos_id(), spec.eos_id = tokenizer.eos_id(), spec.pad_id = tokenizer.pad_id();
  spec.run_id = options.experiment.id;
  spec.run_dir = options.run_directory().root().string();
  return spec;
}

void require_exportable(const sdk::Model& model, const std::string& plugin_name) {
  const auto interop = model.weight_interop();
  if (interop.hugging_face.architecture.empty() && interop.native_export_note.empty())
    throw UserError("no Hugging Face mapping for plugin " + plugin_name +
                    ": it declares no Model::weight_interop() (CONTRIBUTING.md, \"Exporting the model\")");
}

ExportResult export_model(sdk::Model& model, const ExportSpec& spec, const std::string& out_dir, bool replace) {
  require_exportable(model, spec.plugin_name);
  const auto interop = model.weight_interop();
  const auto& layout = interop.hugging_face;
  ExportResult result;
  result.hugging_face = !layout.architecture.empty();
  const fs::path out(out_dir);
  if (fs::exists(out) && !replace && !(fs::is_directory(out) && fs::is_empty(out)))
    throw UserError(out_dir + " exists; export into a new folder (or pass --force to replace it)");
  std::vector<std::pair<std::string, torch::Tensor>> tensors;
  if (result.hugging_face) {
    tensors = hugging_face_tensors(model, layout, spec.plugin_name);
    if (layout.architecture == "LlamaForCausalLM") verify_llama_export(model, layout, tensors, spec.plugin_name);
  } else {
    for (const auto& [name, tensor] : state_tensors(model))
      tensors.emplace_back(name, tensor.detach().to(torch::kCPU, torch::kFloat32));
    std::sort(tensors.begin(), tensors.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
    result.note = interop.native_export_note;
  }

  fs::create_directories(out.parent_path().empty() ? fs::path(".") : out.parent_path());
  const fs::path tmp = out.parent_path() / (".tmp-export-" + out.filename().string() + "-" + std::to_string(getpid()));
  try {
    fs::remove_all(tmp);
    fs::create_directories(tmp);
    save_safetensors((tmp / kHuggingFaceWeights).string(), tensors,
                     {{"format", "pt"}, {"xlhost_plugin", spec.plugin_name}});
    if (result.hugging_face) {
      write_file((tmp / "config.json").string(), hugging_face_config(layout, spec));
      write_file((tmp / "generation_config.json").string(), generation_config(spec));
    } else {
      write_file((tmp / "config.json").string(), spec.config_json);
    }
    write_file((tmp / "xlhost_source.json").string(), export_source(spec, result.hugging_face));
    if (!copy_tokenizer(spec.tokenizer, tmp))
      result.note += std::string(result.note.empty() ? "" : "; ") +
                     "no tokenizer files: the run used the byte tokenizer, which has no Hugging Face form";
    fsync_path(tmp.string());
    if (fs::exists(out)) fs::remove_all(out);
    fs::rename(tmp, out);
  } catch (const fs::filesystem_error& e) {
    std::error_code ignored;
    fs::remove_all(tmp, ignored);
    throw UserError(out_dir + ": export not written: " + e.what());
  } catch (...) {
    std::error_code ignored;
    fs::remove_all(tmp, ignored);
    throw;
  }
  return result;
}

namespace {

// Where config.json of a folder and the layout disagree on the function's shape.
std::vector<std::string> config_mismatches(const rapidjson::Value& hf, const sdk::HuggingFaceLayout& layout) {
  std::vector<std::string> problems;
  bool architecture = false;
  if (hf.HasMember("architectures") && hf["architectures"].IsArray())
    for (const auto& a : hf["architectures"].GetArray()) architecture |= a.IsString() && a.GetString() == layout.architecture;
  if (!architecture) problems.push_back("architectures does not name " + layout.architecture);
  static const std::set<std::string> free = {"attention_dropout", "max_position_embeddings", "tie_word_embeddings"};
  for (const auto& [key, expected] : layout.config) {
    if (free.count(key)) continue;
    const rapidjson::Value* v = hf.HasMember(key.c_str()) ? &hf[key.c_str()] : nullptr;
    if (!v && key == "rope_theta" && hf.HasMember("rope_parameters") && hf["rope_parameters"].IsObject() &&
        hf["rope_parameters"].HasMember("rope_theta"))
      v = &hf["rope_parameters"]["rope_theta"];  // transformers 5 nests it
    if (!v) {
      if (key != "head_dim" && key != "mlp_bias" && key != "attention_bias") problems.push_back("config.json has no " + key);
      continue;
    }
    const bool same = std::visit(
        [&](const auto& x) {
          using T = std::decay_t<decltype(x)>;
          if constexpr (std::is_same_v<T, int64_t>) return v->IsInt64() && v->GetInt64() == x;
          else if constexpr (std::is_same_v<T, double>)
            return v->IsNumber() && std::abs(v->GetDouble() - x) <= 1e-9 * std::max(1.0, std::abs(x));
          else if constexpr (std::is_same_v<T, bool>) return v->IsBool() && v->GetBool() == x;
          else return v->IsString() && v->GetString() == x;
        },
        expected);
    if (!same) problems.push_back(key + " is " + describe_json(*v) + ", the model's is " + sdk::to_string(expected));
  }
  return problems;
}

}  // namespace

std::map<std::string, torch::Tensor> read_hugging_face_folder(const std::string& dir, const sdk::HuggingFaceLayout& layout) {
  const fs::path root(dir);
  const std::string config_path = (root / "config.json").string();
  const auto config = parse_json(read_text_file(config_path, "Hugging Face config"), config_path);
  if (!config.IsObject()) throw UserError(config_path + ": expected a JSON object");
  if (auto problems = config_mismatches(config, layout); !problems.empty()) {
    std::string message = config_path + ": another model than the config describes:";
    for (const auto& p : problems) message += "\n  " + p;
    throw UserError(message);
  }

  std::map<std::string, torch::Tensor> hf;
  std::set<std::string> files;
  if (fs::exists(root / kHuggingFaceWeights)) {
    files.insert(kHuggingFaceWeights);
  } else {
    const std::string index_path = (root / kHuggingFaceWeightsIndex).string();
    const auto index = parse_json(read_text_file(index_path, "safetensors index"), index_path);
    if (!index.IsObject() || !index.HasMember("weight_map") || !index["weight_map"].IsObject())
      throw UserError(index_path + ": expected {\"weight_map\": {tensor: file}}");
    for (const auto& m : index["weight_map"].GetObject()) {
      if (!m.value.IsString()) throw UserError(index_path + ": weight_map values must be file names");
      const std::string file = m.value.GetString();
      if (file.find('/') != std::string::npos) throw UserError(index_path + ": " + file + " is not a file of the folder");
      files.insert(file);
    }
  }
  for (const auto& file : files)
    for (auto& [name, tensor] : load_safetensors((root / file).string())) hf[name] = std::move(tensor);

  std::map<std::string, torch::Tensor> ours;
  for (const auto& t : layout.tensors) {
    auto it = hf.find(t.hf_name);
    if (it == hf.end()) continue;  // assign_weights names it as missing under the model's name
    ours[t.name] = t.rope_heads > 0 && rope_rows_permutable(it->second, t.rope_heads) ? halves_to_adjacent(it->second, t.rope_heads)
                                                                             : it->second;
    hf.erase(it);
  }
  // A tied head saved anyway (some tools write it) must be the embedding.
  const auto& [head_name, embedding_name] = layout.tied_head;
  if (!head_name.empty() && hf.count(head_name)) {
    auto embedding = std::find_if(layout.tensors.begin(), layout.tensors.end(),
                                  [&](const auto& t) { return t.hf_name == embedding_name; });
    const auto head = hf[head_name];
    if (embedding != layout.tensors.end() && ours.count(embedding->name) &&
        head.sizes() == ours[embedding->name].sizes() && torch::equal(head, ours[embedding->name].to(head.dtype())))
      hf.erase(head_name);
  }
  for (auto it = hf.begin(); it != hf.end();)  // rotary tables some exporters save: recomputed, not weights
    it = it->first.size() > 20 && it->first.ends_with(".rotary_emb.inv_freq") ? hf.erase(it) : std::next(it);
  for (auto& [name, tensor] : hf) ours[name] = std::move(tensor);
  return ours;
}

}  // namespace xlhost::core
