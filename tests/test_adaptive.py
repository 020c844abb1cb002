"""The adaptive family beyond the generic suite: identities with the standard convolutions, the softmax
normaliser, the official baseline forms, bad inputs and the nn modules."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

import fastconv
from fastconv.nn import DynamicLightweightConv1d, Involution2d, LightweightConv1d
from fastconv.reference import adaptive as ref

RNG = np.random.default_rng(7)
BACKENDS = ["numba", "torch"]


def randn(*shape):
    return RNG.standard_normal(shape)


# --------------------------------------------------------------------------------------------------
# Identities
# --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("backend", BACKENDS)
def test_involution_with_one_kernel_everywhere_is_a_depthwise_conv(backend):
    """G = C and the same kernel at every pixel: involution = depthwise conv2d."""
    x, k = randn(2, 3, 9, 8), randn(3, 1, 3, 3)
    want = F.conv2d(torch.from_numpy(x), torch.from_numpy(k), stride=2, padding=2, dilation=2, groups=3).numpy()
    w = np.broadcast_to(k.reshape(1, 3, 3, 3, 1, 1), (2, 3, 3, 3) + want.shape[2:]).copy()
    got = fastconv.run("involution", x, w, stride=2, dilation=2, backend=backend)   # padding 2·(3−1)//2 = 2
    np.testing.assert_allclose(got, want, atol=1e-12)


@pytest.mark.parametrize("backend", BACKENDS)
def test_lightweight_with_one_head_per_channel_is_a_depthwise_conv1d(backend):
    x, w, bias = randn(2, 4, 11), randn(4, 5), randn(4)
    want = F.conv1d(F.pad(torch.from_numpy(x), (1, 3)), torch.from_numpy(w)[:, None], torch.from_numpy(bias),
                    groups=4).numpy()
    np.testing.assert_allclose(fastconv.run("lightweight", x, w, bias=bias, padding_l=1, backend=backend), want,
                               atol=1e-12)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("weight_softmax", [False, True])
def test_dynamic_with_a_constant_kernel_is_lightweight(backend, weight_softmax):
    x, w = randn(2, 6, 9), randn(3, 4)
    dynamic = np.broadcast_to(w.reshape(1, 3, 4, 1), (2, 3, 4, 9)).copy()
    np.testing.assert_allclose(
        fastconv.run("dynamic_lightweight", x, dynamic, weight_softmax=weight_softmax, backend=backend),
        fastconv.run("lightweight", x, w, weight_softmax=weight_softmax, backend=backend), atol=1e-12)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("kind", ["lightweight", "dynamic_lightweight"])
def test_softmax_normaliser_counts_taps_outside_the_sequence(backend, kind):
    """x = 1, w = 0: every tap weighs 1/K, so y[t] = (taps of t inside [0, T)) / K, not 1."""
    K, T = 5, 3
    w = np.zeros((2, K)) if kind == "lightweight" else np.zeros((1, 2, K, T))
    y = fastconv.run(kind, np.ones((1, 2, T)), w, weight_softmax=True, padding_l=2, backend=backend)
    np.testing.assert_allclose(y[0, 0], np.array([3, 3, 3]) / K)      # taps t−2 .. t+2, 3 inside [0, 3)
    y = fastconv.run(kind, np.ones((1, 2, T)), w, weight_softmax=True, padding_l=4, backend=backend)
    np.testing.assert_allclose(y[0, 0], np.array([1, 2, 3]) / K)      # causal: taps t−4 .. t


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("kind, w_shape", [("lightweight", (1, 2)), ("lightweight", (2, 3)),
                                           ("dynamic_lightweight", (1, 2, 3, 5))])
def test_inputs_are_not_modified(backend, kind, w_shape):
    """The softmax is taken on copies (a (1, K) w transposed is still 'contiguous' to numpy)."""
    x, w = randn(1, 2, 5), randn(*w_shape)
    w_before = w.copy()
    fastconv.run(kind, x, w, weight_softmax=True, backend=backend)
    np.testing.assert_array_equal(w, w_before)


@pytest.mark.parametrize("padding_l", [0, 4, 8])
def test_tiled_kernel_across_chunk_boundaries(padding_l):
    """Sequences longer than the CPU kernel's TILE_T (the generic strategies stay far below it)."""
    from fastconv.kernels.lightweight.cpu import TILE_T
    T = 2 * TILE_T + 37
    x, w = randn(1, 4, T), randn(1, 2, 9, T)
    kwargs = dict(padding_l=padding_l, weight_softmax=True)
    np.testing.assert_allclose(fastconv.run("dynamic_lightweight", x, w, backend="numba", **kwargs),
                               fastconv.run("dynamic_lightweight", x, w, backend="torch", **kwargs), atol=1e-12)


