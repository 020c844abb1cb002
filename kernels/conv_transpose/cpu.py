"""Transposed convolution on the CPU with Numba: conv_transpose1d/2d/3d, exactly as
torch.nn.functional.conv_transpose{1,2,3}d.

Math (3 spatial axes; 2-d and 1-d are the cases with leading axes of size 1)
    The scatter definition: input pixel i of channel c adds w[c, o', k]·x[b, c, i] to output position
    p = i·s − pad + k·d of every output channel o = g·Og + o' of its group g = c // Cg.
    Read backwards (the *gather* form this file computes), each output element collects:

    y[b, o, od, oh, ow] = bias[o] + Σ_{c<Cg} Σ_{kd,kh,kw} x[b, g·Cg + c, id, ih, iw] · w[g·Cg + c, o', kd, kh, kw]
        with g = o // Og, o' = o mod Og, and for each axis  i = (p + pad − k·d) / s,
        a term existing only when that division is exact and 0 <= i < I.

Shapes
    x (B, C, D, H, W)   w (C, Og, KD, KH, KW)   bias (O = G·Og,)   y (B, O, OD, OH, OW), C-contiguous;
    OD = (D − 1)·sd − 2·pd + dd·(KD − 1) + output_padding + 1, likewise OH, OW.

Cost
    B·C·D·H·W·Og·KD·KH·KW multiply-adds (every input element meets every tap once; taps landing in
    the cropped border are part of the count but are never computed here).
    Minimum traffic: x, w, bias read once, y written once.

Parallel
    v1: one task per output row (b, o, od, oh).   v2: one task per tile (b, g, od, oh, phase, chunk).
    Gathering means every task writes only its own outputs: no scatter, no atomics, no races.

Versions
    v1 ``conv_transpose_direct``  the gather formula, loop for loop, testing each tap for an exact
                          division. With stride s, only 1 tap in s per axis survives the test, so most
                          of the loop does nothing.
    v2 ``conv_transpose_phases``  split each output row by phase r = ow mod sw. All columns of one phase
                          use the same taps kw (those with (r + pw − kw·dw) divisible by sw), and their
                          input columns are consecutive: iw = j + (r + pw − kw·dw)/sw for ow = r + j·sw.
                          The row's od and oh fix the valid kd and kh the same way.  So each tile is a
                          small dense product with no wasted tap: gather the tile's patch P[n, kk] and the
                          matching weight columns A[o', kk], then C = bias + A·Pᵀ with the shared
                          register-blocked ``tile_matmul`` (kernels/_cpu_gemm.py).  Compared with
                          convolving a zero-inserted input, this skips the (1 − 1/s) fraction of
                          multiply-adds whose input is an inserted zero.

Caveats
    Accumulation in the input dtype; v2 sums in another order than v1 (agrees to rounding).
"""
import numba
import numpy as np
from numba import prange

from .._cpu_gemm import FASTMATH, MR, NR, round_up, tile_matmul
from .._index import as_3d, pad3, transposed_source, valid_outputs

source_jit = numba.njit(transposed_source)
valid_outputs_jit = numba.njit(valid_outputs)

TILE_W = 48     # output columns (of one phase) per v2 tile


# ----------------------------------------------------------------------------------------------------
# v1: the gather formula, loop for loop
# ----------------------------------------------------------------------------------------------------
@numba.njit(parallel=True, cache=True)
def conv_transpose_direct(x, w, bias, y, sd, sh, sw, pd, ph, pw, dd, dh, dw):
    B, C, D, H, W = x.shape
    _, Og, KD, KH, KW = w.shape
    _, O, OD, OH, OW = y.shape
    Cg = C // (O // Og)
    for row in prange(B * O * OD * OH):
        oh = row % OH
        od = row // OH % OD
        o = row // (OH * OD) % O
        b = row // (OH * OD * O)
        g, o_in_group = o // Og, o % Og
        for ow in range(OW):
            acc = bias[o]
            for c in range(Cg):
                for kd in range(KD):
                    i_d = source_jit(od, kd, sd, pd, dd, D)
                    for kh in range(KH):
                        ih = source_jit(oh, kh, sh, ph, dh, H)
                        for kw in range(KW):
                            iw = source_jit(ow, kw, sw, pw, dw, W)
                            # a term exists only where every axis divides exactly and lands inside x
                            if i_d >= 0 and ih >= 0 and iw >= 0:
                                acc += x[b, g * Cg + c, i_d, ih, iw] * w[g * Cg + c, o_in_group, kd, kh, kw]
            y[b, o, od, oh, ow] = acc


