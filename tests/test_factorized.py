"""Factorized family: the identities the issue asks for, costs, bad inputs, medium shapes that exercise
the kernels' tiling (chunks, bands, several products per band), and the nn modules."""
import importlib

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import fastconv
from fastconv.api import get_spec
from fastconv.nn import (FlattenedConv2d, OctaveConv2d, SeparableConv2d, ShuffledGroupConv2d,
                         SpatialSeparableConv2d)
from helpers import one_thread

RNG = np.random.default_rng(0)


def randn(*shape):
    return RNG.standard_normal(shape)


def cpu_versions(kind):
    module = importlib.import_module("fastconv.kernels." + get_spec(kind).cpu.split(":")[0])
    return getattr(module, kind), module.VERSIONS


# ----------------------------------------------------------------------------------------------------
# Identities and costs
# ----------------------------------------------------------------------------------------------------
def test_separable_textbook_cost():
    """128 filters 3×3×3 on a 7×7×3 input, valid: dense 86,400 vs depthwise 675 + pointwise 9,600."""
    cost = fastconv.cost("separable", (1, 3, 7, 7), (3, 1, 3, 3), pointwise=(128, 3))
    assert cost["dense_macs"] == 86_400
    assert (cost["depthwise_macs"], cost["pointwise_macs"], cost["macs"]) == (675, 9_600, 10_275)
    assert fastconv.cost("conv2d", (1, 3, 7, 7), (128, 3, 3, 3))["macs"] == cost["dense_macs"]


@pytest.mark.parametrize("kind, shapes, params, dense_weight", [
    ("separable", [(2, 8, 10, 10), (16, 1, 3, 3)], dict(pointwise=(5, 16), padding=1), (5, 8, 3, 3)),
    ("spatial_separable", [(2, 8, 10, 10), (6, 8, 1, 5)], dict(col=(7, 6, 5, 1), padding=2), (7, 8, 5, 5)),
    ("flattened", [(2, 8, 10, 10), (7, 8)], dict(vertical=(7, 3), horizontal=(7, 3), padding=1), (7, 8, 3, 3)),
    ("shuffled_grouped", [(2, 8, 10, 10), (12, 2, 3, 3)], dict(groups=4, padding=1), (12, 8, 3, 3)),
])
def test_cost_reports_the_dense_convolution_it_replaces(kind, shapes, params, dense_weight):
    cost = fastconv.cost(kind, *shapes, **params)
    dense = fastconv.cost("conv2d", shapes[0], dense_weight, padding=params["padding"])
    assert cost["dense_macs"] == dense["macs"]
    assert cost["macs"] < cost["dense_macs"]
    assert cost["flops"] == 2 * cost["macs"]


def test_octave_cost_against_the_dense_convolution():
    x = ((2, 6, 8, 8), (2, 2, 4, 4))
    w = ((6, 6, 3, 3), (2, 6, 3, 3), (6, 2, 3, 3), (2, 2, 3, 3))
    cost = fastconv.cost("octave", x, w, padding=1)
    assert cost["dense_macs"] == 2 * 8 * 64 * 8 * 9
    assert cost["macs"] == 2 * 9 * (6 * 64 * 6 + 2 * 16 * 6 + 6 * 16 * 2 + 2 * 16 * 2)


@pytest.mark.parametrize("backend", ["numba", "torch"])
def test_flattened_is_a_rank_one_convolution(backend):
    """W[o, c, u, v] = w_lateral[o, c]·w_v[o, u]·w_h[o, v]: one conv2d with that filter is the same map."""
    x, w, v, h = randn(2, 5, 9, 8), randn(6, 5), randn(6, 3), randn(6, 4)
    dense = np.einsum("oc,ou,ov->ocuv", w, v, h)
    for padding in [0, (1, 2)]:
        got = fastconv.run("flattened", x, w, vertical=v, horizontal=h, padding=padding, backend=backend)
        want = F.conv2d(torch.from_numpy(x), torch.from_numpy(dense), padding=padding).numpy()
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10)


def test_shuffled_grouped_is_torchvision_channel_shuffle():
    """Output channel k·g + j is filter k of group j."""
    x, w = randn(2, 6, 5, 5), randn(9, 2, 3, 3)
    y = fastconv.run("shuffled_grouped", x, w, groups=3, padding=1)
    z = F.conv2d(torch.from_numpy(x), torch.from_numpy(w), padding=1, groups=3).numpy()
    for j in range(3):
        for k in range(3):
            np.testing.assert_allclose(y[:, k * 3 + j], z[:, j * 3 + k], rtol=1e-12, atol=1e-12)


