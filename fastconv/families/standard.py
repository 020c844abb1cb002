"""The standard family: conv1d/2d/3d and their named special cases, and the transposed convolutions.

Everything here follows ``torch.nn.functional`` exactly: parameter names, defaults, the "same"/"valid"
padding strings, the output-size rules and the error cases.
"""
from __future__ import annotations

from ..kernels._index import conv_out_size, conv_transpose_out_size, same_padding
from ..spec import (BENCH_BATCH, Layer, Plan, Spec, check_rank, cost_dict, int_tuple, non_negative, numel, positive, positive_int)

AXES = {1: "L", 2: "H, W", 3: "D, H, W"}
KAXES = {1: "k", 2: "kh, kw", 3: "kd, kh, kw"}


def _shape(name, shapes, nd, layout):
    return check_rank(name, shapes.get(name), nd + 2, layout)


def _groups(groups, in_channels, out_channels=None):
    groups = positive_int("groups", groups)
    if in_channels % groups:
        raise ValueError(f"groups={groups} must divide in_channels={in_channels}")
    if out_channels is not None and out_channels % groups:
        raise ValueError(f"groups={groups} must divide out_channels={out_channels}")
    return groups


def _bias(shapes, out_channels):
    bias = shapes.get("bias")
    if bias is not None and tuple(bias) != (out_channels,):
        raise ValueError(f"bias must have shape ({out_channels},) (one value per output channel), "
                         f"got {tuple(bias)}")
    return bias


def _padding(padding, nd, kernel, stride, dilation):
    """torch's padding argument -> (the value torch takes, pad_lo, pad_hi)."""
    if isinstance(padding, str):
        if padding == "valid":
            return padding, (0,) * nd, (0,) * nd
        if padding == "same":
            if any(s != 1 for s in stride):
                raise ValueError(f"padding='same' needs stride=1 (as in torch), got stride={stride}")
            lo, hi = zip(*(same_padding(k, d) for k, d in zip(kernel, dilation)))
            return padding, lo, hi
        raise ValueError(f"padding must be 'same', 'valid', an int or a tuple of {nd} ints, got {padding!r}")
    pad = non_negative("padding", int_tuple("padding", padding, nd))
    return pad, pad, pad


def conv_plan(nd):
    """The plan of conv{nd}d (torch.nn.functional.conv{nd}d)."""
    x_layout = f"(B, Cin, {AXES[nd]})"
    w_layout = f"(Cout, Cin/groups, {KAXES[nd]})"

    def plan(shapes, p, itemsize=4):
        batch, cin, *size = _shape("x", shapes, nd, x_layout)
        cout, cin_g, *kernel = _shape("w", shapes, nd, w_layout)
        groups = _groups(p["groups"], cin, cout)
        if cin_g * groups != cin:
            raise ValueError(f"w.shape[1] must be in_channels/groups = {cin}/{groups} = {cin // groups}, "
                             f"got {cin_g} (w is {w_layout})")
        positive("w kernel size", tuple(kernel))
        bias = _bias(shapes, cout)
        stride = positive("stride", int_tuple("stride", p["stride"], nd))
        dilation = positive("dilation", int_tuple("dilation", p["dilation"], nd))
        padding, lo, hi = _padding(p["padding"], nd, kernel, stride, dilation)
        for axis, (i, k, d, a, b) in enumerate(zip(size, kernel, dilation, lo, hi)):
            if i + a + b < d * (k - 1) + 1:
                raise ValueError(f"kernel size {tuple(kernel)} (dilation {dilation}) is larger than the "
                                 f"padded input {tuple(s + a + b for s, a, b in zip(size, lo, hi))} "
                                 f"on spatial axis {axis}")
        out_size = tuple(conv_out_size(i, k, s, a, b, d)
                         for i, k, s, a, b, d in zip(size, kernel, stride, lo, hi, dilation))
        out_shape = (batch, cout, *out_size)
        macs = batch * cout * numel(out_size) * cin_g * numel(kernel)
        cost = cost_dict(macs, numel(shapes["w"]) + (cout if bias else 0),
                         [shapes["x"], shapes["w"], bias, out_shape], itemsize,
                         dense_macs=batch * cout * numel(out_size) * cin * numel(kernel))
        return Plan(out_shape,
                    dict(stride=stride, padding=padding, dilation=dilation, groups=groups),
                    dict(stride=stride, padding=lo, dilation=dilation, groups=groups, out_size=out_size),
                    cost)
    return plan


def depthwise_plan(shapes, p, itemsize=4):
    """conv2d with groups = in_channels (each input channel filtered by its own m = Cout/Cin filters)."""
    x = check_rank("x", shapes.get("x"), 4, "(B, C, H, W)")
    w = check_rank("w", shapes.get("w"), 4, "(C·m, 1, kh, kw)")
    groups = x[1] if p["groups"] is None else p["groups"]
    if groups != x[1]:
        raise ValueError(f"groups must equal in_channels={x[1]} for depthwise, got {groups}")
    if w[1] != 1 or w[0] % x[1]:
        raise ValueError(f"w must have shape (C·m, 1, kh, kw) with C = in_channels = {x[1]}, got {w}")
    return conv_plan(2)(shapes, {**p, "groups": groups}, itemsize)


