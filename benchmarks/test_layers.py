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
"""
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
    if device == "cuda":
        benchmark.extra_info["gpu ms"] = round(1e3 * bench.gpu_time(fn), 4)
