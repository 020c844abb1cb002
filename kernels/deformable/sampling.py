"""Where a deformable kernel point lands and how a fractional point is read: the index math shared by
all four deformable kinds (deform_conv2d / dcnv1 / dcnv2, dcnv3, dcnv4).

Pure Python on scalars, no Numba and no Triton here: the CPU kernels wrap these functions with
``numba.njit`` (so every kernel reads the same rule), the references in fastconv/reference/deformable.py
spell out the same rule with torch tensors, and the Triton kernels repeat it on blocks (a Triton kernel
cannot call a Python function).

Position of kernel point (tap t, offset delta) of output index o along one axis
    pos = o·s − pad + half + (t·dil − half + delta)·scale
    deform_conv2d uses half = 0, scale = 1:  pos = o·s − pad + t·dil + delta        (torchvision)
    dcnv3/dcnv4 use half = (dil·(k−1))//2:  the offsets are scaled around the kernel centre  (InternImage)

Bilinear sampling (pixel centres at integer coordinates), torchvision's rule
    a point with y ≤ −1, y ≥ H, x ≤ −1 or x ≥ W reads 0; otherwise
    value = Σ over the four neighbours (yc, xc) ∈ {y0, y0+1} × {x0, x0+1} (y0 = ⌊y⌋, x0 = ⌊x⌋) of
            (1 − |y − yc|)·(1 − |x − xc|)·img[yc, xc],   a neighbour outside the image contributing 0.
"""
import math


def sample_position(out_index, stride, pad, half, tap, dilation, delta, scale):
    """The fractional input coordinate that kernel point ``tap`` of output ``out_index`` reads."""
    return out_index * stride - pad + half + (tap * dilation - half + delta) * scale


def bilinear_corners(y, x, H, W):
    """The four neighbours of (y, x) and their weights: (r0, r1, c0, c1, w00, w01, w10, w11).

    value = w00·img[r0, c0] + w01·img[r0, c1] + w10·img[r1, c0] + w11·img[r1, c1].
    Neighbours outside the image get weight 0 and an index clamped into the image, so a caller reads
    four in-bounds values with no test; a point outside (−1, H) × (−1, W) (or NaN) gets four zero
    weights.  Splitting "where" from "what" lets one set of corners serve many channels (DCNv4).
    Written without branches (conditional expressions become selects, min/max clamps), so a Numba loop
    calling it over many points vectorises: the DCN kernel computes 16 points per instruction this way.
    """
    inside = (y > -1.0) & (y < H) & (x > -1.0) & (x < W)      # False for NaN
    y, x = (y, x) if inside else (0.0, 0.0)     # a point outside is read at (0, 0), its weights zeroed below
    y0, x0 = int(math.floor(y)), int(math.floor(x))
    ly, lx = y - y0, x - x0                    # distances to the top-left neighbour
    hy, hx = 1.0 - ly, 1.0 - lx
    # a neighbour row/column outside the image (only y0 = −1 or y0 + 1 = H can be): weight 0, index clamped
    hy = hy if inside and y0 >= 0 else 0.0
    ly = ly if inside and y0 + 1 <= H - 1 else 0.0
    hx = hx if x0 >= 0 else 0.0
    lx = lx if x0 + 1 <= W - 1 else 0.0
    r0, r1, c0, c1 = max(y0, 0), min(y0 + 1, H - 1), max(x0, 0), min(x0 + 1, W - 1)
    return r0, r1, c0, c1, hy * hx, hy * lx, ly * hx, ly * lx


def dcn_point(p, kh, kw, remove_center):
    """DCNv3/v4 point p -> its taps (i along x, j along y): x-major order p = i·kh + j, with the centre
    (i, j) = (kw//2, kh//2) skipped when remove_center (the points after it move down by one)."""
    if remove_center and p >= (kw // 2) * kh + kh // 2:
        p += 1
    return p // kh, p % kh
