"""Convolution on the CPU with Numba: conv1d, conv2d, conv3d and their special cases (depthwise,
pointwise, grouped, dilated), exactly as torch.nn.functional.conv{1,2,3}d.

Math (3 spatial axes; conv2d is the case D = KD = 1, conv1d also has H = KH = 1)
    With G groups, Cg = C/G input and Og = O/G output channels per group, output channel o in group
    g = o // Og:

    y[b, o, od, oh, ow] = bias[o] + Σ_{c<Cg} Σ_{kd<KD} Σ_{kh<KH} Σ_{kw<KW}
                          w[o, c, kd, kh, kw] · x[b, g·Cg + c, od·sd − pd + kd·dd,
                                                               oh·sh − ph + kh·dh,
                                                               ow·sw − pw + kw·dw]
    where x reads as zero outside [0, D) × [0, H) × [0, W) (the zero padding).

Shapes
    x (B, C, D, H, W)   w (O, Cg, KD, KH, KW)   bias (O,)   y (B, O, OD, OH, OW), all C-contiguous;
    OD = (D + 2·pd − dd·(KD−1) − 1) // sd + 1, likewise OH, OW ("same" padding may add one more zero
    after than before: only the leading pad matters to the kernel, the output size is given).

Cost
    B·O·OD·OH·OW·Cg·KD·KH·KW multiply-adds (2 FLOPs each).
    Minimum traffic: x, w, bias read once, y written once (4 bytes per float32 element).

Parallel
    v1: one task per output row (b, o, od, oh).   v2: one task per tile (b, g, od, oh, ow-chunk).
    v3: one task per (b, g, od).   v4: one task per (b, g, pixel chunk).   v5: one task per (b, g, block
    of SLAB_ROWS output rows, chunk of SLAB_W columns).   v6: one task per (b, g, od, band of output rows
    of about FLAT_BAND_PIX positions), or per (group of images, g, od) where a band is a whole small image.
    Tasks write disjoint parts of y: no two threads write one element.

Versions
    v1 ``conv_direct``   the formula as five nested loops per output element.  Plain, slow: every
                         multiply-add loads both operands from memory and tests for padding.
    v2 ``conv_im2col``   dense and grouped convolution. x is first made channels-last (one pass), so
                         the Cg input values of one tap of one pixel are contiguous. For one tile of
                         output pixels (a chunk of one output row), copy the values every pixel's taps
                         read into a small patch P[n, kk] ("im2col" of that tile only, never of the whole
                         input; each tap is one contiguous copy), then compute the tile for all Og output
                         channels of the group as a matrix product with the weight seen as A[o, kk]
                         (K = KD·KH·KW·Cg): T = bias + A·Pᵀ, by the register-blocked ``tile_matmul`` of
                         kernels/_cpu_gemm.py.  Each patch value is used Og times from cache, each
                         weight N times; padding is written once, as zeros, into P.
                         Measured: the channels-last patch made this 1.7× faster than building P from
                         NCHW x (whose copies write P with a stride of K, scattered over L2).
    v3 ``conv_planes``   thin groups (depthwise: Cg = 1; ResNeXt: Cg = 4): each
                         output sums too few terms (Cg·KD·KH·KW) for a matrix product to pay. Copy the
                         group's input planes once, zero-padded, and compute each output plane "wide"
                         (Wp = OW + (KW−1)·dw columns per row, the extra ones dropped): every tap is then
                         a single flat shift, acc[p] += w·xp[p + kh·dh·Wp + kw·dw], a ~3000-long loop
                         LLVM vectorises. (Row by row, loops of ~56 are shorter than one unrolled
                         16-lane vector step and run scalar: measured 2.3× slower.)  A stride splits each
                         plane in its phase planes x[ah::sh, aw::sw], as in v6, and every tap is again one
                         flat shift in one of them: MobileNet's strided depthwise layers 8–13× faster
                         than v5 (one thread; the phase-plane copy was most of their time, and is 1.6×
                         faster since its rows became slices of a flat array: 2 threads, batch 8,
                         96 ch at 112² stride 2: 12.2 → 4.8–5.6 ms, ratio to torch 0.47 → 0.14–0.24;
                         144 ch at 56² stride 2: ratio 1.32 → 1.10–1.21).
    v4 ``conv_pointwise`` 1×1×1 kernels at stride 1 without padding: y[b, g] = bias + A_g·x[b, g] with
                         x[b, g] seen as a (Cg, D·H·W) matrix, rows of pixels straight from NCHW, by
                         ``rows_product`` of kernels/_cpu_gemm.py (4 output rows × 8 input rows per pass
                         over a chunk of ≤ POINTWISE_PIX pixels).  No patch and no channels-last copy:
                         for a 1×1 kernel the patch is x itself, and the copy cost as much as the product
                         (256→64 at 56×56, batch 8: 5.0 ms to make x channels-last, 5.6 ms for v2's
                         product, 4.2 ms for all of v4).
    v5 ``conv_slab``     conv1d and conv2d, any stride: as v2, but a task owns SLAB_ROWS output rows × up to
                         SLAB_W columns and first transposes only the input rows they read into a
                         channels-last slab S[row, col, c] (padding included, so the patch copies need no
                         bounds tests), reusing its patch and tile buffers across its rows.  Measured on
                         the ResNet 3×3 layer, one thread, CPU time, the versions in turns: 16 ms vs 21–22
                         for v2, which pays a whole-tensor transpose and a fresh patch per tile.  (The
                         kernels of input-dependent weights call it with each sample's own weights.)
    v6 ``conv_flat``     v3's "wide" rows with v4's reuse, the products kept in registers.  At stride 1
                         (strides: below) a task copies the input rows of a band of output rows into S,
                         zero-padded, Wp = W + max(left, right pad) columns per row (a read past a row's
                         end lands in the next row's leading zeros; the last Wp − OW outputs of a wide
                         row are computed and dropped).  An output position p = r·Wp + col then reads
                         tap k = (c, kh, kw) at S[p + offs[k]], offs[k] = (c·R + kh·dh)·Wp + kw·dw: 48
                         consecutive positions read 48 consecutive values.  ``flat_block`` holds 8 output
                         channels × 48 positions in 24 ``Lanes`` registers (kernels/_simd.py) while k runs
                         over all Cg·KH·KW taps: per k, 3 vector loads and 8 broadcast weights feed 24
                         fused multiply-adds, with no patch, no horizontal sums and no stores until the end
                         (v2/v5's ``tile_matmul`` ends every 4×3 tile in 12 horizontal sums and loads 7
                         values per 12 multiply-adds).  The 3 vectors of 16 positions need not be
                         consecutive (``flat_bands``): a vector that would start on a dropped column
                         starts at the next row instead, and where a whole image is one small band a
                         task takes several images (``images_per_task``), their vectors sharing blocks,
                         so a 7×7 map (4 vectors) no longer leaves 2 of its 6 block vectors empty.
                         One thread: 512 ch on 7×7 18.8 → 13.7 ms, 256 on 14×14 11.7 → 10.4, 128 on 28×28
                         10.2 → 9.4, DCGAN transposed layer 14.3 → 12.2.  (Tried: an 8 × 16 block for
                         a band's last ≤ 32 positions, so that a 17×17 map, 289 = 6·48 + 1 positions,
                         drops 5% instead of 16%: Inception's spatially separable layer ran 7% faster,
                         but the second unrolled block added ~3 s to every kind's first-call
                         compilation.)  Measured,
                         one thread, CPU time, the versions in turns: ResNet 3×3 layer 9.3–10.4 ms vs
                         16–20 for v5 (≈ 190 GFLOP/s; oneDNN ≈ 190);
                         3×3 on 7×7 maps, 512 channels, 14.9 vs 29.4 for v2; the text-CNN conv1d 1.6 vs
                         2.9 ms.  conv3d: output plane od is a 2-d convolution over the Cg·KD input
                         planes (c, kd) it reads, stacked as channels (w's own (c, kd, kh, kw) order);
                         C3D 3×3×3 layer 55 ms vs 111 for v2 (≈ 200 GFLOP/s), any depth stride.
                         A stride s along H or W: output (oh, ow) reads row oh·s − ph + kh·dh =
                         (oh + qh)·s + ah, row oh + qh of the phase plane x[ah::s], so the band holds each
                         plane's s·s phase planes (``fill_phase_planes``: each row of x read once and
                         dealt to its column phases) and every tap is again a fixed offset
                         (``flat_offsets``): stride-1 arithmetic, no wasted tap.  ResNet stem 7×7/2
                         (3→64, 224²): 10.6 ms vs 37 for v5; 3×3/2 layers 1.4–1.5× faster.  Not used
                         for 1×1 layers of 256+ pixels (v4 ran 1.5–2.4× faster: a 1×1 layer's sum is too
                         short to pay for the band copy) nor below FLAT_MIN_TERMS terms (depthwise:
                         7 of the 8 register rows would be padding; v3 ran 2× faster).
    ``conv`` picks v4 for pointwise layers of at least POINTWISE_MIN_PIX pixels per image; v6 from
    FLAT_MIN_TERMS terms per output (Cg·KD·KH·KW), except 1×1 layers at a stride (v2 ran up to 1.5×
    faster on those: v6 would copy all sh·sw phase planes to use one); v3 below PLANES_MAX_TERMS
    terms; v2 for the remaining conv3d and 1×1 layers; else v5.
    Also tried: one axpy-form product per tap over zero-padded "wide" rows (no patch at all, as v3 with
    v4's product): as fast as v2 at best, and 1.3–1.5× slower than v5 on the ResNet and dilated layers.

Caveats
    Accumulation is in the input dtype, like torch's CPU kernels. v2 sums in a different order than v1
    (SIMD partial sums), so results agree to rounding, not bit for bit.
"""
import numba
import numpy as np
from numba import prange

