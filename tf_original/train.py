"""Train the TensorFlow original on SIGNS: ``python -m tf_original.train``.

Runs the TF1 graph of the notebook (``--impl tf1``, default) or its TF2/Keras twin
(``--impl keras``) with the tutorial's defaults, prints the cost schedule and the train/test
accuracy, and saves the cost plot.
"""

from __future__ import annotations

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
from signs.plot import plot_costs
from signs.weights import load_parameters, save_parameters


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(prog="python -m tf_original.train", description=__doc__)
    parser.add_argument("--impl", choices=("tf1", "keras"), default="tf1",
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
    arrays = load_tutorial_arrays(args.data, args.data_dir)
    X_train, Y_train, X_test, Y_test = arrays.X_train, arrays.Y_train, arrays.X_test, arrays.Y_test

    with native_stderr_silenced():  # TensorFlow loads only once the input is good, quietly
        from tf_original import keras_model, model

    started = time.perf_counter()
    train = model.model if args.impl == "tf1" else keras_model.train
    parameters, costs = train(X_train, Y_train, X_test, Y_test, learning_rate=args.lr,
                              num_epochs=args.epochs, minibatch_size=args.batch_size,
                              print_cost=not args.quiet, dtype=args.dtype, seed=args.seed,
                              initial_parameters=initial)
    seconds = time.perf_counter() - started
    accuracies = [float(np.mean(model.predict(X.astype(args.dtype), parameters) == y.reshape(-1)))
                  for X, y in ((X_train, arrays.train_labels), (X_test, arrays.test_labels))]
    print(f"train accuracy {accuracies[0]:.4f}  test accuracy {accuracies[1]:.4f}  "
          f"({args.impl}, {args.epochs} epochs, {seconds:.1f} s, data: {arrays.kind})")
    if args.plot:
        if costs:
            print(f"wrote {plot_costs(costs, args.lr, args.plot, label=f'TF {args.impl}')}")
        else:
            print("no costs recorded (0 epochs, or --quiet): no plot written", file=sys.stderr)
    if args.save_weights:
        print(f"wrote {save_parameters(args.save_weights, parameters)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(run_main(main))
