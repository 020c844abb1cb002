"""DCNv3 and DCNv4 core ops on the CPU with Numba (InternImage's DCNv3Function, OpenGVLab's
DCNv4Function), channels last.  The two ops compute the same sum; they differ in where the offsets and
point weights are stored, so one set of loops serves both, told where to read by (base, group stride) of each tensor.

Math
    G groups of D channels, P = kh·kw − remove_center points (x-major: point p has taps i < kw along x,
    j < kh along y, see deformable/sampling.py), hh = dh·(kh−1)//2, hw = dw·(kw−1)//2:

    y[n, ho, wo, g·D + d] = Σ_{p<P} m[n, ho, wo, g, p] · bilinear(x[n, :, :, g·D + d], y_p, x_p)
        x_p = wo·sw − pw + hw + (i·dw − hw + Δx[n, ho, wo, g, p])·offset_scale
        y_p = ho·sh − ph + hh + (j·dh − hh + Δy[n, ho, wo, g, p])·offset_scale

    dcnv3 reads Δ from offset (N, Ho, Wo, G·P·2) at g·2P + 2p (+1 for Δy) and m from mask (N, Ho, Wo, G·P)
    at g·P + p; dcnv4 reads both from offset_mask (N, Ho, Wo, L) at g·3P + 2p (+1) and g·3P + 2P + p.

Shapes
    x (N, H, W, C = G·D)   y (N, Ho, Wo, C)   offsets / weights seen as 2-D (N·Ho·Wo, row length),
    all C-contiguous.

Cost
    N·Ho·Wo·C·P·(4 + 1) multiply-adds (four bilinear neighbours and the point weight per term);
    the sampling position and the four bilinear weights: N·Ho·Wo·G·P of them (v2) or C/G times more (v1).
    Minimum traffic: x, the offsets and weights read once, y written once.

Parallel
    v1: one task per output element (n, ho, wo, c).   v2: one task per output row (n, ho), all Wo
    pixels and C channels.  Tasks write disjoint outputs: no atomics.

Versions
    v1 ``dcn_direct``  the formula per output element: each element reads its point's offsets and weight,
                       computes the position and the four bilinear weights and gathers four values.  This
                       is DCNv3's CUDA thread mapping (one thread per output channel element): the D
                       channels of a group redo the same offset loads and the same bilinear arithmetic D
                       times, and each gathers single scalars at a stride of C.
    v2 ``dcn_shared``  the DCNv4 idea: the D channels of one group share their sampling positions and
                       bilinear weights (they depend on (n, ho, wo, g, p) only), so one work item handles
                       several channels of a group with one set of offsets and weights.  Why that is
                       DCNv4's speed-up: the per-point scalar work (two offset loads, a weight load, the
                       position, floor, border tests, four weights) is done once instead of D times, and
                       the memory access becomes four contiguous D-vector reads per point (channels last)
                       instead of 4·D scattered scalar gathers — the op is bound by these loads, not by
                       its few multiply-adds.  Here a row task works in three passes:
                       (1) the sampling position and point weight of each (pixel, group, point) triple;
                       (2) their neighbours and bilinear weights, in a branch-free loop over all the
                       row's triples that LLVM vectorises (16 triples per instruction);
                       (3) for each pixel and group, 16 channels at a time, the sum over the P points in
                       one ``Lanes`` register (kernels/_simd.py): per corner one vector load and one
                       fused multiply-add, the sum stored once.
                       Measured on the InternImage-T stage-1 shape (1 thread): v1 ≈ 270 ms; v2 ≈ 8 ms
                       (≈ 4 ms passes 1–2, ≈ 4 ms pass 3).  The first v2 (geometry with branches, one
                       triple at a time, and the channel loop left to the auto-vectoriser, which ran a
                       16-channel loop in its 4-lane epilogue and stored the sums after every point)
                       took ≈ 19 ms: 8 ms geometry, 11 ms channels.
                       ``dcnv3`` and ``dcnv4`` both run v2 by default: the sharing is a property of the
                       sum, not of DCNv4's tensor layout, so giving it to DCNv3 is the honest CPU kernel;
                       the v1/v2 ratio is the DCNv3-kernel → DCNv4-kernel speed-up.

Caveats
    Accumulation in the input dtype (the point weights are rounded to it before the channel loop).
    Channels past the last whole 16-lane block of a group (D not a multiple of 16) take a scalar loop.
    A neighbour outside the image is read at a clamped index with weight 0, so a NaN there turns the
    term into NaN where torch's zero padding gives 0 (only matters for non-finite inputs).
"""
import numba
import numpy as np
from numba import prange

