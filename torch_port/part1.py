"""Part 1 of the tutorial in PyTorch: the same snippets as ``tf_original/part1.py``.

PyTorch runs eagerly: there is no graph to build, no ``Session`` to run and no placeholder to
feed. Where the TF side creates a placeholder and feeds it, the port simply takes the value as
an argument; where the TF side runs a session, the port already has the result. Each function
returns NumPy values, as its twin does, with the same dtypes.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def loss_snippet():
    """``y_hat = 36``, ``y = 39``, ``loss = (y - y_hat)**2`` -> 9 (computed at once, no init step)."""
    y_hat = torch.tensor(36, dtype=torch.int32)
    y = torch.tensor(39, dtype=torch.int32)
    loss = (y - y_hat) ** 2
    return loss.numpy()


def constants_snippet():
    """``c = a * b`` with ``a = 2``, ``b = 10`` -> ``(str(c), value)``.

    Eager: the tensor already holds 20, and printing it shows the value.
    """
    a = torch.tensor(2, dtype=torch.int32)
    b = torch.tensor(10, dtype=torch.int32)
    c = torch.mul(a, b)
    printed = str(c)  # eager: printing shows the value, tensor(20, dtype=torch.int32)
    return printed, c.numpy()


def placeholder_snippet(value=3):
    """``2 * x`` for an int64 ``x = 3`` -> 6; the "placeholder" is just the function argument."""
    x = torch.tensor(value, dtype=torch.int64)
    return (2 * x).numpy()


def linear_function():
    """``Y = W X + b`` with NumPy seed 1 draws X (3, 1), W (4, 3), b (4, 1), in that order -> (4, 1)."""
    np.random.seed(1)
    X = torch.from_numpy(np.random.randn(3, 1))
    W = torch.from_numpy(np.random.randn(4, 3))
    b = torch.from_numpy(np.random.randn(4, 1))
    Y = torch.add(torch.matmul(W, X), b)
    result = Y.numpy()
    return result


def sigmoid(z):
    """Sigmoid of ``z`` as float32 (the TF twin's float32 placeholder)."""
    x = torch.as_tensor(z, dtype=torch.float32)
    sigmoid = torch.sigmoid(x)
    result = sigmoid.numpy()
    return result


def cost(logits, labels):
    """Element-wise sigmoid cross-entropy with logits (``reduction="none"``), float32.

    ``F.binary_cross_entropy_with_logits`` is TF's ``sigmoid_cross_entropy_with_logits``; the
    notebook's quirk of passing already-sigmoided values as logits is kept by the caller.
    """
    z = torch.as_tensor(np.asarray(logits), dtype=torch.float32)
    y = torch.as_tensor(np.asarray(labels), dtype=torch.float32)
    cost = F.binary_cross_entropy_with_logits(z, y, reduction="none")
    cost = cost.numpy()
    return cost


def one_hot_matrix(labels, C):
    """(C, m) float32 one-hot matrix, one column per example.

    ``tf.one_hot(labels, C, axis=0)`` puts classes on axis 0; ``F.one_hot`` puts them last,
    (m, C), and returns int64, hence the ``.T`` and the cast.
    """
    labels = torch.as_tensor(labels, dtype=torch.int64)
    one_hot_matrix = F.one_hot(labels, C).T.to(torch.float32)
    one_hot = one_hot_matrix.numpy()
    return one_hot


def ones(shape):
    """``torch.ones(shape)``: float32 ones."""
    ones = torch.ones(shape)
    ones = ones.numpy()
    return ones
