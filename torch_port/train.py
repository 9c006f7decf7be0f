"""Train the PyTorch port on SIGNS: ``python -m torch_port.train``.

Defaults are the tutorial's (1500 epochs, lr 0.0001, mini-batches of 32, data seed 3, TF1's
Adam). Weights start from TF's Glorot-uniform seed-1 draw, loaded from the stored copy in
``signs/initial_weights`` (no TensorFlow needed), or from ``--weights``.
"""

from __future__ import annotations

import json
import platform
import signal
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
from signs.files import atomic_write
from signs.plot import plot_costs
from signs.weights import load_parameters, save_parameters
from torch_port import checkpoint as ckpt
from torch_port import model as line_by_line
from torch_port import nn_model
from torch_port.optim import OPTIMIZERS

METRICS_FORMAT_VERSION = 1


class Interrupted(InputError):
    """Ctrl-C: a checkpoint was saved; the run can be resumed."""


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(
        prog="python -m torch_port.train", description=__doc__)
    parser.add_argument("--impl", choices=("line-by-line", "idiomatic"), default="line-by-line",
                        help="line-by-line twin of the TF code (default) or nn.Module/DataLoader version")
    add_training_arguments(parser)
    parser.add_argument("--optimizer", choices=OPTIMIZERS, default="tf-adam",
                        help="tf-adam: TF1's Adam formula (default, matches the original); "
                        "keras-adam: Keras 3's (beta**t by pow); "
                        "adam: torch.optim.Adam (epsilon placed differently)")
    parser.add_argument("--epoch-cost", choices=("original", "mean"), default="original",
                        help="original: the tutorial's quirk, sum of batch costs / int(m / batch size) "
                        "(33 for 1080 / 32, though 34 batches run); mean: / batches run "
                        "(--impl idiomatic only)")
    parser.add_argument("--plain-loop", action="store_true",
                        help="--impl idiomatic: use the readable nn.Module/autograd loop instead of the "
                        "bit-identical fast path (torch_port/fast.py); the fast path is the default "
                        "except with --optimizer adam")
    add_data_arguments(parser)
    parser.add_argument("--device", choices=("cpu", "cuda", "auto"), default="cpu",
                        help="where to train (default: cpu; auto: cuda when available)")
    parser.add_argument("--threads", type=positive_int, default=None,
                        help="CPU threads for torch (default: torch's choice)")
    parser.add_argument("--weights", default=None,
                        help="start from these weights (.npz, tutorial layout, e.g. from "
                        "python -m tf_original.export or a previous run) instead of Glorot seed 1")
    parser.add_argument("--out", default=None,
                        help="directory for costs.png, weights.npz, metrics.json and checkpoints")
    parser.add_argument("--checkpoint-every", type=non_negative_int, default=0, metavar="N",
                        help="write OUT/checkpoint.pt every N epochs (0: only on Ctrl-C)")
    parser.add_argument("--resume", nargs="?", const="", default=None, metavar="CHECKPOINT",
                        help="continue from CHECKPOINT (default: OUT/checkpoint.pt)")
    parser.add_argument("--predict", default=None, metavar="IMAGE",
                        help="after training, classify this photo (resized to 64x64 RGB); "
                        "with --epochs 0 --weights W.npz it only classifies")
    parser.add_argument("--quiet", action="store_true",
                        help="no progress bar and no cost lines; the final summary still prints")
    return parser


