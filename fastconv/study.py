"""The study layer: what a kind computes, explained from its spec, and convolution as a matrix.

    fastconv.explain("conv2d")                        # formula, shapes, cost and size rules, source, kernel
    fastconv.as_matrix("conv2d", w, (1, 1, 4, 4))     # the dense C with y.flatten() = C @ x.flatten()

Everything here is read from the table of kinds (``fastconv/kinds.py``) and the kernel files, so a new
kind is explained as soon as its spec and kernels exist.
"""
from __future__ import annotations

import ast
import importlib.util
import inspect
import os
from dataclasses import dataclass

import numpy as np

from . import api
from .kernels import _index
from .spec import numel

HEADER_SECTIONS = ("Math", "Shapes", "Cost", "Parallel", "Versions")


# --------------------------------------------------------------------------------------------------
# Kernel files
# --------------------------------------------------------------------------------------------------

def kernel_module(path: str | None) -> str | None:
    """'conv.cpu:conv' -> 'fastconv.kernels.conv.cpu'."""
    return None if path is None else "fastconv.kernels." + path.split(":")[0]


def kernel_file(path: str | None) -> str | None:
    """The file of a Spec.cpu / Spec.gpu entry, found without importing it (no Numba/Triton needed)."""
    module = kernel_module(path)
    if module is None:
        return None
    found = importlib.util.find_spec(module)
    return None if found is None else found.origin


def kernels_root() -> str:
    return os.path.dirname(importlib.util.find_spec("fastconv.kernels").origin)


def display_path(filename: str) -> str:
    """A kernel file as the repository shows it: kernels/conv/cpu.py."""
    return os.path.join("kernels", os.path.relpath(filename, kernels_root()))


def header_sections(filename: str) -> dict:
    """The Math / Shapes / Cost / ... sections of a kernel file's module docstring, by name.

    A section is an unindented line starting with its name (a remark in parentheses may follow, and
    is kept as the first line of the body), followed by the indented lines under it.
    """
    with open(filename, encoding="utf-8") as f:
        doc = ast.get_docstring(ast.parse(f.read())) or ""
    sections, name = {}, None
    for line in doc.splitlines():
        if line.strip() and not line[0].isspace():
            name, _, remark = line.partition(" (")
            name = name.strip()
            sections[name] = [f"    ({remark}"] if remark else []
        elif name is not None:
            sections[name].append(line)
    return {name: "\n".join(lines).strip("\n") for name, lines in sections.items()}


# --------------------------------------------------------------------------------------------------
# explain
# --------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Section:
    title: str
    body: str
    code: bool = False     # Python source: highlighted by the command line when rich is installed


def _example(kind):
    """The kind's first benchmark layer (a real network's shapes), or None."""
    from . import bench
    return next((layer for layer in bench.LAYERS if layer.kind == kind), None)


def _shape_text(shape) -> str:
    if shape is None:
        return "None"
    if shape and (isinstance(shape[0], tuple) or shape[0] is None):
        return "(" + ", ".join(_shape_text(s) for s in shape) + ")"
    return "(" + ", ".join(map(str, shape)) + ")"


