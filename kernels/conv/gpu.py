"""Convolution on the GPU with Triton: conv1d, conv2d, conv3d and their special cases (depthwise,
pointwise, grouped, dilated), exactly as torch.nn.functional.conv{1,2,3}d. The twin of cpu.py.

Math (3 spatial axes; conv2d is the case D = KD = 1, conv1d also has H = KH = 1)
    With G groups, Cg = C/G input and Og = O/G output channels per group, output channel o in group
    g = o // Og:

    y[b, o, od, oh, ow] = bias[o] + Σ_{c<Cg} Σ_{kd<KD} Σ_{kh<KH} Σ_{kw<KW}
                          w[o, c, kd, kh, kw] · x[b, g·Cg + c, od·sd − pd + kd·dd,
                                                               oh·sh − ph + kh·dh,
                                                               ow·sw − pw + kw·dw]
    where x reads as zero outside [0, D) × [0, H) × [0, W) (the zero padding).

    As a matrix product per group g (the implicit GEMM of v2), with T = KD·KH·KW taps:
        C[m, n] = Σ_kk A[m, kk]·Bw[kk, n]      m = ((b·OD + od)·OH + oh)·OW + ow   (M = B·OD·OH·OW rows)
                                               n = o − g·Og                      (N = Og columns)
                                               kk = tap·Cg + c, tap = (kd·KH + kh)·KW + kw   (K = T·Cg)
        A[m, kk] = x[b, g·Cg + c, od·sd − pd + kd·dd, ...]  (never stored: read from x per tile)
        Bw[kk, n] = w[g·Og + n, c, kd, kh, kw]               (the weight, rearranged once per call)

Shapes
    x (B, C, D, H, W) any strides (v2 first makes it channels-last, pixel rows padded to 16 elements)
    w (O, Cg, KD, KH, KW)
    bias (O,)   y (B, O, OD, OH, OW) contiguous, allocated here.
    OD = (D + 2·pd − dd·(KD−1) − 1) // sd + 1, likewise OH, OW (given by the plan as ``out_size``).

Cost
    B·O·OD·OH·OW·Cg·KD·KH·KW multiply-adds (2 FLOPs each); minimum traffic: x, w, bias read once,
    y written once. v2's layout change adds one read and one write of x (none if x is channels-last).

Parallel
    v1: one program per (output row segment of BLOCK_W pixels, block of BLOCK_C output channels).
    v2: one program per (BLOCK_M output pixels, BLOCK_N output channels of one group). The program id
    runs over the N tiles fastest, so the programs sharing an A tile (the same input pixels) run
    together and find it in L2; the weight (small) stays in L2 for everyone.
    Programs write disjoint tiles of y: no atomics, no races.

Versions
    v1 ``conv_direct_kernel``  the formula on the CUDA cores: for every input channel of the group and
                     every tap, acc[ow, o] += x[pixel(ow, tap), channel(o)] · w[o, c, tap], an outer
                     product of a row of BLOCK_W input values and BLOCK_C weights. No tensor cores, no
                     layout change, every load coalesced along ow (NCHW) or o (channels-last).
                     The right kernel when Cg = 1 (depthwise): K = T is too short for a matrix product
                     (the tensor cores would multiply 16-wide K tiles holding 9 taps), and the op is
                     memory-bound, so converting x to channels-last would cost more than it saves.
    v2 ``conv_gemm_kernel``    implicit GEMM on the tensor cores (tl.dot, fp32 accumulator). One loop
                     over K steps = (tap, block of BLOCK_K channels): each step computes the input
                     pixel of every row for that tap (a vector of BLOCK_M offsets plus one scalar tap
                     offset: no per-element index arithmetic), loads A (BLOCK_M × BLOCK_K) and Bw
                     (BLOCK_K × BLOCK_N) and multiplies. A single flat loop (not taps × channel blocks)
                     so that Triton's software pipeline (num_stages) prefetches the next step's tiles
                     even when Cg fits in one BLOCK_K.  x is made channels-last (NDHWC) in the
                     wrapper: then an A row is BLOCK_K consecutive channels of one pixel, one vector
                     load whatever the stride, and the K axis is contiguous as tl.dot's A operand
                     wants; each x element is read T·Og/BLOCK_N times by the GEMM, so the one extra
                     pass pays.  Pointwise (1×1) convolution is the case T = 1: a plain GEMM.
    ``conv`` picks v1 when Cg = 1, else v2.

Caveats
    Accumulation in float32 (float16, bfloat16 and float32 inputs; float64 only when interpreting).
    float32 tl.dot is exact ("ieee") unless allow_tf32 (see kernels/_gpu_gemm.py).
    Offsets into x and y and the row index m are 64-bit (tensors and M = B·OD·OH·OW may exceed 2^31);
    one image (C·D·H·W elements, v1 keeps 32-bit offsets inside it), the weight and the number of
    programs must stay below 2^31.
    v2 pads a group's Cg channels to BLOCK_K >= 16 and its Og channels to BLOCK_N >= 16: a grouped
    convolution with 4 channels per group (ResNeXt) uses a quarter of each tensor-core tile.
"""
import torch
import triton
import triton.language as tl

