"""The bilinear read shared by the deformable Triton kernels (deform_conv2d/gpu.py, dcn/gpu.py); sampling.py is its CPU twin.

The same rule as deformable/sampling.py (which the CPU kernels use; a Triton kernel cannot call a
Python function), written on blocks: a point with y ≤ −1, y ≥ H, x ≤ −1 or x ≥ W reads 0, otherwise
the four neighbours weighted by (1 − |y − yc|)(1 − |x − xc|), a neighbour outside the image masked
off (it contributes 0 and is never loaded).
"""
import triton
import triton.language as tl

INT32_LIMIT = 2 ** 31


def check_int32_indexing(*tensors):
    """The kernels index with int32: refuse tensors whose element offsets would overflow it."""
    for t in tensors:
        if t is not None and t.numel() >= INT32_LIMIT:
            raise ValueError(f"a tensor of {t.numel()} elements is too large for the triton kernel's int32 "
                             f"indexing (limit 2**31); split the batch")


@triton.jit
def bilinear(img_ptr, base, py, px, H, W, row_stride, col_stride, valid):
    """Σ_corners weight · img[base + yc·row_stride + xc·col_stride], in float32.

    py, px, base and valid broadcast together: DCNv4-style callers pass positions of shape
    (pixels, 1) and a base of shape (pixels, channels), so the position arithmetic is done once per
    pixel and the loads cover a contiguous run of channels.
    """
    inside = valid & (py > -1) & (py < H) & (px > -1) & (px < W)
    y0f = tl.floor(py)
    x0f = tl.floor(px)
    ly = py - y0f
    lx = px - x0f
    y0 = tl.where(inside, y0f, 0.0).to(tl.int32)
    x0 = tl.where(inside, x0f, 0.0).to(tl.int32)
    y1 = y0 + 1
    x1 = x0 + 1
    ok_y0 = inside & (y0 >= 0)
    ok_y1 = inside & (y1 < H)
    ok_x0 = x0 >= 0
    ok_x1 = x1 < W
    v00 = tl.load(img_ptr + base + y0 * row_stride + x0 * col_stride, mask=ok_y0 & ok_x0, other=0.0).to(tl.float32)
    v01 = tl.load(img_ptr + base + y0 * row_stride + x1 * col_stride, mask=ok_y0 & ok_x1, other=0.0).to(tl.float32)
    v10 = tl.load(img_ptr + base + y1 * row_stride + x0 * col_stride, mask=ok_y1 & ok_x0, other=0.0).to(tl.float32)
    v11 = tl.load(img_ptr + base + y1 * row_stride + x1 * col_stride, mask=ok_y1 & ok_x1, other=0.0).to(tl.float32)
    hy = 1.0 - ly
    hx = 1.0 - lx
    return hy * (hx * v00 + lx * v01) + ly * (hx * v10 + lx * v11)
