"""The study layer: convolution as a matrix, explain, the pictures and their command line."""
import dataclasses
import sys
import time

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import assume, given
from hypothesis import strategies as st

import fastconv
from fastconv import api, study
from fastconv.__main__ import main
from fastconv.pictures import DRAWINGS, plot_bench
from fastconv.spec import numel
from cases import STRATEGIES
from cases.standard import conv_case

MAX_ELEMENTS = 2_000_000          # keeps every drawn matrix small (tests stay fast)


def no_bias(case):
    kwargs = {k: v for k, v in case.kwargs.items() if k != "bias"}
    return case.args[0][:1], case.args[1], kwargs          # batch 1: C is block-diagonal over the batch


# --------------------------------------------------------------------------------------------------
# as_matrix
# --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", study.linear_kinds())
@given(data=st.data())
def test_matrix_times_x_is_run(kind, data):
    x, w, params = no_bias(data.draw(STRATEGIES[kind], label="case"))
    out = fastconv.output_shape(kind, x.shape, w.shape, **params)
    assume(numel(out) * x.size <= MAX_ELEMENTS)
    C = fastconv.as_matrix(kind, w, x.shape, **params)
    assert C.shape == (numel(out), x.size)
    want = fastconv.run(kind, x, w, backend="torch", **params)
    np.testing.assert_allclose(C @ x.ravel(), want.ravel(), rtol=1e-10, atol=1e-10)


def test_batch_is_block_diagonal():
    rng = np.random.default_rng(0)
    x, w = rng.standard_normal((3, 2, 5, 4)), rng.standard_normal((4, 2, 2, 3))
    C = fastconv.as_matrix("conv2d", w, x.shape, padding=1)
    np.testing.assert_allclose(C @ x.ravel(), fastconv.run("conv2d", x, w, padding=1, backend="torch").ravel())
    one = fastconv.as_matrix("conv2d", w, (1, 2, 5, 4), padding=1)
    np.testing.assert_array_equal(C, np.kron(np.eye(3), one))


@st.composite
def conv_and_transpose(draw):
    """A conv case with numeric padding, and the output_padding that maps its output back to x's shape."""
    nd = draw(st.integers(1, 3))
    x, w, params = no_bias(draw(conv_case(nd)))
    assume(not isinstance(params["padding"], str))
    pad = fastconv.spec.int_tuple("padding", params["padding"], nd)
    stride = params["stride"]
    output_padding = tuple((i + 2 * p - d * (k - 1) - 1) % s for i, p, d, k, s in
                           zip(x.shape[2:], pad, params["dilation"], w.shape[2:], stride))
    assume(all(op < max(s, d) for op, s, d in zip(output_padding, stride, params["dilation"])))
    return nd, x, w, params, output_padding


@given(conv_and_transpose())
def test_transposed_convolution_is_the_transposed_matrix(config):
    """conv_transpose(y, w) == C.T @ y.flatten() for the C of conv(x, w) with the same parameters."""
    nd, x, w, params, output_padding = config
    out = fastconv.output_shape(f"conv{nd}d", x.shape, w.shape, **params)
    assume(numel(out) * x.size <= MAX_ELEMENTS)
    C = fastconv.as_matrix(f"conv{nd}d", w, x.shape, **params)
    y = np.random.default_rng(1).standard_normal(out)
    transposed = fastconv.run(f"conv_transpose{nd}d", y, w, output_padding=output_padding, backend="torch",
                              **params)
    assert transposed.shape == x.shape
    np.testing.assert_allclose(C.T @ y.ravel(), transposed.ravel(), rtol=1e-10, atol=1e-10)
    Ct = fastconv.as_matrix(f"conv_transpose{nd}d", w, y.shape, output_padding=output_padding, **params)
    np.testing.assert_array_equal(Ct, C.T)


