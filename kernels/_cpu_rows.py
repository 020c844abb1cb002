"""Row-band helpers the CPU kernels share: padded input rows (and the phase planes of a strided band),
blocked transposes, the channels-last im2col patch of a band of output rows, and the tile product.

Math
    fill_padded_rows:    xp[i, pad_w + j] = x_c[row0 + i, j], zero elsewhere in xp: a band's input rows.
    fill_phase_planes:   xp[ah, aw, i, t] = x_c[(row0 + i)·sh + ah, (t − pad_w)·sw + aw] (zero outside x_c):
                         the same for a stride (sh, sw), one plane per phase.
    transpose_into:      P[n, k] = PT[k, n].
    channels_last_patch: P[r·N + n, (u·KW + v)·C + c] = x_b[c, row0 + r + u, n − pad_w + v]
                         (zero outside x_b), for r < R rows and n < N columns of a stride-1 filter.
    tile_product:        T[o, j] = bias[o] + Σ_kk A[o, kk] · P[j, kk]  (from kernels/_cpu_gemm.py).
Shapes
    x_b (C, H, W)   P (R·N rounded up to NR, KH·KW·C)   A (O rounded up to MR, KH·KW·C)   bias (O,)
Cost
    channels_last_patch: C·(R + KH − 1)·W values transposed, then R·N·KH contiguous copies of KW·C
    values; tile_product: 2·O·R·N·K FLOPs (the arithmetic the patch feeds).
Parallel
    None: they run inside a caller's ``prange`` task, on that task's private buffers.
Versions
    One each: the fast paths of the kernels that use them (their plain versions are formula loops).
    Why a channels-last patch: ``tile_matmul`` wants each pixel's K patch values contiguous, while an
    NCHW image has each channel's pixels contiguous. Writing the patch element by element (a stride-K
    scatter, with Numba's negative-index test per element) cost more than the product itself; here
    the transposition happens once per input row (C·W values), and the KW·C values of a kernel row
    are then one contiguous slice per pixel.
Caveats
    channels_last_patch: stride 1 and dilation 1 only (the factorized kinds that use it have none).
    P's padding rows are zero, so ``tile_matmul``'s 4×3 blocks need no remainder code.
"""
import numba
import numpy as np

from ._cpu_gemm import FASTMATH, NR, round_up, tile_product


@numba.njit(fastmath=FASTMATH, cache=True)
def transpose_into(PT, P):
    """P[n, k] = PT[k, n] for n < PT.shape[1] (P may have more, padding, rows).

    Speed trick (4× over a 16×16-blocked element loop, measured): eight rows of PT are read side by
    side and written as eight neighbouring values of a row of P, all at constant offsets from slices
    indexed from 0, so the loop carries no per-element index arithmetic or negative-index tests."""
    K, N = PT.shape
    k0 = 0
    while k0 + 8 <= K:
        r0, r1, r2, r3 = PT[k0], PT[k0 + 1], PT[k0 + 2], PT[k0 + 3]
        r4, r5, r6, r7 = PT[k0 + 4], PT[k0 + 5], PT[k0 + 6], PT[k0 + 7]
        for n in range(N):
            p = P[n, k0:]
            p[0], p[1], p[2], p[3] = r0[n], r1[n], r2[n], r3[n]
            p[4], p[5], p[6], p[7] = r4[n], r5[n], r6[n], r7[n]
        k0 += 8
    for k in range(k0, K):
        row = PT[k]
        for n in range(N):
            P[n, k] = row[n]


@numba.njit(fastmath=FASTMATH, cache=True)
def fill_padded_rows(x_c, xp, row0, pad_w):
    """xp[i, pad_w : pad_w + W] = x_c[row0 + i] for the rows inside x_c, and zero everywhere else in xp
    (rows outside x_c, the pad_w columns before and the columns after): a zero-padded copy of the input
    rows a band of outputs reads, so the kernels' tap loops need no bounds tests.  Needs
    pad_w + W ≤ xp.shape[1].
    Speed: 1-D views and a copy loop from 0 (vectorised); a 2-D slice assignment into a view of xp
    ran as a generic strided loop, 2.5× slower for the whole separable kernel.  Only the padding is
    zeroed, not all of xp first (zeroing all of conv2d v6's band cost ~4% of the ResNet layer)."""
    H, W = x_c.shape
    for i in range(xp.shape[0]):
        row = xp[i]
        if 0 <= row0 + i < H:
            row[:pad_w] = 0
            row[pad_w + W:] = 0
            src, dst = x_c[row0 + i], row[pad_w:pad_w + W]
            for j in range(W):
                dst[j] = src[j]
        else:
            row[:] = 0


