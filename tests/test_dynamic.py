"""The dynamic family: identities with conv2d, the official batch-folded baselines, bad inputs, memory, modules."""
import tracemalloc

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import fastconv
from fastconv.kernels import NotApplicable
from fastconv.nn import MODULES, DynamicConv2d, KernelWarehouseConv2d, ODConv2d
from fastconv.reference import dynamic as ref

RNG = np.random.default_rng(0)
BACKENDS = ["numba", "torch"]


def randn(*shape):
    return RNG.standard_normal(shape)


def close(a, b, tol=1e-10):
    a, b = (np.asarray(v.detach() if isinstance(v, torch.Tensor) else v, dtype=np.float64) for v in (a, b))
    assert a.shape == b.shape
    np.testing.assert_allclose(a, b, rtol=tol, atol=tol)


def conv2d(x, w, bias=None, **kw):
    t = lambda a: None if a is None else torch.from_numpy(np.ascontiguousarray(a))
    return F.conv2d(t(x), t(w), t(bias), **kw).numpy()


# ---------------------------------------------------------------------------------------------------
# Identities: each kind reduces to conv2d when its attentions select one kernel
# ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("backend", BACKENDS)
def test_dynamic_one_hot_attention_is_conv2d_with_that_expert(backend):
    x, w, bias = randn(2, 4, 7, 6), randn(3, 6, 2, 3, 3), randn(3, 6)
    attention = np.zeros((2, 3))
    attention[0, 2] = attention[1, 0] = 1
    got = fastconv.run("dynamic", x, w, attention=attention, bias=bias, padding=1, groups=2, backend=backend)
    close(got[:1], conv2d(x[:1], w[2], bias[2], padding=1, groups=2))
    close(got[1:], conv2d(x[1:], w[0], bias[0], padding=1, groups=2))


@pytest.mark.parametrize("backend", BACKENDS)
def test_odconv_without_attentions_is_conv2d_with_the_sum_of_kernels(backend):
    x, w = randn(2, 3, 6, 5), randn(4, 5, 3, 3, 1)
    got = fastconv.run("odconv", x, w, stride=(2, 1), padding=(1, 0), backend=backend)
    close(got, conv2d(x, w.sum(0), stride=(2, 1), padding=(1, 0)))


@pytest.mark.parametrize("backend", BACKENDS)
def test_odconv_with_kernel_attention_only_is_dynamic_convolution(backend):
    x, w, a = randn(2, 4, 5, 5), randn(3, 4, 4, 3, 3), RNG.random((2, 3))
    close(fastconv.run("odconv", x, w, kernel_attention=a, padding=1, backend=backend),
          fastconv.run("dynamic", x, w, attention=a, padding=1, backend=backend))


@pytest.mark.parametrize("backend", BACKENDS)
def test_odconv_channel_attentions_scale_input_and_output(backend):
    x, w = randn(2, 3, 5, 5), randn(1, 4, 3, 3, 3)
    a_c, a_f = RNG.random((2, 3)), RNG.random((2, 4))
    got = fastconv.run("odconv", x, w, in_attention=a_c, out_attention=a_f, padding=1, backend=backend)
    close(got, conv2d(x * a_c[:, :, None, None], w[0], padding=1) * a_f[:, :, None, None])


@pytest.mark.parametrize("backend", BACKENDS)
def test_kernel_warehouse_one_cell_per_mixture_assembles_the_kernel(backend):
    """Cells 2×3, Cout = 4 (Go = 2), Cin = 3 (Gi = 1), 2×2 kernel: m = 8 mixtures, each picks one cell."""
    x, cells = randn(1, 3, 5, 6), randn(8, 2, 3)
    alpha = np.eye(8)[None]                             # mixture t uses cell t
    kernel = np.zeros((4, 3, 2, 2))
    for u in range(2):
        for v in range(2):
            for go in range(2):
                kernel[go * 2:(go + 1) * 2, :, u, v] = cells[(u * 2 + v) * 2 + go]
    got = fastconv.run("kernel_warehouse", x, cells, attention=alpha, out_channels=4, kernel_size=2,
                       backend=backend)
    close(got, conv2d(x, kernel))


