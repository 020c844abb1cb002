"""Pictures: the sampling pattern of one output position of every kind, on a small grid (matplotlib).

    fastconv.draw("dilated", "dilated.png")         python -m fastconv draw dilated --out dilated.png

Each picture is pure geometry computed here (with the index rules of kernels/_index.py): no kernel runs,
and a kind needs no spec to have a picture, so a family's pictures exist before its kernels do. The
semantics drawn are those of the kinds' definitions (issues 4–7 of the project); weights, offsets and
attentions are random with a fixed seed, to show shape, not values.

Colours: the output position in red, the input cells it reads in orange (labelled with the tap index),
zero padding in grey (dashed), inserted zeros in pale blue; groups and channels get one colour each.
``DRAWINGS`` maps every kind with a picture to its drawing function; ``plot_bench`` draws the benchmark
table as a bar chart. matplotlib is imported on first use only (``pip install matplotlib``).
"""
from __future__ import annotations

import numpy as np

from .kernels._index import conv_out_size, conv_transpose_out_size, transposed_source

PAD, ZERO, TAP, OUT, EDGE = "#e6e6e6", "#dceefa", "#f4a259", "#d1495b", "#555555"
GROUP = ["#4f86c6", "#f4a259", "#5bb381", "#9b6fc4", "#e377c2", "#8c8c3c"]

DRAWINGS = {}


def picture(*kinds):
    """Register a drawing function ``fn(fig, kind)`` for these kinds."""
    def register(fn):
        for kind in kinds:
            DRAWINGS[kind] = fn
        return fn
    return register


def draw(kind: str, path: str, dpi: int = 90) -> str:
    """Draw the sampling pattern of ``kind`` into ``path`` (PNG, or any format matplotlib writes)."""
    if kind not in DRAWINGS:
        raise ValueError(f"no picture for {kind!r}; pictures exist for: {', '.join(DRAWINGS)}")
    fig = _figure()
    fig.captions = {"title": [], "note": []}
    DRAWINGS[kind](fig, kind)
    _place_captions(fig)
    fig.savefig(path, dpi=dpi, bbox_inches="tight", facecolor="white")
    return path


def _place_captions(fig):
    """The title just above and the notes just below what the panels drew (not their empty boxes)."""
    import textwrap
    renderer = fig.canvas.get_renderer()
    boxes = [ax.get_tightbbox(renderer) for ax in fig.axes]
    height = fig.bbox.height
    titles = [fig.text((b.x0 + b.x1) / 2 / fig.bbox.width, (b.y1 + 6) / height, ax.panel_title, ha="center",
                       va="bottom", fontsize=9) for ax, b in zip(fig.axes, boxes) if ax.panel_title]
    top = max([b.y1 for b in boxes] + [t.get_window_extent(renderer).y1 for t in titles]) / height
    bottom = min(b.y0 for b in boxes) / height
    width = int(fig.get_size_inches()[0] * 15)        # characters per line at these font sizes
    for text in fig.captions["title"]:
        fig.text(0.5, top + 8 / height, textwrap.fill(text, width), ha="center", va="bottom", fontsize=10)
    if fig.captions["note"]:
        fig.text(0.5, bottom - 6 / height, "\n".join(textwrap.fill(t, int(width * 1.3)) for t in fig.captions["note"]),
                 ha="center", va="top", fontsize=7.5)


def _figure():
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise ImportError("drawing needs matplotlib: pip install matplotlib "
                          "(or pip install -e '.[study]')") from None
    fig = Figure()
    FigureCanvasAgg(fig)          # the Agg canvas, without pyplot: no global state, no GUI backend
    return fig


# --------------------------------------------------------------------------------------------------
# Building blocks. A grid's cell (r, c) is the unit square right of x0 + c and below y0 − r.
# --------------------------------------------------------------------------------------------------

def _panels(fig, n, titles, size=(4.2, 3.6), ratios=None):
    fig.set_size_inches(size[0] * n if ratios is None else size[0] * sum(ratios), size[1])
    axes = fig.subplots(1, n, gridspec_kw={"width_ratios": ratios} if ratios else None, squeeze=False)[0]
    for ax, title in zip(axes, titles):
        ax.set_aspect("equal")
        ax.axis("off")
        ax.panel_title = title          # placed above what the panel draws, by _place_captions
    return axes


def _title(fig, text):
    fig.captions["title"].append(text)