def sections(kind: str, source: bool = True) -> list[Section]:
    """The explanation of one kind, as titled sections (``explain`` joins them into text)."""
    spec = api.get_spec(kind)
    cpu_file, gpu_file = kernel_file(spec.cpu), kernel_file(spec.gpu)
    header = header_sections(cpu_file) if cpu_file else {}
    out = []
    title = f"{spec.name} ({spec.family} family)" + (f", another name for {spec.alias_of}" if spec.alias_of else "")
    out.append(Section(title, spec.summary))
    out.append(Section("Formula", spec.formula))

    signature = ", ".join([f"run({spec.name!r}", *spec.inputs,
                           *(f"{name}=None" for name in spec.tensor_params),
                           *(f"{name}={value!r}" for name, value in spec.params.items())]) + ")"
    tensors = [f"call    {signature}", f"layout  {spec.layout or '(see the kernel file)'}"]
    if spec.required:
        tensors.append(f"needs   {', '.join(spec.required)}")
    if "Shapes" in header:
        tensors += ["", "from the kernel file:", header["Shapes"]]
    out.append(Section("Tensors and output size", "\n".join(tensors)))

    cost = [header["Cost"], ""] if "Cost" in header else []
    layer = _example(kind)
    if layer is not None:
        from . import bench
        args, kwargs = bench.split(layer, layer.shapes)
        plan = api.plan(kind, *args, **kwargs, **layer.params)
        params = ", ".join(f"{k}={v!r}" for k, v in layer.params.items()) or "defaults"
        cost += [f"example: {layer.name}",
                 "  " + ", ".join(f"{name} {_shape_text(shape)}" for name, shape in layer.shapes.items())
                 + f", {params}",
                 f"  -> output {_shape_text(plan.out_shape)}",
                 "  fastconv.cost: " + ", ".join(f"{k} {v:,}" for k, v in plan.cost.items())]
    out.append(Section("Cost", "\n".join(cost) or "(no cost rule written yet)"))

    out.append(Section("Matches", spec.source))
    files = [f"reference  fastconv/reference/{spec.reference.split(':')[0]}.py  ({spec.reference})",
             f"numba      {display_path(cpu_file) if cpu_file else 'none yet'}" + (f"  ({spec.cpu})" if spec.cpu else ""),
             f"triton     {display_path(gpu_file) if gpu_file else 'none yet'}" + (f"  ({spec.gpu})" if spec.gpu else "")]
    for name in ("Parallel", "Versions", "Caveats"):
        if name in header:
            files += ["", f"{name}:", header[name]]
    out.append(Section("Kernels", "\n".join(files)))
    if source and cpu_file:
        with open(cpu_file, encoding="utf-8") as f:
            out.append(Section(f"The CPU kernel: {display_path(cpu_file)}", f.read(), code=True))
    return out


def explain(kind: str, source: bool = True) -> str:
    """What a kind computes and where its kernels are, as text.

    The formula, every tensor's shape and layout, the output-size and cost rules (from the kernel file's
    header, with fastconv.cost on a real network's layer), the official implementation it matches, the
    kernel files and (``source=True``) the annotated CPU kernel itself.
    """
    return "\n\n".join(f"== {s.title} ==\n{s.body}" for s in sections(kind, source)) + "\n"


def print_explanation(kind: str, source: bool = True, file=None) -> None:
    """Print ``explain(kind)``, with the kernel source highlighted when rich is installed."""
    parts = sections(kind, source)
    try:
        from rich.console import Console
        from rich.syntax import Syntax
    except ImportError:
        print(explain(kind, source), end="", file=file)
        return
    console = Console(file=file, highlight=False)
    console.width = max(console.width, 112)     # the kernel files are 110 columns wide: don't wrap them
    for part in parts:
        console.rule(f"[bold]{part.title}")
        if part.code:
            console.print(Syntax(part.body, "python", line_numbers=True))
        else:
            console.print(part.body, markup=False)


# --------------------------------------------------------------------------------------------------
# Convolution as a matrix
# --------------------------------------------------------------------------------------------------

MAX_MATRIX_ELEMENTS = 50_000_000      # 400 MB in float64: as_matrix is for small, readable examples


def _conv_taps(in_size, out_size, kernel, stride, pad, dilation):
    """0/1 matrices S[k] (out_size, in_size): tap k of output o reads input i = o·s − pad + k·d."""
    taps = np.zeros((kernel, out_size, in_size))
    for k in range(kernel):
        offset = k * dilation - pad
        lo, hi = _index.valid_outputs(in_size, out_size, stride, offset)
        o = np.arange(lo, hi)
        taps[k, o, o * stride + offset] = 1
    return taps


