"""References of the deformable family (deform_conv2d / dcnv1 / dcnv2, dcnv3, dcnv4), written from the
definitions with explicit bilinear sampling (torchvision's compiled op and the official CUDA
extensions of DCNv3/DCNv4 are not needed), plus the grid_sample baselines the benchmarks time.

Bilinear rule (pixel centres at integer coordinates, as torchvision): a point with y ≤ −1, y ≥ H,
x ≤ −1 or x ≥ W reads 0; otherwise the four neighbours weighted by (1−|y−yc|)(1−|x−xc|), a neighbour
outside the image contributing 0.
"""
import torch
import torch.nn.functional as F


# ---------------------------------------------------------------------------------------------------
# The oracle: plain tensor code, one formula per line, exact in float64
# ---------------------------------------------------------------------------------------------------

def bilinear(img, y, x):
    """img (N, C, H, W), y and x (N, S) fractional coordinates -> (N, C, S) sampled values."""
    N, C, H, W = img.shape
    flat = img.reshape(N, C, H * W)
    inside = (y > -1) & (y < H) & (x > -1) & (x < W)
    y0, x0 = torch.floor(y), torch.floor(x)
    out = img.new_zeros(N, C, y.shape[1])
    for yc in (y0, y0 + 1):
        for xc in (x0, x0 + 1):
            real = inside & (yc >= 0) & (yc <= H - 1) & (xc >= 0) & (xc <= W - 1)
            weight = torch.where(real, (1 - (y - yc).abs()) * (1 - (x - xc).abs()), torch.zeros_like(y))
            index = (yc.clamp(0, H - 1) * W + xc.clamp(0, W - 1)).long()
            value = torch.gather(flat, 2, index[:, None, :].expand(N, C, -1))
            out = out + torch.where(real[:, None, :], weight[:, None, :] * value, torch.zeros_like(value))
    return out


