"""torch.nn modules for every kind, calling ``fastconv.run``.

Each module owns its parameters (named and initialised like the torch or official module it mirrors,
so weights port directly) and has a ``kind`` and a ``backend`` attribute. The fastconv kernels compute
the forward pass only: when autograd needs a graph (a parameter or the input requires grad and grad
mode is on), ``backend="auto"`` runs the torch reference so that gradients flow; name a backend to
force it.

``MODULES`` maps every kind to its module class.
"""
from .common import FastconvModule
from .factorized import (FlattenedConv2d, OctaveConv2d, SeparableConv2d, ShuffledGroupConv2d,
                         SpatialSeparableConv2d)
from .factorized import MODULES as _FACTORIZED
from .standard import (Conv1d, Conv2d, Conv3d, ConvTranspose1d, ConvTranspose2d, ConvTranspose3d,
                       DepthwiseConv2d, PointwiseConv2d)
from .standard import MODULES as _STANDARD

MODULES = {
    **_STANDARD,
    **_FACTORIZED,
}

__all__ = ["FastconvModule", "MODULES", "Conv1d", "Conv2d", "Conv3d", "DepthwiseConv2d", "PointwiseConv2d",
           "ConvTranspose1d", "ConvTranspose2d", "ConvTranspose3d",
           "SeparableConv2d", "SpatialSeparableConv2d", "FlattenedConv2d", "ShuffledGroupConv2d", "OctaveConv2d"]
