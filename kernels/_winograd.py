"""One-dimensional Winograd minimal filtering F(2, r) on the CPU with Numba: an r-tap filter along the slow
axis of a band, two outputs from r + 1 inputs with r + 1 multiplications instead of 2·r (Toom–Cook; Lavin
& Gray 2016, "Fast Algorithms for Convolutional Neural Networks").

Math
    Two outputs of an r-tap correlation from α = r + 1 inputs, y[j] = Σ_{u<r} g[u]·d[j + u] (j < 2):
        y = Aᵀ [(G g) ⊙ (Bᵀ d)]          α multiplications instead of 2·r
    from the α − 1 points a_0 … = 0, 1, −1, 2, −2, ½, −½ (as many as needed) and ∞ (``toom_cook``):
        Aᵀ[j, ξ] = a_ξ^j,            Aᵀ[j, α − 1] = [j = 1]
        G[ξ, u]  = a_ξ^u / Π_{l≠ξ}(a_ξ − a_l),   G[α − 1, u] = [u = r − 1]
        Bᵀ[ξ, ρ] = coefficient of z^ρ in Π_{l≠ξ}(z − a_l);   Bᵀ[α − 1, ρ] = that of Π_l (z − a_l)
    Why: (G g)_ξ is the polynomial g evaluated at a_ξ (scaled by 1 / Π_{l≠ξ}(a_ξ − a_l)) and Σ_i a_ξ^i·h_i is
    h there; their product is g·h at the point, and Bᵀ's transpose interpolates g·h back from the points
    (∞ gives its top coefficient).  Correlation is the transpose of that polynomial product.  r = 3 gives the classic F(2, 3):
        Bᵀ = [[−1, 0, 1, 0], [0, 1, 1, 0], [0, −1, 1, 0], [0, −1, 0, 1]]
        Aᵀ = [[1, 1, 1, 0], [0, 1, −1, 1]]
    Along a band's slow axis: a filter w[o, k, u] (k: the K input rows it sums, e.g. channels) on rows
    S[k, i, :], output rows 2t + j from input rows 2t + ρ (ρ < α), t the tiles:
        U[ξ, o, k]     = Σ_u G[ξ, u]·w[o, k, u]                                (``winograd_filters``)
        V[ξ, k, t, :]  = Σ_ρ Bᵀ[ξ, ρ]·S[k, 2t + ρ, :]                          (``chunk_transform``)
        M[ξ, o, t, :]  = Σ_k U[ξ, o, k]·V[ξ, k, t, :]                   α matrix products (flat_block)
        y[o, 2t + j, :] = bias[o] + Σ_ξ Aᵀ[j, ξ]·M[ξ, o, t, :]                  (``winograd_products``)

Shapes
    S is stored phase-split: its even rows, then its odd rows (Q each), so that input row 2t + ρ is row
    t + ρ // 2 of phase ρ % 2: S_split[k, φ, q, n] = S[k, 2q + φ, n], flat index (k·2Q + φ·Q + q)·L + n
    with rows of L values.  Tile t's position p = t·L + n then reads S_split at (k·2Q + φ·Q + ρ // 2)·L + p:
    one constant offset per term, so every transform is a run of 16-lane vectors over positions.
    U (α, O rounded up to FLAT_MR, K); the tiles cover NT = ⌈R/2⌉·L positions of the R output rows.
    The output goes where the caller says: position n of output row 2t + j at (2t + j)·row_step +
    out_pos[n] (row_step = L and out_pos[n] = n: the input's own layout).

Cost
    Products: α·O·K per tile column instead of 2·r·O·K (F(2, 7): 8 instead of 14, 0.57 of them), plus
    the positions of a last tile row past R (one in 18 for R = 17).
    Transforms: about r·α·K (input) and 2·α·O (output) multiply-adds per tile column, and α·O·K·r once for
    U: a few % of the products from K = 64 on.  Memory: per task, one chunk of V (α·K·48 values, 196 KB
    for K = 128, α = 8) and α blocks of 8 × 48 products; the input is read α times from L1, y written once.

Parallel
    None here: ``winograd_products`` runs inside a caller's ``prange`` task on that task's bands;
    ``winograd_filters`` once per call, before the tasks.

Versions
    Where a direct kernel already runs near the FMA peak (the v6 register block), only fewer
    multiplications make it faster; the transforms are the price.  Speed tricks, each measured on the
    Inception 7×1 stage (128 → 192 channels, 17×17, one thread):
    - V is built one chunk of 3 × 16 positions at a time, for all α, and consumed at once by the α
      products of each 8-channel block: with a whole band's V (α·K·NT, 0.6 MB an image) two threads
      sped up only 1.2× (instead of 1.8×) over one;
    - the transform reads 16 channels' rows for all α before moving on (they stay in L1; reading all
      channels per ξ ran from L2: 0.36 ms → 0.23 ms);
    - the output sums are 6 independent chains (3 vectors × 2 rows): one chain of α dependent
      multiply-adds at a time was latency bound;
    - outputs go to y with masked vector stores (``store_lanes``), one per tile row a vector touches
      (about 2 for 17-wide rows), with each vector's split computed once per chunk, not per channel;
      an output in another layout (a filter along x's rows, run on x transposed, writes its result
      back down the columns) takes scalar stores, 4% of spatial_separable's time on one thread.

Caveats
    Exact in exact arithmetic.  In floating point the transforms add and subtract scaled inputs before
    the products, so the error is larger than the direct sum's: for F(2, 7) in float32 about 10× on one
    7-term sum of unit values (2·10⁻⁵ against 2·10⁻⁶), about 2× on the Inception layer (both of its
    filters by F(2, 7)), whose sums over channels dominate (tests/test_factorized.py checks the bound).
    r ≤ 7: an eighth point (3, or ¼) would raise the error to ~35× the direct sum's.
"""
import functools
from fractions import Fraction

