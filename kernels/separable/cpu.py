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
    v2 ``separable_fused``     one pass. A task owns a band of whole output rows of one image (up to
                               BAND_PIXELS: a whole 56×56 map). The depthwise result of all Cmid
                               channels on the band, D[c, n], is computed into a task-local buffer of
                               Cmid·N values (≈ 1.9 MB for 144 channels: L3, read right back), and the
                               pointwise product y_band = bias + pw · D is taken from there by
                               ``rows_product`` (kernels/_cpu_gemm.py): D's rows are runs of pixels, as
                               the product wants them, so there is no transpose.
                               Why this saves memory traffic: d never exists as a full tensor, so its
                               B·Cmid·OH·OW elements are neither written to DRAM nor read back (for the
                               MobileNetV2 layer 2 × 14.4 MB of the 2 × 14.4 + 14.4 + 2.4 MB the
                               two-pass form moves); what reaches memory is x (read once) and y (written
                               once). Both stages of a band run while its data is hot in cache.
                               Depthwise details: per channel, the band's input rows are copied into a
                               zero-padded buffer (one contiguous read of the channel's block, and no
                               bounds tests in the tap loops); taps go three at a time over slices
                               indexed from 0 (see ``depthwise_taps``: 8× over a tap-per-pass loop with
                               a runtime shift).
                               Measured (MobileNetV2 layer, batch 8, 2 threads): 4.7–5.2 ms for the earlier
                               form (bands of 3 rows, D transposed into a channels-last patch for the
                               dot-form ``tile_matmul``, padded rows copied by a 2-D slice assignment),
                               2.8 ms for this one; the row copy alone had taken 1.3 ms.
    ``separable`` picks v2.

Caveats
    Accumulation is in the input dtype (like torch's CPU kernels); v2 sums in SIMD partial sums, so the
    versions agree to rounding only.
"""
import numba
import numpy as np
from numba import prange

from .._cpu_gemm import FASTMATH, rows_product
from .._cpu_rows import band_height, fill_padded_rows


BAND_PIXELS = 4096  # v2: most output pixels per task (whole rows; fewer when the batch is too small
                    # to give each thread two tasks).  Measured on the MobileNetV2 layer, 2 threads: a
                    # whole 56×56 image per task 2.4–2.8 ms, 28 rows 3.0–3.1, 14 rows 3.3–3.6, 3 rows
                    # 4.5–5.5: the product's longer rows and fewer recomputed halo rows outweigh D
                    # (1.9 MB for a whole image) spilling out of L2.


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
    """A (O, Cmid) is the pointwise weight; a task owns `band` output rows of one image."""
    B, C, H, W = x.shape
    Cmid, KH, KW = w.shape
    _, O, OH, OW = y.shape
    m = Cmid // C
    n_bands = (OH + band - 1) // band
    XPW = max(W + pwd, (OW - 1) * sw + (KW - 1) * dw + 1)  # padded row: every tap of every output inside
    wide = sh == 1 and sw == 1
    RW = XPW if wide else OW        # row pitch of D: "wide" rows keep XPW − OW junk columns (dropped)
    for task in prange(B * n_bands):
        b = task // n_bands
        oh0 = task % n_bands * band
        R = min(band, OH - oh0)

        # 1. depthwise of the band: D[c, r, ow] = Σ_taps w[c, kh, kw] · x[b, c // m, ih, iw]. Channel by
        #    channel, the band's input rows are first copied into a zero-padded buffer xp (the band's
        #    receptive field: padding becomes real zeros, the tap loops need no bounds tests), read
        #    as one contiguous block per channel (hardware prefetch) rather than short hops between
        #    channel planes.  At stride 1 the band is computed "wide", as in conv/cpu.py's planes: D's
        #    rows are XPW long, so tap (kh, kw) is one flat shift of xp and each pass runs over all R
        #    rows at once (R·XPW values) instead of R loops of OW, too short to vectorise well (56 =
        #    3 vectors + 8 left over).  An extra row in xp keeps the last taps' reads inside (they feed
        #    junk columns only).
        rows = (R - 1) * sh + (KH - 1) * dh + 1
        ih0 = oh0 * sh - ph
        xp = np.zeros((rows + 1, XPW), dtype=x.dtype)
        xp_flat = xp.reshape(-1)
        D = np.zeros((Cmid, R * RW), dtype=x.dtype)
        for c in range(Cmid):
            if c % m == 0:                          # a new input channel: refill xp
                fill_padded_rows(x[b, c // m], xp, ih0, pwd)
            for kh in range(KH):
                if wide:
                    depthwise_taps(xp_flat[kh * dh * XPW:], w[c, kh], D[c], 1, dw)
                else:
                    for r in range(R):
                        depthwise_taps(xp[r * sh + kh * dh], w[c, kh], D[c, r * OW:(r + 1) * OW], sw, dw)

        # 2. pointwise on the band: T[o, n] = bias[o] + Σ_c A[o, c]·D[c, n] (rows of D are pixels, so
        #    ``rows_product`` needs no transpose), then the only write to memory: T's real columns into y
        T = np.empty((O, R * RW), dtype=x.dtype)
        rows_product(A, D, 0, bias, T, 0, R * RW)
        for o in range(O):
            for r in range(R):
                y[b, o, oh0 + r, :] = T[o, r * RW:r * RW + OW]


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
        band = max(1, min(BAND_PIXELS // out_size[1], band_height(B, out_size[0])))
        separable_fused(x, w3, pw, bias, y, *geometry, band)
    elif version == "two_pass":
        separable_two_pass(x, w3, pw, bias, y, *geometry)
    else:
        raise ValueError(f"version must be 'auto', 'two_pass' or 'fused', got {version!r}")
    return y


VERSIONS = ("two_pass", "fused")
