"""The factorized family: convolutions that replace one dense k×k convolution by cheaper factors.

    separable          depthwise k×k then pointwise 1×1 (MobileNet, Xception)
    spatial_separable  a 1×k row filter then a k×1 column filter (Inception-v3)
    flattened          lateral 1×1, vertical k×1, horizontal 1×k: a rank-1 filter per output (Jin 2014)
    shuffled_grouped   grouped convolution followed by the ShuffleNet channel shuffle (torchvision)
    octave             high/low-frequency feature pairs exchanging information (d-li14/octconv.pytorch)

Every plan reports ``dense_macs``: the multiply-adds of the dense convolution with the same input
channels, output channels and kernel footprint, so ``cost(...)["dense_macs"] / cost(...)["macs"]`` is
the saving the factorization buys.
"""
from __future__ import annotations

from ..kernels._index import conv_out_size
from ..spec import (BENCH_BATCH, Layer, Plan, Spec, check_rank, cost_dict, int_tuple, is_int, non_negative,
                    numel, positive, positive_int)
from .standard import _bias, conv_plan, depthwise_plan


def _pair_padding(value):
    """An int or (ph, pw) of non-negative ints (these kinds have no 'same'/'valid' strings)."""
    if isinstance(value, str):
        raise TypeError(f"padding must be an int or a tuple of 2 ints, got {value!r}")
    return non_negative("padding", int_tuple("padding", value, 2))


def _fits(name, size, pad, kernel, axis):
    if size + 2 * pad < kernel:
        raise ValueError(f"{name} kernel size {kernel} is larger than the padded input {size + 2 * pad} "
                         f"on spatial axis {axis}")


# ---------------------------------------------------------------------------------------------------
# separable: depthwise then pointwise
# ---------------------------------------------------------------------------------------------------
SEPARABLE_LAYOUT = "x (B, Cin, H, W), w (Cin·m, 1, kh, kw), pointwise (Cout, Cin·m[, 1, 1]), bias (Cout,)"


def separable_plan(shapes, p, itemsize=4):
    dw = depthwise_plan({"x": shapes.get("x"), "w": shapes.get("w")}, {**p, "groups": None}, itemsize)
    batch, cin, *_ = shapes["x"]
    cmid, _, kh, kw = shapes["w"]
    out_size = dw.out_shape[2:]
    pw = shapes.get("pointwise")
    if pw is not None and len(pw) == 4:
        if tuple(pw[2:]) != (1, 1):
            raise ValueError(f"pointwise must be a 1×1 kernel (Cout, Cin·m, 1, 1), got shape {tuple(pw)}")
        pw = tuple(pw[:2])
    pw = check_rank("pointwise", pw, 2, "(Cout, Cin·m) or (Cout, Cin·m, 1, 1)")
    cout = pw[0]
    if pw[1] != cmid:
        raise ValueError(f"pointwise.shape[1] must be the depthwise output channels w.shape[0] = {cmid}, "
                         f"got {pw[1]}")
    bias = _bias(shapes, cout)
    out_shape = (batch, cout, *out_size)
    pixels = batch * numel(out_size)
    dw_macs = pixels * cmid * kh * kw
    pw_macs = pixels * cout * cmid
    cost = cost_dict(dw_macs + pw_macs, numel(shapes["w"]) + cout * cmid + (cout if bias else 0),
                     [shapes["x"], shapes["w"], pw, bias, out_shape], itemsize,
                     depthwise_macs=dw_macs, pointwise_macs=pw_macs,
                     dense_macs=pixels * cout * cin * kh * kw)
    ref = {k: dw.ref_params[k] for k in ("stride", "padding", "dilation")}
    kernel = {k: dw.kernel_params[k] for k in ("stride", "padding", "dilation", "out_size")}
    return Plan(out_shape, ref, kernel, cost, {"pointwise": (cout, cmid, 1, 1)})


# ---------------------------------------------------------------------------------------------------
# spatial_separable: 1×k row filter, then k×1 column filter
# ---------------------------------------------------------------------------------------------------
SPATIAL_LAYOUT = "x (B, Cin, H, W), w (Cmid, Cin, 1, kw), col (Cout, Cmid, kh, 1), bias (Cout,)"