from .. import _simd as simd
from .._cpu_gemm import FASTMATH
from .._simd import LANES
from ..deformable.sampling import bilinear_corners, dcn_point, sample_position

corners_jit = numba.njit(bilinear_corners)
position_jit = numba.njit(sample_position)
point_jit = numba.njit(dcn_point)


# ----------------------------------------------------------------------------------------------------
# v1: one output element at a time (DCNv3's thread mapping)
# ----------------------------------------------------------------------------------------------------
@numba.njit(parallel=True, cache=True)
def dcn_direct(x, off, off_g, msk, m_base, m_g, y, G, kh, kw, sh, sw, ph, pw, dh, dw, scale,
               remove_center):
    N, H, W, C = x.shape
    _, Ho, Wo, _ = y.shape
    D = C // G
    P = kh * kw - remove_center
    hh, hw = (dh * (kh - 1)) // 2, (dw * (kw - 1)) // 2
    for e in prange(N * Ho * Wo * C):
        c = e % C
        q = e // C                      # the output pixel (n, ho, wo), also the row of off and msk
        wo = q % Wo
        ho = q // Wo % Ho
        n = q // (Wo * Ho)
        g = c // D
        acc = 0.0
        for p in range(P):
            i, j = point_jit(p, kh, kw, remove_center)
            k = g * off_g + 2 * p
            px = position_jit(wo, sw, pw, hw, i, dw, off[q, k], scale)
            py = position_jit(ho, sh, ph, hh, j, dh, off[q, k + 1], scale)
            r0, r1, c0, c1, w00, w01, w10, w11 = corners_jit(py, px, H, W)
            value = (w00 * x[n, r0, c0, c] + w01 * x[n, r0, c1, c]
                     + w10 * x[n, r1, c0, c] + w11 * x[n, r1, c1, c])
            acc += msk[q, m_base + g * m_g + p] * value
        y[n, ho, wo, c] = acc


# ----------------------------------------------------------------------------------------------------
# v2: one pixel per task, sampling shared by the D channels of each group (DCNv4's idea)
# ----------------------------------------------------------------------------------------------------
@numba.njit(cache=True)
def point_taps(P, kh, kw, remove_center):
    """(i, j) of every point, once per call instead of two integer divisions per point and pixel."""
    taps = np.empty((P, 2), dtype=np.int64)
    for p in range(P):
        taps[p, 0], taps[p, 1] = point_jit(p, kh, kw, remove_center)
    return taps


