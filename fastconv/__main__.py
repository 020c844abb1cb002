"""The command line.

    python -m fastconv list                      every kind, its family, description and backends
    python -m fastconv tour                      run every kind on a real layer, check it, time it
    python -m fastconv bench [--kinds K ...]     the benchmark table: numba vs torch (short run)
    python -m fastconv bench --backend triton    triton vs torch on a CUDA device
    python -m fastconv bench --plot bench.png    ... and the numba/torch ratio per layer as a bar chart
    python -m fastconv explain KIND              formula, shapes, cost and size rules, source, the CPU kernel
    python -m fastconv draw KIND --out F.png     the sampling pattern of one output position (matplotlib)
    python -m fastconv gallery                   every kind's picture under docs/gallery, README's gallery
"""
from __future__ import annotations

import argparse
import sys
import time

import numpy as np

from . import api, bench
from .kinds import SPECS


def format_table(rows: list[dict], floats: str = "{:.2f}") -> str:
    """Rows of dicts as an aligned text table (no dependency beyond the standard library)."""
    if not rows:
        return "(no rows)"
    columns = list(rows[0])
    cells = [[floats.format(v) if isinstance(v, float) else str(v) for v in row.values()] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    line = lambda values: "  ".join(v.ljust(w) if i == 0 else v.rjust(w)
                                    for i, (v, w) in enumerate(zip(values, widths)))
    return "\n".join([line(columns), line(["-" * w for w in widths]), *map(line, cells)])


class Progress:
    """A one-line progress bar on stderr (kernels compile on first use: this shows what is happening)."""

    def __init__(self, total: int, width: int = 30):
        self.total, self.width, self.done = total, width, 0
        self.tty = sys.stderr.isatty()

    def step(self, label: str):
        filled = self.width * self.done // max(1, self.total)
        text = f"[{'#' * filled}{'.' * (self.width - filled)}] {self.done}/{self.total} {label}"
        if self.tty:
            sys.stderr.write("\r" + text[:110].ljust(110))
        else:
            sys.stderr.write(text + "\n")
        sys.stderr.flush()
        self.done += 1

    def close(self):
        if self.tty:
            sys.stderr.write("\r" + " " * 110 + "\r")
            sys.stderr.flush()


def _torch_available() -> bool:
    try:
        import torch  # noqa: F401
        return True
    except ImportError:
        return False


def _cuda_available() -> bool:
    if not _torch_available():
        return False
    import torch
    return torch.cuda.is_available()


def backends_of(spec) -> str:
    names = [name for name, present in (("numba", spec.cpu), ("triton", spec.gpu), ("torch", spec.reference))
             if present]
    return ", ".join(names)


def cmd_list(args) -> int:
    rows = [{"kind": name, "family": spec.family, "backends": backends_of(spec),
             "description": spec.summary + (f" (= {spec.alias_of})" if spec.alias_of else "")}
            for name, spec in SPECS.items()]
    print(format_table(rows))
    return 0


def _max_error(got, want) -> float:
    got = got if isinstance(got, tuple) else (got,)
    want = want if isinstance(want, tuple) else (want,)
    errors = [float(np.abs(np.asarray(g, np.float64) - np.asarray(w, np.float64)).max(initial=0.0))
              for g, w in zip(got, want) if w is not None]
    return max(errors, default=0.0)


def tour_layers(kinds=None):
    """The first benchmark layer of every kind (a real network's shapes)."""
    chosen = {}
    for layer in bench.LAYERS:
        if (kinds is None or layer.kind in kinds) and layer.kind not in chosen:
            chosen[layer.kind] = layer
    return list(chosen.values())


def cmd_tour(args) -> int:
    has_torch = _torch_available()
    backends = ["numba"] + (["triton"] if _cuda_available() else []) + (["torch"] if has_torch else [])
    layers = tour_layers(args.kinds)
    print(f"fastconv tour: {len(layers)} kinds on layers of real networks (batch {bench.BATCH}, float32), "
          f"backends: {', '.join(backends)}.")
    if not has_torch:
        print("torch is not installed: no reference check, numba only (pip install torch).")
    print("Kernels compile on first use (cached afterwards).\n")
    progress = Progress(len(layers) * len(backends))
    rows, failures = [], 0
    for layer in layers:
        arrays = bench.tensors(layer)
        args_, kwargs = bench.split(layer, arrays)
        plan = api.plan(layer.kind, *args_, **kwargs, **layer.params)
        row = {"kind": layer.kind, "output": _shape_text(plan.out_shape),
               "MACs": f"{plan.cost['macs']:,}", "params": f"{plan.cost['params']:,}"}
        results = {}
        for backend in backends:
            progress.step(f"{layer.kind} ({backend})")
            inputs_args, inputs_kwargs = args_, kwargs
            if backend == "triton":
                import torch
                to_gpu = lambda a: torch.from_numpy(a).cuda()
                inputs_args = [api.map_tensors(to_gpu, a) for a in args_]
                inputs_kwargs = {k: api.map_tensors(to_gpu, v) for k, v in kwargs.items()}
            run = lambda: api.run(layer.kind, *inputs_args, backend=backend, **inputs_kwargs, **layer.params)
            results[backend] = api.map_tensors(lambda t: t if isinstance(t, np.ndarray) else t.cpu().numpy(), run())
            row[f"{backend} ms"] = 1e3 * bench.median_time(run, repeat=3)
        if has_torch:
            reference = _reference64(layer, arrays)
            error = max(_max_error(results[b], reference) for b in backends if b != "torch")
            scale = max(1.0, _max_error(reference, api.map_tensors(np.zeros_like, reference)))
            ok = error <= 1e-3 * scale
            failures += not ok
            row["max error"] = f"{error:.1e}" + ("" if ok else " FAIL")
        rows.append(row)
    progress.close()
    print(format_table(rows))
    print("\nmax error: numba (and triton) float32 result against the torch reference computed in float64.")
    return 1 if failures else 0


def _reference64(layer, arrays):
    as64 = {name: api.map_tensors(lambda a: a.astype(np.float64), a) for name, a in arrays.items()}
    args_, kwargs = bench.split(layer, as64)
    return api.run(layer.kind, *args_, backend="torch", **kwargs, **layer.params)


def _shape_text(shape) -> str:
    if shape and (isinstance(shape[0], tuple) or shape[0] is None):
        return " + ".join(_shape_text(s) for s in shape if s is not None)
    return "×".join(map(str, shape))


def cmd_bench(args) -> int:
    if args.backend == "triton" and not _cuda_available():
        print("the triton benchmark needs a CUDA device; none is available here", file=sys.stderr)
        return 2
    backends = (args.backend, "torch")
    layers = [layer for layer in bench.LAYERS if args.kinds is None or layer.kind in args.kinds]
    progress = Progress(len(layers) * args.runs)
    start = time.perf_counter()
    rows = bench.table(args.kinds, backends, repeat=args.repeat, progress=lambda layer: progress.step(layer.id),
                       dtype=args.dtype, runs=args.runs)
    progress.close()
    for row in rows:
        row.pop("shape")
        row[f"{args.backend}/torch"] = row.pop("ratio")
        if "ratio range" in row:
            row["range"] = row.pop("ratio range")
    print(format_table(rows))
    passes = f"; medians of {args.runs} passes over the list, range = lowest–highest ratio" if args.runs > 1 else ""
    print(f"\nmedian of {args.repeat} runs each after a warm-up, {args.dtype}, batch {bench.BATCH}{passes}; "
          f"ratio < 1 means fastconv is faster. ({time.perf_counter() - start:.0f} s)")
    if args.plot:
        from .pictures import plot_bench
        print(f"chart: {plot_bench(rows, args.plot, args.backend)}")
    return 0


def cmd_explain(args) -> int:
    from .study import print_explanation
    print_explanation(args.kind, source=not args.no_source)
    return 0


def cmd_draw(args) -> int:
    from .pictures import draw
    try:
        print(draw(args.kind, args.out or f"{args.kind}.png"))
    except ValueError as error:
        print(error, file=sys.stderr)
        return 2
    return 0


def cmd_gallery(args) -> int:
    from .study import gallery
    written = gallery(args.readme, args.out)
    print(f"{len(written)} pictures under {args.out}; gallery section of {args.readme} rewritten")
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fastconv", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="every kind with its family, description and backends")
    tour = sub.add_parser("tour", help="run, check and time every kind on a real layer")
    tour.add_argument("--kinds", nargs="+", choices=list(SPECS), help="only these kinds")
    b = sub.add_parser("bench", help="benchmark table: fastconv vs torch on real-network layers")
    b.add_argument("--kinds", nargs="+", choices=list(SPECS), help="only these kinds")
    b.add_argument("--backend", choices=["numba", "triton"], default="numba")
    b.add_argument("--dtype", choices=[*bench.GPU_DTYPES, "float64"], default="float32",
                   help="float32 or float64 for numba; float32, tf32, float16 or bfloat16 for triton")
    b.add_argument("--repeat", type=int, default=5, help="timed runs per backend (median)")
    b.add_argument("--runs", type=int, default=1,
                   help="passes over the whole list: the table shows per-layer medians and the ratio's range")
    b.add_argument("--plot", metavar="FILE.png", help="also draw the ratio per layer as a bar chart (matplotlib)")
    e = sub.add_parser("explain", help="formula, shapes, cost and size rules, source and kernel of one kind")
    e.add_argument("kind", choices=list(SPECS), metavar="KIND")
    e.add_argument("--no-source", action="store_true", help="leave out the kernel source")
    d = sub.add_parser("draw", help="picture of the sampling pattern of one kind (matplotlib)")
    d.add_argument("kind", metavar="KIND", help="a kind (pictures also exist for kinds not yet in the table)")
    d.add_argument("--out", metavar="FILE.png", help="where to write it (default: KIND.png)")
    g = sub.add_parser("gallery", help="draw every kind under docs/gallery and rewrite README's gallery")
    g.add_argument("--readme", default="README.md")
    g.add_argument("--out", default="docs/gallery", help="folder for the pictures")
    args = parser.parse_args(argv)
    commands = {"list": cmd_list, "tour": cmd_tour, "bench": cmd_bench, "explain": cmd_explain, "draw": cmd_draw,
                "gallery": cmd_gallery}
    return commands[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
