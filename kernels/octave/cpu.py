"""Octave convolution (Chen et al. 2019, d-li14/octconv.pytorch semantics) on the CPU with Numba.

Math
    pool_f(x)[b, c, i, j] = mean of x[b, c, f·i : f·i + f, f·j : f·j + f]   (f = 2: avgpool2; f = 4: two of them)
    up2(z)[b, o, i, j]    = z[b, o, i // 2, j // 2]                          (nearest ×2)
    conv(x, w)[b, o, i, j] = Σ_{c, u, v} w[o, c, u, v] · x[b, c, i − ph + u, j − pw + v]   (zero outside x)

    stride 1:  y_h = conv(x_h, w_hh)          + up2(conv(x_l, w_lh))
               y_l = conv(pool_2(x_h), w_hl)  + conv(x_l, w_ll)
    stride 2:  y_h = conv(pool_2(x_h), w_hh)  + conv(x_l, w_lh)
               y_l = conv(pool_4(x_h), w_hl)  + conv(pool_2(x_l), w_ll)
    A None weight drops its term (first layer: x_l, w_lh, w_ll None; last layer: w_hl, w_ll None).
    Each term is "the input pooled by f, convolved, the result repeated `up` times": TERMS below.

Shapes
    x_h (B, Ch, H, W)   x_l (B, Cl, H/2, W/2)   w_hh (Coh, Ch, KH, KW)   w_hl (Col, Ch, KH, KW)
    w_lh (Coh, Cl, KH, KW)   w_ll (Col, Cl, KH, KW)   y_h (B, Coh, OH, OW)   y_l (B, Col, OH/2, OW/2)
    (padding keeps the size: OH = H / stride.)

Cost
    The four convolutions' multiply-adds; the pooling and upsampling are O(input) and O(output) adds.

Parallel
    v1: one task per output row (b, o, i) of each term.   v2: conv2d's tasks (image, band of output
    rows) for each convolution, plus one task per (b, channel) for pooling and for the upsample-add.

Versions
    v1 ``octave_direct``  each term as formula loops, pooling done inline by averaging the f×f block of
                          every tap it reads: plain, and slow (the block is re-averaged for every tap).
    v2 ``octave_stacked`` the sub-convolutions as plain stride-1 dense convolutions by the standard
                          conv2d kernel (kernels/conv/cpu.py: at stride 1 its v6, zero-padded wide rows
                          and 8 output channels × 48 positions summed in registers), called per term
                          rather than fused into one
                          kernel: each term is an ordinary convolution on its own grid, and a fused
                          kernel would only save the small pooled inputs and the low-resolution partial
                          sum.  What is gained instead:
                          * terms that land on the same grid are merged into ONE convolution by stacking
                            their inputs along channels and their weights along the input-channel axis
                            (y_l = conv([pool_2(x_h), x_l], [w_hl | w_ll]); at stride 2 also y_h).
                            One product with K = (Ch + Cl)·KH·KW instead of two shorter ones: better
                            register blocking, y_l written once instead of written, read and re-added;
                          * the pooling writes straight into the stacked buffer (no separate tensor);
                          * up2(conv(x_l, w_lh)) is added into y_h in place, without materialising the
                            upsampled tensor (torch builds it, then adds).
    ``octave`` picks v2.

Caveats
    Accumulation in the input dtype. pool_4 averages 16 values at once where torch pools twice:
    equal up to rounding.
"""
import numba
import numpy as np
from numba import prange

from .._cpu_gemm import FASTMATH
from ..conv.cpu import conv
from . import TERMS


# ----------------------------------------------------------------------------------------------------
# v1: each term as loops, pooling inline
# ----------------------------------------------------------------------------------------------------
@numba.njit(cache=True)
def pooled(x, b, c, i, j, f):
    """pool_f(x)[b, c, i, j]: the mean of the f×f block (f = 1: the value itself)."""
    acc = 0.0
    for di in range(f):
        for dj in range(f):
            acc += x[b, c, f * i + di, f * j + dj]
    return acc / (f * f)


@numba.njit(parallel=True, cache=True)
def octave_term_direct(x, w, y, f, up, ph, pw):
    """y[b, o, i, j] += Σ_{c, u, v} w[o, c, u, v] · pool_f(x)[b, c, i//up − ph + u, j//up − pw + v]."""
    B, C, H, W = x.shape
    O, _, KH, KW = w.shape
    _, _, OH, OW = y.shape
    Hf, Wf = H // f, W // f                  # the pooled grid the convolution runs on
    for task in prange(B * O * OH):
        i = task % OH
        o = task // OH % O
        b = task // (OH * O)
        for j in range(OW):
            acc = 0.0
            for c in range(C):
                for u in range(KH):
                    ii = i // up - ph + u
                    for v in range(KW):
                        jj = j // up - pw + v
                        if 0 <= ii < Hf and 0 <= jj < Wf:
                            acc += w[o, c, u, v] * pooled(x, b, c, ii, jj, f)
            y[b, o, i, j] += acc


