"""Whole processes, as a user runs them: ``python -m benchmarks.process``.

Times the commands people type, start-up included, in paired rounds (A B A B ...: every
command once per round, in turn, so a slow spell hits them all alike) and reports the median
wall time of each and its ratio to the TF1 original's:

* ``python -m tf_original.train --epochs N --quiet`` (the original),
* ``python -m torch_port.train --epochs N --quiet`` (the default: ``--impl fast``),
* the same with ``--impl fast-exact``, ``--impl idiomatic`` and ``--impl line-by-line``;

and start-up on its own: ``python -c "import torch"`` and a one-epoch ``torch_port.train``
process (``import torch`` + the rest of the imports + data load + the first epoch + the
evaluation). Then it runs the original and the default once more without ``--quiet`` and
checks that the last epoch cost both print agrees within the float32 parity tolerance
(``parity/tolerances.py``, free-running cost), so speed never hides a numerical change.
"""

from __future__ import annotations

import json
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

from tabulate import tabulate

from signs.cli import ArgumentParser, positive_int, run_main
from signs.errors import InputError
from signs.files import atomic_write

ROOT = Path(__file__).resolve().parent.parent
PRINTED_COST = re.compile(r"^Cost after epoch (\d+): (\S+)$", re.M)
TORCH = ("fast", "fast-exact", "idiomatic", "line-by-line")
DEFAULT_TORCH_ROW = "torch_port.train (default: fast)"


def commands(epochs: int, impls: tuple[str, ...]) -> dict[str, list[str]]:
    """Row name -> argv of the timed commands."""
    python = sys.executable
    rows = {"tf_original.train (tf1)":
            [python, "-m", "tf_original.train", "--epochs", str(epochs), "--quiet"]}
    for impl in impls:
        name = DEFAULT_TORCH_ROW if impl == "fast" else f"torch_port.train --impl {impl}"
        argv = [python, "-m", "torch_port.train", "--epochs", str(epochs), "--quiet"]
        rows[name] = argv if impl == "fast" else argv + ["--impl", impl]
    return rows


def wall_seconds(argv: list[str], env: dict) -> float:
    """Wall time of one process; a failing command is a one-line error."""
    start = time.perf_counter()
    done = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise InputError(f"{' '.join(argv[1:])} exited {done.returncode}: {last}")
    return seconds


def last_printed_cost(argv: list[str], env: dict) -> tuple[int, float]:
    """Run ``argv`` without ``--quiet``; the last ``Cost after epoch E: C`` it prints."""
    done = subprocess.run([a for a in argv if a != "--quiet"], cwd=ROOT, env=env, capture_output=True,
                          text=True)
    found = PRINTED_COST.findall(done.stdout)
    if done.returncode != 0 or not found:
        raise InputError(f"{' '.join(argv[1:])}: no cost line printed (exit {done.returncode})")
    epoch, cost = found[-1]
    return int(epoch), float(cost)


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(prog="python -m benchmarks.process", description=__doc__)
    parser.add_argument("--epochs", type=positive_int, default=300, help="epochs per run (default: 300)")
    parser.add_argument("--repeats", type=positive_int, default=3,
                        help="paired rounds; the median of each command is reported (default: 3)")
    parser.add_argument("--impls", default=",".join(TORCH),
                        help=f"torch implementations to time, comma-separated (default: {','.join(TORCH)})")
    parser.add_argument("--json", default=None, metavar="PATH", help="also write the figures as JSON")
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    impls = tuple(name.strip() for name in args.impls.split(",") if name.strip())
    unknown = [name for name in impls if name not in TORCH]
    if not impls or unknown:
        raise InputError(f"--impls {args.impls!r}: expected a comma-separated subset of {', '.join(TORCH)}")
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONDONTWRITEBYTECODE="1")
    rows = commands(args.epochs, impls)
    startup = {"python -c 'import torch'": [sys.executable, "-c", "import torch"],
               "torch_port.train --epochs 1 --quiet": [sys.executable, "-m", "torch_port.train", "--epochs",
                                                       "1", "--quiet"]}
    seconds: dict[str, list[float]] = {name: [] for name in {**rows, **startup}}
    for round_ in range(1, args.repeats + 1):
        for name, command in {**startup, **rows}.items():
            seconds[name].append(wall_seconds(command, env))
            print(f"[{round_}/{args.repeats}] {name}: {seconds[name][-1]:.2f} s", file=sys.stderr, flush=True)
    median = {name: statistics.median(values) for name, values in seconds.items()}
    original = median["tf_original.train (tf1)"]
    table = [[name, median[name], median[name] / original] for name in rows]
    print(f"{args.epochs} epochs, median of {args.repeats} paired rounds, start-up included, "
          f"torch threads: torch's default, OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}")
    print(tabulate(table, headers=["command (--quiet)", "wall s", "x tf1"], floatfmt=("", ".2f", ".3f")))
    import_torch = median["python -c 'import torch'"]
    one_epoch = median["torch_port.train --epochs 1 --quiet"]
    print(f"start-up: import torch {import_torch:.2f} s; a one-epoch torch_port.train process "
          f"{one_epoch:.2f} s (import torch + {one_epoch - import_torch:.2f} s)")
    tf_epoch, tf_cost = last_printed_cost(rows["tf_original.train (tf1)"], env)
    torch_cost = last_printed_cost(rows[DEFAULT_TORCH_ROW], env)[1] if "fast" in impls else None
    if torch_cost is not None:
        from parity.tolerances import FLOAT32_FREE_RUNNING

        relative, bound = abs(torch_cost - tf_cost) / abs(tf_cost), FLOAT32_FREE_RUNNING["cost"]
        print(f"last printed cost (epoch {tf_epoch}): tf1 {tf_cost:.6f}, default torch {torch_cost:.6f}: "
              f"relative difference {relative:.1e}, {'within' if relative <= bound else 'OUTSIDE'} the "
              f"float32 free-running tolerance {bound:.0e}")
    if args.json:
        document = {"epochs": args.epochs, "repeats": args.repeats, "seconds": seconds, "median": median,
                    "ratio_to_tf1": {name: median[name] / original for name in rows},
                    "import_torch": import_torch, "one_epoch_process": one_epoch,
                    "last_printed_cost": {"epoch": tf_epoch, "tf1": tf_cost, "fast": torch_cost}}
        text = json.dumps(document, indent=2) + "\n"
        atomic_write(args.json, lambda handle: handle.write(text.encode()))
    return 0


if __name__ == "__main__":
    raise SystemExit(run_main(main))
