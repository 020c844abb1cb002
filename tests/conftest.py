import os

import pytest
import torch

# Without a GPU, Triton kernels run in the interpreter on CPU tensors. The variable must be set before
# any Triton kernel is defined (triton.jit reads it then), so it is set here, before the tests import.
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")
from hypothesis import HealthCheck, settings

# Few examples per kind by default (CI time); FASTCONV_EXAMPLES=200 for a long search.
# CI (CI=true) draws the same examples every run, so a submission's result does not depend on luck;
# a local run explores new ones each time.
settings.register_profile("fastconv", max_examples=int(os.environ.get("FASTCONV_EXAMPLES", "12")),
                          deadline=None, derandomize=os.environ.get("CI") == "true",
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
settings.load_profile("fastconv")


def triton_available():
    """Triton kernels run on CUDA tensors, or on CPU tensors with TRITON_INTERPRET=1 set."""
    try:
        import triton  # noqa: F401
    except ImportError:
        return False
    return torch.cuda.is_available() or os.environ.get("TRITON_INTERPRET") == "1"


def pytest_collection_modifyitems(config, items):
    if triton_available():
        return
    skip = pytest.mark.skip(reason="no CUDA device and TRITON_INTERPRET is not 1")
    for item in items:
        if "triton" in item.keywords:
            item.add_marker(skip)
