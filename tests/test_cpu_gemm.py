"""The shared tile product every fast CPU kernel uses: both versions, and the biased fresh tile."""
import numpy as np
import pytest

from fastconv.kernels._cpu_gemm import MR, NR, tile_matmul, tile_matmul_plain, tile_product


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
