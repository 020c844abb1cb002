"""The annotated kernels of fastconv, one folder per kind (or per family of kinds sharing arithmetic).

Each folder holds ``cpu.py`` (Numba, ``parallel=True``) and, where written, ``gpu.py`` (Triton) for the
same formula. Every file opens with Math / Shapes / Cost / Parallel / Versions / Caveats.
Importing this package imports neither Numba nor Triton: ``fastconv.api`` imports only the module of
the backend it runs.
"""
