// safetensors reader (models/safetensors.h).
#include "models/safetensors.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdint>
#include <cstring>

#include "core/core.h"

namespace attnscope::models {

std::map<std::string, torch::Tensor> read_safetensors(const std::string& path) {
  const std::string bytes = read_file(path);
  auto bad = [&](const std::string& what) { return UsageError("'" + path + "' is not a valid safetensors file: " + what); };
  if (bytes.size() < 8) throw bad("shorter than its 8-byte header length");
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | static_cast<unsigned char>(bytes[i]);
  if (n > bytes.size() - 8) throw bad("header length " + std::to_string(n) + " exceeds the file");
  nlohmann::json header;
  try {
    header = nlohmann::json::parse(bytes.begin() + 8, bytes.begin() + 8 + static_cast<std::ptrdiff_t>(n));
  } catch (const std::exception& e) {
    throw bad(std::string("header JSON: ") + e.what());
  }
  static const std::map<std::string, std::pair<torch::ScalarType, size_t>> kTypes = {
      {"F32", {torch::kFloat, 4}}, {"F16", {torch::kHalf, 2}},   {"BF16", {torch::kBFloat16, 2}},
      {"F64", {torch::kDouble, 8}}, {"I64", {torch::kLong, 8}}, {"I32", {torch::kInt, 4}}};
  if (!header.is_object()) throw bad("the header is not a JSON object");
  const size_t data_start = 8 + n, data_size = bytes.size() - data_start;
  // shape and data_offsets hold non-negative integers only: converting a negative or a float such
  // as 1e300 to a size would wrap or be undefined.
  auto sizes = [&](const std::string& name, const nlohmann::json& info, const char* key) {
    const auto& list = info.at(key);
    if (!list.is_array()) throw bad("tensor '" + name + "': " + key + " is not a list");
    std::vector<uint64_t> v;
    for (const auto& x : list) {
      if (!x.is_number_unsigned()) throw bad("tensor '" + name + "': " + key + " holds something other than a non-negative integer");
      v.push_back(x.get<uint64_t>());
    }
    return v;
  };
  std::map<std::string, torch::Tensor> out;
  for (const auto& [name, info] : header.items()) {
    if (name == "__metadata__") continue;
    try {
      const auto type = kTypes.find(info.at("dtype").get<std::string>());
      if (type == kTypes.end()) throw bad("tensor '" + name + "' has unsupported dtype " + info.at("dtype").dump());
      const auto shape = sizes(name, info, "shape");
      const auto off = sizes(name, info, "data_offsets");
      // The bytes the shape needs, checked for overflow before anything is allocated: with the
      // comparison against data_offsets below, no tensor is larger than the file.
      const bool empty = std::find(shape.begin(), shape.end(), uint64_t{0}) != shape.end();
      uint64_t nbytes = type->second.second;
      std::vector<int64_t> dims;
      for (auto d : shape) {
        if (d > static_cast<uint64_t>(INT64_MAX) || (!empty && __builtin_mul_overflow(nbytes, d, &nbytes))) {
          throw bad("tensor '" + name + "' has a shape larger than the file");
        }
        dims.push_back(static_cast<int64_t>(d));
      }
      if (empty) nbytes = 0;
      if (off.size() != 2 || off[1] < off[0] || off[1] > data_size || off[1] - off[0] != nbytes) {
        throw bad("tensor '" + name + "' has data_offsets that do not match its shape and the file");
      }
      auto t = torch::empty(dims, type->second.first);
      if (nbytes > 0) std::memcpy(t.data_ptr(), bytes.data() + data_start + off[0], nbytes);
      out[name] = t;
    } catch (const nlohmann::json::exception& e) {
      throw bad("tensor '" + name + "': " + e.what());
    }
  }
  return out;
}

void write_safetensors(const std::string& path, const std::map<std::string, torch::Tensor>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  static const std::map<torch::ScalarType, std::string> kNames = {
      {torch::kFloat, "F32"}, {torch::kHalf, "F16"}, {torch::kBFloat16, "BF16"},
      {torch::kDouble, "F64"}, {torch::kLong, "I64"}, {torch::kInt, "I32"}};
  nlohmann::json header = nlohmann::json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::string data;
  for (const auto& [name, t] : tensors) {  // std::map: sorted names, as safetensors writes them
    const auto c = t.detach().to(torch::kCPU).contiguous();
    auto type = kNames.find(c.scalar_type());
    if (type == kNames.end()) throw std::invalid_argument("write_safetensors: unsupported dtype of '" + name + "'");
    const size_t begin = data.size(), bytes = c.numel() * c.element_size();
    data.append(static_cast<const char*>(c.data_ptr()), bytes);
    header[name] = {{"dtype", type->second}, {"shape", c.sizes().vec()}, {"data_offsets", {begin, begin + bytes}}};
  }
  std::string h = header.dump();
  h.append((8 - h.size() % 8) % 8, ' ');
  std::string out(8, '\0');
  uint64_t n = h.size();
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>((n >> (8 * i)) & 0xFF);
  write_file_atomic(path, out + h + data);
}

}  // namespace attnscope::models
