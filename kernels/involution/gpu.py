"""Involution on the GPU with Triton: a K×K kernel per output pixel, shared by a group's channels.

Math
    y[b, c, oh, ow] = Σ_{kh<KH} Σ_{kw<KW} w[b, g, kh, kw, oh, ow] · x[b, c, oh·sh − ph + kh·dh,
                                                                       ow·sw − pw + kw·dw]
    with g = c // Cg (Cg = C/G channels per group); x reads as zero outside [0, H) × [0, W).

Shapes
    x (B, C, H, W)   w (B, G, KH, KW, OH, OW)   y (B, C, OH, OW), contiguous.

Cost
    B·C·OH·OW·KH·KW multiply-adds. Minimum traffic: x, w read once, y written once; each weight loaded
    by a program serves its BLOCK_C channels.

Parallel
    One program per (b, g, block of BLOCK_C channels of the group, block of BLOCK_P output pixels
    flattened as oh·OW + ow). It owns a BLOCK_C × BLOCK_P tile of y.

Versions
    v1 (the only one) for each tap (kh, kw): load the tap's weights for the BLOCK_P pixels (a vector,
       contiguous in w) and the BLOCK_C × BLOCK_P input values they read (masked to the image, so
       padding loads zeros), and accumulate their product into the tile. No matrix product: each
       pixel has its own weights, so the reduction is a plain multiply-add per tap (tl.dot does not
       apply).

Caveats
    Accumulates in float32 whatever the input dtype; the result is cast back to it.
"""
import torch
import triton
import triton.language as tl

BLOCK_C, BLOCK_P = 16, 64


@triton.jit
def _involution_kernel(x_ptr, w_ptr, y_ptr, C, H, W, G, KH, KW, OH, OW, sh, sw, ph, pw, dh, dw,
                       BLOCK_C: tl.constexpr, BLOCK_P: tl.constexpr):
    bg = tl.program_id(0)
    b, g = bg // G, bg % G
    Cg = C // G
    r = tl.program_id(1) * BLOCK_C + tl.arange(0, BLOCK_C)           # channels g·Cg + r of the group
    p = tl.program_id(2) * BLOCK_P + tl.arange(0, BLOCK_P)           # output pixels oh·OW + ow
    c_ok = r < Cg
    p_ok = p < OH * OW
    oh, ow = p // OW, p % OW
    c = g * Cg + r
    x_base = x_ptr + (b * C + c[:, None]).to(tl.int64) * (H * W)
    w_base = w_ptr + (bg * KH * KW).to(tl.int64) * (OH * OW) + p
    acc = tl.zeros((BLOCK_C, BLOCK_P), dtype=tl.float32)
    for kh in range(KH):
        ih = oh * sh - ph + kh * dh
        for kw in range(KW):
            iw = ow * sw - pw + kw * dw
            # this tap's weight for every pixel, then the input each pixel reads (zero outside)
            weight = tl.load(w_base + (kh * KW + kw) * OH * OW, mask=p_ok, other=0.0).to(tl.float32)
            inside = p_ok & (ih >= 0) & (ih < H) & (iw >= 0) & (iw < W)
            xv = tl.load(x_base + (ih * W + iw)[None, :], mask=c_ok[:, None] & inside[None, :], other=0.0)
            acc += weight[None, :] * xv.to(tl.float32)
    y_ptrs = y_ptr + (b * C + c[:, None]).to(tl.int64) * (OH * OW) + p[None, :]
    tl.store(y_ptrs, acc.to(y_ptr.dtype.element_ty), mask=c_ok[:, None] & p_ok[None, :])


def involution(x, w, *, stride, padding, dilation):
    """y = involution(x, w) for torch tensors (CUDA, or CPU under TRITON_INTERPRET=1)."""
    x, w = x.contiguous(), w.contiguous()
    B, C, H, W = x.shape
    _, G, KH, KW, OH, OW = w.shape
    y = torch.empty((B, C, OH, OW), dtype=x.dtype, device=x.device)
    grid = (B * G, triton.cdiv(C // G, BLOCK_C), triton.cdiv(OH * OW, BLOCK_P))
    _involution_kernel[grid](x, w, y, C, H, W, G, KH, KW, OH, OW, *stride, *padding, *dilation,
                             BLOCK_C=BLOCK_C, BLOCK_P=BLOCK_P)
    return y
