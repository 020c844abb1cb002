"""fastconv.run as a user meets it: types in and out, backends, empty batches, NaN, listing kinds."""
import numpy as np
import pytest
import torch

import fastconv
from fastconv.nn import MODULES
from helpers import one_thread


@pytest.fixture
def xw():
    rng = np.random.default_rng(0)
    return rng.standard_normal((2, 4, 7, 7), dtype=np.float32), rng.standard_normal((6, 4, 3, 3), dtype=np.float32)


def test_numpy_in_numpy_out(xw):
    x, w = xw
    y = fastconv.run("conv2d", x, w, stride=2, padding=1)
    assert isinstance(y, np.ndarray) and y.dtype == np.float32 and y.shape == (2, 6, 4, 4)


def test_torch_in_torch_out_on_every_backend(xw):
    x, w = map(torch.from_numpy, xw)
    want = torch.nn.functional.conv2d(x, w, padding="same")
    for backend in ("numba", "torch", "auto"):
        y = fastconv.run("conv2d", x, w, padding="same", backend=backend)
        assert isinstance(y, torch.Tensor) and y.dtype == torch.float32
        torch.testing.assert_close(y, want, rtol=1e-5, atol=1e-5)


def test_float16_and_bfloat16_on_the_torch_backend(xw):
    x, w = (torch.from_numpy(a).to(torch.bfloat16) for a in xw)
    assert fastconv.run("conv2d", x, w, backend="torch").dtype == torch.bfloat16
    with pytest.raises(TypeError, match="numba backend computes in float32 or float64, got bfloat16"):
        fastconv.run("conv2d", x, w)


def test_empty_batch_gives_an_empty_result(xw):
    x, w = xw
    y = fastconv.run("conv2d", x[:0], w, padding=1)
    assert y.shape == (0, 6, 7, 7) and y.dtype == np.float32
    yt = fastconv.run("conv_transpose2d", torch.zeros(0, 4, 3, 3), torch.zeros(4, 2, 3, 3), stride=2)
    assert yt.shape == (0, 2, 7, 7)


@pytest.mark.parametrize("kind", ["conv2d", "depthwise", "conv_transpose2d"])
def test_nan_and_inf_propagate_as_in_torch(kind):
    x = np.zeros((1, 2, 5, 5), np.float32)
    x[0, 0, 2, 2], x[0, 1, 0, 0] = np.nan, np.inf
    w = np.ones((2, 1 if kind == "depthwise" else 2, 3, 3), np.float32)
    kwargs = {} if kind == "conv_transpose2d" else {"padding": 1}
    got = fastconv.run(kind, x, w, **kwargs)
    want = fastconv.run(kind, x, w, backend="torch", **kwargs)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    np.testing.assert_array_equal(np.isinf(got), np.isinf(want))


def test_pointwise_linear_view_equals_linear():
    rng = np.random.default_rng(1)
    x, w, b = rng.standard_normal((2, 5, 3, 4)), rng.standard_normal((7, 5)), rng.standard_normal(7)
    y = fastconv.run("pointwise", x, w, bias=b)
    linear = torch.nn.functional.linear(torch.from_numpy(x).movedim(1, -1), torch.from_numpy(w), torch.from_numpy(b))
    np.testing.assert_allclose(y, linear.movedim(-1, 1).numpy(), rtol=1e-12, atol=1e-12)


def test_kinds_lists_every_kind_with_a_description():
    kinds = fastconv.kinds()
    for name in ["conv1d", "conv2d", "conv3d", "depthwise", "pointwise", "grouped", "dilated",
                 "conv_transpose1d", "conv_transpose2d", "conv_transpose3d", "transposed"]:
        assert name in kinds and len(kinds[name]) > 10