import numba
import numpy as np

from . import _simd as simd
from ._cpu_gemm import FASTMATH
from ._simd import LANES
from .conv.cpu import FLAT_MR, FLAT_N, flat_block

POINTS = (0, 1, -1, 2, -2, Fraction(1, 2), Fraction(-1, 2))    # the finite points, small ones first
MAX_TAPS = len(POINTS)                                        # F(2, r) for r ≤ 7 (α − 1 = r points)
CHANNEL_BLOCK = 16      # input rows whose chunk (16 × α rows × 48 values, 24 KB) stays in L1 for every ξ


def toom_cook(r):
    """(Bᵀ, G, Aᵀ) of F(2, r) in float64, built in exact rational arithmetic (see Math)."""
    if not 2 <= r <= MAX_TAPS:
        raise ValueError(f"F(2, r) is built for 2 ≤ r ≤ {MAX_TAPS} taps, got {r}")
    alpha = r + 1
    a = [Fraction(p) for p in POINTS[:alpha - 1]]

    def monic(roots):
        """Coefficients (constant first) of Π (z − root)."""
        c = [Fraction(1)]
        for root in roots:
            c = [Fraction(0)] + c
            for i in range(len(c) - 1):
                c[i] -= root * c[i + 1]
        return c
    BT = np.zeros((alpha, alpha))
    G = np.zeros((alpha, r))
    AT = np.zeros((2, alpha))
    for xi, point in enumerate(a):
        others = [b for b in a if b != point]
        BT[xi, :alpha - 1] = [float(c) for c in monic(others)]
        scale = Fraction(1)
        for b in others:
            scale *= point - b
        G[xi] = [float(point ** u / scale) for u in range(r)]
        AT[:, xi] = [1.0, float(point)]
    BT[alpha - 1] = [float(c) for c in monic(a)]
    G[alpha - 1, r - 1] = 1.0
    AT[1, alpha - 1] = 1.0
    return BT, G, AT


@functools.lru_cache(maxsize=None)
def transforms(r, dtype):
    """F(2, r)'s matrices as the kernels take them, in ``dtype``: Bᵀ as its non-zero terms (coefs[ξ, k]
    times input row at[ξ, k]; rows with fewer terms are padded with coefficient 0), G and Aᵀ."""
    BT, G, AT = toom_cook(r)
    width = int((BT != 0).sum(axis=1).max())
    coefs = np.zeros((BT.shape[0], width), dtype=dtype)
    at = np.zeros((BT.shape[0], width), dtype=np.int64)
    for xi, row in enumerate(BT):
        rho = np.flatnonzero(row)
        coefs[xi, :rho.size], at[xi, :rho.size] = row[rho], rho
    for m in (coefs, at):
        m.flags.writeable = False
    return coefs, at, G.astype(dtype), AT.astype(dtype)


@numba.njit(fastmath=FASTMATH, cache=True)
def winograd_filters(w, G, O_pad):
    """U[ξ, o, k] = Σ_u G[ξ, u]·w[o, k, u] for w (O, K, r); rows O … O_pad − 1 zero (the register block's
    padding).  Each filter is transposed first (the K values of one tap contiguous), so that every sum is
    a vector loop over k.  α·O·K·r multiply-adds, once per call (0.2% of the Inception layer's work)."""
    O, K, r = w.shape
    U = np.zeros((G.shape[0], O_pad, K), dtype=w.dtype)
    taps = np.empty((r, K), dtype=w.dtype)
    for o in range(O):
        for k in range(K):
            for u in range(r):
                taps[u, k] = w[o, k, u]
        for xi in range(G.shape[0]):
            row = U[xi, o]
            for u in range(r):
                g, tap = G[xi, u], taps[u]
                for k in range(K):
                    row[k] += g * tap[k]
    return U