@pytest.mark.parametrize("geometry", [dict(padding=1), dict(stride=(2, 1), padding=(2, 0), dilation=(2, 3))])
def test_every_cpu_version_on_outputs_spanning_several_row_blocks_and_column_chunks(geometry):
    """The strategies' outputs fit one tile; here OH > ROWS and OW > 64 exercise the task decoding."""
    from fastconv.kernels.dynamic import cpu
    x, w, a = randn(2, 4, 21, 150), randn(2, 6, 2, 3, 3), RNG.random((2, 2))
    plan = fastconv.plan("odconv", x, w, kernel_attention=a, groups=2, **geometry)
    want = fastconv.run("odconv", x, w, kernel_attention=a, groups=2, backend="torch", **geometry)
    for version in ("direct", "im2col", "slab"):
        close(cpu.odconv(x=x, w=w, kernel_attention=a, **plan.kernel_params, version=version), want)
    cells, alpha = randn(3, 3, 2), randn(2, 9 * 2 * 2, 3)
    plan = fastconv.plan("kernel_warehouse", x, cells, attention=alpha, out_channels=6, kernel_size=3, **geometry)
    want = fastconv.run("kernel_warehouse", x, cells, attention=alpha, out_channels=6, kernel_size=3,
                        backend="torch", **geometry)
    for version in ("direct", "im2col", "slab"):
        close(cpu.kernel_warehouse(x=x, cells=cells, attention=alpha, **plan.kernel_params, version=version), want)


@pytest.mark.parametrize("kind", ["dynamic", "odconv"])
def test_pointwise_layers_take_the_pointwise_version_and_match_the_reference(kind):
    """1×1, stride 1, no padding: "auto" runs v5 (each sample's weights on NCHW rows of pixels); odd
    channel counts leave rows and channels over from rows_product's 4×8 blocks, 600 pixels make two
    chunks, and every attention of ODConv is on."""
    from fastconv.kernels.dynamic import cpu
    x, w = randn(3, 18, 20, 30), randn(4, 10, 9, 1, 1)     # Cg = 9 = 8 + 1, Og = 5 = 4 + 1
    attentions = ({"attention": RNG.random((3, 4)), "bias": randn(4, 10)} if kind == "dynamic" else
                  {"kernel_attention": RNG.random((3, 4)), "in_attention": RNG.random((3, 18)),
                   "out_attention": RNG.random((3, 10))})
    plan = fastconv.plan(kind, x, w, groups=2, **attentions)
    want = fastconv.run(kind, x, w, groups=2, backend="torch", **attentions)
    for version in ("auto", "pointwise", "slab"):
        close(getattr(cpu, kind)(x=x, w=w, **attentions, **plan.kernel_params, version=version), want)
    with pytest.raises(NotApplicable):
        getattr(cpu, kind)(x=x, w=w, **attentions, **{**plan.kernel_params, "stride": (2, 1)}, version="pointwise")


# ---------------------------------------------------------------------------------------------------
# The references agree with the official batch-folded computation (the benchmark baselines)
# ---------------------------------------------------------------------------------------------------
def _torch(**arrays):
    return {k: torch.from_numpy(v) if isinstance(v, np.ndarray) else v for k, v in arrays.items()}


def test_batch_folded_baselines_match_the_references():
    geometry = dict(stride=(1, 2), padding=1, dilation=(2, 1))
    x, w, bias = randn(3, 4, 7, 8), randn(2, 6, 2, 3, 3), randn(2, 6)
    args = _torch(x=x, w=w, attention=RNG.random((3, 2)), bias=bias)
    close(ref.dynamic_batch_folded(**args, **geometry, groups=2), ref.dynamic(**args, **geometry, groups=2))
    args = _torch(x=x, w=w, kernel_attention=RNG.random((3, 2)), spatial_attention=RNG.random((3, 3, 3)),
                  in_attention=RNG.random((3, 4)), out_attention=RNG.random((3, 6)))
    close(ref.odconv_batch_folded(**args, **geometry, groups=2), ref.odconv(**args, **geometry, groups=2))
    args = _torch(x=x, cells=randn(5, 3, 2), attention=randn(3, 9 * 2 * 2, 5))
    wh = dict(out_channels=6, kernel_size=(3, 3), **geometry)
    close(ref.kernel_warehouse_batch_folded(**args, **wh), ref.kernel_warehouse(**args, **wh))


def test_kernel_warehouse_mixture_order_is_the_official_permute():
    """Mixture t = (s·Go + go)·Gi + gi: the official reshape (B, Gs, Go, Gi, c_o, c_i) + permute."""
    cells, alpha = torch.randn(3, 2, 2), torch.randn(1, 4 * 2 * 3, 3)
    kernel = ref.warehouse_kernels(cells, alpha, out_channels=4, kernel_size=(2, 2))[0]    # Go = 2, Gi = 3
    mixed = (alpha[0] @ cells.reshape(3, -1)).reshape(4, 2, 3, 2, 2)                      # (s, go, gi, a, e)
    for s, (u, v) in enumerate([(0, 0), (0, 1), (1, 0), (1, 1)]):
        for go in range(2):
            for gi in range(3):
                close(kernel[go * 2:go * 2 + 2, gi * 2:gi * 2 + 2, u, v], mixed[s, go, gi])


