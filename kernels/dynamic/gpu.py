"""Input-dependent kernels on the GPU with Triton: dynamic convolution (CondConv), ODConv, KernelWarehouse.

One implicit-GEMM convolution kernel serves the three kinds. Unlike the CPU kernels (cpu.py), which
aggregate each sample's kernel once into memory, here each program AGGREGATES ITS OWN WEIGHT TILE IN
REGISTERS: the (BLOCK_R taps × BLOCK_O output channels) tile of W_b is mixed from the experts (or the
warehouse cells) right before the tl.dot that uses it, so no per-sample kernel tensor is ever written to
or read back from global memory. On a GPU that trade is the right one: the extra mixing is K (or n)
fused multiply-adds per weight per pixel block, cheap next to the BLOCK_P-wide dot it feeds, while a
materialised (B, Cout, Cg·k²) tensor would cost a kernel launch and a round trip through HBM.

Math (G groups, Cg = Cin/G, Og = Cout/G, o = g·Og + q, r = (c·kh + u)·kw + v, t = u·kw + v)
    EXPERTS (dynamic, odconv):  W_b[o, r] = a_f[b,o]·a_c[b,g·Cg+c]·a_s[b,t]·Σ_n a_w[b,n]·w[n,o,r]
                                bias_b[o] = Σ_n a_w[b,n]·bias[n,o]   (dynamic only)
    WAREHOUSE (kernel_warehouse, G = 1):  W_b[go·c_o + a, (gi·c_i + e)·kh·kw + t] = Σ_j alpha[b,m,j]·cells[j,a,e],
                                m = (t·Go + go)·Gi + gi
    y[b, o, oh, ow] = bias_b[o] + Σ_r W_b[o, r]·x[b, g·Cg + c, oh·sh − ph + u·dh, ow·sw − pw + v·dw]

Shapes
    x (B, Cin, H, W), y (B, Cout, OH, OW), w (N, Cout, Cg·kh·kw), bias (N, Cout), a_w (B, N), a_s (B, kh·kw),
    a_c (B, Cin), a_f (B, Cout), cells (n, c_o, c_i), alpha (B, m, n); all contiguous. The wrapper passes
    ones for an attention that is None.

Cost
    B·Cout·OH·OW·Cg·kh·kw multiply-adds in tl.dot, plus the in-register mixing: N (or n) multiply-adds per
    weight per (pixel block × output-channel block) program.

Parallel
    grid (B · ceil(OH·OW / BLOCK_P), G · ceil(Og / BLOCK_O)): one program per (sample, pixel block,
    group, output-channel block); it owns that (BLOCK_P × BLOCK_O) block of y.

Versions
    one: the implicit GEMM above (im2col gathered on the fly, the patch never stored).

Caveats
    fp32 accumulation; float32 tl.dot with input_precision="ieee" so results match the CPU to rounding.
    tl.dot needs every block >= 16, so tiny layers compute on masked (zero) lanes.
"""
import torch
import triton
import triton.language as tl

EXPERTS, WAREHOUSE = 0, 1
BLOCK_P, BLOCK_O, BLOCK_R = 32, 16, 16


@triton.jit
def _expert_tile(w_ptr, a_w_ptr, a_s_ptr, a_c_ptr, a_f_ptr, b, o, c, t, r, mask_o, mask_r, N, Cout, Cin, R, KK,
                 c_base):
    """The (BLOCK_R, BLOCK_O) tile of W_b: Σ_n a_w[b,n]·w[n, o, r], times a_s, a_c and a_f."""
    mask = mask_r[:, None] & mask_o[None, :]
    tile = tl.zeros(mask.shape, dtype=tl.float32)
    for n in range(N):
        coef = tl.load(a_w_ptr + b * N + n).to(tl.float32)
        expert = tl.load(w_ptr + (n * Cout + o[None, :]) * R + r[:, None], mask=mask, other=0.0)
        tile += coef * expert.to(tl.float32)
    a_s = tl.load(a_s_ptr + b * KK + t, mask=mask_r, other=0.0).to(tl.float32)
    a_c = tl.load(a_c_ptr + b * Cin + c_base + c, mask=mask_r, other=0.0).to(tl.float32)
    a_f = tl.load(a_f_ptr + b * Cout + o, mask=mask_o, other=0.0).to(tl.float32)
    return tile * (a_s * a_c)[:, None] * a_f[None, :]


