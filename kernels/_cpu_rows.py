"""Row-band im2col and tile product: the two steps the fused factorized CPU kernels repeat per stage.

Math
    row_patch:    P[r·N + n, (c·TH + u)·TW + v] = src[c, row0 + r + u, n − pad_w + v]
                  (zero where the row or column is outside src), for r < R rows, n < N columns.
                  With TH = 1, TW = k it is the patch of a 1×k row filter; with TH = k, TW = 1 that of a
                  k×1 column filter; with TH = TW = 1 that of a 1×1 (lateral/pointwise) filter.
    tile_product: T[o, j] = bias[o] + Σ_kk A[o, kk] · P[j, kk]   (a 1×k, k×1 or 1×1 filter on a band)
Shapes
    src (C, Hs, Ws)   P (R·N rounded up to NR, C·TH·TW)   A (O rounded up to MR, C·TH·TW)   bias (O,)
Cost
    row_patch copies R·N·C·TH·TW values; tile_product does 2·O·R·N·C·TH·TW FLOPs.
Parallel
    none: called inside a caller's ``prange`` task, on that task's private buffers.
Versions
    one: the fast path of the kernels that use it (their plain versions are written as loops).
Caveats
    stride 1 and dilation 1 only (the factorized kinds that use it have none); P's padding rows are zero
    so ``tile_matmul``'s 4×3 blocks need no remainder code.
"""
import numba
import numpy as np

from ._cpu_gemm import FASTMATH, NR, round_up, tile_matmul


@numba.njit(fastmath=FASTMATH, cache=True)
def row_patch(src, row0, R, N, TH, TW, pad_w):
    """The im2col patch of R output rows × N columns of a TH×TW filter on src (see the module)."""
    C, Hs, Ws = src.shape
    P = np.zeros((round_up(R * N, NR), C * TH * TW), dtype=src.dtype)
    for r in range(R):
        for c in range(C):
            for u in range(TH):
                row = row0 + r + u
                if row < 0 or row >= Hs:
                    continue                        # zero padding rows: P stays zero
                src_row = src[c, row]
                for v in range(TW):
                    kk = (c * TH + u) * TW + v
                    # only the columns whose input column n − pad_w + v is inside the row
                    lo = max(0, pad_w - v)
                    hi = min(N, Ws + pad_w - v)
                    for n in range(lo, hi):
                        P[r * N + n, kk] = src_row[n - pad_w + v]
    return P


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