def test_separable_equals_depthwise_then_pointwise_with_multiplier():
    x, w, pw, b = randn(2, 3, 11, 10), randn(6, 1, 3, 3), randn(4, 6), randn(4)
    got = fastconv.run("separable", x, w, pointwise=pw, bias=b, stride=2, padding=1)
    t = torch.from_numpy
    mid = F.conv2d(t(x), t(w), stride=2, padding=1, groups=3)
    np.testing.assert_allclose(got, F.conv2d(mid, t(pw)[:, :, None, None], t(b)).numpy(), rtol=1e-10, atol=1e-10)


# ----------------------------------------------------------------------------------------------------
# Medium shapes: several tiles per row, several bands, several products per band
# ----------------------------------------------------------------------------------------------------
MEDIUM = {
    "separable": ((randn(2, 5, 6, 70), randn(10, 1, 3, 3)), dict(pointwise=randn(7, 10), bias=randn(7), padding=1)),
    "spatial_separable": ((randn(1, 5, 12, 40), randn(6, 5, 1, 3)), dict(col=randn(7, 6, 5, 1), padding=2)),
    "flattened": ((randn(1, 5, 12, 40), randn(6, 5)),
                  dict(vertical=randn(6, 5), horizontal=randn(6, 3), bias=randn(6), padding=(2, 1))),
    "shuffled_grouped": ((randn(2, 6, 7, 100), randn(8, 3, 3, 3)), dict(groups=2, padding=1, stride=(1, 2))),
    "octave": (((randn(2, 4, 12, 16), randn(2, 3, 6, 8)),
                (randn(5, 4, 3, 3), randn(2, 4, 3, 3), randn(5, 3, 3, 3), randn(2, 3, 3, 3))), dict(padding=1)),
}


MEDIUM["shuffled_grouped 1×1"] = ((randn(2, 6, 9, 20), randn(9, 2, 1, 1)), dict(groups=3, bias=randn(9)))
# padding wider than the image: bands of padding rows alone, which read no row of x
MEDIUM["spatial_separable pad > image"] = ((randn(1, 2, 2, 3), randn(3, 2, 1, 3)), dict(col=randn(4, 3, 3, 1),
                                                                                       padding=4))


def test_spatial_separable_with_several_images_a_task():
    """v3 gives a task several whole images where a band is one (one thread: 7 images go 3 + 3 + 1)."""
    from fastconv.kernels.spatial_separable.cpu import spatial_separable
    x, w, col, bias = randn(7, 3, 6, 5), randn(4, 3, 1, 3), randn(5, 4, 3, 1), randn(5)
    want = fastconv.run("spatial_separable", x, w, col=col, bias=bias, padding=1, backend="torch")
    with one_thread():
        got = spatial_separable(x, w, col, bias, padding=1, version="flat")
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("r", range(2, 8))
def test_winograd_transforms_compute_two_outputs_of_a_correlation(r):
    """y = Aᵀ[(G g) ⊙ (Bᵀ d)] gives y[j] = Σ_u g[u]·d[j + u], j < 2, for every filter length v4 uses."""
    from fastconv.kernels._winograd import toom_cook
    BT, G, AT = toom_cook(r)
    d, g = randn(50, r + 1), randn(50, r)
    direct = np.stack([(g * d[:, j:j + r]).sum(axis=1) for j in range(2)], axis=1)
    np.testing.assert_allclose(((g @ G.T) * (d @ BT.T)) @ AT.T, direct, rtol=1e-12, atol=1e-12)
    if r == 3:                                                   # the textbook F(2, 3)
        np.testing.assert_array_equal(BT, [[-1, 0, 1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, -1, 0, 1]])
        np.testing.assert_array_equal(AT, [[1, 1, 1, 0], [0, 1, -1, 1]])