def spatial_separable_plan(shapes, p, itemsize=4):
    batch, cin, height, width = check_rank("x", shapes.get("x"), 4, "(B, Cin, H, W)")
    cmid, w_cin, one, kw = check_rank("w", shapes.get("w"), 4, "(Cmid, Cin, 1, kw): the 1×k row filter")
    cout, col_cmid, kh, col_one = check_rank("col", shapes.get("col"), 4,
                                             "(Cout, Cmid, kh, 1): the k×1 column filter")
    if one != 1 or w_cin != cin:
        raise ValueError(f"w must have shape (Cmid, Cin={cin}, 1, kw) (a 1×k row filter), got {shapes['w']}")
    if col_one != 1 or col_cmid != cmid:
        raise ValueError(f"col must have shape (Cout, Cmid={cmid}, kh, 1) (a k×1 column filter), "
                         f"got {shapes['col']}")
    positive("w kernel size", (kw,))
    positive("col kernel size", (kh,))
    if not is_int(p["padding"]):
        raise TypeError(f"padding must be an int (the row filter pads W, the column filter pads H), "
                        f"got {p['padding']!r}")
    pad = non_negative("padding", (int(p["padding"]),))[0]
    _fits("w (row filter)", width, pad, kw, 1)
    _fits("col (column filter)", height, pad, kh, 0)
    bias = _bias(shapes, cout)
    out_w = conv_out_size(width, kw, 1, pad, pad, 1)
    out_h = conv_out_size(height, kh, 1, pad, pad, 1)
    out_shape = (batch, cout, out_h, out_w)
    row_macs = batch * cmid * height * out_w * cin * kw
    col_macs = batch * cout * out_h * out_w * cmid * kh
    cost = cost_dict(row_macs + col_macs, numel(shapes["w"]) + numel(shapes["col"]) + (cout if bias else 0),
                     [shapes["x"], shapes["w"], shapes["col"], bias, out_shape], itemsize,
                     dense_macs=batch * cout * out_h * out_w * cin * kh * kw)
    return Plan(out_shape, {"padding": pad}, {"padding": pad}, cost)


# ---------------------------------------------------------------------------------------------------
# flattened: lateral 1×1, vertical k×1 per channel, horizontal 1×k per channel
# ---------------------------------------------------------------------------------------------------
FLATTENED_LAYOUT = "x (B, Cin, H, W), w (Cout, Cin) lateral, vertical (Cout, kh), horizontal (Cout, kw), bias (Cout,)"


def flattened_plan(shapes, p, itemsize=4):
    batch, cin, height, width = check_rank("x", shapes.get("x"), 4, "(B, Cin, H, W)")
    cout, w_cin = check_rank("w", shapes.get("w"), 2, "(Cout, Cin): the lateral 1×1 filter")
    if w_cin != cin:
        raise ValueError(f"w.shape[1] must be in_channels = {cin} (w is the lateral (Cout, Cin)), got {w_cin}")
    v_out, kh = check_rank("vertical", shapes.get("vertical"), 2, "(Cout, kh)")
    h_out, kw = check_rank("horizontal", shapes.get("horizontal"), 2, "(Cout, kw)")
    if v_out != cout:
        raise ValueError(f"vertical.shape[0] must be out_channels = {cout}, got {v_out}")
    if h_out != cout:
        raise ValueError(f"horizontal.shape[0] must be out_channels = {cout}, got {h_out}")
    positive("vertical kernel size", (kh,))
    positive("horizontal kernel size", (kw,))
    ph, pw = _pair_padding(p["padding"])
    _fits("vertical", height, ph, kh, 0)
    _fits("horizontal", width, pw, kw, 1)
    bias = _bias(shapes, cout)
    out_h, out_w = conv_out_size(height, kh, 1, ph, ph, 1), conv_out_size(width, kw, 1, pw, pw, 1)
    out_shape = (batch, cout, out_h, out_w)
    macs = batch * cout * (height * width * cin + out_h * width * kh + out_h * out_w * kw)
    cost = cost_dict(macs, cout * (cin + kh + kw) + (cout if bias else 0),
                     [shapes["x"], shapes["w"], shapes["vertical"], shapes["horizontal"], bias, out_shape],
                     itemsize, dense_macs=batch * cout * out_h * out_w * cin * kh * kw)
    return Plan(out_shape, {"padding": (ph, pw)}, {"padding": (ph, pw)}, cost)


