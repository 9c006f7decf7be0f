"""``python -m parity report``: run two implementations side by side and print how close they are.

Prints a table (quantity x max abs diff / max rel diff / step / tolerance / ok) and a one-line
verdict; ``--json`` and ``--plot`` write the per-step figures. Exit 0 within tolerance, 1 not,
2 on bad input.
"""

from __future__ import annotations

import json
import sys

from parity.compare import MODES, Comparison, compare
from parity.tolerances import tolerances_for
from parity.trace import Data, RunConfig, Trace, run
from signs import implementations
from signs.cli import (
    ArgumentParser,
    add_data_arguments,
    add_training_arguments,
    native_stderr_silenced,
    positive_int,
)
from signs.data import load_tutorial_arrays
from signs.errors import InputError
from signs.files import atomic_write

NAMES = implementations.NAMES
DEFAULT_PAIR = "tf1:line-by-line"


def parse_pair(text: str) -> tuple[str, str]:
    parts = text.split(":")
    if len(parts) != 2 or not all(p in NAMES for p in parts) or parts[0] == parts[1]:
        raise InputError(f"--pair {text!r}: expected A:B, two different of {', '.join(NAMES)} "
                         f"(e.g. {DEFAULT_PAIR})")
    return parts[0], parts[1]


def run_pair(pair, data: Data, config: RunConfig, mode: str) -> tuple[Trace, Trace]:
    """Reference trace of ``pair[0]`` and the trace of ``pair[1]`` in ``mode``."""
    reference = run(pair[0], data, config)
    other = run(pair[1], data, config, teacher=reference if mode == "teacher-forced" else None)
    return reference, other


def to_json(pair, config: RunConfig, mode: str, data_kind: str, result: Comparison) -> dict:
    """The report's JSON: the comparison's figures with the run's settings."""
    return result.to_json(pair=list(pair), config={
        "lr": config.lr, "batch_size": config.batch_size, "seed": config.seed,
        "torch_optimizer": config.torch_optimizer, "device": config.device, "data": data_kind})


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(prog="python -m parity report", description=__doc__)
    parser.add_argument("--steps", type=positive_int, default=34,
                        help="training steps to compare (default: 34, one epoch of the tutorial)")
    add_training_arguments(parser, default_epochs=None, default_dtype="float64")
    parser.add_argument("--mode", choices=MODES, default="teacher-forced",
                        help="teacher-forced: reset B to A's state after every step (per-step error); "
                        "free-running: both train on their own (accumulated drift)")
    parser.add_argument("--pair", default=DEFAULT_PAIR,
                        help=f"A:B, the reference first; of {', '.join(NAMES)} (default {DEFAULT_PAIR}; "
                        f"the torch CLI's default is {implementations.DEFAULT_TORCH})")
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
    data = load_tutorial_arrays(args.data_dir, data_kind, notify=notes.append)
    if any(implementations.get(p).framework == "tensorflow" for p in pair):
        try:
            with native_stderr_silenced():
                import tensorflow  # noqa: F401
        except ImportError:
            raise InputError(f"--pair {args.pair}: TensorFlow is not installed; install the 'tensorflow' "
                             "extra, or compare two torch implementations (e.g. line-by-line:fast), "
                             "or use the golden traces (pytest parity -k golden)") from None
    optimizer = args.torch_optimizer or implementations.torch_optimizer_for(pair)
    config = RunConfig(steps=args.steps, dtype=args.dtype, lr=args.lr, batch_size=args.batch_size,
                       seed=args.seed, torch_optimizer=optimizer, device=args.device)
    for line in notes:
        print(line, file=sys.stderr)
    print(f"comparing {pair[0]} (reference) with {pair[1]}: {args.steps} steps, {args.dtype}, {args.mode}, "
          f"torch optimizer {optimizer}, lr {args.lr}, batch {args.batch_size}, seed {args.seed}, "
          f"data {data.kind}", file=sys.stderr)
    reference, other = run_pair(pair, data, config, args.mode)
    result = compare(reference, other, tolerances_for(args.dtype, args.mode, pair, args.lr),
                     label=f"{pair[0]} vs {pair[1]}", mode=args.mode)
    print(result.table())
    if not result.batches_match:
        print("the two sides did not see the same mini-batches")
    print(result.verdict())
    if args.json:
        text = json.dumps(to_json(pair, config, args.mode, data.kind, result), indent=1) + "\n"
        atomic_write(args.json, lambda handle: handle.write(text.encode()))
    if args.plot:
        result.plot(args.plot)
    return 0 if result.passed else 1
