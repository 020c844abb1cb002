"""Input-dependent kernels on the CPU with Numba: dynamic convolution (CondConv), ODConv, KernelWarehouse.

Every kind is, for each sample b, an ordinary conv2d with the sample's own kernel W_b. The kernel is
aggregated ONCE PER SAMPLE into the GEMM layout A[b, g] (group g's (Og, Cg·kh·kw) matrix), then every
output tile of sample b multiplies its patch by A[b, g] with the shared ``tile_matmul``
(kernels/_cpu_gemm.py).

Math (G groups, Cg = Cin/G, Og = Cout/G, output channel o = g·Og + q, tap r = (c·kh + u)·kw + v;
      v4 orders the taps r = (u·kw + v)·Cg + c instead)
    dynamic           A[b,g,q,r] = Σ_k a[b,k]·w[k,o,c,u,v]                 bias_b[o] = Σ_k a[b,k]·bias[k,o]
    odconv            A[b,g,q,r] = a_f[b,o]·a_c[b,g·Cg+c]·a_s[b,u,v]·Σ_n a_w[b,n]·w[n,o,c,u,v]
                      (a_c ⊙ x and a_f ⊙ y are folded into the kernel's input and output channels: by
                      linearity conv(a_c ⊙ x, W)·a_f = conv(x, a_f·W·a_c), so x is never copied)
    kernel_warehouse  A[b,0,go·c_o+a, ((gi·c_i+e)·kh + u)·kw + v] = Σ_j alpha[b,t,j]·cells[j,a,e],
                      t = ((u·kw + v)·Go + go)·Gi + gi
    then, for all three,
    y[b,o,oh,ow] = bias_b[o] + Σ_r A[b,g,q,r]·x[b, g·Cg + c, oh·sh − ph + u·dh, ow·sw − pw + v·dw]

Shapes
    x (B, Cin, H, W); w (K, Cout, Cg, kh, kw); attentions as in the spec; cells (n, c_o, c_i);
    A (B, G, Og rounded up to 4, Cg·kh·kw) zero in the padded rows; bias_b (B, Cout); y (B, Cout, OH, OW).

Cost
    aggregation: B·K·Cout·Cg·kh·kw multiply-adds (KernelWarehouse: B·m·n·c_o·c_i); the convolution:
    B·Cout·OH·OW·Cg·kh·kw.  Memory: A is the aggregated weights (rows padded to a multiple of 4) and each
    tile's patch is (≤ 64 pixels) × Cg·kh·kw (v4 adds its slab: the few input rows × ≤ 64 columns × Cg
    that one task reads), so nothing beyond B·Cout·Cg·k² plus the output is allocated; x is never
    copied whole.

Parallel
    aggregation: one task per (b, g, q) row of A (KernelWarehouse: per (b, o) row).
    im2col: one task per tile (b, g, oh, ow-chunk), as conv2d's v2; slab: one task per (b, g, block
    of ROWS output rows, ow-chunk). Tasks write disjoint parts of y.
    direct: per sample, one task per output row (conv2d's v1); depthwise: per sample, one task per
    (group, depth) plane set (conv2d's v3); pointwise: one task per (b, g, chunk of pixels) (conv2d's
    v4); flat: one task per (b, g, band of output rows) (conv2d's v6).

Why once per sample and not per (sample, output-channel tile)
    Aggregating inside each task would redo K multiply-adds per kernel weight for every task that uses
    it: v2's one-row tiles on a 56×56 ResNet layer (112 tiles) would add 448 per weight against 3136 for
    the convolution (+14%); v4's 8-row tasks add ~1% there but ~8% on 7×7 maps (K / (7·7)). Once per
    sample costs K per weight (+0.1%), is never worse, and stores exactly the aggregated weights the
    memory budget allows. On a GPU the balance differs (see gpu.py).

Versions
    v1 ``direct``   the aggregated kernel of each sample, then the plain formula loops of conv2d
                    (kernels/conv/cpu.py ``conv_direct``) on that one sample.  Plain, slow.
    v2 ``im2col``   conv2d's v2 (kernels/conv/cpu.py ``conv_im2col``) with each sample's A[b]: all samples
                    at once, one prange over (b, g, oh, ow-chunk) tiles, each a channels-last im2col
                    patch multiplied by A[b, g] with the register-blocked ``tile_matmul``, 4 output
                    channels × 3 pixels in registers, SIMD over the taps. Compared with torch's batch-folded grouped conv, no
                    (B·Cout, Cin/g, k, k) kernel tensor is re-laid out per call and the B groups are one
                    flat parallel loop.
    v3 ``depthwise`` groups = Cin (Cg = 1, e.g. ODConv on MobileNet's depthwise layers): the
                    GEMM would reduce over only kh·kw taps with 1 useful row in 4, so each sample instead
                    runs conv2d's plane kernel (kernels/conv/cpu.py ``conv_planes``: each tap one long
                    shifted update of a zero-padded plane, SIMD) with its aggregated kernel.
    v4 ``slab``     conv2d's v5 (kernels/conv/cpu.py ``conv_slab``) with each sample's A[b]: like v2,
                    but each task owns SLAB_ROWS output rows and first transposes only the input rows
                    they read into a channels-last slab S[row, col, c] (padding included, so the patch
                    copies need no bounds tests), reusing its patch and tile buffers across the rows.
                    Measured ~1.4× faster than v2 on the ResNet 3×3 layer (one thread, CPU time:
                    15.5 ms vs 22 ms), v2 paying a whole-tensor transpose and a fresh patch per tile.
    v5 ``pointwise`` 1×1 kernels at stride 1 without padding (ODConv and CondConv on pointwise layers):
                    conv2d's v4 (kernels/conv/cpu.py ``conv_pointwise``) with each sample's A[b]: the
                    product y[b, g] = bias_b + A[b, g]·x[b, g] straight on NCHW rows of pixels by
                    ``rows_product``.
                    For K = Cg = 24 (MobileNetV2's 24→144 expand) v4's dot-form tile spends as long on the
                    horizontal sums closing each 4×3 block as on the multiply-adds.
    v6 ``flat``     conv2d's v6 (kernels/conv/cpu.py ``conv_flat``) with each sample's A[b]: a band
                    of zero-padded "wide" input rows, and 8 output channels × 48 positions summed in 24
                    vector registers over all Cg·kh·kw taps, no patch at all.  Measured on the ResNet
                    3×3 layer (one thread, CPU time): ≈ 10 ms vs ≈ 19 ms for v4.
    ``auto`` is v5 for pointwise layers of at least POINTWISE_MIN_PIX pixels (conv2d's rule), v3 when it
    applies, v4 for 1×1 layers at a stride, else v6.

Caveats
    Accumulation in the input dtype; a_c and a_f are multiplied into the kernel, so results differ
    from the definition (scale x, convolve, scale y) by rounding only. v1 and v3 loop over the samples
    in Python, one parallel region each.
    Measured (one thread, CPU time, ResNet 3×3 layer, batch 8): v2 ~82 GFLOP/s, v4 ~96, v6 ~183; torch's
    oneDNN convolution ~190 (its JIT micro-kernel keeps a 2-D block of outputs in registers across the
    whole reduction, as v6 does with Lanes registers; v6 still pays its band copy and the dropped
    columns of the wide rows). The batch-folded baseline
    also pays for the re-laid-out kernels and, for ODConv, the passes x·a_c and y·a_f, which this kernel
    folds away.
"""
import numba
import numpy as np
from numba import prange

