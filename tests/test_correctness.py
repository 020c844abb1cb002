"""Every kind × backend against the torch reference on random valid configurations (hypothesis)."""
import importlib

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import fastconv
from fastconv.api import get_spec, load
from fastconv.kernels import NotApplicable
from helpers import assert_close, cast, reference
from cases import STRATEGIES

KINDS = list(fastconv.kinds())
CPU_KINDS = [k for k in KINDS if get_spec(k).cpu]


def test_every_kind_has_a_strategy():
    assert sorted(STRATEGIES) == sorted(KINDS)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("kind", CPU_KINDS)
@given(data=st.data())
def test_numba_matches_reference(kind, dtype, data):
    """fastconv.run(backend="numba") on numpy or torch inputs, contiguous or not."""
    case = data.draw(STRATEGIES[kind], label="case")
    framework = data.draw(st.sampled_from(["numpy", "torch"]), label="framework")
    contiguous = data.draw(st.booleans(), label="contiguous")
    args, kwargs = cast(case, dtype, framework, contiguous)
    got = fastconv.run(kind, *args, backend="numba", **kwargs)
    first = got[0] if isinstance(got, tuple) else got
    assert type(first).__module__.split(".")[0] == framework
    assert str(first.dtype).replace("torch.", "") == dtype
    assert_close(kind, case, got, reference(kind, case), dtype)


@pytest.mark.parametrize("kind", [k for k in CPU_KINDS if get_spec(k).alias_of is None])
@given(data=st.data())
def test_every_cpu_version_matches_reference(kind, data):
    """Each version of a kernel (plain loops, blocked, ...) is checked, not only the one "auto" picks."""
    spec = get_spec(kind)
    module = importlib.import_module("fastconv.kernels." + spec.cpu.split(":")[0])
    case = data.draw(STRATEGIES[kind], label="case")
    plan = fastconv.plan(kind, *case.args, **case.kwargs)
    args, kwargs = cast(case, "float64")
    tensors = {**dict(zip(spec.inputs, args)), **{k: v for k, v in kwargs.items() if k in spec.tensor_params}}
    for name, shape in plan.reshape.items():
        tensors[name] = tensors[name].reshape(shape)
    want = reference(kind, case)
    for version in module.VERSIONS:
        try:
            got = load(spec.cpu, "fastconv.kernels")(**tensors, **plan.kernel_params, version=version)
        except NotApplicable:
            continue
        assert_close(kind, case, got, want, "float64")


@pytest.mark.parametrize("kind", KINDS)
@given(data=st.data())
def test_torch_backend_is_the_reference_in_float32(kind, data):
    case = data.draw(STRATEGIES[kind], label="case")
    args, kwargs = cast(case, "float32", "torch")
    assert_close(kind, case, fastconv.run(kind, *args, backend="torch", **kwargs), reference(kind, case),
                 "float32")
