"""Flattened convolution (Jin et al. 2014) in Triton: lateral 1×1, vertical KH×1, horizontal 1×KW.

Math
    l[b, o, i, j]   = Σ_c w[o, c] · x[b, c, i, j]
    v[b, o, oh, j]  = Σ_u vert[o, u] · l[b, o, oh − ph + u, j]
    y[b, o, oh, ow] = bias[o] + Σ_t hor[o, t] · v[b, o, oh, ow − pw + t]
    (= one convolution with the rank-1 filter W[o, c, u, t] = w[o, c]·vert[o, u]·hor[o, t])

Shapes
    x (B, C, H, W)   w (O, C)   vert (O, KH)   hor (O, KW)   bias (O,)   y (B, O, OH, OW)

Cost
    B·O·(H·W·C + OH·W·KH + OH·OW·KW) multiply-adds.

Parallel
    Per launch, one program per (block of output pixels, block of filters of a group): kernels/_gpu_conv.py.

Versions
    One: three launches of the shared implicit-GEMM conv kernel (kernels/_gpu_conv.py): the lateral
    stage as a 1×1 convolution, the vertical and horizontal stages as depthwise (groups = O)
    convolutions. A single fused program would have to recompute the lateral GEMM for each of the
    KH·KW taps (the dense cost the factorization avoids) or share halo rows between programs.

Caveats
    fp32 accumulation; the depthwise stages use tl.dot on masked 16-wide blocks (correct, not fast).
"""
from .._gpu_conv import conv2d


def flattened(x, w, vertical, horizontal, bias=None, *, padding):
    O, KH = vertical.shape
    lateral = conv2d(x, w[:, :, None, None])
    columns = conv2d(lateral, vertical.reshape(O, 1, KH, 1), padding=(padding[0], 0), groups=O)
    return conv2d(columns, horizontal.reshape(O, 1, 1, -1), bias, padding=(0, padding[1]), groups=O)
