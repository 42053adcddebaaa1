// Reader of Hugging Face's pytorch_model.bin: a torch.save zip whose data.pkl pickles an
// OrderedDict of tensors. LibTorch 1.13's pickle_load turns OrderedDict into None, so this is a
// small pickle machine for exactly what torch.save writes for a state dict (protocol 2: dicts,
// OrderedDict, tuples, strings, ints, storages by persistent id, _rebuild_tensor_v2). The zip
// container is read with LibTorch's PyTorchStreamReader.
#pragma once

#include <torch/torch.h>

#include <map>
#include <string>

namespace attnscope::models {

// name -> tensor; UsageError naming the file and what is not understood.
std::map<std::string, torch::Tensor> read_torch_state_dict(const std::string& path);

}  // namespace attnscope::models
