// attnscope's version, written into every file it produces.
#pragma once

namespace attnscope {
constexpr const char* kVersion = "0.1.0";
}  // namespace attnscope
