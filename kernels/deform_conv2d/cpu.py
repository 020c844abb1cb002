"""Deformable convolution on the CPU with Numba: torchvision.ops.deform_conv2d (DCNv1 without a mask,
DCNv2 with one).

Math
    Weight groups g (Cin_g = Cin/groups inputs, Og = Cout/groups outputs each), offset groups og
    (Cpg = Cin/G channels each), kernel point q = og·kh·kw + u·kw + v:

    y[b, o, ho, wo] = bias[o] + Σ_{c<Cin_g} Σ_{u<kh} Σ_{v<kw} w[o, c, u, v] · m[b, q, ho, wo]
                      · bilinear(x[b, ci], ho·sh − ph + u·dh + Δy[b, q, ho, wo], wo·sw − pw + v·dw + Δx[b, q, ho, wo])
        with g = o // Og, ci = g·Cin_g + c, og = ci // Cpg, Δy = offset[b, 2q], Δx = offset[b, 2q + 1],
        m = mask[b, q] (1 without a mask); bilinear: deformable/sampling.py.

Shapes
    x (B, Cin, H, W)   w (Cout, Cin_g, kh, kw)   bias (Cout,)   offset (B, 2·G·kh·kw, Ho, Wo)
    mask (B, G·kh·kw, Ho, Wo)   y (B, Cout, Ho, Wo), all C-contiguous.

Cost
    B·Cout·Ho·Wo·Cin_g·kh·kw multiply-adds for the weights, plus B·Cin·kh·kw·Ho·Wo bilinear samples
    (4 multiply-adds each, and the mask).  Minimum traffic: x, w, offset, mask read once, y written once.

Parallel
    v1: one task per output row (b, o, ho).   v2: tiles (b, g, run of ≤ TILE output pixels) dealt
    round-robin to one task per thread, each with its own scratch patch.   v3: the same with tiles of
    FLAT_TILE consecutive pixels of the whole batch (g, run).  Tasks write disjoint outputs.

Versions
    v1 ``deform_direct``  the formula, loop for loop: every output channel re-samples every tap.
    v2 ``deform_tiled``   sample once, multiply as a matrix.  For a tile of output pixels of one weight
                          group, build the sampled patch P[n, kk] (kk = (u·kw + v)·Cin_g + c; the patch of
                          this tile only, never of the whole output: no B·C·k²·Ho·Wo buffer) and compute
                          the tile for all Og output channels as C = bias + A·Pᵀ with the shared
                          register-blocked ``tile_matmul`` (kernels/_cpu_gemm.py), A the weight reordered
                          to (o, u, v, c).  Each sample is then used Og times instead of being recomputed.
                          The reduction is cut into blocks of whole taps (≈ KB_TARGET columns) so a strip
                          of A and of P stays in L1 while tile_matmul runs over k.
                          The sampling borrows DCNv4's idea: x is read channels last, so one tap's
                          position, corners and weights (computed once per pixel, tap and offset group)
                          apply to a contiguous run of channels — four vector loads per tap, written to
                          consecutive patch columns (hence the (u, v, c) order of kk).
                          Measured on the ResNet-50 conv4_x layer (B = 8, 1 thread, busy machine): ≈ 1.3 ms
                          sampling + ≈ 12–15 ms product (120–150 GFLOP/s, the 4×3 block's limit: 7 loads
                          per 12 FMAs) against ≈ 30–45 ms for torch's grid_sample + bmm.
    v3 ``deform_flat``    v2's sampling, v6-of-conv2d's product: the tile's samples are laid out as planes
                          PT[kk, n] (one row of FLAT_TILE pixels per term kk = (u·kw + v)·Cin_g + c), so the
                          product is conv2d's register block (``flat_block``, 8 output channels × 48 pixels
                          in 24 vector registers over all K terms) with offsets offs[kk] = kk·FLAT_TILE.
                          The sampler still writes channel runs (channels-last, 8 pixels at a time) and
                          ``transpose_into`` turns each 8-pixel block into columns of the planes.  Tiles run
                          across image boundaries (pixel j of the batch), so a 14×14 map does not leave
                          half-empty blocks.  Measured (ResNet-50 conv4_x, one thread, CPU time): product
                          ≈ 8.9 ms (≈ 210 GFLOP/s) against v2's ≈ 11; sampling + transpose ≈ 2.3 ms against
                          v2's 1.3 (writing the runs straight down the columns instead cost ≈ 2.7 ms);
                          whole call ≈ 11.2 vs 12.4 ms.
    ``auto`` is v3.

Caveats
    Accumulation in the input dtype; v2 sums in another order than v1 (agrees to rounding).  A
    neighbour outside the image is read at a clamped index with weight 0 (a NaN there gives NaN where
    torchvision gives 0; only for non-finite inputs).
"""
import numba
import numpy as np
from numba import prange

