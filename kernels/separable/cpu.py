"""Depthwise separable convolution on the CPU with Numba: depthwise k×k then pointwise 1×1, fused.

Math
    With m = Cmid / C depthwise filters per input channel (channel c_mid reads input c_mid // m):

    d[b, c, oh, ow] = Σ_{kh<KH} Σ_{kw<KW} w[c, kh, kw] · x[b, c // m, oh·sh − ph + kh·dh, ow·sw − pw + kw·dw]
    y[b, o, oh, ow] = bias[o] + Σ_{c<Cmid} pw[o, c] · d[b, c, oh, ow]

    x reads as zero outside the image. d is the depthwise output ("mid" tensor).

Shapes
    x (B, C, H, W)   w (Cmid, KH, KW) (the (Cmid, 1, KH, KW) weight viewed)   pw (O, Cmid)   bias (O,)
    y (B, O, OH, OW); all C-contiguous.

Cost
    B·OH·OW·Cmid·(KH·KW + O) multiply-adds.
    Minimum traffic: x read once, y written once (+ the small weights). The two-pass form also writes
    d (B·Cmid·OH·OW elements) and reads it back: for a MobileNetV2 block (Cmid = 144, O = 24) that is
    2 × 6 times the bytes of y, more than all the other traffic together.

Parallel
    v1: one task per depthwise row (b, c, oh), then one task per output row (b, o, oh).
    v2: one task per tile (b, oh, ow-chunk) computing all O output channels of that tile.

Versions
    v1 ``separable_two_pass``  the formula in two passes, as torch runs it: the depthwise result of the
                               whole batch is written to a full tensor d, then the pointwise pass reads
                               it back, one multiply-add per load.
    v2 ``separable_fused``     one pass. For a tile of output pixels (a chunk of one output row) the
                               depthwise result of all Cmid channels, D[c, n], is computed into a buffer
                               of Cmid·N values (≈ 32 KB for 144 channels × 56 pixels, so it stays in
                               L1/L2), and the pointwise product y_tile = bias + pw · D is taken from
                               there by the register-blocked ``tile_matmul`` (kernels/_cpu_gemm.py).
                               Why this saves memory traffic: d never exists as a full tensor, so its
                               B·Cmid·OH·OW elements are neither written to DRAM nor read back; what
                               reaches memory is x (read once, its rows reused from cache by the KH tiles
                               that need them) and y (written once). Both stages of a tile run while
                               the tile's data is hot in cache.
                               The depthwise taps run along n (contiguous, vectorised); the GEMM wants
                               the reduced index c contiguous, so D is transposed into the patch P[n, c]
                               (N·Cmid copies, small next to the N·Cmid·(KH·KW + O) multiply-adds).
    ``separable`` picks v2.

Caveats
    Accumulation is in the input dtype (like torch's CPU kernels); v2 sums in SIMD partial sums, so the
    versions agree to rounding only.
"""
import numba
import numpy as np
from numba import prange

from .._cpu_gemm import FASTMATH, MR, NR, round_up, tile_matmul
from .._index import valid_outputs

valid_outputs_jit = numba.njit(valid_outputs)

MAX_TILE_W = 64     # output pixels per v2 tile; a row wider than this is split into equal chunks


@numba.njit(inline="always")
def depthwise_row(x_row, weight, y_row, out_lo, out_hi, stride, shift, in_w, y_offset):
    """y_row[ow − y_offset] += weight · x_row[ow·stride + shift] for the ow in [out_lo, out_hi) whose
    input column lies inside the row (padding columns are skipped, not tested per element)."""
    lo, hi = valid_outputs_jit(in_w, out_hi, stride, shift)
    for ow in range(max(lo, out_lo), hi):
        y_row[ow - y_offset] += weight * x_row[ow * stride + shift]


