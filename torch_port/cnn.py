"""The course's SIGNS convolutional network in PyTorch: the twin of ``tf_original/cnn.py``.

Same functions, same order, same arguments on both sides. torch is channels-first, so the
images are transposed once, (m, 64, 64, 3) -> (m, 3, 64, 64) (:func:`to_channels_first`), and
every shape below is NCHW::

    X (m, 3, 64, 64)  --conv1: Conv2d 3->8, 4x4, stride 1, padding 'same'-->  (m, 8, 64, 64)
                      --relu1--> --pool1: MaxPool2d 8, stride 8-->          (m, 8, 8, 8)
                      --conv2: Conv2d 8->16, 2x2, stride 1, padding 'same'--> (m, 16, 8, 8)
                      --relu2--> --pool2: MaxPool2d 4, stride 4-->          (m, 16, 2, 2)
                      --flatten--> (m, 64), features in (c, h, w) order
                      --fc: Linear 64->6--> logits (m, 6)

* ``'same'`` with an even kernel (4x4, 2x2) pads k - 1 in total, (k - 1) // 2 before and the
  rest after (more at the bottom/right) in TF; torch's ``padding="same"`` splits it the same
  way for stride 1 (checked numerically by ``parity/test_cnn.py``).
* TF's ``'same'`` max-pools need no padding here (64/8 and 8/4 divide exactly): a plain
  ``MaxPool2d(8, 8)`` / ``MaxPool2d(4, 4)`` is the same operation.
* The flatten order differs from Keras's (c, h, w vs h, w, c): ``fc.weight`` is not just the
  transposed Keras kernel, its input dimension is permuted (:mod:`parity.layers` does it).
* No weights are drawn here: the Keras side draws them once and they are copied in
  (``initial``, a ``state_dict``-like mapping of arrays in torch layout).

Adam is ``TFAdam(beta_powers="keras")``: Keras's Adam (epsilon on the un-corrected ``sqrt(v)``).
"""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
import torch
from torch import nn

from signs import load_dataset, minibatch_indices
from signs.errors import NonFiniteCost
from torch_port.dtypes import torch_dtype
from torch_port.optim import TFAdam

LEARNING_RATE = 0.009
MINIBATCH_SIZE = 64
NUM_EPOCHS = 100


def load_data(data="auto", data_dir=None, notify=None):
    """``(X_train, Y_train, X_test, Y_test)``: images (m, 64, 64, 3) float64 in [0, 1] (pixels / 255),
    integer labels (m,). Channels-last, as stored: see :func:`to_channels_first`."""
    train_x, train_y, test_x, test_y, _ = load_dataset(data_dir, data=data, notify=notify)
    return train_x / 255.0, train_y.reshape(-1), test_x / 255.0, test_y.reshape(-1)


def to_channels_first(X):
    """Images (m, 64, 64, 3) (channels-last, Keras/NumPy) -> (m, 3, 64, 64) (channels-first, torch)."""
    return np.ascontiguousarray(np.asarray(X).transpose(0, 3, 1, 2))


def build_model(dtype="float32", initial=None) -> nn.Sequential:
    """The network above in ``dtype``; ``initial``: weights to load (torch names and layout)."""
    net = nn.Sequential(OrderedDict([
        ("conv1", nn.Conv2d(3, 8, kernel_size=4, stride=1, padding="same")),
        ("relu1", nn.ReLU()),
        ("pool1", nn.MaxPool2d(kernel_size=8, stride=8)),
        ("conv2", nn.Conv2d(8, 16, kernel_size=2, stride=1, padding="same")),
        ("relu2", nn.ReLU()),
        ("pool2", nn.MaxPool2d(kernel_size=4, stride=4)),
        ("flatten", nn.Flatten()),
        ("fc", nn.Linear(64, 6)),
    ])).to(torch_dtype(dtype))
    if initial is not None:
        net.load_state_dict({k: torch.as_tensor(np.asarray(v)) for k, v in initial.items()}, strict=True)
    return net


