// Process-wide settings every attnscope executable (the CLI, the benchmarks) starts with.
#pragma once

namespace attnscope {

// Call first in main(). Ignores SIGXFSZ (a file-size limit fails a write with EFBIG, reported
// with its path, instead of killing the process halfway through a file); keeps large blocks on
// the heap (glibc would return every block over 32 MB to the kernel and fault it in zeroed again
// each training step: GPT-2-small 7.8 -> 5.2 s/step); and, unless OMP_WAIT_POLICY or
// GOMP_SPINCOUNT is set, re-executes the program once with GOMP_SPINCOUNT=10000. libgomp reads it
// only at start-up; by default LibTorch's OpenMP threads spin for ~300,000 iterations after
// each parallel region, while OpenBLAS's own pthreads run the next matrix product on the same
// cores: measured on 2 cores, GPT-2-small steps 5.13 -> 3.20 s (the step's matrix products
// 66 % -> 84 % of sgemm), RoBERTa (zinc-base-v1) 3.50 -> 2.59 s, min/max unchanged
// (bench/gpt2_step_bench, bench/roberta_step_bench). Returns normally when no re-exec was needed
// or possible.
void configure_process(char** argv);

// OpenBLAS's own thread count (its pthreads; one setting for the whole process, unlike OpenMP's
// per-thread count): `attnscope serve` sets 1 when each of its workers runs on a core of its own
// (measured with perf: 2 workers on 2 cores each calling sgemm with 2 OpenBLAS threads, ~30 % of
// the samples in sched_yield and the kernel under it). False when the BLAS in use is not OpenBLAS (nothing changed).
bool set_blas_threads(int n);

}  // namespace attnscope
