"""Modules of the factorized family. Each factor is a torch.nn.Conv2d sub-module (so parameters are
initialised exactly like nn.Conv2d, with each factor's own fan-in, and state_dicts port from the usual
"conv then conv" implementations); the forward pass is one fastconv call on those weights."""
import torch

from .common import FastconvModule
from .standard import _Conv

Conv2d = torch.nn.Conv2d


class SeparableConv2d(FastconvModule):
    """Depthwise k×k (``depthwise``, groups = in_channels, no bias) then pointwise 1×1 (``pointwise``),
    as Xception's SeparableConv2d; ``depth_multiplier`` filters per input channel."""
    kind = "separable"

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1,
                 depth_multiplier=1, bias=True, backend="auto"):
        super().__init__()
        mid = in_channels * depth_multiplier
        self.depthwise = Conv2d(in_channels, mid, kernel_size, stride, padding, dilation, groups=in_channels,
                               bias=False)
        self.pointwise = Conv2d(mid, out_channels, 1, bias=bias)
        self.backend = backend

    def forward(self, x):
        dw = self.depthwise
        return self.fastconv(x, dw.weight, pointwise=self.pointwise.weight, bias=self.pointwise.bias,
                             stride=dw.stride, padding=dw.padding, dilation=dw.dilation)


class SpatialSeparableConv2d(FastconvModule):
    """A 1×k row filter (``row``, in → mid channels, no bias) then a k×1 column filter (``col``,
    mid → out), as Inception-v3's 1×7 / 7×1 pair; ``mid_channels`` defaults to ``out_channels``."""
    kind = "spatial_separable"

    def __init__(self, in_channels, out_channels, kernel_size, padding=0, mid_channels=None, bias=True,
                 backend="auto"):
        super().__init__()
        mid = out_channels if mid_channels is None else mid_channels
        self.padding = padding
        self.row = Conv2d(in_channels, mid, (1, kernel_size), padding=(0, padding), bias=False)
        self.col = Conv2d(mid, out_channels, (kernel_size, 1), padding=(padding, 0), bias=bias)
        self.backend = backend

    def forward(self, x):
        return self.fastconv(x, self.row.weight, col=self.col.weight, bias=self.col.bias, padding=self.padding)


class FlattenedConv2d(FastconvModule):
    """Lateral 1×1 (``lateral``), vertical k×1 and horizontal 1×k per channel (``vertical``,
    ``horizontal``, groups = out_channels), no nonlinearity: a rank-1 k×k filter per output (Jin 2014)."""
    kind = "flattened"

    def __init__(self, in_channels, out_channels, kernel_size, padding=0, bias=True, backend="auto"):
        super().__init__()
        kh, kw = (kernel_size, kernel_size) if isinstance(kernel_size, int) else kernel_size
        self.padding = padding
        self.lateral = Conv2d(in_channels, out_channels, 1, bias=False)
        self.vertical = Conv2d(out_channels, out_channels, (kh, 1), groups=out_channels, bias=False)
        self.horizontal = Conv2d(out_channels, out_channels, (1, kw), groups=out_channels, bias=bias)
        self.backend = backend

    def forward(self, x):
        o = self.lateral.out_channels
        return self.fastconv(x, self.lateral.weight.reshape(o, -1), vertical=self.vertical.weight.reshape(o, -1),
                             horizontal=self.horizontal.weight.reshape(o, -1), bias=self.horizontal.bias,
                             padding=self.padding)


class ShuffledGroupConv2d(_Conv, torch.nn.Conv2d):
    """torch.nn.Conv2d(groups=g) followed by the ShuffleNet channel shuffle, in one fastconv pass."""
    kind = "shuffled_grouped"


class OctaveConv2d(FastconvModule):
    """OctaveConv of d-li14/octconv.pytorch: ``conv_h2h``, ``conv_h2l``, ``conv_l2h``, ``conv_l2l``
    (None where alpha_in or alpha_out is 0), no bias. forward takes x_h or (x_h, x_l), returns
    (y_h, y_l) with y_l None when alpha_out = 0."""
    kind = "octave"

    def __init__(self, in_channels, out_channels, kernel_size, alpha_in=0.5, alpha_out=0.5, stride=1,
                 padding=0, backend="auto"):
        super().__init__()
        if not (0 <= alpha_in < 1 and 0 <= alpha_out < 1):
            raise ValueError(f"alpha_in and alpha_out must be in [0, 1) (the high-frequency path always "
                             f"exists), got alpha_in={alpha_in}, alpha_out={alpha_out}")
        low_in, low_out = int(alpha_in * in_channels), int(alpha_out * out_channels)
        high_in, high_out = in_channels - low_in, out_channels - low_out
        self.stride, self.padding = stride, padding
        self.conv_h2h = Conv2d(high_in, high_out, kernel_size, 1, padding, bias=False)
        self.conv_h2l = None if alpha_out == 0 else Conv2d(high_in, low_out, kernel_size, 1, padding, bias=False)
        self.conv_l2h = None if alpha_in == 0 else Conv2d(low_in, high_out, kernel_size, 1, padding, bias=False)
        self.conv_l2l = None if alpha_in == 0 or alpha_out == 0 else \
            Conv2d(low_in, low_out, kernel_size, 1, padding, bias=False)
        self.backend = backend

    def forward(self, x):
        x = tuple(x) if isinstance(x, (tuple, list)) else (x, None)
        weights = tuple(None if conv is None else conv.weight
                        for conv in (self.conv_h2h, self.conv_h2l, self.conv_l2h, self.conv_l2l))
        return self.fastconv(x, weights, stride=self.stride, padding=self.padding)


MODULES = {
    "separable": SeparableConv2d, "spatial_separable": SpatialSeparableConv2d, "flattened": FlattenedConv2d,
    "shuffled_grouped": ShuffledGroupConv2d, "octave": OctaveConv2d,
}
