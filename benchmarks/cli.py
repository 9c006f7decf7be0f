"""Benchmark every implementation of the tutorial side by side: ``python -m benchmarks``.

Trains each implementation on the same data (the synthetic SIGNS set unless --data says
otherwise) for --epochs epochs, all in this one process, alternating them within each of
--repeats rounds, and measures the floor (the GEMMs and the Adam update alone, see
benchmarks/floor.py) in every round too. Prints one table:

  s/epoch min, median  seconds per epoch, from the second epoch on (epoch-start to epoch-start,
                       so setup, graph construction and evaluation are excluded), best and
                       median over all measured epochs of all rounds
  steps/s              mini-batch steps per second at the best epoch time
  x TF1, x floor,      best epoch time divided by the TF1 original's, the floor's and the
  x limit              physical limit's (the least time this machine's measured peak GEMM rate
                       and memory bandwidth allow for the epoch's FLOPs and bytes, a row of its own)
  final cost           softmax cross-entropy of the trained parameters on the whole training
                       set, computed in float64 NumPy (so speed never hides a numerical change)
  rel. diff vs tf1     largest normwise relative difference of the trained parameters from
                       the reference implementation's (the TF1 original when it runs)

TensorFlow implementations are skipped, with a note, when TensorFlow is not importable.
The machine may be shared: timings are noisy, so compare the min columns.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import torch  # noqa: E402

from benchmarks import floor as floor_mod  # noqa: E402
from benchmarks import limit as limit_mod  # noqa: E402
from benchmarks import report, scaling  # noqa: E402
from benchmarks.runner import Result, full_batch_cost, max_relative_difference, run_once  # noqa: E402
from signs import implementations  # noqa: E402
from signs.cli import ArgumentParser, add_data_arguments, positive_int, run_main  # noqa: E402
from signs.data import load_tutorial_arrays  # noqa: E402
from signs.errors import InputError  # noqa: E402
from signs.files import atomic_write  # noqa: E402
from torch_port.dtypes import torch_dtype  # noqa: E402

IMPLS = implementations.IMPLEMENTATIONS
REFERENCE = implementations.REFERENCE


def impl_list(text: str) -> list[str]:
    """argparse type: a comma-separated list of implementation names."""
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in IMPLS]
    if not names or unknown:
        raise argparse.ArgumentTypeError(
            f"unknown implementation {', '.join(unknown) or repr(text)}; choose from {', '.join(IMPLS)}")
    return list(dict.fromkeys(names))


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--epochs", type=positive_int, default=20,
                        help="epochs per run (default: 20; per-epoch time is measured from the "
                        "second epoch on, so use >= 3)")
    parser.add_argument("--repeats", type=positive_int, default=3,
                        help="rounds; each round runs every implementation once (default: 3)")
    parser.add_argument("--impls", type=impl_list, default=list(IMPLS),
                        help=f"comma-separated subset of {','.join(IMPLS)} (default: all)")
    parser.add_argument("--threads", type=positive_int, default=None,
                        help="threads for torch (set_num_threads) and TensorFlow (intra- and "
                        "inter-op) (default: each framework's own choice)")
    parser.add_argument("--dtype", choices=("float32", "float64"), default="float32",
                        help="parameter dtype (default: float32, the tutorial's)")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu",
                        help="where the torch implementations and the floor run (default: cpu); "
                        "TensorFlow uses its own placement")
    parser.add_argument("--json", default=None, metavar="PATH",
                        help="also write the figures, per-run seconds and machine info as JSON")
    parser.add_argument("--scaling", action="store_true",
                        help="also time the torch port vs hidden width (25/100/400/1600) and batch "
                        "size (32/128/512/1080)")
    add_data_arguments(parser)
    parser.set_defaults(data="synthetic")
    return parser


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def load_data(args):
    """The tutorial's arrays ``(X, Y, X_test, Y_test)``, as every command loads them."""
    notes: list[str] = []
    arrays = load_tutorial_arrays(args.data_dir, args.data, notify=notes.append)
    if arrays.kind != "synthetic":  # the synthetic set is the benchmark's default: no notice
        for note in notes:
            progress(note)
    return arrays.source, (arrays.X_train, arrays.Y_train, arrays.X_test, arrays.Y_test)


def set_tf_threads(threads: int) -> None:
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(threads)