@numba.njit(fastmath=FASTMATH, cache=True)
def fill_phase_planes(x_c, xp, row0, pad_w):
    """xp[ah, aw, i, t] = x_c[(row0 + i)·sh + ah, (t − pad_w)·sw + aw] where that is inside x_c, zero
    elsewhere, for the sh × sw phase planes of a stride (sh, sw) = xp.shape[:2]: the zero-padded input
    rows of a strided band, each phase plane read by its taps at stride 1 (stride 1: fill_padded_rows).
    Each row of x_c is read once and dealt to its sw column phases.
    Speed: at sw = 2 both phases in one loop, which LLVM vectorises with shuffles (a stride known only at
    run time keeps the loop scalar): the copy was 85% of MobileNet's strided depthwise layers, now half.
    Each destination row is a 1-D slice of xp flattened, not a slice of the 4-D xp (which Numba types as
    possibly non-contiguous): the whole fill 1.6× faster on 28² … 112² planes, measured."""
    sh, sw, R, Wp = xp.shape
    H, W = x_c.shape
    if sh == 1 and sw == 1:
        fill_padded_rows(x_c, xp[0, 0], row0, pad_w)
        return
    flat = xp.reshape(-1)                       # phase plane (ah, aw) at (ah·sw + aw)·R·Wp
    flat[:] = 0
    n = min(Wp - pad_w, (W + sw - 1) // sw)     # phase columns from pad_w on that hold x's columns
    for ah in range(sh):
        for i in range(R):
            ih = (row0 + i) * sh + ah
            if not 0 <= ih < H:
                continue
            src = x_c[ih]
            row = (ah * sw * R + i) * Wp + pad_w    # row i of phase plane (ah, 0), from column pad_w
            if sw == 2:
                m = min(W // 2, n)
                d0, d1 = flat[row:row + m], flat[row + R * Wp:row + R * Wp + m]
                for j in range(m):
                    d0[j] = src[2 * j]
                    d1[j] = src[2 * j + 1]
                if W % 2 and W // 2 < n:
                    flat[row + W // 2] = src[W - 1]
            else:
                for aw in range(min(sw, W)):
                    dst = flat[row + aw * R * Wp:row + aw * R * Wp + n]
                    for j in range(min((W - 1 - aw) // sw + 1, n)):
                        dst[j] = src[j * sw + aw]


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


@numba.njit(fastmath=FASTMATH, cache=True)
def channels_last_patch(x_b, row0, R, OW, KH, KW, pad_w):
    """The im2col patch of R output rows of a stride-1 KH×KW filter, taps ordered (u, v, c):
    P[r·OW + n, (u·KW + v)·C + c] = x_b[c, row0 + r + u, n − pad_w + v] (zero outside x_b).

    The band's input rows are first transposed once into a zero-padded channels-last buffer
    xt[i, col, c]; then the KW·C values of kernel row u for pixel n are ONE contiguous slice of it,
    so each pixel's patch row is KH slice copies (vectorised) instead of C·KH·KW scalar writes."""
    C, H, W = x_b.shape
    rows, XPW = R + KH - 1, OW + KW - 1
    xt = np.zeros((rows, XPW, C), dtype=x_b.dtype)
    for i in range(rows):
        if 0 <= row0 + i < H:
            transpose_into(x_b[:, row0 + i, :], xt[i, pad_w:pad_w + W])
    flat = xt.reshape(rows, XPW * C)
    K = KH * KW * C
    P = np.zeros((round_up(R * OW, NR), K), dtype=x_b.dtype)
    for r in range(R):
        for n in range(OW):
            for u in range(KH):
                P[r * OW + n, u * KW * C:(u + 1) * KW * C] = flat[r + u, n * C:(n + KW) * C]
    return P