def _transposed_taps(in_size, out_size, kernel, stride, pad, dilation):
    """0/1 matrices S[k] (out_size, in_size): output o gathers input i through tap k (o = i·s − pad + k·d)."""
    taps = np.zeros((kernel, out_size, in_size))
    for k in range(kernel):
        for o in range(out_size):
            i = _index.transposed_source(o, k, stride, pad, dilation, in_size)
            if i >= 0:
                taps[k, o, i] = 1
    return taps


def _conv_channels(w, groups):
    """W[k] (Cout, Cin) per flat tap k: w[o, c, k] on the block of o's group, zero across groups."""
    cout, cin_g = w.shape[:2]
    cout_g = cout // groups
    flat = w.reshape(cout, cin_g, -1)
    out = np.zeros((flat.shape[2], cout, cin_g * groups), dtype=w.dtype)
    for g in range(groups):
        out[:, g * cout_g:(g + 1) * cout_g, g * cin_g:(g + 1) * cin_g] = \
            flat[g * cout_g:(g + 1) * cout_g].transpose(2, 0, 1)
    return out


def _transposed_channels(w, groups):
    """W[k] (Cout, Cin) per flat tap k: w[c, o mod Cout/g, k] when o and c share a group."""
    cin, cout_g = w.shape[:2]
    cin_g = cin // groups
    flat = w.reshape(cin, cout_g, -1)
    out = np.zeros((flat.shape[2], cout_g * groups, cin), dtype=w.dtype)
    for g in range(groups):
        out[:, g * cout_g:(g + 1) * cout_g, g * cin_g:(g + 1) * cin_g] = \
            flat[g * cin_g:(g + 1) * cin_g].transpose(2, 1, 0)
    return out


# reference of a kind -> (per-axis tap matrices, per-tap channel matrices). Keyed by the reference so
# that every kind sharing the arithmetic (conv2d, depthwise, grouped, ...) is covered with no new code.
LINEAR = {
    "standard:conv": (_conv_taps, _conv_channels),
    "standard:conv_transpose": (_transposed_taps, _transposed_channels),
}


def linear_kinds() -> list:
    """The kinds as_matrix covers: a fixed weight, and no term but the weighted sum of inputs."""
    return [name for name, spec in api.SPECS.items() if spec.reference in LINEAR]


def as_matrix(kind: str, w, input_shape, **params) -> np.ndarray:
    """The dense matrix C of a linear kind: ``run(kind, x, w, **params).flatten() == C @ x.flatten()``.

    ``w`` is a numpy array (or anything ``np.asarray`` takes), ``input_shape`` the shape of x
    (B, Cin, *spatial); ``params`` are the kind's parameters (stride, padding incl. "same", dilation,
    groups, output_padding), checked by ``fastconv.plan`` exactly as ``run`` checks them. No bias: with a
    bias the map is affine, y = C·x + bias, not linear; add it yourself.

    How it is built (no torch, no kernel): for each tap k = (k1, ..., kn) the 0/1 matrix S_ki of one axis
    says which input each output reads through that tap (the index rule of kernels/_index.py), and the
    (Cout, Cin) matrix W_k holds the weights of that tap (zero between groups). Then

        C = I_B ⊗ Σ_k  W_k ⊗ S_k1 ⊗ ... ⊗ S_kn       (⊗ the Kronecker product, rows (b, o, *p))

    For the same parameters, the transposed convolution's matrix is exactly C.T: that is why it is
    called the transposed convolution (it maps y's shape back to x's and is the gradient of conv).
    """
    spec = api.get_spec(kind)
    if spec.reference not in LINEAR:
        raise ValueError(f"as_matrix covers the linear kinds with a fixed weight ({', '.join(linear_kinds())}); "
                         f"{kind} is not one of them")
    if "bias" in params:
        raise TypeError("as_matrix has no bias: with a bias the map is affine (y = C·x + bias), not linear; "
                        "add the bias to C @ x yourself")
    w = np.asarray(w)
    if not np.issubdtype(w.dtype, np.floating):
        w = w.astype(np.float64)
    if not (isinstance(input_shape, (tuple, list)) and all(isinstance(s, (int, np.integer)) for s in input_shape)):
        raise TypeError(f"input_shape must be a tuple of ints (B, Cin, *spatial), got {input_shape!r}")
    plan = api.plan(kind, tuple(input_shape), w.shape, **params)
    w = w.reshape(plan.reshape.get("w", w.shape))
    batch, _, *in_size = input_shape
    out_size = plan.out_shape[2:]
    rows, cols = numel(plan.out_shape), numel(input_shape)
    if rows * cols > MAX_MATRIX_ELEMENTS:
        raise ValueError(f"as_matrix would be {rows}×{cols}: too large to build densely "
                         f"(at most {MAX_MATRIX_ELEMENTS:,} elements); use a smaller input_shape")

    taps_of, channels_of = LINEAR[spec.reference]
    k = plan.kernel_params
    axes = [taps_of(i, o, kk, s, p, d) for i, o, kk, s, p, d in
            zip(in_size, out_size, w.shape[2:], k["stride"], k["padding"], k["dilation"])]
    channels = channels_of(w, k["groups"])
    per_sample = np.zeros((numel(plan.out_shape[1:]), numel(input_shape[1:])), dtype=w.dtype)
    for t, tap in enumerate(np.ndindex(*w.shape[2:])):
        term = channels[t]
        for axis, ki in zip(axes, tap):
            term = np.kron(term, axis[ki])
        per_sample += term
    return np.kron(np.eye(batch, dtype=w.dtype), per_sample)


