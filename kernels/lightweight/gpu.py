"""Lightweight and dynamic lightweight convolution on the GPU with Triton, batch-first.

As on the CPU (kernels/lightweight/cpu.py), one kernel serves both kinds: the lightweight kernel
w (H, K) is passed as a broadcast view of (B, H, K, T) — strides 0 along b and t, nothing copied.

Math
    y[b, c, t] = bias[c] + Σ_{k<K} w'[b, h, k, t] · x[b, c, t + k − padding_l]     (h = c // R, R = C/H)
    x reads as zero outside [0, T); with weight_softmax
    w'[b, h, k, t] = exp(w[b, h, k, t] − m) / Σ_{k'<K} exp(w[b, h, k', t] − m),  m = max_k w[b, h, k, t],
    over all K taps, also those falling outside [0, T).

Shapes
    x (B, C, T) contiguous   w (B, H, K, T) any strides   bias (C,)   y (B, C, T)

Cost
    B·C·T·K multiply-adds (+ K exponentials per output with weight_softmax: each program normalises
    the kernels of its own channels — R times more exponentials than one per head, but no second
    launch and no normalised copy of w in memory).
    Minimum traffic: x, w read once, y written once.

Parallel
    One program per (b, block of BLOCK_C channels, block of BLOCK_T steps); it owns that tile of y.

Versions
    v1 (the only one) for each tap k: load the weights w[b, h(c), k, t] of the tile (a gather: channels
       of one head read the same weights, from cache) and the shifted input x[b, c, t + k − padding_l]
       (masked to [0, T), so padding loads zeros), multiply and accumulate. With weight_softmax, a
       first pass over the taps finds the maximum m, the second accumulates exp(w − m)·x and the
       normaliser Σ exp(w − m), and the tile is divided by it at the end.

Caveats
    Accumulates in float32 whatever the input dtype; the result is cast back to it.
"""
import torch
import triton
import triton.language as tl

BLOCK_C, BLOCK_T = 16, 64


@triton.jit
def _dynamic_kernel(x_ptr, w_ptr, bias_ptr, y_ptr, C, T, R, K, padding_l,
                    stride_wb, stride_wh, stride_wk, stride_wt,
                    WEIGHT_SOFTMAX: tl.constexpr, BLOCK_C: tl.constexpr, BLOCK_T: tl.constexpr):
    n_cblocks = tl.cdiv(C, BLOCK_C)
    b = tl.program_id(0) // n_cblocks
    c = (tl.program_id(0) % n_cblocks) * BLOCK_C + tl.arange(0, BLOCK_C)
    t = tl.program_id(1) * BLOCK_T + tl.arange(0, BLOCK_T)
    c_ok, t_ok = c < C, t < T
    tile_ok = c_ok[:, None] & t_ok[None, :]
    x_row = x_ptr + (b * C + c[:, None]).to(tl.int64) * T
    w_tile = w_ptr + b.to(tl.int64) * stride_wb + (c // R)[:, None] * stride_wh + t[None, :] * stride_wt

    if WEIGHT_SOFTMAX:
        # pass 1: m = max over all K taps of each step's kernel
        top = tl.load(w_tile, mask=tile_ok, other=0.0).to(tl.float32)
        for k in range(1, K):
            top = tl.maximum(top, tl.load(w_tile + k * stride_wk, mask=tile_ok, other=0.0).to(tl.float32))
        total = tl.zeros((BLOCK_C, BLOCK_T), dtype=tl.float32)

    acc = tl.zeros((BLOCK_C, BLOCK_T), dtype=tl.float32)
    for k in range(K):
        weight = tl.load(w_tile + k * stride_wk, mask=tile_ok, other=0.0).to(tl.float32)
        if WEIGHT_SOFTMAX:
            weight = tl.exp(weight - top)
            total += weight             # the normaliser counts every tap, inside [0, T) or not
        i = t + k - padding_l
        xv = tl.load(x_row + i[None, :], mask=c_ok[:, None] & (t_ok & (i >= 0) & (i < T))[None, :], other=0.0)
        acc += weight * xv.to(tl.float32)
    if WEIGHT_SOFTMAX:
        acc = acc / total
    acc += tl.load(bias_ptr + c, mask=c_ok, other=0.0).to(tl.float32)[:, None]
    tl.store(y_ptr + (b * C + c[:, None]).to(tl.int64) * T + t[None, :], acc.to(y_ptr.dtype.element_ty),
             mask=tile_ok)


def _run(x, w4, bias, padding_l, weight_softmax):
    x = x.contiguous()
    B, C, T = x.shape
    H, K = w4.shape[1], w4.shape[2]
    y = torch.empty_like(x)
    grid = (B * triton.cdiv(C, BLOCK_C), triton.cdiv(T, BLOCK_T))
    _dynamic_kernel[grid](x, w4, bias, y, C, T, C // H, K, padding_l, *w4.stride(),
                          WEIGHT_SOFTMAX=weight_softmax, BLOCK_C=BLOCK_C, BLOCK_T=BLOCK_T)
    return y


def dynamic_lightweight(x, w, *, padding_l, weight_softmax):
    """y = dynamic lightweight convolution of x (B, C, T) with w (B, H, K, T), torch tensors."""
    return _run(x, w, x.new_zeros(x.shape[1]), padding_l, weight_softmax)


def lightweight(x, w, bias=None, *, padding_l, weight_softmax):
    """y = lightweight convolution of x (B, C, T) with w (H, K): the dynamic kernel on a broadcast view."""
    B, _, T = x.shape
    H, K = w.shape
    w4 = w.contiguous().view(1, H, K, 1).expand(B, H, K, T)
    return _run(x, w4, x.new_zeros(x.shape[1]) if bias is None else bias.contiguous(), padding_l,
                weight_softmax)
