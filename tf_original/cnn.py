"""The course's SIGNS convolutional network in TF2/Keras: the twin of ``torch_port/cnn.py``.

Same functions, same order, same arguments on both sides, like the tutorial's two
``model.py`` files. The network (shapes for a batch of m images, channels-last)::

    X (m, 64, 64, 3)  --conv1: CONV2D 8 filters 4x4, stride 1, 'same'-->  (m, 64, 64, 8)
                      --relu1--> --pool1: MAXPOOL 8x8, stride 8, 'same'--> (m, 8, 8, 8)
                      --conv2: CONV2D 16 filters 2x2, stride 1, 'same'-->  (m, 8, 8, 16)
                      --relu2--> --pool2: MAXPOOL 4x4, stride 4, 'same'--> (m, 2, 2, 16)
                      --flatten--> (m, 64), features in (h, w, c) order
                      --fc: fully connected, no activation--> logits (m, 6)

Softmax is folded into the cost (sparse softmax cross-entropy on integer labels (m,)). Adam,
learning rate 0.009, mini-batches of 64. ``'same'`` pooling needs no padding here (64/8 and
8/4 divide exactly). Initial weights: Glorot uniform kernels drawn by Keras with fixed seeds
(``seed``, ``seed + 1``, ``seed + 2``), zero biases; torch never re-draws them, it receives them
through :mod:`parity.layers`.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from signs import load_dataset, minibatch_indices
from signs.errors import NonFiniteCost
from signs.precision import f32

LEARNING_RATE = 0.009
MINIBATCH_SIZE = 64
NUM_EPOCHS = 100


def load_data(data="auto", data_dir=None, notify=None):
    """``(X_train, Y_train, X_test, Y_test)``: images (m, 64, 64, 3) float64 in [0, 1] (pixels / 255),
    integer labels (m,)."""
    train_x, train_y, test_x, test_y, _ = load_dataset(data_dir, data=data, notify=notify)
    return train_x / 255.0, train_y.reshape(-1), test_x / 255.0, test_y.reshape(-1)


def build_model(dtype="float32", seed=0) -> keras.Sequential:
    """The network above, channels-last, in ``dtype``; kernels Glorot uniform (seeded), biases 0."""
    def glorot(offset):
        return keras.initializers.GlorotUniform(seed=seed + offset)

    return keras.Sequential([
        keras.Input(shape=(64, 64, 3), dtype=dtype),
        keras.layers.Conv2D(8, 4, strides=1, padding="same", kernel_initializer=glorot(0), name="conv1",
                            dtype=dtype),
        keras.layers.ReLU(name="relu1", dtype=dtype),
        keras.layers.MaxPooling2D(pool_size=8, strides=8, padding="same", name="pool1", dtype=dtype),
        keras.layers.Conv2D(16, 2, strides=1, padding="same", kernel_initializer=glorot(1), name="conv2",
                            dtype=dtype),
        keras.layers.ReLU(name="relu2", dtype=dtype),
        keras.layers.MaxPooling2D(pool_size=4, strides=4, padding="same", name="pool2", dtype=dtype),
        keras.layers.Flatten(name="flatten", dtype=dtype),
        keras.layers.Dense(6, kernel_initializer=glorot(2), name="fc", dtype=dtype),
    ], name="signs_cnn")


def forward_propagation(net, X, training=False):
    """Logits (m, 6) for images ``X`` (m, 64, 64, 3)."""
    return net(X, training=training)


def make_loss(dtype="float32"):
    """Mean softmax cross-entropy of logits (m, 6) against integer labels (m,).

    ``dtype=`` matters: a Keras loss computes in float32 unless told otherwise.
    """
    return keras.losses.SparseCategoricalCrossentropy(from_logits=True, dtype=dtype)


def compute_cost(Z, Y, dtype="float32"):
    """The cost of logits ``Z`` (m, 6) for labels ``Y`` (m,)."""
    return make_loss(dtype)(Y, Z)


def make_optimizer(learning_rate=LEARNING_RATE):
    """Adam with TF1's float32 hyper-parameters (epsilon 1e-8, not Keras's 1e-7)."""
    return keras.optimizers.Adam(learning_rate=f32(learning_rate), beta_1=f32(0.9), beta_2=f32(0.999),
                                 epsilon=f32(1e-8))


def random_mini_batches(m, minibatch_size=MINIBATCH_SIZE, seed=0):
    """Index arrays of the shuffled mini-batches (``np.random.seed(seed)``, a permutation, slices)."""
    return minibatch_indices(m, minibatch_size, seed)


def train_step(net, loss, optimizer, X, Y):
    """One Adam step on a mini-batch; returns ``(logits, cost)``."""
    with tf.GradientTape() as tape:
        Z = forward_propagation(net, X, training=True)
        cost = loss(Y, Z)
    grads = tape.gradient(cost, net.trainable_variables)
    optimizer.apply_gradients(zip(grads, net.trainable_variables))
    return Z, cost


def model(X_train, Y_train, X_test, Y_test, learning_rate=LEARNING_RATE, num_epochs=NUM_EPOCHS,
          minibatch_size=MINIBATCH_SIZE, print_cost=True, *, dtype="float32", seed=3, net=None):
    """Train the network; return ``(net, costs)`` (``costs``: the mean mini-batch cost per epoch).

    ``X`` (m, 64, 64, 3), ``Y`` (m,). Epoch ``e`` shuffles with seed ``seed + e + 1``, as the
    tutorial does. ``net``: a network to train (default :func:`build_model` in ``dtype``).
    """
    net = build_model(dtype) if net is None else net
    loss, optimizer = make_loss(dtype), make_optimizer(learning_rate)
    X_train = np.asarray(X_train, dtype=dtype)
    costs = []
    for epoch in range(num_epochs):
        batch_costs = []
        for indices in random_mini_batches(X_train.shape[0], minibatch_size, seed + epoch + 1):
            _, cost = train_step(net, loss, optimizer, X_train[indices], Y_train[indices])
            batch_costs.append(float(cost))
        epoch_cost = float(np.mean(batch_costs))
        if not np.isfinite(epoch_cost):
            bad = next(k for k, c in enumerate(batch_costs) if not np.isfinite(c))
            raise NonFiniteCost(epoch, bad + 1, batch_costs[bad])
        costs.append(epoch_cost)
        if print_cost and epoch % 5 == 0:
            print(f"Cost after epoch {epoch}: {epoch_cost:f}")
    if print_cost:
        for split, X, Y in (("Train", X_train, Y_train), ("Test", X_test, Y_test)):
            print(f"{split} Accuracy: {np.mean(predict(net, np.asarray(X, dtype=dtype)) == Y)}")
    return net, costs


def predict(net, X):
    """The predicted class (m,) of each image of ``X`` (m, 64, 64, 3)."""
    return np.argmax(np.asarray(forward_propagation(net, X)), axis=1)