def test_the_4x16_example():
    """4×4 input, 3×3 kernel: C is 4×16, each row the kernel laid into a 4×4 frame, and the transposed
    convolution of a 2×2 y (by the numba kernel) is C.T @ y."""
    w = np.arange(1.0, 10.0).reshape(1, 1, 3, 3)
    C = fastconv.as_matrix("conv2d", w, (1, 1, 4, 4))
    assert C.shape == (4, 16)
    for row, (i, j) in zip(C, np.ndindex(2, 2)):
        frame = np.zeros((4, 4))
        frame[i:i + 3, j:j + 3] = w[0, 0]
        np.testing.assert_array_equal(row.reshape(4, 4), frame)
    x = np.random.default_rng(2).standard_normal((1, 1, 4, 4))
    np.testing.assert_allclose(C @ x.ravel(), fastconv.run("conv2d", x, w).ravel(), rtol=1e-12)
    y = np.random.default_rng(3).standard_normal((1, 1, 2, 2))
    np.testing.assert_allclose(fastconv.run("conv_transpose2d", y, w).ravel(), C.T @ y.ravel(), rtol=1e-12)
    np.testing.assert_allclose(F.conv_transpose2d(torch.from_numpy(y), torch.from_numpy(w)).numpy().ravel(),
                               C.T @ y.ravel(), rtol=1e-12)


def test_pointwise_is_linear():
    """The pointwise matrix of one pixel is the Linear weight; on H×W pixels it is w ⊗ I."""
    rng = np.random.default_rng(4)
    w, x = rng.standard_normal((5, 3)), rng.standard_normal((2, 3, 4, 6))
    np.testing.assert_array_equal(fastconv.as_matrix("pointwise", w, (1, 3, 1, 1)), w)
    np.testing.assert_array_equal(fastconv.as_matrix("pointwise", w, (1, 3, 4, 6)), np.kron(w, np.eye(24)))
    linear = torch.nn.Linear(3, 5, bias=False).double()
    linear.weight.data = torch.from_numpy(w)
    want = linear(torch.from_numpy(x).permute(0, 2, 3, 1)).permute(0, 3, 1, 2).detach().numpy()
    np.testing.assert_allclose(fastconv.run("pointwise", x, w), want, rtol=1e-12)


def test_as_matrix_keeps_the_weight_dtype():
    w = np.ones((2, 1, 3), np.float32)
    assert fastconv.as_matrix("conv1d", w, (1, 1, 5)).dtype == np.float32
    assert fastconv.as_matrix("conv1d", w.astype(int), (1, 1, 5)).dtype == np.float64


def test_as_matrix_bad_inputs(monkeypatch):
    w = np.ones((2, 1, 3, 3))
    with pytest.raises(TypeError, match="no bias"):
        fastconv.as_matrix("conv2d", w, (1, 1, 5, 5), bias=np.ones(2))
    with pytest.raises(ValueError, match="unknown kind 'conv4d'"):
        fastconv.as_matrix("conv4d", w, (1, 1, 5, 5))
    with pytest.raises(ValueError, match="w must be 4-D"):
        fastconv.as_matrix("conv2d", np.ones((2, 1, 3)), (1, 1, 5, 5))
    with pytest.raises(ValueError, match="w.shape\\[1\\] must be in_channels/groups"):
        fastconv.as_matrix("conv2d", w, (1, 3, 5, 5))
    with pytest.raises(TypeError, match="input_shape must be a tuple of ints"):
        fastconv.as_matrix("conv2d", w, np.ones((1, 1, 5, 5)))
    with pytest.raises(ValueError, match="too large"):
        fastconv.as_matrix("conv2d", w, (4, 1, 64, 64), padding=1)
    # a kind whose weights are not fixed (any reference as_matrix does not know) is refused by name
    monkeypatch.setitem(api.SPECS, "warped", dataclasses.replace(api.SPECS["conv2d"], name="warped",
                                                                 reference="warped:warped"))
    with pytest.raises(ValueError, match="linear kinds with a fixed weight .*; warped is not one of them"):
        fastconv.as_matrix("warped", w, (1, 1, 5, 5))


