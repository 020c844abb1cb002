"""The shared products the fast CPU kernels use: the dot-form tile (both versions), the biased fresh
tile, the row (axpy) form, and conv2d's register-blocked band."""
import numpy as np
import pytest

from fastconv.kernels._cpu_gemm import MR, NR, rows_product, tile_matmul, tile_matmul_plain, tile_product
from fastconv.kernels.conv.cpu import FLAT_MR, FLAT_N, flat_bands


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


@pytest.mark.parametrize("dtype, tol", [("float32", 1e-4), ("float64", 1e-12)])
@pytest.mark.parametrize("n_rows, Wp, OW", [(1, 5, 5), (1, 20, 17), (2, 20, 17), (3, 17, 16), (5, 17, 17),
                                            (1, 49, 49), (2, 40, 40), (7, 11, 9)])
@pytest.mark.parametrize("col_step", [1, 2])
@pytest.mark.parametrize("n_img, gap", [(1, 0), (2, 0), (3, 7)])
def test_flat_bands_match_numpy_for_every_band_length(n_rows, Wp, OW, col_step, n_img, gap, dtype, tol):
    """Bands of 5 … 89 positions (less than one register block, one and a part, whole blocks); 13 output
    channels (one and a half register blocks); stores at a column step of 1 and 2; one to three bands
    sharing register blocks, their S parts back to back (gap 0: a band's last vector and the next
    band's first can be consecutive in S, and must still be stored as two bands) or apart; the
    outputs between the written ones (and the dropped wide-row columns) stay untouched."""
    rng = np.random.default_rng(n_rows * Wp * OW * col_step * n_img)
    O, K = 13, 11
    L = (n_rows - 1) * Wp + OW
    S_step = L + gap
    S = rng.standard_normal(n_img * S_step + 3 * Wp + FLAT_N).astype(dtype)
    offs = rng.integers(0, 3 * Wp, K)
    A = np.zeros((-(-O // FLAT_MR) * FLAT_MR, K), dtype=dtype)
    A[:O] = rng.standard_normal((O, K))
    bias = rng.standard_normal(O).astype(dtype)
    row_step = OW * col_step + 1
    plane = n_rows * row_step + 3
    out_step = O * plane + 2
    out = np.full(n_img * out_step, np.nan, dtype=dtype)
    flat_bands(S, S_step, n_img, offs, A, bias, n_rows, Wp, OW, out, 0, out_step, plane, row_step, col_step, O)
    expected = np.full_like(out, np.nan)
    for i in range(n_img):
        for r in range(n_rows):
            for col in range(OW):
                p = i * S_step + r * Wp + col
                at = i * out_step + np.arange(O) * plane + r * row_step + col * col_step
                expected[at] = bias + A[:O] @ S[p + offs]
    np.testing.assert_allclose(out, expected, rtol=tol, atol=tol * K)
