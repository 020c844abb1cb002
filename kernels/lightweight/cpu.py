"""Lightweight and dynamic lightweight convolution on the CPU with Numba (Wu et al. 2019, fairseq's
LightConv and DynamicConv), batch-first.

Both kinds are one arithmetic: a depthwise 1-d convolution whose C channels share H kernels (head
h = c // R serves the R = C/H channels h·R .. h·R + R − 1). The dynamic kind has a kernel per sample and
time step; the lightweight kind is the special case of one kernel per head for every (b, t), which the
wrapper passes as a broadcast view of w (strides 0, nothing copied).

Math
    y[b, c, t] = bias[c] + Σ_{k<K} w'[b, h, k, t] · x[b, c, t + k − padding_l]     (h = c // R)
    x reads as zero outside [0, T);  w' = w, or with weight_softmax
    w'[b, h, k, t] = exp(w[b, h, k, t]) / Σ_{k'<K} exp(w[b, h, k', t])  over ALL K taps, also the ones
    that fall outside [0, T) (fairseq's CUDA kernels and the paper normalise this way).

Shapes
    x (B, C, T)   w (B, H, K, T) (lightweight: a broadcast view of (H, K))   bias (C,)   y (B, C, T)

Cost
    B·C·T·K multiply-adds; with weight_softmax also B·H·K·T exponentials for the dynamic kind (C/H times
    fewer than the multiply-adds), H·K for the lightweight kind.
    Minimum traffic: x, w read once and y written once; v2 allocates only a K × TILE_T tile per task.
    fairseq's band-matrix form materialises B·H·T·(T + K − 1) elements; its unfold form is a strided
    (T, B, C, K) view of the padded input, which torch's CPU bmm reads in place.

Parallel
    v1: one task per row (b, c).   v2: one task per (b, h, chunk of TILE_T steps): the chunk of the R
    rows of head h. Tasks write disjoint parts of y.

Versions
    v1 ``dynamic_direct``  the formula, one output element at a time: the K weights of (b, h, t), their
                           softmax when asked, then the sum with a bounds test per tap.
    v2 ``dynamic_tiled``   a chunk of TILE_T steps of one head at a time: its K × TILE_T weights are
                           copied once into a small tile (softmax-normalised there, once per head instead
                           of once per channel; for the lightweight kind the wrapper normalises the H
                           kernels once instead), then each of the R channels adds the taps as shifted row
                           updates over the steps whose input is inside [0, T) — no bounds test in the
                           inner loop, which vectorises over t. The tile (K·TILE_T values) stays in
                           cache while the R channels stream through, and each output chunk stays in L1
                           across its K taps. TILE_T = 512 rather than a smaller L1-sized chunk: each
                           (channel, tap) pair costs a fixed setup (views, bounds), and longer runs of
                           consecutive steps let the hardware prefetchers stream x and y (measured ~1.3×
                           faster than 128 at K = 31, ~1.6× at K = 3).
    Both wrappers pick v2 for "auto".

Caveats
    Accumulation and the softmax are in the input dtype (torch does the same on the CPU). The softmax
    subtracts the per-step maximum before exponentiating, so large weights do not overflow. v2 adds the
    taps in a different order than v1, so results agree to rounding.
"""
import numba
import numpy as np
from numba import prange

from .._cpu_gemm import FASTMATH
from .._index import valid_outputs

valid_outputs_jit = numba.njit(valid_outputs)

TILE_T = 512    # time steps per v2 task: long rows for the prefetchers, fewer per-row setups; a K = 31
                # float32 weight tile is 62 KiB (L2), the R output chunks stream through L1


@numba.njit(fastmath=FASTMATH, cache=True)
def softmax_taps(tile):
    """tile (K, N): each column replaced by its softmax over the K taps (its maximum subtracted first).

    Written row by row (n innermost) so that the maximum, the sum and the scaling vectorise over n;
    only the exponentials stay scalar calls.
    """
    K, N = tile.shape
    top = tile[0].copy()
    for k in range(1, K):
        row = tile[k]
        for n in range(N):
            top[n] = max(top[n], row[n])
    total = np.zeros_like(top)
    for k in range(K):
        row = tile[k]
        for n in range(N):
            row[n] = np.exp(row[n] - top[n])
            total[n] += row[n]
    for k in range(K):
        row = tile[k]
        for n in range(N):
            row[n] /= total[n]