@pytest.mark.parametrize("kind", ["conv1d", "conv2d", "conv3d", "conv_transpose2d", "depthwise"])
def test_nn_module_matches_torch_and_trains(kind):
    torch.manual_seed(0)
    nd = {"conv1d": 1, "conv3d": 3}.get(kind, 2)
    if kind == "depthwise":
        module = MODULES[kind](4, 3, multiplier=2, padding=1)
    elif kind.startswith("conv_transpose"):
        module = MODULES[kind](4, 6, 3, stride=2, padding=1, output_padding=1, groups=2)
    else:
        module = MODULES[kind](4, 6, 3, stride=2, padding=1, groups=2)
    x = torch.randn(2, 4, *(5,) * nd)
    want = torch.nn.Module.__call__(module, x)              # grad mode: the reference path
    with torch.no_grad():
        got = module(x)                                      # no grad: the numba kernel
    torch.testing.assert_close(got, want.detach(), rtol=1e-5, atol=1e-5)
    want.sum().backward()
    assert module.weight.grad is not None


def test_nn_module_state_dict_is_torchs():
    ours = MODULES["conv2d"](3, 8, 3, padding=1)
    theirs = torch.nn.Conv2d(3, 8, 3, padding=1)
    theirs.load_state_dict(ours.state_dict())
    x = torch.randn(1, 3, 6, 6)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), theirs(x), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("kernel, groups, dtype", [((2, 2), 1, "float32"), ((3, 2), 2, "float64"),
                                                   ((2, 3), 3, "float64"), ((2, 2, 2), 2, "float32")])
def test_transposed_blocks_version_matches_torch(kernel, groups, dtype):
    """kernel = stride, no padding: "auto" takes the blocks version (one pointwise product per tap,
    written into disjoint output blocks; KW = 2 has its own paired store loop, other widths the generic
    strided one). Odd sizes and 37 input rows make more than one band per image."""
    from fastconv.kernels.conv_transpose import cpu
    rng = np.random.default_rng(len(kernel) * 10 + groups)
    nd = len(kernel)
    size = (37, 5) if nd == 2 else (3, 7, 5)
    x = rng.standard_normal((2, 3 * groups, *size)).astype(dtype)
    w = rng.standard_normal((3 * groups, 5, *kernel)).astype(dtype)
    b = rng.standard_normal(5 * groups).astype(dtype)
    kind = f"conv_transpose{nd}d"
    want = getattr(torch.nn.functional, kind)(torch.from_numpy(x), torch.from_numpy(w), torch.from_numpy(b),
                                              stride=kernel, groups=groups).numpy()
    tol = 1e-4 if dtype == "float32" else 1e-10
    np.testing.assert_allclose(fastconv.run(kind, x, w, bias=b, stride=kernel, groups=groups), want,
                               rtol=tol, atol=tol)
    plan = fastconv.plan(kind, x, w, bias=b, stride=kernel, groups=groups)
    got = cpu.conv_transpose(x, w, b, **plan.kernel_params, version="blocks")
    np.testing.assert_allclose(got, want, rtol=tol, atol=tol)
    with pytest.raises(fastconv.kernels.NotApplicable):
        cpu.conv_transpose(x, w, b, **{**plan.kernel_params, "padding": (1,) * nd}, version="blocks")


