"""Every benchmark layer (fastconv.bench.LAYERS, from real networks), numba and torch side by side.

    pytest benchmarks                      # all kinds (CPU: numba vs torch)
    pytest benchmarks -k depthwise         # one kind
    pytest benchmarks --benchmark-columns=median,ops --benchmark-group-by=group

pytest-benchmark groups the rows per layer, so each group shows the backends next to each other.
Compilation is paid in a warm-up call before timing. On a CUDA machine the triton backend joins in.
"""
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


def layer_has_gpu_kernel(layer):
    from fastconv.api import get_spec
    return get_spec(layer.kind).gpu is not None