def test_heads_serve_consecutive_channels():
    """Channel c uses head c // (C/H): with H = 2, C = 4, channels 0, 1 see head 0 and 2, 3 head 1."""
    x, w = np.ones((1, 4, 3)), np.array([[1.0], [10.0]])
    np.testing.assert_allclose(fastconv.run("lightweight", x, w)[0, :, 0], [1, 1, 10, 10])


# --------------------------------------------------------------------------------------------------
# The official forms used as benchmark baselines compute the same thing
# --------------------------------------------------------------------------------------------------

def test_involution_unfold_baseline_matches_reference():
    x, w = torch.randn(2, 6, 9, 7, dtype=torch.float64), torch.randn(2, 3, 3, 3, 5, 4, dtype=torch.float64)
    params = dict(stride=(2, 2), padding=(1, 1), dilation=(1, 1))
    torch.testing.assert_close(ref.involution_unfold(x, w, **params), ref.involution(x, w, **params))


@pytest.mark.parametrize("form", ["unfold", "expanded"])
@pytest.mark.parametrize("padding_l", [0, 2, 4])
@pytest.mark.parametrize("weight_softmax", [False, True])
def test_fairseq_baselines_match_reference(form, padding_l, weight_softmax):
    x = torch.randn(2, 6, 11, dtype=torch.float64)
    w, wd, bias = torch.randn(3, 5, dtype=torch.float64), torch.randn(2, 3, 5, 11, dtype=torch.float64), \
        torch.randn(6, dtype=torch.float64)
    params = dict(padding_l=padding_l, weight_softmax=weight_softmax)
    torch.testing.assert_close(getattr(ref, f"lightweight_{form}")(x, w, bias, **params),
                               ref.lightweight(x, w, bias, **params))
    torch.testing.assert_close(getattr(ref, f"dynamic_lightweight_{form}")(x, wd, **params),
                               ref.dynamic_lightweight(x, wd, **params))


# --------------------------------------------------------------------------------------------------
# Bad inputs: the exact error and a message naming the parameter, before any kernel runs
# --------------------------------------------------------------------------------------------------
X4, W6 = np.zeros((2, 4, 7, 7)), np.zeros((2, 2, 3, 3, 7, 7))
X3 = np.zeros((2, 4, 9))


@pytest.mark.parametrize("args, kwargs, error, match", [
    ((np.zeros((4, 7, 7)), W6), {}, ValueError, r"x must be 4-D"),
    ((X4, np.zeros((2, 2, 3, 3, 7))), {}, ValueError, r"w must be 6-D"),
    ((X4, np.zeros((1, 2, 3, 3, 7, 7))), {}, ValueError, r"w.shape\[0\] must be the batch size B = 2"),
    ((X4, np.zeros((2, 3, 3, 3, 7, 7))), {}, ValueError, r"kernel groups G = w.shape\[1\] = 3 must divide"),
    ((X4, np.zeros((2, 0, 3, 3, 7, 7))), {}, ValueError, r"w.shape\[1\] \(kernel groups G\) must be positive"),
    ((X4, W6), {"stride": 2}, ValueError, r"w.shape\[4:\] must be the output size \(Ho, Wo\) = \(4, 4\)"),
    ((X4, np.zeros((2, 2, 3, 3, 4, 4))), {"stride": 2}, None, None),        # the right size passes
    ((X4, W6), {"stride": 0}, ValueError, r"stride must be positive"),
    ((X4, W6), {"dilation": (1, 1, 1)}, TypeError, r"dilation must be an int or a tuple of 2 ints"),
    ((X4, W6), {"padding": -1}, ValueError, r"padding must be >= 0"),
    ((X4, np.zeros((2, 2, 9, 9, 1, 1))), {"padding": 0}, ValueError, r"kernel size \(9, 9\).*larger than"),
    ((X4, W6), {"groups": 2}, TypeError, r"unknown parameter 'groups'"),
])
def test_involution_bad_inputs(args, kwargs, error, match):
    if error is None:
        fastconv.run("involution", *args, **kwargs)
        return
    with pytest.raises(error, match=match):
        fastconv.run("involution", *args, **kwargs)


