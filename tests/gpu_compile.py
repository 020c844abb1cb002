"""Compile every Triton kernel for an H100 (sm_90) without a GPU, on the benchmark layers' shapes.

The interpreter hides what only the GPU compiler checks: tl.dot's minimum tile sizes, loop-carried
values that change type when Triton specialises an argument equal to 1, operations with no GPU
lowering. This script runs each kind's Triton wrapper on "meta" tensors (shapes and strides, no data),
records the kernel launch instead of running it, and compiles that exact call (the same signatures,
the same specialisations of 1s and multiples of 16) down to a cubin with Triton's bundled ptxas,
once per autotune config the GPU would try.

    python tests/gpu_compile.py            # every layer × dtype × the first and last fitting config
    python tests/gpu_compile.py --all      # every fitting config
    python tests/gpu_compile.py --quick    # one layer per kernel, float32 and bfloat16, largest tile
    python tests/gpu_compile.py --usage    # also registers and spills per kernel (ptxas -v)

Each compiled kernel must also fit the H100's shared memory (227 KiB per block), which the GPU would
only check at launch.

Must run without TRITON_INTERPRET (tests/test_triton.py starts it in a subprocess).
"""
import argparse
import importlib
import inspect
import os
import re
import subprocess
import sys
import tempfile

assert os.environ.get("TRITON_INTERPRET", "0") in ("", "0"), "run without TRITON_INTERPRET"
os.environ.setdefault("TRITON_DEFAULT_FP_FUSION", "1")      # Triton 3.9's default, without its warning

import torch
import triton
from triton._C.libtriton import native_specialize_impl
from triton.backends.compiler import BaseBackend, GPUTarget
from triton.compiler import ASTSource

from fastconv import bench
from fastconv.api import get_spec, plan
from fastconv.bench import split

H100 = GPUTarget("cuda", 90, 32)
H100_SHARED = 227 * 1024            # bytes of shared memory one block may use
DTYPES = ("float32", "tf32", "float16", "bfloat16")      # tf32: float32 with allow_tf32=True
POINTER = {torch.float32: "*fp32", torch.float16: "*fp16", torch.bfloat16: "*bf16"}


class Launch:
    """Stands in for a kernel (autotuned or plain): ``kernel[grid](*args, **kwargs)`` records the call."""

    def __init__(self, kernel):
        self.kernel, self.calls = kernel, []

    def __getitem__(self, grid):
        return lambda *args, **kwargs: self.calls.append((args, kwargs))


class Fixed:
    """The launch options of a plain @triton.jit call, shaped like an autotune Config."""

    def __init__(self, kwargs):
        self.num_warps, self.num_stages = kwargs.pop("num_warps", 4), kwargs.pop("num_stages", 3)
        self.kwargs = {}


def record(layer, dtype):
    """The kernel launches the layer's Triton wrapper makes, as (kernel, args, kwargs): every Autotuner
    or JITFunction of the loaded fastconv.kernels modules is replaced by a recorder during the call."""
    spec = get_spec(layer.kind)
    module_name, function = spec.gpu.split(":")
    module = importlib.import_module(f"fastconv.kernels.{module_name}")
    args, kwargs = split(layer, layer.shapes)
    checked = plan(layer.kind, *args, **kwargs, **layer.params)
    torch_dtype = torch.float32 if dtype == "tf32" else getattr(torch, dtype)
    meta = lambda shape: (tuple(meta(s) for s in shape) if shape and isinstance(shape[0], tuple)
                          else torch.empty(shape, dtype=torch_dtype, device="meta"))    # octave: tuples
    tensors = {name: meta(shape) for name, shape in layer.shapes.items()}
    for name, shape in checked.reshape.items():
        tensors[name] = tensors[name].reshape(shape)
    modules = [m for name, m in list(sys.modules.items()) if name.startswith("fastconv.kernels") and m]
    launches, saved = {}, []
    for m in modules:
        for name, value in list(vars(m).items()):
            if isinstance(value, (triton.runtime.Autotuner, triton.runtime.JITFunction)):
                launch = launches.setdefault(id(value), Launch(value))
                saved.append((m, name, value))
                setattr(m, name, launch)
    try:
        wrapper = getattr(module, function)
        precision = {"allow_tf32": dtype == "tf32"} if "allow_tf32" in inspect.signature(wrapper).parameters else {}
        wrapper(**tensors, **checked.kernel_params, **precision)
    finally:
        for m, name, value in saved:
            setattr(m, name, value)
    return [(launch.kernel, args, kw) for launch in launches.values() for args, kw in launch.calls]