@numba.njit(fastmath=FASTMATH, cache=True)
def chunk_transform(S, k_step, K, s0, s1, s2, coefs, term_offsets, Vc):
    """Vc[(ξ·K + k)·FLAT_N + j·LANES + l] = Σ_i coefs[ξ, i]·S[s_j + k·k_step + term_offsets[ξ, i] + l]
    for the chunk's three vectors j (their positions start at s0, s1, s2) and l < LANES: V of 48
    positions, for every ξ and input row k.  Two rows k at a time: 6 independent sums."""
    alpha, width = coefs.shape
    for k_block in range(0, K, CHANNEL_BLOCK):
        for xi in range(alpha):
            for k in range(k_block, min(K, k_block + CHANNEL_BLOCK), 2):
                k2 = min(k + 1, K - 1)                  # an odd K computes its last row twice
                a0, a1, a2 = simd.zeros(Vc), simd.zeros(Vc), simd.zeros(Vc)
                b0, b1, b2 = simd.zeros(Vc), simd.zeros(Vc), simd.zeros(Vc)
                for i in range(width):
                    c, d, e = coefs[xi, i], k * k_step + term_offsets[xi, i], k2 * k_step + term_offsets[xi, i]
                    a0 = simd.fma(a0, c, simd.load(S, s0 + d))
                    a1 = simd.fma(a1, c, simd.load(S, s1 + d))
                    a2 = simd.fma(a2, c, simd.load(S, s2 + d))
                    b0 = simd.fma(b0, c, simd.load(S, s0 + e))
                    b1 = simd.fma(b1, c, simd.load(S, s1 + e))
                    b2 = simd.fma(b2, c, simd.load(S, s2 + e))
                for kk, (v0, v1, v2) in ((k, (a0, a1, a2)), (k2, (b0, b1, b2))):
                    dst = (xi * K + kk) * FLAT_N
                    simd.store(Vc, dst, v0)
                    simd.store(Vc, dst + LANES, v1)
                    simd.store(Vc, dst + 2 * LANES, v2)


