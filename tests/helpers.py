"""Comparison and casting used by every correctness test."""
import contextlib

import numba
import numpy as np
import torch

import fastconv
from fastconv.spec import numel

EPS_TOLERANCE = {"float32": 2e-6, "float64": 1e-14, "float16": 2e-3, "bfloat16": 1.6e-2}


def _map(fn, value):
    if isinstance(value, (tuple, list)):
        return tuple(_map(fn, v) for v in value)
    if isinstance(value, np.ndarray):
        return fn(value)
    return value


def strided_copy(a: np.ndarray) -> np.ndarray:
    """The same values as a, as a non-contiguous view (every other element of a larger buffer)."""
    buffer = np.empty(a.shape[:-1] + (2 * a.shape[-1],), dtype=a.dtype) if a.ndim else a.copy()
    view = buffer[..., ::2]
    view[...] = a
    return view


def cast(case, dtype="float64", framework="numpy", contiguous=True):
    """The case's tensors as `dtype` numpy arrays or torch tensors, optionally non-contiguous."""
    def convert(a):
        a = a.astype(dtype) if framework == "numpy" else a
        if not contiguous:
            a = strided_copy(a)
        if framework == "torch":
            a = torch.from_numpy(a).to(getattr(torch, dtype)) if contiguous else \
                torch.from_numpy(a).to(getattr(torch, dtype))
        return a
    return _map(convert, case.args), {k: _map(convert, v) for k, v in case.kwargs.items()}


def to_numpy64(value):
    if isinstance(value, (tuple, list)):
        return tuple(to_numpy64(v) for v in value)
    if value is None:
        return None
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().float().numpy() if value.dtype == torch.bfloat16 else value.detach().cpu().numpy()
    return np.asarray(value, dtype=np.float64)


def reduction_length(kind, case):
    """Terms summed per output element (multiply-adds per output), which scales rounding error."""
    plan = fastconv.plan(kind, *case.args, **case.kwargs)
    shapes = plan.out_shape if isinstance(plan.out_shape[0], tuple) or plan.out_shape[0] is None \
        else (plan.out_shape,)
    outputs = sum(numel(s) for s in shapes if s is not None)
    return max(1, plan.cost["macs"] // max(1, outputs))


def assert_close(kind, case, got, want, dtype):
    """got (any dtype) against the float64 reference, with a tolerance that grows with the reduction."""
    got, want = to_numpy64(got), to_numpy64(want)
    if not isinstance(want, tuple):
        got, want = (got,), (want,)
    assert len(got) == len(want)
    terms = reduction_length(kind, case)
    for g, w in zip(got, want):
        if w is None:
            assert g is None
            continue
        assert g.shape == w.shape, f"shape {g.shape} != reference {w.shape}"
        scale = max(1.0, float(np.abs(w).max(initial=0.0)))
        tol = EPS_TOLERANCE[dtype] * terms * scale * 8
        err = float(np.abs(g - w).max(initial=0.0))
        assert err <= tol, f"{kind} {dtype}: max error {err:.3g} > tolerance {tol:.3g}"


def reference(kind, case):
    args, kwargs = cast(case, "float64", "numpy")
    return fastconv.run(kind, *args, backend="torch", **kwargs)


@contextlib.contextmanager
def one_thread():
    """Numba on one thread: kernels that size their tasks by the thread count (``images_per_task``) then
    give a task several images even at the tests' small batches."""
    threads = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        yield
    finally:
        numba.set_num_threads(threads)
