"""Modules of the adaptive family: the kernel-generating branches of the official modules, with the
content-adaptive convolution itself computed by fastconv.

Parameter names and initialisations follow the official code, so its weights load directly:
- Involution2d: d-li14/involution's ``involution`` (mmcv ConvModule names: conv1.conv, conv1.bn, conv2.conv)
- LightweightConv1d: fairseq's LightweightConv1dTBC (weight (H, 1, K), bias (C,))
- DynamicLightweightConv1d: fairseq's DynamicConv1dTBC (weight_linear, conv_bias)

Layout: batch-first, x (B, C, H, W) and x (B, C, T). fairseq's modules take time-major (T, B, C): call
ours with ``x.permute(1, 2, 0)`` and permute the result back with ``.permute(2, 0, 1)``. Weight dropout
(DropConnect) is not implemented (fairseq's default is 0).
"""
import torch
import torch.nn.functional as F

from .common import FastconvModule


class _ConvModule(torch.nn.Module):
    """mmcv's ConvModule as the official involution uses it: 1×1 conv [→ BN → ReLU], kaiming-initialised
    (normal, fan_out, for ReLU), bias only without BN."""

    def __init__(self, in_channels, out_channels, norm_act):
        super().__init__()
        self.conv = torch.nn.Conv2d(in_channels, out_channels, 1, bias=not norm_act)
        self.bn = torch.nn.BatchNorm2d(out_channels) if norm_act else None
        torch.nn.init.kaiming_normal_(self.conv.weight, mode="fan_out", nonlinearity="relu")
        if self.conv.bias is not None:
            torch.nn.init.zeros_(self.conv.bias)

    def forward(self, x):
        x = self.conv(x)
        return x if self.bn is None else F.relu(self.bn(x))


class Involution2d(FastconvModule):
    """Involution (Li et al. 2021) with the official kernel generation:

        kernels = conv2(conv1(avgpool(x)))      avg-pool by the stride, 1×1 → BN → ReLU, 1×1 to K²·G
        y = involution(x, kernels viewed as (B, G, K, K, Ho, Wo), stride, padding (K − 1)//2)

    with G = channels / group_channels. Unlike the official module, odd sizes with stride > 1 work: the
    pool uses ceil_mode, so the kernel map has ceil(H/s) × ceil(W/s) pixels, the output size of the
    involution for odd K.
    """
    kind = "involution"

    def __init__(self, channels, kernel_size, stride=1, reduction=4, group_channels=16, backend="auto"):
        super().__init__()
        if channels % group_channels:
            raise ValueError(f"group_channels={group_channels} must divide channels={channels}")
        if channels // reduction < 1:
            raise ValueError(f"reduction={reduction} leaves no channel for the kernel branch "
                             f"(channels={channels})")
        if kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd, got {kernel_size}: with padding (K − 1)//2 only an "
                             f"odd kernel gives an output the size of the pooled kernel map")
        self.channels, self.kernel_size, self.stride = channels, kernel_size, stride
        self.groups = channels // group_channels
        self.backend = backend
        self.conv1 = _ConvModule(channels, channels // reduction, norm_act=True)
        self.conv2 = _ConvModule(channels // reduction, kernel_size ** 2 * self.groups, norm_act=False)
        self.avgpool = torch.nn.AvgPool2d(stride, stride, ceil_mode=True) if stride > 1 else torch.nn.Identity()

    def kernels(self, x):
        """The per-pixel kernels (B, G, K, K, Ho, Wo) the module computes for x."""
        weight = self.conv2(self.conv1(self.avgpool(x)))
        B, _, Ho, Wo = weight.shape
        return weight.view(B, self.groups, self.kernel_size, self.kernel_size, Ho, Wo)

    def forward(self, x):
        return self.fastconv(x, self.kernels(x), stride=self.stride)


class LightweightConv1d(FastconvModule):
    """Lightweight convolution (Wu et al. 2019, fairseq LightweightConv1dTBC) on batch-first (B, C, T):
    H kernels of size K, each shared by C/H consecutive channels, softmax-normalised over the taps when
    ``weight_softmax``; padding_l = None means K//2 (K − 1 gives the causal decoder form).

    fairseq's module takes (T, B, C): ``ours(x.permute(1, 2, 0)).permute(2, 0, 1)`` equals it.
    """
    kind = "lightweight"

    def __init__(self, channels, kernel_size=1, heads=1, padding_l=None, weight_softmax=False, bias=False,
                 backend="auto"):
        super().__init__()
        if channels % heads:
            raise ValueError(f"heads={heads} must divide channels={channels}")
        self.channels, self.kernel_size, self.heads = channels, kernel_size, heads
        self.padding_l, self.weight_softmax, self.backend = padding_l, weight_softmax, backend
        self.weight = torch.nn.Parameter(torch.empty(heads, 1, kernel_size))      # fairseq's shape
        self.bias = torch.nn.Parameter(torch.zeros(channels)) if bias else None
        torch.nn.init.xavier_uniform_(self.weight)

    def forward(self, x):
        return self.fastconv(x, self.weight.view(self.heads, self.kernel_size), bias=self.bias,
                             padding_l=self.padding_l, weight_softmax=self.weight_softmax)


class DynamicLightweightConv1d(FastconvModule):
    """Dynamic lightweight convolution (Wu et al. 2019, fairseq DynamicConv1dTBC) on batch-first (B, C, T):
    at every step a Linear C → H·K predicts the H kernels from x[:, :, t] (``weight_linear``, torch's
    default initialisation as fairseq's reset_parameters leaves it), then the lightweight convolution
    runs with them; ``conv_bias`` adds a per-channel bias after it.

    fairseq's module takes (T, B, C): ``ours(x.permute(1, 2, 0)).permute(2, 0, 1)`` equals it.
    """
    kind = "dynamic_lightweight"

    def __init__(self, channels, kernel_size=1, heads=1, padding_l=None, weight_softmax=False, bias=False,
                 conv_bias=False, backend="auto"):
        super().__init__()
        if channels % heads:
            raise ValueError(f"heads={heads} must divide channels={channels}")
        self.channels, self.kernel_size, self.heads = channels, kernel_size, heads
        self.padding_l, self.weight_softmax, self.backend = padding_l, weight_softmax, backend
        self.weight_linear = torch.nn.Linear(channels, heads * kernel_size, bias=bias)
        self.conv_bias = torch.nn.Parameter(torch.zeros(channels)) if conv_bias else None

    def kernels(self, x):
        """The per-step kernels (B, H, K, T) the module computes for x (B, C, T)."""
        B, _, T = x.shape
        weight = self.weight_linear(x.transpose(1, 2))                 # (B, T, H·K), index h·K + k
        return weight.view(B, T, self.heads, self.kernel_size).permute(0, 2, 3, 1)

    def forward(self, x):
        y = self.fastconv(x, self.kernels(x), padding_l=self.padding_l, weight_softmax=self.weight_softmax)
        return y if self.conv_bias is None else y + self.conv_bias.view(1, -1, 1)


MODULES = {"involution": Involution2d, "lightweight": LightweightConv1d,
           "dynamic_lightweight": DynamicLightweightConv1d}
