"""Modules of the standard family: torch's own Conv/ConvTranspose modules (same parameters, same
initialisation, same state_dict), with the forward pass computed by fastconv."""
import torch

from .common import FastconvModule


def _check_padding_mode(module):
    if module.padding_mode != "zeros":
        raise ValueError(f"padding_mode must be 'zeros' (fastconv kernels pad with zeros), "
                         f"got {module.padding_mode!r}")


class _Conv(FastconvModule):
    def __init__(self, *args, backend="auto", **kwargs):
        super().__init__(*args, **kwargs)
        _check_padding_mode(self)
        self.backend = backend

    def forward(self, x):
        return self.fastconv(x, self.weight, bias=self.bias, stride=self.stride, padding=self.padding,
                             dilation=self.dilation, groups=self.groups)


class Conv1d(_Conv, torch.nn.Conv1d):
    """torch.nn.Conv1d computed by fastconv ("conv1d")."""
    kind = "conv1d"


class Conv2d(_Conv, torch.nn.Conv2d):
    """torch.nn.Conv2d computed by fastconv ("conv2d"; also the grouped and dilated kinds)."""
    kind = "conv2d"


class Conv3d(_Conv, torch.nn.Conv3d):
    """torch.nn.Conv3d computed by fastconv ("conv3d")."""
    kind = "conv3d"


class DepthwiseConv2d(_Conv, torch.nn.Conv2d):
    """Depthwise conv2d: ``channels`` inputs, ``channels·multiplier`` outputs, groups = channels."""
    kind = "depthwise"

    def __init__(self, channels, kernel_size, multiplier=1, stride=1, padding=0, dilation=1, bias=True,
                 backend="auto"):
        super().__init__(channels, channels * multiplier, kernel_size, stride, padding, dilation,
                         groups=channels, bias=bias, backend=backend)

    def forward(self, x):
        return self.fastconv(x, self.weight, bias=self.bias, stride=self.stride, padding=self.padding,
                             dilation=self.dilation)


class PointwiseConv2d(_Conv, torch.nn.Conv2d):
    """1×1 conv2d (a per-pixel Linear over channels), optionally grouped and strided."""
    kind = "pointwise"

    def __init__(self, in_channels, out_channels, stride=1, groups=1, bias=True, backend="auto"):
        super().__init__(in_channels, out_channels, 1, stride, 0, 1, groups=groups, bias=bias, backend=backend)


class _ConvTranspose(_Conv):
    """As _Conv (torch's parameters, zero padding, a backend); the forward adds output_padding."""

    def forward(self, x, output_size=None):
        if output_size is not None:
            raise ValueError("output_size is not supported: give output_padding at construction")
        return self.fastconv(x, self.weight, bias=self.bias, stride=self.stride, padding=self.padding,
                             output_padding=self.output_padding, groups=self.groups, dilation=self.dilation)


class ConvTranspose1d(_ConvTranspose, torch.nn.ConvTranspose1d):
    """torch.nn.ConvTranspose1d computed by fastconv ("conv_transpose1d")."""
    kind = "conv_transpose1d"


class ConvTranspose2d(_ConvTranspose, torch.nn.ConvTranspose2d):
    """torch.nn.ConvTranspose2d computed by fastconv ("conv_transpose2d", "transposed")."""
    kind = "conv_transpose2d"


class ConvTranspose3d(_ConvTranspose, torch.nn.ConvTranspose3d):
    """torch.nn.ConvTranspose3d computed by fastconv ("conv_transpose3d")."""
    kind = "conv_transpose3d"


MODULES = {
    "conv1d": Conv1d, "conv2d": Conv2d, "conv3d": Conv3d,
    "depthwise": DepthwiseConv2d, "pointwise": PointwiseConv2d, "grouped": Conv2d, "dilated": Conv2d,
    "conv_transpose1d": ConvTranspose1d, "conv_transpose2d": ConvTranspose2d,
    "conv_transpose3d": ConvTranspose3d, "transposed": ConvTranspose2d,
}
