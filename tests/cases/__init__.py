"""Random valid calls for every kind: one hypothesis strategy per kind, written per family.

A strategy draws a :class:`Case`: the positional tensors and keyword arguments of one
``fastconv.run(kind, *args, **kwargs)`` call, as float64 numpy arrays on small shapes (odd sizes,
asymmetric kernels, strides larger than the kernel, dilation, groups...). Tests cast them to the dtype
and array type under test.
"""
from . import adaptive, deformable, dynamic, factorized, standard

STRATEGIES = {
    **standard.STRATEGIES,
    **factorized.STRATEGIES,
    **dynamic.STRATEGIES,
    **deformable.STRATEGIES,
    **adaptive.STRATEGIES,
}
