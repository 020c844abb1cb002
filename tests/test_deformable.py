"""Deformable family: identities of the definitions, the bilinear rule at the borders, the DCNv3 pad
convention, bad inputs, and the nn modules."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

import fastconv
from fastconv.families.deformable import dcnv4_length
from fastconv.nn import DCNv3, DCNv4, DeformConv2d
from fastconv.reference import deformable as reference
from conftest import triton_available

rng = np.random.default_rng(0)
CPU_BACKENDS = ["numba", "torch"]
BACKENDS = CPU_BACKENDS + (["triton"] if triton_available() else [])


def run(kind, *args, backend, **kwargs):
    """fastconv.run in float64 numpy (numba, torch) or float32 torch tensors (triton)."""
    if backend == "triton":
        as_t = lambda a: torch.from_numpy(a).float() if isinstance(a, np.ndarray) else a
        out = fastconv.run(kind, *map(as_t, args), backend=backend, **{k: as_t(v) for k, v in kwargs.items()})
        return out.double().numpy()
    return fastconv.run(kind, *args, backend=backend, **kwargs)


def tol(backend):
    return 1e-5 if backend == "triton" else 1e-12


# ---------------------------------------------------------------------------------------------------
# Identities
# ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("backend", BACKENDS)
def test_zero_offsets_are_the_regular_convolution(backend):
    x, w = rng.standard_normal((2, 6, 7, 8)), rng.standard_normal((4, 3, 3, 2))
    params = dict(stride=(2, 1), padding=(1, 2), dilation=(1, 2))
    want = F.conv2d(torch.from_numpy(x), torch.from_numpy(w), None, groups=2, **params).numpy()
    offset = np.zeros((2, 2 * 3 * 6, *want.shape[2:]))          # 3 offset groups
    got = run("dcnv1", x, w, offset=offset, backend=backend, **params)
    np.testing.assert_allclose(got, want, atol=tol(backend) * 10)


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_dcnv1_is_deform_conv2d_with_a_mask_of_ones(backend):
    x, w = rng.standard_normal((1, 4, 6, 6)), rng.standard_normal((3, 4, 3, 3))
    offset = 2 * rng.standard_normal((1, 18, 4, 4))
    v1 = run("dcnv1", x, w, offset=offset, backend=backend)
    v2 = run("dcnv2", x, w, offset=offset, mask=np.ones((1, 9, 4, 4)), backend=backend)
    np.testing.assert_allclose(v1, v2, atol=1e-12)


def _bilinear_by_hand(img, y, x):
    H, W = img.shape
    if y <= -1 or y >= H or x <= -1 or x >= W:
        return 0.0
    total = 0.0
    for yc in (np.floor(y), np.floor(y) + 1):
        for xc in (np.floor(x), np.floor(x) + 1):
            if 0 <= yc < H and 0 <= xc < W:
                total += (1 - abs(y - yc)) * (1 - abs(x - xc)) * img[int(yc), int(xc)]
    return total


@pytest.mark.parametrize("version", ["tiled", "flat"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_deform_conv2d_blocked_versions_on_many_tiles(version, dtype):
    """v2 and v3 on a batch of several tiles (v3's run across images), weight and offset groups that
    split each other's channels, 10 output channels per group (not a multiple of the register block)."""
    from fastconv.kernels.deform_conv2d import cpu
    B, groups, G, H, W = 3, 2, 3, 9, 11
    x = rng.standard_normal((B, 12, H, W)).astype(dtype)
    w = rng.standard_normal((20, 12 // groups, 3, 2)).astype(dtype)
    bias = rng.standard_normal(20).astype(dtype)
    Ho, Wo = H - 2 * (3 - 1), (W + 2 - (2 - 1) - 1) // 2 + 1    # stride (1, 2), padding (0, 1), dilation (2, 1)
    offset = (2 * rng.standard_normal((B, 2 * G * 6, Ho, Wo))).astype(dtype)
    mask = rng.random((B, G * 6, Ho, Wo)).astype(dtype)
    params = dict(stride=(1, 2), padding=(0, 1), dilation=(2, 1))
    want = reference.deform_conv2d(*(torch.from_numpy(a) for a in (x, w, bias, offset, mask)), **params).numpy()
    got = cpu.deform_conv2d(x, w, bias, offset, mask, **params, groups=groups, offset_groups=G,
                            out_size=want.shape[2:], version=version)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 if dtype == "float32" else 1e-10)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dy, dx", [(-1.0, 0.0), (-0.5, 0.25), (3.0, 2.5), (3.5, -0.75), (0.3, 4.0), (4.2, 1.0)])
def test_bilinear_rule_at_the_borders(backend, dy, dx):
    """A 1×1 kernel of weight 1 reads x at (ho + Δy, wo + Δx): the definition's border cases."""
    img = rng.standard_normal((4, 5))
    offset = np.empty((1, 2, 4, 5))
    offset[0, 0], offset[0, 1] = dy, dx
    got = run("dcnv1", img[None, None], np.ones((1, 1, 1, 1)), offset=offset, backend=backend)[0, 0]
    want = [[_bilinear_by_hand(img, ho + dy, wo + dx) for wo in range(5)] for ho in range(4)]
    np.testing.assert_allclose(got, want, atol=tol(backend))


@pytest.mark.parametrize("backend", BACKENDS)
def test_dcnv3_unequal_pads_follow_the_cuda_convention(backend):
    """Zero offsets, all weight on point (i, j): y[ho, wo] = x[ho·sh − ph + j·dh, wo·sw − pw + i·dw]
    (the official pure-PyTorch reference swaps ph and pw; the CUDA op and fastconv do not)."""
    N, H, W, C, G = 1, 6, 7, 2, 1
    kernel, stride, padding, dilation = (3, 3), (1, 2), (2, 0), (1, 2)
    x = rng.standard_normal((N, H, W, C))
    Ho, Wo = H + 4 - 2, (W - 4 - 1) // 2 + 1
    for p, (i, j) in enumerate(reference.dcn_points(kernel, False)):
        mask = np.zeros((N, Ho, Wo, G * 9))
        mask[..., p] = 1
        got = run("dcnv3", x, offset=np.zeros((N, Ho, Wo, G * 18)), mask=mask, kernel_size=kernel,
                  stride=stride, padding=padding, dilation=dilation, group=G, backend=backend)
        want = np.zeros((N, Ho, Wo, C))
        for ho in range(Ho):
            for wo in range(Wo):
                r, c = ho * stride[0] - padding[0] + j * dilation[0], wo * stride[1] - padding[1] + i * dilation[1]
                if 0 <= r < H and 0 <= c < W:
                    want[:, ho, wo] = x[:, r, c]
        np.testing.assert_allclose(got, want, atol=tol(backend), err_msg=f"point {p} = (i={i}, j={j})")


def _pack(offset, mask, G, P):
    N, Ho, Wo, _ = mask.shape
    om = np.zeros((N, Ho, Wo, dcnv4_length(G, P)))
    om[..., :3 * G * P] = np.concatenate([offset.reshape(N, Ho, Wo, G, 2 * P), mask.reshape(N, Ho, Wo, G, P)],
                                         -1).reshape(N, Ho, Wo, -1)
    return om


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("remove_center", [False, True])
def test_dcnv4_is_dcnv3_on_the_fused_layout(backend, remove_center):
    G, P = 2, 9 - remove_center
    x = rng.standard_normal((2, 5, 6, 2 * G))
    offset, mask = 2 * rng.standard_normal((2, 5, 6, G * 2 * P)), rng.standard_normal((2, 5, 6, G * P))
    params = dict(kernel_size=3, padding=1, group=G, offset_scale=0.8, remove_center=remove_center)
    v3 = run("dcnv3", x, offset=offset, mask=mask, backend=backend, **params)
    v4 = run("dcnv4", x, offset_mask=_pack(offset, mask, G, P), backend=backend, **params)
    np.testing.assert_allclose(v4, v3, atol=tol(backend))


def test_offset_scale_scales_offsets_around_the_kernel_centre():
    """offset_scale s with offsets Δ equals scale 1 with offsets (s − 1)·(tap·dil − half) + s·Δ."""
    G, P, s = 1, 9, 0.5
    x = rng.standard_normal((1, 6, 6, 3))
    offset = rng.standard_normal((1, 6, 6, 2 * P))
    params = dict(kernel_size=3, padding=1, dilation=1, group=G)
    shift = np.array([[(s - 1) * (i - 1), (s - 1) * (j - 1)] for i, j in reference.dcn_points((3, 3), False)])
    mask = rng.random((1, 6, 6, P))
    a = fastconv.run("dcnv3", x, offset=offset, mask=mask, offset_scale=s, **params)
    b = fastconv.run("dcnv3", x, offset=s * offset + shift.reshape(-1), mask=mask, offset_scale=1.0, **params)
    np.testing.assert_allclose(a, b, atol=1e-12)


# ---------------------------------------------------------------------------------------------------
# Bad inputs: the exact exception and a message naming the parameter
# ---------------------------------------------------------------------------------------------------

X, W = np.zeros((1, 4, 5, 5)), np.zeros((2, 4, 3, 3))
OFF, MASK = np.zeros((1, 18, 3, 3)), np.zeros((1, 9, 3, 3))
XN = np.zeros((1, 5, 5, 8))
OFF3, MASK3 = np.zeros((1, 5, 5, 72)), np.zeros((1, 5, 5, 36))


@pytest.mark.parametrize("kind, args, kwargs, error, match", [
    ("deform_conv2d", (X, W), {}, ValueError, "needs the tensor offset"),
    ("dcnv2", (X, W), dict(offset=OFF), ValueError, "needs the tensor mask"),
    ("dcnv1", (X, W), dict(offset=OFF, mask=MASK), TypeError, "unknown parameter 'mask'"),
    ("deform_conv2d", (X, W), dict(offset=np.zeros((1, 17, 3, 3))), ValueError, r"offset.shape\[1\] must be"),
    ("deform_conv2d", (X, W), dict(offset=np.zeros((1, 18, 4, 3))), ValueError, "offset must have shape"),
    ("deform_conv2d", (X, W), dict(offset=np.zeros((1, 54, 3, 3))), ValueError, "offset groups 3"),
    ("deform_conv2d", (X, W), dict(offset=OFF, mask=np.zeros((1, 18, 3, 3))), ValueError, "mask must have shape"),
    ("deform_conv2d", (X, W), dict(offset=OFF, mask=np.zeros((9, 3, 3))), ValueError, "mask must be 4-D"),
    ("deform_conv2d", (X, np.zeros((2, 3, 3, 3))), dict(offset=OFF), ValueError, r"w.shape\[1\]"),
    ("deform_conv2d", (X, np.zeros((3, 2, 3, 3))), dict(offset=OFF), ValueError, "out_channels=3"),
    ("deform_conv2d", (X, W), dict(offset=OFF, bias=np.zeros(3)), ValueError, "bias must have shape"),
    ("deform_conv2d", (X, W), dict(offset=OFF, stride=0), ValueError, "stride must be positive"),
    ("deform_conv2d", (X, W), dict(offset=OFF, padding="same"), TypeError, "padding must be an int"),
    ("deform_conv2d", (X, np.zeros((2, 4, 7, 7))), dict(offset=OFF), ValueError, "larger than the padded input"),
    ("deform_conv2d", (np.zeros((1, 0, 5, 5)), W), dict(offset=OFF), ValueError, "at least one input channel"),
    ("deform_conv2d", (np.zeros((1, 4, 0, 5)), np.zeros((2, 4, 1, 1))), dict(offset=np.zeros((1, 2, 2, 5)), padding=1),
     ValueError, "non-empty image"),
    ("dcnv3", (np.zeros((1, 5, 0, 8)),), dict(offset=OFF3, mask=MASK3), ValueError, "non-empty image"),
    ("dcnv3", (XN,), dict(offset=OFF3, mask=MASK3, group=3), ValueError, "group=3 must divide"),
    ("dcnv3", (XN,), dict(offset=OFF3, mask=MASK3, group=0), ValueError, "group must be positive"),
    ("dcnv3", (XN,), dict(offset=OFF3, mask=np.zeros((1, 5, 5, 35))), ValueError, "mask must have shape"),
    ("dcnv3", (XN,), dict(offset=OFF3[..., :70], mask=MASK3), ValueError, "offset must have shape"),
    ("dcnv3", (XN,), dict(offset=OFF3), ValueError, "needs the tensor mask"),
    ("dcnv3", (XN,), dict(offset=OFF3, mask=MASK3, kernel_size=2, remove_center=True), ValueError,
     "remove_center needs an odd kernel"),
    ("dcnv3", (XN,), dict(offset=OFF3, mask=MASK3, remove_center="yes"), TypeError, "remove_center must be a bool"),
    ("dcnv3", (XN,), dict(offset=OFF3, mask=MASK3, offset_scale="1"), TypeError, "offset_scale must be"),
    ("dcnv3", (XN,), dict(offset=OFF3, mask=MASK3, offset_scale=float("nan")), TypeError, "offset_scale must be"),
    ("dcnv3", (XN,), dict(offset=OFF3, mask=MASK3, kernel_size=(3, 0)), ValueError, "kernel_size must be positive"),
    ("dcnv3", (np.zeros((5, 5, 8)),), dict(offset=OFF3, mask=MASK3), ValueError, "x must be 4-D"),
    ("dcnv4", (XN,), dict(offset_mask=np.zeros((1, 5, 5, 108))), ValueError, "multiple of 8"),
    ("dcnv4", (XN,), dict(offset=OFF3), TypeError, "unknown parameter 'offset'"),
])
def test_bad_inputs(kind, args, kwargs, error, match):
    with pytest.raises(error, match=match):
        fastconv.run(kind, *args, **kwargs)


def test_dcnv3_takes_one_positional_tensor():
    with pytest.raises(TypeError, match="dcnv3 takes 1 positional tensor"):
        fastconv.run("dcnv3", XN, OFF3, mask=MASK3)


def test_cost_counts_the_sampling():
    cost = fastconv.cost("dcnv2", X.shape, W.shape, offset=OFF.shape, mask=MASK.shape)
    assert cost["dense_macs"] == 1 * 2 * 9 * 4 * 9
    assert cost["samples"] == 1 * 4 * 9 * 9
    assert cost["macs"] == cost["dense_macs"] + 4 * cost["samples"]


# ---------------------------------------------------------------------------------------------------
# Modules
# ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("modulated", [False, True])
def test_deform_conv2d_module(modulated):
    torch.manual_seed(0)
    m = DeformConv2d(4, 6, 3, stride=2, padding=1, groups=2, offset_groups=2, modulated=modulated).double()
    assert m.kind == ("dcnv2" if modulated else "dcnv1")
    x = torch.randn(2, 4, 9, 8, dtype=torch.float64)
    with torch.no_grad():
        # zero-initialised offset branch: the regular convolution (times sigmoid(0) = 0.5 with a mask)
        plain = F.conv2d(x, m.weight, m.bias if not modulated else None, 2, 1, 1, 2)
        want = plain if not modulated else 0.5 * plain + m.bias.view(1, -1, 1, 1)
        torch.testing.assert_close(m(x), want)
        torch.nn.init.normal_(m.conv_offset.weight, std=0.3)
        out = m.conv_offset(x)
        if modulated:
            o1, o2, logits = out.chunk(3, 1)
            want = reference.deform_conv2d(x, m.weight, m.bias, torch.cat((o1, o2), 1), torch.sigmoid(logits),
                                           stride=(2, 2), padding=(1, 1), dilation=(1, 1))
        else:
            want = reference.deform_conv2d(x, m.weight, m.bias, out, stride=(2, 2), padding=(1, 1),
                                           dilation=(1, 1))
        torch.testing.assert_close(m(x), want)
    # with autograd, "auto" runs the reference: gradients reach the offset branch
    m(x).sum().backward()
    assert m.conv_offset.weight.grad is not None and m.conv_offset.weight.grad.abs().sum() > 0


def _randomise(module):
    with torch.no_grad():
        for p in module.parameters():
            p.normal_(std=0.3)


def test_dcnv3_module_matches_its_definition():
    torch.manual_seed(0)
    m = DCNv3(channels=8, group=2).double()
    assert set(m.state_dict()) >= {"dw_conv.0.weight", "dw_conv.1.1.weight", "offset.weight", "mask.weight",
                                   "input_proj.weight", "output_proj.weight"}
    _randomise(m)
    x = torch.randn(2, 6, 5, 8, dtype=torch.float64)
    with torch.no_grad():
        feat = F.gelu(F.layer_norm(F.conv2d(x.permute(0, 3, 1, 2), m.dw_conv[0].weight, m.dw_conv[0].bias,
                                            padding=1, groups=8).permute(0, 2, 3, 1), (8,),
                                   m.dw_conv[1][1].weight, m.dw_conv[1][1].bias, 1e-6))
        mask = F.softmax((feat @ m.mask.weight.T + m.mask.bias).reshape(2, 6, 5, 2, 9), -1).reshape(2, 6, 5, 18)
        core = reference.dcnv3(x @ m.input_proj.weight.T + m.input_proj.bias, feat @ m.offset.weight.T + m.offset.bias,
                               mask, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1), dilation=(1, 1), group=2,
                               offset_scale=1.0, remove_center=False)
        want = core @ m.output_proj.weight.T + m.output_proj.bias
        torch.testing.assert_close(m(x), want)
        m.backend = "numba"
        torch.testing.assert_close(m(x), want)


def test_dcnv4_module_matches_its_definition():
    torch.manual_seed(0)
    m = DCNv4(channels=8, group=2, remove_center=True).double()
    assert m.offset_mask.out_features == dcnv4_length(2, 8) == 48
    _randomise(m)
    x = torch.randn(2, 5, 5, 8, dtype=torch.float64)
    with torch.no_grad():
        core = reference.dcnv4(x @ m.value_proj.weight.T + m.value_proj.bias,
                               x @ m.offset_mask.weight.T + m.offset_mask.bias, kernel_size=(3, 3), stride=(1, 1),
                               padding=(1, 1), dilation=(1, 1), group=2, offset_scale=1.0, remove_center=True)
        want = core @ m.output_proj.weight.T + m.output_proj.bias
        torch.testing.assert_close(m(x), want)
        m.backend = "numba"
        torch.testing.assert_close(m(x), want)
        # the official token layout (N, L, C) with shape=(H, W)
        torch.testing.assert_close(m(x.reshape(2, 25, 8), shape=(5, 5)), want.reshape(2, 25, 8))
