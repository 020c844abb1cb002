"""The shared products the fast CPU kernels use: the dot-form tile (both versions), the biased fresh
tile, and the row (axpy) form."""
import numpy as np
import pytest

from fastconv.kernels._cpu_gemm import MR, NR, rows_product, tile_matmul, tile_matmul_plain, tile_product


@pytest.mark.parametrize("dtype, tol", [("float32", 1e-4), ("float64", 1e-12)])
@pytest.mark.parametrize("M, N, K", [(4, 3, 1), (8, 6, 17), (12, 9, 576)])
def test_tile_matmul_versions_match_numpy(M, N, K, dtype, tol):
    rng = np.random.default_rng(M * N * K)
    A, P = rng.standard_normal((M, K)).astype(dtype), rng.standard_normal((N, K)).astype(dtype)
    start = rng.standard_normal((M, N)).astype(dtype)
    for version in (tile_matmul_plain, tile_matmul):
        C = start.copy()
        version(A, P, C)                                  # C += A·Pᵀ
        np.testing.assert_allclose(C, start + A @ P.T, rtol=tol, atol=tol * K)


def test_tile_product_starts_real_rows_at_bias_and_padding_rows_at_zero():
    rng = np.random.default_rng(0)
    O, M, N, K = 5, 2 * MR, 2 * NR, 7                     # 3 zero rows pad A up to a multiple of MR
    A = np.zeros((M, K))
    A[:O] = rng.standard_normal((O, K))
    P, bias = rng.standard_normal((N, K)), rng.standard_normal(O)
    T = tile_product(A, P, bias, O)
    np.testing.assert_allclose(T[:O], bias[:, None] + A[:O] @ P.T, rtol=1e-12, atol=1e-12)
    assert not T[O:].any()


@pytest.mark.parametrize("dtype, tol", [("float32", 1e-4), ("float64", 1e-12)])
@pytest.mark.parametrize("T, O, K, n", [(1, 4, 8, 16), (1, 7, 13, 5), (3, 3, 3, 1), (9, 24, 144, 61)])
@pytest.mark.parametrize("init", [True, False])
def test_rows_product_matches_numpy_on_shifted_windows_and_leaves_the_rest(T, O, K, n, init, dtype, tol):
    """Y[:, jy:jy+n] = bias + Σ_t A[t]·X[:, shift_t : shift_t+n] (or Y += the sum, init=False), with rows
    and channels left over from the 4×8 blocks; the columns of Y outside the window are not touched."""
    rng = np.random.default_rng(T * O * K * n)
    A, bias = rng.standard_normal((T, O, K)).astype(dtype), rng.standard_normal(O).astype(dtype)
    shifts = rng.integers(0, 6, T)
    X = rng.standard_normal((K, 6 + n)).astype(dtype)
    jy = 5
    Y = rng.standard_normal((O, jy + n + 4)).astype(dtype)
    start = Y.copy()
    rows_product(A, X, shifts, bias, Y, jy, n, init)
    want = (bias[:, None] if init else start[:, jy:jy + n]) + sum(A[t] @ X[:, s:s + n] for t, s in enumerate(shifts))
    np.testing.assert_allclose(Y[:, jy:jy + n], want, rtol=tol, atol=tol * K * T)
    np.testing.assert_array_equal(Y[:, :jy], start[:, :jy])
    np.testing.assert_array_equal(Y[:, jy + n:], start[:, jy + n:])