@triton.jit
def _warehouse_tile(cells_ptr, alpha_ptr, b, o, c, t, mask_o, mask_r, n_cells, c_o, c_i, Go, Gi, M):
    """The (BLOCK_R, BLOCK_O) tile of W_b: Σ_j alpha[b, m, j]·cells[j, a, e] with m the mixture of (o, r)."""
    mask = mask_r[:, None] & mask_o[None, :]
    go, a = o // c_o, o % c_o
    gi, e = c // c_i, c % c_i
    mixture = (t[:, None] * Go + go[None, :]) * Gi + gi[:, None]
    tile = tl.zeros(mask.shape, dtype=tl.float32)
    for j in range(n_cells):
        coef = tl.load(alpha_ptr + (b * M + mixture) * n_cells + j, mask=mask, other=0.0)
        cell = tl.load(cells_ptr + (j * c_o + a[None, :]) * c_i + e[:, None], mask=mask, other=0.0)
        tile += coef.to(tl.float32) * cell.to(tl.float32)
    return tile


@triton.jit
def dynamic_conv_kernel(x_ptr, y_ptr, w_ptr, bias_ptr, a_w_ptr, a_s_ptr, a_c_ptr, a_f_ptr, alpha_ptr,
                        Cin, H, W, Cout, OH, OW, G, N, n_cells, c_o, c_i, Go, Gi, M,
                        KH: tl.constexpr, KW: tl.constexpr, sh, sw, ph, pw, dh, dw,
                        MODE: tl.constexpr, HAS_BIAS: tl.constexpr,
                        BLOCK_P: tl.constexpr, BLOCK_O: tl.constexpr, BLOCK_R: tl.constexpr):
    n_pblocks = tl.cdiv(OH * OW, BLOCK_P)
    b, p_block = tl.program_id(0) // n_pblocks, tl.program_id(0) % n_pblocks
    Og = Cout // G
    n_oblocks = tl.cdiv(Og, BLOCK_O)
    g, o_block = tl.program_id(1) // n_oblocks, tl.program_id(1) % n_oblocks
    Cg = Cin // G
    KK: tl.constexpr = KH * KW
    R = Cg * KK

    # the block this program owns: pixels p (oh, ow) of sample b, output channels o of group g
    p = p_block * BLOCK_P + tl.arange(0, BLOCK_P)
    mask_p = p < OH * OW
    oh, ow = p // OW, p % OW
    q = o_block * BLOCK_O + tl.arange(0, BLOCK_O)
    mask_o = q < Og
    o = g * Og + q

    acc = tl.zeros((BLOCK_P, BLOCK_O), dtype=tl.float32)
    for r0 in range(0, R, BLOCK_R):
        # taps r -> (input channel c of the group, kernel row u, kernel column v)
        r = r0 + tl.arange(0, BLOCK_R)
        mask_r = r < R
        c, t = r // KK, r % KK
        u, v = t // KW, t % KW
        # the im2col patch of this block, gathered on the fly (zero outside the image)
        ih = oh[:, None] * sh - ph + u[None, :] * dh
        iw = ow[:, None] * sw - pw + v[None, :] * dw
        inside = (ih >= 0) & (ih < H) & (iw >= 0) & (iw < W) & mask_p[:, None] & mask_r[None, :]
        x_tile = tl.load(x_ptr + ((b * Cin + g * Cg + c[None, :]) * H + ih) * W + iw, mask=inside, other=0.0)
        # the sample's weight tile, mixed in registers
        if MODE == 0:
            w_tile = _expert_tile(w_ptr, a_w_ptr, a_s_ptr, a_c_ptr, a_f_ptr, b, o, c, t, r, mask_o, mask_r,
                                  N, Cout, Cin, R, KK, g * Cg)
        else:
            w_tile = _warehouse_tile(w_ptr, alpha_ptr, b, o, c, t, mask_o, mask_r, n_cells, c_o, c_i, Go, Gi, M)
        acc += tl.dot(x_tile.to(tl.float32), w_tile, input_precision="ieee")

    if HAS_BIAS:
        # bias_b[o] = Σ_n a_w[b,n]·bias[n,o]
        for n in range(N):
            coef = tl.load(a_w_ptr + b * N + n).to(tl.float32)
            acc += coef * tl.load(bias_ptr + n * Cout + o, mask=mask_o, other=0.0).to(tl.float32)[None, :]
    y_offsets = ((b * Cout + o[None, :]) * OH + oh[:, None]) * OW + ow[:, None]
    tl.store(y_ptr + y_offsets, acc.to(y_ptr.dtype.element_ty), mask=mask_p[:, None] & mask_o[None, :])


