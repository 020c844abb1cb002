"""Benchmark layers from real networks, and a short timing loop for ``python -m fastconv bench``.

Each family lists its layers in ``BENCHMARKS`` (fastconv/families/*.py). The pytest-benchmark suite in
benchmarks/ and the CLI both read them from here, so the two always measure the same shapes.
"""
from __future__ import annotations

import os
import statistics
import time
from typing import Callable

import numpy as np

from .api import get_spec, load, map_tensors, plan, run
from .families import adaptive, deformable, dynamic, factorized, standard
from .spec import BENCH_BATCH as BATCH
from .spec import Layer


# Large buffers on both sides of the comparison get huge pages. numpy asks for them by itself (madvise on
# arrays of 4 MB and more); torch's CPU allocator does only with this variable, read once before its first
# allocation, so it must be set before torch is imported. Without it, torch pays a 4 KB page fault per page
# of every fresh output and layout copy: on the shared VM these benchmarks were tuned on, first-touching
# 14 MB cost 2–44 ms, which made torch's NCHW timings swing 3–6× from run to run. With it the comparison is
# between the kernels, not the page-fault handler.
os.environ.setdefault("THP_MEM_ALLOC_ENABLE", "1")

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


GPU_DTYPES = ("float32", "tf32", "float16", "bfloat16")     # tf32: float32 tensors, TF32 products allowed


def callables(layer: Layer, backends=("numba", "torch"), seed: int = 0, dtype: str = "float32",
              device: str | None = None) -> dict:
    """backend -> a zero-argument function running the layer (inputs already in the backend's format).

    "numba" times fastconv.run on numpy arrays; "torch" times the baseline and "triton" fastconv.run
    on torch tensors on ``device``, which defaults to "cuda" when "triton" is among the backends (the
    baseline then runs on the same GPU), else "cpu".
    ``dtype``: float32 (on CUDA exact for triton and cuDNN alike: cuDNN's TF32 default is turned off),
    tf32 (float32 tensors, TF32 products allowed for both), float16 or bfloat16 (triton and torch),
    or float64. CUDA functions are asynchronous: time them with ``gpu_time`` (or synchronize).
    """
    import torch
    device = device or ("cuda" if "triton" in backends else "cpu")
    on_gpu = device.startswith("cuda")
    if dtype not in (*GPU_DTYPES, "float64"):
        raise ValueError(f"dtype must be one of {', '.join(GPU_DTYPES)} or float64, got {dtype!r}")
    tf32 = dtype == "tf32"
    torch_dtype = torch.float32 if tf32 else getattr(torch, dtype)
    arrays = tensors(layer, seed)           # float32; cast below for the CPU's float64 or on the GPU
    if dtype == "float64":
        arrays = {name: map_tensors(lambda a: a.astype(dtype), a) for name, a in arrays.items()}
    args, kwargs = split(layer, arrays)
    checked = plan(layer.kind, *args, **kwargs, **layer.params)

    def on(a, where):
        """numpy array, or a tuple of them (octave's), as torch tensors of the run's dtype on ``where``."""
        return map_tensors(lambda t: torch.from_numpy(t).to(device=where, dtype=torch_dtype), a)

    def precise(fn):
        """fn under the dtype's TF32 setting, for cuDNN and for the triton kernels (which follow
        torch.backends.cuda.matmul.allow_tf32)."""
        if not on_gpu:
            return fn

        def call():
            saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
            torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = tf32
            try:
                return fn()
            finally:
                torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved
        return call

    out = {}
    for backend in backends:
        if backend == "numba":
            out[backend] = lambda: run(layer.kind, *args, backend="numba", **kwargs, **layer.params)
        elif backend == "torch":
            spec = get_spec(layer.kind)
            fn = load(layer.baseline or spec.reference, "fastconv.reference")
            named = {name: on(a, device) for name, a in arrays.items()}
            for name, shape in checked.reshape.items():
                named[name] = named[name].reshape(shape)
            out[backend] = precise(lambda fn=fn, named=named: fn(**named, **checked.ref_params))
        elif backend == "triton":
            gpu_args = [on(a, device) for a in args]
            gpu_kwargs = {k: on(v, device) for k, v in kwargs.items()}
            out[backend] = precise(lambda: run(layer.kind, *gpu_args, backend="triton", **gpu_kwargs,
                                               **layer.params))
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


