"""The dynamic family: convolutions whose kernel is computed per sample from attentions.

    dynamic            Chen et al. 2020 "Dynamic Convolution" / CondConv: a per-sample mixture of K experts
    odconv             Li et al. 2022 "Omni-Dimensional Dynamic Convolution" (OSVAI/ODConv): four attentions
    kernel_warehouse   Li & Yao 2024 "KernelWarehouse" (OSVAI/KernelWarehouse), single-layer form: the kernel
                       is assembled from mixtures of small cells of a shared warehouse

The attentions are inputs (the attention branches live in fastconv.nn). Every kind is, per sample b, an
ordinary conv2d with its own kernel W_b, so the plans check the extra tensors here and then reuse the
standard conv2d plan for the geometry (stride, padding, dilation, output size) of that per-sample conv.
"""
from __future__ import annotations

from ..spec import BENCH_BATCH, Layer, Plan, Spec, check_rank, cost_dict, int_tuple, numel, positive, positive_int
from .standard import CONV_PARAMS, _groups, conv_plan

X_LAYOUT = "(B, Cin, H, W)"


def _attention(name, shapes, want, layout, required=False):
    """Check an attention's shape against the one it must have; None is allowed unless required."""
    shape = shapes.get(name)
    if shape is None and not required:
        return None
    check_rank(name, shape, len(want), layout)
    if tuple(shape) != tuple(want):
        raise ValueError(f"{name} must have shape {tuple(want)} {layout}, got {tuple(shape)}")
    return shape


def _per_sample_conv(shapes, x, kernel_shape, bias_shape, p, itemsize):
    """The plan of the conv2d each sample runs with its own kernel (Cout, Cin/groups, kh, kw)."""
    return conv_plan(2)({"x": x, "w": kernel_shape, "bias": bias_shape}, p, itemsize)


def _plan(conv, extra_macs, params, tensor_shapes, itemsize):
    """The kind's plan: the per-sample conv's geometry, plus the cost of building the kernels."""
    macs = conv.cost["macs"] + extra_macs
    cost = cost_dict(macs, params, tensor_shapes, itemsize, dense_macs=conv.cost["dense_macs"],
                     aggregation_macs=extra_macs)
    return Plan(conv.out_shape, conv.ref_params, conv.kernel_params, cost)


# ---------------------------------------------------------------------------------------------------
# dynamic: y[b] = conv2d(x[b], Σ_k a[b,k]·w[k], Σ_k a[b,k]·bias[k])
# ---------------------------------------------------------------------------------------------------
W_DYNAMIC = "(K, Cout, Cin/groups, kh, kw)"


def _experts(shapes, p):
    """x, w (experts, Cout, Cin/groups, kh, kw) and groups, checked; shared by dynamic and odconv."""
    x = check_rank("x", shapes.get("x"), 4, X_LAYOUT)
    w = check_rank("w", shapes.get("w"), 5, W_DYNAMIC)
    experts, cout, cin_g, kh, kw = w
    positive("w number of experts", (experts,))
    groups = _groups(p["groups"], x[1], cout)
    if cin_g * groups != x[1]:
        raise ValueError(f"w.shape[2] must be in_channels/groups = {x[1]}/{groups} = {x[1] // groups}, "
                         f"got {cin_g} (w is {W_DYNAMIC})")
    return x, w, groups


def dynamic_plan(shapes, p, itemsize=4):
    x, w, groups = _experts(shapes, p)
    batch, (experts, cout, cin_g, kh, kw) = x[0], w
    _attention("attention", shapes, (batch, experts), "(B, K): one weight per sample and expert",
               required=True)
    bias = shapes.get("bias")
    if bias is not None and tuple(bias) != (experts, cout):
        raise ValueError(f"bias must have shape ({experts}, {cout}) (K, Cout): one bias per expert, "
                         f"got {tuple(bias)}")
    conv = _per_sample_conv(shapes, x, (cout, cin_g, kh, kw), None if bias is None else (cout,),
                            {**p, "groups": groups}, itemsize)
    aggregation = batch * experts * (numel(w[1:]) + (cout if bias else 0))
    return _plan(conv, aggregation, numel(w) + (numel(bias) if bias else 0),
                 [x, w, shapes["attention"], bias, conv.out_shape], itemsize)