# ----------------------------------------------------------------------------------------------------
# v2: phase decomposition + register-blocked matrix product
# ----------------------------------------------------------------------------------------------------
@numba.njit
def valid_taps(out_index, kernel, stride, pad, dilation, in_size):
    """Taps k (and their input rows) through which output row ``out_index`` reads a real input."""
    taps = np.empty(kernel, dtype=np.int64)
    sources = np.empty(kernel, dtype=np.int64)
    n = 0
    for k in range(kernel):
        i = source_jit(out_index, k, stride, pad, dilation, in_size)
        if i >= 0:
            taps[n], sources[n] = k, i
            n += 1
    return taps[:n], sources[:n]


@numba.njit(parallel=True, fastmath=FASTMATH, cache=True)
def conv_transpose_phases(x, w, bias, y, sd, sh, sw, pd, ph, pw, dd, dh, dw):
    B, C, D, H, W = x.shape
    _, Og, KD, KH, KW = w.shape
    _, O, OD, OH, OW = y.shape
    G = O // Og
    Cg = C // G
    n_chunks = (OW + sw * TILE_W - 1) // (sw * TILE_W)     # chunks of TILE_W columns of one phase
    for tile in prange(B * G * OD * OH * sw * n_chunks):
        chunk = tile % n_chunks
        r = tile // n_chunks % sw                             # the phase: columns ow = r + j·sw
        oh = tile // (n_chunks * sw) % OH
        od = tile // (n_chunks * sw * OH) % OD
        g = tile // (n_chunks * sw * OH * OD) % G
        b = tile // (n_chunks * sw * OH * OD * G)
        j0 = chunk * TILE_W
        N = min(TILE_W, (OW - r + sw - 1) // sw - j0)         # columns of this phase in this chunk
        if N <= 0:
            continue

        # taps that reach a real input: kd and kh fixed by the row, kw by the phase
        kds, ids = valid_taps(od, KD, sd, pd, dd, D)
        khs, ihs = valid_taps(oh, KH, sh, ph, dh, H)
        kws = np.empty(KW, dtype=np.int64)
        n_kw = 0
        for kw in range(KW):
            if (r + pw - kw * dw) % sw == 0:
                kws[n_kw] = kw
                n_kw += 1
        K = Cg * len(kds) * len(khs) * n_kw

        # the patch P[n, kk] and the weight columns A[o', kk] of the surviving taps, in the same kk order
        P = np.zeros((round_up(N, NR), K), dtype=x.dtype)
        A = np.zeros((round_up(Og, MR), K), dtype=x.dtype)
        kk = 0
        for c in range(Cg):
            for a in range(len(kds)):
                for e in range(len(khs)):
                    x_row = x[b, g * Cg + c, ids[a], ihs[e]]
                    for f in range(n_kw):
                        kw = kws[f]
                        # ow = r + (j0 + n)·sw reads iw = j0 + n + base: consecutive columns
                        base = (r + pw - kw * dw) // sw
                        lo, hi = valid_outputs_jit(W, N, 1, j0 + base)
                        for n in range(lo, hi):
                            P[n, kk] = x_row[j0 + n + base]
                        for o in range(Og):
                            A[o, kk] = w[g * Cg + c, o, kds[a], khs[e], kw]
                        kk += 1

        # the tile: T[o', n] = bias + Σ_kk A[o', kk]·P[n, kk]
        T = np.zeros((A.shape[0], P.shape[0]), dtype=x.dtype)
        for o in range(Og):
            T[o, :] = bias[g * Og + o]
        tile_matmul(A, P, T)
        for o in range(Og):
            for n in range(N):
                y[b, g * Og + o, od, oh, r + (j0 + n) * sw] = T[o, n]


# ----------------------------------------------------------------------------------------------------
# The wrapper fastconv.run calls
# ----------------------------------------------------------------------------------------------------
def conv_transpose(x, w, bias=None, *, stride, padding, dilation, groups, out_size, version="auto"):
    """y = conv_transpose{nd}d(x, w, bias); output_padding is already in ``out_size`` (from the plan).

    version: "direct" (v1), "phases" (v2) or "auto" (= "phases").
    """
    nd = x.ndim - 2
    x5, w5 = as_3d(x, nd), as_3d(w, nd)
    B, O = x.shape[0], w.shape[1] * groups
    y5 = np.empty((B, O) + pad3(out_size, nd, 1), dtype=x.dtype)
    bias = np.zeros(O, dtype=x.dtype) if bias is None else bias
    geometry = pad3(stride, nd, 1) + pad3(padding, nd, 0) + pad3(dilation, nd, 1)
    if version == "direct":
        conv_transpose_direct(x5, w5, bias, y5, *geometry)
    elif version in ("auto", "phases"):
        conv_transpose_phases(x5, w5, bias, y5, *geometry)
    else:
        raise ValueError(f"version must be 'auto', 'direct' or 'phases', got {version!r}")
    return y5.reshape((B, O) + tuple(out_size))


VERSIONS = ("direct", "phases")