def test_spatial_separable_winograd_float32_error_stays_near_the_direct_sum():
    """v4's transforms round differently from v3's direct sums: within 20× of v3's float32 error on an
    Inception-style 1×7 / 7×1 pair (odd 17×17 maps, several images a task)."""
    from fastconv.kernels.spatial_separable.cpu import spatial_separable
    x, w, col, bias = randn(3, 24, 17, 17), randn(16, 24, 1, 7), randn(20, 16, 7, 1), randn(20)
    want = fastconv.run("spatial_separable", x, w, col=col, bias=bias, padding=3, backend="torch")
    f32 = [a.astype(np.float32) for a in (x, w, col, bias)]
    errors = {v: np.abs(spatial_separable(*f32, padding=3, version=v) - want).max() for v in ("flat", "winograd")}
    assert errors["winograd"] <= 20 * errors["flat"]
    assert errors["winograd"] <= 1e-5 * np.abs(want).max()


@pytest.mark.parametrize("kw, kh", [(2, 7), (7, 2), (3, 6), (6, 3), (4, 5), (5, 4)])
def test_spatial_separable_winograd_every_filter_length(kw, kh):
    """v4 with each filter length F(2, k) is built for (the hypothesis cases draw up to 5 taps), rows of
    odd and even width (the row filter's last tile drops or keeps its second column)."""
    from fastconv.kernels.spatial_separable.cpu import spatial_separable
    for width, padding in ((kw + 4, 1), (kw + 5, 3)):
        x, w, col, bias = randn(2, 3, 11, width), randn(4, 3, 1, kw), randn(5, 4, kh, 1), randn(5)
        want = fastconv.run("spatial_separable", x, w, col=col, bias=bias, padding=padding, backend="torch")
        got = spatial_separable(x, w, col, bias, padding=padding, version="winograd")
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("name", list(MEDIUM))
def test_every_cpu_version_on_medium_shapes(name):
    kind = name.split()[0]
    args, kwargs = MEDIUM[name]
    plan = fastconv.plan(kind, *args, **kwargs)
    want = fastconv.run(kind, *args, backend="torch", **kwargs)
    fn, versions = cpu_versions(kind)
    spec = get_spec(kind)
    tensors = {**dict(zip(spec.inputs, args)), **{k: v for k, v in kwargs.items() if k in spec.tensor_params}}
    for name, shape in plan.reshape.items():
        tensors[name] = tensors[name].reshape(shape)
    for version in versions:
        got = fn(**tensors, **plan.kernel_params, version=version)
        for g, w in zip(got if isinstance(got, tuple) else (got,), want if isinstance(want, tuple) else (want,)):
            np.testing.assert_allclose(g, w, rtol=1e-9, atol=1e-9, err_msg=f"{kind} {version}")


def test_octave_stride_two_and_first_and_last_layers():
    x_h, x_l = randn(1, 3, 8, 12), randn(1, 2, 4, 6)
    w_hh, w_hl, w_lh, w_ll = randn(4, 3, 3, 3), randn(2, 3, 3, 3), randn(4, 2, 3, 3), randn(2, 2, 3, 3)
    for x, w in [((x_h, None), (w_hh, w_hl, None, None)), ((x_h, x_l), (w_hh, None, w_lh, None)),
                 ((x_h, x_l), (w_hh, w_hl, w_lh, w_ll))]:
        for stride in (1, 2):
            want = fastconv.run("octave", x, w, stride=stride, padding=1, backend="torch")
            got = fastconv.run("octave", x, w, stride=stride, padding=1, backend="numba")
            assert (got[1] is None) == (w[1] is None)
            for g, r in zip(got, want):
                if r is not None:
                    assert g.shape == r.shape
                    np.testing.assert_allclose(g, r, rtol=1e-10, atol=1e-10)


