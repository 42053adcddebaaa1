// Stand-in for a header Debian's libtorch-dev 1.13 does not ship: c10d/reducer.hpp includes
// torch/csrc/distributed/autograd/context/context.h (distributed autograd, RPC) for two names
// only, a shared_ptr type and a callback typedef. attnscope never uses distributed autograd, so
// these declarations are all the Reducer's header needs; train/CMakeLists.txt adds this folder
// to the include path only when the real header is missing.
#pragma once

#include <ATen/core/Tensor.h>

#include <functional>
#include <memory>

namespace torch::distributed::autograd {

class DistAutogradContext {
 public:
  using GradCallback = std::function<bool(at::Tensor&)>;
};
using ContextPtr = std::shared_ptr<DistAutogradContext>;

}  // namespace torch::distributed::autograd
