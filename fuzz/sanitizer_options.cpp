// Default sanitizer options of the fuzz programs (ASAN_OPTIONS / UBSAN_OPTIONS / LSAN_OPTIONS still
// override them).
extern "C" const char* __asan_default_options() { return "detect_leaks=1:abort_on_error=1"; }
extern "C" const char* __ubsan_default_options() { return "print_stacktrace=1:halt_on_error=1"; }

// LibTorch 1.13 leaks miniz's reader state (a few hundred bytes) whenever PyTorchStreamReader's
// constructor throws after opening the zip (e.g. a corrupt "version" record): the destructor that
// calls mz_zip_reader_end never runs. That is LibTorch's, not ours; Debian's libtorch_cpu has no
// symbols to name the function, so allocations made inside that library are not reported as leaks.
// (Leaks of our own objects are allocated from our frames and are still reported.)
extern "C" const char* __lsan_default_suppressions() { return "leak:libtorch_cpu.so\n"; }
