"""Every kind with a Triton kernel against the reference: on a CUDA device when there is one, else in
interpreter mode (TRITON_INTERPRET=1, set by conftest.py) on CPU tensors with the same tiny shapes."""
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import fastconv
from fastconv.api import get_spec
from helpers import assert_close, cast, reference
from cases import STRATEGIES

pytestmark = pytest.mark.triton
DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
TRITON_KINDS = [k for k in fastconv.kinds() if get_spec(k).gpu]


def to_device(value):
    if isinstance(value, torch.Tensor):
        return value.to(DEVICE)
    if isinstance(value, tuple):
        return tuple(to_device(v) for v in value)
    return value


@pytest.mark.parametrize("kind", TRITON_KINDS)
@settings(max_examples=4)    # the interpreter is slow: a few draws per kind in CI
@given(data=st.data())
def test_triton_matches_reference(kind, data):
    case = data.draw(STRATEGIES[kind], label="case")
    args, kwargs = cast(case, "float32", "torch")
    args, kwargs = to_device(args), {k: to_device(v) for k, v in kwargs.items()}
    got = fastconv.run(kind, *args, backend="triton", **kwargs)
    assert_close(kind, case, got, reference(kind, case), "float32")