# ---------------------------------------------------------------------------------------------------
# odconv: y[b] = a_f[b] ⊙ conv2d(a_c[b] ⊙ x[b], Σ_n a_w[b,n]·(a_s[b] ⊙ w[n]))
# ---------------------------------------------------------------------------------------------------
def odconv_plan(shapes, p, itemsize=4):
    x, w, groups = _experts(shapes, p)
    batch, (experts, cout, cin_g, kh, kw) = x[0], w
    a_w = _attention("kernel_attention", shapes, (batch, experts), "(B, N): one weight per sample and expert")
    a_s = _attention("spatial_attention", shapes, (batch, kh, kw), "(B, kh, kw): one weight per kernel tap")
    a_c = _attention("in_attention", shapes, (batch, x[1]), "(B, Cin): one weight per input channel")
    a_f = _attention("out_attention", shapes, (batch, cout), "(B, Cout): one weight per output channel")
    conv = _per_sample_conv(shapes, x, (cout, cin_g, kh, kw), None, {**p, "groups": groups}, itemsize)
    aggregation = batch * experts * numel(w[1:])
    return _plan(conv, aggregation, numel(w), [x, w, a_w, a_s, a_c, a_f, conv.out_shape], itemsize)


# ---------------------------------------------------------------------------------------------------
# kernel_warehouse: W_b[go·c_o + a, gi·c_i + e, u, v] = Σ_j alpha[b, t, j]·cells[j, a, e],
#                   t = (s·Go + go)·Gi + gi, s = u·kw + v;  y[b] = conv2d(x[b], W_b)
# ---------------------------------------------------------------------------------------------------
def kernel_warehouse_plan(shapes, p, itemsize=4):
    x = check_rank("x", shapes.get("x"), 4, X_LAYOUT)
    cells = check_rank("cells", shapes.get("cells"), 3, "(n, c_o, c_i): the warehouse of n cells")
    n, c_o, c_i = cells
    positive("cells shape", cells)
    if p["out_channels"] is None:
        raise ValueError("out_channels is required: the number of output channels Cout (a multiple of c_o)")
    cout = positive_int("out_channels", p["out_channels"])
    if p["kernel_size"] is None:
        raise ValueError("kernel_size is required: the (kh, kw) of the assembled kernel")
    kernel = positive("kernel_size", int_tuple("kernel_size", p["kernel_size"], 2))
    cin = x[1]
    if cout % c_o:
        raise ValueError(f"out_channels={cout} must be a multiple of the cell's output channels "
                         f"c_o = cells.shape[1] = {c_o}")
    if cin % c_i:
        raise ValueError(f"in_channels={cin} (x.shape[1]) must be a multiple of the cell's input channels "
                         f"c_i = cells.shape[2] = {c_i}")
    mixtures = numel(kernel) * (cout // c_o) * (cin // c_i)
    _attention("attention", shapes, (x[0], mixtures, n),
               f"(B, m, n) with m = kh·kw·(Cout/c_o)·(Cin/c_i) = {kernel[0]}·{kernel[1]}·{cout // c_o}·"
               f"{cin // c_i} mixtures of n = {n} cells", required=True)
    conv = _per_sample_conv(shapes, x, (cout, cin, *kernel), None, {**p, "groups": 1}, itemsize)
    aggregation = x[0] * mixtures * n * c_o * c_i
    plan = _plan(conv, aggregation, numel(cells), [x, cells, shapes["attention"], conv.out_shape], itemsize)
    geometry = dict(out_channels=cout, kernel_size=kernel)      # and no groups: the kind has none
    drop = lambda params: {k: v for k, v in params.items() if k != "groups"}
    return Plan(plan.out_shape, {**drop(plan.ref_params), **geometry}, {**drop(plan.kernel_params), **geometry},
                plan.cost)


SOURCE_DYNAMIC = "Chen et al. 2020 (kaijieshi7/Dynamic-convolution-Pytorch), CondConv (Yang et al. 2019)"

SPECS = [
    Spec(name="dynamic", family="dynamic",
         summary="dynamic convolution / CondConv: each sample's kernel is an attention mixture of K experts",
         formula="y[b,o,p] = Σ_k a[b,k]·bias[k,o] + Σ_{c,kh,kw} (Σ_k a[b,k]·w[k,o,c,kh,kw])·x[b, g·Cg + c, "
                 "p·s − pad + (kh,kw)·d]",
         inputs=("x", "w"), tensor_params=("attention", "bias"), params=CONV_PARAMS,
         plan=dynamic_plan, reference="dynamic:dynamic", cpu="dynamic.cpu:dynamic", gpu="dynamic.gpu:dynamic",
         source=SOURCE_DYNAMIC, required=("attention",),
         layout="x (B, Cin, H, W), w (K, Cout, Cin/groups, kh, kw), attention (B, K), bias (K, Cout)"),
    Spec(name="odconv", family="dynamic",
         summary="omni-dimensional dynamic convolution: expert, spatial, input- and output-channel attentions",
         formula="y[b,o,p] = a_f[b,o]·Σ_{c,kh,kw} (Σ_n a_w[b,n]·a_s[b,kh,kw]·w[n,o,c,kh,kw])·a_c[b, g·Cg + c]·"
                 "x[b, g·Cg + c, p·s − pad + (kh,kw)·d]   (a missing attention is 1)",
         inputs=("x", "w"),
         tensor_params=("kernel_attention", "spatial_attention", "in_attention", "out_attention"),
         params=CONV_PARAMS, plan=odconv_plan, reference="dynamic:odconv", cpu="dynamic.cpu:odconv",
         gpu="dynamic.gpu:odconv", source="OSVAI/ODConv modules/odconv.py (Li, Zhou, Yao, ICLR 2022)",
         layout="x (B, Cin, H, W), w (N, Cout, Cin/groups, kh, kw), kernel_attention (B, N), "
                "spatial_attention (B, kh, kw), in_attention (B, Cin), out_attention (B, Cout)"),
    Spec(name="kernel_warehouse", family="dynamic",
         summary="KernelWarehouse (one layer): the kernel is assembled from attention mixtures of warehouse cells",
         formula="y[b] = conv2d(x[b], W_b),  W_b[go·c_o + a, gi·c_i + e, u, v] = Σ_j alpha[b,t,j]·cells[j,a,e],"
                 "  t = ((u·kw + v)·Go + go)·Gi + gi",
         inputs=("x", "cells"), tensor_params=("attention",),
         params=dict(out_channels=None, kernel_size=None, stride=1, padding=0, dilation=1),
         plan=kernel_warehouse_plan, reference="dynamic:kernel_warehouse", cpu="dynamic.cpu:kernel_warehouse",
         gpu="dynamic.gpu:kernel_warehouse",
         source="OSVAI/KernelWarehouse modules/kernel_warehouse.py (Li & Yao, ICML 2024)", required=("attention",),
         layout="x (B, Cin, H, W), cells (n, c_o, c_i), attention (B, m, n)"),
]


# ---------------------------------------------------------------------------------------------------
# Benchmarks: ResNet-18 and MobileNetV2 layers, batch 8 and 32, against the official batch-folded conv
# ---------------------------------------------------------------------------------------------------
def _make(rng, shapes):
    """Weights and inputs standard normal; attentions in [0, 1) like the sigmoid/softmax outputs."""
    import numpy as np
    return {name: (rng.random(shape, dtype=np.float32) if "attention" in name
                   else rng.standard_normal(shape, dtype=np.float32)) for name, shape in shapes.items()}


def _layers(batch):
    B = batch
    return [
        Layer("dynamic", f"ResNet-18 conv2_x 3×3 64→64, 56×56, K=4 experts, batch {B}",
              {"x": (B, 64, 56, 56), "w": (4, 64, 64, 3, 3), "attention": (B, 4), "bias": (4, 64)},
              {"padding": 1}, baseline="dynamic:dynamic_batch_folded", make=_make),
        Layer("odconv", f"ResNet-18 conv2_x 3×3 64→64, 56×56, 4 kernels, batch {B}",
              {"x": (B, 64, 56, 56), "w": (4, 64, 64, 3, 3), "kernel_attention": (B, 4),
               "spatial_attention": (B, 3, 3), "in_attention": (B, 64), "out_attention": (B, 64)},
              {"padding": 1}, baseline="dynamic:odconv_batch_folded", make=_make),
        Layer("odconv", f"MobileNetV2 1×1 expand 24→144, 56×56, 4 kernels, batch {B}",
              {"x": (B, 24, 56, 56), "w": (4, 144, 24, 1, 1), "kernel_attention": (B, 4),
               "in_attention": (B, 24), "out_attention": (B, 144)},
              {}, baseline="dynamic:odconv_batch_folded", make=_make),
        Layer("kernel_warehouse", f"ResNet-18 conv2_x 3×3 64→64, 56×56, kw1d2x cells 32×32 (n=18, m=36), "
              f"batch {B}",
              {"x": (B, 64, 56, 56), "cells": (18, 32, 32), "attention": (B, 36, 18)},
              {"out_channels": 64, "kernel_size": 3, "padding": 1},
              baseline="dynamic:kernel_warehouse_batch_folded", make=_make),
    ]


BENCHMARKS = _layers(BENCH_BATCH) + _layers(32)
