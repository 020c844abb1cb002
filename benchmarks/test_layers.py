"""Every benchmark layer (fastconv.bench.LAYERS, from real networks), the backends side by side.

    pytest benchmarks                      # all kinds (CPU: numba vs torch; GPU runs skipped without CUDA)
    pytest benchmarks -k depthwise         # one kind
    pytest benchmarks -k cuda              # only the GPU runs: triton vs torch (cuDNN), every dtype
    pytest benchmarks --benchmark-columns=median,ops --benchmark-group-by=group

pytest-benchmark groups the rows per layer, device and dtype, so each group shows the backends next to
each other. Compilation (and Triton's autotuning) is paid in a warm-up call before timing.
On the GPU both backends get the same inputs on the same device, in float32 (exact: cuDNN's TF32
default is turned off), tf32 (TF32 products for both), float16 and bfloat16. A timed GPU call ends
with torch.cuda.synchronize(), so it includes the Python launch overhead; extra_info["gpu ms"] is
the kernels' own time by CUDA events (fastconv.bench.gpu_time).

Peak memory: ``extra_info["peak_MiB"]`` is the resident memory one call adds at its peak — the output
plus every intermediate, whoever allocates it (numpy, Numba's runtime, torch's CPU allocator, the OS
for fresh pages). It is read from the kernel's counters: Linux resets the process's peak RSS (VmHWM)
when "5" is written to /proc/self/clear_refs, so peak − RSS before the call is what the call added.
Freed heap is handed back to the OS first (malloc_trim), so a call cannot hide its allocations in pages
an earlier call left resident. Linux only (None elsewhere); CPU backends only (device memory is not RSS).
"""
import ctypes
import gc

import pytest
import torch

from fastconv import bench
from fastconv.api import get_spec

RUNS = [("numba", "cpu", "float32"), ("torch", "cpu", "float32")] + \
       [(backend, "cuda", dtype) for dtype in bench.GPU_DTYPES for backend in ("triton", "torch")]


@pytest.mark.parametrize("backend, device, dtype", RUNS, ids=["-".join(run) for run in RUNS])
@pytest.mark.parametrize("layer", bench.LAYERS, ids=[layer.id for layer in bench.LAYERS])
def test_layer(benchmark, layer, backend, device, dtype):
    if device == "cuda" and not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    if device == "cuda" and get_spec(layer.kind).gpu is None:
        pytest.skip(f"{layer.kind} has no triton kernel")
    fn = bench.callables(layer, (backend,), dtype=dtype, device=device)[backend]
    timed = fn if device == "cpu" else lambda: (fn(), torch.cuda.synchronize())
    timed()                                     # warm-up: compile (numba, triton) outside the timing
    benchmark.group = f"{layer.id} {device} {dtype}"
    benchmark.extra_info["flops"] = bench.flops(layer)
    benchmark.pedantic(timed, rounds=7, iterations=1, warmup_rounds=1)
    benchmark.extra_info["GFLOP/s"] = round(bench.flops(layer) / benchmark.stats.stats.median / 1e9, 2)
    if device == "cpu":
        peak = peak_bytes(fn)
        benchmark.extra_info["peak_MiB"] = None if peak is None else round(peak / 2**20, 1)
    else:
        benchmark.extra_info["gpu ms"] = round(1e3 * bench.gpu_time(fn), 4)


def _status_kib(field):
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])


def peak_bytes(fn):
    """Resident bytes that one call of fn adds at its peak (Linux), or None where that cannot be read."""
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
        with open("/proc/self/clear_refs", "w") as clear:
            clear.write("5")                    # peak RSS := current RSS
    except (OSError, AttributeError):
        return None
    before = _status_kib("VmRSS")
    result = fn()
    peak = _status_kib("VmHWM")
    del result
    return 1024 * (peak - before)
