"""Modules of the deformable family.

- ``DeformConv2d``: a deformable conv2d whose offsets (and, for DCNv2, sigmoid modulation mask) are
  predicted from the input by a zero-initialised conv, as the common "pack" modules do (mmcv's
  DeformConv2dPack / ModulatedDeformConv2dPack): at initialisation it is the plain convolution
  (DCNv2: times 0.5, the sigmoid of 0).  ``weight`` and ``bias`` are initialised like
  torchvision.ops.DeformConv2d (i.e. like nn.Conv2d).
- ``DCNv3``: InternImage's DCNv3 block (value ``input_proj``, depthwise conv + LayerNorm + GELU feeding
  the ``offset`` and ``mask`` Linears, softmax over the P points of each group, ``output_proj``), with
  the official parameter names, nesting and initialisation, so an InternImage state_dict loads as is.
- ``DCNv4``: OpenGVLab's DCNv4 block (``value_proj``, one fused ``offset_mask`` Linear, no softmax,
  ``output_proj``), same names and initialisation as the official module.
"""
import math

import torch
import torch.nn.functional as F
from torch import nn

from ..families.deformable import dcnv4_length
from .common import FastconvModule
from .standard import Conv2d, DepthwiseConv2d


class DeformConv2d(FastconvModule):
    """Deformable conv2d (DCNv2 when ``modulated``, else DCNv1), offsets predicted by ``conv_offset``.

    x (B, Cin, H, W) -> (B, Cout, Ho, Wo).
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1, groups=1,
                 offset_groups=1, bias=True, modulated=True, backend="auto"):
        super().__init__()
        kh, kw = (kernel_size, kernel_size) if isinstance(kernel_size, int) else tuple(kernel_size)
        if in_channels % groups or out_channels % groups:
            raise ValueError(f"groups={groups} must divide in_channels={in_channels} and "
                             f"out_channels={out_channels}")
        if in_channels % offset_groups:
            raise ValueError(f"offset_groups={offset_groups} must divide in_channels={in_channels}")
        self.kind = "dcnv2" if modulated else "dcnv1"
        self.backend = backend
        self.stride, self.padding, self.dilation = stride, padding, dilation
        self.modulated = modulated
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels // groups, kh, kw))
        self.bias = nn.Parameter(torch.empty(out_channels)) if bias else None
        # the offset branch: (Δy, Δx) per kernel point and offset group (+ a mask logit for DCNv2)
        per_point = 3 if modulated else 2
        self.conv_offset = Conv2d(in_channels, per_point * offset_groups * kh * kw, (kh, kw), stride, padding,
                                  dilation, bias=True, backend=backend)
        self.reset_parameters()

    def reset_parameters(self):
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))          # as nn.Conv2d / torchvision
        if self.bias is not None:
            bound = 1 / math.sqrt(self.weight[0].numel())
            nn.init.uniform_(self.bias, -bound, bound)
        nn.init.zeros_(self.conv_offset.weight)                        # start as the regular grid
        nn.init.zeros_(self.conv_offset.bias)

    def forward(self, x):
        out = self.conv_offset(x)
        if self.modulated:
            o1, o2, logits = torch.chunk(out, 3, dim=1)
            offset, mask = torch.cat((o1, o2), dim=1), torch.sigmoid(logits)
            return self.fastconv(x, self.weight, offset=offset, mask=mask, bias=self.bias, stride=self.stride,
                                 padding=self.padding, dilation=self.dilation)
        return self.fastconv(x, self.weight, offset=out, bias=self.bias, stride=self.stride,
                             padding=self.padding, dilation=self.dilation)


class _ToChannelsLast(nn.Module):
    def forward(self, x):
        return x.permute(0, 2, 3, 1)


def _dcn_points(kernel_size, remove_center, group, channels):
    if channels % group:
        raise ValueError(f"channels must be divisible by group, got {channels} and {group}")
    if remove_center and kernel_size % 2 == 0:
        raise ValueError(f"remove_center needs an odd kernel_size, got {kernel_size}")
    return kernel_size * kernel_size - int(remove_center)


class DCNv3(FastconvModule):
    """InternImage's DCNv3 block on (N, H, W, C) inputs (output of the same shape).

    value = input_proj(x); features = GELU(LayerNorm(depthwise conv(x))); offsets = offset(features);
    weights = softmax over each group's P points of mask(features); y = output_proj(dcnv3(value, ...)).
    The core op keeps H × W: use stride 1 and pad = dilation·(kernel_size − 1)/2 (InternImage's setting).
    """
    kind = "dcnv3"

    def __init__(self, channels=64, kernel_size=3, dw_kernel_size=None, stride=1, pad=1, dilation=1, group=4,
                 offset_scale=1.0, remove_center=False, backend="auto"):
        super().__init__()
        P = _dcn_points(kernel_size, remove_center, group, channels)
        dw_kernel_size = kernel_size if dw_kernel_size is None else dw_kernel_size
        self.backend = backend
        self.channels, self.group, self.kernel_size, self.offset_scale = channels, group, kernel_size, offset_scale
        self.stride, self.pad, self.dilation, self.remove_center = stride, pad, dilation, bool(remove_center)
        self.dw_conv = nn.Sequential(
            DepthwiseConv2d(channels, dw_kernel_size, padding=(dw_kernel_size - 1) // 2, backend=backend),
            nn.Sequential(_ToChannelsLast(), nn.LayerNorm(channels, eps=1e-6)),
            nn.GELU())
        self.offset = nn.Linear(channels, group * P * 2)
        self.mask = nn.Linear(channels, group * P)
        self.input_proj = nn.Linear(channels, channels)
        self.output_proj = nn.Linear(channels, channels)
        self._reset_parameters()

    def _reset_parameters(self):
        for layer in (self.offset, self.mask):              # start on the regular grid, equal weights
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)
        for layer in (self.input_proj, self.output_proj):
            nn.init.xavier_uniform_(layer.weight)
            nn.init.zeros_(layer.bias)

    def forward(self, x):
        N, H, W, _ = x.shape
        value = self.input_proj(x)
        features = self.dw_conv(x.permute(0, 3, 1, 2))
        offset = self.offset(features)
        mask = F.softmax(self.mask(features).reshape(N, H, W, self.group, -1), -1).reshape(N, H, W, -1)
        out = self.fastconv(value, offset=offset, mask=mask, kernel_size=self.kernel_size, stride=self.stride,
                            padding=self.pad, dilation=self.dilation, group=self.group,
                            offset_scale=self.offset_scale, remove_center=self.remove_center)
        return self.output_proj(out)


class DCNv4(FastconvModule):
    """OpenGVLab's DCNv4 block on (N, H, W, C) inputs, or (N, L, C) with ``shape=(H, W)`` as the official
    module (square when omitted); the output has the input's shape.

    value = value_proj(x); offset_mask = offset_mask(x) (or of a depthwise conv of x when
    dw_kernel_size is given), fused per group as [2P offsets][P weights], weights used raw;
    y = output_proj(dcnv4(value, offset_mask)).
    """
    kind = "dcnv4"

    def __init__(self, channels=64, kernel_size=3, stride=1, pad=1, dilation=1, group=4, offset_scale=1.0,
                 dw_kernel_size=None, remove_center=False, output_bias=True, backend="auto"):
        super().__init__()
        P = _dcn_points(kernel_size, remove_center, group, channels)
        self.backend = backend
        self.channels, self.group, self.kernel_size, self.offset_scale = channels, group, kernel_size, offset_scale
        self.stride, self.pad, self.dilation, self.remove_center = stride, pad, dilation, bool(remove_center)
        self.dw_kernel_size = dw_kernel_size
        if dw_kernel_size is not None:
            self.offset_mask_dw = DepthwiseConv2d(channels, dw_kernel_size, padding=(dw_kernel_size - 1) // 2,
                                                  backend=backend)
        self.offset_mask = nn.Linear(channels, dcnv4_length(group, P))
        self.value_proj = nn.Linear(channels, channels)
        self.output_proj = nn.Linear(channels, channels, bias=output_bias)
        self._reset_parameters()

    def _reset_parameters(self):
        nn.init.zeros_(self.offset_mask.weight)
        nn.init.zeros_(self.offset_mask.bias)
        nn.init.xavier_uniform_(self.value_proj.weight)
        nn.init.zeros_(self.value_proj.bias)
        nn.init.xavier_uniform_(self.output_proj.weight)
        if self.output_proj.bias is not None:
            nn.init.zeros_(self.output_proj.bias)

    def forward(self, x, shape=None):
        tokens = x.dim() == 3
        if tokens:
            N, L, C = x.shape
            H, W = shape if shape is not None else (math.isqrt(L), math.isqrt(L))
            x = x.reshape(N, H, W, C)
        value = self.value_proj(x)
        source = x
        if self.dw_kernel_size is not None:
            source = self.offset_mask_dw(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
        out = self.fastconv(value, offset_mask=self.offset_mask(source), kernel_size=self.kernel_size,
                            stride=self.stride, padding=self.pad, dilation=self.dilation, group=self.group,
                            offset_scale=self.offset_scale, remove_center=self.remove_center)
        out = self.output_proj(out)
        return out.reshape(out.shape[0], -1, out.shape[-1]) if tokens else out


MODULES = {"deform_conv2d": DeformConv2d, "dcnv1": DeformConv2d, "dcnv2": DeformConv2d, "dcnv3": DCNv3,
           "dcnv4": DCNv4}
