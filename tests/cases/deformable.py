"""Strategies for the deformable family: deform_conv2d (dcnv1, dcnv2), dcnv3, dcnv4.

Offsets are drawn with σ = 2 pixels, so points land inside, between and beyond the image borders
(including the y ≤ −1 / y ≥ H zones that read 0); pads are drawn per axis (unequal pads catch a
swapped pad_h/pad_w).
"""
import math

import numpy as np
from hypothesis import assume
from hypothesis import strategies as st

from fastconv.families.deformable import dcnv4_length
from fastconv.kernels._index import conv_out_size

from .common import Case, arrays, ints


def _geometry(draw, kernel, max_size=7):
    size = ints(draw, 2, 1, max_size)
    stride, dilation, padding = ints(draw, 2, 1, 3), ints(draw, 2, 1, 2), ints(draw, 2, 0, 2)
    out = tuple(conv_out_size(i, k, s, p, p, d) for i, k, s, p, d in zip(size, kernel, stride, padding, dilation))
    assume(min(out) >= 1)
    return size, stride, dilation, padding, out


@st.composite
def deform_case(draw, mask="optional"):
    """A random valid deform_conv2d call; mask: "never" (dcnv1), "always" (dcnv2) or "optional"."""
    G, groups = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    cin = G * groups // math.gcd(G, groups) * draw(st.integers(1, 2))
    cout = groups * draw(st.integers(1, 4))
    kernel = ints(draw, 2, 1, 3)
    size, stride, dilation, padding, (Ho, Wo) = _geometry(draw, kernel)
    taps = kernel[0] * kernel[1]
    B = draw(st.integers(1, 2))
    x, w, bias, offset, m = arrays(draw, (B, cin, *size), (cout, cin // groups, *kernel), (cout,),
                                   (B, 2 * G * taps, Ho, Wo), (B, G * taps, Ho, Wo))
    kwargs = dict(offset=2 * offset, stride=stride, padding=padding, dilation=dilation)
    if mask == "always" or (mask == "optional" and draw(st.booleans())):
        kwargs["mask"] = m
    if draw(st.booleans()):
        kwargs["bias"] = bias
    return Case((x, w), kwargs)


@st.composite
def dcn_case(draw, fused):
    """A random valid dcnv3 (fused=False) or dcnv4 (fused=True) call."""
    # D = 16, 21, 32: whole 16-lane registers (one or two) and leftover channels in the CPU kernel
    G, D = draw(st.integers(1, 3)), draw(st.sampled_from([1, 2, 3, 4, 16, 21, 32]))
    kernel = ints(draw, 2, 1, 3)
    remove_center = kernel[0] % 2 == 1 and kernel[1] % 2 == 1 and kernel != (1, 1) and draw(st.booleans())
    size, stride, dilation, padding, (Ho, Wo) = _geometry(draw, kernel)
    P = kernel[0] * kernel[1] - remove_center
    N = draw(st.integers(1, 2))
    kwargs = dict(kernel_size=kernel, stride=stride, padding=padding, dilation=dilation, group=G,
                  offset_scale=draw(st.sampled_from([1.0, 0.5, 1.5])), remove_center=remove_center)
    x, offset, mask = arrays(draw, (N, *size, G * D), (N, Ho, Wo, G, 2 * P), (N, Ho, Wo, G, P))
    offset = 2 * offset
    if not fused:
        return Case((x,), dict(offset=offset.reshape(N, Ho, Wo, -1), mask=mask.reshape(N, Ho, Wo, -1), **kwargs))
    # the padding tail of offset_mask holds garbage here: kernels must never read it
    L = dcnv4_length(G, P)
    tail = arrays(draw, (N, Ho, Wo, L - 3 * G * P))[0]
    offset_mask = np.concatenate([np.concatenate([offset, mask], -1).reshape(N, Ho, Wo, -1), tail], -1)
    return Case((x,), dict(offset_mask=offset_mask, **kwargs))


STRATEGIES = {
    "deform_conv2d": deform_case(),
    "dcnv1": deform_case("never"),
    "dcnv2": deform_case("always"),
    "dcnv3": dcn_case(fused=False),
    "dcnv4": dcn_case(fused=True),
}
