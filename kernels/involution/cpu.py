"""Involution on the CPU with Numba (Li et al. 2021): a K×K kernel per output pixel, shared by the
channels of a group — the inverse of a convolution, whose kernel is shared by the pixels.

Math
    With G kernel groups and Cg = C/G channels per group, channel c uses group g = c // Cg:

    y[b, c, oh, ow] = Σ_{kh<KH} Σ_{kw<KW} w[b, g, kh, kw, oh, ow] · x[b, c, oh·sh − ph + kh·dh,
                                                                       ow·sw − pw + kw·dw]
    where x reads as zero outside [0, H) × [0, W).

Shapes
    x (B, C, H, W)   w (B, G, KH, KW, OH, OW)   y (B, C, OH, OW), all C-contiguous;
    OH = (H + 2·ph − dh·(KH−1) − 1) // sh + 1, likewise OW (the plan checks that w has exactly this size).

Cost
    B·C·OH·OW·KH·KW multiply-adds (2 FLOPs each); each weight serves Cg multiply-adds.
    Minimum traffic: x and w read once, y written once. The official form materialises unfold(x),
    B·C·KH·KW·OH·OW elements; neither version here allocates anything but y.

Parallel
    v1: one task per output row (b, c, oh).   v2: one task per (b, g, oh): the rows oh of the Cg channels
    of group g. Tasks write disjoint rows of y.

Versions
    v1 ``involution_direct``  the formula, one output element at a time, a bounds test per tap.
    v2 ``involution_rows``    the taps as shifted row updates: for each tap (kh, kw), the output row of
                              every channel of the group gets w[b, g, kh, kw, oh, :] times a shifted
                              (strided) input row, over the columns whose input is inside the image only —
                              no bounds test in the inner loop, which vectorises over ow. The weight row
                              is read from memory once and used Cg times from L1, and the Cg output rows
                              (Cg·OW values) stay in L1 across the KH·KW taps.
    ``involution`` picks v2.

Caveats
    Accumulation is in the input dtype, like torch. v2 adds the taps in a different order than v1, so
    results agree to rounding.
"""
import numba
import numpy as np
from numba import prange

from .._cpu_gemm import FASTMATH
from .._index import valid_outputs

valid_outputs_jit = numba.njit(valid_outputs)


# ----------------------------------------------------------------------------------------------------
# v1: the formula, element by element
# ----------------------------------------------------------------------------------------------------
@numba.njit(parallel=True, cache=True)
def involution_direct(x, w, y, sh, sw, ph, pw, dh, dw):
    """y must be zero on entry."""
    B, C, H, W = x.shape
    _, G, KH, KW, OH, OW = w.shape
    Cg = C // G
    for row in prange(B * C * OH):
        # which output row this task owns
        oh = row % OH
        c = row // OH % C
        b = row // (OH * C)
        g = c // Cg
        for ow in range(OW):
            acc = y[b, c, oh, ow]
            # Σ over the taps of this pixel's own kernel
            for kh in range(KH):
                ih = oh * sh - ph + kh * dh
                for kw in range(KW):
                    iw = ow * sw - pw + kw * dw
                    # zero padding: taps outside the input add nothing
                    if 0 <= ih < H and 0 <= iw < W:
                        acc += w[b, g, kh, kw, oh, ow] * x[b, c, ih, iw]
            y[b, c, oh, ow] = acc


# ----------------------------------------------------------------------------------------------------
# v2: taps as shifted row updates, a group's channels together
# ----------------------------------------------------------------------------------------------------
@numba.njit(parallel=True, fastmath=FASTMATH, cache=True)
def involution_rows(x, w, y, sh, sw, ph, pw, dh, dw):
    """y must be zero on entry."""
    B, C, H, W = x.shape
    _, G, KH, KW, OH, OW = w.shape
    Cg = C // G
    for task in prange(B * G * OH):
        oh = task % OH
        g = task // OH % G
        b = task // (OH * G)
        for kh in range(KH):
            ih = oh * sh - ph + kh * dh
            if ih < 0 or ih >= H:           # the whole tap row reads padding
                continue
            for kw in range(KW):
                # y[b, c, oh, ow] += w[b, g, kh, kw, oh, ow] · x[b, c, ih, ow·sw + shift], valid ow only
                w_row = w[b, g, kh, kw, oh]
                shift = kw * dw - pw
                lo, hi = valid_outputs_jit(W, OW, sw, shift)
                # speed: the weight row is loaded once and reused by the Cg channels of the group
                # speed: views that start at 0 let LLVM drop Numba's negative-index test and vectorise
                w_part = w_row[lo:hi]
                for c in range(g * Cg, (g + 1) * Cg):
                    y_part = y[b, c, oh, lo:hi]
                    x_part = x[b, c, ih, lo * sw + shift:(hi - 1) * sw + shift + 1:sw]
                    for n in range(hi - lo):
                        y_part[n] += w_part[n] * x_part[n]


# ----------------------------------------------------------------------------------------------------
# The wrapper fastconv.run calls
# ----------------------------------------------------------------------------------------------------
def involution(x, w, *, stride, padding, dilation, version="auto"):
    """y = involution(x, w) with the plan's explicit stride, padding and dilation.

    version: "direct" (v1), "rows" (v2) or "auto" (v2).
    """
    B, C = x.shape[:2]
    y = np.zeros((B, C) + w.shape[4:], dtype=x.dtype)
    if version == "direct":
        involution_direct(x, w, y, *stride, *padding, *dilation)
    elif version in ("rows", "auto"):
        involution_rows(x, w, y, *stride, *padding, *dilation)
    else:
        raise ValueError(f"version must be 'auto', 'direct' or 'rows', got {version!r}")
    return y


VERSIONS = ("direct", "rows")