# ----------------------------------------------------------------------------------------------------
# v1: depthwise into a full tensor, then pointwise — the formula, one stage at a time
# ----------------------------------------------------------------------------------------------------
@numba.njit(parallel=True, cache=True)
def separable_two_pass(x, w, pw, bias, y, sh, sw, ph, pwd, dh, dw):
    B, C, H, W = x.shape
    Cmid, KH, KW = w.shape
    _, O, OH, OW = y.shape
    m = Cmid // C
    d = np.zeros((B, Cmid, OH, OW), dtype=x.dtype)
    # pass 1: d[b, c, oh, :] = Σ_{kh, kw} w[c, kh, kw] · x[b, c // m, ih, iw]
    for row in prange(B * Cmid * OH):
        oh = row % OH
        c = row // OH % Cmid
        b = row // (OH * Cmid)
        for ow in range(OW):
            acc = 0.0
            for kh in range(KH):
                ih = oh * sh - ph + kh * dh
                for kw in range(KW):
                    iw = ow * sw - pwd + kw * dw
                    if 0 <= ih < H and 0 <= iw < W:
                        acc += w[c, kh, kw] * x[b, c // m, ih, iw]
            d[b, c, oh, ow] = acc
    # pass 2: y[b, o, oh, :] = bias[o] + Σ_c pw[o, c] · d[b, c, oh, :]
    for row in prange(B * O * OH):
        oh = row % OH
        o = row // OH % O
        b = row // (OH * O)
        for ow in range(OW):
            acc = bias[o]
            for c in range(Cmid):
                acc += pw[o, c] * d[b, c, oh, ow]
            y[b, o, oh, ow] = acc


# ----------------------------------------------------------------------------------------------------
# v2: fused — the depthwise tile stays in cache and feeds the pointwise GEMM directly
# ----------------------------------------------------------------------------------------------------
@numba.njit(parallel=True, fastmath=FASTMATH, cache=True)
def separable_fused(x, w, A, bias, y, sh, sw, ph, pwd, dh, dw, tile_w):
    """A is pw padded with zero rows to a multiple of MR."""
    B, C, H, W = x.shape
    Cmid, KH, KW = w.shape
    _, O, OH, OW = y.shape
    m = Cmid // C
    n_chunks = (OW + tile_w - 1) // tile_w
    for tile in prange(B * OH * n_chunks):
        chunk = tile % n_chunks
        oh = tile // n_chunks % OH
        b = tile // (n_chunks * OH)
        ow0 = chunk * tile_w
        N = min(tile_w, OW - ow0)

        # 1. depthwise of the tile: D[c, n] = Σ_taps w[c, kh, kw] · x[b, c // m, ih, (ow0 + n)·sw + shift]
        D = np.zeros((Cmid, N), dtype=x.dtype)
        for c in range(Cmid):
            for kh in range(KH):
                ih = oh * sh - ph + kh * dh
                if ih < 0 or ih >= H:
                    continue
                x_row = x[b, c // m, ih]
                for kw in range(KW):
                    depthwise_row(x_row, w[c, kh, kw], D[c], ow0, ow0 + N, sw, kw * dw - pwd, W, ow0)

        # 2. the patch P[n, c] = D[c, n] (c contiguous for the GEMM), rows padded to NR with zeros
        P = np.zeros((round_up(N, NR), Cmid), dtype=x.dtype)
        for c in range(Cmid):
            for n in range(N):
                P[n, c] = D[c, n]

        # 3. pointwise on the tile: T[o, n] = bias[o] + Σ_c A[o, c] · P[n, c]
        T = np.empty((A.shape[0], P.shape[0]), dtype=x.dtype)
        for o in range(A.shape[0]):
            T[o, :] = bias[o] if o < O else 0.0
        tile_matmul(A, P, T)

        # 4. the only write to memory: the real rows and columns of the output tile
        for o in range(O):
            for n in range(N):
                y[b, o, oh, ow0 + n] = T[o, n]


# ----------------------------------------------------------------------------------------------------
# The wrapper fastconv.run calls
# ----------------------------------------------------------------------------------------------------
def tile_width(out_w):
    """Equal chunks of at most MAX_TILE_W pixels (a 56-wide row is one tile, not 48 + 8)."""
    chunks = (out_w + MAX_TILE_W - 1) // MAX_TILE_W
    return (out_w + chunks - 1) // chunks


def separable(x, w, pointwise, bias=None, *, stride, padding, dilation, out_size, version="auto"):
    """y = conv2d(conv2d(x, w, groups=C), pointwise, bias); version "two_pass" (v1), "fused" (v2), "auto"."""
    B = x.shape[0]
    Cmid = w.shape[0]
    O = pointwise.shape[0]
    w3 = w.reshape(Cmid, w.shape[2], w.shape[3])
    pw = pointwise.reshape(O, Cmid)
    y = np.empty((B, O) + tuple(out_size), dtype=x.dtype)
    bias = np.zeros(O, dtype=x.dtype) if bias is None else bias
    geometry = (*stride, *padding, *dilation)
    if version in ("auto", "fused"):
        A = np.zeros((round_up(O, MR), Cmid), dtype=x.dtype)
        A[:O] = pw
        separable_fused(x, w3, A, bias, y, *geometry, tile_width(out_size[1]))
    elif version == "two_pass":
        separable_two_pass(x, w3, pw, bias, y, *geometry)
    else:
        raise ValueError(f"version must be 'auto', 'two_pass' or 'fused', got {version!r}")
    return y


VERSIONS = ("two_pass", "fused")
