"""Convolution on the CPU with Numba: conv1d, conv2d, conv3d and their special cases (depthwise,
pointwise, grouped, dilated), exactly as torch.nn.functional.conv{1,2,3}d.

Math (3 spatial axes; conv2d is the case D = KD = 1, conv1d also has H = KH = 1)
    With G groups, Cg = C/G input and Og = O/G output channels per group, output channel o in group
    g = o // Og:

    y[b, o, od, oh, ow] = bias[o] + Σ_{c<Cg} Σ_{kd<KD} Σ_{kh<KH} Σ_{kw<KW}
                          w[o, c, kd, kh, kw] · x[b, g·Cg + c, od·sd − pd + kd·dd,
                                                               oh·sh − ph + kh·dh,
                                                               ow·sw − pw + kw·dw]
    where x reads as zero outside [0, D) × [0, H) × [0, W) (the zero padding).

Shapes
    x (B, C, D, H, W)   w (O, Cg, KD, KH, KW)   bias (O,)   y (B, O, OD, OH, OW), all C-contiguous;
    OD = (D + 2·pd − dd·(KD−1) − 1) // sd + 1, likewise OH, OW ("same" padding may add one more zero
    after than before: only the leading pad matters to the kernel, the output size is given).

Cost
    B·O·OD·OH·OW·Cg·KD·KH·KW multiply-adds (2 FLOPs each).
    Minimum traffic: x, w, bias read once, y written once (4 bytes per float32 element).

Parallel
    v1, v3: one task per output row (b, o, od, oh).   v2: one task per tile (b, g, od, oh, ow-chunk).
    Tasks write disjoint parts of y, so no two threads ever write the same element.

Versions
    v1 ``conv_direct``   the formula as five nested loops per output element.  Plain, slow: every
                         multiply-add loads both operands from memory.
    v2 ``conv_im2col``   dense and grouped convolution. For one tile of output pixels (a chunk of one
                         output row), copy the values every pixel's taps read into a small patch
                         P[n, kk] ("im2col" of that tile only, never of the whole input), then compute the
                         tile for all Og output channels of the group as a matrix product with the weight
                         seen as A[o, kk] (K = Cg·KD·KH·KW): C = bias + A·Pᵀ, by the register-blocked
                         ``tile_matmul`` of kernels/_cpu_gemm.py.  Each patch value is used Og times from
                         cache, each weight N times; padding is written once as zeros into P.
    v3 ``conv_depthwise`` Cg = 1 (depthwise): K = KD·KH·KW is too short for a matrix product, so each
                         output row accumulates its taps directly: for each tap, one weight times a
                         shifted input row, over the output columns whose input is inside the image
                         (so the inner loop has no padding test and vectorises over ow).
    ``conv`` picks v3 when Cg = 1, else v2.

Caveats
    Accumulation is in the input dtype, like torch's CPU kernels. v2 sums in a different order than v1
    (SIMD partial sums), so results agree to rounding, not bit for bit.
"""
import numba
import numpy as np
from numba import prange

from .. import NotApplicable
from .._cpu_gemm import FASTMATH, MR, NR, round_up, tile_matmul
from .._index import as_3d, pad3, valid_outputs

valid_outputs_jit = numba.njit(valid_outputs)

TILE_W = 48     # output pixels per v2 tile: P (48 × K) stays in L2 while A streams through it


# ----------------------------------------------------------------------------------------------------
# v1: the formula, loop for loop
# ----------------------------------------------------------------------------------------------------
@numba.njit(parallel=True, cache=True)
def conv_direct(x, w, bias, y, sd, sh, sw, pd, ph, pw, dd, dh, dw):
    B, C, D, H, W = x.shape
    O, Cg, KD, KH, KW = w.shape
    _, _, OD, OH, OW = y.shape
    Og = O // (C // Cg)
    for row in prange(B * O * OD * OH):
        # which output row this task owns
        oh = row % OH
        od = row // OH % OD
        o = row // (OH * OD) % O
        b = row // (OH * OD * O)
        g = o // Og
        for ow in range(OW):
            acc = bias[o]
            # Σ over the input channels of group g and the kernel taps
            for c in range(Cg):
                for kd in range(KD):
                    i_d = od * sd - pd + kd * dd
                    for kh in range(KH):
                        ih = oh * sh - ph + kh * dh
                        for kw in range(KW):
                            iw = ow * sw - pw + kw * dw
                            # zero padding: taps outside the input add nothing
                            if 0 <= i_d < D and 0 <= ih < H and 0 <= iw < W:
                                acc += w[o, c, kd, kh, kw] * x[b, g * Cg + c, i_d, ih, iw]
            y[b, o, od, oh, ow] = acc