from .. import NotApplicable
from .. import _simd as simd
from .._cpu_gemm import FASTMATH, MR, NR, round_up, rows_product, tile_matmul, tile_product
from .._cpu_rows import fill_phase_planes, transpose_into
from .._index import as_3d, pad3, valid_outputs
from .._simd import LANES

valid_outputs_jit = numba.njit(valid_outputs)

TILE_W = 96     # most output pixels per v2 tile: rows up to 96 wide are one tile (P = 96 × K stays in L2);
                # wider rows are cut into equal chunks (a row of 56 as 48 + 8 was measured 15% slower)
PLANES_MAX_TERMS = 64   # below this many terms per output (Cg·KD·KH·KW), v3 beats the matrix product
FLAT_MIN_TERMS = 32     # from this many terms per output, v6's register block beats v3 (depthwise, 9
                        # terms: v3 2× faster; 36 terms: even; 63 terms: v6 1.27× faster)
POINTWISE_MIN_PIX = 256 # v4 for pointwise maps from 16×16 up: on 7×7 maps its rows are too short (v2 ran 2×
                        # faster), on 14×14 the two ran alike, from 16×16 v4 led (2× on 56×56)
POINTWISE_PIX = 512     # most pixels per v4 task: 4 output rows of 512 stay in L1, Cg input rows in L2
                        # (measured: 256 and 768 ran 10–30% slower on the 56×56 ResNet layers)


# ----------------------------------------------------------------------------------------------------
# v1: the formula, loop for loop
# ----------------------------------------------------------------------------------------------------
@numba.njit(parallel=True, cache=True)
def conv_direct(x, w, bias, y, sd, sh, sw, pd, ph, pw, dd, dh, dw):
    B, C, D, H, W = x.shape
    O, Cg, KD, KH, KW = w.shape
    _, _, OD, OH, OW = y.shape
    Og = O // (C // Cg)
    for row in prange(B * O * OD * OH):
        # which output row this task owns
        oh = row % OH
        od = row // OH % OD
        o = row // (OH * OD) % O
        b = row // (OH * OD * O)
        g = o // Og
        for ow in range(OW):
            acc = bias[o]
            # Σ over the input channels of group g and the kernel taps
            for c in range(Cg):
                for kd in range(KD):
                    i_d = od * sd - pd + kd * dd
                    for kh in range(KH):
                        ih = oh * sh - ph + kh * dh
                        for kw in range(KW):
                            iw = ow * sw - pw + kw * dw
                            # zero padding: taps outside the input add nothing
                            if 0 <= i_d < D and 0 <= ih < H and 0 <= iw < W:
                                acc += w[o, c, kd, kh, kw] * x[b, g * Cg + c, i_d, ih, iw]
            y[b, o, od, oh, ow] = acc


