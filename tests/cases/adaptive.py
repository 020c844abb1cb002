"""Strategies for the adaptive family: involution, lightweight and dynamic lightweight convolution."""
from hypothesis import assume
from hypothesis import strategies as st

from fastconv.kernels._index import conv_out_size

from .common import Case, arrays, ints


@st.composite
def involution_case(draw):
    """Odd and even kernels (square or not), strides beyond the kernel, dilation, default padding."""
    groups, group_channels = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    kernel = ints(draw, 2, 1, 4)
    size = ints(draw, 2, 1, 9)
    stride = ints(draw, 2, 1, 3)
    dilation = ints(draw, 2, 1, 2)
    padding = draw(st.sampled_from([None, "int", "tuple"]))
    if padding == "int":
        padding = draw(st.integers(0, 2))
    elif padding == "tuple":
        padding = ints(draw, 2, 0, 2)
    pads = tuple(d * (k - 1) // 2 for k, d in zip(kernel, dilation)) if padding is None else \
        (padding,) * 2 if isinstance(padding, int) else padding
    assume(all(i + 2 * p >= d * (k - 1) + 1 for i, p, d, k in zip(size, pads, dilation, kernel)))
    out = tuple(conv_out_size(i, k, s, p, p, d) for i, k, s, p, d in zip(size, kernel, stride, pads, dilation))
    batch = draw(st.integers(1, 2))
    x, w = arrays(draw, (batch, groups * group_channels, *size), (batch, groups, *kernel, *out))
    kwargs = dict(stride=stride, dilation=dilation)
    if padding is not None or draw(st.booleans()):
        kwargs["padding"] = padding
    return Case((x, w), kwargs)


@st.composite
def lightweight_case(draw, dynamic):
    """Heads sharing 1–3 channels, kernels longer than the sequence, every padding_l, softmax or not."""
    heads, per_head = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    kernel, length, batch = draw(st.integers(1, 7)), draw(st.integers(1, 12)), draw(st.integers(1, 2))
    w_shape = (batch, heads, kernel, length) if dynamic else (heads, kernel)
    x, w, bias = arrays(draw, (batch, heads * per_head, length), w_shape, (heads * per_head,))
    kwargs = dict(weight_softmax=draw(st.booleans()))
    padding_l = draw(st.one_of(st.none(), st.integers(0, kernel - 1)))
    if padding_l is not None or draw(st.booleans()):
        kwargs["padding_l"] = padding_l
    if not dynamic and draw(st.booleans()):
        kwargs["bias"] = bias
    return Case((x, w), kwargs)


STRATEGIES = {
    "involution": involution_case(),
    "lightweight": lightweight_case(dynamic=False),
    "dynamic_lightweight": lightweight_case(dynamic=True),
}