@pytest.mark.parametrize("kind, w, kwargs, error, match", [
    ("lightweight", np.zeros((3, 3)), {}, ValueError, r"heads H = 3 must divide the channels C = x.shape\[1\] = 4"),
    ("lightweight", np.zeros((2, 3, 1)), {}, ValueError, r"w must be 2-D \(H, K\)"),
    ("lightweight", np.zeros((2, 0)), {}, ValueError, r"w.shape\[1\] \(kernel size K\) must be positive"),
    ("lightweight", np.zeros((2, 3)), {"padding_l": 3}, ValueError, r"padding_l must be in \[0, K − 1\] = \[0, 2\]"),
    ("lightweight", np.zeros((2, 3)), {"padding_l": -1}, ValueError, r"padding_l must be in"),
    ("lightweight", np.zeros((2, 3)), {"padding_l": 1.0}, TypeError, r"padding_l must be an int or None"),
    ("lightweight", np.zeros((2, 3)), {"weight_softmax": 1}, TypeError, r"weight_softmax must be True or False"),
    ("lightweight", np.zeros((2, 3)), {"bias": np.zeros(2)}, ValueError, r"bias must have shape \(4,\)"),
    ("dynamic_lightweight", np.zeros((2, 2, 3, 8)), {}, ValueError, r"w must be \(B, H, K, T\) with B = 2 and T = 9"),
    ("dynamic_lightweight", np.zeros((1, 2, 3, 9)), {}, ValueError, r"w must be \(B, H, K, T\) with B = 2"),
    ("dynamic_lightweight", np.zeros((2, 3, 3, 9)), {}, ValueError, r"heads H = 3 must divide"),
    ("dynamic_lightweight", np.zeros((2, 0, 3, 9)), {}, ValueError, r"w.shape\[1\] \(heads H\) must be positive"),
    ("dynamic_lightweight", np.zeros((2, 3, 9)), {}, ValueError, r"w must be 4-D \(B, H, K, T\)"),
    ("dynamic_lightweight", np.zeros((2, 2, 3, 9)), {"bias": np.zeros(4)}, TypeError, r"unknown parameter 'bias'"),
    ("dynamic_lightweight", np.zeros((2, 2, 3, 9)), {"weight_softmax": "yes"}, TypeError, r"weight_softmax"),
])
def test_lightweight_bad_inputs(kind, w, kwargs, error, match):
    with pytest.raises(error, match=match):
        fastconv.run(kind, X3, w, **kwargs)


def test_x_must_be_3d_for_lightweight():
    with pytest.raises(ValueError, match=r"x must be 3-D \(B, C, T\)"):
        fastconv.run("lightweight", X4, np.zeros((2, 3)))


# --------------------------------------------------------------------------------------------------
# nn modules
# --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("size, stride", [((9, 7), 2), ((8, 8), 2), ((7, 5), 3), ((6, 5), 1)])
def test_involution2d_matches_reference_on_odd_sizes(size, stride):
    torch.manual_seed(0)
    module = Involution2d(32, 3, stride=stride, group_channels=8).eval()
    x = torch.randn(2, 32, *size)
    with torch.no_grad():
        kernels = module.kernels(x)
        want = ref.involution(x, kernels, stride=(stride,) * 2, padding=(1, 1), dilation=(1, 1))
        got = module(x)
    assert got.shape == (2, 32, -(-size[0] // stride), -(-size[1] // stride))
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)


def test_involution2d_parameters_follow_the_official_names_and_gradients_flow():
    module = Involution2d(32, 7, stride=2)
    assert set(module.state_dict()) >= {"conv1.conv.weight", "conv1.bn.weight", "conv1.bn.running_mean",
                                        "conv2.conv.weight", "conv2.conv.bias"}
    assert module.conv2.conv.weight.shape == (7 * 7 * 2, 8, 1, 1)
    x = torch.randn(1, 32, 11, 11, requires_grad=True)
    module(x).sum().backward()                          # grads needed: backend "auto" runs the reference
    assert x.grad is not None and module.conv1.conv.weight.grad is not None


@pytest.mark.parametrize("bad, match", [(dict(group_channels=5), "group_channels=5 must divide"),
                                        (dict(kernel_size=4), "kernel_size must be odd")])
def test_involution2d_rejects_bad_configuration(bad, match):
    with pytest.raises(ValueError, match=match):
        Involution2d(**{"channels": 32, "kernel_size": 3, **bad})


@pytest.mark.parametrize("padding_l", [None, 6])
def test_lightweight_conv1d_matches_reference(padding_l):
    module = LightweightConv1d(16, 7, heads=4, padding_l=padding_l, weight_softmax=True, bias=True)
    torch.nn.init.normal_(module.bias)
    assert module.weight.shape == (4, 1, 7)
    x = torch.randn(2, 16, 13)
    with torch.no_grad():
        want = ref.lightweight(x, module.weight.view(4, 7), module.bias, padding_l=3 if padding_l is None else 6,
                               weight_softmax=True)
        torch.testing.assert_close(module(x), want, rtol=1e-5, atol=1e-5)


def test_dynamic_lightweight_conv1d_matches_reference():
    module = DynamicLightweightConv1d(16, 5, heads=4, weight_softmax=True, bias=True, conv_bias=True)
    torch.nn.init.normal_(module.conv_bias)
    x = torch.randn(2, 16, 9)
    with torch.no_grad():
        kernels = module.weight_linear(x.transpose(1, 2)).view(2, 9, 4, 5).permute(0, 2, 3, 1)
        want = ref.dynamic_lightweight(x, kernels, padding_l=2, weight_softmax=True) + module.conv_bias.view(1, -1, 1)
        torch.testing.assert_close(module(x), want, rtol=1e-5, atol=1e-5)
    x.requires_grad_(True)
    module(x).sum().backward()
    assert module.weight_linear.weight.grad is not None
