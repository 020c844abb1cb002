"""Every wrong input of the standard family gets a ValueError/TypeError naming the parameter, before any
kernel runs (Numba kernels have no bounds checks)."""
import numpy as np
import pytest
import torch

import fastconv

X = np.zeros((2, 4, 8, 8), np.float32)
W = np.zeros((6, 4, 3, 3), np.float32)
WT = np.zeros((4, 3, 3, 3), np.float32)      # transposed: (Cin, Cout/groups, kh, kw)


def f32(*shape):
    return np.zeros(shape, np.float32)


BAD = [
    # (kind, x, w, params, error, message pattern)
    ("conv2d", f32(4, 8, 8), W, {}, ValueError, r"x must be 4-D \(B, Cin, H, W\)"),
    ("conv2d", X, f32(6, 4, 3), {}, ValueError, r"w must be 4-D"),
    ("conv1d", X, W, {}, ValueError, r"x must be 3-D"),
    ("conv2d", X, f32(6, 3, 3, 3), {}, ValueError, r"w.shape\[1\] must be in_channels/groups = 4/1 = 4, got 3"),
    ("conv2d", X, f32(6, 2, 3, 3), {"groups": 3}, ValueError, r"groups=3 must divide in_channels=4"),
    ("conv2d", X, f32(5, 2, 3, 3), {"groups": 2}, ValueError, r"groups=2 must divide out_channels=5"),
    ("conv2d", X, W, {"groups": 0}, ValueError, r"groups must be positive"),
    ("conv2d", X, W, {"groups": 1.5}, TypeError, r"groups must be an int"),
    ("conv2d", X, W, {"stride": 0}, ValueError, r"stride must be positive"),
    ("conv2d", X, W, {"stride": (1, -2)}, ValueError, r"stride must be positive"),
    ("conv2d", X, W, {"stride": (1, 2, 3)}, TypeError, r"stride must be an int or a tuple of 2 ints"),
    ("conv2d", X, W, {"dilation": 0}, ValueError, r"dilation must be positive"),
    ("conv2d", X, W, {"padding": -1}, ValueError, r"padding must be >= 0"),
    ("conv2d", X, W, {"padding": "full"}, ValueError, r"padding must be 'same', 'valid'"),
    ("conv2d", X, W, {"padding": "same", "stride": 2}, ValueError, r"padding='same' needs stride=1"),
    ("conv2d", X, f32(6, 4, 9, 9), {}, ValueError, r"kernel size \(9, 9\).*larger than the padded input"),
    ("conv2d", X, W, {"dilation": 4}, ValueError, r"larger than the padded input"),
    ("conv2d", X, W, {"bias": f32(5)}, ValueError, r"bias must have shape \(6,\)"),
    ("depthwise", X, f32(8, 2, 3, 3), {}, ValueError, r"w must have shape \(C·m, 1, kh, kw\)"),
    ("depthwise", X, f32(8, 1, 3, 3), {"groups": 2}, ValueError, r"groups must equal in_channels=4"),
    ("pointwise", X, W, {}, ValueError, r"w must be a 1×1 kernel"),
    ("pointwise", X, f32(6, 3), {}, ValueError, r"w.shape\[1\] must be in_channels/groups"),
    ("conv_transpose2d", X, f32(3, 3, 3, 3), {}, ValueError, r"w.shape\[0\] must be in_channels = 4"),
    ("conv_transpose2d", X, WT, {"output_padding": 2, "stride": 2}, ValueError,
     r"output_padding must be smaller than max\(stride, dilation\)"),
    ("conv_transpose2d", X, WT, {"output_padding": 1}, ValueError, r"output_padding must be smaller"),
    ("conv_transpose2d", X, WT, {"padding": "same"}, ValueError, r"padding must be an int or a tuple"),
    ("conv_transpose2d", X, WT, {"padding": 6}, ValueError, r"padding=\(6, 6\) crops the whole output"),
    ("conv_transpose2d", X, WT, {"groups": 3}, ValueError, r"groups=3 must divide in_channels=4"),
    ("conv_transpose2d", X, WT, {"bias": f32(4)}, ValueError, r"bias must have shape \(3,\)"),
    # types, dtypes, devices, names
    ("conv2d", X.astype(np.int32), W.astype(np.int32), {}, TypeError, r"x has dtype int32: fastconv computes in floating point"),
    ("conv2d", X.astype(np.complex64), W, {}, TypeError, r"x has dtype complex64"),
    ("conv2d", X, W.astype(np.float64), {}, TypeError, r"w has dtype float64 but x has float32"),
    ("conv2d", X, torch.zeros(6, 4, 3, 3), {}, TypeError, r"w is a torch array but x is a numpy array"),
    ("conv2d", X.tolist(), W, {}, TypeError, r"x must be a numpy array or a torch tensor, got list"),
    ("conv2d", X, None, {}, ValueError, r"w is required"),
    ("conv2d", X, W, {"strides": 2}, TypeError, r"unknown parameter 'strides'; valid parameters: bias, stride"),
    ("conv2d", X, W, {"backend": "cuda"}, ValueError, r"unknown backend 'cuda'; valid backends: auto, numba"),
    ("conv4d", X, W, {}, ValueError, r"unknown kind 'conv4d'; valid kinds: conv1d, conv2d"),
]


@pytest.mark.parametrize("kind, x, w, params, error, message", BAD,
                         ids=[f"{b[0]}-{b[-1][:40]}" for b in BAD])
def test_bad_input_is_refused_with_a_clear_message(kind, x, w, params, error, message):
    with pytest.raises(error, match=message):
        fastconv.run(kind, x, w, **params)


def test_numba_refuses_float16_with_a_pointer_to_the_torch_backend():
    with pytest.raises(TypeError, match=r"numba backend computes in float32 or float64, got float16.*backend='torch'"):
        fastconv.run("conv2d", X.astype(np.float16), W.astype(np.float16))


def test_triton_refuses_numpy_arrays():
    with pytest.raises((TypeError, ValueError), match="triton"):
        fastconv.run("conv2d", X, W, backend="triton")


def test_numba_refuses_tensors_on_another_device():
    meta = torch.zeros(2, 4, 8, 8, device="meta")
    with pytest.raises(ValueError, match=r"numba backend runs on the CPU, but the tensors are on meta"):
        fastconv.run("conv2d", meta, torch.zeros(6, 4, 3, 3, device="meta"), backend="numba")


def test_tensors_on_different_devices_are_refused():
    with pytest.raises(ValueError, match=r"w is on meta but x is on cpu"):
        fastconv.run("conv2d", torch.zeros(2, 4, 8, 8), torch.zeros(6, 4, 3, 3, device="meta"))


def test_no_kernel_runs_before_the_check(monkeypatch):
    """A bad call must fail in the plan: make any kernel import explode to prove it is never reached."""
    import fastconv.api
    monkeypatch.setattr(fastconv.api, "load", lambda *a: pytest.fail("a kernel was loaded"))
    with pytest.raises(ValueError):
        fastconv.run("conv2d", X, f32(6, 3, 3, 3))