# --------------------------------------------------------------------------------------------------
# explain
# --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", list(fastconv.kinds()))
def test_explain(kind):
    spec = api.get_spec(kind)
    text = fastconv.explain(kind)
    for part in (spec.formula, spec.source, spec.summary, "== Cost ==", "Tensors and output size",
                 study.display_path(study.kernel_file(spec.cpu)), "def "):
        assert part in text
    short = fastconv.explain(kind, source=False)
    assert "def " not in short and "output (" in short and "fastconv.cost: macs" in short


def test_header_sections_parse_the_kernel_docstring():
    sections = study.header_sections(study.kernel_file("conv.cpu:conv"))
    assert set(study.HEADER_SECTIONS) <= set(sections)
    assert "multiply-adds" in sections["Cost"] and "OD = " in sections["Shapes"]


def test_explain_without_rich(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "rich.console", None)       # makes `import rich.console` fail
    study.print_explanation("conv1d", source=False)
    assert capsys.readouterr().out == fastconv.explain("conv1d", source=False)


# --------------------------------------------------------------------------------------------------
# Pictures and the command line
# --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", list(DRAWINGS))
def test_draw(kind, tmp_path):
    path = tmp_path / f"{kind}.png"
    assert fastconv.draw(kind, str(path)) == str(path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 10_000


def test_draw_unknown_kind(tmp_path):
    with pytest.raises(ValueError, match="no picture for 'conv4d'; pictures exist for: conv2d"):
        fastconv.draw("conv4d", str(tmp_path / "x.png"))


def test_command_line(tmp_path, capsys):
    start = time.perf_counter()
    assert main(["list"]) == 0
    assert main(["explain", "conv_transpose2d"]) == 0
    out = capsys.readouterr().out
    assert "conv_transpose2d" in out and "kernels/conv_transpose/cpu.py" in out and "def conv_transpose" in out
    assert main(["draw", "dilated", "--out", str(tmp_path / "d.png")]) == 0
    assert (tmp_path / "d.png").stat().st_size > 10_000
    assert main(["draw", "conv4d", "--out", str(tmp_path / "e.png")]) == 2
    assert "no picture for 'conv4d'" in capsys.readouterr().err
    assert time.perf_counter() - start < 60


def test_bench_plot(tmp_path):
    rows = [{"kind": "conv2d", "layer": "a layer", "numba ms": 1.0, "torch ms": 2.0, "numba/torch": 0.5},
            {"kind": "depthwise", "layer": "another", "numba ms": 3.0, "torch ms": 2.0, "numba/torch": 1.5}]
    path = plot_bench(rows, str(tmp_path / "bench.png"))
    assert (tmp_path / "bench.png").stat().st_size > 10_000 and path.endswith("bench.png")


def test_bench_takes_turns_and_aggregates_passes(capsys):
    """interleaved_medians times every function `repeat` times, by blocks; --runs > 1 reports per-layer
    medians with the ratio's range."""
    from fastconv import bench
    calls = []
    medians = bench.interleaved_medians({"a": lambda: calls.append("a"), "b": lambda: calls.append("b")},
                                        repeat=4, block=2)
    assert set(medians) == {"a", "b"} and calls == list("aaabbbaaabbb")   # untimed first call per block
    assert main(["bench", "--kinds", "conv1d", "--repeat", "1", "--runs", "2"]) == 0
    out = capsys.readouterr().out
    assert "range" in out and "medians of 2 passes" in out


def test_gallery(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text(f"# title\n\n{study.GALLERY_START}\nold\n{study.GALLERY_END}\n\n## after\n")
    written = study.gallery(str(readme), str(tmp_path / "docs" / "gallery"))
    text = readme.read_text()
    assert "old" not in text and text.endswith("## after\n")
    assert len(written) == len([k for k in fastconv.kinds() if k in DRAWINGS])
    for kind in fastconv.kinds():
        assert f"| `{kind}`<br>" in text
    assert '<img src="docs/gallery/conv2d.png"' in text