# ----------------------------------------------------------------------------------------------------
# Bad inputs: the exact error, naming the parameter, before any kernel runs
# ----------------------------------------------------------------------------------------------------
X = np.zeros((1, 4, 8, 8))
BAD = [
    ("separable", (X, np.zeros((4, 1, 3, 3))), {}, ValueError, "needs the tensor pointwise"),
    ("separable", (X, np.zeros((4, 2, 3, 3))), dict(pointwise=np.zeros((5, 4))), ValueError, "w must have shape"),
    ("separable", (X, np.zeros((8, 1, 3, 3))), dict(pointwise=np.zeros((5, 4))), ValueError, r"pointwise.shape\[1\]"),
    ("separable", (X, np.zeros((4, 1, 3, 3))), dict(pointwise=np.zeros((5, 4, 3, 3))), ValueError, "1×1"),
    ("separable", (X, np.zeros((4, 1, 3, 3))), dict(pointwise=np.zeros((5, 4)), bias=np.zeros(4)), ValueError, "bias"),
    ("separable", (X, np.zeros((4, 1, 3, 3))), dict(pointwise=np.zeros((5, 4)), stride=0), ValueError, "stride"),
    ("spatial_separable", (X, np.zeros((3, 4, 1, 3))), {}, ValueError, "needs the tensor col"),
    ("spatial_separable", (X, np.zeros((3, 4, 3, 1))), dict(col=np.zeros((2, 3, 3, 1))), ValueError, "w must have shape"),
    ("spatial_separable", (X, np.zeros((3, 4, 1, 3))), dict(col=np.zeros((2, 5, 3, 1))), ValueError, "col must have shape"),
    ("spatial_separable", (X, np.zeros((3, 4, 1, 3))), dict(col=np.zeros((2, 3, 3, 1)), padding=(1, 1)), TypeError, "padding"),
    ("spatial_separable", (X, np.zeros((3, 4, 1, 3))), dict(col=np.zeros((2, 3, 3, 1)), padding=-1), ValueError, "padding"),
    ("spatial_separable", (X, np.zeros((3, 4, 1, 11))), dict(col=np.zeros((2, 3, 3, 1))), ValueError, "larger than"),
    ("flattened", (X, np.zeros((3, 4))), dict(vertical=np.zeros((3, 3))), ValueError, "needs the tensor horizontal"),
    ("flattened", (X, np.zeros((3, 5))), dict(vertical=np.zeros((3, 3)), horizontal=np.zeros((3, 3))), ValueError, r"w.shape\[1\]"),
    ("flattened", (X, np.zeros((3, 4))), dict(vertical=np.zeros((2, 3)), horizontal=np.zeros((3, 3))), ValueError, r"vertical.shape\[0\]"),
    ("flattened", (X, np.zeros((3, 4))), dict(vertical=np.zeros((3, 3)), horizontal=np.zeros((3,))), ValueError, "horizontal must be 2-D"),
    ("flattened", (X, np.zeros((3, 4))), dict(vertical=np.zeros((3, 3)), horizontal=np.zeros((3, 3)), padding="same"), TypeError, "padding"),
    ("shuffled_grouped", (X, np.zeros((6, 2, 3, 3))), dict(groups=3), ValueError, "groups=3 must divide in_channels"),
    ("shuffled_grouped", (X, np.zeros((6, 2, 3, 3))), dict(groups=2, padding="same"), TypeError, "padding"),
    ("shuffled_grouped", (X, np.zeros((5, 2, 3, 3))), dict(groups=2), ValueError, "must divide out_channels"),
]
OW = (np.zeros((4, 4, 3, 3)), np.zeros((2, 4, 3, 3)), np.zeros((4, 2, 3, 3)), np.zeros((2, 2, 3, 3)))
XL = np.zeros((1, 2, 4, 4))
BAD += [
    ("octave", (X, OW), {}, TypeError, "x must be a tuple of 2"),
    ("octave", ((X, XL), OW[:3]), {}, TypeError, "w must be a tuple of 4"),
    ("octave", ((np.zeros((1, 4, 7, 8)), XL), OW), dict(padding=1), ValueError, "divisible by 2"),
    ("octave", ((np.zeros((1, 4, 6, 8)), np.zeros((1, 2, 3, 4))), OW), dict(padding=1, stride=2), ValueError,
     "divisible by 4"),
    ("octave", ((X, np.zeros((1, 2, 3, 4))), OW), dict(padding=1), ValueError, "x_l must have shape"),
    ("octave", ((X, XL), OW), dict(padding=1, stride=3), ValueError, "stride must be 1 or 2"),
    ("octave", ((X, XL), OW), dict(padding=0), ValueError, "padding=.* must keep the spatial size"),
    ("octave", ((X, XL), (None, *OW[1:])), dict(padding=1), ValueError, "w_hh is required"),
    ("octave", ((X, None), OW), dict(padding=1), ValueError, "w_lh and w_ll must be None"),
    ("octave", ((X, XL), (OW[0], OW[1], None, None)), dict(padding=1), ValueError, "nothing would read x_l"),
    ("octave", ((X, XL), (OW[0], OW[1], np.zeros((3, 2, 3, 3)), OW[3])), dict(padding=1), ValueError, r"w_lh.shape\[0\]"),
    ("octave", ((X, XL), (OW[0], OW[1], np.zeros((4, 3, 3, 3)), OW[3])), dict(padding=1), ValueError, r"w_lh.shape\[1\]"),
    ("octave", ((X, XL), (OW[0], OW[1], OW[2], np.zeros((2, 2, 1, 1)))), dict(padding=1), ValueError, "kernel size"),
]


