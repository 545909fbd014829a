#include "xlhost/core/checkpoint/safetensors.hpp"

#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <algorithm>
#include <cstring>
#include <fstream>

#include "xlhost/core/util/error.hpp"
#include "xlhost/core/util/file_io.hpp"
#include "xlhost/core/util/json.hpp"

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
  FileWriter out(path);
  const uint64_t n = header.size();
  unsigned char len[8];
  for (int i = 0; i < 8; ++i) len[i] = static_cast<unsigned char>(n >> (8 * i));
  out.write(len, 8);
  out.write(header);
  for (const auto& t : data) out.write(t.data_ptr(), t.numel() * t.element_size());
  out.finish();
}

namespace {

// One tensor entry of the header, every field checked against the file before any
// allocation: a mangled header is an error naming the tensor, never a crash.
torch::Tensor read_tensor(std::ifstream& in, const std::string& path, const std::string& name, const rapidjson::Value& v,
                          uint64_t data_start, uint64_t file_size) {
  const JsonFields fields(v, path + ": tensor '" + name + "'");
  const std::string dtype = fields.string("dtype");
  auto it = std::find_if(dtype_names().begin(), dtype_names().end(), [&](auto& p) { return dtype == p.second; });
  if (it == dtype_names().end()) throw UserError(path + ": tensor '" + name + "' has unsupported dtype " + dtype);
  const auto element_size = static_cast<uint64_t>(c10::elementSize(it->first));
  std::vector<int64_t> shape;
  uint64_t numel = 1, span = 1;  // span: the extents' product with 0 as 1, what LibTorch's strides must hold
  for (const auto& d : fields.array("shape").GetArray()) {
    if (!d.IsInt64() || d.GetInt64() < 0)
      throw UserError(path + ": tensor '" + name + "' has a shape entry that is not a non-negative integer");
    const auto extent = static_cast<uint64_t>(d.GetInt64());
    if (extent != 0 && numel > file_size / extent) throw UserError(path + ": tensor '" + name + "' is larger than the file");
    if (extent != 0 && span > (uint64_t{1} << 62) / extent)  // an empty tensor of absurd extents
      throw UserError(path + ": tensor '" + name + "' has a shape whose strides overflow");
    numel *= extent, span *= std::max<uint64_t>(extent, 1);
    shape.push_back(d.GetInt64());
  }
  const auto& offsets = fields.array("data_offsets");
  if (offsets.Size() != 2 || !offsets[0].IsUint64() || !offsets[1].IsUint64())
    throw UserError(path + ": tensor '" + name + "' needs data_offsets [begin, end] of non-negative integers");
  const uint64_t begin = offsets[0].GetUint64(), end = offsets[1].GetUint64();
  if (end < begin || end - begin != numel * element_size || end > file_size - data_start)
    throw UserError(path + ": tensor '" + name + "' has inconsistent data offsets");
  auto t = torch::empty(shape, torch::TensorOptions().dtype(it->first));
  in.seekg(static_cast<std::streamoff>(data_start + begin));
  in.read(static_cast<char*>(t.data_ptr()), static_cast<std::streamsize>(end - begin));
  if (!in) throw UserError(path + ": truncated while reading '" + name + "'");
  return t;
}

}  // namespace

std::map<std::string, torch::Tensor> load_safetensors(const std::string& path,
                                                      std::map<std::string, std::string>* metadata) {
  require_regular_file(path, "safetensors");
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in) throw UserError(path + ": cannot open safetensors file");
  const uint64_t file_size = static_cast<uint64_t>(in.tellg());
  unsigned char len[8];
  in.seekg(0);
  in.read(reinterpret_cast<char*>(len), 8);
  uint64_t n = 0;
  for (int i = 0; i < 8; ++i) n |= uint64_t(len[i]) << (8 * i);
  if (!in || file_size < 8 || n > file_size - 8) throw UserError(path + ": not a safetensors file (bad header length)");
  std::string header(n, '\0');
  in.read(header.data(), static_cast<std::streamsize>(n));
  rapidjson::Document doc;
  if (parse_json_into(doc, header) || !doc.IsObject())
    throw UserError(path + ": not a safetensors file (bad header JSON)");
  std::map<std::string, torch::Tensor> tensors;
  for (auto& m : doc.GetObject()) {
    const std::string name = m.name.GetString();
    if (name != "__metadata__") {
      tensors[name] = read_tensor(in, path, name, m.value, 8 + n, file_size);
    } else if (metadata) {
      if (!m.value.IsObject()) throw UserError(path + ": __metadata__ is not an object");
      for (auto& kv : m.value.GetObject())
        if (kv.value.IsString()) (*metadata)[kv.name.GetString()] = kv.value.GetString();
    }
  }
  return tensors;
}

}  // namespace xlhost::core