def compile_call(kernel, args, kwargs, config):
    """Compile one launch with one config for sm_90, specialising the arguments as Triton's launcher does."""
    fn = kernel.fn if isinstance(kernel, triton.runtime.Autotuner) else kernel
    signature, constexprs, attrs = {}, {**kwargs, **config.kwargs}, {}
    for index, (name, value) in enumerate(zip(fn.arg_names, args)):
        if value is None:
            signature[name], constexprs[name] = "constexpr", None
        elif isinstance(value, torch.Tensor):
            signature[name] = POINTER[value.dtype]
            attrs[(index,)] = [["tt.divisibility", 16]]       # torch allocations are 16-byte aligned
        else:
            kind, align = native_specialize_impl(BaseBackend, value, False, True, True)[:2]
            signature[name] = kind
            if kind == "constexpr":
                constexprs[name] = value
            elif align and "D" in align:
                attrs[(index,)] = [["tt.divisibility", 16]]
    for name in fn.arg_names[len(args):]:
        signature[name] = "constexpr"
    source = ASTSource(fn, signature, constexprs, attrs)
    return triton.compile(source, target=H100,
                          options=dict(num_warps=config.num_warps, num_stages=config.num_stages))


def fitting_configs(autotuner, args, kwargs):
    """The configs the autotuner would time for this call (after its early prune); a plain kernel's
    launch options."""
    if not isinstance(autotuner, triton.runtime.Autotuner):
        return [Fixed(kwargs)]
    named = dict(zip(autotuner.fn.arg_names, args))
    prune = autotuner.early_config_prune
    return prune(autotuner.configs, named, **kwargs) if prune else autotuner.configs


def ptxas_usage(kernel) -> str:
    """Registers per thread and spill bytes, from Triton's bundled ptxas (-v) on the kernel's PTX."""
    from triton.backends.nvidia.compiler import get_ptxas
    ptxas = get_ptxas(90).path
    with tempfile.NamedTemporaryFile("w", suffix=".ptx") as ptx:
        ptx.write(kernel.asm["ptx"])
        ptx.flush()
        log = subprocess.run([ptxas, "-arch=sm_90a", "-v", ptx.name, "-o", os.devnull],
                             capture_output=True, text=True).stderr
    registers = re.search(r"Used (\d+) registers", log)
    spills = re.search(r"(\d+) bytes spill stores", log)
    return f"{registers.group(1) if registers else '?'} regs, {spills.group(1) if spills else '?'} B spilled"


def main(select="ends", usage=False, out=sys.stdout):
    """select: "ends" (first and last fitting config), "all", or "quick" (largest tile, one layer per
    kernel, float32 and bfloat16)."""
    layers = [layer for layer in bench.LAYERS if get_spec(layer.kind).gpu]
    dtypes = ("float32", "bfloat16") if select == "quick" else DTYPES
    count, seen = 0, set()
    for layer in layers:
        for dtype in dtypes:
            for autotuner, args, kwargs in record(layer, dtype):
                if select == "quick" and (autotuner, dtype) in seen:
                    continue
                seen.add((autotuner, dtype))
                configs = fitting_configs(autotuner, args, kwargs)
                chosen = {"all": configs, "quick": configs[:1]}.get(select, [configs[0], configs[-1]])
                for config in {id(c): c for c in chosen}.values():
                    kernel = compile_call(autotuner, args, kwargs, config)
                    count += 1
                    shared = kernel.metadata.shared
                    assert shared <= H100_SHARED, f"{layer.id} {dtype} {config}: {shared} B of shared memory"
                    ptx = kernel.asm["ptx"]
                    units = "tensor cores" if "wgmma" in ptx or "mma.sync" in ptx else "cuda cores"
                    name = (autotuner.fn if isinstance(autotuner, triton.runtime.Autotuner) else autotuner).__name__
                    print(f"ok  {layer.id[:50]:<50} {dtype:<8} {name:<22} "
                          f"{'x'.join(str(v) for v in config.kwargs.values()):<10} w{config.num_warps} "
                          f"s{config.num_stages}  {units}, {shared // 1024} KiB shared"
                          f"{', ' + ptxas_usage(kernel) if usage else ''}", file=out)
    print(f"{count} compilations for sm_90", file=out)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--all", action="store_true", help="every fitting autotune config")
    parser.add_argument("--quick", action="store_true", help="one layer per kernel, the largest tile")
    parser.add_argument("--usage", action="store_true", help="registers and spills (ptxas -v)")
    options = parser.parse_args()
    main("all" if options.all else "quick" if options.quick else "ends", options.usage)
