"""Flattened convolution (Jin et al. 2014) on the CPU with Numba: lateral 1×1 across channels, then a
vertical KH×1 and a horizontal 1×KW filter per channel, no nonlinearity in between.

Math
    l[b, o, i, j]   = Σ_{c<C} w[o, c] · x[b, c, i, j]                                   (lateral)
    v[b, o, oh, j]  = Σ_{u<KH} vert[o, u] · l[b, o, oh − ph + u, j]                      (vertical)
    y[b, o, oh, ow] = bias[o] + Σ_{t<KW} hor[o, t] · v[b, o, oh, ow − pw + t]            (horizontal)
    l and v read as zero outside the image (the padding of the vertical and horizontal stages).
    Composed, this is one convolution with the rank-1 filter W[o, c, u, t] = w[o, c]·vert[o, u]·hor[o, t].

Shapes
    x (B, C, H, W)   w (O, C)   vert (O, KH)   hor (O, KW)   bias (O,)   y (B, O, OH, OW)
    OH = H + 2·ph − KH + 1, OW = W + 2·pw − KW + 1; all C-contiguous.

Cost
    B·O·(H·W·C + OH·W·KH + OH·OW·KW) multiply-adds (vs B·O·OH·OW·C·KH·KW for the dense filter).
    Minimum traffic: x read once, y written once; the staged form also writes and reads l and v.

Parallel
    v1: one task per row of each stage ((b, o, i), then (b, o, oh) twice).
    v2: one task per (image b, band of output rows), all O channels.

Versions
    v1 ``flattened_staged`` the three stages as formula loops, l and v as full tensors.
    v2 ``flattened_fused``  per band: the lateral stage on the band's rows plus the KH − 1 halo rows is a
                            matrix product (x's rows as they are times w, by conv2d's register block
                            ``flat_bands``: 8 output channels × 48 pixels in registers over all C inputs,
                            no patch) into a task-local buffer; the vertical and
                            horizontal stages then run per channel from that buffer (v for the band's
                            rows in a task-local R·W buffer; the vertical stage one R·W-long loop per tap
                            instead of one per tap and row: ~12% faster on the Jin layer), so l and v never
                            reach memory. The lateral product does C/(KH + KW) times the arithmetic of the
                            other two stages, which is why it gets the register block and they get plain
                            vectorised loops.  Measured (1 thread, Jin layer): 2.2 ms; 2.9 ms with the
                            lateral stage as a channels-last patch times ``tile_matmul``.
    ``flattened`` picks v2.

Caveats
    Accumulation in the input dtype; v2 sums in SIMD partial sums (agrees with v1 to rounding).
"""
import numba
import numpy as np
from numba import prange

from .._cpu_gemm import FASTMATH, MR
from .._cpu_rows import band_height, padded_rows
from ..conv.cpu import FLAT_MR, FLAT_N, flat_bands, flat_offsets, padded_band


# ----------------------------------------------------------------------------------------------------
# v1: three stages, loop for loop
# ----------------------------------------------------------------------------------------------------
@numba.njit(parallel=True, cache=True)
def flattened_staged(x, w, vert, hor, bias, y, ph, pw):
    B, C, H, W = x.shape
    O, KH = vert.shape
    KW = hor.shape[1]
    _, _, OH, OW = y.shape
    lat = np.empty((B, O, H, W), dtype=x.dtype)
    v = np.empty((B, O, OH, W), dtype=x.dtype)
    # lateral: l[b, o, i, j] = Σ_c w[o, c] · x[b, c, i, j]
    for task in prange(B * O * H):
        i = task % H
        o = task // H % O
        b = task // (H * O)
        for j in range(W):
            acc = 0.0
            for c in range(C):
                acc += w[o, c] * x[b, c, i, j]
            lat[b, o, i, j] = acc
    # vertical: v[b, o, oh, j] = Σ_u vert[o, u] · l[b, o, oh − ph + u, j]
    for task in prange(B * O * OH):
        oh = task % OH
        o = task // OH % O
        b = task // (OH * O)
        for j in range(W):
            acc = 0.0
            for u in range(KH):
                i = oh - ph + u
                if 0 <= i < H:
                    acc += vert[o, u] * lat[b, o, i, j]
            v[b, o, oh, j] = acc
    # horizontal: y[b, o, oh, ow] = bias[o] + Σ_t hor[o, t] · v[b, o, oh, ow − pw + t]
    for task in prange(B * O * OH):
        oh = task % OH
        o = task // OH % O
        b = task // (OH * O)
        for ow in range(OW):
            acc = bias[o]
            for t in range(KW):
                j = ow - pw + t
                if 0 <= j < W:
                    acc += hor[o, t] * v[b, o, oh, j]
            y[b, o, oh, ow] = acc