# ----------------------------------------------------------------------------------------------------
# v2: per-tile im2col + register-blocked matrix product
# ----------------------------------------------------------------------------------------------------
@numba.njit(parallel=True, cache=True)
def to_channels_last(x):
    """(B, C, D, H, W) -> (B, D, H, W, C): one pass over x, so that patch rows become contiguous copies.
    Each input row (C × W) is transposed by ``transpose_into`` (eight channels side by side; a plain
    loop writing one value per channel stride ran ~3× slower)."""
    B, C, D, H, W = x.shape
    out = np.empty((B, D, H, W, C), dtype=x.dtype)
    for row in prange(B * D * H):
        h = row % H
        d = row // H % D
        b = row // (H * D)
        transpose_into(x[b, :, d, h, :], out[b, d, h])         # out[b, d, h, w, c] = x[b, c, d, h, w]
    return out


@numba.njit(fastmath=FASTMATH, cache=True)
def im2col_tile(x_cl, A, bias, y, b, g, od, oh, ow0, N, KD, KH, KW, sd, sh, sw, pd, ph, pw, dd, dh, dw):
    """One v2 tile: y[b, g·Og + o, od, oh, ow0 + n] = bias[o] + Σ_kk A[o, kk]·P[n, kk], o < Og, n < N.

    x_cl is x channels-last (B, D, H, W, C); A (Og rounded up to MR, KD·KH·KW·Cg) is group g's weight
    matrix with columns in (kd, kh, kw, c) order (padded rows zero); bias (Og,) its biases.
    Shared with the kernels of input-dependent weights, which call it with each sample's own A.
    """
    _, D, H, W, _ = x_cl.shape
    K = A.shape[1]
    Og = bias.shape[0]
    Cg = K // (KD * KH * KW)

    # 1. the patch: P[n, kk] = x[b, g·Cg + c, id, ih, iw] for pixel ow0 + n and tap
    #    kk = ((kd·KH + kh)·KW + kw)·Cg + c. Channels-last, the Cg values of one tap are one
    #    contiguous copy. Rows up to a multiple of NR and taps reading padding stay zero.
    P = np.zeros((round_up(N, NR), K), dtype=x_cl.dtype)
    for n in range(N):
        ow = ow0 + n
        for kd in range(KD):
            i_d = od * sd - pd + kd * dd
            if i_d < 0 or i_d >= D:
                continue
            for kh in range(KH):
                ih = oh * sh - ph + kh * dh
                if ih < 0 or ih >= H:
                    continue
                for kw in range(KW):
                    iw = ow * sw - pw + kw * dw
                    if 0 <= iw < W:
                        kk = ((kd * KH + kh) * KW + kw) * Cg
                        P[n, kk:kk + Cg] = x_cl[b, i_d, ih, iw, g * Cg:(g + 1) * Cg]

    # 2. the tile: T[o, n] = bias[o] + Σ_kk A[o, kk]·P[n, kk]
    T = tile_product(A, P, bias, Og)

    # 3. write the real rows and columns of the tile (1-D views: a plain copy loop per output row)
    for o in range(Og):
        y_row, t_row = y[b, g * Og + o, od, oh], T[o]
        for n in range(N):
            y_row[ow0 + n] = t_row[n]


@numba.njit(parallel=True, fastmath=FASTMATH, cache=True)
def conv_im2col(x_cl, A, bias, y, KD, KH, KW, sd, sh, sw, pd, ph, pw, dd, dh, dw):
    """x_cl is x channels-last (B, D, H, W, C); A (BA, G, Og rounded up to MR, K) the weight matrices
    (``weight_matrices``) and bias (BA, O), with BA = 1 (one weight for the batch) or B (each sample its
    own: the kernels of input-dependent weights)."""
    B = x_cl.shape[0]
    G = A.shape[1]
    _, O, OD, OH, OW = y.shape
    Og = O // G
    n_chunks = (OW + TILE_W - 1) // TILE_W
    chunk_w = (OW + n_chunks - 1) // n_chunks
    for tile in prange(B * G * OD * OH * n_chunks):
        # which tile this task owns: output columns ow0 .. ow0+N of row (b, od, oh), channels of group g
        chunk = tile % n_chunks
        oh = tile // n_chunks % OH
        od = tile // (n_chunks * OH) % OD
        g = tile // (n_chunks * OH * OD) % G
        b = tile // (n_chunks * OH * OD * G)
        ow0 = chunk * chunk_w
        bw = b if A.shape[0] > 1 else 0         # whose weights: the sample's, or the shared ones
        im2col_tile(x_cl, A[bw, g], bias[bw, g * Og:(g + 1) * Og], y, b, g, od, oh, ow0,
                    min(chunk_w, OW - ow0), KD, KH, KW, sd, sh, sw, pd, ph, pw, dd, dh, dw)


