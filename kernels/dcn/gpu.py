"""DCNv3 and DCNv4 core ops on the GPU with Triton (the semantics of kernels/dcn/cpu.py), channels last.

Math
    y[n, ho, wo, g·D + d] = Σ_{p<P} m[n, ho, wo, g, p] · bilinear(x[n, :, :, g·D + d], y_p, x_p)
        x_p = wo·sw − pw + hw + (i·dw − hw + Δx)·offset_scale,  y_p = ho·sh − ph + hh + (j·dh − hh + Δy)·offset_scale
    (point p = i·kh + j x-major, the centre skipped when remove_center; dcnv3 reads Δ at g·2P + 2p and m
    at g·P + p of its two tensors, dcnv4 both from offset_mask at g·3P + 2p and g·3P + 2P + p).

Shapes
    x (N, H, W, C = G·D)   y (N, Ho, Wo, C)   offsets / weights seen as (N·Ho·Wo, row length), contiguous.

Cost
    N·Ho·Wo·C·P·5 multiply-adds; the positions and bilinear weights N·Ho·Wo·G·P times.

Parallel
    One program per (BLOCK_Q output pixels, group g): a BLOCK_Q × D tile of the output.

Versions
    one: the DCNv4 decomposition.  DCNv3's CUDA kernel gives every output element its own thread,
    which reloads the point's offsets and weight and redoes the bilinear arithmetic for each of the D
    channels of the group.  Here a program row handles all D channels of one (pixel, group): Δx, Δy and
    m are loaded once per pixel as (BLOCK_Q,) vectors, the position and corner weights are computed on
    (BLOCK_Q, 1) blocks, and only the four neighbour loads are (BLOCK_Q, D) — contiguous runs of D
    channels (channels last), i.e. coalesced, vectorisable loads.  That sharing (fewer loads of the
    offsets and weights, less index arithmetic, wide channel loads) is DCNv4's speed idea.

Caveats
    float32 accumulation.  D is padded to a power of two (masked).  int32 index arithmetic: tensors of
    more than 2³¹ elements are not supported.  No tl.dot: the sum over points is
    an elementwise multiply-add, so there is no minimum block size.
"""
import torch
import triton
import triton.language as tl

from ..deformable.sampling_gpu import bilinear, check_int32_indexing


@triton.jit
def dcn_kernel(x_ptr, off_ptr, off_row, off_g, m_ptr, m_row, m_base, m_g, y_ptr,
               NQ, H, W, Ho, Wo, C, D, P, kh, kw, sh, sw, ph, pw, dh, dw, scale, remove_center,
               BLOCK_Q: tl.constexpr, BLOCK_D: tl.constexpr):
    g = tl.program_id(1)
    q = tl.program_id(0) * BLOCK_Q + tl.arange(0, BLOCK_Q)           # output pixels (n, ho, wo)
    d = tl.arange(0, BLOCK_D)                                         # channels of group g
    q_ok = q < NQ
    wo = q % Wo
    ho = (q // Wo) % Ho
    n = q // (Wo * Ho)
    hh = (dh * (kh - 1)) // 2
    hw = (dw * (kw - 1)) // 2
    centre = (kw // 2) * kh + kh // 2
    # neighbour (r, c) of pixel row q, channel d sits at x[n, r, c, g·D + d]
    base = (n * H * W * C + g * D)[:, None] + d[None, :]
    ok = q_ok[:, None] & (d < D)[None, :]
    acc = tl.zeros((BLOCK_Q, BLOCK_D), dtype=tl.float32)
    for p in range(P):
        pp = p + ((p >= centre) & (remove_center != 0)).to(tl.int32)  # skip the centre point
        i = pp // kh
        j = pp % kh
        # once per (pixel, group, point): offsets, weight, position — shared by the D channels
        dx = tl.load(off_ptr + q * off_row + g * off_g + 2 * p, mask=q_ok, other=0.0).to(tl.float32)
        dy = tl.load(off_ptr + q * off_row + g * off_g + 2 * p + 1, mask=q_ok, other=0.0).to(tl.float32)
        m = tl.load(m_ptr + q * m_row + m_base + g * m_g + p, mask=q_ok, other=0.0).to(tl.float32)
        px = (wo * sw - pw + hw).to(tl.float32) + ((i * dw - hw).to(tl.float32) + dx) * scale
        py = (ho * sh - ph + hh).to(tl.float32) + ((j * dh - hh).to(tl.float32) + dy) * scale
        acc += m[:, None] * bilinear(x_ptr, base, py[:, None], px[:, None], H, W, W * C, C, ok)
    tl.store(y_ptr + q[:, None] * C + g * D + d[None, :], acc.to(y_ptr.dtype.element_ty), mask=ok)


def _run(x, off, off_g, msk, m_base, m_g, *, kernel_size, stride, padding, dilation, group, offset_scale,
         remove_center, out_size):
    N, H, W, C = x.shape
    Ho, Wo = out_size
    x, off, msk = x.contiguous(), off.contiguous(), msk.contiguous()
    y = torch.empty((N, Ho, Wo, C), dtype=x.dtype, device=x.device)
    check_int32_indexing(x, off, msk, y)
    D = C // group
    P = kernel_size[0] * kernel_size[1] - int(remove_center)
    BLOCK_Q = 32
    grid = (triton.cdiv(N * Ho * Wo, BLOCK_Q), group)
    dcn_kernel[grid](x, off, off.shape[-1], off_g, msk, msk.shape[-1], m_base, m_g, y,
                     N * Ho * Wo, H, W, Ho, Wo, C, D, P, *kernel_size, *stride, *padding, *dilation,
                     float(offset_scale), int(remove_center),
                     BLOCK_Q=BLOCK_Q, BLOCK_D=triton.next_power_of_2(D))
    return y


def dcnv3(x, offset, mask, *, kernel_size, remove_center, **params):
    """DCNv3 core op: offset (N, Ho, Wo, G·P·2), mask (N, Ho, Wo, G·P)."""
    P = kernel_size[0] * kernel_size[1] - int(remove_center)
    return _run(x, offset, 2 * P, mask, 0, P, kernel_size=kernel_size, remove_center=remove_center, **params)


def dcnv4(x, offset_mask, *, kernel_size, remove_center, **params):
    """DCNv4 core op: offset_mask (N, Ho, Wo, L), group g's block [2P offsets][P weights] at g·3P."""
    P = kernel_size[0] * kernel_size[1] - int(remove_center)
    return _run(x, offset_mask, 3 * P, offset_mask, 2 * P, 3 * P, kernel_size=kernel_size,
                remove_center=remove_center, **params)
