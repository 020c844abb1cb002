"""Depthwise separable convolution in Triton, fused: the depthwise tile is computed in registers and
multiplied into the pointwise accumulator, never stored.

Math
    d[b, c, oh, ow] = Σ_{kh, kw} w[c, kh, kw] · x[b, c // m, oh·sh − ph + kh·dh, ow·sw − pw + kw·dw]
    y[b, o, oh, ow] = bias[o] + Σ_c pw[o, c] · d[b, c, oh, ow]          (m = Cmid / C; zero padding)

Shapes
    x (B, C, H, W)   w (Cmid, 1, KH, KW)   pw (O, Cmid)   bias (O,)   y (B, O, OH, OW)

Cost
    B·OH·OW·Cmid·(KH·KW + O) multiply-adds; the depthwise part is recomputed once per block of BLOCK_O
    output channels (once in total when O <= BLOCK_O, the usual case for MobileNet projections).
    Traffic: x read (with KH·KW-fold reuse from cache), y written once; d is never written.

Parallel
    One program per (block of BLOCK_P output pixels, block of BLOCK_O output channels).

Versions
    One, fused: for each chunk of BLOCK_C intermediate channels, the depthwise tile D (BLOCK_P ×
    BLOCK_C) is accumulated in fp32 registers over the KH·KW taps, then ``acc += tl.dot(D, pwᵀ tile)``.
    Why it saves memory traffic: the unfused pair writes d (B·Cmid·OH·OW values, 6× y for a MobileNetV2
    projection) to global memory and reads it back; here it only ever exists as a register tile.

Caveats
    fp32 accumulation; float32 tl.dot with input_precision="ieee" so results match torch's float32.
"""
import torch
import triton
import triton.language as tl


@triton.jit
def separable_kernel(x_ptr, w_ptr, pw_ptr, bias_ptr, y_ptr,
                     B, C, H, W, CM, O, OH, OW, sh, sw, ph, pw, dh, dw,
                     KH: tl.constexpr, KW: tl.constexpr, HAS_BIAS: tl.constexpr,
                     BLOCK_P: tl.constexpr, BLOCK_O: tl.constexpr, BLOCK_C: tl.constexpr):
    p = tl.program_id(0) * BLOCK_P + tl.arange(0, BLOCK_P)
    o = tl.program_id(1) * BLOCK_O + tl.arange(0, BLOCK_O)
    p_ok, o_ok = p < B * OH * OW, o < O
    ow = p % OW
    oh = (p // OW) % OH
    b = p // (OW * OH)
    m = CM // C
    acc = tl.zeros((BLOCK_P, BLOCK_O), dtype=tl.float32)
    for c0 in range(0, CM, BLOCK_C):
        c = c0 + tl.arange(0, BLOCK_C)
        c_ok = c < CM
        # the depthwise tile D[p, c], in registers only
        d = tl.zeros((BLOCK_P, BLOCK_C), dtype=tl.float32)
        for kh in tl.static_range(KH):
            ih = oh * sh - ph + kh * dh
            for kw in tl.static_range(KW):
                iw = ow * sw - pw + kw * dw
                inside = p_ok & (ih >= 0) & (ih < H) & (iw >= 0) & (iw < W)
                offs = ((b[:, None] * C + c[None, :] // m) * H + ih[:, None]) * W + iw[:, None]
                xv = tl.load(x_ptr + offs, mask=inside[:, None] & c_ok[None, :], other=0.0).to(tl.float32)
                wv = tl.load(w_ptr + (c * KH + kh) * KW + kw, mask=c_ok, other=0.0).to(tl.float32)
                d += xv * wv[None, :]
        # the pointwise product of the tile: acc[p, o] += Σ_c D[p, c] · pw[o, c]
        pwt = tl.load(pw_ptr + o[None, :] * CM + c[:, None], mask=c_ok[:, None] & o_ok[None, :], other=0.0)
        acc += tl.dot(d, pwt.to(tl.float32), input_precision="ieee")
    if HAS_BIAS:
        acc += tl.load(bias_ptr + o, mask=o_ok, other=0.0).to(tl.float32)[None, :]
    offs = ((b[:, None] * O + o[None, :]) * OH + oh[:, None]) * OW + ow[:, None]
    tl.store(y_ptr + offs, acc.to(y_ptr.dtype.element_ty), mask=p_ok[:, None] & o_ok[None, :])


def separable(x, w, pointwise, bias=None, *, stride, padding, dilation, out_size):
    x, w = x.contiguous(), w.contiguous()
    B, C, H, W = x.shape
    CM, _, KH, KW = w.shape
    O = pointwise.shape[0]
    pw = pointwise.reshape(O, CM).contiguous()
    OH, OW = out_size
    y = torch.empty((B, O, OH, OW), dtype=x.dtype, device=x.device)
    BLOCK_P, BLOCK_O, BLOCK_C = 32, 16 if O <= 16 else 32, 16
    grid = (triton.cdiv(B * OH * OW, BLOCK_P), triton.cdiv(O, BLOCK_O))
    separable_kernel[grid](x, w, pw, x if bias is None else bias, y, B, C, H, W, CM, O, OH, OW,
                           *stride, *padding, *dilation, KH=KH, KW=KW, HAS_BIAS=bias is not None,
                           BLOCK_P=BLOCK_P, BLOCK_O=BLOCK_O, BLOCK_C=BLOCK_C)
    return y