def deform_conv2d(x, w, bias=None, offset=None, mask=None, *, stride, padding, dilation):
    """torchvision.ops.deform_conv2d: offset (B, 2·G·kh·kw, Ho, Wo) as (Δy, Δx) pairs, kernel points
    row-major (q = og·kh·kw + u·kw + v); mask (B, G·kh·kw, Ho, Wo) used as given (None: all ones)."""
    B, Cin, H, W = x.shape
    Cout, Cin_g, kh, kw = w.shape
    groups = Cin // Cin_g
    Ho, Wo = offset.shape[2:]
    G = offset.shape[1] // (2 * kh * kw)
    (sh, sw), (ph, pw), (dh, dw) = stride, padding, dilation
    off = offset.reshape(B, G, kh, kw, 2, Ho, Wo)
    ho = torch.arange(Ho, dtype=x.dtype, device=x.device).view(Ho, 1)
    wo = torch.arange(Wo, dtype=x.dtype, device=x.device).view(1, Wo)
    u = torch.arange(kh, dtype=x.dtype, device=x.device).view(kh, 1, 1, 1)
    v = torch.arange(kw, dtype=x.dtype, device=x.device).view(1, kw, 1, 1)
    # y = ho·sh − ph + u·dh + Δy,  x = wo·sw − pw + v·dw + Δx      (B, G, kh, kw, Ho, Wo)
    py = ho * sh - ph + u * dh + off[:, :, :, :, 0]
    px = wo * sw - pw + v * dw + off[:, :, :, :, 1]
    # columns[b, c, (u, v), (ho, wo)] = mask · bilinear(x[b, c], y, x), channel c in offset group c // (Cin/G)
    cols = bilinear(x.reshape(B * G, Cin // G, H, W), py.reshape(B * G, -1), px.reshape(B * G, -1))
    cols = cols.reshape(B, G, Cin // G, kh * kw, Ho * Wo)
    if mask is not None:
        cols = cols * mask.reshape(B, G, 1, kh * kw, Ho * Wo)
    # the convolution: y[b, o] = Σ_{c in o's weight group, u, v} w[o, c, u, v]·columns[b, c, u, v]
    cols = cols.reshape(B, groups, Cin_g * kh * kw, Ho * Wo)
    out = torch.matmul(w.reshape(groups, Cout // groups, -1), cols).reshape(B, Cout, Ho, Wo)
    return out if bias is None else out + bias.view(1, Cout, 1, 1)


def dcn_points(kernel_size, remove_center):
    """DCNv3/v4 kernel points in their x-major order: (i, j) with i < kw (x tap) outer, j < kh inner,
    the centre (kw//2, kh//2) skipped when remove_center."""
    kh, kw = kernel_size
    return [(i, j) for i in range(kw) for j in range(kh)
            if not (remove_center and i == kw // 2 and j == kh // 2)]


def dcnv3(x, offset=None, mask=None, *, kernel_size, stride, padding, dilation, group, offset_scale,
          remove_center):
    """InternImage's DCNv3 core op (the CUDA semantics), NHWC.

    x (N, H, W, G·D), offset (N, Ho, Wo, G·P·2) laid out [g][p][(Δx, Δy)], mask (N, Ho, Wo, G·P):
    y[n, ho, wo, g·D + d] = Σ_p mask[n, ho, wo, g, p]·bilinear(x[n, :, :, g·D + d], y_p, x_p) with
    x_p = wo·sw − pw + hw + (i·dw − hw + Δx)·scale, y_p = ho·sh − ph + hh + (j·dh − hh + Δy)·scale.
    """
    N, H, W, C = x.shape
    Ho, Wo = offset.shape[1:3]
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = kernel_size, stride, padding, dilation
    G, D = group, C // group
    points = dcn_points(kernel_size, remove_center)
    P = len(points)
    hh, hw = (dh * (kh - 1)) // 2, (dw * (kw - 1)) // 2
    i = torch.tensor([p[0] for p in points], dtype=x.dtype, device=x.device).view(P, 1, 1)
    j = torch.tensor([p[1] for p in points], dtype=x.dtype, device=x.device).view(P, 1, 1)
    ho = torch.arange(Ho, dtype=x.dtype, device=x.device).view(Ho, 1)
    wo = torch.arange(Wo, dtype=x.dtype, device=x.device).view(1, Wo)
    off = offset.reshape(N, Ho, Wo, G, P, 2).permute(0, 3, 4, 5, 1, 2)        # (N, G, P, 2, Ho, Wo)
    px = wo * sw - pw + hw + (i * dw - hw + off[:, :, :, 0]) * offset_scale  # (N, G, P, Ho, Wo)
    py = ho * sh - ph + hh + (j * dh - hh + off[:, :, :, 1]) * offset_scale
    img = x.reshape(N, H, W, G, D).permute(0, 3, 4, 1, 2).reshape(N * G, D, H, W)
    samples = bilinear(img, py.reshape(N * G, -1), px.reshape(N * G, -1)).reshape(N, G, D, P, Ho, Wo)
    m = mask.reshape(N, Ho, Wo, G, P).permute(0, 3, 4, 1, 2)                   # (N, G, P, Ho, Wo)
    out = (samples * m[:, :, None]).sum(3)                                    # (N, G, D, Ho, Wo)
    return out.permute(0, 3, 4, 1, 2).reshape(N, Ho, Wo, C)


def split_offset_mask(offset_mask, group, points):
    """DCNv4's fused (N, Ho, Wo, L) tensor -> DCNv3's offset (N, Ho, Wo, G·P·2) and mask (N, Ho, Wo, G·P).

    Group g's block starts at g·3P: [2P offsets (Δx, Δy) per point][P mask]; the tail up to L is padding.
    """
    N, Ho, Wo, _ = offset_mask.shape
    blocks = offset_mask[..., :group * 3 * points].reshape(N, Ho, Wo, group, 3 * points)
    offset = blocks[..., :2 * points].reshape(N, Ho, Wo, group * 2 * points)
    mask = blocks[..., 2 * points:].reshape(N, Ho, Wo, group * points)
    return offset, mask


def dcnv4(x, offset_mask=None, *, kernel_size, stride, padding, dilation, group, offset_scale,
          remove_center):
    """DCNv4's core op: DCNv3's sampling and aggregation with the raw (no softmax) weights, reading
    offsets and weights from one fused tensor."""
    P = len(dcn_points(kernel_size, remove_center))
    offset, mask = split_offset_mask(offset_mask, group, P)
    return dcnv3(x, offset, mask, kernel_size=kernel_size, stride=stride, padding=padding,
                 dilation=dilation, group=group, offset_scale=offset_scale, remove_center=remove_center)


# ---------------------------------------------------------------------------------------------------
# Benchmark baselines: the same arithmetic through torch's vectorised F.grid_sample (the fastest pure
# torch form we found: one sampling pass per point shared by all channels of a group, then a matmul or
# a weighted sum). grid_sample's zero padding is exactly the bilinear rule above; with
# align_corners=False, pixel centre c sits at the normalised coordinate (2c + 1)/size − 1.
# ---------------------------------------------------------------------------------------------------

def _grid(py, px, H, W):
    return torch.stack(((2 * px + 1) / W - 1, (2 * py + 1) / H - 1), dim=-1)


def deform_conv2d_grid_sample(x, w, bias=None, offset=None, mask=None, *, stride, padding, dilation):
    """deform_conv2d as grid_sample (columns of all kernel points at once) + one batched matmul."""
    B, Cin, H, W = x.shape
    Cout, Cin_g, kh, kw = w.shape
    groups = Cin // Cin_g
    Ho, Wo = offset.shape[2:]
    G = offset.shape[1] // (2 * kh * kw)
    (sh, sw), (ph, pw), (dh, dw) = stride, padding, dilation
    off = offset.reshape(B * G, kh * kw, 2, Ho, Wo)
    ys = (torch.arange(Ho, dtype=x.dtype).view(1, Ho, 1) * sh - ph
          + torch.arange(kh, dtype=x.dtype).repeat_interleave(kw).view(-1, 1, 1) * dh)
    xs = (torch.arange(Wo, dtype=x.dtype).view(1, 1, Wo) * sw - pw
          + torch.arange(kw, dtype=x.dtype).repeat(kh).view(-1, 1, 1) * dw)
    grid = _grid(ys + off[:, :, 0], xs + off[:, :, 1], H, W).reshape(B * G, kh * kw * Ho, Wo, 2)
    cols = F.grid_sample(x.reshape(B * G, Cin // G, H, W), grid, mode="bilinear", padding_mode="zeros",
                         align_corners=False).reshape(B, G, Cin // G, kh * kw, Ho * Wo)
    if mask is not None:
        cols = cols * mask.reshape(B, G, 1, kh * kw, Ho * Wo)
    cols = cols.reshape(B, groups, Cin_g * kh * kw, Ho * Wo)
    out = torch.matmul(w.reshape(groups, Cout // groups, -1), cols).reshape(B, Cout, Ho, Wo)
    return out if bias is None else out + bias.view(1, Cout, 1, 1)


def dcnv3_grid_sample(x, offset=None, mask=None, *, kernel_size, stride, padding, dilation, group,
                      offset_scale, remove_center):
    """dcnv3 as grid_sample over all points of every group at once, then the mask-weighted sum."""
    N, H, W, C = x.shape
    Ho, Wo = offset.shape[1:3]
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = kernel_size, stride, padding, dilation
    G, D = group, C // group
    points = dcn_points(kernel_size, remove_center)
    P = len(points)
    hh, hw = (dh * (kh - 1)) // 2, (dw * (kw - 1)) // 2
    i = torch.tensor([p[0] for p in points], dtype=x.dtype).view(1, 1, 1, P)
    j = torch.tensor([p[1] for p in points], dtype=x.dtype).view(1, 1, 1, P)
    off = offset.reshape(N, Ho, Wo, G, P, 2)
    px = torch.arange(Wo, dtype=x.dtype).view(1, Wo, 1, 1) * sw - pw + hw + (i * dw - hw + off[..., 0]) * offset_scale
    py = torch.arange(Ho, dtype=x.dtype).view(Ho, 1, 1, 1) * sh - ph + hh + (j * dh - hh + off[..., 1]) * offset_scale
    grid = _grid(py, px, H, W).permute(0, 3, 1, 2, 4, 5).reshape(N * G, Ho, Wo * P, 2)
    img = x.reshape(N, H, W, G, D).permute(0, 3, 4, 1, 2).reshape(N * G, D, H, W)
    samples = F.grid_sample(img, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    weights = mask.reshape(N, Ho, Wo, G, P).permute(0, 3, 1, 2, 4).reshape(N * G, 1, Ho, Wo, P)
    out = (samples.reshape(N * G, D, Ho, Wo, P) * weights).sum(-1)           # (N·G, D, Ho, Wo)
    return out.reshape(N, C, Ho, Wo).permute(0, 2, 3, 1).contiguous()


def dcnv4_grid_sample(x, offset_mask=None, *, kernel_size, stride, padding, dilation, group, offset_scale,
                      remove_center):
    """dcnv4 as the dcnv3 baseline after splitting the fused tensor."""
    offset, mask = split_offset_mask(offset_mask, group, len(dcn_points(kernel_size, remove_center)))
    return dcnv3_grid_sample(x, offset, mask, kernel_size=kernel_size, stride=stride, padding=padding,
                             dilation=dilation, group=group, offset_scale=offset_scale,
                             remove_center=remove_center)
