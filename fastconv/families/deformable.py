"""The deformable family: deform_conv2d (DCNv1 without a mask, DCNv2 with one), DCNv3 and DCNv4.

A deformable convolution reads each kernel point at a learned fractional offset from its regular
position, by bilinear sampling (pixel centres at integer coordinates; a point at y ≤ −1, y ≥ H, x ≤ −1
or x ≥ W reads 0, a neighbour outside the image contributes 0).

- deform_conv2d follows ``torchvision.ops.deform_conv2d``: NCHW, a dense (grouped) weight, offsets as
  (Δy, Δx) pairs for kernel points in row-major order, an optional modulation mask used as given.
- dcnv3 follows InternImage's ``DCNv3Function`` (CUDA semantics): NHWC, no weight (the projections are
  Linear layers in the module), G groups of D channels sharing P points, offsets (Δx, Δy) with points in
  x-major order, scaled by ``offset_scale`` around the kernel centre, a per-point weight ``mask``.
- dcnv4 follows OpenGVLab's ``DCNv4Function``: DCNv3's sampling with offsets and weights fused in one
  tensor (per group [2P offsets][P weights], the last axis padded to a multiple of 8).
"""
from __future__ import annotations

import numbers

import numpy as np

from ..kernels._index import conv_out_size
from ..spec import (BENCH_BATCH, Layer, Plan, Spec, check_rank, cost_dict, int_tuple, is_int, non_negative, numel,
                    positive, positive_int)

DEFORM_LAYOUT = ("x (B, Cin, H, W), w (Cout, Cin/groups, kh, kw), offset (B, 2·G·kh·kw, Ho, Wo), "
                 "mask (B, G·kh·kw, Ho, Wo), bias (Cout,)")
DCN_LAYOUT = "x (N, H, W, G·D), offset (N, Ho, Wo, G·P·2), mask (N, Ho, Wo, G·P), P = kh·kw − remove_center"
DCNV4_LAYOUT = "x (N, H, W, G·D), offset_mask (N, Ho, Wo, L), L = G·3P rounded up to a multiple of 8"


def _geometry(p, size, kernel):
    """stride, padding, dilation as 2-tuples, checked, and the output size they give."""
    if min(size) <= 0:
        raise ValueError(f"x must have a non-empty image to sample from, got spatial size {tuple(size)}")
    stride = positive("stride", int_tuple("stride", p["stride"], 2))
    padding = non_negative("padding", int_tuple("padding", p["padding"], 2))
    dilation = positive("dilation", int_tuple("dilation", p["dilation"], 2))
    for axis, (i, k, d, a) in enumerate(zip(size, kernel, dilation, padding)):
        if i + 2 * a < d * (k - 1) + 1:
            raise ValueError(f"kernel size {tuple(kernel)} (dilation {dilation}) is larger than the padded "
                             f"input {tuple(s + 2 * q for s, q in zip(size, padding))} on spatial axis {axis}")
    out_size = tuple(conv_out_size(i, k, s, a, a, d) for i, k, s, a, d in zip(size, kernel, stride, padding, dilation))
    return stride, padding, dilation, out_size


def _expect(name, shape, want, layout):
    if tuple(shape) != tuple(want):
        raise ValueError(f"{name} must have shape {tuple(want)} ({layout}), got {tuple(shape)}")


# ---------------------------------------------------------------------------------------------------
# deform_conv2d (torchvision), dcnv1, dcnv2
# ---------------------------------------------------------------------------------------------------

