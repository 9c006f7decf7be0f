"""Train the PyTorch port on SIGNS: ``python -m torch_port.train``.

Defaults are the tutorial's (1500 epochs, lr 0.0001, mini-batches of 32, data seed 3, TF1's
Adam). Weights start from TF's Glorot-uniform seed-1 draw, loaded from the stored copy in
``signs/initial_weights`` (no TensorFlow needed), or from ``--weights``.

``--impl`` picks one of the torch implementations of ``signs.implementations`` (each is
described under --impl below). The default, ``fast``, trains as ``idiomatic`` does without its
overhead (no autograd, DataLoader or allocations: torch_port/fast.py), with TF1's Adam fused
into one pass, which rounds differently; ``fast-exact`` does not fuse it and gives the
idiomatic loop's bits exactly; ``idiomatic`` is the readable nn.Module/DataLoader/autograd
loop; ``line-by-line`` the TF1 code translated line by line.

Faults (docs/errors.md): Ctrl-C (SIGINT) or SIGTERM finishes the epoch, saves
OUT/checkpoint.pt and exits 130 or 143 (continue with --resume); a file that cannot be written
is one error line and exit 3, the previous file kept; OUT is locked (OUT/run.lock) while a run
uses it, and a second run refuses with exit 4.
"""

from __future__ import annotations

import contextlib
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

from signs import flatten
from signs.cli import (
    ArgumentParser,
    add_data_arguments,
    add_training_arguments,
    non_negative_int,
    positive_int,
    run_main,
)
from signs.data import load_image, load_tutorial_arrays
from signs.errors import InputError
from signs.files import WriteError, atomic_write
from signs.implementations import DEFAULT_TORCH, get, names
from signs.plot import plot_costs
from signs.runs import Interrupted, OutputLock, StopRequest, signal_name
from signs.weights import load_initial_parameters, load_parameters, save_parameters
from torch_port import checkpoint as ckpt
from torch_port import model as line_by_line
from torch_port.fast import denormals_flushed
from torch_port.optim import OPTIMIZERS

METRICS_FORMAT_VERSION = 1
PROG = "python -m torch_port.train"


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(prog=PROG, description=__doc__)
    parser.add_argument("--impl", choices=names("torch"), default=DEFAULT_TORCH,
                        help="which torch implementation trains: "
                        + "; ".join(f"{name}: {get(name).label}" for name in names("torch"))
                        + f" (default: {DEFAULT_TORCH})")
    add_training_arguments(parser)
    parser.add_argument("--optimizer", choices=OPTIMIZERS, default="tf-adam",
                        help="tf-adam: TF1's Adam formula (default, matches the original); "
                        "keras-adam: Keras 3's (beta**t by pow); "
                        "adam: torch.optim.Adam (epsilon placed differently; not with the fast paths)")
    parser.add_argument("--epoch-cost", choices=("original", "mean"), default="original",
                        help="original: the tutorial's quirk, sum of batch costs / int(m / batch size) "
                        "(33 for 1080 / 32, though 34 batches run); mean: / batches run "
                        "(not with --impl line-by-line)")
    add_data_arguments(parser)
    parser.add_argument("--device", choices=("cpu", "cuda", "auto"), default="cpu",
                        help="where to train (default: cpu; auto: cuda when available)")
    parser.add_argument("--threads", type=positive_int, default=None,
                        help="CPU threads for torch (default: torch's choice)")
    parser.add_argument("--weights", default=None,
                        help="start from these weights (.npz, tutorial layout, e.g. from "
                        "python -m tf_original.export or a previous run) instead of Glorot seed 1")
    parser.add_argument("--out", default=None,
                        help="directory for costs.png, weights.npz, metrics.json and checkpoints "
                        "(written with --quiet too); locked while the run uses it")
    parser.add_argument("--checkpoint-every", type=non_negative_int, default=0, metavar="N",
                        help="write OUT/checkpoint.pt every N epochs (0: only on Ctrl-C or SIGTERM)")
    parser.add_argument("--on-write-error", choices=("stop", "continue"), default="stop",
                        help="when a periodic checkpoint cannot be written (a full disk): stop "
                        "(default, exit 3) or continue training without it (a warning line)")
    parser.add_argument("--resume", nargs="?", const="", default=None, metavar="CHECKPOINT",
                        help="continue from CHECKPOINT (default: OUT/checkpoint.pt)")
    parser.add_argument("--predict", default=None, metavar="IMAGE",
                        help="after training, classify this photo (resized to 64x64 RGB); "
                        "with --epochs 0 --weights W.npz it only classifies")
    parser.add_argument("--quiet", action="store_true",
                        help="no progress bar and no cost lines; the final summary still prints")
    return parser


