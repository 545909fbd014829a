#include "xlhost/core/checkpoint/safetensors.hpp"

#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <cstring>
#include <fstream>

#include "xlhost/core/util/error.hpp"

namespace xlhost::core {

namespace {

const std::vector<std::pair<torch::ScalarType, const char*>>& dtype_names() {
  static const std::vector<std::pair<torch::ScalarType, const char*>> names = {
      {torch::kFloat32, "F32"}, {torch::kFloat16, "F16"}, {torch::kBFloat16, "BF16"}, {torch::kFloat64, "F64"},
      {torch::kInt64, "I64"},   {torch::kInt32, "I32"},   {torch::kInt16, "I16"},    {torch::kInt8, "I8"},
      {torch::kUInt8, "U8"},    {torch::kBool, "BOOL"}};
  return names;
}

const char* dtype_name(torch::ScalarType t) {
  for (const auto& [type, name] : dtype_names())
    if (type == t) return name;
  throw std::invalid_argument(std::string("safetensors: unsupported dtype ") + c10::toString(t));
}

}  // namespace

void save_safetensors(const std::string& path, const std::vector<std::pair<std::string, torch::Tensor>>& tensors,
                      const std::map<std::string, std::string>& metadata) {
  std::vector<torch::Tensor> data;
  rapidjson::StringBuffer buffer;
  rapidjson::Writer<rapidjson::StringBuffer> writer(buffer);
  writer.StartObject();
  if (!metadata.empty()) {
    writer.Key("__metadata__");
    writer.StartObject();
    for (const auto& [k, v] : metadata) writer.Key(k.c_str()), writer.String(v.c_str());
    writer.EndObject();
  }
  uint64_t offset = 0;
  for (const auto& [name, tensor] : tensors) {
    auto t = tensor.detach().to(torch::kCPU).contiguous();
    const uint64_t bytes = t.numel() * t.element_size();
    writer.Key(name.c_str());
    writer.StartObject();
    writer.Key("dtype"), writer.String(dtype_name(t.scalar_type()));
    writer.Key("shape"), writer.StartArray();
    for (auto d : t.sizes()) writer.Int64(d);
    writer.EndArray();
    writer.Key("data_offsets"), writer.StartArray(), writer.Uint64(offset), writer.Uint64(offset + bytes), writer.EndArray();
    writer.EndObject();
    offset += bytes;
    data.push_back(t);
  }
  writer.EndObject();
  std::string header = buffer.GetString();
  header.append((8 - header.size() % 8) % 8, ' ');  // data starts 8-byte aligned
  std::ofstream out(path, std::ios::binary);
  uint64_t n = header.size();
  unsigned char len[8];
  for (int i = 0; i < 8; ++i) len[i] = static_cast<unsigned char>(n >> (8 * i));
  out.write(reinterpret_cast<const char*>(len), 8);
  out.write(header.data(), header.size());
  for (const auto& t : data) out.write(static_cast<const char*>(t.data_ptr()), t.numel() * t.element_size());
  if (!out) throw UserError(path + ": cannot write safetensors file");
}

std::map<std::string, torch::Tensor> load_safetensors(const std::string& path,
                                                      std::map<std::string, std::string>* metadata) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw UserError(path + ": cannot open safetensors file");
  unsigned char len[8];
  in.read(reinterpret_cast<char*>(len), 8);
  uint64_t n = 0;
  for (int i = 0; i < 8; ++i) n |= uint64_t(len[i]) << (8 * i);
  in.seekg(0, std::ios::end);
  const uint64_t file_size = static_cast<uint64_t>(in.tellg());
  if (!in || n > file_size - 8) throw UserError(path + ": not a safetensors file (bad header length)");
  std::string header(n, '\0');
  in.seekg(8);
  in.read(header.data(), n);
  rapidjson::Document doc;
  doc.Parse(header.c_str(), header.size());
  if (doc.HasParseError() || !doc.IsObject()) throw UserError(path + ": not a safetensors file (bad header JSON)");
  const uint64_t data_start = 8 + n;
  std::map<std::string, torch::Tensor> tensors;
  for (auto& m : doc.GetObject()) {
    const std::string name = m.name.GetString();
    if (name == "__metadata__") {
      if (metadata)
        for (auto& kv : m.value.GetObject()) (*metadata)[kv.name.GetString()] = kv.value.GetString();
      continue;
    }
    const auto& v = m.value;
    if (!v.IsObject() || !v.HasMember("dtype") || !v.HasMember("shape") || !v.HasMember("data_offsets"))
      throw UserError(path + ": tensor '" + name + "' lacks dtype, shape or data_offsets");
    const std::string dtype = v["dtype"].GetString();
    auto it = std::find_if(dtype_names().begin(), dtype_names().end(), [&](auto& p) { return dtype == p.second; });
    if (it == dtype_names().end()) throw UserError(path + ": tensor '" + name + "' has unsupported dtype " + dtype);
    std::vector<int64_t> shape;
    for (auto& d : v["shape"].GetArray()) shape.push_back(d.GetInt64());
    const uint64_t begin = v["data_offsets"][0].GetUint64(), end = v["data_offsets"][1].GetUint64();
    auto t = torch::empty(shape, torch::TensorOptions().dtype(it->first));
    if (end < begin || end - begin != static_cast<uint64_t>(t.numel() * t.element_size()) ||
        data_start + end > file_size)
      throw UserError(path + ": tensor '" + name + "' has inconsistent data offsets");
    in.seekg(static_cast<std::streamoff>(data_start + begin));
    in.read(static_cast<char*>(t.data_ptr()), static_cast<std::streamsize>(end - begin));
    if (!in) throw UserError(path + ": truncated while reading '" + name + "'");
    tensors[name] = t;
  }
  return tensors;
}

}  // namespace xlhost::core