# ---------------------------------------------------------------------------------------------------
# Memory: nothing larger than the aggregated weights plus the output
# ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["dynamic", "odconv", "kernel_warehouse"])
def test_numba_allocates_only_the_aggregated_weights_and_the_output(kind):
    B, Cin, Cout, k, H = 4, 16, 8, 3, 64
    x = RNG.standard_normal((B, Cin, H, H), dtype=np.float32)
    if kind == "kernel_warehouse":
        args, kwargs = (x, RNG.standard_normal((6, 4, 8), dtype=np.float32)), \
            dict(attention=RNG.random((B, 9 * 2 * 2, 6), dtype=np.float32), out_channels=Cout, kernel_size=k)
    else:
        name = "attention" if kind == "dynamic" else "kernel_attention"
        args, kwargs = (x, RNG.standard_normal((4, Cout, Cin, k, k), dtype=np.float32)), \
            {name: RNG.random((B, 4), dtype=np.float32)}
    fastconv.run(kind, *args, padding=1, backend="numba", **kwargs)        # compile outside the measurement
    tracemalloc.start()
    fastconv.run(kind, *args, padding=1, backend="numba", **kwargs)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    budget = 4 * (B * Cout * Cin * k * k + B * Cout * H * H)
    slack = x.nbytes // 4         # Python-level noise; any copy of x (as x·a_c would be) is 4 times larger
    assert peak <= budget + slack, f"peak {peak} bytes > aggregated weights + output = {budget} bytes"


# ---------------------------------------------------------------------------------------------------
# Bad inputs: the exact error, naming the parameter, before any kernel runs
# ---------------------------------------------------------------------------------------------------
X, W5 = np.zeros((2, 4, 6, 6)), np.zeros((3, 6, 4, 3, 3))
BAD = [
    ("dynamic", (X, W5), dict(), ValueError, "needs the tensor attention="),
    ("dynamic", (X, W5[0]), dict(attention=np.zeros((2, 3))), ValueError, r"w must be 5-D \(K, Cout"),
    ("dynamic", (X[0], W5), dict(attention=np.zeros((2, 3))), ValueError, r"x must be 4-D"),
    ("dynamic", (X, W5), dict(attention=np.zeros((2, 4))), ValueError, r"attention must have shape \(2, 3\)"),
    ("dynamic", (X, W5), dict(attention=np.zeros((3, 3))), ValueError, r"attention must have shape \(2, 3\)"),
    ("dynamic", (X, W5), dict(attention=np.zeros((2, 3)), bias=np.zeros(6)), ValueError,
     r"bias must have shape \(3, 6\)"),
    ("dynamic", (X, W5), dict(attention=np.zeros((2, 3)), groups=2), ValueError, r"w.shape\[2\] must be in_channels/groups"),
    ("dynamic", (X, W5), dict(attention=np.zeros((2, 3)), groups=4), ValueError, "groups=4 must divide out_channels=6"),
    ("dynamic", (X, W5), dict(attention=np.zeros((2, 3)), stride=0), ValueError, "stride must be positive"),
    ("dynamic", (X, W5), dict(attention=np.zeros((2, 3)), padding=-1), ValueError, "padding must be >= 0"),
    ("dynamic", (X, W5), dict(attention=np.zeros((2, 3)), dilation=4), ValueError, "larger than the padded input"),
    ("dynamic", (X, W5), dict(attention=np.zeros((2, 3)), stride=1.5), TypeError, "stride must be an int"),
    ("dynamic", (X, W5), dict(attention=np.zeros((2, 3)), temperature=1), TypeError, "unknown parameter 'temperature'"),
    ("odconv", (X, W5), dict(kernel_attention=np.zeros((2, 2))), ValueError, r"kernel_attention must have shape \(2, 3\)"),
    ("odconv", (X, W5), dict(spatial_attention=np.zeros((2, 9))), ValueError, r"spatial_attention must be 3-D"),
    ("odconv", (X, W5), dict(spatial_attention=np.zeros((2, 3, 2))), ValueError,
     r"spatial_attention must have shape \(2, 3, 3\)"),
    ("odconv", (X, W5), dict(in_attention=np.zeros((2, 6))), ValueError, r"in_attention must have shape \(2, 4\)"),
    ("odconv", (X, W5), dict(out_attention=np.zeros((2, 4))), ValueError, r"out_attention must have shape \(2, 6\)"),
    ("odconv", (X, np.zeros((0, 6, 4, 3, 3))), dict(), ValueError, "w number of experts must be positive"),
    ("kernel_warehouse", (X, np.zeros((5, 2, 2))), dict(attention=np.zeros((2, 36, 5)), kernel_size=3), ValueError,
     "out_channels is required"),
    ("kernel_warehouse", (X, np.zeros((5, 2, 2))), dict(attention=np.zeros((2, 36, 5)), out_channels=6), ValueError,
     "kernel_size is required"),
    ("kernel_warehouse", (X, np.zeros((5, 4, 2))), dict(attention=np.zeros((2, 18, 5)), out_channels=6,
                                                        kernel_size=3), ValueError,
     r"out_channels=6 must be a multiple of the cell's output channels c_o = cells.shape\[1\] = 4"),
    ("kernel_warehouse", (X, np.zeros((5, 2, 3))), dict(attention=np.zeros((2, 18, 5)), out_channels=6,
                                                        kernel_size=3), ValueError,
     r"in_channels=4 \(x.shape\[1\]\) must be a multiple of the cell's input channels c_i = cells.shape\[2\] = 3"),
    ("kernel_warehouse", (X, np.zeros((5, 2, 2))), dict(attention=np.zeros((2, 36, 4)), out_channels=6,
                                                        kernel_size=3), ValueError,
     r"attention must have shape \(2, 54, 5\) \(B, m, n\) with m = kh·kw·\(Cout/c_o\)·\(Cin/c_i\)"),
    ("kernel_warehouse", (X, np.zeros((5, 2, 2, 1, 1))), dict(attention=np.zeros((2, 54, 5)), out_channels=6,
                                                              kernel_size=3), ValueError, "cells must be 3-D"),
    ("kernel_warehouse", (X, np.zeros((5, 2, 2))), dict(attention=np.zeros((2, 54, 5)), out_channels=6,
                                                        kernel_size=(3, 3, 3)), TypeError, "kernel_size must be an int"),
    ("kernel_warehouse", (X, np.zeros((5, 2, 2))), dict(attention=np.zeros((2, 54, 5)), out_channels=6.0,
                                                        kernel_size=3), TypeError, "out_channels must be an int"),
    ("kernel_warehouse", (X, np.zeros((5, 2, 2))), dict(attention=np.zeros((2, 54, 5)), out_channels=6,
                                                        kernel_size=3, groups=2), TypeError, "unknown parameter 'groups'"),
]


