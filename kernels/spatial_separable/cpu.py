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
    v2, v3, v4: one task per (image b, band of output rows); v3 and v4 one per group of images where a
    band is a whole image (as conv2d's v6).

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
    v3 ``spatial_flat``      as v2, both stages through conv2d's v6 register block (kernels/conv/cpu.py
                             ``flat_bands``).  The column filter has no horizontal reach, so over r's rows
                             (OW wide) its positions are consecutive and nothing is dropped.  The row filter
                             would need wide rows (OW + KW − 1 columns, the last KW − 1 outputs of each
                             computed and dropped: 35% of its work on the 17×17 Inception maps), so it runs
                             on x transposed instead (``transposed_band``: each channel's rows stored column
                             by column, zero-padded), where the 1×KW filter reaches along the slow axis like
                             a KW×1 one and nothing is dropped either; its blocks write r down its columns,
                             straight in the layout the column filter reads (M planes of the band's rows;
                             r's padding rows are left zero, not computed).  The transposition and the
                             strided stores cost part of the saving: 7% faster than wide rows, measured.
                             8 output channels × 48 positions stay in registers over all K = C·KW (resp.
                             M·KH) taps: no patch, no horizontal sums.  Measured (one thread, CPU time,
                             Inception layer): 8.8 ms vs 9.7 for v2; torch's two oneDNN convolutions ≈ 6.5
                             (≈ 205 GFLOP/s, near this core's FMA peak of ≈ 235).  Since then v3 is at
                             ≈ 7.4 ms (the register block's 8 × 48 shape, from 4 × 64).
    v4 ``spatial_winograd``  as v3, but both filters by Winograd's F(2, k) (kernels/_winograd.py): two
                             outputs from k + 1 inputs with k + 1 products instead of 2·k (0.57 of the
                             multiply-adds for k = 7).  v3 already ran both filters at ~90% of the FMA
                             peak, so only fewer multiplications could beat oneDNN.
                             Column filter: r is stored phase-split (its even rows, then its odd rows),
                             so that each term of the transform is a run of vectors over positions.
                             Row filter: on x transposed as in v3, its columns split the same way
                             (``transposed_band`` with phases = 2); its outputs go to r down its
                             columns by scalar stores (4% of the kernel's time on one thread, 1% on
                             two, measured by leaving them out).
                             Measured on the Inception layer (kernel alone, median of interleaved runs):
                             one thread 5.35 ms against 6.8 for v3; two threads 2.95 against 3.6.  With
                             the column filter alone by Winograd it ran at 6.1 and 3.2.
    ``spatial_separable`` picks v4 where both filters have 2 to 7 taps, v3 for the others.

Caveats
    Accumulation in the input dtype; v2 sums in SIMD partial sums (agrees with v1 to rounding); v4's
    transforms round differently: in float32, about 2× v3's error on the Inception layer (up to 10× on one
    short sum, kernels/_winograd.py).
"""
import numba
import numpy as np
from numba import prange

from .. import NotApplicable
from .._cpu_gemm import FASTMATH, MR, round_up
from .._winograd import MAX_TAPS, transforms, winograd_filters, winograd_products
from ..conv.cpu import FLAT_MR, FLAT_N, flat_bands, flat_offsets, images_per_task
from .._cpu_rows import band_height, channels_last_patch, padded_rows, tile_product, transpose_into

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
# v3: fused per band, both stages through conv2d's register block
# ----------------------------------------------------------------------------------------------------
@numba.njit(fastmath=FASTMATH, cache=True)
def transposed_band(x, b0, n_img, h0, n_h, pad_w, Wp, phases=1):
    """St[((i·C + c)·Wp + ŵ)·n_h + j] = x[b0 + i, c, h0 + j, w] for j < n_h, i < n_img: each channel's rows
    h0 … h0 + n_h − 1 stored column by column, image after image, then a tail of FLAT_N zeros (the reach
    of a last register block).  Column w' = pad_w + w of the zero-padded row goes to ŵ = w' (phases = 1)
    or, phases = 2, to ŵ = (w' % 2)·Wp/2 + w' // 2: the even columns, then the odd ones, the split a
    Winograd tile reads (kernels/_winograd.py).  The ŵ no column of x lands on are zero (the padding)."""
    _, C, _, W = x.shape
    Qw = Wp // phases                           # columns of a phase
    St = np.empty(n_img * C * Wp * n_h + FLAT_N, dtype=x.dtype)
    St[n_img * C * Wp * n_h:] = 0
    for i in range(n_img):
        for c in range(C):
            plane = St[(i * C + c) * Wp * n_h:(i * C + c + 1) * Wp * n_h].reshape(Wp, n_h)
            for phase in range(phases):
                w0 = (phase - pad_w) % phases               # x's first column in this phase
                n_w = (W - w0 + phases - 1) // phases       # and how many
                first = phase * Qw + (pad_w + w0) // phases
                plane[phase * Qw:first] = 0
                plane[first + n_w:(phase + 1) * Qw] = 0
                transpose_into(x[b0 + i, c, h0:h0 + n_h, w0::phases], plane[first:first + n_w])
    return St


@numba.njit(parallel=True, fastmath=FASTMATH, cache=True)
def spatial_flat(x, A_row, A_col, bias, y, M, KW, KH, p, band, threads):
    """A_row: w as (M rounded up to FLAT_MR, C·KW), A_col: col as (O rounded up to FLAT_MR, M·KH), both in w's own
    (channel, tap) order.  Where a band is a whole image, a task takes several (conv2d's ``images_per_task``;
    threads = numba.get_num_threads())."""
    B, C, H, W = x.shape
    _, O, OH, OW = y.shape
    n_bands = (OH + band - 1) // band
    rows = band + KH - 1                        # rows of r a band reads (its rows and the column halo)
    Wp = W + 2 * p                              # x's columns with the row filter's padding
    offs_col = flat_offsets(M, KH, 1, rows, OW, 1, 1)       # tap (m, u) at (m·rows + u)·OW
    no_bias = np.zeros(M, dtype=x.dtype)
    yf = y.reshape(-1)
    m = images_per_task(B, 1, n_bands, band * OW, threads)
    for task in prange((B + m - 1) // m * n_bands):
        b0 = task // n_bands * m
        n_img = min(m, B - b0)
        oh0 = (task % n_bands) * band
        # 1. the row filter: r[m, i, ow] = Σ_{c, v} w[m, c, v]·x[b, c, oh0 − p + i, ow − p + v] for the
        #    rows i < rows the band reads, into a task-local buffer laid out as the column filter's band;
        #    only rows inside the image are computed: the others are r's zero padding (as is the tail).
        #    It runs on x transposed (St: each channel's n_h rows stored column by column), where the
        #    1×KW filter reaches along the slow axis, like a KW×1 filter: positions (ow, i) are then
        #    consecutive with none to drop, and each block writes r down its columns (steps 1 and OW)
        i_lo, i_hi = max(0, p - oh0), min(rows, H + p - oh0)
        n_h = i_hi - i_lo
        r = np.zeros(n_img * M * rows * OW + FLAT_N, dtype=x.dtype)          # image after image
        if n_h > 0:                             # (a band of the padding alone reads no row of x)
            St = transposed_band(x, b0, n_img, oh0 - p + i_lo, n_h, p, Wp)
            flat_bands(St, C * Wp * n_h, n_img, flat_offsets(C, KW, 1, Wp, n_h, 1, 1), A_row, no_bias, OW, n_h,
                       n_h, r, i_lo * OW, M * rows * OW, rows * OW, 1, OW, M)
        # 2. the column filter from the buffer: y[b, o, oh0 + i, ow] = bias[o] + Σ_{m, u} col[o, m, u]·r[m, i + u, ow]
        flat_bands(r, M * rows * OW, n_img, offs_col, A_col, bias, min(band, OH - oh0), OW, OW, yf,
                   (b0 * O * OH + oh0) * OW, O * OH * OW, OH * OW, OW, 1, O)


# ----------------------------------------------------------------------------------------------------
# v4: as v3, both filters by Winograd's F(2, k) (kernels/_winograd.py)
# ----------------------------------------------------------------------------------------------------
@numba.njit(fastmath=FASTMATH, cache=True)
def winograd_band(x, U_row, U_col, row_tf, col_tf, bias, yf, O, OH, OW, KW, KH, p, b0, n_img, oh0, R):
    """One v4 task: output rows oh0 … oh0 + R − 1 of images b0 … b0 + n_img − 1."""
    _, C, H, W = x.shape
    M = U_col.shape[2]
    # r's rows oh0 − p + a for a < 2Q feed the band (its tiles read rows 2t + ρ, ρ ≤ KH), stored
    # phase-split for the column filter: rs[((i·M + m)·2 + a % 2)·Q + a // 2, ow] = r[b0 + i, m, oh0 − p + a, ow];
    # rows outside x are not computed: they stay zero (r's padding)
    Q = (R + 1) // 2 + KH // 2
    rs_step = M * 2 * Q * OW
    rs = np.zeros(n_img * rs_step + FLAT_N, dtype=x.dtype)
    # 1. the row filter, F(2, KW) along x's rows.  As in v3 it runs on x transposed (St: each channel's
    #    rows column by column), where the filter reaches along the slow axis, its columns split into
    #    even and odd ones for the tiles: position n of tile t holds r's row a_lo + n, output columns
    #    2t and 2t + 1, written down rs's columns (row_pos: where each row of r goes)
    a_lo, a_hi = max(0, p - oh0), min(2 * Q, H + p - oh0)
    n_h = a_hi - a_lo
    if n_h > 0:                                 # (a band of the padding alone reads no row of x)
        Qw = max((OW + 1) // 2 + KW // 2, (p + W + 1) // 2)      # columns a phase: the tiles' reach, x's
        St = transposed_band(x, b0, n_img, oh0 - p + a_lo, n_h, p, 2 * Qw, 2)
        row_pos = np.empty(n_h, dtype=np.int64)
        for n in range(n_h):
            row_pos[n] = ((a_lo + n) % 2 * Q + (a_lo + n) // 2) * OW
        # (np.int64 for out_base 0 and row_step 1: literal constants would type, and compile,
        # winograd_products a second time)
        winograd_products(St, C * 2 * Qw * n_h, n_img, C, Qw, n_h, OW, row_tf, U_row, np.zeros(M, dtype=x.dtype),
                          M, rs, np.int64(0), rs_step, 2 * Q * OW, np.int64(1), row_pos)
    # 2. the column filter, F(2, KH) along r's rows: y[b, o, oh0 + 2t + j, ow] for 2t + j < R
    col_pos = np.empty(OW, dtype=np.int64)      # rows of y as they are
    for n in range(OW):
        col_pos[n] = n
    winograd_products(rs, rs_step, n_img, M, Q, OW, R, col_tf, U_col, bias, O, yf, (b0 * O * OH + oh0) * OW,
                      O * OH * OW, OH * OW, OW, col_pos)


@numba.njit(parallel=True, fastmath=FASTMATH, cache=True)
def spatial_winograd(x, w, col, row_tf, col_tf, bias, y, p, band, threads):
    """w (M, C, KW), col (O, M, KH); row_tf, col_tf: F(2, KW)'s and F(2, KH)'s transforms
    (kernels/_winograd.py ``transforms``); band: even.  First both filters' Winograd forms, once; then
    one ``winograd_band`` per task."""
    B = x.shape[0]
    M, _, KW = w.shape
    KH = col.shape[2]
    _, O, OH, OW = y.shape
    U_row = winograd_filters(w, row_tf[2], round_up(M, FLAT_MR))
    U_col = winograd_filters(col, col_tf[2], round_up(O, FLAT_MR))
    n_bands = (OH + band - 1) // band
    yf = y.reshape(-1)
    m = images_per_task(B, 1, n_bands, band * OW, threads)
    for task in prange((B + m - 1) // m * n_bands):
        b0, oh0 = task // n_bands * m, task % n_bands * band
        winograd_band(x, U_row, U_col, row_tf, col_tf, bias, yf, O, OH, OW, KW, KH, p, b0, min(m, B - b0), oh0,
                      min(band, OH - oh0))


# ----------------------------------------------------------------------------------------------------
# The wrapper fastconv.run calls
# ----------------------------------------------------------------------------------------------------
def spatial_separable(x, w, col, bias=None, *, padding, version="auto"):
    """y = conv2d(conv2d(x, w, padding=(0, p)), col, bias, padding=(p, 0)); version "two_pass" (v1),
    "fused" (v2), "flat" (v3), "winograd" (v4) or "auto" (v4 where 2 ≤ KW, KH ≤ 7, else v3)."""
    B, C, H, W = x.shape
    M, KW = w.shape[0], w.shape[3]
    O, KH = col.shape[0], col.shape[2]
    p = padding
    OH, OW = H + 2 * p - KH + 1, W + 2 * p - KW + 1
    y = np.empty((B, O, OH, OW), dtype=x.dtype)
    bias = np.zeros(O, dtype=x.dtype) if bias is None else bias
    if version == "auto":
        version = "winograd" if 2 <= KH <= MAX_TAPS and 2 <= KW <= MAX_TAPS else "flat"
    if version == "fused":
        A_row = np.ascontiguousarray(w.reshape(M, C, KW).transpose(0, 2, 1)).reshape(M, KW * C)
        A_col = np.ascontiguousarray(col.reshape(O, M, KH).transpose(0, 2, 1)).reshape(O, KH * M)
        spatial_fused(x, padded_rows(A_row, MR), padded_rows(A_col, MR), bias, y, M, KW, KH, p, band_height(B, OH))
    elif version == "winograd":
        if not (2 <= KH <= MAX_TAPS and 2 <= KW <= MAX_TAPS):
            raise NotApplicable(f"version='winograd' needs filters of 2 to {MAX_TAPS} taps, got 1×{KW} and {KH}×1")
        band = band_height(B, OH)
        spatial_winograd(x, w.reshape(M, C, KW), col.reshape(O, M, KH), transforms(KW, x.dtype), transforms(KH, x.dtype),
                         bias, y, p, band + band % 2, numba.get_num_threads())
    elif version == "flat":
        spatial_flat(x, padded_rows(w.reshape(M, C * KW), FLAT_MR), padded_rows(col.reshape(O, M * KH), FLAT_MR), bias, y,
                     M, KW, KH, p, band_height(B, OH), numba.get_num_threads())
    elif version == "two_pass":
        spatial_two_pass(x, w.reshape(M, C, KW), col.reshape(O, M, KH), bias, y, p)
    else:
        raise ValueError(f"version must be 'auto' or one of {', '.join(VERSIONS)}, got {version!r}")
    return y


VERSIONS = ("two_pass", "fused", "flat", "winograd")