def pick_device(name: str) -> str:
    """``cpu`` or ``cuda`` for ``--device`` (``auto``: cuda when torch sees one)."""
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise InputError("--device cuda: no CUDA device is available to torch; use --device cpu")
    return name


def check_arguments(args) -> Path | None:
    """Refuse combinations of options that cannot work (one line each); return ``--out``."""
    out = Path(args.out) if args.out else None
    if out is not None and out.exists() and not out.is_dir():
        raise InputError(f"--out {out}: exists and is not a directory")
    if (args.checkpoint_every or args.resume == "") and out is None:
        raise InputError("--checkpoint-every and --resume without a path need --out DIR")
    if args.epoch_cost != "original" and args.impl == "line-by-line":
        raise InputError("--epoch-cost mean cannot go with --impl line-by-line: the line-by-line port keeps "
                         "the original's computation")
    get(args.impl).check_optimizer(args.optimizer)
    return out


def run_settings(args) -> dict:
    """The settings a checkpoint records; resuming requires the same (``ckpt.SETTINGS``)."""
    return {"impl": args.impl, "optimizer_name": args.optimizer, "dtype": args.dtype,
            "epoch_cost": args.epoch_cost, "lr": args.lr, "batch_size": args.batch_size,
            "seed": args.seed, "num_epochs": args.epochs}


def load_resume(args, out: Path | None, settings: dict) -> dict | None:
    """The state to continue from (``--resume``), checked against this run's settings."""
    if args.resume is None:
        return None
    path = Path(args.resume) if args.resume else ckpt.default_checkpoint(out)
    saved = ckpt.load_checkpoint(path)
    ckpt.check_settings(path, saved["settings"], settings)
    return ckpt.resume_state(saved)


class EpochEnd:
    """The training function's ``on_epoch_end``: records the costs, writes the checkpoints,
    stops the run when a stop signal arrived.

    ``costs``: the epoch cost every 5 epochs, as the notebook's plot; recorded here whether or
    not the cost lines are printed (the tutorial records them only when it prints them).
    """

    def __init__(self, out: Path | None, settings: dict, every: int, stop: StopRequest,
                 on_write_error: str, costs: list):
        self.out, self.settings, self.every, self.stop = out, settings, every, stop
        self.on_write_error = on_write_error
        self.costs = list(costs)

    def __call__(self, epoch, epoch_cost, get_parameters, optimizer, _printed_costs):
        if epoch % 5 == 0:
            self.costs.append(epoch_cost)
        stopping = self.stop.requested
        if self.out is not None and (stopping or (self.every and (epoch + 1) % self.every == 0)):
            self.save(epoch, get_parameters, optimizer, stopping)
        if stopping:
            where = f"saved {ckpt.default_checkpoint(self.out)}; add --resume to the same command " \
                "to continue" if self.out else "no --out given, nothing saved"
            raise Interrupted(f"interrupted after epoch {epoch} ({signal_name(self.stop.signum)}): {where}",
                              self.stop.signum)

    def save(self, epoch, get_parameters, optimizer, stopping: bool) -> None:
        """Write ``OUT/checkpoint.pt`` for a run continuing at ``epoch + 1``; on a write failure,
        stop or (``--on-write-error continue``, periodic checkpoints only) warn and go on."""
        try:
            ckpt.save_checkpoint(ckpt.default_checkpoint(self.out), epoch=epoch + 1,
                                 parameters=get_parameters(), optimizer=optimizer, costs=self.costs,
                                 settings=self.settings)
        except WriteError as exc:
            if stopping:
                raise exc.adding(f"; interrupted after epoch {epoch} "
                                 f"({signal_name(self.stop.signum)}) without saving it") from None
            if self.on_write_error == "stop":
                raise exc.adding(f"; training stopped after epoch {epoch} (--on-write-error continue "
                                 "trains on without the checkpoint)") from None
            print(f"warning: {exc}; training goes on after epoch {epoch} (--on-write-error continue)",
                  file=sys.stderr)


