"""``fastconv.run`` and the shape/cost helpers.

run(): look up the kind -> split tensors from parameters -> check the tensors' types, dtypes and devices
-> the kind's plan checks shapes and parameters (every error is raised here, before any kernel) -> pick
the backend -> import only that backend's module -> call it -> return the caller's type, dtype, device.
"""
from __future__ import annotations

import importlib
import os
import sys
from dataclasses import dataclass

import numpy as np

from .kinds import SPECS
from .spec import Plan, Spec, numel

BACKENDS = ("auto", "numba", "triton", "torch")


# --------------------------------------------------------------------------------------------------
# Looking up kinds
# --------------------------------------------------------------------------------------------------

def get_spec(kind: str) -> Spec:
    try:
        return SPECS[kind]
    except (KeyError, TypeError):
        raise ValueError(f"unknown kind {kind!r}; valid kinds: {', '.join(SPECS)}") from None


def kinds() -> dict:
    """Every kind, in the order of the table, with its one-line description."""
    return {name: spec.summary for name, spec in SPECS.items()}


# --------------------------------------------------------------------------------------------------
# Tensors: numpy arrays or torch tensors, possibly grouped in tuples (octave's (x_h, x_l))
# --------------------------------------------------------------------------------------------------

def _is_torch(value) -> bool:
    torch = sys.modules.get("torch")        # a torch tensor can only exist if torch was imported
    return torch is not None and isinstance(value, torch.Tensor)


def _leaves(tensors: dict):
    """(name, tensor) for every tensor given, looking inside tuples (a list is not a tensor group)."""
    for name, value in tensors.items():
        if isinstance(value, tuple):
            for i, item in enumerate(value):
                if item is not None:
                    yield f"{name}[{i}]", item
        elif value is not None:
            yield name, value


def map_tensors(fn, value):
    """Apply fn to a tensor, or to every tensor of a tuple, keeping None."""
    if value is None:
        return None
    if isinstance(value, tuple):
        return tuple(map_tensors(fn, item) for item in value)
    return fn(value)


def _dtype_name(value) -> str:
    return str(value.dtype).replace("torch.", "")


@dataclass(frozen=True)
class TensorInfo:
    framework: str      # "numpy" or "torch"
    dtype: str          # "float32", ...
    device: str         # "cpu", "cuda:0", ...
    itemsize: int


def inspect_tensors(tensors: dict) -> TensorInfo:
    """Check that every tensor is a floating numpy array or torch tensor of one dtype on one device."""
    first = None
    for name, value in _leaves(tensors):
        if isinstance(value, np.ndarray):
            framework, device, itemsize = "numpy", "cpu", value.itemsize
            floating = np.issubdtype(value.dtype, np.floating)
        elif _is_torch(value):
            framework, device, itemsize = "torch", str(value.device), value.element_size()
            floating = value.is_floating_point()
        else:
            raise TypeError(f"{name} must be a numpy array or a torch tensor, got {type(value).__name__}")
        if not floating:
            raise TypeError(f"{name} has dtype {_dtype_name(value)}: fastconv computes in floating point "
                            f"(float32 or float64; float16/bfloat16 on the torch and triton backends)")
        info = TensorInfo(framework, _dtype_name(value), device, itemsize)
        if first is None:
            first, first_name = info, name
            continue
        if info.framework != first.framework:
            raise TypeError(f"{name} is a {info.framework} array but {first_name} is a {first.framework} "
                            f"array: pass every tensor of one call as the same type")
        if info.dtype != first.dtype:
            raise TypeError(f"{name} has dtype {info.dtype} but {first_name} has {first.dtype}: "
                            f"every tensor of one call must have the same dtype")
        if info.device != first.device:
            raise ValueError(f"{name} is on {info.device} but {first_name} is on {first.device}: "
                             f"every tensor of one call must be on the same device")
    if first is None:
        raise TypeError("x must be a numpy array or a torch tensor, got None")
    return first


def shape_of(value):
    """The shape of a tensor, a shape given directly, or a tuple of those (for shape-only helpers)."""
    if value is None:
        return None
    if hasattr(value, "shape"):
        return tuple(value.shape)
    if isinstance(value, (tuple, list)):
        if all(isinstance(v, (int, np.integer)) for v in value):
            return tuple(int(v) for v in value)
        return tuple(shape_of(v) for v in value)
    raise TypeError(f"expected a tensor or a shape, got {type(value).__name__}")


