"""Spatially separable convolution in Triton: a 1×KW row filter, then a KH×1 column filter.

Math
    r[b, m, i, ow] = Σ_{c, v} w[m, c, 0, v] · x[b, c, i, ow − p + v]              (pads W only)
    y[b, o, oh, ow] = bias[o] + Σ_{m, u} col[o, m, u, 0] · r[b, m, oh − p + u, ow]  (pads H only)

Shapes
    x (B, C, H, W)   w (M, C, 1, KW)   col (O, M, KH, 1)   bias (O,)   y (B, O, OH, OW)

Cost
    B·H·OW·M·C·KW + B·OH·OW·O·M·KH multiply-adds.

Parallel
    Per launch, one program per (block of output pixels, block of output channels): kernels/_gpu_conv.py.

Versions
    One: two launches of the shared implicit-GEMM conv kernel (kernels/_gpu_conv.py), padding (0, p)
    then (p, 0). r goes through global memory: fusing would need the KH − 1 halo rows of r per tile,
    recomputed by neighbouring programs; on a GPU r (B·M·H·OW) mostly stays in L2 between the launches.

Caveats
    fp32 accumulation, "ieee" float32 dot products.
"""
from .._gpu_conv import conv2d


def spatial_separable(x, w, col, bias=None, *, padding):
    rows = conv2d(x, w, padding=(0, padding))
    return conv2d(rows, col, bias, padding=(padding, 0))