# ----------------------------------------------------------------------------------------------------
# The wrappers fastconv.run calls (torch tensors on CUDA, or on the CPU when interpreting)
# ----------------------------------------------------------------------------------------------------
def _launch(x, mode, weights, kernel_size, out_channels, groups, stride, padding, dilation, out_size,
            bias=None, a_w=None, a_s=None, a_c=None, a_f=None, alpha=None, warehouse=(1, 1, 1, 1, 1, 1)):
    x = x.contiguous()
    B, Cin, H, W = x.shape
    (OH, OW), (KH, KW) = out_size, kernel_size
    y = torch.empty((B, out_channels, OH, OW), dtype=x.dtype, device=x.device)
    Og = out_channels // groups
    ones = lambda n: torch.ones((B, n), dtype=x.dtype, device=x.device)
    given = lambda a, n: ones(n) if a is None else a.reshape(B, n).contiguous()
    N = weights.shape[0]
    n_cells, c_o, c_i, Go, Gi, M = warehouse
    grid = (B * triton.cdiv(OH * OW, BLOCK_P), groups * triton.cdiv(Og, BLOCK_O))
    dynamic_conv_kernel[grid](
        x, y, weights.contiguous(), x if bias is None else bias.contiguous(),
        given(a_w, N), given(a_s, KH * KW), given(a_c, Cin), given(a_f, out_channels),
        x if alpha is None else alpha.contiguous(),
        Cin, H, W, out_channels, OH, OW, groups, N, n_cells, c_o, c_i, Go, Gi, M,
        KH, KW, *stride, *padding, *dilation,
        MODE=mode, HAS_BIAS=bias is not None, BLOCK_P=BLOCK_P, BLOCK_O=BLOCK_O, BLOCK_R=BLOCK_R)
    return y


def dynamic(x, w, attention, bias=None, *, stride, padding, dilation, groups, out_size):
    """y[b] = conv2d(x[b], Σ_k a[b,k]·w[k], Σ_k a[b,k]·bias[k])."""
    return _launch(x, EXPERTS, w, w.shape[3:], w.shape[1], groups, stride, padding, dilation, out_size,
                   bias=bias, a_w=attention)


def odconv(x, w, kernel_attention=None, spatial_attention=None, in_attention=None, out_attention=None, *,
           stride, padding, dilation, groups, out_size):
    """y[b] = a_f[b] ⊙ conv2d(a_c[b] ⊙ x[b], Σ_n a_w[b,n]·(a_s[b] ⊙ w[n])); None attentions are 1."""
    return _launch(x, EXPERTS, w, w.shape[3:], w.shape[1], groups, stride, padding, dilation, out_size,
                   a_w=kernel_attention, a_s=spatial_attention, a_c=in_attention, a_f=out_attention)


def kernel_warehouse(x, cells, attention, *, out_channels, kernel_size, stride, padding, dilation, out_size):
    """y[b] = conv2d(x[b], W_b), W_b assembled in registers from the cells and the mixtures alpha[b]."""
    n, c_o, c_i = cells.shape
    Go, Gi = out_channels // c_o, x.shape[1] // c_i
    return _launch(x, WAREHOUSE, cells, kernel_size, out_channels, 1, stride, padding, dilation, out_size,
                   alpha=attention, warehouse=(n, c_o, c_i, Go, Gi, attention.shape[1]))
