"""Deformable convolution on the GPU with Triton: torchvision.ops.deform_conv2d (DCNv1/DCNv2).

Math
    y[b, o, ho, wo] = bias[o] + Σ_{u,v} Σ_{c<Cin_g} S[(b, ho, wo), (u, v, c)] · w[o, c, u, v]
    S = m[b, q, ho, wo] · bilinear(x[b, ci], ho·sh − ph + u·dh + Δy[b, q], wo·sw − pw + v·dw + Δx[b, q])
        (ci = g·Cin_g + c, og = ci // Cpg, q = og·kh·kw + u·kw + v; see kernels/deform_conv2d/cpu.py)

Shapes
    x (B, Cin, H, W)   w (Cout, Cin_g, kh, kw)   bias (Cout,)   offset (B, 2·G·kh·kw, Ho, Wo)
    mask (B, G·kh·kw, Ho, Wo)   y (B, Cout, Ho, Wo), contiguous.

Cost
    B·Cout·Ho·Wo·Cin_g·kh·kw multiply-adds (tl.dot), and B·Cin·kh·kw·Ho·Wo bilinear samples times the
    number of output-channel blocks per group, cdiv(Og, BLOCK_O) (1 for Og ≤ 64): a program samples its
    (pixels × channels) blocks itself.  Minimum traffic: x, w, offset, mask read once, y written once.

Parallel
    One program per (BLOCK_N output pixels, BLOCK_O output channels of one weight group).

Versions
    one: implicit GEMM.  For each kernel tap and each run of BLOCK_C input channels, the program samples
    the (BLOCK_N × BLOCK_C) block of S in registers — never written to memory, so no B·C·k²·Ho·Wo
    buffer exists — and multiplies it by the (BLOCK_C × BLOCK_O) block of the weight with tl.dot,
    accumulating the output tile in float32.

Caveats
    tl.dot needs blocks of at least 16 on each side; small channel counts are padded by masks (zeros).
    float32 inputs use input_precision="ieee" so results match the CPU to rounding.  Index arithmetic
    is in int32: tensors of more than 2³¹ elements are not supported.
"""
import torch
import triton
import triton.language as tl

from ..deformable.sampling_gpu import bilinear, check_int32_indexing


@triton.jit
def deform_conv2d_kernel(x_ptr, w_ptr, b_ptr, off_ptr, m_ptr, y_ptr,
                         NP, Cin, H, W, Cout, Ho, Wo, Cin_g, Og, Cpg, G, n_oblocks,
                         KH: tl.constexpr, KW: tl.constexpr, sh, sw, ph, pw, dh, dw,
                         HAS_MASK: tl.constexpr, HAS_BIAS: tl.constexpr,
                         BLOCK_N: tl.constexpr, BLOCK_O: tl.constexpr, BLOCK_C: tl.constexpr):
    g = tl.program_id(1) // n_oblocks
    o_local = (tl.program_id(1) % n_oblocks) * BLOCK_O + tl.arange(0, BLOCK_O)
    o = g * Og + o_local
    o_ok = o_local < Og
    s = tl.program_id(0) * BLOCK_N + tl.arange(0, BLOCK_N)              # output pixels (b, ho, wo)
    s_ok = s < NP
    wo = s % Wo
    ho = (s // Wo) % Ho
    b = s // (Wo * Ho)
    acc = tl.zeros((BLOCK_N, BLOCK_O), dtype=tl.float32)
    for tap in range(KH * KW):
        u = tap // KW
        v = tap % KW
        for c0 in range(0, Cin_g, BLOCK_C):
            c = c0 + tl.arange(0, BLOCK_C)
            c_ok = c < Cin_g
            ci = g * Cin_g + c
            q = (ci // Cpg) * (KH * KW) + tap                           # the channel's kernel point
            ok = s_ok[:, None] & c_ok[None, :]
            # S block (pixels × channels): offsets of each channel's offset group, then bilinear
            at = (b[:, None] * (2 * G * KH * KW) + 2 * q[None, :]) * (Ho * Wo) + (ho * Wo + wo)[:, None]
            dy = tl.load(off_ptr + at, mask=ok, other=0.0).to(tl.float32)
            dx = tl.load(off_ptr + at + Ho * Wo, mask=ok, other=0.0).to(tl.float32)
            py = (ho * sh - ph + u * dh).to(tl.float32)[:, None] + dy
            px = (wo * sw - pw + v * dw).to(tl.float32)[:, None] + dx
            sample = bilinear(x_ptr, (b[:, None] * Cin + ci[None, :]) * (H * W), py, px, H, W, W, 1, ok)
            if HAS_MASK:
                at_m = (b[:, None] * (G * KH * KW) + q[None, :]) * (Ho * Wo) + (ho * Wo + wo)[:, None]
                sample = sample * tl.load(m_ptr + at_m, mask=ok, other=0.0).to(tl.float32)
            # weight block (channels × outputs): w[o, c, u, v]
            wt = tl.load(w_ptr + ((o[None, :] * Cin_g + c[:, None]) * KH + u) * KW + v,
                         mask=c_ok[:, None] & o_ok[None, :], other=0.0).to(tl.float32)
            acc += tl.dot(sample, wt, input_precision="ieee")
    if HAS_BIAS:
        acc += tl.load(b_ptr + o, mask=o_ok, other=0.0).to(tl.float32)[None, :]
    at_y = (b[:, None] * Cout + o[None, :]) * (Ho * Wo) + (ho * Wo + wo)[:, None]
    tl.store(y_ptr + at_y, acc.to(y_ptr.dtype.element_ty), mask=s_ok[:, None] & o_ok[None, :])


def deform_conv2d(x, w, bias=None, offset=None, mask=None, *, stride, padding, dilation, groups, offset_groups,
                  out_size):
    B, Cin, H, W = x.shape
    Cout, Cin_g, kh, kw = w.shape
    Ho, Wo = out_size
    x, w, offset = x.contiguous(), w.contiguous(), offset.contiguous()
    has_mask = mask is not None
    y = torch.empty((B, Cout, Ho, Wo), dtype=x.dtype, device=x.device)
    check_int32_indexing(x, w, offset, mask, y)
    Og = Cout // groups
    BLOCK_N, BLOCK_O, BLOCK_C = 32, max(16, min(64, triton.next_power_of_2(Og))), 16
    n_oblocks = triton.cdiv(Og, BLOCK_O)
    grid = (triton.cdiv(B * Ho * Wo, BLOCK_N), groups * n_oblocks)
    deform_conv2d_kernel[grid](x, w, x if bias is None else bias, offset,
                               mask.contiguous() if has_mask else offset, y,   # a dummy pointer if unused
                               B * Ho * Wo, Cin, H, W, Cout, Ho, Wo, Cin_g, Og, Cin // offset_groups,
                               offset_groups, n_oblocks, kh, kw, *stride, *padding, *dilation,
                               HAS_MASK=has_mask, HAS_BIAS=bias is not None,
                               BLOCK_N=BLOCK_N, BLOCK_O=BLOCK_O, BLOCK_C=BLOCK_C)
    return y