@pytest.mark.parametrize("kind, args, kwargs, error, message", BAD,
                         ids=[f"{b[0]}-{i}" for i, b in enumerate(BAD)])
def test_bad_inputs(kind, args, kwargs, error, message):
    with pytest.raises(error, match=message):
        fastconv.run(kind, *args, **kwargs)


# ----------------------------------------------------------------------------------------------------
# nn modules
# ----------------------------------------------------------------------------------------------------
def _check_module(module, x, want):
    module.backend = "numba"
    with torch.no_grad():
        got = module(x)
    for g, w in zip(got if isinstance(got, tuple) else (got,), want if isinstance(want, tuple) else (want,)):
        if w is None:
            assert g is None
        else:
            torch.testing.assert_close(g, w, rtol=1e-4, atol=1e-4)


def test_separable_module():
    m = SeparableConv2d(4, 6, 3, stride=2, padding=1, depth_multiplier=2)
    assert m.depthwise.weight.shape == (8, 1, 3, 3) and m.pointwise.weight.shape == (6, 8, 1, 1)
    x = torch.randn(2, 4, 9, 9)
    with torch.no_grad():
        want = m.pointwise(m.depthwise(x))
    _check_module(m, x, want)


def test_spatial_separable_module():
    m = SpatialSeparableConv2d(4, 6, 7, padding=3, mid_channels=5)
    x = torch.randn(2, 4, 9, 9)
    with torch.no_grad():
        want = m.col(m.row(x))
    _check_module(m, x, want)


def test_flattened_module():
    m = FlattenedConv2d(4, 6, 3, padding=1)
    x = torch.randn(2, 4, 9, 9)
    with torch.no_grad():
        want = F.conv2d(F.conv2d(m.lateral(x), m.vertical.weight, padding=(1, 0), groups=6),
                        m.horizontal.weight, m.horizontal.bias, padding=(0, 1), groups=6)
    _check_module(m, x, want)


def test_shuffled_group_module():
    m = ShuffledGroupConv2d(6, 9, 1, groups=3)
    x = torch.randn(2, 6, 5, 5)
    with torch.no_grad():
        z = m._conv_forward(x, m.weight, m.bias)
    _check_module(m, x, z.view(2, 3, 3, 5, 5).transpose(1, 2).reshape(2, 9, 5, 5))


@pytest.mark.parametrize("alpha_in, alpha_out", [(0.0, 0.25), (0.5, 0.5), (0.25, 0.0)])
def test_octave_module(alpha_in, alpha_out):
    m = OctaveConv2d(8, 8, 3, alpha_in, alpha_out, stride=1, padding=1)
    low_in = int(alpha_in * 8)
    x_h = torch.randn(2, 8 - low_in, 8, 8)
    x = (x_h, torch.randn(2, low_in, 4, 4)) if low_in else x_h
    assert (m.conv_l2l is None) == (alpha_in == 0 or alpha_out == 0)
    assert (m.conv_h2l is None) == (alpha_out == 0)
    ws = tuple(None if c is None else c.weight for c in (m.conv_h2h, m.conv_h2l, m.conv_l2h, m.conv_l2l))
    with torch.no_grad():
        want = fastconv.run("octave", x if isinstance(x, tuple) else (x, None), ws, padding=1, backend="torch")
    _check_module(m, x, want)


def test_modules_initialise_like_conv2d_and_train_through_the_reference():
    torch.manual_seed(0)
    m = SeparableConv2d(16, 8, 3, padding=1)
    bound = 1 / np.sqrt(9)                       # kaiming_uniform(a=√5) bound: 1/sqrt(fan_in), fan_in = 9
    assert 0.5 * bound < m.depthwise.weight.abs().max().item() <= bound
    x = torch.randn(1, 16, 6, 6, requires_grad=True)
    m(x).sum().backward()                        # grads flow: backend "auto" runs the reference
    assert x.grad is not None and m.pointwise.weight.grad is not None
    with pytest.raises(ValueError, match="alpha_in and alpha_out"):
        OctaveConv2d(8, 8, 3, 1.0, 0.5)
