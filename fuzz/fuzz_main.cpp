// One libFuzzer program per entry of fuzz/fuzz_entries.h: FUZZ_ENTRY names it (fuzz/CMakeLists.txt).
#include "fuzz/fuzz_entries.h"

#ifndef FUZZ_ENTRY
#error "FUZZ_ENTRY must name an entry of fuzz/fuzz_entries.h"
#endif

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  return attnscope::fuzz::FUZZ_ENTRY(data, size);
}
