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
    v2: one task per (b, j, band of output rows): all Og filters of group j on those rows.

Versions
    v1 ``shuffled_direct``  the formula, loop for loop, for each shuffled output channel q: its group
                            j = q mod G and filter k = q // G.
    v2 ``shuffled_im2col``  per band of whole output rows, copy the Cg·KH·KW values each output
                            pixel's taps read into a patch P[n, kk] (im2col of that band only), then
                            T = bias + A_j · Pᵀ by the register-blocked ``tile_matmul`` (A_j: group j's
                            filters as rows); the band's rows are written to the shuffled channels
                            k·G + j.  Each patch value is reused Og times from registers/cache, each
                            weight N times. The patch is built transposed (one slice copy per tap and
                            row, from a zero-padded copy of the band's input rows: no bounds tests,
                            vectorised) and then transposed in blocks — writing P directly is a
                            stride-K scatter with a per-element index test, which was 5× the GEMM.
                            A 1×1 stride-1 unpadded filter (ShuffleNet's) needs no copy at all: the
                            band of each channel is one contiguous block of x, transposed from there.
    ``shuffled_grouped`` picks v2.

Caveats
    Accumulation in the input dtype; v2 sums in SIMD partial sums (agrees with v1 to rounding).
"""
import numba
import numpy as np
from numba import prange

from .._cpu_gemm import FASTMATH, MR, NR, round_up, tile_product
from .._cpu_rows import band_height, fill_padded_rows, transpose_into

BAND_PIXELS = 256   # v2: output pixels per task (whole rows): the patch (pixels × K) stays in L2


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
@numba.njit(fastmath=FASTMATH, cache=True)
def im2col_band(x_g, P, ih0, R, OW, KH, KW, sh, sw, pw, dh, dw, XPW):
    """P[r·OW + ow, (c·KH + kh)·KW + kw] = x_g[c, ih0 + (r·sh + kh·dh), ow·sw − pw + kw·dw] (zero outside)."""
    Cg = x_g.shape[0]
    K, N = Cg * KH * KW, R * OW
    rows = (R - 1) * sh + (KH - 1) * dh + 1
    xp = np.zeros((rows, XPW), dtype=x_g.dtype)
    PT = np.empty((K, N), dtype=x_g.dtype)
    for c in range(Cg):
        fill_padded_rows(x_g[c], xp, ih0, pw)
        for kh in range(KH):
            for kw in range(KW):
                kk = (c * KH + kh) * KW + kw
                for r in range(R):
                    if sw == 1:
                        PT[kk, r * OW:(r + 1) * OW] = xp[r * sh + kh * dh, kw * dw:kw * dw + OW]
                    else:
                        PT[kk, r * OW:(r + 1) * OW] = xp[r * sh + kh * dh, kw * dw:kw * dw + (OW - 1) * sw + 1:sw]
    transpose_into(PT, P)


@numba.njit(parallel=True, fastmath=FASTMATH, cache=True)
def shuffled_im2col(x, x_flat, A, bias, y, KH, KW, sh, sw, ph, pw, dh, dw, band, pointwise):
    """A: the weight as (G, Og rounded up to MR, Cg·KH·KW); x_flat: x viewed as (B, C, H·W). A task owns
    `band` output rows of one image and one group (several short rows per task keep the product's N
    large on small maps)."""
    B, C, H, W = x.shape
    G, _, K = A.shape
    _, O, OH, OW = y.shape
    Cg, Og = C // G, O // G
    n_bands = (OH + band - 1) // band
    XPW = max(W + pw, (OW - 1) * sw + (KW - 1) * dw + 1)   # padded row: every tap of every output inside
    for task in prange(B * G * n_bands):
        oh0 = task % n_bands * band
        j = task // n_bands % G
        b = task // (n_bands * G)
        R = min(band, OH - oh0)
        N = R * OW

        # 1. the patch, built transposed: PT[kk, r·OW + ow] = x[b, j·Cg + c, ih, iw] with
        #    kk = (c·KH + kh)·KW + kw (w's order). Per channel, the band's input rows go into a
        #    zero-padded buffer, then every (tap, row) is one contiguous (or strided) slice copy.
        P = np.zeros((round_up(N, NR), K), dtype=x.dtype)
        if pointwise:
            # 1×1, stride 1, no padding (ShuffleNet's grouped 1×1): the band of each channel is already
            # a contiguous block PT[c, n] of x; transpose it straight from there
            transpose_into(x_flat[b, j * Cg:(j + 1) * Cg, oh0 * OW:oh0 * OW + N], P)
        else:
            im2col_band(x[b, j * Cg:(j + 1) * Cg], P, oh0 * sh - ph, R, OW, KH, KW, sh, sw, pw, dh, dw, XPW)

        # 2. T[k, n] = bias[j·Og + k] + Σ_kk A[j, k, kk] · P[n, kk]
        T = tile_product(A[j], P, bias[j * Og:(j + 1) * Og], Og)

        # 3. the shuffle, folded into the write: filter k of group j goes to channel k·G + j
        for k in range(Og):
            for r in range(R):
                y[b, k * G + j, oh0 + r, :] = T[k, r * OW:(r + 1) * OW]


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
        band = max(1, min(BAND_PIXELS // out_size[1], band_height(B * groups, out_size[0])))
        Og = O // groups
        A = np.zeros((groups, round_up(Og, MR), w[0].size), dtype=x.dtype)
        A[:, :Og] = w.reshape(groups, Og, -1)
        pointwise = w.shape[2:] == (1, 1) and tuple(stride) == (1, 1) and tuple(padding) == (0, 0)
        shuffled_im2col(x, x.reshape(B, x.shape[1], -1), A, bias, y, w.shape[2], w.shape[3], *geometry, band,
                        pointwise)
    elif version == "direct":
        shuffled_direct(x, w, bias, y, groups, *geometry)
    else:
        raise ValueError(f"version must be 'auto', 'direct' or 'im2col', got {version!r}")
    return y


VERSIONS = ("direct", "im2col")
