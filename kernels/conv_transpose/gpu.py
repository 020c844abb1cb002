"""Transposed convolution on the GPU with Triton: conv_transpose1d/2d/3d, exactly as
torch.nn.functional.conv_transpose{1,2,3}d. The twin of cpu.py (its v2, phases, on the tensor cores).

Math (3 spatial axes; 2-d and 1-d are the cases with leading axes of size 1)
    Gather form: with G groups, Cg = C/G input and Og output channels per group, g = o // Og, o' = o mod Og,

    y[b, o, od, oh, ow] = bias[o] + Σ_{c<Cg} Σ_{kd,kh,kw} x[b, g·Cg + c, id, ih, iw] · w[g·Cg + c, o', kd, kh, kw]
        for each axis  i = (p + pad − k·d) / s,  a term existing only when the division is exact
        and 0 <= i < I.

    Phases: write an output index as p = r + j·s (phase r = p mod s). Tap k reaches an input for the
    outputs of phase r exactly when (r + pad − k·d) is divisible by s, i.e. for k = k0(r) + t·e with
    e = s / gcd(s, d), and then i = j + (r + pad − k·d)/s: a fixed shift of j. So the outputs of one
    phase (r_d, r_h, r_w) form an ordinary convolution over (jd, jh, jw) with the phase's taps only,
    and as a matrix product per group (an implicit GEMM, as in conv/gpu.py):
        C[m, n] = Σ_kk A[m, kk]·Bw[kk, n]     m = ((b·JD + jd)·JH + jh)·JW + jw   (J = ceil(O/s) per axis)
                                              n = o'                             (N = Og)
                                              kk = (tap, c) over the phase's taps  (K = taps·Cg)
        A[m, kk] = x[b, g·Cg + c, jd + shift_d, jh + shift_h, jw + shift_w]
        Bw[kk, n] = w[g·Cg + c, n, kd, kh, kw]

Shapes
    x (B, C, D, H, W) any strides (made channels-last here, pixel rows padded to 16 elements)
    w (C, Og, KD, KH, KW)   bias (O = G·Og,)
    y (B, O, OD, OH, OW) contiguous, allocated here;
    OD = (D − 1)·sd − 2·pd + dd·(KD − 1) + output_padding + 1, likewise OH, OW (``out_size``).

Cost
    B·C·D·H·W·Og·KD·KH·KW multiply-adds (every input element meets every tap once; taps landing in the
    cropped border are counted but not computed). Minimum traffic: x, w, bias read once, y written once;
    plus one read and one write of x for the channels-last copy (none if x is channels-last).

Parallel
    One program per (phase, BLOCK_M outputs of that phase, BLOCK_N output channels of one group).
    N tiles vary fastest so programs sharing an A tile run together (L2 reuse), then phases, so the
    phases of one block of outputs, whose stores interleave (stride s), meet in L2 before DRAM.
    Every output is computed by exactly one program (gather): no scatter, no atomics.

Versions
    One kernel, ``conv_transpose_kernel``: the phase form. The plain gather (every output tries every
    tap and masks the ones whose division is not exact) would spend a fraction 1 − 1/(sd·sh·sw) of
    its tl.dot calls on all-masked, all-zero tiles; looping over only the phase's taps spends none.
    The K loop is one flat loop over (tap, channel block), as in conv/gpu.py, so that Triton's
    software pipeline overlaps the next step's loads with this step's tl.dot. x is channels-last so
    that A rows are contiguous channel vectors.

Caveats
    A phase with fewer outputs than the largest (OD not a multiple of sd) masks its last rows; a phase
    with no valid tap (gcd(s, d) not dividing r + pad) writes the bias alone.
    Accumulation in float32 (float64 only when interpreting); float32 tl.dot is exact ("ieee") unless
    allow_tf32. Offsets into x and y and the row index m are 64-bit; one image's outputs, the weight
    and the number of programs must stay below 2^31.
"""
import math

