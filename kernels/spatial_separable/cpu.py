"""Spatially separable convolution on the CPU with Numba: a 1×KW row filter, then a KH×1 column filter.

Math
    r[b, m, i, ow] = Σ_{c<C} Σ_{v<KW} w[m, c, 0, v] · x[b, c, i, ow − p + v]          (row filter, pads W)
    y[b, o, oh, ow] = bias[o] + Σ_{m<M} Σ_{u<KH} col[o, m, u, 0] · r[b, m, oh − p + u, ow]   (pads H)
    x reads as zero outside the image, r as zero on rows outside [0, H).

Shapes
    x (B, C, H, W)   w (M, C, 1, KW)   col (O, M, KH, 1)   bias (O,)   y (B, O, OH, OW)
    OW = W + 2p − KW + 1, OH = H + 2p − KH + 1; all C-contiguous.

Cost
    B·H·OW·M·C·KW + B·OH·OW·O·M·KH multiply-adds (vs B·OH·OW·O·C·KH·KW for the dense KH×KW filter).
    Minimum traffic: x read once, y written once; the two-pass form also writes and reads r.

Parallel
    v1: one task per row of r (b, m, i), then one per output row (b, o, oh).
    v2: one task per (image b, band of output rows).

Versions
    v1 ``spatial_two_pass``  both filters as formula loops, r kept as a full tensor (what torch does).
    v2 ``spatial_fused``     per band of output rows, the rows of r it needs (the band plus KH − 1 halo
                             rows) are computed into a task-local buffer (M × rows × OW, ≈ 200 KB for an
                             Inception 17×17 map), then the column filter reads them from there: r never
                             goes to memory as a full tensor. Both stages are per-band matrix products
                             (the 1×k and k×1 channels-last patches of kernels/_cpu_rows.py times
                             the filters viewed as (M, KW·C) and (O, KH·M)) by the register-blocked
                             ``tile_matmul``, a few rows of pixels per product so that the patch stays
                             in L2. Both products have K = 896 on the Inception layer: the kernel runs
                             at the speed of tile_matmul (~110–140 GFLOP/s per core here).
                             Bands are as tall as the parallelism allows (halo rows are recomputed by
                             both neighbouring bands, so fewer bands = less recomputation).
    ``spatial_separable`` picks v2.

Caveats
    Accumulation in the input dtype; v2 sums in SIMD partial sums (agrees with v1 to rounding).
"""
import numba
import numpy as np
from numba import prange

from .._cpu_gemm import FASTMATH, MR
from .._cpu_rows import band_height, channels_last_patch, padded_rows, tile_product

GEMM_PIXELS = 96    # pixels per v2 matrix product: a few rows, so the patch (pixels × K) stays in L2


# ----------------------------------------------------------------------------------------------------
# v1: the two filters one after the other, loop for loop
# ----------------------------------------------------------------------------------------------------
@numba.njit(parallel=True, cache=True)
def spatial_two_pass(x, w, col, bias, y, p):
    B, C, H, W = x.shape
    M, _, KW = w.shape
    O, _, KH = col.shape
    _, _, OH, OW = y.shape
    r = np.zeros((B, M, H, OW), dtype=x.dtype)
    # the row filter: r[b, m, i, ow] = Σ_{c, v} w[m, c, v] · x[b, c, i, ow − p + v]
    for task in prange(B * M * H):
        i = task % H
        m = task // H % M
        b = task // (H * M)
        for ow in range(OW):
            acc = 0.0
            for c in range(C):
                for v in range(KW):
                    iw = ow - p + v
                    if 0 <= iw < W:
                        acc += w[m, c, v] * x[b, c, i, iw]
            r[b, m, i, ow] = acc
    # the column filter: y[b, o, oh, ow] = bias[o] + Σ_{m, u} col[o, m, u] · r[b, m, oh − p + u, ow]
    for task in prange(B * O * OH):
        oh = task % OH
        o = task // OH % O
        b = task // (OH * O)
        for ow in range(OW):
            acc = bias[o]
            for m in range(M):
                for u in range(KH):
                    i = oh - p + u
                    if 0 <= i < H:
                        acc += col[o, m, u] * r[b, m, i, ow]
            y[b, o, oh, ow] = acc