def pick_device(name: str) -> str:
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise InputError("--device cuda: no CUDA device is available to torch; use --device cpu")
    return name


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    device = pick_device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    out = Path(args.out) if args.out else None
    if out is not None and out.exists() and not out.is_dir():
        raise InputError(f"--out {out}: exists and is not a directory")
    if (args.checkpoint_every or args.resume == "") and out is None:
        raise InputError("--checkpoint-every and --resume without a path need --out DIR")
    if args.epoch_cost != "original" and args.impl != "idiomatic":
        raise InputError("--epoch-cost mean needs --impl idiomatic; the line-by-line port keeps the "
                         "original's computation")
    image = load_image(args.predict) if args.predict else None  # fail before training, not after

    settings = {"impl": args.impl, "optimizer_name": args.optimizer, "dtype": args.dtype,
                "epoch_cost": args.epoch_cost,
                "lr": args.lr, "batch_size": args.batch_size, "seed": args.seed,
                "num_epochs": args.epochs}
    resume = None
    if args.resume is not None:
        path = Path(args.resume) if args.resume else ckpt.default_checkpoint(out)
        saved = ckpt.load_checkpoint(path)
        ckpt.check_settings(path, saved["settings"], settings)
        resume = {"epoch": saved["epoch"], "costs": saved["costs"], "optimizer": saved["optimizer"],
                  "parameters": {k: v.numpy() for k, v in saved["parameters"].items()}}
    initial = load_parameters(args.weights) if args.weights else None
    weights_source = args.weights or "Glorot-uniform seed 1 (TF's draw, stored copy)"

    arrays = load_tutorial_arrays(args.data, args.data_dir)
    X_train, Y_train, X_test, Y_test = arrays.X_train, arrays.Y_train, arrays.X_test, arrays.Y_test

    interrupted = {"flag": False}

    def on_sigint(signum, frame):
        interrupted["flag"] = True
        print("\ninterrupt: finishing this epoch, then saving a checkpoint", file=sys.stderr)

    def on_epoch_end(epoch, epoch_cost, get_parameters, optimizer, costs):
        every = args.checkpoint_every
        due = every and (epoch + 1) % every == 0
        if out is not None and (due or interrupted["flag"]):
            ckpt.save_checkpoint(ckpt.default_checkpoint(out), epoch=epoch + 1,
                                 parameters=get_parameters(), optimizer=optimizer, costs=costs,
                                 settings=settings)
        if interrupted["flag"]:
            where = f"saved {ckpt.default_checkpoint(out)}; resume with --resume" if out \
                else "no --out given, nothing saved"
            raise Interrupted(f"interrupted after epoch {epoch}: {where}")

    previous = signal.signal(signal.SIGINT, on_sigint)
    started = time.perf_counter()
    if args.impl == "line-by-line":
        train = line_by_line.model
    else:
        # The fast path (torch_port/fast.py) runs the same kernels without autograd and with
        # preallocated buffers: the same bits, 1.6-2x faster. It implements TF1's Adam only.
        fast = args.optimizer != "adam" and not args.plain_loop

        def train(*arrays, **kwargs):
            return nn_model.train(*arrays, epoch_cost=args.epoch_cost, fast=fast, **kwargs)
    try:
        if args.epochs == 0 and resume is None:
            parameters, costs = (initial if initial is not None else
                                 line_by_line._numpy(line_by_line.initialize_parameters(args.dtype))), []
        else:
            parameters, costs = train(
                X_train, Y_train, X_test, Y_test, learning_rate=args.lr, num_epochs=args.epochs,
                minibatch_size=args.batch_size, print_cost=not args.quiet, dtype=args.dtype,
                seed=args.seed, initial_parameters=initial, device=device, optimizer=args.optimizer,
                resume=resume, on_epoch_end=on_epoch_end, progress=not args.quiet)
    finally:
        signal.signal(signal.SIGINT, previous)
    seconds = time.perf_counter() - started

    train_accuracy = float(np.mean(line_by_line.predict(X_train.astype(args.dtype), parameters)
                                   == arrays.train_labels))
    test_accuracy = float(np.mean(line_by_line.predict(X_test.astype(args.dtype), parameters)
                                  == arrays.test_labels))
    final_cost = costs[-1] if costs else None
    print(f"train accuracy {train_accuracy:.4f}  test accuracy {test_accuracy:.4f}  "
          f"({args.impl}, {args.epochs} epochs, {seconds:.1f} s, data: {arrays.kind})")
    if image is not None:
        column = flatten(image[None], np.dtype(args.dtype))
        label = int(line_by_line.predict(column, parameters)[0])
        print(f'{args.predict}: predicted class "{label}"')
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        save_parameters(out / "weights.npz", parameters)
        if costs:
            plot_costs(costs, args.lr, out / "costs.png", label=f"torch {args.impl}")
        metrics = {"format_version": METRICS_FORMAT_VERSION, "implementation": f"torch {args.impl}",
                   **settings, "device": device, "data": arrays.kind,
                   "data_dir": str(arrays.source.directory), "weights_start": weights_source,
                   "costs_every_5_epochs": [float(c) for c in costs], "final_cost": final_cost,
                   "train_accuracy": train_accuracy, "test_accuracy": test_accuracy,
                   "seconds": seconds, "torch": torch.__version__, "python": platform.python_version()}
        text = json.dumps(metrics, indent=2) + "\n"
        atomic_write(out / "metrics.json", lambda handle: handle.write(text.encode()))
        print(f"wrote {out / 'weights.npz'}, {out / 'metrics.json'}"
              + (f", {out / 'costs.png'}" if costs else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(run_main(main))
