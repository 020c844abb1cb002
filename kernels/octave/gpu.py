"""Octave convolution (d-li14/octconv.pytorch semantics) in Triton.

Math
    stride 1:  y_h = conv(x_h, w_hh) + up2(conv(x_l, w_lh)),   y_l = conv(pool_2(x_h), w_hl) + conv(x_l, w_ll)
    stride 2:  y_h = conv(pool_2(x_h), w_hh) + conv(x_l, w_lh), y_l = conv(pool_4(x_h), w_hl) + conv(pool_2(x_l), w_ll)
    pool_f = f×f average, up2 = nearest ×2; a None weight drops its term.

Shapes
    x_h (B, Ch, H, W)   x_l (B, Cl, H/2, W/2)   w_* (C_out, C_in, KH, KW)   y_h (B, Coh, H/s, W/s)
    y_l (B, Col, H/2s, W/2s)

Cost
    The four convolutions' multiply-adds; pooling costs f² − 1 adds per loaded input value.

Parallel
    Per term, one program per (block of output pixels, block of output channels): kernels/_gpu_conv.py.

Versions
    One: each term is one launch of the shared implicit-GEMM conv kernel (kernels/_gpu_conv.py) with the
    pooling folded into its loads (POOL), the upsampling into its stores (UP) and the sum of the two
    terms of an output into its second launch (ACCUMULATE): no pooled, upsampled or partial tensor is
    ever written.

Caveats
    fp32 accumulation, "ieee" float32 dot products. The two launches of one output run in order on one
    stream (the second reads what the first wrote).
"""
from .._gpu_conv import conv2d
from . import TERMS


def octave(x, w, *, stride, padding):
    outputs = [None, None]
    for weight, source, out, f1, f2, up1, up2 in TERMS:
        if w[weight] is None:
            continue
        pool, up = (f1, up1) if stride == 1 else (f2, up2)
        outputs[out] = conv2d(x[source], w[weight], y=outputs[out], padding=padding, pool=pool, up=up)
    return tuple(outputs)
