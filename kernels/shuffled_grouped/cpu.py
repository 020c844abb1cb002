"""Grouped convolution + ShuffleNet channel shuffle on the CPU with Numba, the shuffle folded into the
output indexing (no separate pass over the output).

Math
    G groups, Cg = C/G input and Og = O/G output channels per group. The grouped convolution computes
    channel j·Og + k (group j, k-th filter of the group):

    z[b, j·Og + k, oh, ow] = bias[j·Og + k] + Σ_{c<Cg} Σ_{kh, kw} w[j·Og + k, c, kh, kw]
                             · x[b, j·Cg + c, oh·sh − ph + kh·dh, ow·sw − pw + kw·dw]

    and the channel shuffle (torchvision: view (B, G, Og, H, W), transpose(1, 2)) moves it to
    y[b, k·G + j, oh, ow] = z[b, j·Og + k, oh, ow].  The kernels write z's value straight to k·G + j.

Shapes
    x (B, C, H, W)   w (O, Cg, KH, KW)   bias (O,)   y (B, O, OH, OW), all C-contiguous.

Cost
    B·O·OH·OW·Cg·KH·KW multiply-adds. Minimum traffic: x and w read once, y written once; the
    torch composition also writes z and then reads and rewrites it for the shuffle (3 extra passes
    over an output-sized tensor).

Parallel
    v1: one task per output row (b, q, oh) of the shuffled output.
    v2: one task per tile (b, j, oh, ow-chunk): all Og filters of group j on a chunk of one row.

Versions
    v1 ``shuffled_direct``  the formula, loop for loop, for each shuffled output channel q: its group
                            j = q mod G and filter k = q // G.
    v2 ``shuffled_im2col``  per tile, copy the Cg·KH·KW values each output pixel's taps read into a
                            patch P[n, kk] (im2col of that tile only), then T = bias + A_j · Pᵀ by the
                            register-blocked ``tile_matmul`` (A_j: group j's filters as rows); the
                            tile's rows are written to the shuffled channels k·G + j.  Each patch value
                            is reused Og times from registers/cache, each weight N times.
    ``shuffled_grouped`` picks v2.

Caveats
    Accumulation in the input dtype; v2 sums in SIMD partial sums (agrees with v1 to rounding).
"""
import numba
import numpy as np
from numba import prange

from .._cpu_gemm import FASTMATH, MR, NR, round_up, tile_matmul
from .._index import valid_outputs

valid_outputs_jit = numba.njit(valid_outputs)

TILE_PIXELS = 96    # v2 tiles cover whole output rows up to this many pixels (1×1 convs on small maps)


# ----------------------------------------------------------------------------------------------------
# v1: the formula, loop for loop
# ----------------------------------------------------------------------------------------------------
@numba.njit(parallel=True, cache=True)
def shuffled_direct(x, w, bias, y, G, sh, sw, ph, pw, dh, dw):
    B, C, H, W = x.shape
    O, Cg, KH, KW = w.shape
    _, _, OH, OW = y.shape
    Og = O // G
    for row in prange(B * O * OH):
        oh = row % OH
        q = row // OH % O
        b = row // (OH * O)
        # the shuffled channel q = k·G + j holds filter k of group j
        j, k = q % G, q // G
        o = j * Og + k
        for ow in range(OW):
            acc = bias[o]
            for c in range(Cg):
                for kh in range(KH):
                    ih = oh * sh - ph + kh * dh
                    for kw in range(KW):
                        iw = ow * sw - pw + kw * dw
                        if 0 <= ih < H and 0 <= iw < W:
                            acc += w[o, c, kh, kw] * x[b, j * Cg + c, ih, iw]
            y[b, q, oh, ow] = acc


