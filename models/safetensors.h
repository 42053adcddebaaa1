// Reader of the safetensors format (Hugging Face): an 8-byte little-endian header length, a JSON
// header {name: {dtype, shape, data_offsets}}, then the raw little-endian tensor data.
#pragma once

#include <torch/torch.h>

#include <map>
#include <string>

namespace attnscope::models {

// All tensors of `path` (F32, F16, BF16, F64, I64, I32 as stored); UsageError naming the file
// and the tensor for a malformed header, unknown dtype or out-of-range offsets.
std::map<std::string, torch::Tensor> read_safetensors(const std::string& path);

// Writes tensors (contiguous copies, their own dtypes) as a safetensors file, atomically; the
// header is padded to a multiple of 8 bytes as Hugging Face's writer does. `metadata` goes
// under "__metadata__" (e.g. {"format": "pt"}).
void write_safetensors(const std::string& path, const std::map<std::string, torch::Tensor>& tensors,
                       const std::map<std::string, std::string>& metadata = {{"format", "pt"}});

}  // namespace attnscope::models