# --------------------------------------------------------------------------------------------------
# Parameters and plan
# --------------------------------------------------------------------------------------------------

def _split(spec: Spec, positional: tuple, params: dict):
    """Separate tensors from parameters; unknown names get an error listing the valid ones."""
    tensors = dict(zip(spec.inputs, positional))
    options = dict(spec.params)
    for name, value in params.items():
        if name in spec.tensor_params:
            tensors[name] = value
        elif name in spec.params:
            options[name] = value
        else:
            valid = ", ".join([*spec.tensor_params, *spec.params, "backend"])
            raise TypeError(f"{spec.name} got an unknown parameter {name!r}; valid parameters: {valid}")
    for name in spec.required:
        if tensors.get(name) is None:
            raise ValueError(f"{spec.name} needs the tensor {name}= ({spec.layout})")
    return tensors, options


def plan(kind: str, *tensors_or_shapes, dtype: str = "float32", **params) -> Plan:
    """The checked plan of a call, from shapes alone (no tensor is needed)."""
    spec = get_spec(kind)
    tensors, options = _split(spec, tensors_or_shapes, params)
    shapes = {name: shape_of(value) for name, value in tensors.items()}
    return spec.plan(shapes, options, np.dtype(dtype).itemsize)


def output_shape(kind: str, *shapes, **params) -> tuple:
    """Shape of ``run(kind, ...)``'s result, from the input shapes (tensors work too) and parameters.

    >>> output_shape("conv2d", (8, 3, 32, 32), (16, 3, 3, 3), stride=2, padding=1)
    (8, 16, 16, 16)
    """
    return plan(kind, *shapes, **params).out_shape


def cost(kind: str, *shapes, dtype: str = "float32", **params) -> dict:
    """Multiply-adds, FLOPs, learned parameters and minimum bytes moved by ``run(kind, ...)``.

    Kinds that replace a dense convolution also report ``dense_macs``, the multiply-adds of the dense
    convolution with the same input and output shapes, so the saving reads off directly.

    >>> cost("conv2d", (1, 192, 28, 28), (32, 192, 5, 5), padding=2)["macs"]
    120422400
    """
    return plan(kind, *shapes, dtype=dtype, **params).cost


# --------------------------------------------------------------------------------------------------
# Backends
# --------------------------------------------------------------------------------------------------

def _interpreting_triton() -> bool:
    return os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")


def choose_backend(backend: str, spec: Spec, info: TensorInfo) -> str:
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; valid backends: {', '.join(BACKENDS)}")
    on_gpu = info.device.startswith("cuda")
    if backend == "auto":
        # float64 on a GPU goes to torch: the triton kernels compute in float32 or 16-bit types
        backend = "triton" if on_gpu and spec.gpu and info.dtype != "float64" else ("torch" if on_gpu else "numba")
    if backend == "numba":
        if info.device != "cpu":
            raise ValueError(f"the numba backend runs on the CPU, but the tensors are on {info.device}: "
                             f"use backend='triton' or 'torch', or move them to the CPU")
        if info.dtype not in spec.dtypes_cpu:
            raise TypeError(f"the numba backend computes in {' or '.join(spec.dtypes_cpu)}, got {info.dtype}: "
                            f"use backend='torch' (or 'triton' on a GPU) for {info.dtype}")
        if spec.cpu is None:
            raise ValueError(f"{spec.name} has no numba kernel yet; use backend='torch'")
    if backend == "triton":
        if spec.gpu is None:
            raise ValueError(f"{spec.name} has no triton kernel yet; use backend='numba' or 'torch'")
        if info.framework != "torch":
            raise TypeError("the triton backend takes torch tensors (on a CUDA device), got numpy arrays")
        if not on_gpu and not _interpreting_triton():
            raise ValueError(f"the triton backend needs CUDA tensors (or TRITON_INTERPRET=1 for the "
                             f"interpreter), but the tensors are on {info.device}")
        if info.dtype == "float64" and not _interpreting_triton():
            raise TypeError("the triton backend computes in float32, float16 or bfloat16, got float64")
    return backend