@numba.njit(parallel=True, fastmath=FASTMATH, cache=True)
def dcn_shared(x, off, off_g, msk, m_base, m_g, y, G, kh, kw, sh, sw, ph, pw, dh, dw, scale, remove_center):
    N, H, W, C = x.shape
    _, Ho, Wo, _ = y.shape
    D = C // G
    D_lanes = D - D % LANES                     # channels of a group that fill whole 16-lane registers
    P = kh * kw - remove_center
    E = Wo * G * P                              # the (pixel, group, point) triples of one output row
    hh, hw = (dh * (kh - 1)) // 2, (dw * (kw - 1)) // 2
    taps = point_taps(P, kh, kw, remove_center)
    xf, yf = x.reshape(-1), y.reshape(-1)       # flat: a corner is the start of a run of C channels
    for row in prange(N * Ho):
        ho = row % Ho
        n = row // Ho
        # 1. where each triple e = (wo·G + g)·P + p of the row samples, and its point weight
        pos = np.empty((2, E))                  # (y, x), float64 as in sample_position
        m = np.empty(E, dtype=x.dtype)
        for wo in range(Wo):
            q = row * Wo + wo                   # the output pixel: row of off and msk
            for g in range(G):
                for p in range(P):
                    e = (wo * G + g) * P + p
                    k = g * off_g + 2 * p
                    pos[0, e] = position_jit(ho, sh, ph, hh, taps[p, 1], dh, off[q, k + 1], scale)
                    pos[1, e] = position_jit(wo, sw, pw, hw, taps[p, 0], dw, off[q, k], scale)
                    m[e] = msk[q, m_base + g * m_g + p]
        # 2. its four neighbours (as flat offsets into x, channel 0) and their weights times m.
        #    speed: a separate loop over all E triples, free of branches, vectorises (16 at a time)
        corner = np.empty((4, E), dtype=np.int64)
        coef = np.empty((4, E), dtype=x.dtype)
        for e in range(E):
            r0, r1, c0, c1, w00, w01, w10, w11 = corners_jit(pos[0, e], pos[1, e], H, W)
            t0, t1 = (n * H + r0) * W, (n * H + r1) * W
            corner[0, e], corner[1, e], corner[2, e], corner[3, e] = (t0 + c0) * C, (t0 + c1) * C, \
                (t1 + c0) * C, (t1 + c1) * C
            coef[0, e], coef[1, e], coef[2, e], coef[3, e] = m[e] * w00, m[e] * w01, m[e] * w10, m[e] * w11
        # 3. y[n, ho, wo, g·D + d] = Σ_p Σ_corners coef · x[corner + g·D + d]: for 16 channels at a time
        #    the running sums stay in one register over all P points (speed: see kernels/_simd.py)
        for wo in range(Wo):
            out = (row * Wo + wo) * C
            for g in range(G):
                e0 = (wo * G + g) * P
                for d0 in range(g * D, g * D + D_lanes, LANES):
                    acc = simd.zeros(xf)
                    for e in range(e0, e0 + P):
                        acc = simd.fma(acc, coef[0, e], simd.load(xf, corner[0, e] + d0))
                        acc = simd.fma(acc, coef[1, e], simd.load(xf, corner[1, e] + d0))
                        acc = simd.fma(acc, coef[2, e], simd.load(xf, corner[2, e] + d0))
                        acc = simd.fma(acc, coef[3, e], simd.load(xf, corner[3, e] + d0))
                    simd.store(yf, out + d0, acc)
                for d in range(g * D + D_lanes, g * D + D):      # channels left over: one at a time
                    yf[out + d] = 0
                    for e in range(e0, e0 + P):
                        yf[out + d] += (coef[0, e] * xf[corner[0, e] + d] + coef[1, e] * xf[corner[1, e] + d]
                                        + coef[2, e] * xf[corner[2, e] + d] + coef[3, e] * xf[corner[3, e] + d])


# ----------------------------------------------------------------------------------------------------
# The wrappers fastconv.run calls
# ----------------------------------------------------------------------------------------------------
def _run(x, off, off_g, msk, m_base, m_g, *, kernel_size, stride, padding, dilation, group,
         offset_scale, remove_center, out_size, version):
    N, _, _, C = x.shape
    y = np.empty((N, *out_size, C), dtype=x.dtype)
    args = (x, off.reshape(N * out_size[0] * out_size[1], -1), off_g,
            msk.reshape(N * out_size[0] * out_size[1], -1), m_base, m_g, y, group, *kernel_size, *stride,
            *padding, *dilation, float(offset_scale), int(remove_center))
    if version == "direct":
        dcn_direct(*args)
    elif version in ("auto", "shared"):
        dcn_shared(*args)
    else:
        raise ValueError(f"version must be 'auto', 'direct' or 'shared', got {version!r}")
    return y


def dcnv3(x, offset, mask, *, kernel_size, remove_center, version="auto", **params):
    """DCNv3 core op: offset (N, Ho, Wo, G·P·2), mask (N, Ho, Wo, G·P)."""
    P = kernel_size[0] * kernel_size[1] - int(remove_center)
    return _run(x, offset, 2 * P, mask, 0, P, kernel_size=kernel_size, remove_center=remove_center,
                version=version, **params)


def dcnv4(x, offset_mask, *, kernel_size, remove_center, version="auto", **params):
    """DCNv4 core op: offset_mask (N, Ho, Wo, L), group g's block [2P offsets][P weights] at g·3P."""
    P = kernel_size[0] * kernel_size[1] - int(remove_center)
    return _run(x, offset_mask, 3 * P, offset_mask, 2 * P, 3 * P, kernel_size=kernel_size,
                remove_center=remove_center, version=version, **params)


VERSIONS = ("direct", "shared")