# ----------------------------------------------------------------------------------------------------
# v2: per-tile im2col + register-blocked matrix product
# ----------------------------------------------------------------------------------------------------
@numba.njit(fastmath=FASTMATH, cache=True)
def im2col_tile(x, A, bias, y, b, g, od, oh, ow0, N, KD, KH, KW, sd, sh, sw, pd, ph, pw, dd, dh, dw):
    """One v2 tile: y[b, g·Og + o, od, oh, ow0 + n] = bias[o] + Σ_kk A[o, kk]·P[n, kk], o < Og, n < N.

    A (Og rounded up to MR, K) is group g's weight matrix (padded rows zero), bias (Og,) its biases.
    Shared with kernels/dynamic/cpu.py, which calls it with each sample's own A and bias.
    """
    _, _, D, H, W = x.shape
    K = A.shape[1]
    Og = bias.shape[0]
    Cg = K // (KD * KH * KW)

    # 1. the patch: P[n, kk] = x[b, g·Cg + c, id, ih, iw] for pixel ow0 + n and tap
    #    kk = ((c·KD + kd)·KH + kh)·KW + kw, the same order as w[o, c, kd, kh, kw] flattened.
    #    Rows up to a multiple of NR and taps reading padding stay zero.
    P = np.zeros((round_up(N, NR), K), dtype=x.dtype)
    for kw in range(KW):
        # only the pixels whose input column is inside the row: the range depends on kw alone, so it is
        # computed once per kw, not once per (c, kd, kh, kw) (speed: its floor divisions cost as much
        # as the copy they guard)
        lo, hi = valid_outputs_jit(W, ow0 + N, sw, kw * dw - pw)
        lo = max(lo, ow0)
        for c in range(Cg):
            for kd in range(KD):
                i_d = od * sd - pd + kd * dd
                if i_d < 0 or i_d >= D:
                    continue
                for kh in range(KH):
                    ih = oh * sh - ph + kh * dh
                    if ih < 0 or ih >= H:
                        continue
                    x_row = x[b, g * Cg + c, i_d, ih]
                    kk = ((c * KD + kd) * KH + kh) * KW + kw
                    for ow in range(lo, hi):
                        P[ow - ow0, kk] = x_row[ow * sw - pw + kw * dw]

    # 2. the tile: T[o, n] = bias[o] + Σ_kk A[o, kk]·P[n, kk]
    T = np.zeros((A.shape[0], P.shape[0]), dtype=x.dtype)
    for o in range(Og):
        T[o, :] = bias[o]
    tile_matmul(A, P, T)

    # 3. write the real rows and columns of the tile
    for o in range(Og):
        for n in range(N):
            y[b, g * Og + o, od, oh, ow0 + n] = T[o, n]


@numba.njit(parallel=True, fastmath=FASTMATH, cache=True)
def conv_im2col(x, A, bias, y, KD, KH, KW, sd, sh, sw, pd, ph, pw, dd, dh, dw):
    """A is the weight as (G, Og rounded up to 4, K) matrices, padded rows zero."""
    B = x.shape[0]
    G = A.shape[0]
    _, O, OD, OH, OW = y.shape
    Og = O // G
    n_chunks = (OW + TILE_W - 1) // TILE_W
    for tile in prange(B * G * OD * OH * n_chunks):
        # which tile this task owns: output columns ow0 .. ow0+N of row (b, od, oh), channels of group g
        chunk = tile % n_chunks
        oh = tile // n_chunks % OH
        od = tile // (n_chunks * OH) % OD
        g = tile // (n_chunks * OH * OD) % G
        b = tile // (n_chunks * OH * OD * G)
        ow0 = chunk * TILE_W
        im2col_tile(x, A[g], bias[g * Og:(g + 1) * Og], y, b, g, od, oh, ow0, min(TILE_W, OW - ow0),
                    KD, KH, KW, sd, sh, sw, pd, ph, pw, dd, dh, dw)


