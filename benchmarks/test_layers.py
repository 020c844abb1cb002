"""Every benchmark layer (fastconv.bench.LAYERS, from real networks), numba and torch side by side.

    pytest benchmarks                      # all kinds (CPU: numba vs torch)
    pytest benchmarks -k depthwise         # one kind
    pytest benchmarks --benchmark-columns=median,ops --benchmark-group-by=group

pytest-benchmark groups the rows per layer, so each group shows the backends next to each other.
Compilation is paid in a warm-up call before timing. On a CUDA machine the triton backend joins in.

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

BACKENDS = ["numba", "torch"] + (["triton"] if torch.cuda.is_available() else [])


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("layer", bench.LAYERS, ids=[layer.id for layer in bench.LAYERS])
def test_layer(benchmark, layer, backend):
    if backend == "triton" and not layer_has_gpu_kernel(layer):
        pytest.skip(f"{layer.kind} has no triton kernel")
    fn = bench.callables(layer, (backend,))[backend]
    fn()                                        # warm-up: compile (numba, triton) outside the timing
    benchmark.group = layer.id
    benchmark.extra_info["flops"] = bench.flops(layer)
    benchmark.pedantic(fn, rounds=7, iterations=1, warmup_rounds=1)
    benchmark.extra_info["GFLOP/s"] = round(bench.flops(layer) / benchmark.stats.stats.median / 1e9, 2)
    if backend != "triton":
        peak = peak_bytes(fn)
        benchmark.extra_info["peak_MiB"] = None if peak is None else round(peak / 2**20, 1)


def layer_has_gpu_kernel(layer):
    from fastconv.api import get_spec
    return get_spec(layer.kind).gpu is not None


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
