"""Every kind with a Triton kernel against the reference: on a CUDA device when there is one, else in
interpreter mode (TRITON_INTERPRET=1, set by conftest.py) on CPU tensors with the same tiny shapes.

What the interpreter cannot show (tile-size rules of tl.dot, shared memory, what Triton specialises)
is checked by compiling every kernel for an H100 without running it (tests/gpu_compile.py)."""
import importlib
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import fastconv
from fastconv.api import get_spec, load
from helpers import assert_close, cast, reference
from cases import STRATEGIES

pytestmark = pytest.mark.triton
DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
TRITON_KINDS = [k for k in fastconv.kinds() if get_spec(k).gpu]


def to_device(value):
    if isinstance(value, torch.Tensor):
        return value.to(DEVICE)
    if isinstance(value, tuple):
        return tuple(to_device(v) for v in value)
    return value


def gpu_module(kind):
    return importlib.import_module("fastconv.kernels." + get_spec(kind).gpu.split(":")[0])


def draw_call(kind, data, dtype):
    case = data.draw(STRATEGIES[kind], label="case")
    args, kwargs = cast(case, dtype, "torch")
    return case, to_device(args), {k: to_device(v) for k, v in kwargs.items()}


@pytest.mark.parametrize("kind", TRITON_KINDS)
@settings(max_examples=4)    # the interpreter is slow: a few draws per kind in CI
@given(data=st.data())
def test_triton_matches_reference(kind, data):
    case, args, kwargs = draw_call(kind, data, "float32")
    got = fastconv.run(kind, *args, backend="triton", **kwargs)
    assert_close(kind, case, got, reference(kind, case), "float32")


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
@pytest.mark.parametrize("kind", TRITON_KINDS)
@settings(max_examples=2)
@given(data=st.data())
def test_triton_half_precision(kind, dtype, data):
    """16-bit inputs, float32 accumulation, the result in the input dtype (tolerance of that dtype)."""
    case, args, kwargs = draw_call(kind, data, dtype)
    got = fastconv.run(kind, *args, backend="triton", **kwargs)
    for tensor in got if isinstance(got, tuple) else (got,):     # octave returns (y_h, y_l)
        assert tensor is None or tensor.dtype == getattr(torch, dtype)
    assert_close(kind, case, got, reference(kind, case), dtype)


@pytest.mark.parametrize("kind", [k for k in TRITON_KINDS if get_spec(k).alias_of is None
                                  and hasattr(gpu_module(k), "VERSIONS")])
@settings(max_examples=4)
@given(data=st.data())
def test_every_triton_version_matches_reference(kind, data):
    """Each kernel of a wrapper (direct, implicit GEMM, ...), not only the one "auto" picks."""
    spec = get_spec(kind)
    case, args, kwargs = draw_call(kind, data, "float32")
    plan = fastconv.plan(kind, *case.args, **case.kwargs)
    tensors = {**dict(zip(spec.inputs, args)), **{k: v for k, v in kwargs.items() if k in spec.tensor_params}}
    want = reference(kind, case)
    for version in gpu_module(kind).VERSIONS:
        got = load(spec.gpu, "fastconv.kernels")(**tensors, **plan.kernel_params, version=version)
        assert_close(kind, case, got, want, "float32")


@pytest.mark.parametrize("layout", ["channels_last", "strided"])
@pytest.mark.parametrize("kind, w_shape, params", [
    ("conv2d", (32, 16, 3, 3), dict(padding=1)),                    # C = 16: no copy to channels-last
    ("conv2d", (32, 8, 3, 3), dict(padding=1, groups=2)),           # grouped, Cg = 8
    ("depthwise", (32, 1, 3, 3), dict(padding=1, stride=2)),        # direct kernel on any strides
    ("conv_transpose2d", (16, 8, 2, 2), dict(stride=2)),
])
def test_triton_any_input_layout(kind, w_shape, params, layout):
    """The wrappers read x through its strides (channels-last or a strided view): same result."""
    rng = np.random.default_rng(0)
    x = torch.from_numpy(rng.standard_normal((2, 16, 7, 9), dtype=np.float32))
    w = torch.from_numpy(rng.standard_normal(w_shape, dtype=np.float32))
    want = fastconv.run(kind, x, w, backend="torch", **params)
    if layout == "channels_last":
        x = x.to(memory_format=torch.channels_last)
    else:
        buffer = torch.zeros(x.shape[:3] + (2 * x.shape[3],))
        buffer[..., ::2] = x
        x = buffer[..., ::2]                                         # every other column of a wider buffer
    got = fastconv.run(kind, to_device(x), to_device(w), backend="triton", **params)
    assert got.is_contiguous()
    torch.testing.assert_close(got.cpu(), want, rtol=1e-5, atol=1e-5)


def test_float32_is_exact_unless_tf32_is_asked_for():
    from fastconv.kernels._gpu_gemm import dtype_params
    assert dtype_params(torch.float32, None)["PRECISION"] == "ieee"
    assert dtype_params(torch.float32, True)["PRECISION"] == "tf32"
    assert dtype_params(torch.bfloat16, True)["PRECISION"] == "ieee"   # only float32 has a tf32 mode
    saved = torch.backends.cuda.matmul.allow_tf32
    try:
        torch.backends.cuda.matmul.allow_tf32 = True                   # None follows torch's flag
        assert dtype_params(torch.float32, None)["PRECISION"] == "tf32"
    finally:
        torch.backends.cuda.matmul.allow_tf32 = saved


def test_kernels_compile_for_h100():
    """Every kernel, float32 and bfloat16, its largest tile: compiled for sm_90 (no GPU needed)."""
    pytest.importorskip("triton.backends.nvidia.compiler")
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    script = os.path.join(os.path.dirname(__file__), "gpu_compile.py")
    result = subprocess.run([sys.executable, script, "--quick"], env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "tensor cores" in result.stdout


@pytest.mark.parametrize("dtype", ["float32", "tf32", "float16", "bfloat16"])
def test_benchmark_callables_on_the_triton_device(dtype):
    """fastconv.bench's GPU comparison (triton and the torch baseline on one device, every GPU dtype),
    on a tiny layer so that the interpreter can run it."""
    from fastconv import bench
    from fastconv.spec import Layer
    layers = [Layer("conv2d", "tiny", {"x": (1, 4, 6, 5), "w": (16, 4, 3, 3)}, {"padding": 1}),
              Layer("depthwise", "tiny", {"x": (1, 4, 6, 5), "w": (8, 1, 3, 3)}, {"padding": 1}),
              Layer("transposed", "tiny", {"x": (1, 4, 3, 3), "w": (4, 16, 2, 2)}, {"stride": 2})]
    for layer in layers:
        fns = bench.callables(layer, ("triton", "torch"), dtype=dtype, device=DEVICE)
        got, want = fns["triton"](), fns["torch"]()
        assert got.dtype == want.dtype == (torch.float32 if dtype == "tf32" else getattr(torch, dtype))
        torch.testing.assert_close(got.float(), want.float(), rtol=2e-2, atol=2e-2)


@pytest.mark.parametrize("dtype, chosen", [("float32", "triton"), ("float16", "triton"), ("bfloat16", "triton"),
                                           ("float64", "torch")])
def test_auto_backend_for_cuda_tensors(dtype, chosen):
    """backend="auto" runs CUDA tensors on the triton kernels, except float64 (torch computes it)."""
    from fastconv.api import TensorInfo, choose_backend
    info = TensorInfo("torch", dtype, "cuda:0", 8 if dtype == "float64" else 4)
    assert choose_backend("auto", get_spec("conv2d"), info) == chosen
