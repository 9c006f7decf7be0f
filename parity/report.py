"""``python -m parity report``: run two implementations side by side and print how close they are.

Prints a table (quantity x max abs diff / max rel diff / step / tolerance / ok) and a one-line
verdict; ``--json`` and ``--plot`` write the per-step figures. Exit 0 within tolerance, 1 not,
2 on bad input.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

from tabulate import tabulate

from parity.compare import Comparison, compare
from parity.tolerances import QUANTITIES, tolerances_for
from parity.trace import Data, RunConfig, Trace, default_torch_optimizer, run
from parity.transfer import IMPLEMENTATIONS
from signs.cli import (
    ArgumentParser,
    add_data_arguments,
    native_stderr_silenced,
    positive_float,
    positive_int,
)
from signs.data import load_tutorial_arrays
from signs.errors import InputError
from signs.files import atomic_write

REPORT_FORMAT_VERSION = 1
MODES = ("teacher-forced", "free-running")


def parse_pair(text: str) -> tuple[str, str]:
    parts = text.split(":")
    if len(parts) != 2 or not all(p in IMPLEMENTATIONS for p in parts) or parts[0] == parts[1]:
        raise InputError(f"--pair {text!r}: expected A:B, two different of {', '.join(IMPLEMENTATIONS)} "
                         "(e.g. tf1:torch)")
    return parts[0], parts[1]


def run_pair(pair, data: Data, config: RunConfig, mode: str) -> tuple[Trace, Trace]:
    """Reference trace of ``pair[0]`` and the trace of ``pair[1]`` in ``mode``."""
    reference = run(pair[0], data, config)
    other = run(pair[1], data, config, teacher=reference if mode == "teacher-forced" else None)
    return reference, other


def to_json(pair, config: RunConfig, mode: str, data_kind: str, result: Comparison) -> dict:
    """The report's JSON: :func:`comparison_json` with the run's settings."""
    return comparison_json(result, pair=list(pair), dtype=config.dtype, mode=mode,
                           config={"lr": config.lr, "batch_size": config.batch_size, "seed": config.seed,
                                   "torch_optimizer": config.torch_optimizer, "device": config.device,
                                   "data": data_kind})


def table(result: Comparison) -> str:
    return comparison_table(result)


def comparison_table(result: Comparison, quantities=None) -> str:
    """The table of any :class:`Comparison`: by default the quantities it has tolerances for
    (a plain-SGD comparison has no ``m``, ``v``), in the order of ``QUANTITIES``."""
    if quantities is None:
        quantities = [q for q in QUANTITIES if q in result.tolerances]
    rows = [[q, f"{result.worst_abs[q]:.3e}", f"{result.worst_rel[q]:.3e}", result.worst_step[q],
             f"{result.tolerances[q]:.0e}", "ok" if q not in result.failing else "FAIL"]
            for q in quantities]
    return tabulate(rows, headers=["quantity", "max abs diff", "max rel diff", "at step", "tolerance", "ok"])


def comparison_json(result: Comparison, **meta) -> dict:
    """The JSON figures of any :class:`Comparison` (the fields of :func:`to_json` that do not
    depend on the tutorial's run), with ``meta`` (e.g. ``dtype``, ``mode``, ``pair``) added."""
    def clean(x):
        return x if math.isfinite(x) else str(x)
    quantities = [q for q in QUANTITIES if q in result.tolerances]
    return {
        "format_version": REPORT_FORMAT_VERSION,
        "passed": result.passed,
        **meta,
        "steps_run": len(result.steps),
        "batches_match": result.batches_match,
        "tolerances": {q: result.tolerances[q] for q in quantities},
        "worst": {q: {"max_abs_diff": clean(result.worst_abs[q]), "max_rel_diff": clean(result.worst_rel[q]),
                      "step": result.worst_step[q]} for q in quantities},
        "failing": result.failing,
        "steps": [{"step": s.step, "cost_a": s.cost_a, "cost_b": s.cost_b,
                   "max_abs_diff": {q: clean(v) for q, v in s.abs.items()},
                   "max_rel_diff": {q: clean(v) for q, v in s.rel.items()}} for s in result.steps],
    }


def plot(result: Comparison, title: str, path) -> Path:
    """Each quantity's relative difference against the step, log scale, tolerances dashed."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(7, 4.5))
    for index, q in enumerate(QUANTITIES):
        points = [(s.step, s.rel[q]) for s in result.steps if q in s.rel]
        if not points:
            continue
        steps, values = zip(*points)
        color = f"C{index}"
        # A log axis cannot show 0: steps where both sides agree exactly are left as gaps.
        axes.plot(steps, [v if v > 0 else float("nan") for v in values], marker=".", color=color, label=q)
        axes.axhline(result.tolerances[q], color=color, linestyle="--", linewidth=0.7)
    axes.set_yscale("log")
    axes.set_xlabel("training step (gaps: bit-identical; dashed: tolerances)")
    axes.set_ylabel("max |a - b| / max |a|  (normwise)")
    axes.set_title(title)
    axes.legend(fontsize=8, ncol=3)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    plt.close(figure)
    atomic_write(path, lambda handle: handle.write(buffer.getvalue()))
    return Path(path)


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(prog="python -m parity report", description=__doc__)
    parser.add_argument("--steps", type=positive_int, default=34,
                        help="training steps to compare (default: 34, one epoch of the tutorial)")
    parser.add_argument("--seed", type=int, default=3,
                        help="data-order seed (default 3); the weights are always Glorot seed 1")
    parser.add_argument("--lr", type=positive_float, default=0.0001, help="learning rate (default 0.0001)")
    parser.add_argument("--batch-size", type=positive_int, default=32, help="mini-batch size (default 32)")
    parser.add_argument("--dtype", choices=("float32", "float64"), default="float64",
                        help="float64 (default: round-off-level parity) or float32 (the tutorial's)")
    parser.add_argument("--mode", choices=MODES, default="teacher-forced",
                        help="teacher-forced: reset B to A's state after every step (per-step error); "
                        "free-running: both train on their own (accumulated drift)")
    parser.add_argument("--pair", default="tf1:torch",
                        help=f"A:B, the reference first; of {', '.join(IMPLEMENTATIONS)} (default tf1:torch)")
    parser.add_argument("--torch-optimizer", choices=("tf-adam", "keras-adam", "adam"), default=None,
                        help="Adam on the torch side (default: the formula of the TF side: tf-adam, or "
                        "keras-adam against keras); 'adam' is torch.optim.Adam, to see the mismatch")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="device for torch")
    add_data_arguments(parser)
    parser.set_defaults(data=None)  # synthetic, unless --data-dir names a directory (then: auto)
    parser.add_argument("--json", default=None, metavar="PATH", help="write the figures as JSON here")
    parser.add_argument("--plot", default=None, metavar="PATH", help="plot per-step differences (PNG)")
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    pair = parse_pair(args.pair)
    if args.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise InputError("--device cuda: no CUDA device is available to torch; use --device cpu")
    # Load the data first, before TensorFlow (whose start-up logs would add lines to stderr), and
    # print its notes only once it loaded: a bad file gets exactly one error line.
    notes = []
    data_kind = args.data or ("auto" if args.data_dir is not None else "synthetic")
    data = load_tutorial_arrays(data_kind, args.data_dir, notify=notes.append)
    if any(p in ("tf1", "keras") for p in pair):
        try:
            with native_stderr_silenced():
                import tensorflow  # noqa: F401
        except ImportError:
            raise InputError(f"--pair {args.pair}: TensorFlow is not installed; install the 'tensorflow' "
                             "extra, or compare torch:torch-nn, or use the golden traces "
                             "(pytest parity -k golden)") from None
    optimizer = args.torch_optimizer or default_torch_optimizer(pair)
    config = RunConfig(steps=args.steps, dtype=args.dtype, lr=args.lr, batch_size=args.batch_size,
                       seed=args.seed, torch_optimizer=optimizer, device=args.device)
    for line in notes:
        print(line, file=sys.stderr)
    print(f"comparing {pair[0]} (reference) with {pair[1]}: {args.steps} steps, {args.dtype}, {args.mode}, "
          f"torch optimizer {optimizer}, lr {args.lr}, batch {args.batch_size}, seed {args.seed}, "
          f"data {data.kind}", file=sys.stderr)
    reference, other = run_pair(pair, data, config, args.mode)
    result = compare(reference, other, tolerances_for(args.dtype, args.mode, pair, args.lr))
    print(table(result))
    if not result.batches_match:
        print("the two sides did not see the same mini-batches")
    verdict = "PASS" if result.passed else "FAIL"
    detail = "every quantity within tolerance" if result.passed else \
        f"outside tolerance: {', '.join(result.failing) or 'mini-batches'}"
    print(f"{verdict}: {pair[0]} vs {pair[1]}, {args.dtype} {args.mode}, {len(result.steps)} steps: {detail}")
    if args.json:
        text = json.dumps(to_json(pair, config, args.mode, data.kind, result), indent=1) + "\n"
        atomic_write(args.json, lambda handle: handle.write(text.encode()))
    if args.plot:
        plot(result, f"{pair[0]} vs {pair[1]}, {args.dtype}, {args.mode}", args.plot)
    return 0 if result.passed else 1