def pointwise_plan(shapes, p, itemsize=4):
    """1×1 conv2d; the weight may be (Cout, Cin/groups, 1, 1) or the Linear view (Cout, Cin/groups)."""
    w = shapes.get("w")
    if w is not None and len(w) == 2:
        shapes = {**shapes, "w": (*w, 1, 1)}
        reshape = {"w": (*w, 1, 1)}
    else:
        reshape = {}
    w = check_rank("w", shapes.get("w"), 4, "(Cout, Cin/groups, 1, 1) or (Cout, Cin/groups)")
    if w[2:] != (1, 1):
        raise ValueError(f"w must be a 1×1 kernel for pointwise, got kernel size {w[2:]}")
    plan = conv_plan(2)(shapes, p, itemsize)
    return Plan(plan.out_shape, plan.ref_params, plan.kernel_params, plan.cost, reshape)


def conv_transpose_plan(nd):
    """The plan of conv_transpose{nd}d (torch.nn.functional.conv_transpose{nd}d)."""
    x_layout = f"(B, Cin, {AXES[nd]})"
    w_layout = f"(Cin, Cout/groups, {KAXES[nd]})"

    def plan(shapes, p, itemsize=4):
        batch, cin, *size = _shape("x", shapes, nd, x_layout)
        w_cin, cout_g, *kernel = _shape("w", shapes, nd, w_layout)
        if w_cin != cin:
            raise ValueError(f"w.shape[0] must be in_channels = {cin} (w is {w_layout}), got {w_cin}")
        groups = _groups(p["groups"], cin)
        cout = cout_g * groups
        positive("w kernel size", tuple(kernel))
        bias = _bias(shapes, cout)
        stride = positive("stride", int_tuple("stride", p["stride"], nd))
        dilation = positive("dilation", int_tuple("dilation", p["dilation"], nd))
        if isinstance(p["padding"], str):
            raise ValueError(f"padding must be an int or a tuple of {nd} ints for a transposed "
                             f"convolution (torch has no 'same'/'valid' here), got {p['padding']!r}")
        padding = non_negative("padding", int_tuple("padding", p["padding"], nd))
        output_padding = non_negative("output_padding", int_tuple("output_padding", p["output_padding"], nd))
        for op, s, d in zip(output_padding, stride, dilation):
            if op >= max(s, d):
                raise ValueError(f"output_padding must be smaller than max(stride, dilation) on each axis, "
                                 f"got output_padding={output_padding}, stride={stride}, dilation={dilation}")
        out_size = tuple(conv_transpose_out_size(i, k, s, pd, pd, d, op)
                         for i, k, s, pd, d, op in zip(size, kernel, stride, padding, dilation, output_padding))
        if any(o <= 0 for o in out_size):
            raise ValueError(f"padding={padding} crops the whole output: the output size would be {out_size}")
        out_shape = (batch, cout, *out_size)
        macs = batch * cin * numel(size) * cout_g * numel(kernel)   # every input element times every tap
        cost = cost_dict(macs, numel(shapes["w"]) + (cout if bias else 0),
                         [shapes["x"], shapes["w"], bias, out_shape], itemsize)
        return Plan(out_shape,
                    dict(stride=stride, padding=padding, output_padding=output_padding, groups=groups,
                         dilation=dilation),
                    dict(stride=stride, padding=padding, dilation=dilation, groups=groups, out_size=out_size),
                    cost)
    return plan


CONV_PARAMS = dict(stride=1, padding=0, dilation=1, groups=1)
TRANSPOSE_PARAMS = dict(stride=1, padding=0, output_padding=0, groups=1, dilation=1)
TORCH = "torch.nn.functional"


def _conv(name, nd, summary, plan=None, params=CONV_PARAMS, alias_of=None, formula=None):
    return Spec(
        name=name, family="standard", summary=summary,
        formula=formula or ("y[b,o,p] = bias[o] + Σ_{c<Cin/g, k} w[o,c,k]·x[b, g·Cin/g + c, p·s − pad + k·d]"
                            "   (g = o // (Cout/g), zero outside the input)"),
        inputs=("x", "w"), tensor_params=("bias",), params=params,
        plan=plan or conv_plan(nd), reference="standard:conv", cpu="conv.cpu:conv", gpu="conv.gpu:conv",
        source=f"{TORCH}.conv{nd}d", alias_of=alias_of,
        layout=f"x (B, Cin, {AXES[nd]}), w (Cout, Cin/groups, {KAXES[nd]}), bias (Cout,)")