from .. import NotApplicable
from .._cpu_gemm import FASTMATH, MR, round_up
from .._index import as_3d
from ..conv.cpu import (FLAT_MR, POINTWISE_MIN_PIX, conv_direct, conv_flat, conv_im2col, conv_planes, conv_pointwise,
                        conv_slab, to_channels_last)


# ----------------------------------------------------------------------------------------------------
# Aggregation: each sample's kernel, directly in the GEMM layout A[b, g, q, r] (v2's or v4's tap order)
# ----------------------------------------------------------------------------------------------------
@numba.njit(parallel=True, fastmath=FASTMATH, cache=True)
def aggregate_experts(w, a_w, a_s, a_c, a_f, A, taps_first):
    """A[b,g,q,r] = a_f[b,o]·a_c[b,g·Cg+c]·a_s[b,t]·Σ_n a_w[b,n]·w[n,o,r] with o = g·Og + q and
    r = c·T + t (conv2d's order), or r = t·Cg + c when taps_first (v4's order; w must then be given
    in that order too).

    w (N, Cout, Cg·T) flattened experts, a_w (B, N), a_s (B, T), a_c (B, Cin), a_f (B, Cout): the wrapper
    passes ones for an attention that is None (dynamic convolution passes ones for all but a_w).
    """
    N, O, R = w.shape
    B, G = A.shape[0], A.shape[1]
    Og = O // G
    T = a_s.shape[1]
    Cg = R // T
    for row in prange(B * O):
        b, o = row // O, row % O
        g, q = o // Og, o % Og
        out = A[b, g, q]
        # Σ_n a_w[b,n]·w[n,o,:], one expert at a time (vectorises over r)
        out[:] = 0
        for n in range(N):
            coef = a_w[b, n]
            w_row = w[n, o]
            for r in range(R):
                out[r] += coef * w_row[r]
        # the spatial, input-channel and output-channel attentions scale the taps
        for c in range(Cg):
            scale = a_f[b, o] * a_c[b, g * Cg + c]
            for t in range(T):
                out[t * Cg + c if taps_first else c * T + t] *= scale * a_s[b, t]