def _grid(ax, x0, y0, rows, cols, fill=None, text=None, pad=0, label=None, fontsize=6, cell=1.0):
    """A rows×cols grid with ``pad`` padding cells around (an int, or (rows, columns)).

    fill, text: {(r, c): colour / string}; cell: the side of a cell (2 draws a half-resolution map).
    """
    from matplotlib.patches import Rectangle
    fill, text = fill or {}, text or {}
    pad_r, pad_c = (pad, pad) if isinstance(pad, int) else pad
    for r in range(-pad_r, rows + pad_r):
        for c in range(-pad_c, cols + pad_c):
            inside = 0 <= r < rows and 0 <= c < cols
            ax.add_patch(Rectangle((x0 + c * cell, y0 - (r + 1) * cell), cell, cell, facecolor=fill.get((r, c), "white" if inside else PAD),
                                   edgecolor=EDGE if inside else "#aaaaaa", lw=0.6, ls="-" if inside else "--"))
            if (r, c) in text:
                ax.text(*_centre(x0, y0, r, c, cell), text[(r, c)], ha="center", va="center", fontsize=fontsize)
    if label:
        ax.text(x0 + cols * cell / 2, y0 - (rows + pad_r) * cell - 0.4, label, ha="center", va="top", fontsize=8)
    ax.autoscale_view()


def _centre(x0, y0, r, c, cell=1.0):
    return x0 + (c + 0.5) * cell, y0 - (r + 0.5) * cell


def _arrow(ax, start, end, color=OUT, lw=1.2, style="->", bend=0.0):
    ax.annotate("", xy=end, xytext=start, arrowprops=dict(arrowstyle=style, color=color, lw=lw, shrinkA=2,
                                                          shrinkB=2, connectionstyle=f"arc3,rad={bend}"))


def _heat(values, cmap="RdBu_r"):
    """Colours for an array of values (symmetric scale around zero)."""
    import matplotlib
    values = np.asarray(values, dtype=float)
    scale = np.abs(values).max() or 1.0
    return matplotlib.colormaps[cmap](0.5 + 0.45 * values / scale)


def _matrix(ax, x0, y0, values, label=None, cmap="RdBu_r"):
    """A small matrix drawn as a heat map grid."""
    values = np.atleast_2d(values)
    colours = _heat(values, cmap)
    _grid(ax, x0, y0, *values.shape, {(r, c): colours[r, c] for r, c in np.ndindex(values.shape)}, label=label)


def _column(ax, x0, n, colours, label, y_mid=0.0, size=0.8, gap=0.35):
    """n channel boxes stacked vertically around y_mid; returns their left and right anchor points."""
    from matplotlib.patches import Rectangle
    top = y_mid + n * (size + gap) / 2
    left, right = [], []
    for i in range(n):
        y = top - i * (size + gap) - size
        ax.add_patch(Rectangle((x0, y), size, size, facecolor=colours[i], edgecolor=EDGE, lw=0.6))
        ax.text(x0 + size / 2, y + size / 2, str(i), ha="center", va="center", fontsize=7)
        left.append((x0, y + size / 2))
        right.append((x0 + size, y + size / 2))
    ax.text(x0 + size / 2, top + 0.25, label, ha="center", va="bottom", fontsize=8)
    ax.autoscale_view()
    return left, right


def _links(ax, starts, ends, pairs, colours, lw=1.0, alpha=0.8):
    for (a, b), colour in zip(pairs, colours):
        ax.plot([starts[a][0], ends[b][0]], [starts[a][1], ends[b][1]], color=colour, lw=lw, alpha=alpha)


def _note(ax, text):
    ax.figure.captions["note"].append(text)


# --------------------------------------------------------------------------------------------------
# The standard family
# --------------------------------------------------------------------------------------------------

def conv_panel(ax, size, kernel, stride=(1, 1), pad=(0, 0), dilation=(1, 1), at=(0, 0), tap=TAP):
    """Input (with its padding) and output of a 2-d convolution; the taps of output ``at`` marked."""
    out = [conv_out_size(i, k, s, p, p, d) for i, k, s, p, d in zip(size, kernel, stride, pad, dilation)]
    taps = {}
    for u, v in np.ndindex(*kernel):
        # tap (u, v) of output (oh, ow) reads x[oh·sh − ph + u·dh, ow·sw − pw + v·dw]
        taps[(at[0] * stride[0] - pad[0] + u * dilation[0], at[1] * stride[1] - pad[1] + v * dilation[1])] = f"{u},{v}"
    _grid(ax, 0, 0, *size, {cell: tap for cell in taps}, taps, pad=tuple(pad),
          label=f"input {size[0]}×{size[1]}" + (f", padding {pad[0]}" if max(pad) else ""))
    ox, oy = size[1] + max(pad) + 2, -(size[0] - out[0]) / 2
    _grid(ax, ox, oy, *out, {tuple(at): OUT}, label=f"output {out[0]}×{out[1]}")
    rows, cols = zip(*taps)
    _arrow(ax, (max(cols) + 1, -np.mean(rows) - 0.5), _centre(ox, oy, *at))     # from the window's edge
    return out


@picture("conv2d")
def _conv2d(fig, kind):
    a, b = _panels(fig, 2, ["stride 1, padding 1", "stride 2 (strided), padding 1"])
    conv_panel(a, (6, 6), (3, 3), pad=(1, 1), at=(2, 3))
    conv_panel(b, (7, 7), (3, 3), stride=(2, 2), pad=(1, 1), at=(1, 2))
    _title(fig, f"{kind}: each output reads a k×k window of every input channel (3×3 shown)")


