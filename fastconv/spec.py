"""What a kind is: its parameters, its shape rule, its cost rule, its reference and its kernels.

Every kind of ``fastconv.kinds()`` is one :class:`Spec`. A family module (``fastconv/families/*.py``)
writes the specs of its kinds; ``fastconv/kinds.py`` lists them in one static table.

A spec's ``plan`` function is the single place where a call is checked: it receives the shapes of the
tensors and the user's parameters, raises ``ValueError``/``TypeError`` naming the parameter at fault,
and returns a :class:`Plan` (output shape, normalised parameters, cost). Nothing runs before it.
"""
from __future__ import annotations

import numbers
from dataclasses import dataclass, field
from typing import Any, Callable


@dataclass(frozen=True)
class Plan:
    """The checked form of one call.

    out_shape       shape of the result (a tuple of shapes for kinds that return several tensors)
    ref_params      keyword arguments of the torch reference (torch's own names and conventions)
    kernel_params   keyword arguments of the Numba/Triton wrappers (explicit integers, no strings)
    cost            multiply-adds, FLOPs, parameters, minimum bytes moved (see ``fastconv.cost``)
    reshape         tensors to view with another shape before any backend sees them (e.g. a 2-D
                    pointwise weight seen as (Cout, Cin, 1, 1))
    """
    out_shape: tuple
    ref_params: dict
    kernel_params: dict
    cost: dict
    reshape: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Spec:
    """One kind of convolution."""
    name: str
    family: str
    summary: str                       # one line, shown by fastconv.kinds()
    formula: str                       # the formula in index notation
    inputs: tuple                      # positional tensors after the kind, e.g. ("x", "w")
    tensor_params: tuple               # keyword tensors, e.g. ("bias",)
    params: dict                       # other keyword parameters and their defaults
    plan: Callable[[dict, dict], Plan]  # (shapes, params) -> Plan; raises on bad input
    reference: str                     # "module:function" under fastconv.reference
    cpu: str | None                    # "module:function" under fastconv.kernels (Numba)
    gpu: str | None                    # "module:function" under fastconv.kernels (Triton)
    source: str                        # the official implementation whose semantics it follows
    alias_of: str | None = None        # for names that only rename another kind's arithmetic
    required: tuple = ()               # keyword tensors that must be given
    dtypes_cpu: tuple = ("float32", "float64")
    layout: str = ""                   # e.g. "x (B, Cin, H, W), w (Cout, Cin/groups, kh, kw)"


# ---------------------------------------------------------------------------------------------------
# Parameter normalisation shared by the families. Every error names the parameter and what was wanted.
# ---------------------------------------------------------------------------------------------------

def is_int(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def int_tuple(name: str, value: Any, n: int) -> tuple:
    """An int or a sequence of ``n`` ints, as a tuple of ``n`` ints."""
    if is_int(value):
        return (int(value),) * n
    if isinstance(value, (tuple, list)) and len(value) == n and all(is_int(v) for v in value):
        return tuple(int(v) for v in value)
    raise TypeError(f"{name} must be an int or a tuple of {n} ints, got {value!r}")


def positive(name: str, values: tuple) -> tuple:
    if any(v <= 0 for v in values):
        raise ValueError(f"{name} must be positive, got {values if len(values) > 1 else values[0]}")
    return values


def non_negative(name: str, values: tuple) -> tuple:
    if any(v < 0 for v in values):
        raise ValueError(f"{name} must be >= 0, got {values if len(values) > 1 else values[0]}")
    return values


def positive_int(name: str, value: Any) -> int:
    if not is_int(value):
        raise TypeError(f"{name} must be an int, got {value!r}")
    return positive(name, (int(value),))[0]


def check_rank(name: str, shape: tuple | None, rank: int, layout: str) -> tuple:
    if shape is None:
        raise ValueError(f"{name} is required: expected a {rank}-D tensor {layout}")
    if len(shape) != rank:
        raise ValueError(f"{name} must be {rank}-D {layout}, got shape {tuple(shape)}")
    return tuple(shape)


def numel(shape) -> int:
    n = 1
    for s in shape:
        n *= s
    return n


def cost_dict(macs: int, params: int, tensor_shapes: list, itemsize: int = 4, **extra) -> dict:
    """The cost record every kind returns.

    macs        multiply-adds of the formula (one product and one sum each)
    flops       2·macs (bias and other elementwise terms are not counted)
    params      learned parameters (weights and bias); inputs computed per sample are not parameters
    bytes       the minimum traffic: every input read once and the output written once, at ``itemsize``
    extra       kind-specific entries, e.g. ``dense_macs`` for a kind that replaces a dense convolution
    """
    return {
        "macs": int(macs),
        "flops": 2 * int(macs),
        "params": int(params),
        "bytes": int(itemsize * sum(numel(s) for s in tensor_shapes if s is not None)),
        **extra,
    }


BENCH_BATCH = 8     # the batch of every benchmark layer


@dataclass(frozen=True)
class Layer:
    """One benchmark: a kind on the tensor shapes of a layer of a real network.

    shapes    tensor name -> shape (the kind's positional inputs and keyword tensors)
    params    the kind's other parameters
    baseline  "module:function" under fastconv.reference: the torch code that users would otherwise run
              (it takes torch tensors and the plan's ref_params); None means the reference itself
    make      optional (rng, shapes) -> {name: float32 array}, for inputs that need a special range
              (attentions that sum to one, masks in [0, 1], ...); default: standard normal
    """
    kind: str
    name: str
    shapes: dict
    params: dict = field(default_factory=dict)
    baseline: str | None = None
    make: Callable | None = None

    @property
    def id(self):
        return f"{self.kind}[{self.name}]"