def load(path: str, package: str):
    """'module:function' under a package -> the function (imports only that module)."""
    module, function = path.split(":")
    return getattr(importlib.import_module(f"{package}.{module}"), function)


def _to_numpy(value):
    if isinstance(value, np.ndarray):
        return np.ascontiguousarray(value)
    return np.ascontiguousarray(value.detach().cpu().numpy())


def _to_torch(value):
    """numpy -> torch; torch tensors pass as they are (the reference keeps autograd working)."""
    if isinstance(value, np.ndarray):
        import torch
        return torch.from_numpy(np.ascontiguousarray(value))
    return value


def _zeros(shape, info: TensorInfo):
    """An empty result of the right shape, type, dtype and device."""
    if shape is None:
        return None
    if shape and isinstance(shape[0], tuple) or shape and shape[0] is None:
        return tuple(_zeros(s, info) for s in shape)
    if info.framework == "numpy":
        return np.zeros(shape, dtype=info.dtype)
    import torch
    return torch.zeros(shape, dtype=getattr(torch, info.dtype), device=info.device)


def _is_empty(shape) -> bool:
    if shape is None:
        return False
    if shape and (isinstance(shape[0], tuple) or shape[0] is None):
        return any(_is_empty(s) for s in shape)
    return numel(shape) == 0


def run(kind: str, x, w=None, *more, backend: str = "auto", **params):
    """Run one convolution of the given kind.

    Parameters
    ----------
    kind     a name from ``fastconv.kinds()`` ("conv2d", "depthwise", "conv_transpose2d", ...)
    x, w     the input and the weight: numpy arrays or torch tensors (any strides); float32 or float64
             (float16/bfloat16 on the torch and triton backends). Kinds with more positional tensors
             take them after ``w``.
    backend  "numba" (CPU kernels), "triton" (GPU kernels), "torch" (the reference) or "auto"
             (triton for CUDA tensors, else numba)
    params   the kind's keyword tensors (bias, offsets, attentions, ...) and parameters (stride,
             padding, dilation, groups, ...), named as in torch.nn.functional

    Returns the result as the same type, dtype and device as ``x``.

    >>> import numpy as np
    >>> x, w = np.ones((1, 1, 5, 5)), np.ones((1, 1, 3, 3))
    >>> run("conv2d", x, w, padding=1)[0, 0, 0]
    array([4., 6., 6., 6., 4.])
    """
    spec = get_spec(kind)
    positional = (x, w, *more)
    if any(value is not None for value in positional[len(spec.inputs):]):
        raise TypeError(f"{kind} takes {len(spec.inputs)} positional tensor(s) ({', '.join(spec.inputs)}); "
                        f"pass the others by name")
    tensors, options = _split(spec, positional[:len(spec.inputs)], params)
    info = inspect_tensors(tensors)
    chosen = choose_backend(backend, spec, info)
    checked = spec.plan({name: shape_of(value) for name, value in tensors.items()}, options, info.itemsize)
    for name, shape in checked.reshape.items():
        tensors[name] = tensors[name].reshape(shape)
    if _is_empty(checked.out_shape):
        return _zeros(checked.out_shape, info)

    if chosen == "numba":
        fn = load(spec.cpu, "fastconv.kernels")
        args = {name: map_tensors(_to_numpy, value) for name, value in tensors.items()}
        result = fn(**args, **checked.kernel_params)
    else:
        if chosen == "torch":
            fn, kwargs = load(spec.reference, "fastconv.reference"), checked.ref_params
        else:
            fn, kwargs = load(spec.gpu, "fastconv.kernels"), checked.kernel_params
        args = {name: map_tensors(_to_torch, value) for name, value in tensors.items()}
        result = fn(**args, **kwargs)
    return map_tensors(lambda out: _convert_back(out, info), result)


def _convert_back(out, info: TensorInfo):
    if info.framework == "numpy":
        return out if isinstance(out, np.ndarray) else out.detach().cpu().numpy()
    if isinstance(out, np.ndarray):
        import torch
        return torch.from_numpy(out).to(device=info.device)
    return out