# ---------------------------------------------------------------------------------------------------
# shuffled_grouped: grouped conv2d + channel shuffle
# ---------------------------------------------------------------------------------------------------
def shuffled_grouped_plan(shapes, p, itemsize=4):
    if isinstance(p["padding"], str):       # 'same'/'valid' would work, but keep the kernel's geometry explicit
        raise TypeError(f"padding must be an int or a tuple of 2 ints, got {p['padding']!r}")
    plan = conv_plan(2)(shapes, p, itemsize)
    kernel = {k: plan.kernel_params[k] for k in ("stride", "padding", "dilation", "groups", "out_size")}
    return Plan(plan.out_shape, plan.ref_params, kernel, plan.cost)


# ---------------------------------------------------------------------------------------------------
# octave: (x_h, x_l) -> (y_h, y_l)
# ---------------------------------------------------------------------------------------------------
OCTAVE_LAYOUT = ("x = (x_h (B, Ch, H, W), x_l (B, Cl, H/2, W/2) or None), w = (w_hh (Coh, Ch, k, k), "
                 "w_hl (Col, Ch, k, k), w_lh (Coh, Cl, k, k), w_ll (Col, Cl, k, k)), each weight but w_hh "
                 "may be None")
OCTAVE_WEIGHTS = ("w_hh", "w_hl", "w_lh", "w_ll")


def _octave_parts(name, shape, count, layout):
    """shapes['x'] / shapes['w'] as a tuple of `count` shapes or None."""
    if shape is None or not isinstance(shape, tuple) or len(shape) != count or \
            any(s is not None and not isinstance(s, tuple) for s in shape):
        raise TypeError(f"{name} must be a tuple of {count} tensors (or None entries): {layout}")
    return shape


