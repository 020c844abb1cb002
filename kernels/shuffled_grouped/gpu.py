"""Grouped convolution + ShuffleNet channel shuffle in Triton: the shuffle is the store's channel index.

Math
    z[b, g·Og + k, p] = bias[g·Og + k] + Σ_{c<Cg, taps} w[g·Og + k, c, taps] · x[b, g·Cg + c, p·s − pad + taps·d]
    y[b, k·G + g, p] = z[b, g·Og + k, p]       (torchvision: view (B, G, Og, H, W), transpose(1, 2))

Shapes
    x (B, C, H, W)   w (O, C/G, KH, KW)   bias (O,)   y (B, O, OH, OW)

Cost
    B·O·OH·OW·(C/G)·KH·KW multiply-adds; y written once (the torch composition writes z, then reads
    it and writes the shuffled copy).

Parallel
    One program per (block of output pixels, block of filters of one group): see kernels/_gpu_conv.py.

Versions
    One: the shared implicit-GEMM conv kernel (kernels/_gpu_conv.py) with SHUFFLE=True, which maps
    filter k of group g to output channel k·G + g in the store.

Caveats
    fp32 accumulation, "ieee" float32 dot products; groups with fewer than 16 filters run masked lanes.
"""
from .._gpu_conv import conv2d


def shuffled_grouped(x, w, bias=None, *, stride, padding, dilation, groups, out_size):
    return conv2d(x, w, bias, stride=stride, padding=padding, dilation=dilation, groups=groups, shuffle=True)