# ----------------------------------------------------------------------------------------------------
# v3: thin groups (depthwise, ResNeXt): whole padded planes, one long loop per tap
# ----------------------------------------------------------------------------------------------------
@numba.njit(parallel=True, fastmath=FASTMATH, cache=True)
def conv_planes(x, w, bias, y, sd, sh, sw, pd, ph, pw, dd, dh, dw):
    B, C, D, H, W = x.shape
    O, Cg, KD, KH, KW = w.shape
    _, _, OD, OH, OW = y.shape
    G = C // Cg
    Og = O // G
    # the zero-padded input planes, one per phase (ah, aw) of the stride (one at stride 1): tap (kh, kw)
    # reads phase row oh + qh of phase plane ah, (qh, ah) = divmod(kh·dh − ph, sh), likewise columns
    # (as in v6's ``flat_offsets``); a padded plane starts at phase row qh_min and column qw_min, its rows
    # are Wp wide, and a tail of qw_max − qw_min zeros keeps the last tap's reads inside
    qh_min, qh_max = -ph // sh, ((KH - 1) * dh - ph) // sh
    qw_min, qw_max = -pw // sw, ((KW - 1) * dw - pw) // sw
    Hp, Wp = OH + qh_max - qh_min, OW + qw_max - qw_min
    for task in prange(B * G * OD):
        od = task % OD
        g = task // OD % G
        b = task // (OD * G)
        # "wide" output rows: OH rows of Wp columns (the last Wp − OW of each row are dropped at the end);
        # tap (kh, kw) is then one flat shift: acc[o, p] += w·xp[c, ah, aw, p + (qh − qh_min)·Wp + qw − qw_min]
        acc = np.zeros((Og, OH * Wp), dtype=x.dtype)
        for kd in range(KD):
            i_d = od * sd - pd + kd * dd
            if i_d < 0 or i_d >= D:
                continue
            # the group's Cg input planes at depth i_d, zero-padded, split in their phase planes (one copy,
            # shared by the Og outputs)
            # (flat: plane (c, ah, aw) at ((c·sh + ah)·sw + aw)·Hp·Wp, a tail of zeros after the last)
            xp = np.zeros(Cg * sh * sw * Hp * Wp + qw_max - qw_min, dtype=x.dtype)
            for c in range(Cg):
                if sh == 1 and sw == 1:
                    # speed: at stride 1, only the rows and columns inside x are copied into the zeroed
                    # plane, each row a loop from 0 over 1-D views (vectorised).  Going through
                    # fill_phase_planes here, which writes the padding too, cost depthwise layers ~15%
                    iw_lo, iw_hi = max(0, -pw), min(W, Wp - pw)
                    for ih in range(max(0, -ph), min(H, Hp - ph)):
                        x_part = x[b, g * Cg + c, i_d, ih, iw_lo:iw_hi]
                        start = c * Hp * Wp + (ih + ph) * Wp + pw + iw_lo
                        xp_part = xp[start:start + iw_hi - iw_lo]
                        for j in range(iw_hi - iw_lo):
                            xp_part[j] = x_part[j]
                else:
                    fill_phase_planes(x[b, g * Cg + c, i_d],
                                      xp[c * sh * sw * Hp * Wp:(c + 1) * sh * sw * Hp * Wp].reshape(sh, sw, Hp, Wp),
                                      qh_min, -qw_min)
            for o in range(Og):
                acc_o = acc[o]
                for c in range(Cg):
                    for kh in range(KH):
                        qh, ah = (kh * dh - ph) // sh, (kh * dh - ph) % sh
                        for kw in range(KW):
                            qw, aw = (kw * dw - pw) // sw, (kw * dw - pw) % sw
                            weight = w[g * Og + o, c, kd, kh, kw]
                            shift = (qh - qh_min) * Wp + qw - qw_min
                            start = ((c * sh + ah) * sw + aw) * Hp * Wp + shift
                            x_shifted = xp[start:start + OH * Wp]
                            # speed: a ~3000-long loop over 1-D views vectorises (2-D indexing here
                            # measured 7× slower: LLVM no longer sees a unit-stride stream)
                            for p in range(OH * Wp):
                                acc_o[p] += weight * x_shifted[p]
        for o in range(Og):
            for oh in range(OH):
                y_row, acc_row = y[b, g * Og + o, od, oh], acc[o, oh * Wp:oh * Wp + OW]
                for ow in range(OW):
                    y_row[ow] = acc_row[ow] + bias[g * Og + o]


# ----------------------------------------------------------------------------------------------------
# v4: pointwise (1×1×1, stride 1, no padding): the matrix product straight on NCHW rows of pixels
# ----------------------------------------------------------------------------------------------------
@numba.njit(parallel=True, fastmath=FASTMATH, cache=True)
def conv_pointwise(x, A, bias, y):
    """x (B, G, Cg, S) and y (B, G, Og, S): the input and output with the S = D·H·W pixels of each
    channel as one row; A (BA, G, Og rounded up to MR, Cg) and bias (BA, O) with BA = 1 (one weight for
    the batch: ``weight_matrices``) or B (each sample its own: the kernels of input-dependent weights).
    y[b, g] = bias[b] + A[b, g]·x[b, g]."""
    B, G, _, S = x.shape
    Og = y.shape[2]
    n_chunks = (S + POINTWISE_PIX - 1) // POINTWISE_PIX
    chunk = (S + n_chunks - 1) // n_chunks          # equal chunks: no short last task
    for task in prange(B * G * n_chunks):
        j0 = task % n_chunks * chunk
        g = task // n_chunks % G
        b = task // (n_chunks * G)
        bw = b if A.shape[0] > 1 else 0             # whose weights: the sample's, or the shared ones
        rows_product(A[bw, g], x[b, g], j0, bias[bw, g * Og:(g + 1) * Og], y[b, g], j0, min(chunk, S - j0))


# ----------------------------------------------------------------------------------------------------
# v5: channels-last slab per block of output rows, then contiguous patch runs (1-d and 2-d)
# ----------------------------------------------------------------------------------------------------
SLAB_ROWS = 8   # output rows per v5 task: neighbouring rows' taps read the same slab rows
SLAB_W = 64     # output columns per v5 task (one chunk for rows up to 64 wide; ~15% faster than 4 × 48 here)


@numba.njit(fastmath=FASTMATH, cache=True)
def channels_last_slab(x, b, c0, Cg, ih0, n_rows, iw0, n_cols):
    """S[r, col, c] = x[b, c0 + c, ih0 + r, iw0 + col], zero outside the image (the padding)."""
    _, _, H, W = x.shape
    S = np.zeros((n_rows, n_cols, Cg), dtype=x.dtype)
    lo, hi = max(0, -iw0), min(n_cols, W - iw0)
    for c in range(Cg):
        for r in range(n_rows):
            ih = ih0 + r
            if 0 <= ih < H:
                x_row = x[b, c0 + c, ih]
                for col in range(lo, hi):
                    S[r, col, c] = x_row[iw0 + col]
    return S


