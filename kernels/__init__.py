"""The annotated kernels of fastconv, one folder per kind (or per family of kinds sharing arithmetic).

Each folder holds ``cpu.py`` (Numba, ``parallel=True``) and, where written, ``gpu.py`` (Triton) for the
same formula. Every file opens with Math / Shapes / Cost / Parallel / Versions / Caveats.
Importing this package imports neither Numba nor Triton: ``fastconv.api`` imports only the module of
the backend it runs.
"""


class NotApplicable(ValueError):
    """Raised by a kernel wrapper asked for a version that does not cover this call (e.g. the
    depthwise version of conv for a dense convolution). Tests skip exactly these."""