@numba.njit(parallel=True, fastmath=FASTMATH, cache=True)
def assemble_warehouse(cells, alpha, A, KH, KW, taps_first):
    """A[b,0,go·c_o+a, r] = Σ_j alpha[b,t,j]·cells[j,a,e], t = (s·Go + go)·Gi + gi, T = KH·KW, with
    r = (gi·c_i+e)·T + s (conv2d's order) or r = s·Cin + gi·c_i + e when taps_first (v4's order)."""
    n, c_o, c_i = cells.shape
    B, _, _, R = A.shape
    T = KH * KW
    Gi = R // (T * c_i)
    O = alpha.shape[1] // (T * Gi) * c_o
    Go = O // c_o
    cells_flat = cells.reshape(n, c_o * c_i)
    for task in prange(B * alpha.shape[1]):
        b, t = task // alpha.shape[1], task % alpha.shape[1]
        gi, go, s = t % Gi, t // Gi % Go, t // (Gi * Go)
        # mixture t: Σ_j alpha[b,t,j]·cells[j], one long contiguous axpy per cell (speed: mixing row by
        # row of 32 values, per output channel, spent 6% of the benchmark layer on loop overhead)
        mixed = np.zeros(c_o * c_i, dtype=A.dtype)
        for j in range(n):
            coef = alpha[b, t, j]
            cell = cells_flat[j]
            for ae in range(c_o * c_i):
                mixed[ae] += coef * cell[ae]
        # ... is the (c_o, c_i) block of output channels go·c_o + a, input channels gi·c_i + e, tap s
        for a in range(c_o):
            out = A[b, 0, go * c_o + a]
            for e in range(c_i):
                out[s * Gi * c_i + gi * c_i + e if taps_first else (gi * c_i + e) * T + s] = mixed[a * c_i + e]


# ----------------------------------------------------------------------------------------------------
# The wrappers fastconv.run calls
# ----------------------------------------------------------------------------------------------------
def _matrices(batch, groups, out_channels, taps, dtype, version):
    """The per-sample GEMM weights A (B, G, Og rounded up to the version's register block, taps), padded
    rows zero."""
    Og = out_channels // groups
    return np.zeros((batch, groups, round_up(Og, FLAT_MR if version == "flat" else MR), taps), dtype=dtype)


def _resolve(version, groups, in_channels, kernel_size, stride, padding, pixels):
    """The version to run ("auto": v5 for pointwise layers of at least POINTWISE_MIN_PIX pixels, v3 for
    depthwise, v4 for 1×1 layers at a stride, else v6 — conv2d's rules)."""
    unit_stride = tuple(stride) == (1, 1)
    planes = groups == in_channels                                  # one input channel per group
    pointwise = tuple(kernel_size) == (1, 1) and unit_stride and tuple(padding) == (0, 0)
    if version == "auto":
        if pointwise and pixels >= POINTWISE_MIN_PIX:
            return "pointwise"
        return "depthwise" if planes else "flat" if unit_stride or tuple(kernel_size) != (1, 1) else "slab"
    if version not in VERSIONS:
        raise ValueError(f"version must be 'auto' or one of {', '.join(VERSIONS)}, got {version!r}")
    if version == "depthwise" and not planes:
        raise NotApplicable("version='depthwise' needs groups = in_channels")
    if version == "pointwise" and not pointwise:
        raise NotApplicable("version='pointwise' needs a 1×1 kernel at stride 1 without padding")
    return version


def _taps_first(version):
    """v2 and v4 read channels-last patches: their weights are in (kh, kw, c) order."""
    return version in ("im2col", "slab")