@numba.njit(parallel=True, fastmath=FASTMATH, cache=True)
def conv_slab(x, A, bias, y, KH, KW, sh, sw, ph, pw, dh, dw):
    """v5: as v2, the patch built from a channels-last slab of the rows a task reads. x (B, C, H, W),
    y (B, O, OH, OW); A (BA, G, Og rounded up to MR, K) with taps in (kh, kw, c) order
    (``weight_matrices``) and bias (BA, O), BA = 1 (one weight for the batch) or B (each sample its own)."""
    B, C, H, W = x.shape
    G, Og_pad, K = A.shape[1], A.shape[2], A.shape[3]
    _, O, OH, OW = y.shape
    Cg, Og = C // G, O // G
    n_blocks = (OH + SLAB_ROWS - 1) // SLAB_ROWS
    n_chunks = (OW + SLAB_W - 1) // SLAB_W
    for task in prange(B * G * n_blocks * n_chunks):
        # the task: output rows oh0 .. oh1, columns ow0 .. ow0+N of sample b, the channels of group g
        chunk = task % n_chunks
        block = task // n_chunks % n_blocks
        g = task // (n_chunks * n_blocks) % G
        b = task // (n_chunks * n_blocks * G)
        bw = b if A.shape[0] > 1 else 0         # whose weights: the sample's, or the shared ones
        oh0, ow0 = block * SLAB_ROWS, chunk * SLAB_W
        oh1, N = min(OH, oh0 + SLAB_ROWS), min(SLAB_W, OW - ow0)

        # 1. the input these outputs read, channels last: each input value is transposed once per
        #    task instead of once per tap (speed: the copies below are then runs of Cg contiguous values)
        S = channels_last_slab(x, b, g * Cg, Cg, oh0 * sh - ph, (oh1 - 1 - oh0) * sh + (KH - 1) * dh + 1,
                               ow0 * sw - pw, (N - 1) * sw + (KW - 1) * dw + 1)
        P = np.zeros((round_up(N, NR), K), dtype=x.dtype)        # rows past N stay zero
        T = np.empty((Og_pad, P.shape[0]), dtype=x.dtype)
        for oh in range(oh0, oh1):
            # 2. the patch of row oh: P[n, (kh·KW + kw)·Cg + c] = S[(oh − oh0)·sh + kh·dh, n·sw + kw·dw, c]
            for n in range(N):
                for kh in range(KH):
                    for kw in range(KW):
                        src = S[(oh - oh0) * sh + kh * dh, n * sw + kw * dw]
                        base = (kh * KW + kw) * Cg
                        for c in range(Cg):
                            P[n, base + c] = src[c]
            # 3. T = bias + A[b, g]·Pᵀ, then its real rows and columns to y
            T[:] = 0
            for q in range(Og):
                T[q, :] = bias[bw, g * Og + q]
            tile_matmul(A[bw, g], P, T)
            for q in range(Og):
                for n in range(N):
                    y[b, g * Og + q, oh, ow0 + n] = T[q, n]


# ----------------------------------------------------------------------------------------------------
# v6: zero-padded "wide" rows of a band (phase planes at a stride), an 8 × 48 block of outputs in 24 registers
# ----------------------------------------------------------------------------------------------------
FLAT_N = 3 * LANES      # output positions per register block (3 registers of 16 lanes per output channel)
FLAT_MR = 8             # output channels per register block: 8 × 3 = 24 accumulator registers
FLAT_BAND_PIX = 1024    # about this many output positions per v6 task (a band of whole output rows)


@numba.njit(fastmath=FASTMATH, cache=True)
def flat_block(S, s0, s1, s2, offs, A, o0, T):
    """T[i·FLAT_N + j·LANES + n] = Σ_k A[o0 + i, k]·S[s_j + offs[k] + n] for i < FLAT_MR = 8, the three
    vectors j < 3 of positions (starting at s0, s1, s2: consecutive, or not) and n < LANES = 16.

    The 8 × 48 sums live in 24 ``Lanes`` registers (of AVX-512's 32) for the whole k loop: each step
    loads 3 vectors of S and 8 weights (broadcast) for 24 fused multiply-adds, and nothing is stored
    until the end.  Why this shape: S's vectors come from L2 once a band outgrows L1 while A's 8 rows
    stay in L1, so the fewer S loads per multiply-add the better — measured on the benchmark layers'
    bands (one thread), 8 × 32 ran 5–14% faster than 4 × 64 (both 16 registers), and 8 × 48 3–7%
    faster than 8 × 32."""
    c00, c01, c02 = simd.zeros(S), simd.zeros(S), simd.zeros(S)
    c10, c11, c12 = simd.zeros(S), simd.zeros(S), simd.zeros(S)
    c20, c21, c22 = simd.zeros(S), simd.zeros(S), simd.zeros(S)
    c30, c31, c32 = simd.zeros(S), simd.zeros(S), simd.zeros(S)
    c40, c41, c42 = simd.zeros(S), simd.zeros(S), simd.zeros(S)
    c50, c51, c52 = simd.zeros(S), simd.zeros(S), simd.zeros(S)
    c60, c61, c62 = simd.zeros(S), simd.zeros(S), simd.zeros(S)
    c70, c71, c72 = simd.zeros(S), simd.zeros(S), simd.zeros(S)
    a0, a1, a2, a3 = A[o0], A[o0 + 1], A[o0 + 2], A[o0 + 3]
    a4, a5, a6, a7 = A[o0 + 4], A[o0 + 5], A[o0 + 6], A[o0 + 7]
    for k in range(offs.size):
        d = offs[k]
        v0, v1, v2 = simd.load(S, s0 + d), simd.load(S, s1 + d), simd.load(S, s2 + d)
        c00, c01, c02 = simd.fma(c00, a0[k], v0), simd.fma(c01, a0[k], v1), simd.fma(c02, a0[k], v2)
        c10, c11, c12 = simd.fma(c10, a1[k], v0), simd.fma(c11, a1[k], v1), simd.fma(c12, a1[k], v2)
        c20, c21, c22 = simd.fma(c20, a2[k], v0), simd.fma(c21, a2[k], v1), simd.fma(c22, a2[k], v2)
        c30, c31, c32 = simd.fma(c30, a3[k], v0), simd.fma(c31, a3[k], v1), simd.fma(c32, a3[k], v2)
        c40, c41, c42 = simd.fma(c40, a4[k], v0), simd.fma(c41, a4[k], v1), simd.fma(c42, a4[k], v2)
        c50, c51, c52 = simd.fma(c50, a5[k], v0), simd.fma(c51, a5[k], v1), simd.fma(c52, a5[k], v2)
        c60, c61, c62 = simd.fma(c60, a6[k], v0), simd.fma(c61, a6[k], v1), simd.fma(c62, a6[k], v2)
        c70, c71, c72 = simd.fma(c70, a7[k], v0), simd.fma(c71, a7[k], v1), simd.fma(c72, a7[k], v2)
    for i, (r0, r1, r2) in enumerate(((c00, c01, c02), (c10, c11, c12), (c20, c21, c22), (c30, c31, c32),
                                      (c40, c41, c42), (c50, c51, c52), (c60, c61, c62), (c70, c71, c72))):
        simd.store(T, i * FLAT_N, r0)
        simd.store(T, i * FLAT_N + LANES, r1)
        simd.store(T, i * FLAT_N + 2 * LANES, r2)