# --------------------------------------------------------------------------------------------------
# The README gallery
# --------------------------------------------------------------------------------------------------

GALLERY_START, GALLERY_END = "<!-- gallery:start (python -m fastconv gallery) -->", "<!-- gallery:end -->"


def gallery_rows(readme_dir: str, out_dir: str) -> list[str]:
    """One Markdown table row per kind: name, family, formula and layout, picture, kernel folder."""
    from .pictures import DRAWINGS
    rows = ["| kind | formula and shapes | picture | kernels |", "|---|---|---|---|"]
    for name, spec in api.SPECS.items():
        picture = os.path.relpath(os.path.join(out_dir, f"{name}.png"), readme_dir)
        folder = os.path.dirname(kernel_file(spec.cpu)) if spec.cpu else None
        link = f"[{display_path(folder)}/]({os.path.relpath(folder, readme_dir)}/)" if folder else "none yet"
        formula = spec.formula.replace("|", "\\|")
        image = f'<img src="{picture}" width="420">' if name in DRAWINGS else "(no picture yet)"
        rows.append(f"| `{name}`<br>{spec.family} | `{formula}`<br>{spec.layout} | {image} | {link} |")
    return rows


def gallery(readme: str = "README.md", out_dir: str = "docs/gallery") -> list[str]:
    """Draw every kind of ``fastconv.kinds()`` into ``out_dir`` and rewrite the README's gallery table.

    The table goes between the GALLERY_START and GALLERY_END markers (added at the end if missing), so
    after new kinds are merged one command brings pictures and README up to date.
    """
    from .pictures import DRAWINGS, draw
    os.makedirs(out_dir, exist_ok=True)
    written = [draw(name, os.path.join(out_dir, f"{name}.png")) for name in api.SPECS if name in DRAWINGS]
    with open(readme, encoding="utf-8") as f:
        text = f.read()
    table = "\n".join([GALLERY_START, *gallery_rows(os.path.dirname(os.path.abspath(readme)), out_dir),
                       GALLERY_END])
    if GALLERY_START in text and GALLERY_END in text:
        head, rest = text.split(GALLERY_START, 1)
        text = head + table + rest.split(GALLERY_END, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n## Gallery\n\n" + table + "\n"
    with open(readme, "w", encoding="utf-8") as f:
        f.write(text)
    return written