def load_impls(names: list[str], threads: int | None) -> tuple[dict, dict]:
    """Import each implementation's module; TensorFlow ones are skipped when TF is missing."""
    modules, skipped = {}, {}
    for name in names:
        impl = IMPLS[name]
        try:
            if impl.framework == "tensorflow" and threads:
                set_tf_threads(threads)
            modules[name] = impl.load()
        except ImportError as exc:
            if impl.framework != "tensorflow":
                raise
            skipped[name] = f"TensorFlow is not importable ({exc.__class__.__name__}: {exc})"
            progress(f"note: skipping {name}: {skipped[name]}")
    return modules, skipped


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        raise InputError("--device cuda: no CUDA device is available to torch; use --device cpu")
    json_path = Path(args.json) if args.json else None
    if json_path is not None and not json_path.parent.is_dir():
        raise InputError(f"--json {json_path}: directory {json_path.parent} does not exist")
    if args.threads:
        torch.set_num_threads(args.threads)
    source, data = load_data(args)
    modules, skipped = load_impls(args.impls, args.threads)
    m = data[0].shape[1]
    steps = len(floor_mod.epoch_batches(m, 32))
    dtype = torch_dtype(args.dtype)

    results = {}
    for name in modules:
        device = args.device if IMPLS[name].framework == "torch" else _tf_device()
        results[name] = Result(name, device, steps, warmup_included=args.epochs == 1)
    floor = Result("floor (GEMMs + Adam)", args.device, steps)
    floor_with_gather = Result("floor + batch gather", args.device, steps)
    floor_parts: dict[str, list[float]] = {}
    floor_epochs = min(5, args.epochs)
    limit = None
    for round_ in range(1, args.repeats + 1):
        for name, module in modules.items():
            seconds, parameters = run_once(IMPLS[name], module, data, epochs=args.epochs,
                                           dtype=args.dtype, device=args.device)
            result = results[name]
            result.add_run(seconds)
            result.parameters = parameters
            progress(f"[{round_}/{args.repeats}] {name:<19} {result.run_seconds[-1]:.4f} s/epoch "
                     f"(median of {len(seconds)} epochs; best so far {result.best:.4f})")
        parts = floor_mod.measure(m, 32, dtype=dtype, device=args.device, epochs=floor_epochs)
        floor.add_run(parts.pop("floor"))
        floor_with_gather.add_run(parts.pop("floor_with_gather"))
        for key, values in parts.items():
            floor_parts.setdefault(key, []).extend(values)
        progress(f"[{round_}/{args.repeats}] {'floor':<19} {floor.run_seconds[-1]:.4f} s/epoch")
        limit = limit_mod.measure(m, 32, dtype=dtype, device=args.device, previous=limit)
        progress(f"[{round_}/{args.repeats}] {'physical limit':<19} {limit['seconds_per_epoch']:.4f} s/epoch "
                 "(best peak GEMM rate and bandwidths so far)")

    reference = REFERENCE if REFERENCE in results else next(iter(results), None)
    X, Y = data[0], data[1]
    for result in results.values():
        result.final_cost = full_batch_cost(result.parameters, X, Y)
        result.difference = max_relative_difference(result.parameters, results[reference].parameters)

    ordered = list(results.values())
    print(f"{args.epochs} epochs x {args.repeats} rounds, {args.dtype}, {source.kind} data (m = {m}), "
          f"torch threads {torch.get_num_threads()}, device {args.device}"
          + (" (CUDA figures: torch rows and floor)" if args.device == "cuda" else ""))
    print(report.table(ordered, floor, reference, (floor_with_gather,), limit))
    for name, reason in skipped.items():
        print(f"skipped {name}: {reason}")

    scaling_rows = None
    if args.scaling:
        scaling_rows = scaling.measure(dtype=dtype, device=args.device, progress=progress)
        print(f"\nscaling of the torch port ({args.dtype}, {args.device}; best of 2 epochs, "
              "random data, m = 1080):")
        print(report.scaling_table(scaling_rows))

    if json_path is not None:
        settings = {"epochs": args.epochs, "repeats": args.repeats, "dtype": args.dtype,
                    "device": args.device, "threads": args.threads, "impls": args.impls,
                    "data": source.kind, "examples": m, "batch_size": 32,
                    "timing": "seconds per epoch from epoch-start to epoch-start, second epoch on; "
                              "see benchmarks/runner.py"}
        doc = report.document(ordered, floor, floor_parts, reference,
                              report.machine_info(args.device), settings, skipped, scaling_rows,
                              floor_with_gather, limit)
        atomic_write(json_path, lambda handle: handle.write(json.dumps(doc, indent=2).encode()))
        progress(f"wrote {json_path}")
    return 0


def _tf_device() -> str:
    tf = sys.modules.get("tensorflow")
    gpus = tf.config.list_physical_devices("GPU") if tf is not None else []
    return "gpu (TF placement)" if gpus else "cpu"


def entry(argv=None) -> int:
    return run_main(main, argv)