def octave_plan(shapes, p, itemsize=4):
    x_h, x_l = _octave_parts("x", shapes.get("x"), 2, "(x_h, x_l)")
    weights = dict(zip(OCTAVE_WEIGHTS, _octave_parts("w", shapes.get("w"), 4, "(w_hh, w_hl, w_lh, w_ll)")))
    batch, ch, height, width = check_rank("x_h", x_h, 4, "(B, Ch, H, W)")
    stride = positive_int("stride", p["stride"])
    if stride not in (1, 2):
        raise ValueError(f"stride must be 1 or 2 for octave, got {stride}")
    pad = _pair_padding(p["padding"])
    # the low branch lives at half resolution: every pooling step must halve exactly
    need = 2 * stride
    if height % need or width % need:
        raise ValueError(f"octave needs x_h's height and width divisible by {need} at stride {stride} "
                         f"(the low-frequency branch is at half resolution), got {height}×{width}")
    low = (height // 2, width // 2)
    cl = None
    if x_l is not None:
        b_l, cl, *size_l = check_rank("x_l", x_l, 4, "(B, Cl, H/2, W/2)")
        if b_l != batch or tuple(size_l) != low:
            raise ValueError(f"x_l must have shape ({batch}, Cl, {low[0]}, {low[1]}) (half the resolution "
                             f"of x_h), got {x_l}")
    w = {k: (check_rank(k, s, 4, "(C_out, C_in, kh, kw)") if s is not None else None) for k, s in weights.items()}
    if w["w_hh"] is None:
        raise ValueError("w_hh is required: the high-to-high convolution (Coh, Ch, kh, kw)")
    if x_l is None and (w["w_lh"] is not None or w["w_ll"] is not None):
        raise ValueError("x_l is None (first octave layer), so w_lh and w_ll must be None")
    if x_l is not None and w["w_lh"] is None and w["w_ll"] is None:
        raise ValueError("x_l is given but w_lh and w_ll are both None: nothing would read x_l")
    kernel = w["w_hh"][2:]
    positive("w_hh kernel size", kernel)
    for name, s in w.items():
        if s is not None and s[2:] != kernel:
            raise ValueError(f"{name} must have the kernel size {kernel} of w_hh, got {s[2:]}")
    for name, (out_ref, in_ch) in {"w_hh": ("w_hh", ch), "w_hl": ("w_hl", ch),
                                   "w_lh": ("w_hh", cl), "w_ll": ("w_hl" if w["w_hl"] else "w_ll", cl)}.items():
        s = w[name]
        if s is None:
            continue
        if s[1] != in_ch:
            raise ValueError(f"{name}.shape[1] must be {in_ch} (the channels of {'x_h' if name[2] == 'h' else 'x_l'}), "
                             f"got {s[1]}")
        if s[0] != w[out_ref][0]:
            raise ValueError(f"{name}.shape[0] must be {w[out_ref][0]} (the channels of "
                             f"{'y_h' if name[3] == 'h' else 'y_l'}), got {s[0]}")
    coh = w["w_hh"][0]
    col = (w["w_hl"] or w["w_ll"] or (None,))[0]
    # output sizes: y_h from the (pooled at stride 2) high input; y_l at half of it
    high_in = (height // stride, width // stride)
    for axis, (size, k, pd) in enumerate(zip(high_in, kernel, pad)):
        if size // 2 + 2 * pd < k:
            raise ValueError(f"kernel size {kernel} is larger than the padded low-frequency input "
                             f"({size // 2 + 2 * pd} on spatial axis {axis})")
    out_h = tuple(conv_out_size(s, k, 1, pd, pd, 1) for s, k, pd in zip(high_in, kernel, pad))
    out_l = tuple(conv_out_size(s // 2, k, 1, pd, pd, 1) for s, k, pd in zip(high_in, kernel, pad))
    if tuple(2 * o for o in out_l) != out_h:
        raise ValueError(f"padding={pad} must keep the spatial size (padding = (kernel_size − 1)/2, here "
                         f"{tuple((k - 1) // 2 for k in kernel)}): the high output {out_h} must be twice the "
                         f"low output {out_l}")
    y_h = (batch, coh, *out_h)
    y_l = (batch, col, *out_l) if col is not None else None
    k2 = numel(kernel)
    macs = {"w_hh": coh * numel(out_h) * ch, "w_hl": (col or 0) * numel(out_l) * ch,
            "w_lh": coh * numel(out_l) * (cl or 0), "w_ll": (col or 0) * numel(out_l) * (cl or 0)}
    total = sum(batch * m * k2 for name, m in macs.items() if w[name] is not None)
    dense = batch * (coh + (col or 0)) * numel(out_h) * (ch + (cl or 0)) * k2
    cost = cost_dict(total, sum(numel(s) for s in w.values() if s is not None),
                     [x_h, x_l, *w.values(), y_h, y_l], itemsize, dense_macs=dense)
    return Plan((y_h, y_l), {"stride": stride, "padding": pad}, {"stride": stride, "padding": pad}, cost)


# ---------------------------------------------------------------------------------------------------
# The specs
# ---------------------------------------------------------------------------------------------------
def _spec(name, summary, formula, plan, inputs, tensor_params, params, source, layout, required=()):
    return Spec(name=name, family="factorized", summary=summary, formula=formula, inputs=inputs,
                tensor_params=tensor_params, params=params, plan=plan,
                reference=f"factorized:{name}", cpu=f"{name}.cpu:{name}", gpu=f"{name}.gpu:{name}",
                source=source, required=required, layout=layout)


SPECS = [
    _spec("separable", "depthwise separable conv2d: depthwise k×k then pointwise 1×1, fused (MobileNet)",
          "y[b,o,p] = bias[o] + Σ_c pw[o,c]·Σ_k w[c,0,k]·x[b, c // m, p·s − pad + k·d]",
          separable_plan, ("x", "w"), ("pointwise", "bias"), dict(stride=1, padding=0, dilation=1),
          "conv2d(conv2d(x, w, groups=Cin), pointwise) (MobileNet / Xception)", SEPARABLE_LAYOUT,
          required=("pointwise",)),
    _spec("spatial_separable", "spatially separable conv2d: a 1×k row filter then a k×1 column filter (Inception-v3)",
          "y[b,o,i,j] = bias[o] + Σ_{m,u} col[o,m,u,0]·Σ_{c,v} w[m,c,0,v]·x[b, c, i − pad + u, j − pad + v]",
          spatial_separable_plan, ("x", "w"), ("col", "bias"), dict(padding=0),
          "conv2d(conv2d(x, w, padding=(0, p)), col, padding=(p, 0)) (Inception-v3 7×1/1×7)", SPATIAL_LAYOUT,
          required=("col",)),
    _spec("flattened", "flattened conv2d: lateral 1×1, vertical k×1, horizontal 1×k, a rank-1 filter (Jin 2014)",
          "y[b,o,i,j] = bias[o] + Σ_v h[o,v]·Σ_u v[o,u]·Σ_c w[o,c]·x[b, c, i − ph + u, j − pw + v]",
          flattened_plan, ("x", "w"), ("vertical", "horizontal", "bias"), dict(padding=0),
          "Jin, Dundar, Culurciello 2014, Flattened convolutional neural networks", FLATTENED_LAYOUT,
          required=("vertical", "horizontal")),
    _spec("shuffled_grouped", "grouped conv2d followed by the ShuffleNet channel shuffle, in one pass",
          "y[b, k·g + j, p] = conv2d(x, w, bias, groups=g)[b, j·Cout/g + k, p]",
          shuffled_grouped_plan, ("x", "w"), ("bias",), dict(stride=1, padding=0, dilation=1, groups=1),
          "torchvision.models.shufflenetv2.channel_shuffle after a grouped conv2d",
          "x (B, Cin, H, W), w (Cout, Cin/groups, kh, kw), bias (Cout,)"),
    _spec("octave", "octave convolution: high/low-frequency pairs (x_h, x_l) -> (y_h, y_l) (Chen 2019)",
          "y_h = f_hh(x_h) + up2(f_lh(x_l)),  y_l = f_ll(x_l) + f_hl(avgpool2(x_h))   (stride 1)",
          octave_plan, ("x", "w"), (), dict(stride=1, padding=0),
          "d-li14/octconv.pytorch OctaveConv", OCTAVE_LAYOUT),
]


B = BENCH_BATCH


def _octave_tensors(rng, shapes):
    """Standard-normal float32 tensors for the (x_h, x_l) and (w_hh, w_hl, w_lh, w_ll) tuples."""
    return {name: tuple(rng.standard_normal(s, dtype="float32") for s in parts) for name, parts in shapes.items()}


def _octave_layer(alpha):
    """OctResNet-50 layer1 3×3 conv (64→64 at 56×56) with a fraction alpha of the channels at 28×28."""
    low = int(alpha * 64)
    high = 64 - low
    return Layer("octave", f"OctResNet-50 layer1 3×3, 64→64, 56×56, alpha={alpha}",
                 {"x": ((B, high, 56, 56), (B, low, 28, 28)),
                  "w": ((high, high, 3, 3), (low, high, 3, 3), (high, low, 3, 3), (low, low, 3, 3))},
                 {"padding": 1}, make=_octave_tensors)


BENCHMARKS = [
    Layer("separable", "MobileNetV2 block depthwise 3×3 + project 1×1, 144→24, 56×56",
          {"x": (B, 144, 56, 56), "w": (144, 1, 3, 3), "pointwise": (24, 144)}, {"padding": 1}),
    Layer("spatial_separable", "Inception-v3 Mixed_6b 1×7 then 7×1, 128→128→192, 17×17",
          {"x": (B, 128, 17, 17), "w": (128, 128, 1, 7), "col": (192, 128, 7, 1)}, {"padding": 3}),
    Layer("flattened", "flattened 3×3 layer (Jin 2014 CIFAR net), 96→96, 32×32, same padding",
          {"x": (B, 96, 32, 32), "w": (96, 96), "vertical": (96, 3), "horizontal": (96, 3)}, {"padding": 1}),
    Layer("shuffled_grouped", "ShuffleNet v1 (g=3) stage 2 unit grouped 1×1, 240→60, 28×28",
          {"x": (B, 240, 28, 28), "w": (60, 80, 1, 1)}, {"groups": 3}),
    _octave_layer(0.25),
    _octave_layer(0.5),
]