def deform_conv2d_plan(shapes, p, itemsize=4):
    B, Cin, H, W = check_rank("x", shapes.get("x"), 4, "(B, Cin, H, W)")
    Cout, Cin_g, kh, kw = check_rank("w", shapes.get("w"), 4, "(Cout, Cin/groups, kh, kw)")
    positive("w kernel size", (kh, kw))
    if Cin <= 0:
        raise ValueError(f"x must have at least one input channel, got x.shape[1] = {Cin}")
    if Cin_g <= 0 or Cin % Cin_g:
        raise ValueError(f"w.shape[1] (in_channels/groups) must divide in_channels={Cin}, got {Cin_g}")
    groups = Cin // Cin_g
    if Cout % groups:
        raise ValueError(f"the weight groups {groups} (in_channels/w.shape[1] = {Cin}/{Cin_g}) must divide "
                         f"out_channels={Cout}")
    bias = shapes.get("bias")
    if bias is not None and tuple(bias) != (Cout,):
        raise ValueError(f"bias must have shape ({Cout},) (one value per output channel), got {tuple(bias)}")
    stride, padding, dilation, (Ho, Wo) = _geometry(p, (H, W), (kh, kw))
    offset = check_rank("offset", shapes.get("offset"), 4, "(B, 2·offset_groups·kh·kw, Ho, Wo)")
    taps = kh * kw
    if offset[1] == 0 or offset[1] % (2 * taps):
        raise ValueError(f"offset.shape[1] must be a positive multiple of 2·kh·kw = {2 * taps} "
                         f"(a (Δy, Δx) pair per kernel point and offset group), got {offset[1]}")
    G = offset[1] // (2 * taps)
    if Cin % G:
        raise ValueError(f"the offset groups {G} (offset.shape[1]/(2·kh·kw)) must divide in_channels={Cin}")
    _expect("offset", offset, (B, 2 * G * taps, Ho, Wo), "B, 2·offset_groups·kh·kw, Ho, Wo")
    mask = shapes.get("mask")
    if mask is not None:
        check_rank("mask", mask, 4, "(B, offset_groups·kh·kw, Ho, Wo)")
        _expect("mask", mask, (B, G * taps, Ho, Wo), "B, offset_groups·kh·kw, Ho, Wo")
    out_shape = (B, Cout, Ho, Wo)
    samples = B * Cin * taps * Ho * Wo
    dense = B * Cout * Ho * Wo * Cin_g * taps
    cost = cost_dict(dense + 4 * samples, numel(shapes["w"]) + (Cout if bias else 0),
                     [shapes["x"], shapes["w"], bias, offset, mask, out_shape], itemsize,
                     dense_macs=dense, samples=samples)
    return Plan(out_shape,
                dict(stride=stride, padding=padding, dilation=dilation),
                dict(stride=stride, padding=padding, dilation=dilation, groups=groups, offset_groups=G,
                     out_size=(Ho, Wo)),
                cost)


# ---------------------------------------------------------------------------------------------------
# dcnv3 and dcnv4 (NHWC, no weight)
# ---------------------------------------------------------------------------------------------------

def _dcn_params(shapes, p):
    """The checks dcnv3 and dcnv4 share: x, kernel, geometry, group, offset_scale, remove_center."""
    N, H, W, C = check_rank("x", shapes.get("x"), 4, "(N, H, W, G·D) (channels last)")
    kernel = positive("kernel_size", int_tuple("kernel_size", p["kernel_size"], 2))
    group = positive_int("group", p["group"])
    if C % group:
        raise ValueError(f"group={group} must divide the channels x.shape[3]={C}")
    scale = p["offset_scale"]
    if not isinstance(scale, numbers.Real) or isinstance(scale, bool) or not np.isfinite(scale):
        raise TypeError(f"offset_scale must be a finite real number, got {scale!r}")
    remove_center = p["remove_center"]
    if not isinstance(remove_center, (bool, np.bool_)) and not (is_int(remove_center) and remove_center in (0, 1)):
        raise TypeError(f"remove_center must be a bool, got {remove_center!r}")
    remove_center = bool(remove_center)
    if remove_center and (kernel[0] % 2 == 0 or kernel[1] % 2 == 0 or kernel == (1, 1)):
        raise ValueError(f"remove_center needs an odd kernel with more than one point, got kernel_size={kernel}")
    stride, padding, dilation, out_size = _geometry(p, (H, W), kernel)
    P = kernel[0] * kernel[1] - remove_center
    params = dict(kernel_size=kernel, stride=stride, padding=padding, dilation=dilation, group=group,
                  offset_scale=float(scale), remove_center=remove_center)
    return (N, *out_size, C), P, params


def dcnv4_length(group, points):
    """L of DCNv4's offset_mask: G·3P rounded up to a multiple of 8 (as the official module's Linear)."""
    return (group * 3 * points + 7) // 8 * 8


def _dcn_cost(out_shape, P, tensors, itemsize):
    # per output element and point: 4 bilinear multiply-adds and 1 multiply-add by the point's weight
    return cost_dict(numel(out_shape) * P * 5, 0, [*tensors, out_shape], itemsize)