from .._cpu_gemm import FASTMATH, MR, NR, round_up, tile_matmul
from .._cpu_rows import transpose_into
from .._simd import LANES
from ..conv.cpu import FLAT_MR, FLAT_N, flat_block, store_plus, to_channels_last
from ..deformable.sampling import bilinear_corners, sample_position

corners_jit = numba.njit(bilinear_corners)
position_jit = numba.njit(sample_position)

TILE = 128       # at most this many output pixels per v2 tile: a K block of the patch stays in L2
KB_TARGET = 768  # about this many reduction columns per K block (measured best for tile_matmul here)
FLAT_TILE = 2 * FLAT_N  # output pixels per v3 tile (96): its planes (K × 96 values, 885 KB at K = 2304) stay in L2


# ----------------------------------------------------------------------------------------------------
# v1: the formula, loop for loop
# ----------------------------------------------------------------------------------------------------
@numba.njit(parallel=True, cache=True)
def deform_direct(x, w, bias, offset, mask, has_mask, y, G, sh, sw, ph, pw, dh, dw):
    B, Cin, H, W = x.shape
    Cout, Cin_g, kh, kw = w.shape
    _, _, Ho, Wo = y.shape
    Og = Cout // (Cin // Cin_g)
    Cpg = Cin // G
    for row in prange(B * Cout * Ho):
        ho = row % Ho
        o = row // Ho % Cout
        b = row // (Ho * Cout)
        g = o // Og
        for wo in range(Wo):
            acc = bias[o]
            for c in range(Cin_g):
                ci = g * Cin_g + c
                og = ci // Cpg
                for u in range(kh):
                    for v in range(kw):
                        q = og * kh * kw + u * kw + v
                        # where tap (u, v) of this pixel lands, and the bilinear read there
                        py = position_jit(ho, sh, ph, 0, u, dh, offset[b, 2 * q, ho, wo], 1.0)
                        px = position_jit(wo, sw, pw, 0, v, dw, offset[b, 2 * q + 1, ho, wo], 1.0)
                        r0, r1, c0, c1, w00, w01, w10, w11 = corners_jit(py, px, H, W)
                        value = (w00 * x[b, ci, r0, c0] + w01 * x[b, ci, r0, c1]
                                 + w10 * x[b, ci, r1, c0] + w11 * x[b, ci, r1, c1])
                        m = mask[b, q, ho, wo] if has_mask else 1.0
                        acc += w[o, c, u, v] * m * value
            y[b, o, ho, wo] = acc


