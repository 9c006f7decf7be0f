"""Softmax, sigmoid, their losses, one-vs-all and multi-label training, in PyTorch.

The line-by-line twin of ``tf_original/classification.py``: same functions, same order, same
arguments, same ``(classes or labels, examples)`` layout as the tutorial, NumPy in and out.

* From scratch, written from the course notes' formulas: :func:`softmax`, :func:`hardmax`,
  :func:`sigmoid`, :func:`cross_entropy` (one-hot targets) and :func:`binary_cross_entropy`
  (multi-label targets). Natural logarithm, as both frameworks use.
* The framework's fused, numerically stable losses on logits, beside them:
  :func:`fused_softmax_cross_entropy` (``F.cross_entropy``) and
  :func:`fused_sigmoid_cross_entropy` (``F.binary_cross_entropy_with_logits``).
* Decisions: :func:`predict_one_vs_all` (the most confident binary classifier wins) and
  :func:`predict_multi_label` (every label whose probability reaches the threshold).
* Training, on the tutorial's architecture 12288 -> 25 -> 12 -> k with sigmoid outputs and
  binary cross-entropy, from the tutorial's initial weights, with its mini-batches and TF1's
  Adam (:class:`torch_port.optim.TFAdam`): :func:`model_sigmoid`, and on top of it
  :func:`one_vs_all` (six separate k = 1 nets, one per SIGNS class, each starting from the
  tutorial's ``W1``, ``W2`` and row ``c`` of ``W3``) and :func:`multi_label` (one k = 3 net
  for the shapes set of :mod:`signs.multilabel`, starting from the first 3 rows of ``W3``).

``python -m torch_port.classification`` trains the tutorial's softmax net, the six one-vs-all
nets and the multi-label net, and prints their accuracies.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from signs import accuracy_table, minibatch_indices
from signs.cli import run_main
from signs.errors import NonFiniteCost
from signs.multilabel import initial_parameters_for_outputs
from torch_port import model as tutorial
from torch_port.dtypes import torch_dtype
from torch_port.model import forward_propagation
from torch_port.optim import TFAdam

PARAMETER_NAMES = ("W1", "b1", "W2", "b2", "W3", "b3")
DEFAULT_EPOCHS = 30


def _tensor(a) -> torch.Tensor:
    """NumPy-like input -> tensor; float32/float64 kept, anything else becomes float64 (NumPy's default)."""
    a = np.asarray(a)
    if a.dtype not in (np.float32, np.float64):
        a = a.astype(np.float64)
    return torch.from_numpy(a)


def softmax(z):
    """From the formula ``a = e^z / sum(e^z)``, over axis 0 (classes): ``(C, m)`` or ``(C,)`` -> same shape.

    The column maximum is subtracted first: ``e^(z-c) / sum(e^(z-c))`` is the same number for
    any ``c``, and with ``c = max(z)`` no ``e^z`` can overflow.
    """
    z = _tensor(z)
    t = torch.exp(z - torch.amax(z, dim=0, keepdim=True))
    a = t / torch.sum(t, dim=0, keepdim=True)
    return a.numpy()


def hardmax(z):
    """1 at the arg-max of each column, 0 elsewhere: ``(C, m)`` or ``(C,)`` -> same shape and dtype."""
    z = _tensor(z)
    # F.one_hot puts the classes last, (m, C); movedim brings them back to axis 0
    q = F.one_hot(torch.argmax(z, dim=0), z.shape[0]).movedim(-1, 0).to(z.dtype)
    return q.numpy()


def sigmoid(z):
    """From the formula ``a = 1 / (1 + e^-z)``, element-wise; any shape."""
    z = _tensor(z)
    a = 1 / (1 + torch.exp(-z))
    return a.numpy()


def cross_entropy(y_hat, y):
    """``L = -sum_i y_i log(y_hat_i)`` over axis 0 (classes), natural log; ``(C, m)`` -> ``(m,)``.

    ``y`` one-hot (or any probability columns); ``y_hat`` probabilities (e.g. :func:`softmax`).
    ``xlogy`` is ``y * log(y_hat)`` with ``0 * log(0) = 0``, the usual convention.
    """
    y_hat, y = _tensor(y_hat), _tensor(y)
    loss = -torch.sum(torch.xlogy(y, y_hat), dim=0)
    return loss.numpy()


def binary_cross_entropy(y_hat, y):
    """``L = -sum_i [y_i log(a_i) + (1 - y_i) log(1 - a_i)]`` over axis 0 (labels), natural log.

    ``y`` multi-hot ``(k, m)``, ``y_hat`` per-label probabilities ``(k, m)`` -> ``(m,)``.
    """
    y_hat, y = _tensor(y_hat), _tensor(y)
    loss = -torch.sum(torch.xlogy(y, y_hat) + torch.xlogy(1 - y, 1 - y_hat), dim=0)
    return loss.numpy()


def fused_softmax_cross_entropy(logits, y):
    """``F.cross_entropy`` per example: softmax and cross-entropy in one stable op; ``(C, m)`` -> ``(m,)``.

    Twin of TF's ``softmax_cross_entropy_with_logits``. Both want examples first, so the
    ``(C, m)`` columns are transposed; ``F.cross_entropy`` takes a float target of the logits'
    shape as class probabilities, i.e. the one-hot rows TF takes.
    """
    logits, y = _tensor(logits), _tensor(y)
    loss = F.cross_entropy(logits.T, y.T, reduction="none")
    return loss.numpy()


def fused_sigmoid_cross_entropy(logits, y):
    """``F.binary_cross_entropy_with_logits`` summed over axis 0 (labels): ``(k, m)`` -> ``(m,)``.

    Twin of TF's ``sigmoid_cross_entropy_with_logits`` (element-wise, stable for any logit).
    """
    logits, y = _tensor(logits), _tensor(y)
    loss = torch.sum(F.binary_cross_entropy_with_logits(logits, y, reduction="none"), dim=0)
    return loss.numpy()


def predict_one_vs_all(scores):
    """The class whose binary classifier is most confident: arg-max over axis 0; ``(C, m)`` -> ``(m,)`` int64.

    ``scores``: row ``c`` is classifier ``c``'s logit or probability (same arg-max: the sigmoid
    is increasing; logits avoid ties where float probabilities saturate at 1).
    """
    p = torch.argmax(_tensor(scores), dim=0)
    return p.numpy()


def predict_multi_label(probabilities, threshold=0.5):
    """Every label whose probability is ``>= threshold``: ``(k, m)`` -> multi-hot ``(k, m)`` int64."""
    if not 0 < threshold < 1:
        raise ValueError(f"threshold must be in (0, 1), got {threshold}")
    p = (_tensor(probabilities) >= threshold).to(torch.int64)
    return p.numpy()


def compute_sigmoid_cost(Z3, Y):
    """Mean over examples of the binary cross-entropy summed over labels; ``Z3`` logits, ``Y`` ``(k, m)``.

    Element-wise, so no transpose is needed (the softmax cost transposes to (m, C)).
    """
    cost = torch.mean(torch.sum(F.binary_cross_entropy_with_logits(Z3, Y, reduction="none"), dim=0))
    return cost


def model_sigmoid(X_train, Y_train, initial_parameters, learning_rate=0.0001, num_epochs=DEFAULT_EPOCHS,
                  minibatch_size=32, *, dtype="float32", seed=3, hook=None):
    """Train 12288 -> 25 -> 12 -> k with ``k`` sigmoid outputs and binary cross-entropy.

    ``X_train`` (12288, m), multi-hot ``Y_train`` (k, m), NumPy, ``(features, examples)``.
    ``initial_parameters``: NumPy ``W1`` (25, 12288), ``b1`` (25, 1), ``W2`` (12, 25), ``b2``
    (12, 1), ``W3`` (k, 12), ``b3`` (k, 1), e.g. from
    :func:`signs.multilabel.initial_parameters_for_outputs`. The loop is the tutorial's:
    epoch ``e`` (from 0) shuffles with ``seed + e + 1`` (:func:`signs.minibatch_indices`), one
    TF1-Adam step per mini-batch, and the epoch cost is the sum of the mini-batch costs over
    ``int(m / minibatch_size)`` (the original's quirk, kept; at least 1).

    Returns ``(parameters, costs)``: NumPy arrays in the same layout, one cost per epoch.
    ``hook(record)`` after every step: ``epoch``, ``step`` (from 1), ``cost`` (float, before the
    update) and ``params`` (dict of NumPy arrays, after the update).
    """
    dtype = torch_dtype(dtype)
    X = torch.as_tensor(np.asarray(X_train), dtype=dtype)
    Y = torch.as_tensor(np.asarray(Y_train), dtype=dtype)
    (n_x, m) = X.shape
    costs = []

    # No placeholders (eager); the parameters are leaf tensors holding the given values.
    parameters = {name: torch.tensor(np.asarray(initial_parameters[name]), dtype=dtype, requires_grad=True)
                  for name in PARAMETER_NAMES}
    adam = TFAdam(parameters.values(), lr=learning_rate)

    step = 0
    for epoch in range(num_epochs):
        epoch_cost = 0.
        num_minibatches = max(int(m / minibatch_size), 1)
        seed = seed + 1
        for k, indices in enumerate(minibatch_indices(m, minibatch_size, seed)):
            indices = torch.from_numpy(indices)
            adam.zero_grad()
            Z3 = forward_propagation(X[:, indices], parameters)
            cost = compute_sigmoid_cost(Z3, Y[:, indices])
            cost.backward()
            adam.step()
            minibatch_cost = cost.item()
            if not np.isfinite(minibatch_cost):
                raise NonFiniteCost(epoch, k + 1, minibatch_cost)
            step += 1
            if hook is not None:
                hook({"epoch": epoch, "step": step, "cost": minibatch_cost,
                      "params": {n: p.detach().numpy().copy() for n, p in parameters.items()}})
            epoch_cost += minibatch_cost / num_minibatches
        costs.append(epoch_cost)

    parameters = {name: value.detach().numpy() for name, value in parameters.items()}
    return parameters, costs


def one_vs_all(X_train, Y_train, learning_rate=0.0001, num_epochs=DEFAULT_EPOCHS, minibatch_size=32, *,
               dtype="float32", seed=3, hook=None):
    """Six (``C``) separate binary classifiers, classifier ``c`` trained on "class ``c`` or not".

    ``X_train`` (12288, m), one-hot ``Y_train`` (C, m). Classifier ``c`` is a k = 1 net
    (:func:`model_sigmoid`) fitted to row ``c`` of ``Y_train``, starting from the tutorial's
    ``W1``, ``W2`` and row ``c`` of its ``W3``. Each sees the same mini-batches (same ``seed``).
    Returns ``(classifiers, costs)``: ``C`` parameter dicts and ``C`` cost lists. ``hook``
    receives :func:`model_sigmoid`'s records with ``classifier`` (``c``) added.
    """
    classifiers, costs = [], []
    for c in range(Y_train.shape[0]):
        record_hook = None if hook is None else (lambda record, c=c: hook({"classifier": c, **record}))
        initial = initial_parameters_for_outputs([c], dtype)
        parameters, cost = model_sigmoid(X_train, Y_train[c:c + 1], initial, learning_rate, num_epochs,
                                         minibatch_size, dtype=dtype, seed=seed, hook=record_hook)
        classifiers.append(parameters)
        costs.append(cost)
    return classifiers, costs


def multi_label(X_train, Y_train, learning_rate=0.0001, num_epochs=DEFAULT_EPOCHS, minibatch_size=32, *,
                dtype="float32", seed=3, hook=None):
    """One net with ``k`` sigmoid outputs for multi-hot ``Y_train`` (k, m); ``X_train`` (12288, m).

    Starts from the tutorial's ``W1``, ``W2`` and the first ``k`` rows of ``W3``; returns
    :func:`model_sigmoid`'s ``(parameters, costs)``.
    """
    initial = initial_parameters_for_outputs(Y_train.shape[0], dtype)
    return model_sigmoid(X_train, Y_train, initial, learning_rate, num_epochs, minibatch_size,
                         dtype=dtype, seed=seed, hook=hook)


def output_logits(X, parameters):
    """The forward pass ``Z3`` (k, m) of ``X`` (12288, m) under NumPy ``parameters``, as NumPy."""
    dtype = torch.from_numpy(np.asarray(parameters["W1"])[:0]).dtype
    params = {name: torch.as_tensor(np.asarray(parameters[name]), dtype=dtype) for name in PARAMETER_NAMES}
    x = torch.as_tensor(np.asarray(X), dtype=dtype)
    with torch.no_grad():
        z3 = forward_propagation(x, params)
    return z3.numpy()


def main(argv=None) -> int:
    """The command line: train, print the accuracy table (see :mod:`signs.accuracy_table`)."""
    side = accuracy_table.Side(
        framework="PyTorch", prog="python -m torch_port.classification",
        default_epochs=DEFAULT_EPOCHS,
        model=tutorial.model, predict=tutorial.predict, one_vs_all=one_vs_all,
        predict_one_vs_all=predict_one_vs_all, output_logits=output_logits, multi_label=multi_label,
        predict_multi_label=predict_multi_label, sigmoid=sigmoid)
    return accuracy_table.main(side, argv)


if __name__ == "__main__":
    raise SystemExit(run_main(main))
