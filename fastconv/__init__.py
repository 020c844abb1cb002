"""fastconv: every deep-learning convolution as an explicit, annotated loop-level kernel.

    import fastconv
    y = fastconv.run("conv2d", x, w, stride=2, padding=1)    # numpy in -> numpy out (Numba on the CPU)
    fastconv.kinds()                                         # every kind with a one-line description
    fastconv.output_shape("conv2d", x.shape, w.shape, stride=2, padding=1)
    fastconv.cost("conv2d", x.shape, w.shape, stride=2, padding=1)
    fastconv.receptive_field([(3, 1), (3, 2), (3, 1)])
    fastconv.explain("conv2d")                               # formula, shapes, rules, source, kernel
    fastconv.as_matrix("conv2d", w, (1, 1, 4, 4))            # y.flatten() = C @ x.flatten()
    fastconv.draw("dilated", "dilated.png")                  # the sampling pattern, with matplotlib

The kernels live in ``fastconv.kernels`` (the repository's ``kernels/`` folder), one folder per kind.
"""
from .api import cost, kinds, output_shape, plan, run
from .kernels import _index
from .pictures import draw
from .spec import is_int
from .study import as_matrix, explain

__version__ = "0.1.0"
__all__ = ["run", "kinds", "output_shape", "cost", "plan", "receptive_field", "explain", "as_matrix", "draw",
           "__version__"]


def receptive_field(layers) -> int:
    """Receptive field, in input pixels, of a stack of layers given as (kernel, stride[, dilation]).

    r = 1 + Σ_l d_l·(k_l − 1)·Π_{i<l} s_i

    >>> receptive_field([(3, 1), (3, 2), (3, 1)])
    9
    """
    layers = list(layers)
    for n, layer in enumerate(layers):
        if not isinstance(layer, (tuple, list)) or len(layer) not in (2, 3) or not all(map(is_int, layer)):
            raise TypeError(f"layers[{n}] must be (kernel, stride) or (kernel, stride, dilation) ints, "
                            f"got {layer!r}")
        if min(layer) <= 0:
            raise ValueError(f"layers[{n}] must have positive kernel, stride and dilation, got {layer!r}")
    return _index.receptive_field(layers)