def dcnv3_plan(shapes, p, itemsize=4):
    out_shape, P, params = _dcn_params(shapes, p)
    N, Ho, Wo, C = out_shape
    G = params["group"]
    offset = check_rank("offset", shapes.get("offset"), 4, "(N, Ho, Wo, G·P·2)")
    _expect("offset", offset, (N, Ho, Wo, G * P * 2), f"N, Ho, Wo, G·P·2 with G={G}, P={P}")
    mask = check_rank("mask", shapes.get("mask"), 4, "(N, Ho, Wo, G·P)")
    _expect("mask", mask, (N, Ho, Wo, G * P), f"N, Ho, Wo, G·P with G={G}, P={P}")
    return Plan(out_shape, params, dict(params, out_size=(Ho, Wo)),
                _dcn_cost(out_shape, P, [shapes["x"], offset, mask], itemsize))


def dcnv4_plan(shapes, p, itemsize=4):
    out_shape, P, params = _dcn_params(shapes, p)
    N, Ho, Wo, C = out_shape
    G = params["group"]
    om = check_rank("offset_mask", shapes.get("offset_mask"), 4, "(N, Ho, Wo, L)")
    L = dcnv4_length(G, P)
    _expect("offset_mask", om, (N, Ho, Wo, L), f"N, Ho, Wo, L with L = G·3P = {G}·3·{P} rounded up to a "
                                               f"multiple of 8")
    return Plan(out_shape, params, dict(params, out_size=(Ho, Wo)),
                _dcn_cost(out_shape, P, [shapes["x"], om], itemsize))


DEFORM_PARAMS = dict(stride=1, padding=0, dilation=1)
DCN_PARAMS = dict(kernel_size=3, stride=1, padding=1, dilation=1, group=4, offset_scale=1.0, remove_center=False)
DEFORM_FORMULA = ("y[b,o,ho,wo] = bias[o] + Σ_{c<Cin/g, u, v} w[o,c,u,v]·m[b,q,ho,wo]·bilinear(x[b, g·Cin/g + c], "
                  "ho·sh − ph + u·dh + Δy[b,q,ho,wo], wo·sw − pw + v·dw + Δx[b,q,ho,wo])   "
                  "(q = og·kh·kw + u·kw + v, og = offset group of the channel, m = 1 without a mask)")
DCN_FORMULA = ("y[n,ho,wo,g·D+d] = Σ_p m[n,ho,wo,g,p]·bilinear(x[n,:,:,g·D+d], "
               "ho·sh − ph + hh + (j·dh − hh + Δy)·scale, wo·sw − pw + hw + (i·dw − hw + Δx)·scale)   "
               "(p = i·kh + j x-major, hh = dh·(kh−1)//2, hw = dw·(kw−1)//2)")


def _deform(name, summary, tensor_params, required, alias_of=None):
    return Spec(
        name=name, family="deformable", summary=summary, formula=DEFORM_FORMULA,
        inputs=("x", "w"), tensor_params=tensor_params, params=DEFORM_PARAMS, plan=deform_conv2d_plan,
        reference="deformable:deform_conv2d", cpu="deform_conv2d.cpu:deform_conv2d",
        gpu="deform_conv2d.gpu:deform_conv2d", source="torchvision.ops.deform_conv2d", alias_of=alias_of,
        required=required, layout=DEFORM_LAYOUT)


SPECS = [
    _deform("deform_conv2d", "deformable conv2d (torchvision): bilinear taps at learned offsets, optional mask "
            "(DCNv1/v2)", ("bias", "offset", "mask"), ("offset",)),
    _deform("dcnv1", "deformable convolution v1 (Dai et al. 2017): deform_conv2d without a mask",
            ("bias", "offset"), ("offset",), alias_of="deform_conv2d"),
    _deform("dcnv2", "modulated deformable convolution v2 (Zhu et al. 2019): deform_conv2d with a mask",
            ("bias", "offset", "mask"), ("offset", "mask"), alias_of="deform_conv2d"),
    Spec(name="dcnv3", family="deformable",
         summary="DCNv3 core op (InternImage): NHWC, G groups sharing P sampled points weighted by a mask",
         formula=DCN_FORMULA, inputs=("x",), tensor_params=("offset", "mask"), params=DCN_PARAMS,
         plan=dcnv3_plan, reference="deformable:dcnv3", cpu="dcn.cpu:dcnv3", gpu="dcn.gpu:dcnv3",
         source="OpenGVLab/InternImage ops_dcnv3 DCNv3Function (CUDA semantics)", required=("offset", "mask"),
         layout=DCN_LAYOUT),
    Spec(name="dcnv4", family="deformable",
         summary="DCNv4 core op: DCNv3's sampling, fused offset_mask, raw weights, channels share sampling",
         formula=DCN_FORMULA + "   with Δ and m read from offset_mask[n,ho,wo, g·3P + (2p, 2p+1 | 2P + p)]",
         inputs=("x",), tensor_params=("offset_mask",), params=DCN_PARAMS, plan=dcnv4_plan,
         reference="deformable:dcnv4", cpu="dcn.cpu:dcnv4", gpu="dcn.gpu:dcnv4",
         source="OpenGVLab/DCNv4 DCNv4Function", required=("offset_mask",), layout=DCNV4_LAYOUT),
]