def forward_propagation(net, X, training=False):
    """Logits (m, 6) for images ``X`` (m, 3, 64, 64)."""
    net.train(training)
    return net(X)


def make_loss(dtype="float32"):
    """Mean softmax cross-entropy of logits (m, 6) against integer labels (m,) (computes in the
    logits' dtype; ``dtype`` only mirrors the Keras side)."""
    return nn.CrossEntropyLoss()


def compute_cost(Z, Y, dtype="float32"):
    """The cost of logits ``Z`` (m, 6) for labels ``Y`` (m,)."""
    return make_loss(dtype)(Z, Y)


def make_optimizer(params, learning_rate=LEARNING_RATE):
    """Keras's Adam (and TF1's constants: epsilon 1e-8): ``TFAdam(beta_powers="keras")``."""
    return TFAdam(params, lr=learning_rate, betas=(0.9, 0.999), eps=1e-8, beta_powers="keras")


def random_mini_batches(m, minibatch_size=MINIBATCH_SIZE, seed=0):
    """Index arrays of the shuffled mini-batches (``np.random.seed(seed)``, a permutation, slices)."""
    return minibatch_indices(m, minibatch_size, seed)


def train_step(net, loss, optimizer, X, Y):
    """One Adam step on a mini-batch; returns ``(logits, cost)``."""
    optimizer.zero_grad(set_to_none=True)
    Z = forward_propagation(net, X, training=True)
    cost = loss(Z, Y)
    cost.backward()
    optimizer.step()
    return Z, cost


def model(X_train, Y_train, X_test, Y_test, learning_rate=LEARNING_RATE, num_epochs=NUM_EPOCHS,
          minibatch_size=MINIBATCH_SIZE, print_cost=True, *, dtype="float32", seed=3, net=None,
          device="cpu"):
    """Train the network; return ``(net, costs)`` (``costs``: the mean mini-batch cost per epoch).

    ``X`` (m, 64, 64, 3) channels-last like the Keras side (transposed here once), ``Y`` (m,).
    Epoch ``e`` shuffles with seed ``seed + e + 1``. ``net``: the network to train, e.g.
    ``build_model(dtype, initial=...)`` with the Keras side's initial weights.
    """
    if net is None:
        raise ValueError("pass net=build_model(dtype, initial=...): the initial weights come from the Keras "
                         "side (parity.layers.keras_to_torch), torch never draws its own")
    net = net.to(device)
    loss, optimizer = make_loss(dtype), make_optimizer(net.parameters(), learning_rate)
    X_all = torch.as_tensor(to_channels_first(np.asarray(X_train, dtype=dtype)), device=device)
    Y_all = torch.as_tensor(np.asarray(Y_train, dtype=np.int64), device=device)
    costs = []
    for epoch in range(num_epochs):
        batch_costs = []
        for indices in random_mini_batches(X_all.shape[0], minibatch_size, seed + epoch + 1):
            index = torch.as_tensor(indices, device=device)
            _, cost = train_step(net, loss, optimizer, X_all[index], Y_all[index])
            batch_costs.append(cost.item())
        epoch_cost = float(np.mean(batch_costs))
        if not np.isfinite(epoch_cost):
            bad = next(k for k, c in enumerate(batch_costs) if not np.isfinite(c))
            raise NonFiniteCost(epoch, bad + 1, batch_costs[bad])
        costs.append(epoch_cost)
        if print_cost and epoch % 5 == 0:
            print(f"Cost after epoch {epoch}: {epoch_cost:f}")
    if print_cost:
        for split, X, Y in (("Train", X_train, Y_train), ("Test", X_test, Y_test)):
            X = torch.as_tensor(to_channels_first(np.asarray(X, dtype=dtype)), device=device)
            print(f"{split} Accuracy: {np.mean(predict(net, X) == np.asarray(Y))}")
    return net, costs


@torch.no_grad()
def predict(net, X):
    """The predicted class (m,) of each image of ``X`` (m, 3, 64, 64)."""
    return forward_propagation(net, X).argmax(dim=1).cpu().numpy()