@picture("dilated")
def _dilated(fig, kind):
    a, b = _panels(fig, 2, ["dilation 1, padding 1", "dilation 2, padding 2"])
    conv_panel(a, (9, 9), (3, 3), pad=(1, 1), at=(4, 4))
    conv_panel(b, (9, 9), (3, 3), pad=(2, 2), dilation=(2, 2), at=(4, 4))
    _title(fig, f"{kind}: taps spaced `dilation` apart: a 5×5 field from 9 weights")


@picture("conv3d")
def _conv3d(fig, kind):
    (ax,) = _panels(fig, 1, ["kernel 3×3×3, padding 1: output (1, 2, 2) reads 3 depth slices"], size=(11, 3.6))
    for depth in range(3):
        taps = {(2 - 1 + u, 2 - 1 + v): f"{depth},{u},{v}" for u, v in np.ndindex(3, 3)}
        _grid(ax, depth * 8, 0, 5, 5, {c: TAP for c in taps}, taps, pad=1, label=f"input depth {depth}",
              fontsize=5)
        _arrow(ax, (depth * 8 + 2.5, -1), _centre(25, 0, 2, 2), bend=-0.25)
    _grid(ax, 25, 0, 5, 5, {(2, 2): OUT}, label="output depth 1")
    _title(fig, f"{kind}: the window extends over depth (video frames, volumes) as well")


@picture("conv1d")
def _conv1d(fig, kind):
    a, b = _panels(fig, 2, ["kernel 3, padding 1", "kernel 3, stride 2, dilation 2, padding 2"], size=(5, 2.2))
    strip_panel(a, 9, 3, 1, 1, 1, [4])
    strip_panel(b, 9, 3, 2, 2, 2, [2])
    _title(fig, f"{kind}: a window sliding along one axis (e.g. text: one column per token)")


def strip_panel(ax, length, kernel, stride, pad, dilation, outputs, weights=None, label="input"):
    """1-d: input strip on top, output strip below; lines from the taps of each chosen output.

    weights: None (plain lines) or {output: array of kernel weights} drawn as line widths/colours.
    """
    out = conv_out_size(length, kernel, stride, pad, pad, dilation)
    fill, text, lines = {}, {}, []
    for n, o in enumerate(outputs):
        colour = GROUP[n % len(GROUP)] if len(outputs) > 1 else TAP
        for k in range(kernel):
            i = o * stride - pad + k * dilation
            fill[(0, i)], text[(0, i)] = colour, str(k)
            lines.append((i, o, k, colour))
    _grid(ax, 0, 0, 1, length, fill, text, pad=(0, pad), label=f"{label} (length {length})")
    oy, ox = -3.5, (length - out) / 2
    _grid(ax, ox, oy, 1, out, {(0, o): OUT for o in outputs}, label=f"output (length {out})")
    for i, o, k, colour in lines:
        width, line_colour = 1.2, colour
        if weights is not None:      # the tap's weight: width by size, colour by sign and size
            value, scale = weights[o][k], np.abs(weights[o]).max()
            width, line_colour = 0.5 + 3 * abs(value) / scale, _heat(weights[o])[k]
        ax.plot([i + 0.5, ox + o + 0.5], [-1.8, oy], color=line_colour, lw=width)


@picture("depthwise")
def _depthwise(fig, kind):
    (ax,) = _panels(fig, 1, ["channel c of the output reads only channel c of the input"], size=(8, 5))
    depthwise_panel(ax, 3)
    _title(fig, f"{kind}: groups = channels: one k×k filter per channel, no mixing across channels")


def depthwise_panel(ax, channels, y0=0.0):
    for c in range(channels):
        x0 = c * 8
        taps = {(1 + u, 1 + v): "" for u, v in np.ndindex(3, 3)}
        _grid(ax, x0, y0, 5, 5, {t: GROUP[c] for t in taps}, pad=1, label=f"input channel {c}")
        _grid(ax, x0, y0 - 9, 5, 5, {(2, 2): GROUP[c]}, label=f"output channel {c}")
        _arrow(ax, (x0 + 2.5, y0 - 2.5), _centre(x0, y0 - 9, 2, 2), color=GROUP[c])