import torch
import triton
import triton.language as tl

from .._gpu_gemm import (GEMM_CONFIGS, GEMM_INTERPRETER_CONFIG, autotuned, channels_last, dtype_params, fit_blocks,
                         gemm_step, group_stride, in_range, store_tile, weight_rows)
from .._index import as_3d, pad3


@triton.jit
def phase_taps(r, K, s, p, d, e):
    """The taps of one axis that outputs of phase r read through: k0, k0 + e, ... below K.

    (r + p − k·d) divisible by s happens for k in one residue class mod e = s / gcd(s, d), so the first
    such k is below e. Returns (k0, count); count = 0 when the class is empty or starts at K or after.
    """
    k0 = e
    for k in range(e):
        k0 = tl.where(((r + p - k * d) % s == 0) & (k0 == e), k, k0)
    return k0, tl.where(k0 < e, (K - k0 + e - 1) // e, 0)


@autotuned(GEMM_CONFIGS, GEMM_INTERPRETER_CONFIG, key=["M", "Og", "Cg", "KD", "KH", "KW", "sd", "sh", "sw"],
           prune=fit_blocks(BLOCK_M="M", BLOCK_N="Og", BLOCK_K="Cg"))
@triton.jit
def conv_transpose_kernel(x_ptr, wt_ptr, bias_ptr, y_ptr,
                          M, G, D, H, W, OD, OH, OW, JD, JH, JW, Cg, Ck, Og, KD, KH, KW,
                          sd, sh, sw, pd, ph, pw, dd, dh, dw, ed, eh, ew,
                          sxb, sxc, sxd, sxh, sxw, sxg, swk, syb, syc, syd, syh, syw,
                          ACC: tl.constexpr, DOT: tl.constexpr, PRECISION: tl.constexpr,
                          BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr):
    # which tile this program owns: phase (rd, rh, rw), rows m of that phase, output channels n of group g
    # (N tiles vary fastest, then phases: the programs of one block of rows, which read neighbouring
    # inputs and write interleaved outputs, run together, so L2 serves both)
    pid = tl.program_id(0)
    n_tiles = tl.cdiv(Og, BLOCK_N)
    phases = sd * sh * sw
    g = pid % (G * n_tiles) // n_tiles
    n = pid % n_tiles * BLOCK_N + tl.arange(0, BLOCK_N)
    phase = pid // (G * n_tiles) % phases
    # rows m of the phase, 64-bit (B·JD·JH·JW may pass 2^31)
    m = (pid // (G * n_tiles * phases)).to(tl.int64) * BLOCK_M + tl.arange(0, BLOCK_M)
    rw = phase % sw
    rh = phase // sw % sh
    rd = phase // (sw * sh)
    n_ok = n < Og

    # the phase's taps on each axis: k = k0 + t·e, t < count
    kd0, nkd = phase_taps(rd, KD, sd, pd, dd, ed)
    kh0, nkh = phase_taps(rh, KH, sh, ph, dh, eh)
    kw0, nkw = phase_taps(rw, KW, sw, pw, dw, ew)

    # row m is output (od, oh, ow) = (rd + jd·sd, rh + jh·sh, rw + jw·sw) of image b
    b = m // (JW * JH * JD)
    j = (m % (JW * JH * JD)).to(tl.int32)  # inside one image: < 2^31
    jw = j % JW
    jh = j // JW % JH
    jd = j // (JW * JH)
    od = rd + jd * sd
    oh = rh + jh * sh
    ow = rw + jw * sw
    m_ok = (m < M) & (od < OD) & (oh < OH) & (ow < OW)
    x_row = (b * sxb + g.to(tl.int64) * sxg + jd.to(tl.int64) * sxd
             + jh.to(tl.int64) * sxh + jw.to(tl.int64) * sxw)
    k = tl.arange(0, BLOCK_K)

    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=ACC)
    n_cblocks = tl.cdiv(Cg, BLOCK_K)
    for step in range(nkd * nkh * nkw * n_cblocks):
        # K step: the t-th tap of the phase and input channels c of the group
        t = step // n_cblocks
        c = step % n_cblocks * BLOCK_K + k
        kw = kw0 + t % nkw * ew
        kh = kh0 + t // nkw % nkh * eh
        kd = kd0 + t // (nkw * nkh) * ed
        # input i = j + (r + pad − k·d)/s on each axis (an exact division for the phase's taps)
        ud = (rd + pd - kd * dd) // sd
        uh = (rh + ph - kh * dh) // sh
        uw = (rw + pw - kw * dw) // sw
        ok = m_ok & in_range(jd + ud, D) & in_range(jh + uh, H) & in_range(jw + uw, W)
        tap_off = tl.cast(ud, tl.int64) * sxd + tl.cast(uh, tl.int64) * sxh + tl.cast(uw, tl.int64) * sxw
        tap = (kd * KH + kh) * KW + kw
        acc = gemm_step(acc, x_ptr, x_row + tap_off, ok, c, Ck, sxc,
                        wt_ptr, (g * KD * KH * KW + tap) * Cg + c, Cg, n, swk, DOT, PRECISION)

    y_row = b * syb + od.to(tl.int64) * syd + oh.to(tl.int64) * syh + ow.to(tl.int64) * syw
    store_tile(acc, y_ptr, bias_ptr, y_row, m_ok, g * Og + n, n_ok, syc)


def conv_transpose(x, w, bias=None, *, stride, padding, dilation, groups, out_size, allow_tf32=None):
    """y = conv_transpose{nd}d(x, w, bias) on torch tensors (CUDA, or CPU when interpreting);
    output_padding is already in ``out_size`` (from the plan). y is contiguous.

    allow_tf32: float32 products in tf32 on the tensor cores; None follows
    torch.backends.cuda.matmul.allow_tf32, which is False unless turned on.
    """
    nd = x.dim() - 2
    # Layout change (visible on purpose): channels-last x, so the K axis (channels) is contiguous and
    # every pixel's row 16-byte aligned (kernels/_gpu_gemm.py). A no-op when x already is such a view.
    x5, Ck = channels_last(as_3d(x, nd), groups)
    w5 = as_3d(w, nd)
    B, C, Og = x.shape[0], w.shape[0], w.shape[1]
    Cg, O = C // groups, Og * groups
    KD, KH, KW = w5.shape[2:]
    stride, dilation, out5 = pad3(stride, nd, 1), pad3(dilation, nd, 1), pad3(out_size, nd, 1)
    J = [triton.cdiv(o, s) for o, s in zip(out5, stride)]          # outputs of the largest phase
    M = B * J[0] * J[1] * J[2]
    tap_steps = [s // math.gcd(s, d) for s, d in zip(stride, dilation)]
    # Bw[g, tap, c, n] = w[g·Cg + c, n, tap]: the weight as G matrices (K = taps·Cg) × (N = Og)
    wt = weight_rows(w5.reshape(groups, Cg, Og, KD * KH * KW).permute(0, 3, 1, 2))
    y = torch.empty((B, O, *out5), dtype=x.dtype, device=x.device)
    phases = stride[0] * stride[1] * stride[2]
    grid = lambda meta: (triton.cdiv(M, meta["BLOCK_M"]) * phases * groups * triton.cdiv(Og, meta["BLOCK_N"]),)
    conv_transpose_kernel[grid](x5, wt, bias, y, M, groups, *x5.shape[2:], *out5, *J, Cg, Ck, Og, KD, KH, KW,
                                *stride, *pad3(padding, nd, 0), *dilation, *tap_steps,
                                *x5.stride(), group_stride(x5, groups), wt.stride(2), *y.stride(),
                                **dtype_params(x.dtype, allow_tf32))
    return y.reshape((B, O, *out_size))
