"""References of the factorized family: each kind as the composition of the torch ops that define it.

These compositions are also the benchmark baselines ("what users would otherwise run"): every stage is
its own torch call and every intermediate is a full tensor.
"""
import torch.nn.functional as F


def separable(x, w, pointwise, bias=None, *, stride, padding, dilation):
    """Depthwise k×k (groups = Cin, w is (Cin·m, 1, kh, kw)) then pointwise 1×1 (Cout, Cin·m, 1, 1)."""
    mid = F.conv2d(x, w, None, stride, padding, dilation, groups=x.shape[1])
    return F.conv2d(mid, pointwise, bias)


def spatial_separable(x, w, col, bias=None, *, padding):
    """The 1×k row filter (padding only along W), then the k×1 column filter (padding only along H)."""
    rows = F.conv2d(x, w, None, padding=(0, padding))
    return F.conv2d(rows, col, bias, padding=(padding, 0))


def flattened(x, w, vertical, horizontal, bias=None, *, padding):
    """Lateral 1×1 across channels, then vertical k×1 and horizontal 1×k per channel (no nonlinearity)."""
    ph, pw = padding
    cout = w.shape[0]
    lateral = F.conv2d(x, w[:, :, None, None])
    columns = F.conv2d(lateral, vertical[:, None, :, None], padding=(ph, 0), groups=cout)
    return F.conv2d(columns, horizontal[:, None, None, :], bias, padding=(0, pw), groups=cout)


def channel_shuffle(y, groups):
    """torchvision's channel shuffle: output channel k·g + j is input channel j·C/g + k."""
    b, c, h, w = y.shape
    return y.view(b, groups, c // groups, h, w).transpose(1, 2).contiguous().view(b, c, h, w)


def shuffled_grouped(x, w, bias=None, *, stride, padding, dilation, groups):
    """Grouped conv2d, then the channel shuffle."""
    return channel_shuffle(F.conv2d(x, w, bias, stride, padding, dilation, groups), groups)


def octave(x, w, *, stride, padding):
    """OctaveConv (d-li14/octconv.pytorch): x = (x_h, x_l), w = (w_hh, w_hl, w_lh, w_ll) -> (y_h, y_l).

    up2 = nearest ×2, pool = 2×2 average with stride 2; None weights drop their path (first/last layer).
    """
    x_h, x_l = x
    w_hh, w_hl, w_lh, w_ll = w

    def conv(t, weight):
        return F.conv2d(t, weight, None, 1, padding)

    def pool(t):
        return F.avg_pool2d(t, 2, 2)

    if stride == 2:
        x_h = pool(x_h)
    y_h = conv(x_h, w_hh)
    if w_lh is not None:
        low_to_high = conv(x_l, w_lh)
        y_h = y_h + (F.interpolate(low_to_high, scale_factor=2, mode="nearest") if stride == 1 else low_to_high)
    y_l = None
    if w_hl is not None:
        y_l = conv(pool(x_h), w_hl)
    if w_ll is not None:
        low_to_low = conv(pool(x_l) if stride == 2 else x_l, w_ll)
        y_l = low_to_low if y_l is None else y_l + low_to_low
    return y_h, y_l