@pytest.mark.parametrize("size, kernel, padding, dilation, groups, dtype", [
    ((45, 50), (3, 3), (1, 1), (1, 1), 1, "float32"),      # 45 rows of 52: two bands, a ragged last block
    ((40, 23), (3, 2), (2, 0), (2, 1), 2, "float64"),      # dilation, uneven pads, groups, 5 outputs a group
    ((9, 70), (1, 7), (0, 3), (1, 1), 1, "float32"),       # the Inception 1×7 shape, rows wider than a block
    ((300,), (5,), (2,), (3,), 1, "float64"),              # conv1d: one long row, several blocks
    ((20, 31), (4, 2), "same", (1, 1), 1, "float64"),      # even kernel: more padding right than left
    ((12, 15), (3, 3), (4, 5), (1, 1), 1, "float32"),      # padding past the reach: rows wider than x + pad
    ((5, 9, 11), (3, 3, 2), (1, 1, 0), (2, 1, 1), 2, "float64"),  # conv3d: depth dilation, slabs outside x
    ((4, 30, 40), (2, 3, 3), (0, 1, 1), (1, 1, 1), 1, "float32"),  # conv3d: several bands per plane
])
def test_conv_flat_version_matches_torch(size, kernel, padding, dilation, groups, dtype):
    """The stride-1 register-block version (v6) on images large enough for several bands per image,
    several 64-position blocks per band, and output channels that do not fill the last 4-row block."""
    from fastconv.kernels.conv import cpu
    rng = np.random.default_rng(len(size) + sum(size))
    x = rng.standard_normal((2, 3 * groups, *size)).astype(dtype)
    w = rng.standard_normal((5 * groups, 3, *kernel)).astype(dtype)
    b = rng.standard_normal(5 * groups).astype(dtype)
    kind = f"conv{len(size)}d"
    params = dict(padding=padding, dilation=dilation, groups=groups)
    want = getattr(torch.nn.functional, kind)(torch.from_numpy(x), torch.from_numpy(w), torch.from_numpy(b),
                                              **params).numpy()
    plan = fastconv.plan(kind, x, w, bias=b, **params)
    got = cpu.conv(x, w, b, **plan.kernel_params, version="flat")
    tol = 1e-4 if dtype == "float32" else 1e-10
    np.testing.assert_allclose(got, want, rtol=tol, atol=tol)


@pytest.mark.parametrize("size, kernel, stride, padding, dilation, groups", [
    ((9, 7, 8), (3, 2, 3), (2, 1, 1), (1, 0, 1), (1, 2, 1), 1),      # conv3d, a depth stride
    ((5, 17, 19), (3, 3, 3), (1, 2, 2), (1, 1, 1), (1, 1, 1), 1),    # conv3d, stride 2 in-plane
    ((40, 45), (7, 7), (2, 2), (3, 3), (1, 1), 2),                   # the ResNet stem's shape, several bands
    ((15, 14), (4, 5), (2, 3), (3, 1), (1, 2), 1),                   # unequal strides, pad past a phase
    ((9, 11), (3, 2), (3, 2), (0, 2), (2, 1), 1),                    # stride 3: phase rows no tap reads
    ((301,), (5,), (3,), (2,), (2,), 1),                             # conv1d
])
def test_conv_flat_version_with_strides(size, kernel, stride, padding, dilation, groups):
    """v6 at a stride: every plane split in its phase planes, each tap a fixed offset again."""
    from fastconv.kernels.conv import cpu
    rng = np.random.default_rng(sum(size))
    x, w = rng.standard_normal((2, 3 * groups, *size)), rng.standard_normal((5 * groups, 3, *kernel))
    params = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
    kind = f"conv{len(size)}d"
    want = getattr(torch.nn.functional, kind)(torch.from_numpy(x), torch.from_numpy(w), **params).numpy()
    got = cpu.conv(x, w, None, **fastconv.plan(kind, x, w, **params).kernel_params, version="flat")
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("size, kernel, stride, padding, dilation, output_padding, groups, dtype", [
    ((40, 37), (4, 4), (2, 2), (1, 1), (1, 1), (0, 0), 1, "float32"),  # DCGAN-like, several bands
    ((33, 30), (3, 5), (2, 3), (1, 0), (2, 1), (1, 2), 2, "float64"),  # uneven everything, groups
    ((20, 9), (3, 3), (3, 1), (6, 0), (1, 1), (0, 0), 1, "float64"),   # pad > reach: bands start inside x
    ((1, 5), (1, 1), (1, 2), (0, 0), (1, 1), (0, 1), 1, "float32"),    # a phase without taps: bias only
    ((300,), (8,), (4,), (2,), (1,), (0,), 1, "float32"),             # the 1-d upsampler shape
    ((5, 8, 9), (3, 3, 3), (2, 2, 2), (1, 1, 1), (1, 1, 1), (1, 1, 1), 1, "float64"),  # 3-d decoder layer
    ((6, 7, 5), (4, 2, 3), (3, 1, 2), (2, 0, 1), (2, 1, 1), (2, 0, 0), 2, "float32"),  # 3-d, depth phases
])
def test_conv_transpose_flat_version_matches_torch(size, kernel, stride, padding, dilation, output_padding,
                                                   groups, dtype):
    """The phase-by-phase register-block version (v4) of the transposed convolution: several bands per
    image, phases with different tap counts, and outputs the phase grid leaves to the bias alone."""
    from fastconv.kernels.conv_transpose import cpu
    rng = np.random.default_rng(len(size) + sum(size))
    x = rng.standard_normal((2, 3 * groups, *size)).astype(dtype)
    w = rng.standard_normal((3 * groups, 5, *kernel)).astype(dtype)
    b = rng.standard_normal(5 * groups).astype(dtype)
    kind = f"conv_transpose{len(size)}d"
    params = dict(stride=stride, padding=padding, dilation=dilation, output_padding=output_padding,
                  groups=groups)
    want = getattr(torch.nn.functional, kind)(torch.from_numpy(x), torch.from_numpy(w), torch.from_numpy(b),
                                              **params).numpy()
    plan = fastconv.plan(kind, x, w, bias=b, **params)
    got = cpu.conv_transpose(x, w, b, **plan.kernel_params, version="flat")
    tol = 1e-4 if dtype == "float32" else 1e-10
    np.testing.assert_allclose(got, want, rtol=tol, atol=tol)


