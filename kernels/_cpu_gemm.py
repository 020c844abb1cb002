"""The register-blocked tile product that the fast CPU kernels share: C += A · Pᵀ.

Math
    C[i, j] += Σ_{k < K} A[i, k] · P[j, k]
    A (M, K): weights, one row per output channel.   P (N, K): an "im2col" patch, one row per output
    pixel, holding the K input values that pixel's taps read.   C (M, N): the output tile.
    ``tile_product(A, P, bias, O)`` is the form most kernels call: a fresh tile T = bias + A·Pᵀ.
Cost
    2·M·N·K FLOPs; every element of A and P is loaded once per 3 (resp. 4) uses from registers.
Parallel
    none here: each caller runs this on its own tile inside a ``prange`` loop.
Versions
    v1  the three nested loops above (``tile_matmul_plain``), one product per load pair.
    v2  ``tile_matmul``: a 4×3 block of C is kept in 12 scalar accumulators while k runs, so each step
        loads 4 values of A and 3 of P (7 loads) for 12 multiply-adds; with ``reassoc`` fast-math
        LLVM splits each accumulator into SIMD partial sums over k (16 float32 lanes with AVX-512),
        which is what makes the loop run at a large fraction of the FMA peak.  Measured here: ~210
        GFLOP/s on 2 cores for a ResNet 3×3 tile, vs ~60 for a 2×2 block without reassociation.
    v3  ``rows_product``, the same product in the other orientation ("axpy" or outer-product form), for
        operands laid out as rows of pixels (NCHW, no patch): Y[o, :] = bias[o] + Σ_k A[o, k]·X[k, :].
        A 4×8 block (4 output rows, 8 input rows) is one pass over the pixels: each step loads 8 input
        vectors and 4 output vectors, does 32 multiply-adds (the 32 weights sit in registers) and stores
        4 output vectors.  No horizontal sums at the end, so short K costs nothing extra: measured on a
        1×1 convolution with K = 64, 210 GFLOP/s on 2 cores vs 58 for v2 (whose 12 accumulators each end
        in a horizontal sum over 16 lanes, and whose patch must be made channels-last first).
Caveats
    v2: M must be a multiple of 4 and N of 3: callers pad A with zero rows and P with zero rows (the padded
    outputs are computed and then dropped), which keeps this loop free of remainder cases.
    Summation order differs from the plain loop (partial sums), so results agree to rounding only.
    v3: any M and K (a row or a channel left over by the 4×8 blocks takes a one-row / one-channel loop).
"""
import numba
import numpy as np

from . import _numba_cache  # noqa: F401  (every CPU kernel module imports this one first: from here on,
                            # the kernels' on-disk cache is stamped with the whole package's source)

MR, NR = 4, 3           # the register block: 4 rows of A (output channels) × 3 rows of P (pixels)

# reassoc: lets LLVM reorder the k-sum into SIMD partial sums; contract: fused multiply-add.
# No 'nnan'/'ninf': NaN and Inf must propagate exactly as they do in torch.
FASTMATH = {"reassoc", "contract"}


@numba.njit
def round_up(n, multiple):
    return (n + multiple - 1) // multiple * multiple


@numba.njit(cache=True)
def tile_matmul_plain(A, P, C):
    """v1: C[i, j] += Σ_k A[i, k]·P[j, k], exactly as written."""
    for i in range(C.shape[0]):
        for j in range(C.shape[1]):
            for k in range(A.shape[1]):
                C[i, j] += A[i, k] * P[j, k]


@numba.njit(fastmath=FASTMATH, cache=True)
def tile_matmul(A, P, C):
    """v2: the same sum, 4 rows of A × 3 rows of P at a time, accumulators in registers."""
    M, N, K = C.shape[0], C.shape[1], A.shape[1]
    for i in range(0, M, MR):
        a0, a1, a2, a3 = A[i], A[i + 1], A[i + 2], A[i + 3]
        for j in range(0, N, NR):
            p0, p1, p2 = P[j], P[j + 1], P[j + 2]
            c00, c01, c02 = C[i, j], C[i, j + 1], C[i, j + 2]
            c10, c11, c12 = C[i + 1, j], C[i + 1, j + 1], C[i + 1, j + 2]
            c20, c21, c22 = C[i + 2, j], C[i + 2, j + 1], C[i + 2, j + 2]
            c30, c31, c32 = C[i + 3, j], C[i + 3, j + 1], C[i + 3, j + 2]
            for k in range(K):
                x0, x1, x2 = p0[k], p1[k], p2[k]
                c00 += a0[k] * x0
                c01 += a0[k] * x1
                c02 += a0[k] * x2
                c10 += a1[k] * x0
                c11 += a1[k] * x1
                c12 += a1[k] * x2
                c20 += a2[k] * x0
                c21 += a2[k] * x1
                c22 += a2[k] * x2
                c30 += a3[k] * x0
                c31 += a3[k] * x1
                c32 += a3[k] * x2
            C[i, j], C[i, j + 1], C[i, j + 2] = c00, c01, c02
            C[i + 1, j], C[i + 1, j + 1], C[i + 1, j + 2] = c10, c11, c12
            C[i + 2, j], C[i + 2, j + 1], C[i + 2, j + 2] = c20, c21, c22
            C[i + 3, j], C[i + 3, j + 1], C[i + 3, j + 2] = c30, c31, c32


