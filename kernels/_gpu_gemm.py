"""The pieces every Triton implicit-GEMM kernel of fastconv shares (the GPU twin of _cpu_gemm.py).

An implicit GEMM computes C[m, n] = bias[n] + Σ_k A[m, k]·Bw[k, n] where A is never built: its rows are
output pixels, and A[m, k] is read from the input tensor at an address the kernel computes from m and k.
A kernel here owns one BLOCK_M × BLOCK_N tile of C and walks K in steps of BLOCK_K; each step loads an
A tile and a Bw tile and multiplies them with ``tl.dot`` into an fp32 accumulator (tensor cores on a GPU).

This module holds
    in_range       0 <= i < n (an index inside the input, not in the zero padding)
    gemm_step      one K step: masked loads of the A and Bw tiles, then acc += A·Bw
    channels_last, weight_rows, group_stride   the operands' layouts: contiguous, 16-byte aligned rows
    store_tile     the epilogue: + bias, cast to the output dtype, masked store
    dtype_params   accumulator / dot-operand dtypes and tl.dot input precision for a torch dtype
    GEMM_CONFIGS   the autotune configs of the implicit GEMMs (and the interpreter's single one)
    autotuned      @triton.autotune with the GPU configs, or one large tile when interpreting
    fit_blocks     drops the configs whose tiles are wider than the problem (narrow groups)

Caveats
    tl.dot needs every block dimension >= 16 on a GPU (K >= 16 for 16-bit types): every config here
    has BLOCK_M, BLOCK_N, BLOCK_K >= 16, also the interpreter's, which does not check it.
    On a GPU, tl.dot of float32 defaults to tf32 (10-bit mantissa); the kernels always pass
    input_precision explicitly: "ieee" (exact float32, the default) or "tf32" when asked.
    The interpreter runs tl.dot of bfloat16 on the raw uint16 bit patterns (it stores bfloat16 as
    uint16; triton-lang/triton#11584, "not supported yet"), so when interpreting, bfloat16 operands
    enter tl.dot as float32. A product of two bfloat16 values is exact in float32, and both paths
    accumulate in float32, so this computes what the tensor cores do (up to summation order).
"""
import os

import torch
import triton
import triton.language as tl

INTERPRETING = os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")

MIN_BLOCK = 16      # the smallest tl.dot tile a GPU accepts for 16-bit operands


@triton.jit
def in_range(i, n):
    """0 <= i < n: the index reads a real input element, not the zero padding."""
    return (i >= 0) & (i < n)


@triton.jit
def gemm_step(acc, x_ptr, row_off, row_ok, c, Ck, sxc, wt_ptr, w_row, Cg, n, swk,
              DOT: tl.constexpr, PRECISION: tl.constexpr):
    """acc += A·Bw for one K step: BLOCK_K channels c of one tap.

    A[m, k] = x[row_off[m] + c[k]·sxc]    zero where the row's pixel is in the padding (row_ok false)
                                          or c >= Ck (loading up to Ck >= Cg: see channels_last)
    Bw[k, n] = wt[w_row[k]·swk + n]       zero where c >= Cg or n >= swk (weight_rows: the columns
                                          from Og up to the row length swk are zeros)
    The masks change only every 16 elements along each tile's contiguous axis (Ck and swk are
    multiples of 16 whenever possible), so both loads are 16-byte vectors that Triton's pipeline can
    issue as cp.async; an element-exact mask (c < 300) would force 2-byte loads and no pipeline.
    """
    a = tl.load(x_ptr + row_off[:, None] + c[None, :] * sxc, mask=row_ok[:, None] & (c < Ck)[None, :], other=0.0)
    b = tl.load(wt_ptr + w_row[:, None] * swk + n[None, :], mask=(c < Cg)[:, None] & (n < swk)[None, :], other=0.0)
    return tl.dot(a.to(DOT), b.to(DOT), acc, input_precision=PRECISION)


@triton.jit
def store_tile(acc, y_ptr, bias_ptr, y_row, row_ok, o, o_ok, syc):
    """y[y_row[m] + o[n]·syc] = acc[m, n] + bias[o[n]], in y's dtype (offsets are int64).

    The tile is stored transposed, as [n, m] with the rows (output pixels) last: where Triton cannot
    prove which axis is contiguous in memory (transposed outputs at stride s; an image size that is
    not a multiple of 16), its default gives consecutive threads the last axis, here consecutive
    pixels (neighbours in y), instead of consecutive channels (a whole plane apart: one 32-byte
    sector per element, and 64-bit addresses for the whole tile held at once, which spills).
    """
    if bias_ptr is not None:
        acc += tl.load(bias_ptr + o, mask=o_ok, other=0.0).to(acc.dtype)[None, :]
    tl.store(y_ptr + o.to(tl.int64)[:, None] * syc + y_row[None, :],
             tl.trans(acc).to(y_ptr.dtype.element_ty), mask=o_ok[:, None] & row_ok[None, :])


ALIGN = 16      # elements: a row stride that is a multiple of 16 keeps every row 16-byte aligned


def round_up(n: int, multiple: int = ALIGN) -> int:
    return (n + multiple - 1) // multiple * multiple