@pytest.mark.parametrize("kind, args, kwargs, error, message", BAD, ids=[f"{b[0]}-{b[4][:30]}" for b in BAD])
def test_bad_input(kind, args, kwargs, error, message):
    with pytest.raises(error, match=message):
        fastconv.run(kind, *args, backend="numba", **kwargs)


# ---------------------------------------------------------------------------------------------------
# Modules: official parameter names and shapes, attention branches, fastconv backends agree
# ---------------------------------------------------------------------------------------------------
def test_modules_are_registered():
    assert MODULES["dynamic"] is DynamicConv2d and MODULES["odconv"] is ODConv2d
    assert MODULES["kernel_warehouse"] is KernelWarehouseConv2d


def _official_forward(module, x):
    """What the official module computes: its attention, then the batch-folded grouped conv."""
    if isinstance(module, DynamicConv2d):
        return ref.dynamic_batch_folded(x, module.weight, module.attention(x), module.bias, **module.conv_params())
    if isinstance(module, ODConv2d):
        a_c, a_f, a_s, a_w = module.attention(x)
        return ref.odconv_batch_folded(x, module.weight, a_w, a_s, a_c, a_f, **module.conv_params())
    y = ref.kernel_warehouse_batch_folded(x, module.warehouse.flatten(2), module.attention(x),
                                          out_channels=module.out_planes, kernel_size=module.kernel_size,
                                          stride=module.stride, padding=module.padding, dilation=module.dilation)
    return y if module.bias is None else y + module.bias.view(1, -1, 1, 1)


