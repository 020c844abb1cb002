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


@numba.njit
def copy_lanes(x, y, y_start, lo, hi):
    simd.store_lanes(y, y_start, simd.load(x, 0), lo, hi)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("lo, hi", [(0, LANES), (0, 1), (3, 11), (LANES - 1, LANES), (5, 5)])
def test_store_lanes_writes_only_its_lanes(dtype, lo, hi):
    x = np.arange(LANES, dtype=dtype) + 100
    y = np.full(LANES + 10, -1.0, dtype=dtype)
    copy_lanes(x, y, 4, lo, hi)
    expected = np.full_like(y, -1.0)
    expected[4 + lo:4 + hi] = x[lo:hi]
    np.testing.assert_array_equal(y, expected)


def test_store_lanes_past_the_end_of_an_array_is_safe_when_masked():
    """The lanes beyond the array are masked off: no fault, nothing written (the array ends a page)."""
    pages = np.zeros(4096 // 4 * 2, dtype=np.float32)
    y = pages[:4096 // 4 + 3]
    copy_lanes(np.ones(LANES, dtype=np.float32), y, y.size - 3, 0, 3)
    assert (y[-3:] == 1).all() and (pages[y.size:] == 0).all()