# ----------------------------------------------------------------------------------------------------
# v3: depthwise, one output row at a time, taps as shifted row updates
# ----------------------------------------------------------------------------------------------------
@numba.njit(parallel=True, fastmath=FASTMATH, cache=True)
def conv_depthwise(x, w, bias, y, sd, sh, sw, pd, ph, pw, dd, dh, dw):
    B, C, D, H, W = x.shape
    O, _, KD, KH, KW = w.shape
    _, _, OD, OH, OW = y.shape
    m = O // C                                  # channel multiplier: output o reads input o // m
    for row in prange(B * O * OD * OH):
        oh = row % OH
        od = row // OH % OD
        o = row // (OH * OD) % O
        b = row // (OH * OD * O)
        y_row = y[b, o, od, oh]
        y_row[:] = bias[o]
        for kd in range(KD):
            i_d = od * sd - pd + kd * dd
            if i_d < 0 or i_d >= D:
                continue
            for kh in range(KH):
                ih = oh * sh - ph + kh * dh
                if ih < 0 or ih >= H:
                    continue
                x_row = x[b, o // m, i_d, ih]
                for kw in range(KW):
                    # y[.., ow] += w[o, 0, kd, kh, kw] · x[.., ow·sw − pw + kw·dw] where that is inside
                    weight = w[o, 0, kd, kh, kw]
                    shift = kw * dw - pw
                    lo, hi = valid_outputs_jit(W, OW, sw, shift)
                    for ow in range(lo, hi):
                        y_row[ow] += weight * x_row[ow * sw + shift]


# ----------------------------------------------------------------------------------------------------
# The wrapper fastconv.run calls
# ----------------------------------------------------------------------------------------------------
def weight_matrices(w5, groups):
    """w (O, Cg, KD, KH, KW) -> A (G, Og rounded up to MR, Cg·KD·KH·KW), extra rows zero."""
    O = w5.shape[0]
    Og = O // groups
    A = np.zeros((groups, round_up(Og, MR), w5[0].size), dtype=w5.dtype)
    A[:, :Og] = w5.reshape(groups, Og, -1)
    return A


def conv(x, w, bias=None, *, stride, padding, dilation, groups, out_size, version="auto"):
    """y = conv{nd}d(x, w, bias) with explicit leading paddings and the output size from the plan.

    version: "direct" (v1), "im2col" (v2), "depthwise" (v3, needs Cg = 1) or "auto".
    """
    nd = x.ndim - 2
    x5, w5 = as_3d(x, nd), as_3d(w, nd)
    B, O = x.shape[0], w.shape[0]
    y5 = np.empty((B, O) + pad3(out_size, nd, 1), dtype=x.dtype)
    bias = np.zeros(O, dtype=x.dtype) if bias is None else bias
    geometry = pad3(stride, nd, 1) + pad3(padding, nd, 0) + pad3(dilation, nd, 1)
    if version == "auto":
        version = "depthwise" if w.shape[1] == 1 and groups == x.shape[1] else "im2col"
    if version == "direct":
        conv_direct(x5, w5, bias, y5, *geometry)
    elif version == "depthwise":
        if w.shape[1] != 1 or groups != x.shape[1]:
            raise NotApplicable("version='depthwise' needs groups = in_channels and w.shape[1] = 1")
        conv_depthwise(x5, w5, bias, y5, *geometry)
    elif version == "im2col":
        conv_im2col(x5, weight_matrices(w5, groups), bias, y5, *w5.shape[2:], *geometry)
    else:
        raise ValueError(f"version must be 'auto', 'direct', 'im2col' or 'depthwise', got {version!r}")
    return y5.reshape((B, O) + tuple(out_size))


VERSIONS = ("direct", "im2col", "depthwise")