def channel_panel(ax, cin, cout, groups, label_in="input channels", label_out="output channels", x_out=4):
    """Which input channels each output channel reads, for ``groups`` groups (one colour per group)."""
    cin_g, cout_g = cin // groups, cout // groups
    _, right = _column(ax, 0, cin, [GROUP[c // cin_g] for c in range(cin)], label_in)
    left, _ = _column(ax, x_out, cout, [GROUP[o // cout_g] for o in range(cout)], label_out)
    pairs = [(c, o) for o in range(cout) for c in range(cin) if c // cin_g == o // cout_g]
    _links(ax, right, left, pairs, [GROUP[o // cout_g] for _, o in pairs])


@picture("grouped")
def _grouped(fig, kind):
    a, b = _panels(fig, 2, ["channels: 6 in, 4 out, groups = 2", "space: each output still reads k×k"],
                   size=(4.2, 4.2))
    channel_panel(a, 6, 4, 2)
    conv_panel(b, (5, 5), (3, 3), pad=(1, 1), at=(2, 2))
    _title(fig, f"{kind}: the channels split into groups, each an independent convolution (ResNeXt)")


@picture("pointwise")
def _pointwise(fig, kind):
    a, b = _panels(fig, 2, ["space: a 1×1 window", "channels: every input to every output"], size=(4.2, 4))
    conv_panel(a, (5, 5), (1, 1), at=(2, 3))
    channel_panel(b, 4, 3, 1)
    _title(fig, f"{kind}: a Linear layer over the channels, applied at every pixel")


@picture("conv_transpose2d", "transposed", "conv_transpose3d")
def _transposed(fig, kind):
    a, b = _panels(fig, 2, ["gather view: a conv over the input with zeros inserted",
                            "scatter view: each input stamps a k×k copy of w"], size=(5.2, 4.6))
    transposed_panel(a, 3, 3, 2, 1, at=(1, 2))
    scatter_panel(b, 3, 3, 2, 1, at=(1, 2))
    extra = " (each axis of the 3-d case follows the same rule)" if kind.endswith("3d") else ""
    _title(fig, f"{kind}: kernel 3, stride 2, padding 1: 3×3 → 5×5{extra}")


def transposed_panel(ax, size, kernel, stride, pad, at, dilation=1):
    """A transposed convolution as a stride-1 convolution of the zero-stuffed input with the flipped kernel.

    s − 1 zeros go between input pixels, d·(k − 1) − p zeros around (the formula's padding), and output o
    reads the stuffed cells o − e + t·d, t < k, with kernel tap k − 1 − t.
    """
    stuffed, e = (size - 1) * stride + 1, dilation * (kernel - 1) - pad
    out = conv_transpose_out_size(size, kernel, stride, pad, pad, dilation, 0)
    fill = {(r, c): ("white" if r % stride == 0 and c % stride == 0 else ZERO)
            for r in range(stuffed) for c in range(stuffed)}
    text = {(r, c): f"x{r // stride}{c // stride}" if fill[(r, c)] == "white" else "0" for (r, c) in fill}
    for u, v in np.ndindex(kernel, kernel):
        # the tap gathers x[(o + p − k·d)/s] when that is whole and in range (kernels/_index.py)
        i, j = (transposed_source(at[0], u, stride, pad, dilation, size),
                transposed_source(at[1], v, stride, pad, dilation, size))
        cell = (at[0] - e + (kernel - 1 - u) * dilation, at[1] - e + (kernel - 1 - v) * dilation)
        fill[cell] = TAP if i >= 0 and j >= 0 else "#f9d8b8"
        text[cell] = f"w{u}{v}"
    _grid(ax, 0, 0, stuffed, stuffed, fill, text, pad=e,
          label=f"input {size}×{size}, zeros inserted (blue), padding {e}")
    ox = stuffed + e + 2
    oy = -(stuffed - out) / 2
    _grid(ax, ox, oy, out, out, {tuple(at): OUT}, label=f"output {out}×{out}")
    _arrow(ax, _centre(0, 0, at[0] - e + 1, at[1] - e + 1), _centre(ox, oy, *at))
    _note(ax, "orange: taps on real inputs, pale: taps on inserted zeros (wasted work the phase kernel skips)")


def scatter_panel(ax, size, kernel, stride, pad, at):
    """Every input pixel adds w·x into a k×k block of the output, at a stride of s; red = output ``at``."""
    out = conv_transpose_out_size(size, kernel, stride, pad, pad, 1, 0)
    sources = {}
    for i, j in np.ndindex(size, size):
        for u, v in np.ndindex(kernel, kernel):
            if (i * stride - pad + u, j * stride - pad + v) == tuple(at):
                sources[(i, j)] = f"w{u}{v}"
    _grid(ax, 0, -1, size, size, {c: TAP for c in sources}, {c: f"x{c[0]}{c[1]}\n{t}" for c, t in sources.items()},
          label=f"input {size}×{size}")
    ox = size + 2
    _grid(ax, ox, 0, out, out, {tuple(at): OUT}, pad=pad, label=f"output {out}×{out} (padding {pad} cropped)")
    for (i, j) in sources:
        _arrow(ax, _centre(0, -1, i, j), _centre(ox, 0, *at))


@picture("conv_transpose1d")
def _conv_transpose1d(fig, kind):
    (ax,) = _panels(fig, 1, ["input i adds w[k]·x[i] to output i·s − p + k (scatter); red: the outputs "
                             "one input writes"], size=(8, 2.6))
    size, kernel, stride = 5, 3, 2
    out = conv_transpose_out_size(size, kernel, stride, 0, 0, 1, 0)
    _grid(ax, (out - size) / 2, 0, 1, size, {(0, 2): TAP}, {(0, i): f"x{i}" for i in range(size)}, label="input")
    _grid(ax, 0, -3, 1, out, {(0, 2 * stride + k): OUT for k in range(kernel)},
          {(0, 2 * stride + k): f"w{k}" for k in range(kernel)}, label=f"output (length {out})")
    for i in range(size):
        for k in range(kernel):
            colour, lw = (OUT, 1.5) if i == 2 else ("#bbbbbb", 0.6)
            ax.plot([(out - size) / 2 + i + 0.5, i * stride + k + 0.5], [-1, -3], color=colour, lw=lw)
    _title(fig, f"{kind}: kernel 3, stride 2: overlapping copies of w, an upsampler (the adjoint of conv1d)")


# --------------------------------------------------------------------------------------------------
# Factorized kinds (issue 4)
# --------------------------------------------------------------------------------------------------

@picture("separable")
def _separable(fig, kind):
    a, b = _panels(fig, 2, ["1. depthwise k×k: per channel", "2. pointwise 1×1: mixes channels"],
                   ratios=[2, 1], size=(4, 5))
    depthwise_panel(a, 3)
    channel_panel(b, 3, 4, 1, label_in="depthwise result", label_out="output")
    _title(fig, f"{kind}: depthwise then pointwise, fused: the depthwise tile stays in cache")


@picture("spatial_separable")
def _spatial_separable(fig, kind):
    a, b, c = _panels(fig, 3, ["1. row filter 1×3", "2. column filter 3×1", "together: a 3×3 field"],
                      size=(3.4, 3.6))
    row = {(2, 1 + v): f"0,{v}" for v in range(3)}
    _grid(a, 0, 0, 5, 5, {t: TAP for t in row}, row, pad=(0, 1), label="input, padding (0, p)")
    col = {(1 + u, 2): f"{u},0" for u in range(3)}
    _grid(b, 0, 0, 5, 5, {t: GROUP[0] for t in col}, col, pad=(1, 0), label="row-filtered, padding (p, 0)")
    both = {(1 + u, 1 + v): "" for u, v in np.ndindex(3, 3)}
    _grid(c, 0, 0, 5, 5, {**{t: TAP for t in both}, (2, 2): OUT}, pad=1, label="input, output (2, 2) reads")
    _title(fig, f"{kind}: 1×k then k×1: 2k weights per channel pair instead of k² "
                "(with one middle channel, exactly a rank-1 k×k filter)")


@picture("flattened")
def _flattened(fig, kind):
    a, b, c = _panels(fig, 3, ["1. lateral 1×1 over channels", "2. vertical k×1 per channel",
                               "3. horizontal 1×k per channel"], size=(3.4, 3.8))
    channel_panel(a, 4, 3, 1)
    col = {(1 + u, 2): str(u) for u in range(3)}
    _grid(b, 0, 0, 5, 5, {t: GROUP[2] for t in col}, col, pad=1, label="one channel")
    row = {(2, 1 + v): str(v) for v in range(3)}
    _grid(c, 0, 0, 5, 5, {**{t: GROUP[3] for t in row}}, row, pad=1, label="one channel")
    _title(fig, f"{kind}: three 1-d filters in a row = one rank-1 filter W[o,c,u,v] = l[o,c]·v[o,u]·h[o,v]")


@picture("shuffled_grouped")
def _shuffled_grouped(fig, kind):
    (ax,) = _panels(fig, 1, ["grouped conv (3 groups), then output channel k·g + j takes channel j·C/g + k"],
                    size=(7, 5))
    groups, channels = 3, 6
    per = channels // groups
    colours = [GROUP[c // per] for c in range(channels)]
    _, right = _column(ax, 0, channels, colours, "input")
    left, right2 = _column(ax, 4, channels, colours, "grouped conv")
    pairs = [(c, o) for o in range(channels) for c in range(channels) if c // per == o // per]
    _links(ax, right, left, pairs, [colours[o] for _, o in pairs], lw=0.8)
    shuffled = [(j * per + k) for k in range(per) for j in range(groups)]     # output k·g + j <- j·C/g + k
    left3, _ = _column(ax, 8, channels, [colours[s] for s in shuffled], "shuffled output")
    _links(ax, right2, left3, [(s, n) for n, s in enumerate(shuffled)], [colours[s] for s in shuffled], lw=1.5)
    _title(fig, f"{kind}: the shuffle lets the next grouped layer see every group (ShuffleNet); "
                "it is folded into the output index")


@picture("octave")
def _octave(fig, kind):
    a, b = _panels(fig, 2, ["high-resolution output: f_hh(x_h) + up2(f_lh(x_l))",
                            "low-resolution output: f_ll(x_l) + f_hl(avgpool2(x_h))"], size=(6.5, 3.4))
    hi, lo = (3, 4), (1, 2)
    window = lambda centre, n, m: {(centre[0] + u, centre[1] + v): "" for u in (-1, 0, 1) for v in (-1, 0, 1)
                                   if 0 <= centre[0] + u < n and 0 <= centre[1] + v < m}
    # high output (3, 4): 3×3 on x_h, and the low result at (3//2, 4//2) = (1, 2), nearest up-sampled.
    # x_l is drawn with cells twice as large: it covers the same image at half the resolution.
    _grid(a, 0, 0, 8, 8, {c: GROUP[0] for c in window(hi, 8, 8)}, pad=1, label="x_h (8×8)")
    _grid(a, 12, 0, 4, 4, {c: GROUP[2] for c in window(lo, 4, 4)}, pad=1, label="x_l (4×4)", cell=2)
    _grid(a, 25, 0, 8, 8, {hi: OUT}, label="y_h (8×8)")
    _arrow(a, _centre(0, 0, *hi), _centre(25, 0, *hi), color=GROUP[0], bend=-0.35)
    _arrow(a, _centre(12, 0, *lo, cell=2), _centre(25, 0, *hi), color=GROUP[2])
    # low output (1, 2): 3×3 on x_l, and 3×3 on the 2×2 averages of x_h (a 6×6 block of x_h)
    pooled = {(2 * r + i, 2 * c + j): GROUP[0] for (r, c) in window(lo, 4, 4) for i in (0, 1) for j in (0, 1)}
    _grid(b, 0, 0, 8, 8, pooled, pad=1, label="x_h, averaged 2×2 first")
    _grid(b, 12, 0, 4, 4, {c: GROUP[2] for c in window(lo, 4, 4)}, pad=1, label="x_l (4×4)", cell=2)
    _grid(b, 25, 0, 4, 4, {lo: OUT}, label="y_l (4×4)", cell=2)
    _arrow(b, _centre(0, 0, 3, 5), _centre(25, 0, *lo, cell=2), color=GROUP[0], bend=-0.35)
    _arrow(b, _centre(12, 0, *lo, cell=2), _centre(25, 0, *lo, cell=2), color=GROUP[2])
    _title(fig, f"{kind}: channels split into a full- and a half-resolution part that exchange information")


# --------------------------------------------------------------------------------------------------
# Input-dependent weights (issue 5): a mixture of expert kernels per sample
# --------------------------------------------------------------------------------------------------

def _mixture_row(ax, x0, y0, kernels, weights, label, names=None, spatial=None):
    """kernels[k] × weights[k], summed (each ⊙ a spatial attention if given) = the sample's kernel."""
    total = np.zeros_like(kernels[0])
    for k, (kernel, a) in enumerate(zip(kernels, weights)):
        _matrix(ax, x0, y0, kernel, label=(names[k] if names else "") + f"× {a:.2f}")
        ax.text(x0 + 3.6, y0 - 1.5, "+" if k < len(kernels) - 1 else "=", ha="center", va="center", fontsize=12)
        total += a * kernel * (1 if spatial is None else spatial)
        x0 += 4.4
    _matrix(ax, x0, y0, total, label=label)


@picture("dynamic")
def _dynamic(fig, kind):
    (ax,) = _panels(fig, 1, ["K = 4 expert kernels w[k]; attention a[b, k] (softmax, from the sample itself)"],
                    size=(8, 4))
    rng = np.random.default_rng(0)
    experts = rng.standard_normal((4, 3, 3))
    for b, y0 in ((0, 0), (1, -5.5)):
        a = rng.dirichlet(np.ones(4))
        _mixture_row(ax, 0, y0, experts, a, f"kernel of sample {b}")
        ax.text(-0.5, y0 - 1.5, f"b={b}", ha="right", va="center", fontsize=8)
    _note(ax, "then y[b] = conv2d(x[b], Σ_k a[b,k]·w[k]): one ordinary convolution per sample, "
              "with its own aggregated kernel")
    _title(fig, f"{kind}: the kernel is a per-sample mixture of experts")


@picture("odconv")
def _odconv(fig, kind):
    (ax,) = _panels(fig, 1, ["y[b] = a_f ⊙ conv2d(a_c ⊙ x[b], Σ_n a_w[n]·(a_s ⊙ w[n]))"], size=(9, 4.2))
    rng = np.random.default_rng(1)
    spatial = rng.uniform(0.2, 1, (3, 3))
    _matrix(ax, 0, 0, spatial, label="a_s (k×k)", cmap="Oranges")
    ax.text(3.7, -1.5, "⊙", ha="center", va="center", fontsize=12)
    kernels, weights = rng.standard_normal((3, 3, 3)), rng.dirichlet(np.ones(3))
    _mixture_row(ax, 4.4, 0, kernels, weights, "the sample's kernel", [f"w[{n}] " for n in range(3)], spatial)
    _matrix(ax, 0, -6, rng.uniform(0.2, 1, (1, 8)), label="a_c: one scale per input channel", cmap="Oranges")
    _matrix(ax, 10, -6, rng.uniform(0.2, 1, (1, 6)), label="a_f: one scale per output channel", cmap="Oranges")
    _title(fig, f"{kind}: four attentions, over space, input channels, output channels and kernels")


@picture("kernel_warehouse")
def _kernel_warehouse(fig, kind):
    (ax,) = _panels(fig, 1, ["W_b[go·c_o + a, gi·c_i + e, u, v] = Σ_j α[b, t, j]·cells[j, a, e],  "
                             "t = ((u·k + v)·Go + go)·Gi + gi"], size=(9, 5.5))
    rng = np.random.default_rng(2)
    n, co, ci, k, Go, Gi = 4, 2, 2, 3, 2, 2
    cells = rng.standard_normal((n, co, ci))
    for j in range(n):
        _matrix(ax, j * 3.5, -4, cells[j], label=f"cell {j}")
    m = k * k * Go * Gi
    alpha = rng.standard_normal((m, n)) * (rng.uniform(size=(m, n)) < 0.5)
    _matrix(ax, 0, -15, alpha.T, label=f"α[b] ({m} mixtures × {n} cells), one column per kernel block t")
    W = np.zeros((Go * co, Gi * ci, k, k))
    for u, v, go, gi in np.ndindex(k, k, Go, Gi):
        t = ((u * k + v) * Go + go) * Gi + gi
        W[go * co:(go + 1) * co, gi * ci:(gi + 1) * ci, u, v] = np.tensordot(alpha[t], cells, 1)
    tiles = W.transpose(2, 0, 3, 1).reshape(k * Go * co, k * Gi * ci)     # (u, out) × (v, in)
    _matrix(ax, 18, 0, tiles, label="W_b: 3×3 taps, each a 4×4 (out × in) block")
    for line in range(0, k * Gi * ci + 1, Gi * ci):
        ax.plot([18 + line, 18 + line], [0, -k * Go * co], color="black", lw=1.5)
        ax.plot([18, 18 + k * Gi * ci], [-line, -line], color="black", lw=1.5)
    _title(fig, f"{kind}: every kernel block of the layer is a mixture of a few shared cells")


# --------------------------------------------------------------------------------------------------
# Deformable convolution (issue 6): the sampling points move
# --------------------------------------------------------------------------------------------------

def deform_panel(ax, groups=1, mask=None, point_major="row", seed=0, weights=None):
    """9×9 input, output (4, 4) with a 3×3 kernel: the regular points (hollow), the offset points (filled).

    mask: None (v1), "given" (v2: weights in [0, 1]), "softmax" (v3: per group, sum to one), "raw" (v4).
    """
    size, kernel, at = 9, 3, (4, 4)
    _grid(ax, 0, 0, size, size, label="input (pixel centres at cell centres)")
    rng = np.random.default_rng(seed)
    for g in range(groups):
        offsets = rng.normal(0, 0.8, (kernel * kernel, 2))
        if mask == "softmax":
            z = rng.normal(0, 1, kernel * kernel)
            m = np.exp(z) / np.exp(z).sum() * kernel * kernel / 3
        elif mask == "raw":
            m = rng.normal(0, 0.6, kernel * kernel)
        elif mask == "given":
            m = rng.uniform(0, 1, kernel * kernel)
        else:
            m = np.ones(kernel * kernel)
        colour = GROUP[g] if groups > 1 else TAP
        for q, (u, v) in enumerate(np.ndindex(kernel, kernel)):
            base = np.array([at[0] - 1 + u, at[1] - 1 + v], float)       # p0 + p_k (row, column)
            point = base + offsets[q]                                     # + Δp_k, bilinear-sampled
            bx, by = base[1] + 0.5, -base[0] - 0.5
            px, py = point[1] + 0.5, -point[0] - 0.5
            if g == 0:
                ax.plot(bx, by, "o", mfc="none", mec="#777777", ms=6)
            _arrow(ax, (bx, by), (px, py), color=colour, lw=0.8)
            filled = m[q] >= 0
            ax.plot(px, py, "o", color=colour, mfc=colour if filled else "white", ms=3 + 6 * min(1, abs(m[q])))
            if mask is not None:
                ax.text(px + 0.15, py + 0.15, f"{m[q]:.2f}", fontsize=5, color=colour)
        if g == 0:
            # the four pixel centres the first point is interpolated from (bilinear weights)
            y, x = offsets[0] + [at[0] - 1, at[1] - 1]
            for r, c in ((np.floor(y) + i, np.floor(x) + j) for i in (0, 1) for j in (0, 1)):
                ax.plot([c + 0.5, x + 0.5], [-r - 0.5, -y - 0.5], ":", color="black", lw=0.8)
                ax.plot(c + 0.5, -r - 0.5, "x", color="black", ms=5)
    ax.plot(at[1] + 0.5, -at[0] - 0.5, "s", color=OUT, ms=7)


@picture("deform_conv2d", "dcnv1", "dcnv2")
def _deform(fig, kind):
    modulated = kind == "dcnv2"
    (ax,) = _panels(fig, 1, ["hollow: the regular 3×3 grid of output (4, 4); filled: + learned offset "
                             "(Δy, Δx)" + (", size: mask" if modulated else "")], size=(6, 6))
    deform_panel(ax, mask="given" if modulated else None)
    _note(ax, "each point is read by bilinear interpolation of its 4 neighbours (black ×, dotted); "
              + ("v2 multiplies each by a mask in [0, 1]" if modulated else "with a mask= it is v2 (dcnv2)"))
    _title(fig, f"{kind}: deformable convolution: the kernel's sampling points move, per output pixel")


@picture("dcnv3", "dcnv4")
def _dcnv34(fig, kind):
    v4 = kind == "dcnv4"
    (ax,) = _panels(fig, 1, ["two groups (colours), each its own offsets and weights, shared by its D channels"],
                    size=(6, 6))
    deform_panel(ax, groups=2, mask="raw" if v4 else "softmax", seed=3)
    _note(ax, "v4: raw weights (no softmax; hollow = negative), offsets and weights in one tensor, several "
              "channels per thread" if v4 else "v3: weights softmax-normalised over the P points of a group; "
              "NHWC layout, offset_scale scales Δ")
    _title(fig, f"{kind}: InternImage's deformable operator: grouped points, no weight tensor w")


# --------------------------------------------------------------------------------------------------
# Content-adaptive kernels (issue 7)
# --------------------------------------------------------------------------------------------------

@picture("involution")
def _involution(fig, kind):
    (ax,) = _panels(fig, 1, ["w[b, g, :, :, i, j]: a K×K kernel made for each output pixel (i, j)"],
                    size=(8, 4.6))
    rng = np.random.default_rng(4)
    outputs = [(1, 1), (4, 5)]
    fill, text = {}, {}
    for n, (i, j) in enumerate(outputs):
        colours = _heat(rng.standard_normal((3, 3)))
        for u, v in np.ndindex(3, 3):
            fill[(i - 1 + u, j - 1 + v)] = colours[u, v]
            text[(i - 1 + u, j - 1 + v)] = "ab"[n]
    _grid(ax, 0, 0, 7, 7, fill, text, pad=1, label="input channel c (group g = c // (C/G))")
    _grid(ax, 10, 0, 7, 7, {o: OUT for o in outputs}, {o: "ab"[n] for n, o in enumerate(outputs)},
          label="output channel c")
    for o in outputs:
        _arrow(ax, _centre(0, 0, *o), _centre(10, 0, *o))
    _note(ax, "unlike a convolution, the weights differ at (1, 1) and (4, 5) but are shared by all channels "
              "of a group: spatial-specific, channel-agnostic")
    _title(fig, f"{kind}: the inverse of convolution's sharing")


@picture("lightweight", "dynamic_lightweight")
def _lightweight(fig, kind):
    dynamic = kind == "dynamic_lightweight"
    (ax,) = _panels(fig, 1, ["K = 3 taps over time, padding_l = 1; line width and colour: the tap's weight"],
                    size=(8, 2.6))
    rng = np.random.default_rng(5)
    shared = rng.standard_normal(3)
    outputs = [3, 8]
    weights = {t: rng.standard_normal(3) if dynamic else shared for t in outputs}
    strip_panel(ax, 12, 3, 1, 1, 1, outputs, weights, label="x[b, c, :] (time)")
    _note(ax, ("a new kernel w[b, h, :, t] for every time step t, predicted from x at t"
               if dynamic else "the same kernel w[h, :] at every time step, shared by the C/H channels of head h"))
    _title(fig, f"{kind}: a depthwise 1-d convolution over time " +
           ("with per-step kernels (DynamicConv)" if dynamic else "with few, shared heads (LightConv)"))


# --------------------------------------------------------------------------------------------------
# The benchmark table as a chart
# --------------------------------------------------------------------------------------------------

def plot_bench(rows: list[dict], path: str, backend: str = "numba", dpi: int = 100) -> str:
    """A bar per benchmark layer: the time ratio backend/torch (left of 1 = fastconv faster)."""
    fig = _figure()
    fig.set_size_inches(9, 0.35 * len(rows) + 1.2)
    ax = fig.subplots()
    ratios = [row["ratio"] if "ratio" in row else row[f"{backend}/torch"] for row in rows]
    labels = [f"{row['kind']}: {row['layer'][:60]}" for row in rows]
    y = np.arange(len(rows))[::-1]
    # bars start at 1 (same speed) and go left when fastconv is faster, right when slower
    ax.barh(y, [r - 1 for r in ratios], left=1, color=["#5bb381" if r < 1 else OUT for r in ratios])
    ax.axvline(1, color="black", lw=1)
    ax.set_yticks(y, labels, fontsize=7)
    ax.set_xscale("log")
    lo, hi = min(ratios + [1]) / 1.6, max(ratios + [1]) * 1.6
    ax.set_xlim(lo, hi)
    ticks = [t for t in (0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50, 100) if lo <= t <= hi]
    ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
    ax.minorticks_off()
    ax.set_xlabel(f"time {backend} / time torch (log scale; < 1: fastconv is faster)")
    for yy, r in zip(y, ratios):
        ax.text(r, yy, f" {r:.2f} " if r >= 1 else f"{r:.2f} ", va="center", ha="left" if r >= 1 else "right",
                fontsize=7)
    fig.savefig(path, dpi=dpi, bbox_inches="tight", facecolor="white")
    return path