# ----------------------------------------------------------------------------------------------------
# v2: stacked terms as row-band convolutions, pooling and upsampling fused into copies
# ----------------------------------------------------------------------------------------------------
@numba.njit(parallel=True, fastmath=FASTMATH, cache=True)
def pool_into(x, out, c0, f):
    """out[b, c0 + c, i, j] = pool_f(x)[b, c, i, j]: pooling written straight into a stacked buffer."""
    B, C, H, W = x.shape
    OH, OW = H // f, W // f
    scale = 1.0 / (f * f)
    for task in prange(B * C):
        b, c = task // C, task % C
        for i in range(OH):
            for j in range(OW):
                acc = 0.0
                for di in range(f):
                    for dj in range(f):
                        acc += x[b, c, f * i + di, f * j + dj]
                out[b, c0 + c, i, j] = acc * scale


@numba.njit(parallel=True, fastmath=FASTMATH, cache=True)
def add_up2(y, z):
    """y[b, o, i, j] += z[b, o, i // 2, j // 2] (nearest ×2 upsampling, never materialised)."""
    B, O, OH, OW = y.shape
    for task in prange(B * O):
        b, o = task // O, task % O
        for i in range(OH):
            z_row = z[b, o, i // 2]
            y_row = y[b, o, i]
            for j in range(OW):
                y_row[j] += z_row[j // 2]


def _conv_same(x, w, padding):
    """conv(x, w) at stride 1 (size-keeping padding): the standard conv2d kernel (kernels/conv/cpu.py)."""
    B, C, H, W = x.shape
    O, _, KH, KW = w.shape
    out_size = (H + 2 * padding[0] - KH + 1, W + 2 * padding[1] - KW + 1)
    return conv(x, w, None, stride=(1, 1), padding=tuple(padding), dilation=(1, 1), groups=1, out_size=out_size)


def _stacked(inputs, weights, factors, padding):
    """conv(Σ-stack of pool_f(input), [w | w | ...]) — several terms on one grid as one convolution."""
    if len(inputs) == 1 and factors[0] == 1:
        return _conv_same(inputs[0], weights[0], padding)
    B = inputs[0].shape[0]
    H, W = inputs[0].shape[2] // factors[0], inputs[0].shape[3] // factors[0]
    stack = np.empty((B, sum(x.shape[1] for x in inputs), H, W), dtype=inputs[0].dtype)
    c0 = 0
    for x, f in zip(inputs, factors):
        if f == 1:
            stack[:, c0:c0 + x.shape[1]] = x
        else:
            pool_into(x, stack, c0, f)
        c0 += x.shape[1]
    return _conv_same(stack, np.ascontiguousarray(np.concatenate(weights, axis=1)), padding)


def octave_stacked(xs, ws, stride, padding):
    outputs = []
    for out in (0, 1):
        terms = [t for t in TERMS if t[2] == out and ws[t[0]] is not None]
        if not terms:
            outputs.append(None)
            continue
        pool = 3 if stride == 1 else 4
        direct = [t for t in terms if t[5 if stride == 1 else 6] == 1]      # terms on the output grid
        y = _stacked([xs[t[1]] for t in direct], [ws[t[0]] for t in direct], [t[pool] for t in direct],
                     padding)
        for t in terms:
            if t not in direct:                                           # up2(conv(x_l, w_lh))
                add_up2(y, _conv_same(xs[t[1]], ws[t[0]], padding))
        outputs.append(y)
    return tuple(outputs)


# ----------------------------------------------------------------------------------------------------
# The wrapper fastconv.run calls
# ----------------------------------------------------------------------------------------------------
def octave(x, w, *, stride, padding, version="auto"):
    """(y_h, y_l) of OctaveConv; version "direct" (v1), "stacked" (v2) or "auto"."""
    if version in ("auto", "stacked"):
        return octave_stacked(x, w, stride, padding)
    if version != "direct":
        raise ValueError(f"version must be 'auto', 'direct' or 'stacked', got {version!r}")
    x_h = x[0]
    B, _, H, W = x_h.shape
    sizes = ((H // stride, W // stride), (H // stride // 2, W // stride // 2))
    outputs = [None, None]
    for weight, source, out, f1, f2, up1, up2 in TERMS:
        if w[weight] is None:
            continue
        if outputs[out] is None:
            outputs[out] = np.zeros((B, w[weight].shape[0]) + sizes[out], dtype=x_h.dtype)
        f, up = (f1, up1) if stride == 1 else (f2, up2)
        octave_term_direct(x[source], w[weight], outputs[out], f, up, *padding)
    return tuple(outputs)


VERSIONS = ("direct", "stacked")