def channels_last(x5: torch.Tensor, groups: int):
    """x (B, C, D, H, W) as a channels-last view (channel stride 1, pixel stride a multiple of 16), and
    Ck, the channels an A row may load per group.

    The layout the implicit GEMMs read A from: an A row (BLOCK_K channels of one pixel) is one
    contiguous vector, and with 16-byte aligned rows Triton copies A tiles with cp.async and pipelines
    them (an unaligned row, e.g. C = 300, turns the software pipeline off). Costs one read and one
    write of x (free when x already is such a view), plus at most 15 padding channels per pixel,
    written as zeros: with one group, A rows then load Ck = C rounded up to 16 channels with a mask
    that is constant over 16-element vectors, the extra ones zeros (and matched by zero rows of Bw).
    With several groups the channels past Cg belong to the next group (possibly Inf or NaN, which
    must not leak into this group's sum): Ck = Cg, an exact mask.
    """
    B, C, D, H, W = x5.shape
    if C % ALIGN == 0:            # rows are aligned without padding: one copy, or none
        return x5.contiguous(memory_format=torch.channels_last_3d), C // groups
    rows = torch.empty((B, D, H, W, round_up(C)), dtype=x5.dtype, device=x5.device)
    rows[..., :C] = x5.permute(0, 2, 3, 4, 1)
    rows[..., C:] = 0
    return rows[..., :C].permute(0, 4, 1, 2, 3), round_up(C) if groups == 1 else C // groups


def group_stride(x5: torch.Tensor, groups: int) -> int:
    """The offset between the channels of consecutive groups in x: Cg channels, or 0 when there is one
    group (g is always 0 then; passing 0, a multiple of 16, tells Triton that the rows stay aligned)."""
    return x5.shape[1] // groups * x5.stride(1) if groups > 1 else 0


def weight_rows(w_gkcn: torch.Tensor) -> torch.Tensor:
    """The weight matrices (G, T, Cg, Og) with each row of Og output channels padded with zeros to a
    multiple of 16 elements (aligned Bw rows, loaded whole, as for A in channels_last)."""
    G, T, Cg, Og = w_gkcn.shape
    if Og % ALIGN == 0:
        return w_gkcn.contiguous()
    rows = torch.zeros((G, T, Cg, round_up(Og)), dtype=w_gkcn.dtype, device=w_gkcn.device)
    rows[..., :Og] = w_gkcn
    return rows


def dtype_params(dtype: torch.dtype, allow_tf32: bool | None) -> dict:
    """The constexprs ACC (accumulator dtype), DOT (dtype the tl.dot operands enter as) and PRECISION.

    allow_tf32: None follows torch.backends.cuda.matmul.allow_tf32 (False unless the user turned it
    on, as for torch.matmul); True computes float32 products in tf32 on the tensor cores.
    """
    if allow_tf32 is None:
        allow_tf32 = torch.backends.cuda.matmul.allow_tf32
    operand = {torch.float32: tl.float32, torch.float16: tl.float16, torch.bfloat16: tl.bfloat16,
               torch.float64: tl.float64}[dtype]
    if operand == tl.bfloat16 and INTERPRETING:
        operand = tl.float32            # see Caveats: the interpreter's bfloat16 tl.dot is wrong
    return dict(ACC=tl.float64 if dtype == torch.float64 else tl.float32, DOT=operand,
                PRECISION="tf32" if allow_tf32 and dtype == torch.float32 else "ieee")


def config(num_warps=4, num_stages=3, **blocks):
    return triton.Config(blocks, num_warps=num_warps, num_stages=num_stages)


# Tiles for H100-class GPUs: large square tiles for wide layers, narrow BLOCK_N / BLOCK_K ones for
# narrow groups (fit_blocks keeps only those that fit), more stages where the tiles are small.
GEMM_CONFIGS = [config(BLOCK_M=m, BLOCK_N=n, BLOCK_K=k, num_warps=nw, num_stages=ns)
                for m, n, k, nw, ns in ((128, 128, 64, 8, 3), (128, 64, 64, 4, 4), (64, 128, 64, 4, 4),
                                        (128, 128, 32, 4, 4), (128, 64, 32, 4, 4), (64, 64, 32, 4, 4),
                                        (256, 64, 32, 8, 3), (128, 32, 32, 4, 4), (64, 32, 32, 2, 5),
                                        (128, 16, 16, 4, 4), (64, 16, 16, 2, 4))]
GEMM_INTERPRETER_CONFIG = config(BLOCK_M=128, BLOCK_N=32, BLOCK_K=32)


def fit_blocks(**limits):
    """An early_config_prune keeping configs whose blocks are at most the problem size (rounded up to a
    power of two, at least MIN_BLOCK): e.g. BLOCK_N <= 16 when a group has 4 output channels, since a
    wider tile would multiply zeros. ``limits`` maps a block name to the kernel argument it covers."""
    def prune(configs, named_args, **kwargs):
        args = {**named_args, **kwargs}

        def excess(cfg):
            return sum(max(0, cfg.kwargs[block] - max(MIN_BLOCK, triton.next_power_of_2(args[arg])))
                       for block, arg in limits.items())
        fitting = [cfg for cfg in configs if excess(cfg) == 0]
        return fitting or [min(configs, key=excess)]
    return prune


def autotuned(gpu_configs, interpreter_config, key, prune=None):
    """@triton.autotune over ``gpu_configs`` on a GPU. When interpreting there is nothing to time, so a
    single large-tile config (few program instances: the interpreter's cost is per instance)."""
    if INTERPRETING:
        return triton.autotune(configs=[interpreter_config], key=key)
    return triton.autotune(configs=gpu_configs, key=key,
                           prune_configs_by={"early_config_prune": prune} if prune else None)
