"""torch.nn modules for every kind, calling ``fastconv.run``.

Each module owns its parameters (named and initialised like the torch or official module it mirrors,
so weights port directly) and has a ``kind`` and a ``backend`` attribute. The fastconv kernels compute
the forward pass only: when autograd needs a graph (a parameter or the input requires grad and grad
mode is on), ``backend="auto"`` runs the torch reference so that gradients flow; name a backend to
force it.

``MODULES`` maps every kind to its module class.
"""
from .common import FastconvModule
from .adaptive import MODULES as _ADAPTIVE
from .adaptive import DynamicLightweightConv1d, Involution2d, LightweightConv1d
from .deformable import MODULES as _DEFORMABLE
from .deformable import DCNv3, DCNv4, DeformConv2d
from .dynamic import MODULES as _DYNAMIC
from .dynamic import DynamicConv2d, KernelWarehouseConv2d, ODConv2d
from .factorized import MODULES as _FACTORIZED
from .factorized import (FlattenedConv2d, OctaveConv2d, SeparableConv2d, ShuffledGroupConv2d,
                         SpatialSeparableConv2d)
from .standard import MODULES as _STANDARD
from .standard import (Conv1d, Conv2d, Conv3d, ConvTranspose1d, ConvTranspose2d, ConvTranspose3d,
                       DepthwiseConv2d, PointwiseConv2d)

MODULES = {
    **_STANDARD,
    **_FACTORIZED,
    **_DYNAMIC,
    **_DEFORMABLE,
    **_ADAPTIVE,
}

__all__ = ["FastconvModule", "MODULES", "Conv1d", "Conv2d", "Conv3d", "DepthwiseConv2d", "PointwiseConv2d",
           "ConvTranspose1d", "ConvTranspose2d", "ConvTranspose3d", "SeparableConv2d",
           "SpatialSeparableConv2d", "FlattenedConv2d", "ShuffledGroupConv2d", "OctaveConv2d",
           "DynamicConv2d", "ODConv2d", "KernelWarehouseConv2d", "DeformConv2d", "DCNv3", "DCNv4",
           "Involution2d", "LightweightConv1d", "DynamicLightweightConv1d"]