@numba.njit(cache=True)
def flat_offsets(Cg, KH, KW, R, Wp, dh, dw, sh=1, sw=1, ph=0, pw=0, j0=0):
    """offs[(c·KH + kh)·KW + kw]: where tap (c, kh, kw) of output position 0 sits in a band of
    ``padded_band`` (Cg·sh·sw planes of R rows of Wp values).

    Stride 1 (ph = pw = j0 = 0): (c·R + kh·dh)·Wp + kw·dw.  Stride s: output (oh, ow) reads x row
    oh·sh − ph + kh·dh = (oh + qh)·sh + ah with (qh, ah) = divmod(kh·dh − ph, sh), i.e. row oh + qh of the
    phase plane x[ah::sh] (likewise columns), so the tap sits in plane (c, ah, aw) at row qh − qh_min
    (qh_min = the first tap's, floor(−ph / sh)) and column qw − j0 (j0: the band's first phase column)."""
    offs = np.empty(Cg * KH * KW, dtype=np.int64)
    qh_min = -ph // sh
    for c in range(Cg):
        for kh in range(KH):
            qh, ah = (kh * dh - ph) // sh, (kh * dh - ph) % sh
            for kw in range(KW):
                qw, aw = (kw * dw - pw) // sw, (kw * dw - pw) % sw
                plane = (c * sh + ah) * sw + aw
                offs[(c * KH + kh) * KW + kw] = (plane * R + qh - qh_min) * Wp + qw - j0
    return offs


@numba.njit(fastmath=FASTMATH, cache=True)
def padded_band(x, b0, n_img, planes, ih0, R, pw, Wp, sh=1, sw=1):
    """The same band of images b = b0 … b0 + n_img − 1, one after the other (image b from
    (b − b0)·planes.size·sh·sw·R·Wp on; below, the part of image b0).  Stride 1:
    S[(i·R + r)·Wp + pw + iw] = x[b0, planes[i], ih0 + r, iw] for i < planes.size, r < R; zero elsewhere
    (the padding, and all of plane i where planes[i] < 0: a depth slab outside a 3-d input).
    Needs pw + W ≤ Wp.  Stride s: each plane split in its sh·sw phase planes x[ah::sh, aw::sw]:
    S[((i·sh + ah)·sw + aw)·R + r)·Wp + t] = x[b0, planes[i], (ih0 + r)·sh + ah, (t − pw)·sw + aw].
    A tail of FLAT_N + Wp zeros keeps a last block's reads past the band inside S."""
    n = planes.size * sh * sw
    S = np.empty(n_img * n * R * Wp + FLAT_N + Wp, dtype=x.dtype)
    S[n_img * n * R * Wp:] = 0
    for b in range(b0, b0 + n_img):
        image = S[(b - b0) * n * R * Wp:(b - b0 + 1) * n * R * Wp]
        for i in range(planes.size):
            phases = image[i * sh * sw * R * Wp:(i + 1) * sh * sw * R * Wp].reshape(sh, sw, R, Wp)
            if planes[i] < 0:
                phases[:] = 0
            else:
                fill_phase_planes(x[b, planes[i]], phases, ih0, pw)
    return S


@numba.njit(fastmath=FASTMATH, cache=True)
def store_plus(dst, src, value):
    """dst[j] = src[j] + value.  Speed: value is a scalar argument; read from an array inside the loop it
    kept the loop scalar (Numba cannot tell that dst does not overwrite it): 5× slower stores."""
    for j in range(src.size):
        dst[j] = src[j] + value


