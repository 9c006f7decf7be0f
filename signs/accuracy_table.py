"""The accuracy table both sides' ``classification`` modules print (framework-free).

``python -m tf_original.classification`` and ``python -m torch_port.classification`` train the
tutorial's softmax net, six one-vs-all sigmoid nets and a multi-label net, then print their
accuracies. The work is the side's own, handed over as a :class:`Side` (its functions, by
name); the command line and the table are the same code for both.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from tabulate import tabulate

from signs.cli import ArgumentParser, add_data_arguments, add_training_arguments
from signs.data import flatten, load_tutorial_arrays
from signs.multilabel import SHAPES, load_multilabel


@dataclass(frozen=True)
class Side:
    """One framework's functions the table needs.

    ``model``/``predict``: the tutorial's softmax net (its ``model.model`` and ``model.predict``);
    ``one_vs_all``, ``predict_one_vs_all``, ``output_logits``, ``multi_label``,
    ``predict_multi_label``, ``sigmoid``: the side's ``classification`` functions.
    ``framework``: the name printed; ``prog``: the command; ``default_epochs``.
    """

    framework: str
    prog: str
    default_epochs: int
    model: Callable
    predict: Callable
    one_vs_all: Callable
    predict_one_vs_all: Callable
    output_logits: Callable
    multi_label: Callable
    predict_multi_label: Callable
    sigmoid: Callable


def main(side: Side, argv) -> int:
    """Parse ``argv``, train with ``side``'s functions, print the accuracy table; return the exit status."""
    parser = ArgumentParser(
        prog=side.prog,
        description=f"Train, in {side.framework}, the tutorial's softmax net and six one-vs-all sigmoid nets "
        "on SIGNS, and a multi-label sigmoid net on the synthetic shapes set; print their accuracies.")
    add_training_arguments(parser, default_epochs=side.default_epochs)
    add_data_arguments(parser)
    args = parser.parse_args(argv)
    rows = run_all(side, args)
    print(tabulate(rows, headers=("task", "model", "output / loss", "train acc.", "test acc."),
                   floatfmt=".3f"))
    return 0


def run_all(side: Side, args) -> list[list]:
    """Train the three models as ``args`` says; return the table rows (accuracies in [0, 1]).

    SIGNS: images flattened to ``(12288, m)``, one-hot labels ``(6, m)``. Shapes: 400 train and
    200 test pictures of :mod:`signs.multilabel`, flattened the same way, labels ``(3, m)``.
    """
    arrays = load_tutorial_arrays(args.data_dir, args.data)
    X_train, X_test = arrays.X_train.astype(args.dtype), arrays.X_test.astype(args.dtype)
    Y_train, Y_test = arrays.Y_train.astype(args.dtype), arrays.Y_test.astype(args.dtype)
    train_y, test_y = arrays.train_labels, arrays.test_labels
    options = {"dtype": args.dtype, "seed": args.seed}
    print(f"{side.framework}: {args.epochs} epochs, lr {args.lr}, mini-batches of {args.batch_size}, "
          f"{args.dtype}, SIGNS train {X_train.shape[1]} / test {X_test.shape[1]} images")

    splits = ((X_train, train_y), (X_test, test_y))
    parameters, _ = side.model(X_train, Y_train, X_test, Y_test, args.lr, args.epochs,
                               args.batch_size, print_cost=False, **options)
    softmax_accuracy = [np.mean(side.predict(X, parameters) == y.reshape(-1)) for X, y in splits]

    classifiers, _ = side.one_vs_all(X_train, Y_train, args.lr, args.epochs, args.batch_size, **options)
    def one_vs_all_predictions(X):
        return side.predict_one_vs_all(np.concatenate([side.output_logits(X, p) for p in classifiers]))
    ova_accuracy = [np.mean(one_vs_all_predictions(X) == y.reshape(-1)) for X, y in splits]

    shapes_train_x, shapes_train_y, shapes_test_x, shapes_test_y, _ = load_multilabel()
    S_train, S_test = flatten(shapes_train_x, args.dtype), flatten(shapes_test_x, args.dtype)
    parameters, _ = side.multi_label(S_train, shapes_train_y.astype(args.dtype), args.lr, args.epochs,
                                     args.batch_size, **options)
    predictions = [side.predict_multi_label(side.sigmoid(side.output_logits(S, parameters)))
                   for S in (S_train, S_test)]
    truths = (shapes_train_y, shapes_test_y)
    exact = [np.mean(np.all(p == y, axis=0)) for p, y in zip(predictions, truths)]
    per_label = [np.mean(p == y) for p, y in zip(predictions, truths)]

    shapes = "/".join(SHAPES)
    return [
        ["SIGNS, 6 classes", "softmax net (the tutorial)", "6 softmax / cross-entropy", *softmax_accuracy],
        ["SIGNS, 6 classes", "one-vs-all: 6 binary nets", "6 x 1 sigmoid / BCE", *ova_accuracy],
        [f"shapes ({shapes})", "multi-label net: all labels right", "3 sigmoid / BCE summed", *exact],
        [f"shapes ({shapes})", "multi-label net: per label", "3 sigmoid / BCE summed", *per_label],
    ]
