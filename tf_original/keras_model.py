"""The tutorial as idiomatic TF2/Keras: ``Dense`` layers, a ``GradientTape`` training step.

The twin of ``torch_port/nn_model.py``. Layout: ``(examples, features)``: inputs (m, 12288),
logits (m, 6), integer labels (m,). A Keras ``Dense`` kernel is (in, out), the transpose of
the tutorial's ``W`` (out, in) and of ``torch.nn.Linear.weight``; biases are (n,).

Same numbers as the TF1 original: the same initial weights (copied in, transposed), the same
mini-batches in the same order, and Adam with TF1's hyper-parameters. TF1 keeps lr, betas and
epsilon as float32 constants; Keras keeps Python floats. Passing the float32-rounded values
(``float(np.float32(0.9))`` ...) makes Keras compute with exactly TF1's constants. One
difference remains: Keras computes ``beta ** t`` with ``pow`` in the variable's dtype, TF1
multiplies float32 accumulators; in float64 that changes the step size by up to ~7e-6
relative in the first steps, falling below 1e-6 after ~120 steps (see docs/pitfalls.md).
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from signs import minibatch_indices
from signs.errors import NonFiniteCost
from signs.precision import f32
from signs.weights import check_parameters, load_initial_parameters

# tutorial name -> (layer name, weight index); W is (out, in) vs the kernel's (in, out).
TUTORIAL_TO_LAYER = {"W1": ("fc1", 0), "b1": ("fc1", 1), "W2": ("fc2", 0), "b2": ("fc2", 1),
                     "W3": ("fc3", 0), "b3": ("fc3", 1)}


def build_model(dtype="float32", n_x: int = 12288) -> keras.Sequential:
    """Dense(25, relu) -> Dense(12, relu) -> Dense(6): (m, 12288) -> logits (m, 6)."""
    return keras.Sequential([
        keras.Input(shape=(n_x,), dtype=dtype),
        keras.layers.Dense(25, activation="relu", name="fc1", dtype=dtype),
        keras.layers.Dense(12, activation="relu", name="fc2", dtype=dtype),
        keras.layers.Dense(6, name="fc3", dtype=dtype),
    ])


def set_tutorial_parameters(net: keras.Model, parameters: dict) -> keras.Model:
    """Copy tutorial-layout arrays into the layers: kernel = ``W.T``, bias = ``b`` flattened."""
    values = check_parameters(parameters, "tutorial parameters")
    for name, (layer, index) in TUTORIAL_TO_LAYER.items():
        value = values[name].T if name.startswith("W") else values[name].reshape(-1)
        net.get_layer(layer).weights[index].assign(value)
    return net


def tutorial_parameters(net: keras.Model) -> dict[str, np.ndarray]:
    """The layers' weights in the tutorial's layout (``W`` (out, in), ``b`` (n, 1))."""
    out = {}
    for name, (layer, index) in TUTORIAL_TO_LAYER.items():
        value = net.get_layer(layer).weights[index].numpy()
        out[name] = value.T.copy() if name.startswith("W") else value.reshape(-1, 1)
    return out


def make_optimizer(learning_rate: float) -> keras.optimizers.Adam:
    """Keras Adam with TF1's float32 hyper-parameters (Keras's default epsilon is 1e-7)."""
    return keras.optimizers.Adam(learning_rate=f32(learning_rate), beta_1=f32(0.9),
                                 beta_2=f32(0.999), epsilon=f32(1e-8))


def train(X_train, Y_train, X_test, Y_test, learning_rate=0.0001, num_epochs=1500,
          minibatch_size=32, print_cost=True, *, dtype="float32", seed=3,
          initial_parameters=None, hook=None, epoch_cost="original"):
    """Train the Keras model; return ``(parameters, costs)`` like ``tf_original.model.model``.

    Takes the tutorial's arrays (``X`` (12288, m), one-hot ``Y`` (6, m)); the returned
    parameters are in the tutorial's layout. ``hook`` as in ``tf_original.model.model``, with
    ``output`` the logits (m, 6) and dicts keyed by variable path (``fc1/kernel`` ...).
    ``epoch_cost``: ``"original"`` (the quirk: divide by full batches) or ``"mean"``.
    """
    if initial_parameters is None:
        initial_parameters = load_initial_parameters(str(np.dtype(dtype)))
    net = set_tutorial_parameters(build_model(dtype, X_train.shape[0]), initial_parameters)
    optimizer = make_optimizer(learning_rate)
    # A Keras loss computes in keras.backend.floatx() (float32) unless told otherwise: without
    # dtype= a float64 model's cost is rounded to float32 (a 1e-8 difference, found by parity).
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True, dtype=dtype)
    x_all = np.ascontiguousarray(X_train.T.astype(dtype))
    y_all = np.asarray(Y_train).argmax(axis=0).astype(np.int64)
    m = x_all.shape[0]
    variables = net.trainable_variables
    names = ["/".join(v.path.split("/")[-2:]) for v in variables]  # fc1/kernel, fc1/bias ...
    optimizer.build(variables)

    @tf.function(reduce_retracing=True)
    def train_step(x, y):
        with tf.GradientTape() as tape:
            logits = net(x, training=True)
            loss = loss_fn(y, logits)
        grads = tape.gradient(loss, variables)
        optimizer.apply_gradients(zip(grads, variables))
        return logits, loss, grads

    divisor = int(m / minibatch_size) if epoch_cost == "original" else -(-m // minibatch_size)
    costs, step = [], 0
    for epoch in range(num_epochs):
        running = 0.0
        batch_costs = []
        for indices in minibatch_indices(m, minibatch_size, seed + epoch + 1):
            logits, loss, grads = train_step(x_all[indices], y_all[indices])
            batch_costs.append(loss)
            if hook is not None:
                step += 1
                forced = hook(_record(epoch, step, indices, logits, loss, grads, names, variables,
                                      optimizer))
                if forced:
                    _load(forced, names, variables, optimizer)
            running += loss.numpy() / divisor
        if not np.isfinite(running):
            bad = next(k for k, c in enumerate(batch_costs) if not np.isfinite(c.numpy()))
            raise NonFiniteCost(epoch, bad + 1, float(batch_costs[bad].numpy()))
        if print_cost and epoch % 100 == 0:
            print(f"Cost after epoch {epoch}: {running:f}")
        if print_cost and epoch % 5 == 0:
            costs.append(running)

    if print_cost:
        for split, X, Y in (("Train", X_train, Y_train), ("Test", X_test, Y_test)):
            logits = net(np.ascontiguousarray(X.T.astype(dtype)), training=False)
            accuracy = np.mean(np.argmax(logits, axis=1) == np.asarray(Y).argmax(axis=0))
            print(f"{split} Accuracy: {accuracy}")
    return tutorial_parameters(net), costs


def adam_slots(optimizer, variables) -> tuple[list, list]:
    """Keras 3 Adam's first and second moment variables, in the order of ``variables``."""
    index = [optimizer._get_variable_index(v) for v in variables]
    return [optimizer._momentums[i] for i in index], [optimizer._velocities[i] for i in index]


def _record(epoch, step, indices, logits, loss, grads, names, variables, optimizer):
    ms, vs = adam_slots(optimizer, variables)
    return {"epoch": epoch, "step": step, "batch": np.asarray(indices), "output": logits.numpy(),
            "cost": loss.numpy(), "grads": {n: g.numpy() for n, g in zip(names, grads)},
            "params": {n: v.numpy() for n, v in zip(names, variables)},
            "m": {n: s.numpy() for n, s in zip(names, ms)},
            "v": {n: s.numpy() for n, s in zip(names, vs)}}


def _load(state, names, variables, optimizer):
    ms, vs = adam_slots(optimizer, variables)
    for n, var, m, v in zip(names, variables, ms, vs):
        var.assign(state["params"][n])
        m.assign(state["m"][n])
        v.assign(state["v"][n])