def train(args, arrays, device: str, initial, resume, on_epoch_end: EpochEnd):
    """Run the chosen implementation; return its NumPy parameters."""
    options = {}
    if args.epoch_cost != "original":  # the line-by-line port takes no epoch_cost (refused above)
        options["epoch_cost"] = args.epoch_cost
    parameters, _ = get(args.impl).trainer()(
        arrays.X_train, arrays.Y_train, arrays.X_test, arrays.Y_test, learning_rate=args.lr,
        num_epochs=args.epochs, minibatch_size=args.batch_size, print_cost=not args.quiet,
        dtype=args.dtype, seed=args.seed, initial_parameters=initial, device=device,
        optimizer=args.optimizer, resume=resume, on_epoch_end=on_epoch_end, progress=not args.quiet,
        **options)
    return parameters


def accuracies(args, arrays, parameters) -> tuple[float, float]:
    """Train and test accuracy of ``parameters``."""
    return tuple(float(np.mean(line_by_line.predict(X.astype(args.dtype), parameters) == labels))
                 for X, labels in ((arrays.X_train, arrays.train_labels),
                                   (arrays.X_test, arrays.test_labels)))


def write_outputs(out: Path, args, metrics: dict, parameters, costs) -> list[Path]:
    """Write ``weights.npz``, ``costs.png`` (when costs were recorded), then ``metrics.json``;
    return the paths in the order the summary line names them."""
    weights = save_parameters(out / "weights.npz", parameters)
    plot = plot_costs(costs, args.lr, out / "costs.png", label=f"torch {args.impl}") if costs else None
    text = json.dumps(metrics, indent=2) + "\n"
    atomic_write(out / "metrics.json", lambda handle: handle.write(text.encode()))
    return [weights, out / "metrics.json", *([plot] if plot else [])]


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    # Before any parallel op, so torch's intra-op threads take the setting when they start; turned
    # off again on return (main also runs inside other processes: the tests, a notebook).
    with denormals_flushed(get(args.impl).options.get("flush_denormal", False)):
        return run(args, argv)


def run(args, argv) -> int:
    """The command, once its arguments are parsed: check, load, train, report, write."""
    device = pick_device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    out = check_arguments(args)
    image = load_image(args.predict) if args.predict else None  # fail before training, not after
    initial = load_parameters(args.weights) if args.weights else None
    weights_source = args.weights or "Glorot-uniform seed 1 (TF's draw, stored copy)"
    settings = run_settings(args)
    command = " ".join([PROG, *(sys.argv[1:] if argv is None else map(str, argv))])

    saving = "then saving a checkpoint" if out else "then stopping (no --out: nothing is saved)"
    with StopRequest(f"finishing this epoch, {saving}") as stop, \
            (OutputLock(out, command) if out else contextlib.nullcontext()):
        resume = load_resume(args, out, settings)  # under the lock: no run is writing it now
        arrays = load_tutorial_arrays(args.data_dir, args.data)
        on_epoch_end = EpochEnd(out, settings, args.checkpoint_every, stop, args.on_write_error,
                                resume["costs"] if resume else [])
        started = time.perf_counter()
        if args.epochs == 0 and resume is None:
            parameters = initial if initial is not None else load_initial_parameters(args.dtype)
        else:
            parameters = train(args, arrays, device, initial, resume, on_epoch_end)
        seconds = time.perf_counter() - started
        stop.notice = "finishing the outputs of the finished run"

        train_accuracy, test_accuracy = accuracies(args, arrays, parameters)
        costs = on_epoch_end.costs
        print(f"train accuracy {train_accuracy:.4f}  test accuracy {test_accuracy:.4f}  "
              f"({args.impl}, {args.epochs} epochs, {seconds:.1f} s, data: {arrays.kind})")
        if image is not None:
            column = flatten(image[None], np.dtype(args.dtype))
            label = int(line_by_line.predict(column, parameters)[0])
            print(f'{args.predict}: predicted class "{label}"')
        if out is not None:
            metrics = {"format_version": METRICS_FORMAT_VERSION, "implementation": args.impl,
                       **settings, "device": device, "data": arrays.kind,
                       "data_dir": str(arrays.source.directory), "weights_start": weights_source,
                       "costs_every_5_epochs": [float(c) for c in costs],
                       "final_cost": costs[-1] if costs else None,
                       "train_accuracy": train_accuracy, "test_accuracy": test_accuracy,
                       "seconds": seconds, "torch": torch.__version__,
                       "python": platform.python_version()}
            written = write_outputs(out, args, metrics, parameters, costs)
            print(f"wrote {', '.join(str(path) for path in written)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(run_main(main))
