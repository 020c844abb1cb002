"""A direct (implicit-GEMM) conv2d in Triton with the extras the factorized kinds fold into it:
grouped channels, the ShuffleNet output shuffle, average pooling of the input on load, nearest ×2
upsampling of the output on store, and accumulation into an existing output.

Math
    Group g has Cg = C/G input and Og = O/G output channels; filter k of group g is o = g·Og + k.
    x̂[b, c, i, j] = mean of x[b, c, POOL·i : POOL·i + POOL, POOL·j : POOL·j + POOL]    (POOL = 1: x)
    z[b, o, oh, ow] = bias[o] + Σ_{c<Cg, u<KH, v<KW} w[o, c, u, v] · x̂[b, g·Cg + c, oh·sh − ph + u·dh,
                                                                              ow·sw − pw + v·dw]
    y[b, q(o), UP·oh + dy, UP·ow + dx] (+)= z[b, o, oh, ow]   for dy, dx < UP,
    with q(o) = k·G + g when SHUFFLE (torchvision's channel shuffle), else o.

Shapes
    x (B, C, H·POOL, W·POOL)   w (O, Cg, KH, KW) contiguous   bias (O,)   y (B, O, OH·UP, OW·UP)

Cost
    B·O·OH·OW·Cg·KH·KW multiply-adds (+ POOL² − 1 adds per input value loaded).
    Traffic: each program reads its BLOCK_P pixels' patches and BLOCK_O filters once per K-step.

Parallel
    One program per (block of BLOCK_P output pixels, block of BLOCK_O filters of one group).

Versions
    One: the im2col tile of the K-loop is gathered in registers (never written to memory), multiplied
    with the filter tile by ``tl.dot`` (fp32 accumulation, "ieee" precision so float32 matches torch).

Caveats
    tl.dot needs every block dimension >= 16: small groups (depthwise: Og = 1) run with masked lanes,
    correct but wasteful. Accumulating (ACCUMULATE) is a read-modify-write: launches that add into the
    same y must run one after another (they do: one stream).
"""
import torch
import triton
import triton.language as tl


@triton.jit
def conv2d_kernel(x_ptr, w_ptr, bias_ptr, y_ptr,
                  B, C, H, W, O, OH, OW, G,
                  sh, sw, ph, pw, dh, dw,
                  KH: tl.constexpr, KW: tl.constexpr, POOL: tl.constexpr, UP: tl.constexpr,
                  SHUFFLE: tl.constexpr, ACCUMULATE: tl.constexpr, HAS_BIAS: tl.constexpr,
                  BLOCK_P: tl.constexpr, BLOCK_O: tl.constexpr, BLOCK_K: tl.constexpr):
    pid_p, pid_o, g = tl.program_id(0), tl.program_id(1), tl.program_id(2)
    Cg, Og = C // G, O // G
    K = Cg * KH * KW
    # the pixels (b, oh, ow) and filters k of this program
    p = pid_p * BLOCK_P + tl.arange(0, BLOCK_P)
    k = pid_o * BLOCK_O + tl.arange(0, BLOCK_O)
    p_ok, k_ok = p < B * OH * OW, k < Og
    ow = p % OW
    oh = (p // OW) % OH
    b = p // (OW * OH)
    o = g * Og + k
    acc = tl.zeros((BLOCK_P, BLOCK_O), dtype=tl.float32)
    for k0 in range(0, K, BLOCK_K):
        # the im2col tile A[p, kk] = x̂[b, g·Cg + c, ih, iw], kk = (c·KH + u)·KW + v (w's order)
        kk = k0 + tl.arange(0, BLOCK_K)
        c, u, v = kk // (KH * KW), (kk // KW) % KH, kk % KW
        ih = oh[:, None] * sh - ph + u[None, :] * dh
        iw = ow[:, None] * sw - pw + v[None, :] * dw
        ok = p_ok[:, None] & (kk < K)[None, :] & (ih >= 0) & (ih < H) & (iw >= 0) & (iw < W)
        base = (b[:, None] * C + g * Cg + c[None, :]) * (H * POOL)
        a = tl.zeros((BLOCK_P, BLOCK_K), dtype=tl.float32)
        for di in tl.static_range(POOL):           # average pooling folded into the load
            for dj in tl.static_range(POOL):
                offs = (base + ih * POOL + di) * (W * POOL) + iw * POOL + dj
                a += tl.load(x_ptr + offs, mask=ok, other=0.0).to(tl.float32)
        a = a * (1.0 / (POOL * POOL))
        # the filter tile Wt[kk, k] = w[g·Og + k, kk]
        wt = tl.load(w_ptr + o[None, :] * K + kk[:, None], mask=(kk < K)[:, None] & k_ok[None, :], other=0.0)
        acc += tl.dot(a, wt.to(tl.float32), input_precision="ieee")
    if HAS_BIAS:
        acc += tl.load(bias_ptr + o, mask=k_ok, other=0.0).to(tl.float32)[None, :]
    q = k * G + g if SHUFFLE else o                 # the channel shuffle, folded into the store
    ok = p_ok[:, None] & k_ok[None, :]
    YH, YW = OH * UP, OW * UP
    for dy in tl.static_range(UP):                  # nearest upsampling folded into the store
        for dx in tl.static_range(UP):
            offs = ((b[:, None] * O + q[None, :]) * YH + oh[:, None] * UP + dy) * YW + ow[:, None] * UP + dx
            out = acc
            if ACCUMULATE:
                out += tl.load(y_ptr + offs, mask=ok, other=0.0).to(tl.float32)
            tl.store(y_ptr + offs, out.to(y_ptr.dtype.element_ty), mask=ok)


def conv2d(x, w, bias=None, *, y=None, stride=(1, 1), padding=(0, 0), dilation=(1, 1), groups=1, pool=1,
           up=1, shuffle=False):
    """z as in the module docstring, written to a new y (or added into the given one)."""
    x, w = x.contiguous(), w.contiguous()
    B, C, H, W = x.shape
    H, W = H // pool, W // pool
    O, _, KH, KW = w.shape
    OH = (H + 2 * padding[0] - dilation[0] * (KH - 1) - 1) // stride[0] + 1
    OW = (W + 2 * padding[1] - dilation[1] * (KW - 1) - 1) // stride[1] + 1
    accumulate = y is not None
    if y is None:
        y = torch.empty((B, O, OH * up, OW * up), dtype=x.dtype, device=x.device)
    BLOCK_P, BLOCK_O, BLOCK_K = 32, 16 if O // groups <= 16 else 32, 16
    grid = (triton.cdiv(B * OH * OW, BLOCK_P), triton.cdiv(O // groups, BLOCK_O), groups)
    conv2d_kernel[grid](x, w, x if bias is None else bias, y, B, C, H, W, O, OH, OW, groups,
                        *stride, *padding, *dilation, KH=KH, KW=KW, POOL=pool, UP=up, SHUFFLE=shuffle,
                        ACCUMULATE=accumulate, HAS_BIAS=bias is not None,
                        BLOCK_P=BLOCK_P, BLOCK_O=BLOCK_O, BLOCK_K=BLOCK_K)
    return y
