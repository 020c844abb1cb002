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
@pytest.mark.parametrize("O, K, n", [(4, 8, 16), (7, 13, 5), (3, 3, 1), (24, 144, 61)])
def test_rows_product_matches_numpy_on_a_window_and_leaves_the_rest(O, K, n, dtype, tol):
    """Y[:, jy:jy+n] = bias + A·X[:, jx:jx+n], with rows and channels left over from the 4×8 blocks; the
    columns of Y outside the window are not touched."""
    rng = np.random.default_rng(O * K * n)
    A, bias = rng.standard_normal((O, K)).astype(dtype), rng.standard_normal(O).astype(dtype)
    jx, jy = 3, 5
    X = rng.standard_normal((K, jx + n + 2)).astype(dtype)
    Y = rng.standard_normal((O, jy + n + 4)).astype(dtype)
    start = Y.copy()
    rows_product(A, X, jx, bias, Y, jy, n)
    np.testing.assert_allclose(Y[:, jy:jy + n], bias[:, None] + A @ X[:, jx:jx + n], rtol=tol, atol=tol * K)
    np.testing.assert_array_equal(Y[:, :jy], start[:, :jy])
    np.testing.assert_array_equal(Y[:, jy + n:], start[:, jy + n:])