@numba.njit(fastmath=FASTMATH, cache=True)
def tile_product(A, P, bias, O):
    """T = bias + A·Pᵀ, a fresh tile: rows o < O start at bias[o], the zero rows padding A up to a
    multiple of MR start at 0; then the register-blocked ``tile_matmul``."""
    T = np.zeros((A.shape[0], P.shape[0]), dtype=P.dtype)
    for o in range(O):
        T[o, :] = bias[o]
    tile_matmul(A, P, T)
    return T


@numba.njit(fastmath=FASTMATH, cache=True)
def rows_product(A, X, jx, bias, Y, jy, n):
    """v3: Y[o, jy + j] = bias[o] + Σ_k A[o, k]·X[k, jx + j] for o < Y.shape[0], j < n; A (≥ O rows, K),
    X (K, ≥ jx + n).  4 rows of Y × 8 rows of X at a time.  X and Y must be C-contiguous whole arrays
    (their rows are sliced here): a row of a 2-D view with unknown strides does not vectorise
    (measured 8× slower)."""
    O, K = Y.shape[0], X.shape[0]
    O4, K8 = O - O % 4, K - K % 8
    for o in range(0, O4, 4):
        y0, y1, y2, y3 = Y[o, jy:jy + n], Y[o + 1, jy:jy + n], Y[o + 2, jy:jy + n], Y[o + 3, jy:jy + n]
        for j in range(n):
            y0[j], y1[j], y2[j], y3[j] = bias[o], bias[o + 1], bias[o + 2], bias[o + 3]
        for k in range(0, K8, 8):
            x0, x1, x2, x3 = X[k, jx:jx + n], X[k + 1, jx:jx + n], X[k + 2, jx:jx + n], X[k + 3, jx:jx + n]
            x4, x5 = X[k + 4, jx:jx + n], X[k + 5, jx:jx + n]
            x6, x7 = X[k + 6, jx:jx + n], X[k + 7, jx:jx + n]
            # the 32 weights of the block as scalars: LLVM keeps them in registers for the whole j loop
            a00, a01, a02, a03 = A[o, k], A[o, k + 1], A[o, k + 2], A[o, k + 3]
            a04, a05, a06, a07 = A[o, k + 4], A[o, k + 5], A[o, k + 6], A[o, k + 7]
            a10, a11, a12, a13 = A[o + 1, k], A[o + 1, k + 1], A[o + 1, k + 2], A[o + 1, k + 3]
            a14, a15, a16, a17 = A[o + 1, k + 4], A[o + 1, k + 5], A[o + 1, k + 6], A[o + 1, k + 7]
            a20, a21, a22, a23 = A[o + 2, k], A[o + 2, k + 1], A[o + 2, k + 2], A[o + 2, k + 3]
            a24, a25, a26, a27 = A[o + 2, k + 4], A[o + 2, k + 5], A[o + 2, k + 6], A[o + 2, k + 7]
            a30, a31, a32, a33 = A[o + 3, k], A[o + 3, k + 1], A[o + 3, k + 2], A[o + 3, k + 3]
            a34, a35, a36, a37 = A[o + 3, k + 4], A[o + 3, k + 5], A[o + 3, k + 6], A[o + 3, k + 7]
            for j in range(n):
                v0, v1, v2, v3, v4, v5, v6, v7 = x0[j], x1[j], x2[j], x3[j], x4[j], x5[j], x6[j], x7[j]
                y0[j] += a00 * v0 + a01 * v1 + a02 * v2 + a03 * v3 + a04 * v4 + a05 * v5 + a06 * v6 + a07 * v7
                y1[j] += a10 * v0 + a11 * v1 + a12 * v2 + a13 * v3 + a14 * v4 + a15 * v5 + a16 * v6 + a17 * v7
                y2[j] += a20 * v0 + a21 * v1 + a22 * v2 + a23 * v3 + a24 * v4 + a25 * v5 + a26 * v6 + a27 * v7
                y3[j] += a30 * v0 + a31 * v1 + a32 * v2 + a33 * v3 + a34 * v4 + a35 * v5 + a36 * v6 + a37 * v7
        for k in range(K8, K):                  # input rows left over: one at a time
            xk = X[k, jx:jx + n]
            a0, a1, a2, a3 = A[o, k], A[o + 1, k], A[o + 2, k], A[o + 3, k]
            for j in range(n):
                y0[j] += a0 * xk[j]
                y1[j] += a1 * xk[j]
                y2[j] += a2 * xk[j]
                y3[j] += a3 * xk[j]
    for o in range(O4, O):                      # output rows left over: one at a time
        yo = Y[o, jy:jy + n]
        for j in range(n):
            yo[j] = bias[o]
        for k in range(K):
            xk, a = X[k, jx:jx + n], A[o, k]
            for j in range(n):
                yo[j] += a * xk[j]
