"""Row-band im2col and tile product: the two steps the fused factorized CPU kernels repeat per stage.

Math
    fill_padded_rows: xp[i, pad_w + j] = x_c[row0 + i, j] (zero outside x_c): a band's input rows.
    transpose_into:  P[n, k] = PT[k, n].
    row_patch:    P[r·N + n, (c·TH + u)·TW + v] = src[c, row0 + r + u, n − pad_w + v]
                  (zero where the row or column is outside src), for r < R rows, n < N columns.
                  With TH = 1, TW = k it is the patch of a 1×k row filter; with TH = k, TW = 1 that of a
                  k×1 column filter; with TH = TW = 1 that of a 1×1 (lateral/pointwise) filter.
    tile_product: T[o, j] = bias[o] + Σ_kk A[o, kk] · P[j, kk]   (a 1×k, k×1 or 1×1 filter on a band)
Shapes
    src (C, Hs, Ws)   P (R·N rounded up to NR, C·TH·TW)   A (O rounded up to MR, C·TH·TW)   bias (O,)
Cost
    row_patch copies R·N·C·TH·TW values; tile_product does 2·O·R·N·C·TH·TW FLOPs.
    conv_rows:    y = conv2d(x, A as (O, C, KH, KW), bias, padding=(ph, pw)), stride 1, by bands of rows.
Parallel
    conv_rows: one task per (image, band of output rows). The others: none, they are called inside a
    caller's ``prange`` task, on that task's private buffers.
Versions
    one: the fast path of the kernels that use it (their plain versions are written as loops).
Caveats
    stride 1 and dilation 1 only (the factorized kinds that use it have none); P's padding rows are zero
    so ``tile_matmul``'s 4×3 blocks need no remainder code.
"""
import numba
import numpy as np
from numba import prange

from ._cpu_gemm import FASTMATH, NR, round_up, tile_matmul


@numba.njit(fastmath=FASTMATH, cache=True)
def transpose_into(PT, P):
    """P[n, k] = PT[k, n], in 16×16 blocks so that reads and writes both stay within a few cache lines."""
    K, N = PT.shape
    for k0 in range(0, K, 16):
        for n0 in range(0, N, 16):
            for n in range(n0, min(n0 + 16, N)):
                for k in range(k0, min(k0 + 16, K)):
                    P[n, k] = PT[k, n]


@numba.njit(fastmath=FASTMATH, cache=True)
def row_patch(src, row0, R, N, TH, TW, pad_w):
    """The im2col patch of R output rows × N columns of a TH×TW filter on src (see the module).

    Built transposed first, PT[kk, r·N + n], where each (tap, row) is one contiguous slice copy
    (vectorised; Numba's per-element negative-index test never runs), then transposed in blocks:
    cheaper than writing P element by element with a stride of K."""
    C, Hs, Ws = src.shape
    K = C * TH * TW
    PT = np.zeros((K, R * N), dtype=src.dtype)
    for c in range(C):
        for u in range(TH):
            for v in range(TW):
                kk = (c * TH + u) * TW + v
                # only the columns whose input column n − pad_w + v is inside the row
                lo, hi = max(0, pad_w - v), min(N, Ws + pad_w - v)
                for r in range(R):
                    row = row0 + r + u
                    if 0 <= row < Hs and hi > lo:
                        PT[kk, r * N + lo:r * N + hi] = src[c, row, lo - pad_w + v:hi - pad_w + v]
    P = np.zeros((round_up(R * N, NR), K), dtype=src.dtype)
    transpose_into(PT, P)
    return P


@numba.njit(fastmath=FASTMATH, cache=True)
def fill_padded_rows(x_c, xp, row0, pad_w):
    """xp[i, pad_w : pad_w + W] = x_c[row0 + i] for the rows inside x_c: a zero-padded copy of the
    input rows a band of outputs reads (xp starts zeroed; rows and columns outside stay zero), so the
    kernels' tap loops need no bounds tests."""
    H, W = x_c.shape
    for i in range(xp.shape[0]):
        if 0 <= row0 + i < H:
            xp[i, pad_w:pad_w + W] = x_c[row0 + i]


@numba.njit(fastmath=FASTMATH, cache=True)
def tile_product(A, P, bias, O):
    """T = bias + A·Pᵀ by the register-blocked tile_matmul; rows ≥ O (zero padding of A) start at 0."""
    T = np.zeros((A.shape[0], P.shape[0]), dtype=P.dtype)
    for o in range(O):
        T[o, :] = bias[o]
    tile_matmul(A, P, T)
    return T


def padded_rows(matrix, multiple_of):
    """A (O, K) matrix with zero rows appended up to a multiple (the MR of tile_matmul)."""
    O = matrix.shape[0]
    out = np.zeros((round_up(O, multiple_of), matrix.shape[1]), dtype=matrix.dtype)
    out[:O] = matrix
    return out


def band_height(batch, out_h):
    """Rows per band for a kernel parallel over (image, band): as tall as possible while every thread
    gets at least two tasks (each band recomputes the halo rows its filter needs above and below)."""
    n_bands = max(1, -(-2 * numba.get_num_threads() // batch))
    return -(-out_h // min(n_bands, out_h))


@numba.njit(parallel=True, fastmath=FASTMATH, cache=True)
def conv_rows(x, A, bias, y, KH, KW, ph, pw, band):
    """A stride-1 dense conv2d by bands of output rows: for each (image, band), T = bias + A·Pᵀ with
    P = row_patch(x[b], band, KH×KW) and A the weight as (O rounded up to MR, C·KH·KW):
    y[b, o, oh, ow] = bias[o] + Σ_{c, u, v} A[o, (c·KH + u)·KW + v] · x[b, c, oh − ph + u, ow − pw + v]."""
    B = x.shape[0]
    _, O, OH, OW = y.shape
    n_bands = (OH + band - 1) // band
    for task in prange(B * n_bands):
        b = task // n_bands
        oh0 = task % n_bands * band
        R = min(band, OH - oh0)
        T = tile_product(A, row_patch(x[b], oh0 - ph, R, OW, KH, KW, pw), bias, O)
        for o in range(O):
            for r in range(R):
                y[b, o, oh0 + r, :] = T[o, r * OW:(r + 1) * OW]
