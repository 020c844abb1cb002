"""Benchmark layers from real networks, and a short timing loop for ``python -m fastconv bench``.

Each family lists its layers in ``BENCHMARKS`` (fastconv/families/*.py). The pytest-benchmark suite in
benchmarks/ and the CLI both read them from here, so the two always measure the same shapes.
"""
from __future__ import annotations

import statistics
import time
from typing import Callable

import numpy as np

from .api import get_spec, load, map_tensors, plan, run
from .families import adaptive, deformable, dynamic, factorized, standard
from .spec import BENCH_BATCH as BATCH
from .spec import Layer


LAYERS = [
    *standard.BENCHMARKS,
    *factorized.BENCHMARKS,
    *dynamic.BENCHMARKS,
    *deformable.BENCHMARKS,
    *adaptive.BENCHMARKS,
]


def tensors(layer: Layer, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    if layer.make is not None:
        return layer.make(rng, layer.shapes)
    return {name: rng.standard_normal(shape, dtype=np.float32) for name, shape in layer.shapes.items()}


def split(layer: Layer, arrays: dict):
    """The kind's positional tensors and keyword tensors, from a {name: tensor} dict."""
    spec = get_spec(layer.kind)
    args = [arrays[name] for name in spec.inputs if name in arrays]
    kwargs = {name: value for name, value in arrays.items() if name not in spec.inputs}
    return args, kwargs


def callables(layer: Layer, backends=("numba", "torch"), seed: int = 0) -> dict:
    """backend -> a zero-argument function running the layer (inputs already in the backend's format).

    "numba" times fastconv.run on numpy arrays; "torch" times the baseline on CPU tensors;
    "triton" times fastconv.run on CUDA tensors.
    """
    import torch
    arrays = tensors(layer, seed)
    args, kwargs = split(layer, arrays)
    checked = plan(layer.kind, *args, **kwargs, **layer.params)
    out = {}
    for backend in backends:
        if backend == "numba":
            out[backend] = lambda: run(layer.kind, *args, backend="numba", **kwargs, **layer.params)
        elif backend == "torch":
            spec = get_spec(layer.kind)
            fn = load(layer.baseline or spec.reference, "fastconv.reference")
            named = {name: map_tensors(torch.from_numpy, a) for name, a in arrays.items()}
            for name, shape in checked.reshape.items():
                named[name] = named[name].reshape(shape)
            out[backend] = lambda fn=fn, named=named: fn(**named, **checked.ref_params)
        elif backend == "triton":
            to_cuda = lambda a: torch.from_numpy(a).cuda()
            cuda_args = [map_tensors(to_cuda, a) for a in args]
            cuda_kwargs = {k: map_tensors(to_cuda, v) for k, v in kwargs.items()}

            def on_gpu():
                result = run(layer.kind, *cuda_args, backend="triton", **cuda_kwargs, **layer.params)
                torch.cuda.synchronize()
                return result
            out[backend] = on_gpu
        else:
            raise ValueError(f"unknown backend {backend!r}")
    return out


def flops(layer: Layer) -> int:
    args, kwargs = split(layer, layer.shapes)
    return plan(layer.kind, *args, **kwargs, **layer.params).cost["flops"]


def median_time(fn: Callable, repeat: int = 5, min_time: float = 0.0) -> float:
    """Median seconds of ``repeat`` calls after one warm-up call (which pays any compilation)."""
    fn()
    times = []
    while len(times) < repeat or sum(times) < min_time:
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def table(kinds=None, backends=("numba", "torch"), repeat: int = 5, progress=None) -> list[dict]:
    """Rows of (kind, layer, shape, milliseconds per backend, ratio first/last backend)."""
    import torch
    torch.set_num_threads(max(1, torch.get_num_threads()))
    rows = []
    chosen = [layer for layer in LAYERS if kinds is None or layer.kind in kinds]
    for layer in chosen:
        if progress:
            progress(layer)
        fns = callables(layer, backends)
        ms = {backend: 1e3 * median_time(fn, repeat) for backend, fn in fns.items()}
        first, last = backends[0], backends[-1]
        rows.append({"kind": layer.kind, "layer": layer.name,
                     "shape": " ".join(f"{k}{tuple(v)}" for k, v in layer.shapes.items()),
                     **{f"{b} ms": ms[b] for b in backends},
                     "ratio": ms[first] / ms[last],
                     "GFLOP/s": flops(layer) / (ms[first] * 1e6)})
    return rows
