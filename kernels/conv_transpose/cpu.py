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
    v3: one task per (b, g, input depth, band of input rows).   v4: one task per (b, g, output plane od,
    band of phase rows), or per (group of images, g, od) where a band is a whole small image.
    Gathering means every task writes only its own outputs: no scatter, no atomics, no races.

Versions
    v1 ``conv_transpose_direct``  the gather formula, loop for loop, testing each tap for an exact
                          division. With stride s, only 1 tap in s per axis survives the test, so most
                          of the loop does nothing.
    v2 ``conv_transpose_phases``  split each output row by phase r = ow mod sw. All columns of one phase
                          use the same taps kw (those with (r + pw − kw·dw) divisible by sw), and their
                          input columns are consecutive: iw = j + (r + pw − kw·dw)/sw for ow = r + j·sw.
                          The row's od and oh fix the taps kd and kh the same way.  So each tile is a
                          dense product with no wasted tap: the wrapper packs, once per call, the weight
                          columns of every phase (``phase_weights``; phases with fewer taps get zero
                          slots), the kernel gathers the tile's channels-last patch P[n, kk] (one
                          contiguous copy of Cg channels per tap and pixel), then T = bias + A·Pᵀ with
                          the shared register-blocked ``tile_matmul`` (kernels/_cpu_gemm.py).
                          Compared with convolving a zero-inserted input, this skips the (1 − 1/s) share
                          of multiply-adds whose input would be an inserted zero, per axis.

    v3 ``conv_transpose_blocks``  kernel = stride on every axis, no padding, dilation 1 (the U-Net and
                          V-Net 2×2 "up-convolutions"): the output splits into disjoint KD×KH×KW blocks,
                          one per input pixel, and output (i·s + k) of channel o is
                          bias[o] + Σ_c x[b, c, i]·w[c, o, k] — for each tap k, a pointwise (1×1)
                          product of the input with the (Og, Cg) matrix w[:, :, k]ᵀ.  Each task takes a
                          run of input pixels straight from NCHW (rows of pixels, no patch, no
                          channels-last copy), forms the product per tap with ``rows_product`` (the
                          axpy form of kernels/_cpu_gemm.py) into a small buffer Z, and writes Z into its
                          block positions (stride-s stores).
    v4 ``conv_transpose_flat``  the phases of v2, each computed as a stride-1 correlation
                          with conv2d's v6 register block (kernels/conv/cpu.py ``flat_bands``): output
                          (rh + jh·sh, rw + jw·sw) reads input (jh + bh, jw + bw) through each tap pair of
                          its phase, bh = (rh + ph − kh·dh)/sh, so over one zero-padded band of x's rows
                          a phase is a list of offsets and a weight matrix (``flat_phases``), and
                          8 output channels × 48 positions stay in 24 vector registers over all its terms.
                          No patch is built (v2 copies every input value once per tap into its patch);
                          every phase reads the same band, and writes every sh-th row and sw-th column.
                          In 3-d, output plane od reads the input slabs of its depth phase's taps, copied
                          as planes (as conv3d's v6 stacks its slabs as channels).  Small images go
                          several to a task, as in conv2d's v6: the DCGAN layer's phases are 16 rows of
                          16 outputs (17 columns wide), one vector a row, 2 images a task fill 11 blocks
                          (before: 12, the last vector of each image alone in its block).
                          One thread, DCGAN 4×4 layer: 12 ms against v2's 20–24; 1-d upsampler 0.7 vs 1.3;
                          3-d decoder 3×3×3/2 (64→32, 8×16²): 7.1 vs 23.5.
    ``conv_transpose`` picks v4 (also where v3 applies: U-Net 2×2 layer 3.1 ms vs 4.1, the 3-d one 3.6 vs
    4.1, one thread).

Caveats
    Accumulation in the input dtype; v2 sums in another order than v1 (agrees to rounding).
"""
import functools

import numba
import numpy as np
from numba import prange

from .. import NotApplicable
from .._cpu_gemm import FASTMATH, MR, NR, round_up, rows_product, tile_product
from .._cpu_rows import band_height
from .._index import as_3d, pad3, transposed_source, valid_outputs
from ..conv.cpu import (FLAT_BAND_PIX, FLAT_MR, band_task, flat_bands, images_per_task, padded_band,
                        to_channels_last)

source_jit = numba.njit(transposed_source)
valid_outputs_jit = numba.njit(valid_outputs)

TILE_VALUES = 65536 # v2: a tile's patch (columns × K) holds about this many values (256 KB of float32,
TILE_W_RANGE = (48, 256)    # in L2), with 48 to 256 output columns of one phase.  Measured on the 1-d
                            # upsampler (K = 128): 256 columns ran 1.4× faster than a fixed 48.
BLOCKS_PIX = 1024   # most input pixels (whole rows) per v3 task: the length of the product's rows
                    # (U-Net layer, 28×28 planes: whole planes ran 10% faster than 18-row bands)


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
def phase_taps(kernel, stride, pad, dilation):
    """taps[r, t]: the kernel taps k that outputs o with o mod s = r reach, i.e. (r + pad − k·d) mod s = 0.

    Rows are padded with −1 to the largest count, so every phase has the same number of tap slots
    (a padded slot has a zero weight and a zero patch value).
    """
    per_phase = [[k for k in range(kernel) if (r + pad - k * dilation) % stride == 0] for r in range(stride)]
    width = max(1, max(len(taps) for taps in per_phase))
    taps = np.full((stride, width), -1, dtype=np.int64)
    for r, ks in enumerate(per_phase):
        taps[r, :len(ks)] = ks
    return taps


def phase_weights(w5, groups, taps_d, taps_h, taps_w):
    """A[phase, g, o', kk]: the weight columns each phase multiplies, kk = ((a·nh + e)·nw + f)·Cg + c
    (tap slots a, e, f, then the channel: the order of the channels-last patch).

    phase = (rd·sh + rh)·sw + rw. Rows up to a multiple of MR and padded tap slots are zero.
    """
    C, Og = w5.shape[:2]
    Cg = C // groups
    n_phases = len(taps_d) * len(taps_h) * len(taps_w)
    nd, nh, nw = taps_d.shape[1], taps_h.shape[1], taps_w.shape[1]
    A = np.zeros((n_phases, groups, round_up(Og, MR), nd * nh * nw * Cg), dtype=w5.dtype)
    for rd, kds in enumerate(taps_d):
        for rh, khs in enumerate(taps_h):
            for rw, kws in enumerate(taps_w):
                # w[(g, c), o', kd, kh, kw] for the phase's taps (slot −1 picks a tap, then zeroed below)
                picked = w5[:, :, kds[:, None, None], khs[None, :, None], kws[None, None, :]]
                picked = picked * ((kds[:, None, None] >= 0) & (khs[None, :, None] >= 0) & (kws >= 0))
                picked = picked.reshape(groups, Cg, Og, nd, nh, nw).transpose(0, 2, 3, 4, 5, 1)
                A[(rd * len(taps_h) + rh) * len(taps_w) + rw, :, :Og] = picked.reshape(groups, Og, -1)
    return A


@numba.njit(parallel=True, fastmath=FASTMATH, cache=True)
def conv_transpose_phases(x_cl, A, taps_d, taps_h, taps_w, bias, y, sd, sh, sw, pd, ph, pw, dd, dh, dw,
                          tile_w):
    """x_cl is x channels-last (B, D, H, W, C); A the phase-packed weights of ``phase_weights``; a tile
    is up to tile_w columns of one phase of one output row."""
    B, D, H, W, C = x_cl.shape
    _, G, _, K = A.shape
    _, O, OD, OH, OW = y.shape
    Og, Cg = O // G, C // G
    nd, nh, nw = taps_d.shape[1], taps_h.shape[1], taps_w.shape[1]
    n_chunks = (OW + sw * tile_w - 1) // (sw * tile_w)     # chunks of tile_w columns of one phase
    for tile in prange(B * G * OD * OH * sw * n_chunks):
        chunk = tile % n_chunks
        rw = tile // n_chunks % sw                            # the column phase: ow = rw + j·sw
        oh = tile // (n_chunks * sw) % OH
        od = tile // (n_chunks * sw * OH) % OD
        g = tile // (n_chunks * sw * OH * OD) % G
        b = tile // (n_chunks * sw * OH * OD * G)
        rd, rh = od % sd, oh % sh
        j0 = chunk * tile_w
        N = min(tile_w, (OW - rw + sw - 1) // sw - j0)        # columns of this phase in this chunk
        if N <= 0:
            continue

        # the patch P[n, kk] for the phase's tap slots, in the order of A's columns: each (slot, pixel)
        # is one contiguous copy of Cg channels; a padded slot, or a tap whose input is outside x,
        # stays zero
        P = np.zeros((round_up(N, NR), K), dtype=x_cl.dtype)
        for a in range(nd):
            kd = taps_d[rd, a]
            i_d = (od + pd - kd * dd) // sd                     # exact: kd is a tap of this phase
            if kd < 0 or i_d < 0 or i_d >= D:
                continue
            for e in range(nh):
                kh = taps_h[rh, e]
                ih = (oh + ph - kh * dh) // sh
                if kh < 0 or ih < 0 or ih >= H:
                    continue
                for f in range(nw):
                    kw = taps_w[rw, f]
                    if kw < 0:
                        continue
                    # ow = rw + (j0 + n)·sw reads iw = j0 + n + base: consecutive input columns
                    base = (rw + pw - kw * dw) // sw
                    kk = ((a * nh + e) * nw + f) * Cg
                    lo, hi = valid_outputs_jit(W, N, 1, j0 + base)
                    for n in range(lo, hi):
                        P[n, kk:kk + Cg] = x_cl[b, i_d, ih, j0 + n + base, g * Cg:(g + 1) * Cg]

        # the tile: T[o', n] = bias + Σ_kk A[phase, g, o', kk]·P[n, kk]
        T = tile_product(A[(rd * sh + rh) * sw + rw, g], P, bias[g * Og:(g + 1) * Og], Og)
        for o in range(Og):
            for n in range(N):
                y[b, g * Og + o, od, oh, rw + (j0 + n) * sw] = T[o, n]


# ----------------------------------------------------------------------------------------------------
# v3: kernel = stride, no padding: one pointwise product per tap, written into disjoint blocks
# ----------------------------------------------------------------------------------------------------
@numba.njit(parallel=True, fastmath=FASTMATH, cache=True)
def conv_transpose_blocks(x, A, bias, y, D, H, W, band):
    """x (B, G, Cg, D·H·W): the input with each channel as one row of pixels; A (G, KD, KH, KW, Og, Cg):
    A[g, kd, kh, kw] = w[g·Cg + c, o', kd, kh, kw] as an (Og, Cg) matrix; y (B, O, D·KD, H·KH, W·KW).
    A task owns `band` input rows of one (b, g, input depth i_d)."""
    B, G, Cg, _ = x.shape
    _, KD, KH, KW, Og, _ = A.shape
    n_bands = (H + band - 1) // band
    for task in prange(B * G * D * n_bands):
        h0 = task % n_bands * band
        i_d = task // n_bands % D
        g = task // (n_bands * D) % G
        b = task // (n_bands * D * G)
        R = min(band, H - h0)
        n = R * W
        j0 = (i_d * H + h0) * W                 # the task's first input pixel in the rows of x[b, g]
        Z = np.empty((KW, Og, n), dtype=x.dtype)
        for kd in range(KD):
            for kh in range(KH):
                # Z[kw, o', r·W + iw] = bias + Σ_c w[g·Cg + c, o', kd, kh, kw]·x[b, g·Cg + c, i_d, h0 + r, iw]
                for kw in range(KW):
                    rows_product(A[g, kd, kh, kw], x[b, g], j0, bias[g * Og:(g + 1) * Og], Z[kw], 0, n)
                # ... is output (i_d·KD + kd, (h0 + r)·KH + kh, iw·KW + kw) of channel g·Og + o'
                for o in range(Og):
                    for r in range(R):
                        y_row = y[b, g * Og + o, i_d * KD + kd, (h0 + r) * KH + kh]
                        if KW == 2:
                            # speed: both taps in one loop, a stride-2 pair LLVM writes with vector
                            # shuffles (one strided loop per tap stores element by element)
                            z0, z1 = Z[0, o, r * W:(r + 1) * W], Z[1, o, r * W:(r + 1) * W]
                            for iw in range(W):
                                y_row[2 * iw] = z0[iw]
                                y_row[2 * iw + 1] = z1[iw]
                        else:
                            for kw in range(KW):
                                # speed: 1-D views (indexing Z and y in 3-D and 5-D here ran 3× slower)
                                z_part, y_part = Z[kw, o, r * W:(r + 1) * W], y_row[kw::KW]
                                for iw in range(W):
                                    y_part[iw] = z_part[iw]


# ----------------------------------------------------------------------------------------------------
# v4: each output phase is a stride-1 correlation, through conv2d's register block
# ----------------------------------------------------------------------------------------------------
def flat_phases(w5, groups, sd, sh, sw, pd, ph, pw, dd, dh, dw, R, Wp, row_lo, col_lo):
    """The phases of a transposed convolution as stride-1 correlations over one padded band.

    Phase (rd, rh, rw) holds the outputs (rd + jd·sd, rh + jh·sh, rw + jw·sw); its taps are the kh with
    (rh + ph − kh·dh) mod sh = 0 (likewise kd, kw), and output jh reads input row jh + bh,
    bh = (rh + ph − kh·dh)/sh (likewise depth and columns).  Output plane od = rd + jd·sd reads the
    input slabs jd + bd of its depth taps: a task copies them as planes, slot c·nd + e for channel c and
    the phase's e-th depth tap (nd of them; depth_kd[rd, e] = kd).  In a band whose row 0 is input row
    jh0 + row_lo and whose column 0 is input column col_lo (planes of R rows of Wp values), the phase's
    term (c, t) — channel c, t-th tap triple (kd, kh, kw), e its depth slot — therefore sits at
    offs[phase, c·n + t] = ((c·nd + e)·R + bh − row_lo)·Wp + bw − col_lo from output position 0, with
    weight A[phase, g, o', c·n + t] = w[g·Cg + c, o', kd, kh, kw] (n = the phase's triples).
    n_terms[phase] = Cg·n (0 when the phase has no tap: its outputs are the bias alone).
    The tables (``phase_tables``) depend on the geometry alone; the weights are copied by Numba
    (``phase_weight_rows``)."""
    C, Og = w5.shape[:2]
    Cg = C // groups
    offs, where, n_taps, n_depth, depth_kd = phase_tables(Cg, *w5.shape[2:], sd, sh, sw, pd, ph, pw, dd, dh, dw,
                                                          R, Wp, row_lo, col_lo)
    # the weights; the rows past Og, padding for the register block, are zero
    A = np.empty((offs.shape[0], groups, round_up(Og, FLAT_MR), offs.shape[1]), dtype=w5.dtype)
    A[:, :, Og:] = 0
    phase_weight_rows(w5, A, n_taps, where)
    return A, offs, Cg * n_taps, n_depth, depth_kd


@functools.lru_cache(maxsize=64)
def phase_tables(Cg, KD, KH, KW, sd, sh, sw, pd, ph, pw, dd, dh, dw, R, Wp, row_lo, col_lo):
    """offs, where, n_taps, n_depth and depth_kd of ``flat_phases`` (where[phase, t] = (kd·KH + kh)·KW + kw,
    the t-th tap triple's place in a kernel).  Built in Python, once per geometry, and kept read-only:
    as a Numba function they cost 1.6 s of first-call compilation, in Python 0.1 ms a call (15% of
    the 1-d upsampler layer)."""
    depth, rows, cols = phase_taps(KD, sd, pd, dd), phase_taps(KH, sh, ph, dh), phase_taps(KW, sw, pw, dw)
    n_depth = (depth >= 0).sum(axis=1)
    depth_kd = np.zeros((sd, KD), dtype=np.int64)
    depth_kd[:, :depth.shape[1]] = np.maximum(depth, 0)
    # each phase's tap triples in (kd, kh, kw) order: e is kd's depth slot, (bh, bw) the input row and
    # column offsets; a triple's term for channel c sits at offset c·nd·R·Wp + (its offset in plane 0)
    phases = [[(e, kd, kh, kw) for e, kd in enumerate(depth[rd, :n_depth[rd]])
               for kh in rows[rh] if kh >= 0 for kw in cols[rw] if kw >= 0]
              for rd in range(sd) for rh in range(sh) for rw in range(sw)]
    n_taps = np.array([len(triples) for triples in phases], dtype=np.int64)
    K = max(1, Cg * n_taps.max())
    offs = np.zeros((len(phases), K), dtype=np.int64)
    where = np.zeros((len(phases), max(1, n_taps.max())), dtype=np.int64)
    for phase, triples in enumerate(phases):
        rd, rh, rw = phase // (sh * sw), phase // sw % sh, phase % sw
        for t, (e, kd, kh, kw) in enumerate(triples):
            bh = (rh + ph - kh * dh) // sh                    # exact: the tap belongs to the phase
            bw = (rw + pw - kw * dw) // sw
            offs[phase, t] = (e * R + bh - row_lo) * Wp + bw - col_lo
            where[phase, t] = (kd * KH + kh) * KW + kw
        n = len(triples)
        channel = np.arange(Cg)[:, None] * (n_depth[rd] * R * Wp)
        offs[phase, :Cg * n] = (channel + offs[phase, :n]).reshape(-1)
    for table in (offs, where, n_taps, n_depth, depth_kd):
        table.flags.writeable = False
    return offs, where, n_taps, n_depth, depth_kd


@numba.njit(parallel=True, cache=True)
def phase_weight_rows(w5, A, n_taps, where):
    """A[phase, g, o', c·n + t] = w[g·Cg + c, o', kd, kh, kw] for the t-th tap triple (kd, kh, kw) of the
    phase (n = n_taps[phase], where[phase, t] = its place (kd·KH + kh)·KW + kw in a kernel) and o' < Og,
    zero past Cg·n.  A task per output channel (g, o') writes each of its phase rows in order, reading
    the taps of every w[g·Cg + c, o'] (one small contiguous kernel, in L1 after the first phase).
    Speed, DCGAN layer (2 MB of A), in a call: a loop over o' inside wrote A with a stride of K: 3 ms; a
    loop over the phases inside the channel loop, a row view made per (c, phase): 0.75 ms; this, serial:
    0.59 ms, on 2 threads: 0.33 ms (4% of the layer).  The body stays small, with ``where`` computed by
    the caller: a large or array-expression prange body costs seconds of first-call compilation."""
    groups, Og, Cg = A.shape[1], w5.shape[1], w5.shape[0] // A.shape[1]
    KK = w5.shape[2] * w5.shape[3] * w5.shape[4]
    w_flat = w5.reshape(-1)
    for task in prange(groups * Og):
        g, o = task // Og, task % Og
        for phase in range(A.shape[0]):
            n, row, at = n_taps[phase], A[phase, g, o], where[phase]
            for k in range(Cg * n, row.size):
                row[k] = 0
            for c in range(Cg):
                kernel = ((g * Cg + c) * Og + o) * KK            # w[g·Cg + c, o'] starts here
                for t in range(n):
                    row[c * n + t] = w_flat[kernel + at[t]]


@numba.njit(parallel=True, fastmath=FASTMATH, cache=True)
def conv_transpose_flat(x, A, offs, n_terms, n_depth, depth_kd, bias, y, sd, sh, sw, pd, dd, band, R, Wp,
                        row_lo, col_lo, threads):
    """x (B, C, D, H, W), y (B, O, OD, OH, OW); A, offs, n_terms, n_depth, depth_kd from ``flat_phases``.
    A task owns the phase rows jh0 … jh0 + band − 1 of one output plane od of one (b, g): it copies the
    rows of the input slabs that plane reads once (zero-padded, col_lo ≤ 0), then runs every (h, w)
    phase over that one band with its own offsets and weights."""
    B, C, D, H, W = x.shape
    G = A.shape[1]
    _, O, OD, OH, OW = y.shape
    n_bands = ((OH + sh - 1) // sh + band - 1) // band       # phase 0 has the most rows
    x_planes = x.reshape(B, C * D, H, W)                      # plane (c, i_d) is c·D + i_d
    yf = y.reshape(-1)
    m = images_per_task(B, G * OD, n_bands, band * Wp, threads)
    for task in prange((B + m - 1) // m * G * OD * n_bands):
        group, g, od, jh0 = band_task(task, G, OD, n_bands, band)
        phase_rows_task(x_planes, A, offs, n_terms, n_depth, depth_kd, bias, yf, group * m,
                        min(m, B - group * m), g, od, jh0, D, OD, OH, OW, sd, sh, sw, pd, dd, band, R, Wp,
                        row_lo, col_lo)


@numba.njit(fastmath=FASTMATH, cache=True)
def phase_rows_task(x_planes, A, offs, n_terms, n_depth, depth_kd, bias, yf, b0, n_img, g, od, jh0, D, OD, OH,
                    OW, sd, sh, sw, pd, dd, band, R, Wp, row_lo, col_lo):
    """One v4 task: phase rows jh0 … jh0 + band − 1 of output plane od, images b0 … b0 + n_img − 1,
    group g (a function of its own, outside the prange body: a large parallel body costs seconds of
    first-call compilation)."""
    G, O = A.shape[1], bias.size
    Cg, Og = x_planes.shape[1] // D // G, O // G
    rd, jd = od % sd, od // sd
    # the input slabs plane od reads: channel c at depth jd + bd for the e-th depth tap of phase rd
    nd = n_depth[rd]
    planes = np.empty(Cg * nd, dtype=np.int64)
    for c in range(Cg):
        for e in range(nd):
            i_d = jd + (rd + pd - depth_kd[rd, e] * dd) // sd
            planes[c * nd + e] = (g * Cg + c) * D + i_d if 0 <= i_d < D else -1
    S = padded_band(x_planes, b0, n_img, planes, jh0 + row_lo, R, -col_lo, Wp)
    bias_g = bias[g * Og:(g + 1) * Og]
    # the phases one register block of FLAT_MR output channels at a time: the phases of a row write
    # alternate columns of the same lines of y, which the next phase then finds still in cache (all
    # channels of one phase before the next: 3% slower on the DCGAN layer with 2 threads, 11% with one)
    for o0 in range(0, Og, FLAT_MR):
        n_out = min(FLAT_MR, Og - o0)
        for hw_phase in range(sh * sw):
            rh, rw = hw_phase // sw, hw_phase % sw
            phase = rd * sh * sw + hw_phase
            n_rows = min(band, (OH - rh + sh - 1) // sh - jh0)    # rows and columns of this phase
            n_cols = (OW - rw + sw - 1) // sw
            if n_rows <= 0 or n_cols <= 0:
                continue
            K = n_terms[phase]                  # 0 for a phase no tap reaches: its outputs are the bias
            # y[b, g·Og + o0 + o', od, rh + jh·sh, rw + jw·sw] for jh ≥ jh0: every sh-th row and sw-th column
            base = (((b0 * O + g * Og + o0) * OD + od) * OH + rh + jh0 * sh) * OW + rw
            flat_bands(S, Cg * nd * R * Wp, n_img, offs[phase, :K], A[phase, g, o0:o0 + FLAT_MR, :K],
                       bias_g[o0:o0 + FLAT_MR], n_rows, Wp, n_cols, yf, base, O * OD * OH * OW, OD * OH * OW,
                       sh * OW, sw, n_out)


# ----------------------------------------------------------------------------------------------------
# The wrapper fastconv.run calls
# ----------------------------------------------------------------------------------------------------
def conv_transpose(x, w, bias=None, *, stride, padding, dilation, groups, out_size, version="auto"):
    """y = conv_transpose{nd}d(x, w, bias); output_padding is already in ``out_size`` (from the plan).

    version: "direct" (v1), "phases" (v2), "blocks" (v3: kernel = stride, no padding, dilation 1),
    "flat" (v4) or "auto" (v4).
    """
    nd = x.ndim - 2
    x5, w5 = as_3d(x, nd), as_3d(w, nd)
    B, O = x.shape[0], w.shape[1] * groups
    y5 = np.empty((B, O) + pad3(out_size, nd, 1), dtype=x.dtype)
    bias = np.zeros(O, dtype=x.dtype) if bias is None else bias
    geometry = pad3(stride, nd, 1) + pad3(padding, nd, 0) + pad3(dilation, nd, 1)
    kernel, strides = w5.shape[2:], geometry[:3]
    blocks = kernel == strides and geometry[3:] == (0, 0, 0, 1, 1, 1) and y5.shape[2:] == tuple(
        i * k for i, k in zip(x5.shape[2:], kernel))          # disjoint blocks tiling the whole output
    if version == "auto":
        version = "flat"
    if version == "direct":
        conv_transpose_direct(x5, w5, bias, y5, *geometry)
    elif version == "blocks":
        if not blocks:
            raise NotApplicable("version='blocks' needs kernel = stride, no padding, dilation 1 and no "
                                "output_padding")
        C, (D, H, W) = x5.shape[1], x5.shape[2:]
        Cg, Og = C // groups, w5.shape[1]
        A = np.ascontiguousarray(w5.reshape(groups, Cg, Og, *kernel).transpose(0, 3, 4, 5, 2, 1))
        band = min(band_height(B * groups * D, H), max(1, BLOCKS_PIX // W))
        conv_transpose_blocks(x5.reshape(B, groups, Cg, -1), A, bias, y5, D, H, W, band)
    elif version == "flat":
        sd, sh, sw, pd, ph, pw, dd, dh, dw = geometry
        (H, W), (OH, OW), (KH, KW) = x5.shape[3:], y5.shape[3:], w5.shape[3:]
        # the band: input rows jh + bh and columns jw + bw over all phases' taps, bh from
        # (ph − (KH − 1)·dh)//sh to (sh − 1 + ph)//sh (likewise bw); column 0 never past the image's first
        row_lo, row_hi = (ph - (KH - 1) * dh) // sh, (sh - 1 + ph) // sh
        col_lo, col_hi = min(0, (pw - (KW - 1) * dw) // sw), (sw - 1 + pw) // sw
        n_jh, n_jw = -(-OH // sh), -(-OW // sw)
        # a row of S: −col_lo zeros, then x's W columns; the reads past x's last column (n_jw + col_hi − W
        # of them) land in the next row's zeros, so there must be at least as many (as in conv2d's v6)
        col_lo = min(col_lo, W - n_jw - col_hi)
        Wp = max(n_jw + col_hi, W - col_lo)                 # every phase's columns, and all of x's
        n_bands = -(-n_jh * Wp // FLAT_BAND_PIX)
        band = -(-n_jh // n_bands)
        R = band + row_hi - row_lo
        A, offs, n_terms, n_depth, depth_kd = flat_phases(w5, groups, *geometry, R, Wp, row_lo, col_lo)
        conv_transpose_flat(x5, A, offs, n_terms, n_depth, depth_kd, bias, y5, sd, sh, sw, pd, dd, band, R,
                            Wp, row_lo, col_lo, numba.get_num_threads())
    elif version == "phases":
        taps = [phase_taps(k, s, p, d) for k, s, p, d in zip(w5.shape[2:], *np.reshape(geometry, (3, 3)))]
        A = phase_weights(w5, groups, *taps)
        tile_w = min(TILE_W_RANGE[1], max(TILE_W_RANGE[0], TILE_VALUES // A.shape[-1]))
        conv_transpose_phases(to_channels_last(x5), A, *taps, bias, y5, *geometry, tile_w)
    else:
        raise ValueError(f"version must be 'auto' or one of {', '.join(VERSIONS)}, got {version!r}")
    return y5.reshape((B, O) + tuple(out_size))


VERSIONS = ("direct", "phases", "blocks", "flat")