# ----------------------------------------------------------------------------------------------------
# v2: fused per band of output rows
# ----------------------------------------------------------------------------------------------------
@numba.njit(parallel=True, fastmath=FASTMATH, cache=True)
def flattened_fused(x, A, vert, hor, bias, y, ph, pw, band):
    """A: the lateral w padded with zero rows to a multiple of FLAT_MR."""
    B, C, H, W = x.shape
    O, KH = vert.shape
    KW = hor.shape[1]
    _, _, OH, OW = y.shape
    n_bands = (OH + band - 1) // band
    no_bias = np.zeros(O, dtype=x.dtype)
    for task in prange(B * n_bands):
        b = task // n_bands
        oh0 = (task % n_bands) * band
        R = min(band, OH - oh0)
        # rows i0 .. i0 + R + KH − 2 of l feed this band; those outside [0, H) stay zero (padding)
        i0 = oh0 - ph
        rows = R + KH - 1
        lo = max(0, i0)
        n_in = max(0, min(H, i0 + rows) - lo)           # rows of the image among them
        # 1. lateral: lat[o, i − i0, :] = Σ_c w[o, c] · x[b, c, i, :] for the rows inside the image, through
        #    conv2d's register block (a 1×1 filter: x's rows as they are, offs[c] = c·n_in·W); the rows
        #    outside the image stay zero, as the vertical stage's padding must
        lat_flat = np.zeros(O * rows * W + FLAT_N, dtype=x.dtype)
        S = padded_band(x, b, 1, np.arange(C), lo, n_in, 0, W)
        flat_bands(S, 0, 1, flat_offsets(C, 1, 1, n_in, W, 1, 1), A, no_bias, n_in, W, W, lat_flat,
                   (lo - i0) * W, 0, rows * W, W, 1, O)
        v = np.empty(R * W, dtype=x.dtype)                      # one channel's v rows for the band
        for o in range(O):
            # 2. vertical: v[r·W + j] = Σ_u vert[o, u] · lat[o, r + u, j] for all R rows at once: row r + u
            #    of lat is the same flat shift u·W for every r, so each tap is one R·W-long loop
            lat_o = lat_flat[o * rows * W:(o + 1) * rows * W]
            v[:] = 0
            for u in range(KH):
                weight = vert[o, u]
                src = lat_o[u * W:(u + R) * W]
                for j in range(R * W):
                    v[j] += weight * src[j]
            # 3. horizontal: y[b, o, oh0 + r, ow] = bias[o] + Σ_t hor[o, t] · v[r·W + ow − pw + t], tap t
            #    only over the columns whose source lies in the row (the rest is zero padding)
            bias_o = bias[o]
            for r in range(R):
                y_row, v_row = y[b, o, oh0 + r], v[r * W:(r + 1) * W]
                y_row[:] = bias_o
                for t in range(KW):
                    weight = hor[o, t]
                    lo, hi = max(0, pw - t), min(OW, W + pw - t)
                    dst, src = y_row[lo:hi], v_row[lo - pw + t:hi - pw + t]
                    for j in range(hi - lo):
                        dst[j] += weight * src[j]


# ----------------------------------------------------------------------------------------------------
# The wrapper fastconv.run calls
# ----------------------------------------------------------------------------------------------------
def flattened(x, w, vertical, horizontal, bias=None, *, padding, version="auto"):
    """y = horizontal ∘ vertical ∘ lateral (x) + bias; version "staged" (v1), "fused" (v2) or "auto"."""
    B, C, H, W = x.shape
    O, KH = vertical.shape
    KW = horizontal.shape[1]
    ph, pw = padding
    OH, OW = H + 2 * ph - KH + 1, W + 2 * pw - KW + 1
    y = np.empty((B, O, OH, OW), dtype=x.dtype)
    bias = np.zeros(O, dtype=x.dtype) if bias is None else bias
    if version in ("auto", "fused"):
        flattened_fused(x, padded_rows(w, FLAT_MR), vertical, horizontal, bias, y, ph, pw, band_height(B, OH))
    elif version == "staged":
        flattened_staged(x, w, vertical, horizontal, bias, y, ph, pw)
    else:
        raise ValueError(f"version must be 'auto', 'staged' or 'fused', got {version!r}")
    return y


VERSIONS = ("staged", "fused")
