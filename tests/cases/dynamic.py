"""Strategies for the dynamic family: dynamic (CondConv), odconv, kernel_warehouse."""
import numpy as np
from hypothesis import assume
from hypothesis import strategies as st

from fastconv.kernels._index import conv_out_size

from .common import Case, arrays, ints


def _geometry(draw, kernel):
    """Input size, stride, padding (int, tuple, "same" or "valid") and dilation with a non-empty output."""
    size = ints(draw, 2, 1, 7)
    stride, dilation = ints(draw, 2, 1, 2), ints(draw, 2, 1, 2)
    padding = draw(st.sampled_from(["same", "valid", "int", "tuple"]))
    if padding == "same":
        stride = (1, 1)
    elif padding == "int":
        padding = draw(st.integers(0, 2))
    elif padding == "tuple":
        padding = ints(draw, 2, 0, 2)
    pads = (0, 0) if isinstance(padding, str) else (padding,) * 2 if isinstance(padding, int) else padding
    if padding != "same":
        assume(all(conv_out_size(i, k, s, p, p, d) >= 1
                   for i, k, s, p, d in zip(size, kernel, stride, pads, dilation)))
    return size, dict(stride=stride, padding=padding, dilation=dilation)


def _unit(draw, shape):
    """Attention-like values in [0, 1) (sigmoid/softmax outputs)."""
    return np.random.default_rng(draw(st.integers(0, 2**32 - 1))).random(shape)


@st.composite
def dynamic_case(draw, kind):
    groups, cin_g, cout_g = draw(st.integers(1, 2)), draw(st.integers(1, 3)), draw(st.integers(1, 5))
    experts = draw(st.integers(1, 3))
    kernel = ints(draw, 2, 1, 3)
    size, kwargs = _geometry(draw, kernel)
    batch, cin, cout = draw(st.integers(1, 2)), groups * cin_g, groups * cout_g
    x, w, bias = arrays(draw, (batch, cin, *size), (experts, cout, cin_g, *kernel), (experts, cout))
    kwargs["groups"] = groups
    if kind == "dynamic":
        kwargs["attention"] = _unit(draw, (batch, experts))
        if draw(st.booleans()):
            kwargs["bias"] = bias
    else:           # odconv: each attention given or None (= 1), as ODConv skips some
        for name, shape in [("kernel_attention", (batch, experts)), ("spatial_attention", (batch, *kernel)),
                            ("in_attention", (batch, cin)), ("out_attention", (batch, cout))]:
            if draw(st.booleans()):
                kwargs[name] = _unit(draw, shape)
    return Case((x, w), kwargs)


@st.composite
def kernel_warehouse_case(draw):
    c_o, c_i, n = draw(st.integers(1, 3)), draw(st.integers(1, 3)), draw(st.integers(1, 4))
    go_count, gi_count = draw(st.integers(1, 2)), draw(st.integers(1, 2))
    kernel = ints(draw, 2, 1, 3)
    size, kwargs = _geometry(draw, kernel)
    batch, mixtures = draw(st.integers(1, 2)), kernel[0] * kernel[1] * go_count * gi_count
    x, cells, alpha = arrays(draw, (batch, gi_count * c_i, *size), (n, c_o, c_i), (batch, mixtures, n))
    kernel_size = kernel[0] if kernel[0] == kernel[1] and draw(st.booleans()) else kernel
    return Case((x, cells), dict(attention=alpha, out_channels=go_count * c_o, kernel_size=kernel_size, **kwargs))


STRATEGIES = {
    "dynamic": dynamic_case("dynamic"),
    "odconv": dynamic_case("odconv"),
    "kernel_warehouse": kernel_warehouse_case(),
}