# ----------------------------------------------------------------------------------------------------
# v2: per-tile sampled patch + register-blocked matrix product
# ----------------------------------------------------------------------------------------------------
@numba.njit(parallel=True, fastmath=FASTMATH, cache=True)
def deform_tiled(xh, A, bias, offset, mask, has_mask, y, G, tile_n, n_threads, kh, kw, sh, sw, ph, pw, dh, dw):
    """xh: x channels last (B, H, W, Cin); A: the weight as (groups, K blocks, Og rounded up to 4, KB),
    see ``weight_blocks``; y seen as (B, Cout, Ho·Wo); tile_n output pixels per tile."""
    B, H, W, Cin = xh.shape
    groups, n_blocks, Og_pad, KB = A.shape
    _, Cout, HoWo = y.shape
    Wo = offset.shape[3]
    Cin_g, Og, Cpg, taps = Cin // groups, Cout // groups, Cin // G, kh * kw
    tpb = KB // Cin_g                           # taps per K block
    xr = xh.reshape(B * H * W, Cin)             # one row per input pixel: a corner is a row index
    n_tiles = (HoWo + tile_n - 1) // tile_n
    n_tasks = B * groups * n_tiles
    n_workers = min(n_tasks, n_threads)
    for worker in prange(n_workers):
        # scratch allocated once per worker, not per tile: a patch of a few hundred KB would be a
        # fresh mmap (and page faults) on every tile
        P = np.empty((n_blocks, round_up(tile_n, NR), KB), dtype=xh.dtype)
        T = np.empty((Og_pad, P.shape[1]), dtype=xh.dtype)
        coef = np.empty(4, dtype=xh.dtype)     # a tap's four weights, rounded to the input dtype
        for t in range(worker, n_tasks, n_workers):
            tile = t % n_tiles
            g = t // n_tiles % groups
            b = t // (n_tiles * groups)
            s0 = tile * tile_n
            N = min(tile_n, HoWo - s0)
            # the offset groups whose channels meet this weight group's channels [g·Cin_g, (g+1)·Cin_g)
            og_lo, og_hi = (g * Cin_g) // Cpg, ((g + 1) * Cin_g - 1) // Cpg + 1
            deform_tile(xr, A[g], bias, offset, mask, has_mask, y, P, T, coef, b, g, s0, N, og_lo, og_hi,
                        H, W, Wo, Cin_g, Og, Cpg, tpb, kh, kw, sh, sw, ph, pw, dh, dw)