# ----------------------------------------------------------------------------------------------------
# v2: fused per band of output rows
# ----------------------------------------------------------------------------------------------------
@numba.njit(parallel=True, fastmath=FASTMATH, cache=True)
def spatial_fused(x, A_row, A_col, bias, y, M, KW, KH, p, band):
    """A_row: w as (M rounded up to MR, KW·C); A_col: col as (O rounded up to MR, KH·M) (taps before
    channels: the order of channels_last_patch)."""
    B, C, H, W = x.shape
    _, O, OH, OW = y.shape
    n_bands = (OH + band - 1) // band
    for task in prange(B * n_bands):
        b = task // n_bands
        oh0 = (task % n_bands) * band
        R = min(band, OH - oh0)
        # rows i0 .. i0 + R + KH − 2 of r feed this band; rows outside [0, H) stay zero (padding)
        i0 = oh0 - p
        rows = R + KH - 1
        r = np.zeros((M, rows, OW), dtype=x.dtype)
        lo, hi = max(0, i0), min(H, i0 + rows)
        step = max(1, GEMM_PIXELS // OW)
        # 1. the row filter on the needed rows: r[m, i − i0, :] = A_row · patch(x[b], rows i, 1×KW)
        for i in range(lo, hi, step):
            n = min(step, hi - i)
            T = tile_product(A_row, channels_last_patch(x[b], i, n, OW, 1, KW, p), bias, 0)
            for m in range(M):
                for j in range(n):
                    r[m, i - i0 + j, :] = T[m, j * OW:(j + 1) * OW]
        # 2. the column filter from the buffer: y[b, :, oh, :] = bias + A_col · patch(r, rows oh, KH×1)
        for oh in range(oh0, oh0 + R, step):
            n = min(step, oh0 + R - oh)
            T = tile_product(A_col, channels_last_patch(r, oh - oh0, n, OW, KH, 1, 0), bias, O)
            for o in range(O):
                for j in range(n):
                    y[b, o, oh + j, :] = T[o, j * OW:(j + 1) * OW]


# ----------------------------------------------------------------------------------------------------
# The wrapper fastconv.run calls
# ----------------------------------------------------------------------------------------------------
def spatial_separable(x, w, col, bias=None, *, padding, version="auto"):
    """y = conv2d(conv2d(x, w, padding=(0, p)), col, bias, padding=(p, 0)); version "two_pass" (v1),
    "fused" (v2) or "auto"."""
    B, C, H, W = x.shape
    M, KW = w.shape[0], w.shape[3]
    O, KH = col.shape[0], col.shape[2]
    p = padding
    OH, OW = H + 2 * p - KH + 1, W + 2 * p - KW + 1
    y = np.empty((B, O, OH, OW), dtype=x.dtype)
    bias = np.zeros(O, dtype=x.dtype) if bias is None else bias
    if version in ("auto", "fused"):
        A_row = np.ascontiguousarray(w.reshape(M, C, KW).transpose(0, 2, 1)).reshape(M, KW * C)
        A_col = np.ascontiguousarray(col.reshape(O, M, KH).transpose(0, 2, 1)).reshape(O, KH * M)
        spatial_fused(x, padded_rows(A_row, MR), padded_rows(A_col, MR), bias, y, M, KW, KH, p, band_height(B, OH))
    elif version == "two_pass":
        spatial_two_pass(x, w.reshape(M, C, KW), col.reshape(O, M, KH), bias, y, p)
    else:
        raise ValueError(f"version must be 'auto', 'two_pass' or 'fused', got {version!r}")
    return y


VERSIONS = ("two_pass", "fused")