@pytest.mark.parametrize("kind, size, kernel, params", [
    ("conv2d", (7, 7), (3, 3), dict(padding=1, groups=2)),                         # ResNet's 7×7 maps
    ("conv2d", (9, 11), (3, 2), dict(stride=2, padding=(1, 0), dilation=(1, 2))),  # phase planes
    ("conv3d", (3, 5, 6), (2, 3, 3), dict(padding=(1, 1, 1))),                     # tasks per output plane
    ("conv_transpose2d", (5, 6), (4, 4), dict(stride=2, padding=1, groups=2)),     # the DCGAN layer's shape
    ("conv_transpose2d", (1, 5), (1, 1), dict(stride=(1, 2), output_padding=(0, 1))),  # bias-only phases
    ("conv_transpose3d", (3, 4, 5), (3, 3, 3), dict(stride=2, padding=1, output_padding=1)),
])
def test_flat_versions_with_several_images_a_task(kind, size, kernel, params):
    """v6 / v4 give a task several small images (``images_per_task``), their register blocks mixing the
    images' positions.  One thread here: 7 images go 3 + 3 + 1 where an image is one task (one group,
    one output plane), all 7 in each task where it is several."""
    from fastconv.kernels.conv import cpu as conv_cpu
    from fastconv.kernels.conv_transpose import cpu as transpose_cpu
    rng = np.random.default_rng(sum(size))
    groups = params.get("groups", 1)
    transposed = kind.startswith("conv_transpose")
    x = rng.standard_normal((7, 2 * groups, *size))
    w = rng.standard_normal((2 * groups, 3, *kernel) if transposed else (3 * groups, 2, *kernel))
    b = rng.standard_normal(3 * groups)
    want = getattr(torch.nn.functional, kind)(*map(torch.from_numpy, (x, w, b)), **params).numpy()
    plan = fastconv.plan(kind, x, w, bias=b, **params)
    with one_thread():
        version = transpose_cpu.conv_transpose if transposed else conv_cpu.conv
        got = version(x, w, b, **plan.kernel_params, version="flat")
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10)