@numba.njit(fastmath=FASTMATH, cache=True)
def winograd_products(S, S_step, n_img, K, Q, L, R, transform, U, bias, O, out, out_base, out_step, plane,
                      row_step, out_pos):
    """out[out_base + i·out_step + o·plane + (2t + j)·row_step + out_pos[n]]
        = bias[o] + Σ_ξ Aᵀ[j, ξ]·Σ_k U[ξ, o, k]·V[ξ, k, t, n]
    for the bands i < n_img (band i's S_split from i·S_step on, rows k·2Q + φ·Q + q of L values), o < O,
    the output rows 2t + j < R of each band and n < L (see Math); transform: ``transforms(r, dtype)``.

    Where the output keeps the input's layout (row_step = L, out_pos[n] = n: a filter along a map's
    rows, as spatial_separable's column filter) its rows go out by masked vector stores; any other
    map by scalar stores, lane by lane (the row filter, run on x transposed, writes its positions n
    down r's columns).

    Chunks of 3 vectors of 16 positions, across the bands (their positions are consecutive within a
    band; a band's last vector may hold fewer): the chunk's V for all α, then for each block of
    FLAT_MR output channels its α products (flat_block, one "tap" per input row k) and the two output
    rows of each position."""
    coefs, at, _, AT = transform
    alpha = U.shape[0]
    NT = (R + 1) // 2 * L                               # positions of a band: its tiles' rows of L
    per_band = (NT + LANES - 1) // LANES
    n_vec = n_img * per_band
    contiguous = row_step == L
    for n in range(L):
        contiguous &= out_pos[n] == n
    # (explicit loops rather than array expressions here: each of those compiles a kernel of its own,
    # and the first call of a kind must stay under 10 s)
    term_offsets = np.empty(at.shape, dtype=np.int64)  # input row 2t + ρ is row t + ρ // 2 of phase ρ % 2
    for xi in range(alpha):
        for i in range(at.shape[1]):
            term_offsets[xi, i] = (at[xi, i] % 2 * Q + at[xi, i] // 2) * L
    offs = np.empty(K, dtype=np.int64)                 # row k of a chunk's V
    for k in range(K):
        offs[k] = k * FLAT_N
    Vc = np.empty(alpha * K * FLAT_N, dtype=S.dtype)
    T = np.empty((alpha, FLAT_MR * FLAT_N), dtype=S.dtype)
    ones = np.empty(LANES, dtype=S.dtype)
    ones[:] = 1
    both_rows = np.empty(2 * LANES, dtype=S.dtype)     # a vector's two output rows, for scalar stores
    starts = np.empty(3, dtype=np.int64)
    n_pieces = np.empty(3, dtype=np.int64)
    pieces = np.empty((3, LANES + 1, 4), dtype=np.int64)   # (out index of lane 0, first lane, end lane, odd row?)
    lane_out = np.empty((3, LANES), dtype=np.int64)        # scalar stores: each lane's out index in row 2t
    lane_odd = np.empty((3, LANES), dtype=np.bool_)        # … and whether row 2t + 1 < R
    n_lanes = np.empty(3, dtype=np.int64)
    for v in range(0, n_vec, 3):
        n_in = min(3, n_vec - v)                        # a last chunk short of 3 repeats its last vector
        for j in range(3):
            band, p0 = min(v + j, n_vec - 1) // per_band, min(v + j, n_vec - 1) % per_band * LANES
            starts[j] = band * S_step + p0
            band_out = out_base + band * out_step
            # the tile rows vector j's lanes fall in: lanes l0 ≤ l < l1 hold positions p0 + l = t·L + n of
            # tile row t, for output rows 2t and 2t + 1: at band_out + (2t + jj)·L + n where contiguous
            lanes, l0, n = min(LANES, NT - p0), 0, 0
            while l0 < lanes:
                t = (p0 + l0) // L
                l1 = min(lanes, (t + 1) * L - p0)
                if contiguous:                          # a masked vector store a piece
                    pieces[j, n, 0], pieces[j, n, 1], pieces[j, n, 2] = band_out + t * L + p0, l0, l1
                    pieces[j, n, 3] = 2 * t + 1 < R
                    n += 1
                else:                                   # a scalar store a lane
                    for l in range(l0, l1):
                        lane_out[j, l] = band_out + 2 * t * row_step + out_pos[p0 + l - t * L]
                        lane_odd[j, l] = 2 * t + 1 < R
                l0 = l1
            n_pieces[j], n_lanes[j] = n, lanes
        chunk_transform(S, 2 * Q * L, K, starts[0], starts[1], starts[2], coefs, term_offsets, Vc)
        for o0 in range(0, O, FLAT_MR):
            for xi in range(alpha):
                d = xi * K * FLAT_N
                flat_block(Vc, d, d + LANES, d + 2 * LANES, offs, U[xi], o0, T[xi])
            for i in range(min(FLAT_MR, O - o0)):
                # rows 2t and 2t + 1 of the block's 3 vectors: 6 independent sums over ξ
                b = simd.fma(simd.zeros(Vc), bias[o0 + i], simd.load(ones, 0))
                y00, y01, y02, y10, y11, y12 = b, b, b, b, b, b
                for xi in range(alpha):
                    e, f = AT[0, xi], AT[1, xi]
                    m0 = simd.load(T[xi], i * FLAT_N)
                    m1 = simd.load(T[xi], i * FLAT_N + LANES)
                    m2 = simd.load(T[xi], i * FLAT_N + 2 * LANES)
                    y00, y01, y02 = simd.fma(y00, e, m0), simd.fma(y01, e, m1), simd.fma(y02, e, m2)
                    y10, y11, y12 = simd.fma(y10, f, m0), simd.fma(y11, f, m1), simd.fma(y12, f, m2)
                channel = (o0 + i) * plane
                for j in range(n_in):
                    y0 = y00 if j == 0 else (y01 if j == 1 else y02)
                    y1 = y10 if j == 0 else (y11 if j == 1 else y12)
                    if contiguous:
                        for n in range(n_pieces[j]):
                            start, l0, l1 = channel + pieces[j, n, 0], pieces[j, n, 1], pieces[j, n, 2]
                            simd.store_lanes(out, start, y0, l0, l1)
                            if pieces[j, n, 3]:
                                simd.store_lanes(out, start + L, y1, l0, l1)
                    else:
                        simd.store(both_rows, 0, y0)
                        simd.store(both_rows, LANES, y1)
                        for l in range(n_lanes[j]):
                            at_out = channel + lane_out[j, l]
                            out[at_out] = both_rows[l]
                            if lane_odd[j, l]:
                                out[at_out + row_step] = both_rows[LANES + l]