@numba.njit(fastmath=FASTMATH, cache=True)
def flat_bands(S, S_step, n_img, offs, A, bias, n_rows, Wp, OW, out, out_base, out_step, plane, row_step,
               col_step, n_out):
    """out[out_base + i·out_step + o·plane + r·row_step + col·col_step]
        = bias[o] + Σ_k A[o, k]·S[i·S_step + r·Wp + col + offs[k]]
    for bands i < n_img, o < n_out, r < n_rows, col < OW: the positions p = r·Wp + col of the wide rows,
    FLAT_MR output channels at a time (A has n_out rows rounded up to FLAT_MR), 3 vectors of LANES
    positions at a time; columns col ≥ OW are computed and dropped.
    A plain convolution writes whole rows (row_step = OW, col_step = 1); a phase of a transposed one
    writes every s-th row and column of its output.
    The vectors: each band's from position 0, each LANES after the last, or at the next row's start
    where that lands on a dropped column (rows of 16 outputs in 17 columns: one vector a row, none
    dropped), then grouped 3 to a block across bands, so that a small map does not leave its last
    block part-empty (a 7×7 map is 4 vectors: one band a task ran 2 blocks of 3, two bands run 3)."""
    L = (n_rows - 1) * Wp + OW                  # the last row's columns past OW are not needed
    starts = np.empty(n_img * ((L + LANES - 1) // LANES + n_rows), dtype=np.int64)   # S index of each
    band_of = np.empty(starts.size, dtype=np.int64)
    n_vec = 0
    for i in range(n_img):
        p = 0
        while p < L:
            starts[n_vec], band_of[n_vec] = i * S_step + p, i
            n_vec += 1
            p += LANES
            if p % Wp >= OW:
                p += Wp - p % Wp
    T = np.empty(FLAT_MR * FLAT_N, dtype=S.dtype)
    for o0 in range(0, n_out, FLAT_MR):
        for v in range(0, n_vec, 3):
            # a last block short of 3 vectors repeats its last one (computed, not stored)
            flat_block(S, starts[v], starts[min(v + 1, n_vec - 1)], starts[min(v + 2, n_vec - 1)], offs, A, o0,
                       T)
            # stored as runs of consecutive vectors of one band
            j = 0
            while j < min(3, n_vec - v):
                i, first = band_of[v + j], starts[v + j]
                k = j + 1
                while (k < min(3, n_vec - v) and band_of[v + k] == i
                       and starts[v + k] == first + (k - j) * LANES):
                    k += 1
                store_positions(T, j * LANES, (k - j) * LANES, first - i * S_step, L, Wp, OW, out,
                                out_base + i * out_step, plane, row_step, col_step, o0, n_out, bias)
                j = k


@numba.njit(fastmath=FASTMATH, cache=True)
def store_positions(T, t0, n_pos, p0, L, Wp, OW, out, out_base, plane, row_step, col_step, o0, n_out, bias):
    """``flat_bands``' stores: T[i·FLAT_N + t0 + n] (+ bias) for the n_pos positions p0 + n of its band,
    one row segment at a time (those before L and in a column < OW), for the block's FLAT_MR channels."""
    n = 0
    while n < n_pos and p0 + n < L:
        r, col = (p0 + n) // Wp, (p0 + n) % Wp
        run = min(n_pos - n, Wp - col)
        if col < OW:
            m = min(OW, col + run) - col
            for i in range(min(FLAT_MR, n_out - o0)):
                start = out_base + (o0 + i) * plane + r * row_step + col * col_step
                T_part = T[i * FLAT_N + t0 + n:i * FLAT_N + t0 + n + m]
                if col_step == 1:       # speed: a slice without a step is contiguous to Numba
                    store_plus(out[start:start + m], T_part, bias[o0 + i])
                else:
                    store_plus(out[start:start + (m - 1) * col_step + 1:col_step], T_part, bias[o0 + i])
        n += run


@numba.njit(cache=True)
def band_task(task, G, OD, n_bands, band):
    """(image group, g, od, first row) of task number ``task`` of a v6-style kernel, tasks ordered
    (image group, g, od, band)."""
    return task // (n_bands * OD * G), task // (n_bands * OD) % G, task // n_bands % OD, task % n_bands * band


@numba.njit(cache=True)
def images_per_task(B, other_tasks, n_bands, band_positions, threads):
    """How many images a v6-style task takes, its band of each one after the other (``flat_bands``):
    one where an image has several bands; else as many as keep a task's positions under FLAT_BAND_PIX and
    leave two tasks per thread (other_tasks: the tasks per image; threads: numba.get_num_threads(),
    passed in: called inside a kernel it would keep the kernel out of the on-disk cache).  Small maps
    fill their register blocks better so: ResNet's 7×7 layers, the DCGAN layer's 16-wide phase rows."""
    if n_bands > 1:
        return 1
    return min(B, max(1, FLAT_BAND_PIX // band_positions),
               max(1, B * other_tasks // (2 * threads)))


@numba.njit(parallel=True, fastmath=FASTMATH, cache=True)
def conv_flat(x, A, bias, y, KD, KH, KW, sd, sh, sw, pd, ph, pw, dd, dh, dw, threads):
    """v6: x (B, C, D, H, W), y (B, O, OD, OH, OW) (D = OD = KD = 1 for conv1d and conv2d);
    A (BA, G, Og rounded up to FLAT_MR, K) with taps in (c, kd, kh, kw) order
    (``weight_matrices(..., taps_first=False)``), bias (BA, O), BA = 1 or B.  A 3-d output plane od is
    a 2-d convolution over the Cg·KD input planes it reads, (c, kd) at depth od·sd − pd + kd·dd, stacked
    as channels: w's own (c, kd, kh, kw) order is that stacking.  A stride along H or W becomes stride 1
    over each plane's sh·sw phase planes x[ah::sh, aw::sw] (``flat_offsets``, ``padded_band``)."""
    B, C, D, H, W = x.shape
    G = A.shape[1]
    _, O, OD, OH, OW = y.shape
    Cg, Og = C // G, O // G
    qh_min, qh_max = -ph // sh, ((KH - 1) * dh - ph) // sh       # the rows a tap reaches, in phase rows
    if sh == 1 and sw == 1:
        # a wide row of S: P zeros, then x's W values.  P = the larger of the left and right paddings: a
        # read past a row's last column lands in the next row's leading zeros, so one run of zeros pads
        # both sides (W + P values a row instead of W + both pads: fewer positions computed, then dropped)
        P = max(pw, OW + (KW - 1) * dw - W - pw)
        Wp = max(OW, W + P)
    else:
        # a wide row of a phase plane: OW outputs and the taps' reach in phase columns, from −P on
        P = pw // sw + (pw % sw > 0)
        Wp = OW + ((KW - 1) * dw - pw) // sw + P
    n_bands = (OH * Wp + FLAT_BAND_PIX - 1) // FLAT_BAND_PIX
    band = (OH + n_bands - 1) // n_bands        # output rows per task, as even as the rows allow
    n_bands = (OH + band - 1) // band
    R = band + qh_max - qh_min                  # (phase) rows a band reads
    offs = flat_offsets(Cg * KD, KH, KW, R, Wp, dh, dw, sh, sw, ph, pw, -P)
    x_planes = x.reshape(B, C * D, H, W)        # plane (c, i_d) is c·D + i_d
    yf = y.reshape(-1)
    # images one task takes (1 where each sample has weights of its own)
    m = images_per_task(B, G * OD, n_bands, band * Wp, threads) if A.shape[0] == 1 else 1
    for task in prange((B + m - 1) // m * G * OD * n_bands):
        group, g, od, oh0 = band_task(task, G, OD, n_bands, band)
        b, n_img = group * m, min(m, B - group * m)
        bw = b if A.shape[0] > 1 else 0         # whose weights: the sample's, or the shared ones
        # 1. the band's input rows (phase rows oh0 + qh_min …) of the planes output plane od reads,
        #    zero-padded (a depth slab outside x is a zero plane)
        planes = np.empty(Cg * KD, dtype=np.int64)
        for c in range(Cg):
            for kd in range(KD):
                i_d = od * sd - pd + kd * dd
                planes[c * KD + kd] = (g * Cg + c) * D + i_d if 0 <= i_d < D else -1
        S = padded_band(x_planes, b, n_img, planes, oh0 + qh_min, R, P, Wp, sh, sw)
        # 2. its output rows for the group's Og channels
        flat_bands(S, Cg * KD * sh * sw * R * Wp, n_img, offs, A[bw, g], bias[bw, g * Og:(g + 1) * Og],
                   min(band, OH - oh0), Wp, OW, yf, (((b * O + g * Og) * OD + od) * OH + oh0) * OW,
                   O * OD * OH * OW, OD * OH * OW, OW, 1, Og)


# ----------------------------------------------------------------------------------------------------
# The wrapper fastconv.run calls
# ----------------------------------------------------------------------------------------------------
def weight_matrices(w5, groups, taps_first=True):
    """w (O, Cg, KD, KH, KW) -> A (G, Og rounded up, KD·KH·KW·Cg), columns in (kd, kh, kw, c) order
    to match a channels-last patch (v2, v5; rows up to a multiple of tile_matmul's MR), or in w's own
    (c, kd, kh, kw) order when not taps_first (v6; rows up to a multiple of FLAT_MR); extra rows zero."""
    O = w5.shape[0]
    Og = O // groups
    A = np.zeros((groups, round_up(Og, MR if taps_first else FLAT_MR), w5[0].size), dtype=w5.dtype)
    A[:, :Og] = (w5.transpose(0, 2, 3, 4, 1) if taps_first else w5).reshape(groups, Og, -1)
    return A


def conv(x, w, bias=None, *, stride, padding, dilation, groups, out_size, version="auto"):
    """y = conv{nd}d(x, w, bias) with explicit leading paddings and the output size from the plan.

    version: "direct" (v1), "im2col" (v2), "planes" (v3), "pointwise" (v4), "slab"
    (v5, conv1d and conv2d), "flat" (v6) or "auto" (v4 for pointwise layers of POINTWISE_MIN_PIX pixels
    or more; v6 when each output sums at least FLAT_MIN_TERMS terms, but not for 1×1 layers at a stride;
    v3 when it sums fewer than PLANES_MAX_TERMS — too short a sum for a matrix product to pay; v2 for
    the other conv3d and 1×1 layers (measured faster there than v5); else v5).
    """
    nd = x.ndim - 2
    x5, w5 = as_3d(x, nd), as_3d(w, nd)
    B, O = x.shape[0], w.shape[0]
    y5 = np.empty((B, O) + pad3(out_size, nd, 1), dtype=x.dtype)
    bias = np.zeros(O, dtype=x.dtype) if bias is None else bias
    geometry = pad3(stride, nd, 1) + pad3(padding, nd, 0) + pad3(dilation, nd, 1)
    unit_stride = geometry[1] == geometry[2] == 1
    one_by_one = w5.shape[2:] == (1, 1, 1)
    pointwise = one_by_one and geometry[:6] == (1, 1, 1, 0, 0, 0)
    if version == "auto":
        if pointwise and np.prod(x5.shape[2:]) >= POINTWISE_MIN_PIX:
            version = "pointwise"
        elif (unit_stride or not one_by_one) and w[0].size >= FLAT_MIN_TERMS:
            version = "flat"
        elif w[0].size < PLANES_MAX_TERMS:
            version = "planes"
        elif nd == 3 or one_by_one:
            version = "im2col"
        else:
            version = "slab"
    if version == "direct":
        conv_direct(x5, w5, bias, y5, *geometry)
    elif version == "planes":
        conv_planes(x5, w5, bias, y5, *geometry)
    elif version == "pointwise":
        if not pointwise:
            raise NotApplicable("version='pointwise' needs a 1×1 kernel at stride 1 without padding")
        G = groups
        conv_pointwise(x5.reshape(B, G, x.shape[1] // G, -1), weight_matrices(w5, G)[None], bias[None],
                  y5.reshape(B, G, O // G, -1))
    elif version == "slab":
        if nd == 3:
            raise NotApplicable("version='slab' is for conv1d and conv2d")
        sd, sh, sw, pd, ph, pw, dd, dh, dw = geometry
        (C, H, W), (OH, OW) = x5.shape[1:2] + x5.shape[3:], y5.shape[3:]
        conv_slab(x5.reshape(B, C, H, W), weight_matrices(w5, groups)[None], bias[None], y5.reshape(B, O, OH, OW),
                  *w5.shape[3:], sh, sw, ph, pw, dh, dw)
    elif version == "flat":
        conv_flat(x5, weight_matrices(w5, groups, taps_first=False)[None], bias[None], y5, *w5.shape[2:],
                  *geometry, numba.get_num_threads())
    elif version == "im2col":
        conv_im2col(to_channels_last(x5), weight_matrices(w5, groups)[None], bias[None], y5, *w5.shape[2:],
                    *geometry)
    else:
        raise ValueError(f"version must be 'auto' or one of {', '.join(VERSIONS)}, got {version!r}")
    return y5.reshape((B, O) + tuple(out_size))


VERSIONS = ("direct", "im2col", "planes", "pointwise", "slab", "flat")
