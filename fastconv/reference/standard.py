"""References of the standard family: torch.nn.functional itself, which defines these kinds."""
import torch.nn.functional as F


def conv(x, w, bias=None, *, stride, padding, dilation, groups):
    """F.conv1d / conv2d / conv3d, chosen by the rank of x."""
    convolve = (F.conv1d, F.conv2d, F.conv3d)[x.dim() - 3]
    return convolve(x, w, bias, stride, padding, dilation, groups)


def conv_transpose(x, w, bias=None, *, stride, padding, output_padding, groups, dilation):
    """F.conv_transpose1d / 2d / 3d, chosen by the rank of x."""
    convolve = (F.conv_transpose1d, F.conv_transpose2d, F.conv_transpose3d)[x.dim() - 3]
    return convolve(x, w, bias, stride, padding, output_padding, groups, dilation)