def _convolve(x, A, bias, kernel_size, stride, padding, dilation, out_size, version):
    """y[b] = conv2d(x[b], A[b]) + bias[b] by the resolved version."""
    B, G, O = x.shape[0], A.shape[1], bias.shape[1]
    Og = O // G
    KH, KW = kernel_size
    y = np.empty((B, O, 1, *out_size), dtype=x.dtype)
    x5 = as_3d(x, 2)
    geometry = (*stride, *padding, *dilation)
    if version == "slab":
        conv_slab(x, A, bias, y.reshape(B, O, *out_size), KH, KW, *geometry)
    elif version == "flat":
        conv_flat(x5, A, bias, y, 1, KH, KW, 1, *stride, 0, *padding, 1, *dilation, numba.get_num_threads())
    elif version == "pointwise":
        conv_pointwise(x.reshape(B, G, x.shape[1] // G, -1), A, bias, y.reshape(B, G, Og, -1))
    elif version == "im2col":
        conv_im2col(to_channels_last(x5), A, bias, y, 1, KH, KW, 1, stride[0], stride[1], 0, padding[0],
                    padding[1], 1, dilation[0], dilation[1])
    else:
        for b in range(B):
            w5 = np.ascontiguousarray(A[b, :, :Og]).reshape(O, -1, 1, KH, KW)
            if version == "direct":
                conv_direct(x5[b:b + 1], w5, bias[b], y[b:b + 1], 1, stride[0], stride[1], 0, padding[0],
                            padding[1], 1, dilation[0], dilation[1])
            else:
                conv_planes(x5[b:b + 1], w5, bias[b], y[b:b + 1], 1, stride[0], stride[1], 0, padding[0],
                            padding[1], 1, dilation[0], dilation[1])
    return y.reshape(B, O, *out_size)


def _ones(batch, n, dtype):
    return np.ones((batch, n), dtype=dtype)


def _experts(w, taps_first):
    """w (N, Cout, Cg, kh, kw) flattened to (N, Cout, Cg·kh·kw), in v4's (kh, kw, c) order if taps_first."""
    N, O = w.shape[:2]
    return np.ascontiguousarray(w.transpose(0, 1, 3, 4, 2) if taps_first else w).reshape(N, O, -1)


def dynamic(x, w, attention, bias=None, *, stride, padding, dilation, groups, out_size, version="auto"):
    """y[b] = conv2d(x[b], Σ_k a[b,k]·w[k], Σ_k a[b,k]·bias[k]).  version: one of VERSIONS or "auto"."""
    K, O, Cg, KH, KW = w.shape
    version = _resolve(version, groups, x.shape[1], (KH, KW), stride, padding, int(np.prod(x.shape[2:])))
    B, dtype = x.shape[0], x.dtype
    A = _matrices(B, groups, O, Cg * KH * KW, dtype, version)
    aggregate_experts(_experts(w, _taps_first(version)), attention, _ones(B, KH * KW, dtype),
                      _ones(B, x.shape[1], dtype), _ones(B, O, dtype), A, _taps_first(version))
    biases = np.zeros((B, O), dtype=dtype) if bias is None else np.ascontiguousarray(attention @ bias)
    return _convolve(x, A, biases, (KH, KW), stride, padding, dilation, out_size, version)


def odconv(x, w, kernel_attention=None, spatial_attention=None, in_attention=None, out_attention=None, *,
           stride, padding, dilation, groups, out_size, version="auto"):
    """y[b] = a_f[b] ⊙ conv2d(a_c[b] ⊙ x[b], Σ_n a_w[b,n]·(a_s[b] ⊙ w[n])); None attentions are 1."""
    N, O, Cg, KH, KW = w.shape
    version = _resolve(version, groups, x.shape[1], (KH, KW), stride, padding, int(np.prod(x.shape[2:])))
    B, dtype = x.shape[0], x.dtype
    or_ones = lambda a, n: _ones(B, n, dtype) if a is None else a.reshape(B, n)
    A = _matrices(B, groups, O, Cg * KH * KW, dtype, version)
    aggregate_experts(_experts(w, _taps_first(version)), or_ones(kernel_attention, N),
                      or_ones(spatial_attention, KH * KW), or_ones(in_attention, x.shape[1]),
                      or_ones(out_attention, O), A, _taps_first(version))
    return _convolve(x, A, np.zeros((B, O), dtype=dtype), (KH, KW), stride, padding, dilation, out_size,
                     version)


def kernel_warehouse(x, cells, attention, *, out_channels, kernel_size, stride, padding, dilation, out_size,
                     version="auto"):
    """y[b] = conv2d(x[b], W_b) with W_b assembled from the warehouse cells by the mixtures alpha[b]."""
    version = _resolve(version, 1, x.shape[1], kernel_size, stride, padding, int(np.prod(x.shape[2:])))
    B, Cin = x.shape[:2]
    KH, KW = kernel_size
    A = _matrices(B, 1, out_channels, Cin * KH * KW, x.dtype, version)
    assemble_warehouse(cells, attention, A, KH, KW, _taps_first(version))
    return _convolve(x, A, np.zeros((B, out_channels), dtype=x.dtype), kernel_size, stride, padding, dilation,
                     out_size, version)


VERSIONS = ("direct", "im2col", "depthwise", "slab", "pointwise", "flat")