MODULE_CASES = [
    ("dynamic 3×3 groups 2", lambda: DynamicConv2d(8, 6, 3, padding=1, groups=2, K=3, temperature=4), 8),
    ("dynamic rgb stem stride 2", lambda: DynamicConv2d(3, 4, 3, stride=2, padding=1, bias=False), 3),
    ("odconv 3×3", lambda: ODConv2d(8, 12, 3, padding=1), 8),
    ("odconv 1×1", lambda: ODConv2d(8, 12, 1), 8),
    ("odconv depthwise", lambda: ODConv2d(8, 8, 3, padding=1, groups=8), 8),
    ("odconv 1×1 one kernel", lambda: ODConv2d(8, 4, 1, kernel_num=1), 8),
    ("kw ratio 1/2 cells 4×4", lambda: KernelWarehouseConv2d(8, 8, 3, padding=1, cell_num_ratio=0.5,
                                                             cell_inplane_ratio=0.5, cell_outplane_ratio=0.5), 8),
    ("kw ratio 1 bias stride 2", lambda: KernelWarehouseConv2d(8, 4, 3, stride=2, padding=1, bias=True), 8),
]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name, make, cin", MODULE_CASES, ids=[c[0] for c in MODULE_CASES])
def test_module_matches_the_official_batch_folded_forward(name, make, cin, backend):
    torch.manual_seed(0)
    module = make().double().eval()
    module.backend = backend
    if hasattr(module.attention, "temp_value"):
        module.update_temperature(0.3)
    x = torch.randn(3, cin, 9, 8, dtype=torch.float64)
    with torch.no_grad():
        close(module(x), _official_forward(module, x))


def test_module_gradients_flow_through_the_reference_in_training():
    module = ODConv2d(8, 8, 3, padding=1)
    x = torch.randn(2, 8, 6, 6, requires_grad=True)
    module(x).sum().backward()
    assert x.grad is not None and module.weight.grad is not None
    assert module.attention.kernel_fc.weight.grad is not None


def test_dynamic_module_parameters_are_the_official_ones():
    module = DynamicConv2d(16, 8, 3, groups=2, K=4)
    shapes = {k: tuple(v.shape) for k, v in module.state_dict().items()}
    assert shapes == {"weight": (4, 8, 8, 3, 3), "bias": (4, 8), "attention.fc1.weight": (5, 16, 1, 1),
                      "attention.fc2.weight": (4, 5, 1, 1), "attention.fc2.bias": (4,)}
    assert module.attention.temperature == 34 and not module.bias.any()
    module.update_temperature()
    assert module.attention.temperature == 31
    module.update_temperature(1)
    assert module.attention.temperature == 1
    with pytest.raises(ValueError, match="temperature must be positive"):
        module.update_temperature(0)


def test_odconv_module_parameters_are_the_official_ones():
    shapes = lambda m: {k: tuple(v.shape) for k, v in m.state_dict().items() if "bn." not in k}
    assert shapes(ODConv2d(32, 64, 3)) == {
        "weight": (4, 64, 32, 3, 3), "attention.fc.weight": (16, 32, 1, 1),
        "attention.channel_fc.weight": (32, 16, 1, 1), "attention.channel_fc.bias": (32,),
        "attention.filter_fc.weight": (64, 16, 1, 1), "attention.filter_fc.bias": (64,),
        "attention.spatial_fc.weight": (9, 16, 1, 1), "attention.spatial_fc.bias": (9,),
        "attention.kernel_fc.weight": (4, 16, 1, 1), "attention.kernel_fc.bias": (4,)}
    depthwise_pointwise = ODConv2d(512, 512, 1, groups=512)            # hidden = 512·0.0625 = 32
    assert depthwise_pointwise.attention.fc.weight.shape == (32, 512, 1, 1)
    assert depthwise_pointwise.attention.filter_fc is None and depthwise_pointwise.attention.spatial_fc is None


def test_kernel_warehouse_module_warehouse_and_one_hot_map():
    module = KernelWarehouseConv2d(64, 64, 3, cell_num_ratio=0.5, cell_inplane_ratio=0.5, cell_outplane_ratio=0.5)
    assert module.warehouse.shape == (18, 32, 32, 1, 1)                  # m = 9·2·2 = 36 mixtures, n = 18
    assert {k: tuple(v.shape) for k, v in module.state_dict().items() if "norm1." not in k} == {
        "warehouse": (18, 32, 32, 1, 1), "attention.fc1.weight": (16, 64), "attention.fc2.weight": (19 * 36, 16),
        "attention.fc2.bias": (19 * 36,)}
    one_hot = module.attention.temp_bias.view(36, 19)
    assert (one_hot.sum(1) == 1).all() and one_hot[:, :18].sum() == 18   # half the mixtures start as a cell
    assert (one_hot[:, :18].sum(0) == 1).all()                            # each cell used once
    module.update_temperature(1.0)                                        # τ = 1: α is the one-hot map
    module.eval()
    with torch.no_grad():
        alpha = module.attention(torch.randn(2, 64, 5, 5))
    close(alpha, one_hot[:, :18].expand(2, 36, 18))
    with pytest.raises(ValueError, match="must divide out_planes=6"):
        KernelWarehouseConv2d(8, 6, 3, cell_outplane_ratio=0.7)     # c_o = int(4.2) = 4