@numba.njit(fastmath=FASTMATH, cache=True)
def sample_pixel(xr, offset, mask, has_mask, P, n, tpb, coef, b, ho, wo, g, og_lo, og_hi, H, W, Cin_g, Cpg,
                 kh, kw, sh, sw, ph, pw, dh, dw):
    """P[t // tpb, n, (t mod tpb)·Cin_g + c] = m · bilinear(x[b, g·Cin_g + c], where tap t = u·kw + v of output
    (ho, wo) lands), for every tap and every channel c < Cin_g of weight group g (v2 and v3's sampler).

    The DCNv4 idea: the position, corners and weights depend on (pixel, tap, offset group) only, so they
    are computed once and applied to a contiguous run of channels (x is channels last): four vector loads
    in, one contiguous run of P out.  coef: 4 values of x's dtype, so the weights are rounded to it
    (float32 arithmetic in the channel loop for float32 x)."""
    taps = kh * kw
    for u in range(kh):
        for v in range(kw):
            tap = u * kw + v
            for og in range(og_lo, og_hi):
                q = og * taps + tap
                py = position_jit(ho, sh, ph, 0, u, dh, offset[b, 2 * q, ho, wo], 1.0)
                px = position_jit(wo, sw, pw, 0, v, dw, offset[b, 2 * q + 1, ho, wo], 1.0)
                r0, r1, c0, c1, w00, w01, w10, w11 = corners_jit(py, px, H, W)
                m = mask[b, q, ho, wo] if has_mask else 1.0
                coef[0], coef[1], coef[2], coef[3] = m * w00, m * w01, m * w10, m * w11
                a0, a1, a2, a3 = coef[0], coef[1], coef[2], coef[3]
                # ... applied to the channels [lo, hi) of this offset group in the weight group
                lo, hi = max(g * Cin_g, og * Cpg), min((g + 1) * Cin_g, (og + 1) * Cpg)
                x0, x1 = xr[(b * H + r0) * W + c0, lo:hi], xr[(b * H + r0) * W + c1, lo:hi]
                x2, x3 = xr[(b * H + r1) * W + c0, lo:hi], xr[(b * H + r1) * W + c1, lo:hi]
                col = (tap % tpb) * Cin_g + lo - g * Cin_g
                run = P[tap // tpb, n, col:col + hi - lo]     # speed: P[·, n, ·] first would not be contiguous
                # speed: a loop from 0 over sliced views vectorises; indices Numba cannot prove non-negative
                # keep their wrap-around test and the loop stays scalar (measured 10× slower)
                for c in range(hi - lo):
                    run[c] = a0 * x0[c] + a1 * x1[c] + a2 * x2[c] + a3 * x3[c]


@numba.njit(fastmath=FASTMATH, cache=True)
def deform_tile(xr, Ag, bias, offset, mask, has_mask, y, P, T, coef, b, g, s0, N, og_lo, og_hi,
                H, W, Wo, Cin_g, Og, Cpg, tpb, kh, kw, sh, sw, ph, pw, dh, dw):
    """One v2 tile: output pixels s0 .. s0+N of image b, the Og output channels of weight group g."""
    n_blocks, taps = P.shape[0], kh * kw
    # 1. the patch: tap t = u·kw + v of pixel n, channel c of the group, goes to block t // tpb,
    #    column (t mod tpb)·Cin_g + c:  m · bilinear(x[b, g·Cin_g + c], where tap (u, v) of pixel n lands).
    #    Every column of the real rows is written below; only the rows past N and padding taps are zeroed.
    P[:, N:, :] = 0
    P[n_blocks - 1, :, (taps - (n_blocks - 1) * tpb) * Cin_g:] = 0
    for n in range(N):
        sample_pixel(xr, offset, mask, has_mask, P, n, tpb, coef, b, (s0 + n) // Wo, (s0 + n) % Wo, g,
                     og_lo, og_hi, H, W, Cin_g, Cpg, kh, kw, sh, sw, ph, pw, dh, dw)

    # 2. the tile: T[o, n] = bias[g·Og + o] + Σ_blocks Σ_kk A[g, block, o, kk]·P[block, n, kk]
    for o in range(Og):
        T[o, :] = bias[g * Og + o]
    T[Og:, :] = 0
    for block in range(n_blocks):
        tile_matmul(Ag[block], P[block], T)
    for o in range(Og):
        for n in range(N):
            y[b, g * Og + o, s0 + n] = T[o, n]


# ----------------------------------------------------------------------------------------------------
# v3: sampled planes + conv2d's register block
# ----------------------------------------------------------------------------------------------------
@numba.njit(parallel=True, fastmath=FASTMATH, cache=True)
def deform_flat(xh, A, bias, offset, mask, has_mask, y, G, n_threads, kh, kw, sh, sw, ph, pw, dh, dw):
    """xh: x channels last (B, H, W, Cin); A (groups, Og rounded up to FLAT_MR, K = kh·kw·Cin_g): w in
    (u, v, c) order; y seen as (B, Cout, Ho·Wo).  A tile is FLAT_TILE consecutive output pixels of
    the whole batch (b, ho, wo in order), so small maps fill whole register blocks."""
    B, H, W, Cin = xh.shape
    groups, _, K = A.shape
    _, Cout, HoWo = y.shape
    Og = Cout // groups
    xr = xh.reshape(B * H * W, Cin)             # one row per input pixel: a corner is a row index
    yf = y.reshape(-1)
    offs = np.arange(K) * FLAT_TILE             # term kk is row kk of the planes
    n_tiles = (B * HoWo + FLAT_TILE - 1) // FLAT_TILE
    n_tasks = groups * n_tiles
    n_workers = min(n_tasks, n_threads)
    for worker in prange(n_workers):
        # scratch allocated once per worker (see v2)
        PT = np.empty(K * FLAT_TILE, dtype=xh.dtype)
        P8 = np.empty((8, K), dtype=xh.dtype)
        T = np.empty(FLAT_MR * FLAT_N, dtype=xh.dtype)
        coef = np.empty(4, dtype=xh.dtype)     # a tap's four weights, rounded to the input dtype
        for t in range(worker, n_tasks, n_workers):
            tile, g = t % n_tiles, t // n_tiles
            j0 = tile * FLAT_TILE
            N = min(FLAT_TILE, B * HoWo - j0)
            if N < FLAT_TILE:
                PT[:] = 0                       # the positions past N are computed, then dropped
            sample_planes(xr, offset, mask, has_mask, PT.reshape(K, FLAT_TILE), P8, coef, j0, N, g, Cin // groups,
                          Cin // G, H, W, kh, kw, sh, sw, ph, pw, dh, dw)
            planes_product(PT, offs, A[g], bias[g * Og:(g + 1) * Og], T, yf, j0, N, g, Cout, HoWo)


@numba.njit(fastmath=FASTMATH, cache=True)
def sample_planes(xr, offset, mask, has_mask, PT, P8, coef, j0, N, g, Cin_g, Cpg, H, W, kh, kw, sh, sw, ph, pw,
                  dh, dw):
    """v3, step 1: PT[kk, n] = m · bilinear(x[b, g·Cin_g + c], where tap (u, v) of pixel j0 + n lands) for
    n < N, kk = (u·kw + v)·Cin_g + c.  As v2 (``sample_pixel``), into a channels-last block of 8 pixels;
    each block is then transposed into 8 columns of the planes (speed: writing the channel runs straight down the
    columns, a stride of FLAT_TILE, doubled the sampling time)."""
    HoWo, Wo = offset.shape[2] * offset.shape[3], offset.shape[3]
    og_lo, og_hi = (g * Cin_g) // Cpg, ((g + 1) * Cin_g - 1) // Cpg + 1
    for n0 in range(0, N, 8):
        for i in range(min(8, N - n0)):
            b, hw = (j0 + n0 + i) // HoWo, (j0 + n0 + i) % HoWo
            sample_pixel(xr, offset, mask, has_mask, P8.reshape(1, 8, -1), i, kh * kw, coef, b, hw // Wo, hw % Wo, g,
                         og_lo, og_hi, H, W, Cin_g, Cpg, kh, kw, sh, sw, ph, pw, dh, dw)
        transpose_into(P8[:min(8, N - n0)], PT[:, n0:n0 + 8])


@numba.njit(fastmath=FASTMATH, cache=True)
def planes_product(PT, offs, Ag, bias_g, T, yf, j0, N, g, Cout, HoWo):
    """v3, step 2: y[b, g·Og + o, hw] = bias_g[o] + Σ_kk Ag[o, kk]·PT[kk·FLAT_TILE + n] for the pixels
    j0 + n = b·HoWo + hw, n < N: FLAT_MR output channels × FLAT_N pixels at a time in registers, each
    block's pixels stored as runs that end at image boundaries."""
    Og = bias_g.size
    for o0 in range(0, Og, FLAT_MR):
        for p0 in range(0, N, FLAT_N):
            flat_block(PT, p0, p0 + LANES, p0 + 2 * LANES, offs, Ag, o0, T)
            n = p0
            while n < min(N, p0 + FLAT_N):
                b, hw = (j0 + n) // HoWo, (j0 + n) % HoWo
                run = min(min(N, p0 + FLAT_N) - n, HoWo - hw)
                for i in range(min(FLAT_MR, Og - o0)):
                    start = (b * Cout + g * Og + o0 + i) * HoWo + hw
                    store_plus(yf[start:start + run], T[i * FLAT_N + n - p0:i * FLAT_N + n - p0 + run], bias_g[o0 + i])
                n += run


# ----------------------------------------------------------------------------------------------------
# The wrapper fastconv.run calls
# ----------------------------------------------------------------------------------------------------
@numba.njit(parallel=True, cache=True)
def fill_weight_blocks(w, A):
    """A[g, t // tpb, o, (t mod tpb)·Cin_g + c] = w[g·Og + o, c, u, v] for tap t = u·kw + v."""
    Cout, Cin_g, kh, kw = w.shape
    groups, _, _, KB = A.shape
    Og, tpb = Cout // groups, KB // Cin_g
    for o in prange(Cout):
        g, ol = o // Og, o % Og
        for t in range(kh * kw):
            row = A[g, t // tpb, ol, (t % tpb) * Cin_g:]       # written in order, w[o] read across
            for c in range(Cin_g):
                row[c] = w[o, c, t // kw, t % kw]


def weight_blocks(w, groups):
    """w (Cout, Cin_g, kh, kw) -> A (groups, K blocks, Og rounded up to MR, KB), extra rows/taps zero.

    The reduction K = kh·kw·Cin_g, ordered (u, v, c), is cut into blocks of whole taps of about KB_TARGET
    columns: a 4-row strip of A and a 3-row strip of P then stay in L1 while tile_matmul runs over k.
    """
    Cout, Cin_g, kh, kw = w.shape
    taps = kh * kw
    tpb = -(-taps // -(-taps * Cin_g // KB_TARGET))        # taps per block: ceil(taps / ceil(K / KB_TARGET))
    A = np.zeros((groups, -(-taps // tpb), round_up(Cout // groups, MR), tpb * Cin_g), dtype=w.dtype)
    fill_weight_blocks(w, A)
    return A


def deform_conv2d(x, w, bias=None, offset=None, mask=None, *, stride, padding, dilation, groups, offset_groups,
                  out_size, version="auto"):
    """y = torchvision.ops.deform_conv2d(x, offset, w, bias, stride, padding, dilation, mask).

    version: "direct" (v1), "tiled" (v2), "flat" (v3) or "auto" (= "flat").
    """
    B, Cout = x.shape[0], w.shape[0]
    bias = np.zeros(Cout, dtype=x.dtype) if bias is None else bias
    has_mask = mask is not None
    mask = mask if has_mask else np.ones((1, 1, 1, 1), dtype=x.dtype)
    y = np.empty((B, Cout, *out_size), dtype=x.dtype)
    geometry = (*stride, *padding, *dilation)
    if version == "direct":
        deform_direct(x, w, bias, offset, mask, has_mask, y, offset_groups, *geometry)
    elif version == "tiled":
        xh = to_channels_last(x[:, :, None])[:, 0]
        HoWo = out_size[0] * out_size[1]
        tile_n = -(-HoWo // -(-HoWo // TILE))            # TILE or less, so the tiles come out even
        deform_tiled(xh, weight_blocks(w, groups), bias, offset, mask, has_mask,
                     y.reshape(B, Cout, -1), offset_groups, tile_n, numba.get_num_threads(), *w.shape[2:],
                     *geometry)
    elif version in ("auto", "flat"):
        xh = to_channels_last(x[:, :, None])[:, 0]
        Cin_g, kh, kw = w.shape[1:]
        A = np.zeros((groups, 1, round_up(Cout // groups, FLAT_MR), kh * kw * Cin_g), dtype=w.dtype)
        fill_weight_blocks(w, A)                        # one block holding all taps, (u, v, c) order
        deform_flat(xh, A.reshape(A.shape[0], A.shape[2], A.shape[3]), bias, offset, mask, has_mask,
                    y.reshape(B, Cout, -1), offset_groups, numba.get_num_threads(), *w.shape[2:], *geometry)
    else:
        raise ValueError(f"version must be 'auto', 'direct', 'tiled' or 'flat', got {version!r}")
    return y


VERSIONS = ("direct", "tiled", "flat")