def interleaved_medians(fns: dict, repeat: int = 5, block: int = 3) -> dict:
    """Median seconds of each function over ``repeat`` timed calls, the backends taking turns by blocks
    (a, a, a, b, b, b, a, ...), each block opened by one untimed call.

    Why in turns: on a shared machine speed drifts for seconds at a time; alternating puts every backend
    into the same stretches, so the ratio holds even when the absolute times move (timed one after the
    other, a ratio on this VM swung by 2×).  Why blocks with an untimed first call: numba's and torch's
    OpenMP runtimes are two separate thread pools on the same 2 cores, and a call right after the other
    backend's call ran far slower (numba: 12 ms right after each torch call, 4.5 ms in a row; setting
    OMP_WAIT_POLICY=PASSIVE did not change it), so the switch is paid by a call that is not timed."""
    times = {name: [] for name in fns}
    while any(len(t) < repeat for t in times.values()):
        for name, fn in fns.items():
            fn()                                        # untimed: the other pool's threads settle
            for _ in range(min(block, repeat - len(times[name]))):
                start = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def gpu_time(fn: Callable) -> float:
    """Median seconds of an asynchronous CUDA function, by CUDA events (triton.testing.do_bench: warm-up
    first, which pays compilation and autotuning, and the L2 cache flushed before every call)."""
    from triton.testing import do_bench
    fn()
    return 1e-3 * do_bench(fn, return_mode="median")


def table(kinds=None, backends=("numba", "torch"), repeat: int = 5, progress=None,
          dtype: str = "float32", runs: int = 1) -> list[dict]:
    """Rows of (kind, layer, shape, milliseconds per backend, ratio first/last backend).

    With "triton" among the backends the torch baseline runs on the GPU too, and ``dtype`` may be
    any of GPU_DTYPES; GPU times come from CUDA events (``gpu_time``).
    runs > 1 times the whole list that many times, one pass after the other, and reports per layer the
    median milliseconds, the median ratio and its range ("ratio range"): on a shared machine a single
    pass can catch one backend in a slow stretch that lasts the whole layer."""
    passes = [_table_once(kinds, backends, repeat, progress, dtype) for _ in range(runs)]
    if runs == 1:
        return passes[0]
    rows = []
    for i, first in enumerate(passes[0]):
        same = [p[i] for p in passes]
        ratios = sorted(r["ratio"] for r in same)
        row = {**first, **{f"{b} ms": statistics.median(r[f"{b} ms"] for r in same) for b in backends}}
        row["ratio"] = statistics.median(ratios)
        row["GFLOP/s"] = statistics.median(r["GFLOP/s"] for r in same)
        row["ratio range"] = f"{ratios[0]:.2f}–{ratios[-1]:.2f}"
        rows.append(row)
    return rows


def _table_once(kinds, backends, repeat, progress, dtype) -> list[dict]:
    """One pass of ``table``."""
    import torch
    torch.set_num_threads(max(1, torch.get_num_threads()))
    rows = []
    chosen = [layer for layer in LAYERS if kinds is None or layer.kind in kinds]
    for layer in chosen:
        if "triton" in backends and get_spec(layer.kind).gpu is None:
            continue
        if progress:
            progress(layer)
        fns = callables(layer, backends, dtype=dtype)
        on_gpu = "triton" in backends             # then every backend but numba runs on the GPU
        if on_gpu:
            ms = {backend: 1e3 * (median_time(fn, repeat) if backend == "numba" else gpu_time(fn))
                  for backend, fn in fns.items()}
        else:
            ms = {backend: 1e3 * seconds for backend, seconds in interleaved_medians(fns, repeat).items()}
        first, last = backends[0], backends[-1]
        rows.append({"kind": layer.kind, "layer": layer.name,
                     "shape": " ".join(f"{k}{tuple(v)}" for k, v in layer.shapes.items()),
                     **{f"{b} ms": ms[b] for b in backends},
                     "ratio": ms[first] / ms[last],
                     "GFLOP/s": flops(layer) / (ms[first] * 1e6)})
    return rows
