"""The kernels' on-disk Numba cache is stamped with the whole kernels package's source, so an edit to a
shared function (conv/cpu.py's flat_band) also recompiles the kernels of other files that call it."""
import numba

from fastconv.kernels import _numba_cache
from fastconv.kernels.spatial_separable.cpu import spatial_flat


def test_a_kernel_is_cached_under_the_package_stamp():
    locator = spatial_flat._cache._impl.locator
    assert type(locator).__module__ == _numba_cache.__name__
    assert locator.get_source_stamp() == _numba_cache.package_stamp()


def test_functions_outside_the_package_keep_numbas_own_stamp():
    @numba.njit(cache=True)
    def outside(a):
        return a + 1

    assert type(outside._cache._impl.locator).__module__ == "numba.core.caching"


def test_the_stamp_changes_with_any_file_of_the_package(tmp_path):
    (tmp_path / "conv").mkdir()
    (tmp_path / "conv" / "cpu.py").write_text("def flat_band(): return 1\n")
    (tmp_path / "separable.py").write_text("from .conv.cpu import flat_band\n")
    before = _numba_cache.package_stamp.__wrapped__(tmp_path)
    (tmp_path / "conv" / "cpu.py").write_text("def flat_band(): return 2\n")
    assert _numba_cache.package_stamp.__wrapped__(tmp_path) != before


def test_installing_twice_adds_nothing():
    classes = list(_numba_cache.CACHE_IMPL._locator_classes)
    _numba_cache.install()
    assert _numba_cache.CACHE_IMPL._locator_classes == classes
