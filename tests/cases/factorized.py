"""Strategies for the factorized family: separable, spatial_separable, flattened, shuffled_grouped, octave."""
from hypothesis import assume
from hypothesis import strategies as st

from fastconv.kernels._index import conv_out_size

from .common import Case, arrays, ints


def _maybe_bias(draw, kwargs, bias):
    if draw(st.booleans()):
        kwargs["bias"] = bias


@st.composite
def separable_case(draw):
    cin, m, cout = draw(st.integers(1, 4)), draw(st.integers(1, 2)), draw(st.integers(1, 6))
    kernel, size = ints(draw, 2, 1, 4), ints(draw, 2, 1, 9)
    stride, dilation = ints(draw, 2, 1, 3), ints(draw, 2, 1, 2)
    padding = draw(st.one_of(st.integers(0, 2), st.tuples(st.integers(0, 2), st.integers(0, 2))))
    pads = padding if isinstance(padding, tuple) else (padding, padding)
    assume(all(conv_out_size(i, k, s, p, p, d) >= 1 for i, k, s, p, d in zip(size, kernel, stride, pads, dilation)))
    x, w, pw, bias = arrays(draw, (draw(st.integers(1, 2)), cin, *size), (cin * m, 1, *kernel),
                            (cout, cin * m), (cout,))
    if draw(st.booleans()):
        pw = pw[:, :, None, None]            # the conv2d form (Cout, Cin·m, 1, 1)
    kwargs = dict(pointwise=pw, stride=stride, padding=padding, dilation=dilation)
    _maybe_bias(draw, kwargs, bias)
    return Case((x, w), kwargs)


@st.composite
def spatial_separable_case(draw):
    cin, cmid, cout = draw(st.integers(1, 4)), draw(st.integers(1, 4)), draw(st.integers(1, 5))
    kw, kh, pad = draw(st.integers(1, 5)), draw(st.integers(1, 5)), draw(st.integers(0, 3))
    height, width = ints(draw, 2, 1, 9)
    assume(height + 2 * pad >= kh and width + 2 * pad >= kw)
    x, w, col, bias = arrays(draw, (draw(st.integers(1, 2)), cin, height, width), (cmid, cin, 1, kw),
                             (cout, cmid, kh, 1), (cout,))
    kwargs = dict(col=col, padding=pad)
    _maybe_bias(draw, kwargs, bias)
    return Case((x, w), kwargs)


@st.composite
def flattened_case(draw):
    cin, cout = draw(st.integers(1, 5)), draw(st.integers(1, 5))
    kh, kw = ints(draw, 2, 1, 5)
    height, width = ints(draw, 2, 1, 9)
    padding = draw(st.one_of(st.integers(0, 2), st.tuples(st.integers(0, 2), st.integers(0, 2))))
    ph, pw = padding if isinstance(padding, tuple) else (padding, padding)
    assume(height + 2 * ph >= kh and width + 2 * pw >= kw)
    x, w, v, h, bias = arrays(draw, (draw(st.integers(1, 2)), cin, height, width), (cout, cin), (cout, kh),
                              (cout, kw), (cout,))
    kwargs = dict(vertical=v, horizontal=h, padding=padding)
    _maybe_bias(draw, kwargs, bias)
    return Case((x, w), kwargs)


@st.composite
def shuffled_grouped_case(draw):
    groups, cin_g, cout_g = draw(st.integers(1, 4)), draw(st.integers(1, 3)), draw(st.integers(1, 4))
    kernel, size = ints(draw, 2, 1, 3), ints(draw, 2, 1, 8)
    stride, dilation = ints(draw, 2, 1, 2), ints(draw, 2, 1, 2)
    padding = draw(st.one_of(st.integers(0, 1), st.tuples(st.integers(0, 2), st.integers(0, 2))))
    pads = padding if isinstance(padding, tuple) else (padding, padding)
    assume(all(conv_out_size(i, k, s, p, p, d) >= 1 for i, k, s, p, d in zip(size, kernel, stride, pads, dilation)))
    x, w, bias = arrays(draw, (draw(st.integers(1, 2)), groups * cin_g, *size), (groups * cout_g, cin_g, *kernel),
                        (groups * cout_g,))
    kwargs = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
    _maybe_bias(draw, kwargs, bias)
    return Case((x, w), kwargs)


@st.composite
def octave_case(draw):
    """First layer (x_l None), middle layer, or last layer (y_l None); stride 1 or 2; k = 1 or 3."""
    layer = draw(st.sampled_from(["first", "middle", "last"]))
    stride = draw(st.sampled_from([1, 2]))
    k = draw(st.sampled_from([1, 3]))
    ch, cl = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    coh, col = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    height, width = (2 * stride * draw(st.integers(1, 3)) for _ in range(2))
    batch = draw(st.integers(1, 2))
    x_h, x_l, w_hh, w_hl, w_lh, w_ll = arrays(
        draw, (batch, ch, height, width), (batch, cl, height // 2, width // 2), (coh, ch, k, k),
        (col, ch, k, k), (coh, cl, k, k), (col, cl, k, k))
    if layer == "first":
        x_l = w_lh = w_ll = None
    if layer == "last":
        w_hl = w_ll = None
    return Case(((x_h, x_l), (w_hh, w_hl, w_lh, w_ll)), dict(stride=stride, padding=(k - 1) // 2))


STRATEGIES = {
    "separable": separable_case(),
    "spatial_separable": spatial_separable_case(),
    "flattened": flattened_case(),
    "shuffled_grouped": shuffled_grouped_case(),
    "octave": octave_case(),
}
