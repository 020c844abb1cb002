"""Strategies for the standard family: conv1d/2d/3d and friends, transposed convolutions."""
from hypothesis import assume
from hypothesis import strategies as st

from fastconv.kernels._index import conv_out_size

from .common import Case, arrays, ints


@st.composite
def conv_case(draw, nd, kind="conv"):
    """A random valid conv{nd}d call. kind: conv, depthwise, pointwise, grouped or dilated."""
    groups = draw(st.integers(1, 3))
    cin_g = draw(st.integers(1, 4))
    cout_g = draw(st.integers(1, 5))
    if kind == "depthwise":
        cin_g = 1
    if kind == "grouped":
        groups = draw(st.integers(2, 4))
    kernel = (1,) * nd if kind == "pointwise" else ints(draw, nd, 1, 4)
    size = ints(draw, nd, 1, 9 if nd < 3 else 6)
    stride = ints(draw, nd, 1, 3)
    dilation = ints(draw, nd, 2, 3) if kind == "dilated" else ints(draw, nd, 1, 2)
    padding = draw(st.sampled_from(["same", "valid", "int", "tuple"])) if kind != "pointwise" else "int"
    if padding == "same":
        stride = (1,) * nd
    elif padding == "int":
        padding = draw(st.integers(0, 2))
    elif padding == "tuple":
        padding = ints(draw, nd, 0, 2)
    pads = (0,) * nd if padding in ("same", "valid") else (padding,) * nd if isinstance(padding, int) else padding
    if padding != "same":
        assume(all(conv_out_size(i, k, s, p, p, d) >= 1
                   for i, k, s, p, d in zip(size, kernel, stride, pads, dilation)))
    cin, cout = groups * cin_g, groups * cout_g
    x, w, bias = arrays(draw, (draw(st.integers(1, 2)), cin, *size), (cout, cin_g, *kernel), (cout,))
    kwargs = dict(stride=stride, padding=padding, dilation=dilation)
    if kind != "depthwise":
        kwargs["groups"] = groups
    if draw(st.booleans()):
        kwargs["bias"] = bias
    if kind == "pointwise" and draw(st.booleans()):
        w = w[:, :, 0, 0]                   # the Linear view (Cout, Cin/groups)
    return Case((x, w), kwargs)


@st.composite
def conv_transpose_case(draw, nd):
    groups = draw(st.integers(1, 3))
    cin_g, cout_g = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    kernel = ints(draw, nd, 1, 4)
    size = ints(draw, nd, 1, 6 if nd < 3 else 4)
    stride = ints(draw, nd, 1, 3)
    dilation = ints(draw, nd, 1, 2)
    padding = ints(draw, nd, 0, 2)
    output_padding = tuple(draw(st.integers(0, max(s, d) - 1)) for s, d in zip(stride, dilation))
    assume(all((i - 1) * s - 2 * p + d * (k - 1) + op + 1 >= 1
               for i, s, p, d, k, op in zip(size, stride, padding, dilation, kernel, output_padding)))
    cin, cout = groups * cin_g, groups * cout_g
    x, w, bias = arrays(draw, (draw(st.integers(1, 2)), cin, *size), (cin, cout_g, *kernel), (cout,))
    kwargs = dict(stride=stride, padding=padding, dilation=dilation, groups=groups,
                  output_padding=output_padding)
    if draw(st.booleans()):
        kwargs["bias"] = bias
    return Case((x, w), kwargs)


STRATEGIES = {
    "conv1d": conv_case(1),
    "conv2d": conv_case(2),
    "conv3d": conv_case(3),
    "depthwise": conv_case(2, "depthwise"),
    "pointwise": conv_case(2, "pointwise"),
    "grouped": conv_case(2, "grouped"),
    "dilated": conv_case(2, "dilated"),
    "conv_transpose1d": conv_transpose_case(1),
    "conv_transpose2d": conv_transpose_case(2),
    "conv_transpose3d": conv_transpose_case(3),
    "transposed": conv_transpose_case(2),
}