# ----------------------------------------------------------------------------------------------------
# v1: the formula, element by element
# ----------------------------------------------------------------------------------------------------
@numba.njit(parallel=True, cache=True)
def dynamic_direct(x, w, bias, y, padding_l, weight_softmax):
    B, C, T = x.shape
    _, H, K, _ = w.shape
    R = C // H
    for row in prange(B * C):
        c = row % C
        b = row // C
        h = c // R
        taps = np.empty((K, 1), dtype=x.dtype)
        for t in range(T):
            # w'[b, h, :, t]: this step's kernel, normalised over all K taps when asked
            for k in range(K):
                taps[k, 0] = w[b, h, k, t]
            if weight_softmax:
                softmax_taps(taps)
            acc = bias[c]
            for k in range(K):
                i = t + k - padding_l
                # zero padding: taps outside [0, T) add nothing
                if 0 <= i < T:
                    acc += taps[k, 0] * x[b, c, i]
            y[b, c, t] = acc


# ----------------------------------------------------------------------------------------------------
# v2: a head's chunk of steps at a time, taps as shifted row updates
# ----------------------------------------------------------------------------------------------------
@numba.njit(parallel=True, fastmath=FASTMATH, cache=True)
def dynamic_tiled(x, w, bias, y, padding_l, weight_softmax):
    B, C, T = x.shape
    _, H, K, _ = w.shape
    R = C // H
    n_chunks = (T + TILE_T - 1) // TILE_T
    for task in prange(B * H * n_chunks):
        chunk = task % n_chunks
        h = task // n_chunks % H
        b = task // (n_chunks * H)
        t0 = chunk * TILE_T
        t1 = min(T, t0 + TILE_T)

        # 1. the weight tile: taps[k, t − t0] = w'[b, h, k, t], normalised once for the R channels
        taps = np.empty((K, t1 - t0), dtype=x.dtype)
        taps[:, :] = w[b, h, :, t0:t1]
        if weight_softmax:
            softmax_taps(taps)

        # 2. every channel of head h: y[t] = bias[c] + Σ_k taps[k, t − t0]·x[t + k − padding_l]
        for c in range(h * R, (h + 1) * R):
            x_row = x[b, c]
            y_row = y[b, c]
            y_row[t0:t1] = bias[c]
            for k in range(K):
                shift = k - padding_l
                lo, hi = valid_outputs_jit(T, t1, 1, shift)     # steps whose input is inside [0, T)
                lo = max(lo, t0)
                # speed: views that start at 0 let LLVM drop Numba's negative-index test, so this
                # loop becomes SIMD fused multiply-adds (indexing y_row[t + shift] directly stays scalar)
                y_part, x_part, tap = y_row[lo:hi], x_row[lo + shift:hi + shift], taps[k, lo - t0:hi - t0]
                for n in range(hi - lo):
                    y_part[n] += tap[n] * x_part[n]


# ----------------------------------------------------------------------------------------------------
# The wrappers fastconv.run calls
# ----------------------------------------------------------------------------------------------------
def _run(x, w, bias, padding_l, weight_softmax, version):
    y = np.empty_like(x)
    if version == "direct":
        dynamic_direct(x, w, bias, y, padding_l, weight_softmax)
    elif version in ("tiled", "auto"):
        dynamic_tiled(x, w, bias, y, padding_l, weight_softmax)
    else:
        raise ValueError(f"version must be 'auto', 'direct' or 'tiled', got {version!r}")
    return y


def dynamic_lightweight(x, w, *, padding_l, weight_softmax, version="auto"):
    """y = dynamic lightweight convolution of x (B, C, T) with w (B, H, K, T)."""
    return _run(x, w, np.zeros(x.shape[1], dtype=x.dtype), padding_l, weight_softmax, version)


def lightweight(x, w, bias=None, *, padding_l, weight_softmax, version="auto"):
    """y = lightweight convolution of x (B, C, T) with w (H, K): the dynamic kernel on w broadcast over
    samples and steps (a view with strides 0, nothing copied).

    The softmax of w is the same for every (b, t), so it is taken here once, on the (K, H) taps,
    instead of once per tile (H·K exponentials instead of B·H·K·T)."""
    B, _, T = x.shape
    H, K = w.shape
    if weight_softmax:
        taps = w.T.copy()                   # a new (K, H) array: never normalise the caller's w in place
        softmax_taps(taps)
        w = taps.T.copy()
    w4 = np.broadcast_to(w.reshape(1, H, K, 1), (B, H, K, T))
    bias = np.zeros(x.shape[1], dtype=x.dtype) if bias is None else bias
    return _run(x, w4, bias, padding_l, False, version)


VERSIONS = ("direct", "tiled")