def _transpose(name, nd, alias_of=None):
    return Spec(
        name=name, family="standard",
        summary=f"{nd}-d transposed convolution (fractionally strided; the adjoint of conv{nd}d)",
        formula=("y[b,o,p] = bias[o] + Σ_{c in group, k : p = i·s − pad + k·d} x[b,c,i]·w[c, o mod Cout/g, k]"
                 "   (gather form: i = (p + pad − k·d)/s when whole and in range)"),
        inputs=("x", "w"), tensor_params=("bias",), params=TRANSPOSE_PARAMS,
        plan=conv_transpose_plan(nd), reference="standard:conv_transpose",
        cpu="conv_transpose.cpu:conv_transpose", gpu="conv_transpose.gpu:conv_transpose",
        source=f"{TORCH}.conv_transpose{nd}d", alias_of=alias_of,
        layout=f"x (B, Cin, {AXES[nd]}), w (Cin, Cout/groups, {KAXES[nd]}), bias (Cout,)")


SPECS = [
    _conv("conv1d", 1, "1-d convolution (stride, padding, dilation, groups), e.g. a text CNN"),
    _conv("conv2d", 2, "2-d convolution (stride, padding, dilation, groups), the CNN workhorse"),
    _conv("conv3d", 3, "3-d convolution (stride, padding, dilation, groups), e.g. C3D video"),
    _conv("depthwise", 2, "depthwise conv2d: groups = in_channels, m filters per channel (MobileNet)",
          plan=depthwise_plan, params={**CONV_PARAMS, "groups": None}, alias_of="conv2d",
          formula="y[b, c·m + j, p] = bias[c·m + j] + Σ_k w[c·m + j, 0, k]·x[b, c, p·s − pad + k·d]"),
    _conv("pointwise", 2, "pointwise (1×1) conv2d: a Linear layer over channels at every pixel",
          plan=pointwise_plan, alias_of="conv2d",
          formula="y[b,o,p] = bias[o] + Σ_c w[o,c]·x[b, c, p·s]"),
    _conv("grouped", 2, "grouped conv2d: channels split into `groups` independent convolutions (ResNeXt)",
          alias_of="conv2d"),
    _conv("dilated", 2, "dilated (atrous) conv2d: kernel taps spaced `dilation` apart (DeepLab)",
          alias_of="conv2d"),
    _transpose("conv_transpose1d", 1),
    _transpose("conv_transpose2d", 2),
    _transpose("conv_transpose3d", 3),
    _transpose("transposed", 2, alias_of="conv_transpose2d"),
]


B = BENCH_BATCH
BENCHMARKS = [
    Layer("conv1d", "text CNN (Kim 2014): 300-d embeddings, 100 filters of width 5, 128 tokens",
          {"x": (B, 300, 128), "w": (100, 300, 5)}),
    Layer("conv2d", "ResNet-50 conv2_x 3×3, 64→64, 56×56", {"x": (B, 64, 56, 56), "w": (64, 64, 3, 3)},
          {"padding": 1}),
    Layer("conv3d", "C3D-style 3×3×3, 64→64, 8×28×28", {"x": (B, 64, 8, 28, 28), "w": (64, 64, 3, 3, 3)},
          {"padding": 1}),
    Layer("depthwise", "MobileNetV2 block depthwise 3×3, 144 channels, 56×56",
          {"x": (B, 144, 56, 56), "w": (144, 1, 3, 3)}, {"padding": 1}),
    Layer("pointwise", "ResNet-50 conv2_x 1×1 expand, 64→256, 56×56",
          {"x": (B, 64, 56, 56), "w": (256, 64, 1, 1)}),
    Layer("pointwise", "ResNet-50 conv2_x 1×1 reduce, 256→64, 56×56",
          {"x": (B, 256, 56, 56), "w": (64, 256, 1, 1)}),
    Layer("grouped", "ResNeXt-50 32×4d conv2_x 3×3, 128 channels, 32 groups, 56×56",
          {"x": (B, 128, 56, 56), "w": (128, 4, 3, 3)}, {"padding": 1, "groups": 32}),
    Layer("dilated", "DeepLab-style 3×3 dilation 2, 128→128, 28×28",
          {"x": (B, 128, 28, 28), "w": (128, 128, 3, 3)}, {"padding": 2, "dilation": 2}),
    Layer("conv_transpose1d", "1-d upsampler 4×, 64→32, kernel 8, 256 steps",
          {"x": (B, 64, 256), "w": (64, 32, 8)}, {"stride": 4, "padding": 2}),
    Layer("conv_transpose2d", "DCGAN generator 4×4 stride 2, 256→128, 16×16→32×32",
          {"x": (B, 256, 16, 16), "w": (256, 128, 4, 4)}, {"stride": 2, "padding": 1}),
    Layer("conv_transpose3d", "3-D U-Net decoder 2×2×2 stride 2, 64→32, 8×16×16",
          {"x": (B, 64, 8, 16, 16), "w": (64, 32, 2, 2, 2)}, {"stride": 2}),
    Layer("transposed", "U-Net decoder up-convolution 2×2 stride 2, 128→64, 28×28→56×56",
          {"x": (B, 128, 28, 28), "w": (128, 64, 2, 2)}, {"stride": 2}),
]
