"""Every kind is complete: a reference, a Numba kernel, a Triton kernel, an nn module, an explanation, a
picture and a benchmark, and every kernel file opens with its header sections.

Adding a kind to fastconv/kinds.py without one of these fails here, naming the kind and what is missing.
"""
import glob
import os

import pytest

import fastconv
from fastconv import bench, study
from fastconv.api import get_spec, load
from fastconv.nn import MODULES
from fastconv.pictures import DRAWINGS

KINDS = list(fastconv.kinds())


def kernel_files():
    root = study.kernels_root()
    return sorted(glob.glob(os.path.join(root, "*", "cpu.py")) + glob.glob(os.path.join(root, "*", "gpu.py")))


@pytest.mark.parametrize("kind", KINDS)
def test_reference(kind):
    assert callable(load(get_spec(kind).reference, "fastconv.reference"))


@pytest.mark.parametrize("kind", KINDS)
def test_numba_kernel(kind):
    spec = get_spec(kind)
    assert spec.cpu is not None, f"{kind} has no Numba kernel (Spec.cpu)"
    assert callable(load(spec.cpu, "fastconv.kernels"))


@pytest.mark.parametrize("kind", KINDS)
def test_triton_kernel(kind):
    spec = get_spec(kind)
    assert spec.gpu is not None, f"{kind} has no Triton kernel (Spec.gpu)"
    assert callable(load(spec.gpu, "fastconv.kernels"))


@pytest.mark.parametrize("kind", KINDS)
def test_nn_module(kind):
    assert kind in MODULES, f"{kind} has no module in fastconv.nn.MODULES"


@pytest.mark.parametrize("kind", KINDS)
def test_explain(kind):
    assert get_spec(kind).formula in fastconv.explain(kind, source=False)


@pytest.mark.parametrize("kind", KINDS)
def test_picture(kind):
    assert kind in DRAWINGS, f"{kind} has no drawing in fastconv.pictures (register one with @picture)"


@pytest.mark.parametrize("kind", KINDS)
def test_benchmark(kind):
    assert any(layer.kind == kind for layer in bench.LAYERS), f"{kind} has no layer in fastconv.bench.LAYERS"


@pytest.mark.parametrize("kind", KINDS)
def test_kernel_files_of_the_kind_have_headers(kind):
    spec = get_spec(kind)
    for path in (spec.cpu, spec.gpu):
        filename = study.kernel_file(path)
        if filename is not None:        # a missing kernel fails test_numba_kernel / test_triton_kernel
            missing = set(study.HEADER_SECTIONS) - set(study.header_sections(filename))
            assert not missing, f"{study.display_path(filename)} lacks the header sections {sorted(missing)}"


@pytest.mark.parametrize("filename", kernel_files(), ids=lambda f: study.display_path(f))
def test_every_kernel_file_has_headers(filename):
    missing = set(study.HEADER_SECTIONS) - set(study.header_sections(filename))
    assert not missing, f"{study.display_path(filename)} lacks the header sections {sorted(missing)}"
