"""Numba's on-disk cache (``cache=True``) for the kernels, stamped with the whole package's source.

Why this exists
    Numba decides whether a cached kernel is still valid from the source file of that kernel alone.
    But a kernel compiles in the functions it calls from other files: spatial_separable/cpu.py runs
    conv/cpu.py's ``flat_bands``, the deformable kinds share deformable/sampling.py, and so on.  Edit
    ``flat_bands`` and Numba would still load spatial_separable's machine code from before the edit —
    silently stale, the worst surprise for a student changing a kernel to see what happens.  Here every
    function defined under kernels/ gets the same stamp, a hash of all kernels/**/*.py: an edit
    anywhere in the package recompiles every kernel (once, on its next call).

How
    Numba picks a cache locator for each function from ``CacheImpl._locator_classes`` (the first whose
    ``from_function`` accepts it) and stores the locator's ``get_source_stamp()`` in the cache index.
    ``install()`` puts, in front of each source-file locator, a subclass that accepts only files under
    kernels/ and returns the package stamp.  Cache locations are Numba's own (``__pycache__`` beside the
    file, or NUMBA_CACHE_DIR); a NUMBA_CACHE_LOCATOR_CLASSES set by the user still takes precedence.

Caveats
    Reaches into numba.core.caching (not a public API): if its names change, ``install()`` does
    nothing and the cache behaves as plain Numba's.  The stamp is computed once per process.
"""
import functools
import hashlib
from pathlib import Path

from numba.core import caching

ROOT = Path(__file__).resolve().parent
CACHE_IMPL = getattr(caching, "CacheImpl", None) or getattr(caching, "_CacheImpl", None)   # (older Numba: _CacheImpl)


@functools.lru_cache(maxsize=None)
def package_stamp(root=ROOT):
    """sha256 over the relative path and contents of every .py file under ``root`` (kernels/)."""
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        digest.update(path.relative_to(root).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def inside_package(py_file):
    try:
        return Path(py_file).resolve().is_relative_to(ROOT) and ROOT.is_dir()
    except (OSError, ValueError):
        return False


def package_locator(base):
    """``base`` (a Numba locator class) restricted to kernels/ files, with the package-wide stamp."""
    class PackageLocator(base):
        @classmethod
        def from_function(cls, py_func, py_file):
            return super().from_function(py_func, py_file) if inside_package(py_file) else None

        def get_source_stamp(self):
            return package_stamp()

    PackageLocator.__name__ = PackageLocator.__qualname__ = f"Package{base.__name__}"
    return PackageLocator


def install():
    source_backed = getattr(caching, "_SourceFileBackedLocatorMixin", None)
    if CACHE_IMPL is None or source_backed is None:
        return
    classes = CACHE_IMPL._locator_classes
    if any(getattr(c, "__module__", None) == __name__ for c in classes):
        return                                  # already installed
    ours = [package_locator(c) for c in classes if issubclass(c, source_backed)]
    classes[:0] = ours


install()
