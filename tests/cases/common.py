"""Building blocks for the per-family strategies."""
from dataclasses import dataclass, field

import numpy as np
from hypothesis import strategies as st


@dataclass
class Case:
    args: tuple                       # positional tensors (numpy float64), e.g. (x, w)
    kwargs: dict = field(default_factory=dict)   # keyword tensors and parameters

    def __repr__(self):              # hypothesis prints this on failure: shapes, not values
        show = lambda v: f"array{v.shape}" if isinstance(v, np.ndarray) else repr(v)
        return (f"Case(args=({', '.join(show(a) for a in self.args)}), "
                f"kwargs={{{', '.join(f'{k}: {show(v)}' for k, v in self.kwargs.items())}}})")


def arrays(draw, *shapes):
    """Standard-normal float64 arrays of the given shapes, from a drawn seed (fast, reproducible)."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    return [rng.standard_normal(shape) for shape in shapes]


def ints(draw, n, lo, hi):
    return tuple(draw(st.integers(lo, hi)) for _ in range(n))