from .._gpu_gemm import (GEMM_CONFIGS, GEMM_INTERPRETER_CONFIG, autotuned, channels_last, config, dtype_params,
                         fit_blocks, gemm_step, group_stride, in_range, store_tile, weight_rows)
from .._index import as_3d, pad3

# Output tiles (columns × channels) from 8 to 32 accumulators per thread: fewer registers, more warps
# in flight to hide memory latency; more, fewer loads per output. The autotuner picks.
DIRECT_CONFIGS = [config(BLOCK_W=w, BLOCK_C=c, num_warps=nw, num_stages=2)
                  for w, c, nw in ((16, 64, 2), (16, 128, 4), (32, 32, 2), (32, 32, 4), (32, 64, 4), (64, 16, 4),
                                   (64, 32, 4), (64, 64, 4), (128, 16, 4), (128, 16, 8), (128, 32, 8))]
DIRECT_INTERPRETER_CONFIG = config(BLOCK_W=64, BLOCK_C=64)


@triton.jit
def valid_taps(o, I, K, s, p, d):
    """The taps [lo, hi) through which output o reads a real input: 0 <= o·s − p + k·d < I.

    Both numerators are clamped to be >= 0 (they are then the same under Triton's truncating division on
    the GPU and numpy's flooring one in the interpreter); an output wholly in the padding gets lo >= hi.
    """
    first = o * s - p
    lo = tl.cdiv(tl.maximum(-first, 0), d)
    hi = tl.minimum(K, (tl.maximum(I - 1 - first, -1) + d) // d)
    return lo, hi


# ----------------------------------------------------------------------------------------------------
# v1: direct, on the CUDA cores (the fast path for depthwise)
# ----------------------------------------------------------------------------------------------------
@autotuned(DIRECT_CONFIGS, DIRECT_INTERPRETER_CONFIG,
           key=["B", "O", "OH", "OW", "Cg", "KH", "KW"], prune=fit_blocks(BLOCK_W="OW", BLOCK_C="O"))
@triton.jit
def conv_direct_kernel(x_ptr, wt_ptr, bias_ptr, y_ptr,
                       B, O, D, H, W, OD, OH, OW, Cg, Og, KD, KH, KW,
                       sd, sh, sw, pd, ph, pw, dd, dh, dw,
                       sxb, sxc, sxd, sxh, sxw, syb, syc, syd, syh, syw,
                       ACC: tl.constexpr, BLOCK_W: tl.constexpr, BLOCK_C: tl.constexpr):
    # which tile this program owns: columns ow of output row (b, od, oh) × output channels o.
    # Consecutive programs walk along the image (same channels), so neighbouring rows' reads of the
    # same input rows (the kernel's vertical overlap) hit L2.
    pid = tl.program_id(0)
    n_w = tl.cdiv(OW, BLOCK_W)
    ow = (pid % n_w) * BLOCK_W + tl.arange(0, BLOCK_W)
    row = pid // n_w
    oh = row % OH
    od = row // OH % OD
    b = row // (OH * OD) % B
    o = row // (OH * OD * B) * BLOCK_C + tl.arange(0, BLOCK_C)
    ow_ok = ow < OW
    o_ok = o < O
    # output channel o reads the input channels (o // Og)·Cg + c of its group. Addresses: one 64-bit
    # base per input row (a scalar) plus 32-bit offsets inside the image, so that the per-element
    # state is 32-bit (fewer registers, more warps in flight for this memory-bound kernel)
    x_image = x_ptr + b.to(tl.int64) * sxb
    x_chan = (o // Og) * Cg * sxc
    w_tap = wt_ptr + o                     # wt is (Cg·T, O): one tap's weights, channels contiguous

    # the taps whose input row (id, ih) is inside x: rows in the padding are never visited
    kd_lo, kd_hi = valid_taps(od, D, KD, sd, pd, dd)
    kh_lo, kh_hi = valid_taps(oh, H, KH, sh, ph, dh)

    acc = tl.zeros((BLOCK_W, BLOCK_C), dtype=ACC)
    for c in range(Cg):
        for kd in range(kd_lo, kd_hi):
            for kh in range(kh_lo, kh_hi):
                x_row = x_image + (tl.cast(c, tl.int64) * sxc
                                   + tl.cast(od * sd - pd + kd * dd, tl.int64) * sxd
                                   + tl.cast(oh * sh - ph + kh * dh, tl.int64) * sxh)
                for kw in range(KW):
                    # acc[ow, o] += x[b, g·Cg + c, id, ih, ow·sw − pw + kw·dw] · w[o, c, kd, kh, kw]
                    iw = ow * sw - pw + kw * dw
                    ok = ow_ok & in_range(iw, W)
                    xv = tl.load(x_row + x_chan[None, :] + (iw * sxw)[:, None],
                                 mask=ok[:, None] & o_ok[None, :], other=0.0)
                    wv = tl.load(w_tap + (((c * KD + kd) * KH + kh) * KW + kw) * O, mask=o_ok, other=0.0)
                    acc += xv.to(ACC) * wv.to(ACC)[None, :]

    y_row = b.to(tl.int64) * syb + od.to(tl.int64) * syd + oh.to(tl.int64) * syh + ow.to(tl.int64) * syw
    store_tile(acc, y_ptr, bias_ptr, y_row, ow_ok, o, o_ok, syc)


# ----------------------------------------------------------------------------------------------------
# v2: implicit GEMM on the tensor cores
# ----------------------------------------------------------------------------------------------------
@autotuned(GEMM_CONFIGS, GEMM_INTERPRETER_CONFIG,
           key=["M", "Og", "Cg", "KD", "KH", "KW"], prune=fit_blocks(BLOCK_M="M", BLOCK_N="Og", BLOCK_K="Cg"))
@triton.jit
def conv_gemm_kernel(x_ptr, wt_ptr, bias_ptr, y_ptr,
                     M, P, G, D, H, W, OD, OH, OW, Cg, Ck, Og, KD, KH, KW,
                     sd, sh, sw, pd, ph, pw, dd, dh, dw,
                     sxb, sxc, sxd, sxh, sxw, sxg, swk, syb, syc,
                     ACC: tl.constexpr, DOT: tl.constexpr, PRECISION: tl.constexpr,
                     BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr):
    # which tile this program owns: rows m (output pixels) × columns n (output channels of group g)
    pid = tl.program_id(0)
    n_tiles = tl.cdiv(Og, BLOCK_N)
    g = pid % (G * n_tiles) // n_tiles
    n = pid % n_tiles * BLOCK_N + tl.arange(0, BLOCK_N)
    n_ok = n < Og
    # rows m (64-bit: B·OD·OH·OW may pass 2^31) are pixel q = (od·OH + oh)·OW + ow of image b.
    # P = OD·OH·OW is an argument, not computed here, so that Triton sees when it is a multiple of 16
    # and can then store 16 consecutive rows as one vector.
    m = (pid // (G * n_tiles)).to(tl.int64) * BLOCK_M + tl.arange(0, BLOCK_M)
    m_ok = m < M
    b = m // P
    q64 = m % P
    q = q64.to(tl.int32)                   # inside one image: < 2^31
    ow = q % OW
    oh = q // OW % OH
    od = q // (OW * OH)
    id0 = od * sd - pd
    ih0 = oh * sh - ph
    iw0 = ow * sw - pw
    x_row = (b * sxb + g.to(tl.int64) * sxg + id0.to(tl.int64) * sxd
             + ih0.to(tl.int64) * sxh + iw0.to(tl.int64) * sxw)
    k = tl.arange(0, BLOCK_K)

    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=ACC)
    n_cblocks = tl.cdiv(Cg, BLOCK_K)
    T = KD * KH * KW
    for step in range(T * n_cblocks):
        # K step: tap (kd, kh, kw) and input channels c of the group
        tap = step // n_cblocks
        c = step % n_cblocks * BLOCK_K + k
        kw = tap % KW
        kh = tap // KW % KH
        kd = tap // (KW * KH)
        # every row reads its pixel shifted by the tap; rows whose pixel is in the padding read zeros
        ok = m_ok & in_range(id0 + kd * dd, D) & in_range(ih0 + kh * dh, H) & in_range(iw0 + kw * dw, W)
        tap_off = (tl.cast(kd * dd, tl.int64) * sxd + tl.cast(kh * dh, tl.int64) * sxh
                   + tl.cast(kw * dw, tl.int64) * sxw)
        acc = gemm_step(acc, x_ptr, x_row + tap_off, ok, c, Ck, sxc,
                        wt_ptr, (g * T + tap) * Cg + c, Cg, n, swk, DOT, PRECISION)

    # y is contiguous (B, O, OD·OH·OW): row m is at b·syb + q, so consecutive rows store consecutively
    store_tile(acc, y_ptr, bias_ptr, b * syb + q64, m_ok, g * Og + n, n_ok, syc)


# ----------------------------------------------------------------------------------------------------
# The wrapper fastconv.run calls
# ----------------------------------------------------------------------------------------------------
def conv(x, w, bias=None, *, stride, padding, dilation, groups, out_size, version="auto", allow_tf32=None):
    """y = conv{nd}d(x, w, bias) on torch tensors (CUDA, or CPU when interpreting); y is contiguous.

    version: "direct" (v1), "gemm" (v2) or "auto" (v1 when w.shape[1] = 1, else v2).
    allow_tf32: float32 products in tf32 on the tensor cores (v2); None follows
    torch.backends.cuda.matmul.allow_tf32, which is False unless turned on.
    """
    nd = x.dim() - 2
    x5, w5 = as_3d(x, nd), as_3d(w, nd)
    B, O, Cg = x.shape[0], w.shape[0], w.shape[1]
    Og = O // groups
    KD, KH, KW = w5.shape[2:]
    T = KD * KH * KW
    out5 = pad3(out_size, nd, 1)
    y = torch.empty((B, O, *out5), dtype=x.dtype, device=x.device)
    sizes = (*x5.shape[2:], *out5)
    geometry = (KD, KH, KW, *pad3(stride, nd, 1), *pad3(padding, nd, 0), *pad3(dilation, nd, 1))
    precision = dtype_params(x.dtype, allow_tf32)
    if version == "auto":
        version = "direct" if Cg == 1 else "gemm"
    if version == "direct":
        wt = w5.reshape(O, Cg * T).t().contiguous()          # (Cg·T, O): a tap's O weights contiguous
        grid = lambda meta: (triton.cdiv(out5[2], meta["BLOCK_W"]) * B * out5[0] * out5[1]
                             * triton.cdiv(O, meta["BLOCK_C"]),)
        conv_direct_kernel[grid](x5, wt, bias, y, B, O, *sizes, Cg, Og, *geometry, *x5.stride(),
                                 *y.stride(), ACC=precision["ACC"])
    elif version == "gemm":
        # Layout change (visible on purpose): channels-last x, so the K axis (channels) is contiguous
        # and every pixel's row 16-byte aligned. A no-op when x already is such a view.
        x5, Ck = channels_last(x5, groups)
        # Bw[g, tap, c, n] = w[g·Og + n, c, tap]: the weight as G matrices (K = T·Cg) × (N = Og)
        wt = weight_rows(w5.reshape(groups, Og, Cg, T).permute(0, 3, 2, 1))
        M = B * out5[0] * out5[1] * out5[2]
        grid = lambda meta: (triton.cdiv(M, meta["BLOCK_M"]) * groups * triton.cdiv(Og, meta["BLOCK_N"]),)
        conv_gemm_kernel[grid](x5, wt, bias, y, M, M // B, groups, *sizes, Cg, Ck, Og, *geometry,
                               *x5.stride(), group_stride(x5, groups), wt.stride(2), *y.stride()[:2],
                               **precision)
    else:
        raise ValueError(f"version must be 'auto', 'direct' or 'gemm', got {version!r}")
    return y.reshape((B, O, *out_size))


VERSIONS = ("direct", "gemm")
