"""Train the TensorFlow original on SIGNS: ``python -m tf_original.train``.

Runs the TF1 graph of the notebook (``--impl tf1``, default) or its TF2/Keras twin
(``--impl keras``) with the tutorial's defaults, prints the cost schedule and the train/test
accuracy, and saves the cost plot.

Faults (docs/errors.md): these runs keep no checkpoint, so Ctrl-C (SIGINT) or SIGTERM stops
training at the end of the current epoch, writes nothing and exits 130 or 143 with one line (a
signal during the last epoch lets the run finish and write its outputs); a ``--plot`` or
``--save-weights`` file that cannot be written is one line and exit 3, the previous file kept.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import itertools
import sys
import time

import numpy as np

from signs.cli import (
    ArgumentParser,
    add_data_arguments,
    add_training_arguments,
    native_stderr_silenced,
    run_main,
)
from signs.data import load_tutorial_arrays
from signs.implementations import REFERENCE, get, names
from signs.plot import plot_costs
from signs.runs import Interrupted, StopRequest, signal_name
from signs.weights import load_parameters, save_parameters


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(prog="python -m tf_original.train", description=__doc__)
    parser.add_argument("--impl", choices=names("tensorflow"), default=REFERENCE,
                        help="tf1: the notebook's graph/session code (default); keras: the TF2 twin")
    add_training_arguments(parser)
    add_data_arguments(parser)
    parser.add_argument("--weights", default=None,
                        help="start from these weights (.npz, tutorial layout) instead of Glorot seed 1")
    parser.add_argument("--plot", default=None, metavar="PATH", help="save the cost plot (PNG) here")
    parser.add_argument("--save-weights", default=None, metavar="PATH",
                        help="save the trained weights (.npz, tutorial layout) here")
    parser.add_argument("--quiet", action="store_true", help="no cost lines; the summary still prints")
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    initial = load_parameters(args.weights) if args.weights else None
    impl = get(args.impl)
    with StopRequest("stopping at the end of this epoch; nothing will be written") as stop:
        arrays = load_tutorial_arrays(args.data_dir, args.data)
        X_train, Y_train, X_test, Y_test = arrays.X_train, arrays.Y_train, arrays.X_test, arrays.Y_test
        with native_stderr_silenced():  # TensorFlow loads only once the input is good, quietly
            module = impl.load()
            from tf_original import model
        stop_if_requested(stop, args.impl, "before training")

        started = time.perf_counter()
        with stopping_between_epochs(impl, stop):
            costs, parameters = train(impl.trainer(module), args, X_train, Y_train, X_test, Y_test, initial)
        seconds = time.perf_counter() - started
        stop.notice = "finishing the outputs of the finished run"
        accuracies = [float(np.mean(model.predict(X.astype(args.dtype), parameters) == y.reshape(-1)))
                      for X, y in ((X_train, arrays.train_labels), (X_test, arrays.test_labels))]
        print(f"train accuracy {accuracies[0]:.4f}  test accuracy {accuracies[1]:.4f}  "
              f"({args.impl}, {args.epochs} epochs, {seconds:.1f} s, data: {arrays.kind})")
        if args.plot:
            if costs:
                print(f"wrote {plot_costs(costs, args.lr, args.plot, label=f'TF {args.impl}')}")
            else:
                print("no costs recorded (0 epochs): no plot written", file=sys.stderr)
        if args.save_weights:
            print(f"wrote {save_parameters(args.save_weights, parameters)}")
    return 0


def train(function, args, X_train, Y_train, X_test, Y_test, initial):
    """Run the TensorFlow training function; return ``(costs, parameters)``.

    The tutorial records the costs only when it prints them: it is always asked to print, and
    with ``--quiet`` what it prints is dropped, so the plot is the same either way.
    """
    quiet = contextlib.redirect_stdout(io.StringIO()) if args.quiet else contextlib.nullcontext()
    with quiet:
        parameters, costs = function(X_train, Y_train, X_test, Y_test, learning_rate=args.lr,
                                     num_epochs=args.epochs, minibatch_size=args.batch_size,
                                     print_cost=True, dtype=args.dtype, seed=args.seed,
                                     initial_parameters=initial)
    return costs, parameters


def stop_if_requested(stop: StopRequest, impl: str, when: str) -> None:
    """Raise :class:`~signs.runs.Interrupted` (one line, exit 128 + signal) if a stop signal came."""
    if stop.requested:
        raise Interrupted(f"interrupted {when} ({signal_name(stop.signum)}): {impl} runs keep no "
                          "checkpoint, nothing was written; run the command again", stop.signum)


@contextlib.contextmanager
def stopping_between_epochs(impl, stop: StopRequest):
    """While the block runs, stop training at the start of the epoch after a stop signal.

    The TensorFlow training functions take no epoch callback; the registry names the function
    each calls exactly once at the start of every epoch (``impl.epoch_marker``, the one the
    benchmark's clock wraps), so a wrapper around it checks ``stop`` there.
    """
    module_name, _, name = impl.epoch_marker.rpartition(".")
    module = importlib.import_module(module_name)
    real = getattr(module, name)
    epochs = itertools.count()

    def marker(*args, **kwargs):
        epoch = next(epochs)
        stop_if_requested(stop, impl.name, f"after epoch {epoch - 1}" if epoch else "before training")
        return real(*args, **kwargs)

    setattr(module, name, marker)
    try:
        yield
    finally:
        setattr(module, name, real)


if __name__ == "__main__":
    raise SystemExit(run_main(main))
