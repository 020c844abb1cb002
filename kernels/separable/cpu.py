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
    v2: one task per (image b, band of output rows), computing all O output channels of the band.

Versions
    v1 ``separable_two_pass``  the formula in two passes, as torch runs it: the depthwise result of the
                               whole batch is written to a full tensor d, then the pointwise pass reads
                               it back, one multiply-add per load.
    v2 ``separable_fused``     one pass. A task owns a band of whole output rows of one image (≈ 168
                               pixels: 3 rows of a 56-wide map). The depthwise result of all Cmid
                               channels on the band, D[c, n], is computed into a task-local buffer of
                               Cmid·N values (≈ 100 KB for 144 channels, so it stays in L2), and the
                               pointwise product y_band = bias + pw · D is taken from there by the
                               register-blocked ``tile_matmul`` (kernels/_cpu_gemm.py).
                               Why this saves memory traffic: d never exists as a full tensor, so its
                               B·Cmid·OH·OW elements are neither written to DRAM nor read back (for the
                               MobileNetV2 layer 2 × 14.4 MB of the 2 × 14.4 + 14.4 + 2.4 MB the
                               two-pass form moves); what reaches memory is x (read once) and y (written
                               once). Both stages of a band run while its data is hot in cache.
                               Depthwise details: per channel, the band's input rows are copied into a
                               zero-padded buffer (one contiguous read of the channel's block, and no
                               bounds tests in the tap loops); taps go three at a time over slices
                               indexed from 0 (see ``depthwise_taps``: 8× over a tap-per-pass loop with
                               a runtime shift). The GEMM wants the reduced index c contiguous, so D is
                               transposed into the patch P[n, c] in 16×16 blocks (N·Cmid copies, small
                               next to the N·Cmid·(KH·KW + O) multiply-adds).
    ``separable`` picks v2.

Caveats
    Accumulation is in the input dtype (like torch's CPU kernels); v2 sums in SIMD partial sums, so the
    versions agree to rounding only.
"""
import numba
import numpy as np
from numba import prange

from .._cpu_gemm import FASTMATH, MR, NR, round_up, tile_product
from .._cpu_rows import band_height, fill_padded_rows, transpose_into


BAND_PIXELS = 168   # v2: output pixels per task (whole rows); measured best at 112–168 (D, P ≈ 100 KB)


@numba.njit(inline="always")
def depthwise_taps(x_row, w_row, acc, stride, dil):
    """acc[ow] += Σ_kw w_row[kw] · x_row[ow·stride + kw·dil] for ow < len(acc), on a zero-padded row
    (so no tap needs a bounds test).

    Speed tricks (together ~8× on a MobileNet row): the loop index starts at 0 on slices, so Numba
    drops its negative-index wraparound test and LLVM vectorises; at unit stride and dilation the
    taps go three at a time at constant offsets from ONE slice, so each pass over acc does three
    multiply-adds per load/store of acc and LLVM needs no runtime alias checks between the taps."""
    n, KW = acc.shape[0], w_row.shape[0]
    if stride == 1 and dil == 1:
        k0 = 0
        while k0 + 3 <= KW:
            a = x_row[k0:]
            w0, w1, w2 = w_row[k0], w_row[k0 + 1], w_row[k0 + 2]
            for j in range(n):
                acc[j] += w0 * a[j] + w1 * a[j + 1] + w2 * a[j + 2]
            k0 += 3
        for kw in range(k0, KW):
            a = x_row[kw:]
            weight = w_row[kw]
            for j in range(n):
                acc[j] += weight * a[j]
    else:
        for kw in range(KW):
            a = x_row[kw * dil::stride]
            weight = w_row[kw]
            for j in range(n):
                acc[j] += weight * a[j]


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
def separable_fused(x, w, A, bias, y, sh, sw, ph, pwd, dh, dw, band):
    """A is pw padded with zero rows to a multiple of MR; a task owns `band` output rows of one image."""
    B, C, H, W = x.shape
    Cmid, KH, KW = w.shape
    _, O, OH, OW = y.shape
    m = Cmid // C
    n_bands = (OH + band - 1) // band
    XPW = max(W + pwd, (OW - 1) * sw + (KW - 1) * dw + 1)  # padded row: every tap of every output inside
    for task in prange(B * n_bands):
        b = task // n_bands
        oh0 = task % n_bands * band
        R = min(band, OH - oh0)
        N = R * OW

        # 1. depthwise of the band: D[c, r, ow] = Σ_taps w[c, kh, kw] · x[b, c // m, ih, iw]. Channel by
        #    channel, the band's input rows are first copied into a zero-padded buffer xp (the band's
        #    receptive field: padding becomes real zeros, the tap loops need no bounds tests), read
        #    as one contiguous block per channel (hardware prefetch) rather than short hops between
        #    channel planes.
        rows = (R - 1) * sh + (KH - 1) * dh + 1
        ih0 = oh0 * sh - ph
        xp = np.zeros((rows, XPW), dtype=x.dtype)
        D = np.empty((Cmid, R, OW), dtype=x.dtype)
        for c in range(Cmid):
            if c % m == 0:                          # a new input channel: refill xp
                fill_padded_rows(x[b, c // m], xp, ih0, pwd)
            for r in range(R):
                d_row = D[c, r]                     # a C-contiguous row
                d_row[:] = 0.0
                for kh in range(KH):
                    depthwise_taps(xp[r * sh + kh * dh], w[c, kh], d_row, sw, dw)

        # 2. the patch P[n, c] = D[c, n] (c contiguous for the GEMM), rows padded to NR with zeros
        P = np.zeros((round_up(N, NR), Cmid), dtype=x.dtype)
        transpose_into(D.reshape(Cmid, N), P)

        # 3. pointwise on the band: T[o, n] = bias[o] + Σ_c A[o, c] · P[n, c]
        T = tile_product(A, P, bias, O)

        # 4. the only write to memory: the real rows of the output band
        for o in range(O):
            for r in range(R):
                y[b, o, oh0 + r, :] = T[o, r * OW:(r + 1) * OW]


# ----------------------------------------------------------------------------------------------------
# The wrapper fastconv.run calls
# ----------------------------------------------------------------------------------------------------
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
        band = max(1, min(BAND_PIXELS // out_size[1], band_height(B, out_size[0])))
        separable_fused(x, w3, A, bias, y, *geometry, band)
    elif version == "two_pass":
        separable_two_pass(x, w3, pw, bias, y, *geometry)
    else:
        raise ValueError(f"version must be 'auto', 'two_pass' or 'fused', got {version!r}")
    return y


VERSIONS = ("two_pass", "fused")
