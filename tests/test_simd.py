"""The 16-lane register of kernels/_simd.py: each operation against numpy, both dtypes, at unaligned
starts."""
import numba
import numpy as np
import pytest

from fastconv.kernels import _simd as simd
from fastconv.kernels._simd import LANES


@numba.njit
def weighted_sum(x, starts, weights, y, y_start):
    """y[y_start + l] = Σ_p weights[p]·x[starts[p] + l], summed in one register."""
    acc = simd.zeros(x)
    for p in range(starts.size):
        acc = simd.fma(acc, weights[p], simd.load(x, starts[p]))
    simd.store(y, y_start, acc)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_load_fma_store_match_numpy(dtype):
    rng = np.random.default_rng(0)
    x = rng.standard_normal(100).astype(dtype)
    starts = np.array([0, 3, 17, 100 - LANES])               # aligned and unaligned runs, the last one
    weights = rng.standard_normal(starts.size).astype(dtype)
    y = np.full(40, 7.0, dtype=dtype)
    weighted_sum(x, starts, weights, y, 5)
    expected = sum(wp * x[s:s + LANES] for wp, s in zip(weights, starts))
    np.testing.assert_allclose(y[5:5 + LANES], expected, rtol=1e-5 if dtype == "float32" else 1e-13)
    assert (y[:5] == 7).all() and (y[5 + LANES:] == 7).all()          # nothing outside the 16 lanes


def test_zeros_and_nan_propagation():
    x = np.ones(LANES, dtype=np.float32)
    x[3] = np.nan
    y = np.empty(LANES, dtype=np.float32)
    weighted_sum(x, np.array([0]), np.array([2.0], dtype=np.float32), y, 0)
    assert np.isnan(y[3]) and (np.delete(y, 3) == 2).all()
    weighted_sum(x, np.array([0], dtype=np.int64)[:0], np.empty(0, dtype=np.float32), y, 0)
    assert (y == 0).all()


def test_a_non_contiguous_array_is_refused_at_compile_time():
    with pytest.raises(numba.core.errors.TypingError):
        weighted_sum(np.ones(64)[::2], np.array([0]), np.ones(1), np.empty(16), 0)