# ----------------------------------------------------------------------------------------------------
# v2: per-tile im2col + register-blocked product, shuffled write
# ----------------------------------------------------------------------------------------------------
@numba.njit(parallel=True, fastmath=FASTMATH, cache=True)
def shuffled_im2col(x, A, bias, y, KH, KW, sh, sw, ph, pw, dh, dw, rows, tile_w):
    """A: the weight as (G, Og rounded up to MR, Cg·KH·KW). A tile is `rows` output rows × `tile_w`
    columns (several short rows per tile keep the GEMM's N large on small feature maps)."""
    B, C, H, W = x.shape
    G, Og_pad, K = A.shape
    _, O, OH, OW = y.shape
    Cg, Og = C // G, O // G
    n_chunks = (OW + tile_w - 1) // tile_w
    n_bands = (OH + rows - 1) // rows
    for tile in prange(B * G * n_bands * n_chunks):
        chunk = tile % n_chunks
        band = tile // n_chunks % n_bands
        j = tile // (n_chunks * n_bands) % G
        b = tile // (n_chunks * n_bands * G)
        ow0, oh0 = chunk * tile_w, band * rows
        N_w, N_h = min(tile_w, OW - ow0), min(rows, OH - oh0)
        N = N_w * N_h

        # 1. the patch: P[r·N_w + n, kk] = x[b, j·Cg + c, ih, iw], kk = (c·KH + kh)·KW + kw (w's order)
        P = np.zeros((round_up(N, NR), K), dtype=x.dtype)
        for r in range(N_h):
            oh = oh0 + r
            for c in range(Cg):
                for kh in range(KH):
                    ih = oh * sh - ph + kh * dh
                    if ih < 0 or ih >= H:
                        continue
                    x_row = x[b, j * Cg + c, ih]
                    for kw in range(KW):
                        kk = (c * KH + kh) * KW + kw
                        shift = kw * dw - pw
                        lo, hi = valid_outputs_jit(W, ow0 + N_w, sw, shift)
                        for ow in range(max(lo, ow0), hi):
                            P[r * N_w + ow - ow0, kk] = x_row[ow * sw + shift]

        # 2. T[k, n] = bias[j·Og + k] + Σ_kk A[j, k, kk] · P[n, kk]
        T = np.zeros((Og_pad, P.shape[0]), dtype=x.dtype)
        for k in range(Og):
            T[k, :] = bias[j * Og + k]
        tile_matmul(A[j], P, T)

        # 3. the shuffle, folded into the write: filter k of group j goes to channel k·G + j
        for k in range(Og):
            q = k * G + j
            for r in range(N_h):
                for n in range(N_w):
                    y[b, q, oh0 + r, ow0 + n] = T[k, r * N_w + n]


# ----------------------------------------------------------------------------------------------------
# The wrapper fastconv.run calls
# ----------------------------------------------------------------------------------------------------
def shuffled_grouped(x, w, bias=None, *, stride, padding, dilation, groups, out_size, version="auto"):
    """y = channel_shuffle(conv2d(x, w, bias, groups=groups), groups); version "direct" (v1),
    "im2col" (v2) or "auto"."""
    B, O = x.shape[0], w.shape[0]
    y = np.empty((B, O) + tuple(out_size), dtype=x.dtype)
    bias = np.zeros(O, dtype=x.dtype) if bias is None else bias
    geometry = (*stride, *padding, *dilation)
    if version in ("auto", "im2col"):
        OH, OW = out_size
        tile_w = min(OW, TILE_PIXELS)
        rows = max(1, TILE_PIXELS // tile_w)
        Og = O // groups
        A = np.zeros((groups, round_up(Og, MR), w[0].size), dtype=x.dtype)
        A[:, :Og] = w.reshape(groups, Og, -1)
        shuffled_im2col(x, A, bias, y, w.shape[2], w.shape[3], *geometry, rows, tile_w)
    elif version == "direct":
        shuffled_direct(x, w, bias, y, groups, *geometry)
    else:
        raise ValueError(f"version must be 'auto', 'direct' or 'im2col', got {version!r}")
    return y


VERSIONS = ("direct", "im2col")