# ---------------------------------------------------------------------------------------------------
# Benchmarks
# ---------------------------------------------------------------------------------------------------

def _deform_inputs(rng, shapes):
    """Offsets of a few pixels (normal, σ = 2) and sigmoid masks in (0, 1), as a trained DCNv2 has."""
    out = {name: rng.standard_normal(shape, dtype=np.float32) for name, shape in shapes.items()}
    out["offset"] *= 2
    if "mask" in out:
        out["mask"] = 1 / (1 + np.exp(-out["mask"]))
    return out


def _dcn_points_weights(rng, shape, group):
    """Per-group softmax weights over the P points, as DCNv3's module feeds its op."""
    logits = rng.standard_normal(shape, dtype=np.float32).reshape(*shape[:3], group, -1)
    e = np.exp(logits - logits.max(-1, keepdims=True))
    return (e / e.sum(-1, keepdims=True)).reshape(shape)


def _dcnv3_inputs(rng, shapes):
    x = rng.standard_normal(shapes["x"], dtype=np.float32)
    offset = 2 * rng.standard_normal(shapes["offset"], dtype=np.float32)
    return {"x": x, "offset": offset, "mask": _dcn_points_weights(rng, shapes["mask"], 4)}


def _dcnv4_inputs(rng, shapes):
    N, Ho, Wo, L = shapes["offset_mask"]
    G, P = 4, 9
    om = np.zeros((N, Ho, Wo, L), dtype=np.float32)
    blocks = om[..., :G * 3 * P].reshape(N, Ho, Wo, G, 3 * P)
    blocks[..., :2 * P] = 2 * rng.standard_normal((N, Ho, Wo, G, 2 * P), dtype=np.float32)
    blocks[..., 2 * P:] = _dcn_points_weights(rng, (N, Ho, Wo, G * P), G).reshape(N, Ho, Wo, G, P)
    om[..., :G * 3 * P] = blocks.reshape(N, Ho, Wo, -1)
    return {"x": rng.standard_normal(shapes["x"], dtype=np.float32), "offset_mask": om}


B = BENCH_BATCH
RESNET50_STAGE3 = {"x": (B, 256, 14, 14), "w": (256, 256, 3, 3), "offset": (B, 18, 14, 14)}
BENCHMARKS = [
    Layer("dcnv2", "ResNet-50 conv4_x (stage 3) 3×3 as DCNv2, 256→256, 14×14",
          {**RESNET50_STAGE3, "mask": (B, 9, 14, 14)},
          {"padding": 1}, baseline="deformable:deform_conv2d_grid_sample", make=_deform_inputs),
    Layer("deform_conv2d", "ResNet-50 conv4_x (stage 3) 3×3 as DCNv2, 256→256, 14×14",
          {**RESNET50_STAGE3, "mask": (B, 9, 14, 14)},
          {"padding": 1}, baseline="deformable:deform_conv2d_grid_sample", make=_deform_inputs),
    Layer("dcnv1", "ResNet-50 conv4_x (stage 3) 3×3 as DCNv1 (no mask), 256→256, 14×14",
          RESNET50_STAGE3, {"padding": 1}, baseline="deformable:deform_conv2d_grid_sample",
          make=_deform_inputs),
    Layer("dcnv3", "InternImage-T stage 1 DCNv3 core, 64 channels, group 4, 3×3, 56×56",
          {"x": (B, 56, 56, 64), "offset": (B, 56, 56, 72), "mask": (B, 56, 56, 36)},
          {"kernel_size": 3, "padding": 1, "group": 4}, baseline="deformable:dcnv3_grid_sample",
          make=_dcnv3_inputs),
    Layer("dcnv4", "InternImage-T stage 1 DCNv4 core, 64 channels, group 4, 3×3, 56×56",
          {"x": (B, 56, 56, 64), "offset_mask": (B, 56, 56, dcnv4_length(4, 9))},
          {"kernel_size": 3, "padding": 1, "group": 4}, baseline="deformable:dcnv4_grid_sample",
          make=_dcnv4_inputs),
]
