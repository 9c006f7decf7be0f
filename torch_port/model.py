"""Part 2 of the tutorial in PyTorch, line by line beside ``tf_original/model.py``.

Layout throughout, as in the original: ``(features, examples)``. ``X`` is (12288, m), ``Y``
one-hot (6, m), ``W1`` (25, 12288), ``b1`` (25, 1), ... ``Z3`` (6, m).

``create_placeholders`` has no twin: PyTorch runs eagerly, so there is no graph whose inputs
must be declared before data arrives, and no ``Session.run``/``feed_dict`` to supply them. A
mini-batch is simply passed to ``forward_propagation`` as a tensor.

Additions, as on the TF side: ``dtype``, ``initial_parameters``; a per-step ``hook``, through
which the parity harness records the port's steps (it records TF1's from the graph); and for
the CLI: ``device``, ``optimizer`` (``"tf-adam"``, TF1's formula; ``"keras-adam"``, Keras's
``beta ** t``; or ``"adam"``, ``torch.optim.Adam``), ``resume``,
``on_epoch_end`` and a ``progress`` bar.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from signs import minibatch_indices
from signs.errors import NonFiniteCost
from signs.weights import check_parameters, load_initial_parameters
from torch_port.dtypes import dtype_name, torch_dtype
from torch_port.optim import adam_slots, load_adam_slots, make_optimizer

PARAMETER_NAMES = ("W1", "b1", "W2", "b2", "W3", "b3")


def initialize_parameters(dtype=torch.float32, device="cpu", initial_parameters=None):
    """Glorot-uniform seed-1 weights and zero biases, as leaf tensors that require grad.

    Not re-drawn: ``torch.manual_seed(1)`` + ``nn.init.xavier_uniform_`` would give other
    numbers, because the generators differ. By default the exact draw the TF side makes is
    loaded from the stored copy (``signs/initial_weights``); ``initial_parameters`` (a dict of
    arrays in this layout, e.g. exported from ``tf_original``) replaces it.
    """
    dtype = torch_dtype(dtype)
    if initial_parameters is None:
        initial_parameters = load_initial_parameters(dtype_name(dtype))
    values = check_parameters(initial_parameters, "initial parameters")
    parameters = {name: torch.tensor(values[name], dtype=dtype, device=device, requires_grad=True)
                  for name in PARAMETER_NAMES}
    return parameters


def forward_propagation(X, parameters):
    """LINEAR -> RELU -> LINEAR -> RELU -> LINEAR. ``X`` (12288, m) -> ``Z3`` (6, m)."""
    W1 = parameters["W1"]
    b1 = parameters["b1"]
    W2 = parameters["W2"]
    b2 = parameters["b2"]
    W3 = parameters["W3"]
    b3 = parameters["b3"]
    Z1 = torch.add(torch.matmul(W1, X), b1)  # b1 (25, 1) broadcasts over the m columns
    A1 = torch.relu(Z1)
    Z2 = torch.add(torch.matmul(W2, A1), b2)
    A2 = torch.relu(Z2)
    Z3 = torch.add(torch.matmul(W3, A2), b3)
    return Z3


def compute_cost(Z3, Y):
    """Mean softmax cross-entropy; ``Z3`` and one-hot ``Y`` (6, m) are transposed to (m, 6) first.

    ``F.cross_entropy`` with a floating-point target of the same shape as the logits treats it
    as class probabilities: with one-hot rows that is TF's ``softmax_cross_entropy_with_logits``
    followed by ``reduce_mean``. (With class indices it would be ``Y.argmax(0)``; same value.)
    """
    logits = Z3.T
    labels = Y.T
    cost = F.cross_entropy(logits, labels)
    return cost


def random_mini_batches(X, Y, mini_batch_size=64, seed=0):
    """Shuffle the columns of ``X`` (n_x, m) and ``Y`` (n_y, m) with ``np.random.seed(seed)``
    and cut them into mini-batches of ``mini_batch_size`` columns, the last holding the rest.
    The permutation and cut come from :func:`signs.minibatch_indices`, shared by every side.
    """
    mini_batches = []
    for indices in minibatch_indices(X.shape[1], mini_batch_size, seed):
        indices = torch.from_numpy(indices).to(X.device)
        mini_batch_X = X[:, indices]
        mini_batch_Y = Y[:, indices]
        mini_batches.append((mini_batch_X, mini_batch_Y))
    return mini_batches


def model(X_train, Y_train, X_test, Y_test, learning_rate=0.0001,
          num_epochs=1500, minibatch_size=32, print_cost=True, *,
          dtype="float32", seed=3, initial_parameters=None, hook=None,
          device="cpu", optimizer="tf-adam", resume=None, on_epoch_end=None, progress=False):
    """Train the three-layer network with Adam; return ``(parameters, costs)`` as NumPy.

    Arguments as the TF twin's (``X_*`` (12288, m), one-hot ``Y_*`` (6, m), NumPy), and
    ``hook(record)`` after every step with ``epoch``, ``step``, ``batch``,
    ``output`` (``Z3``), ``cost``, ``grads``, ``params`` (after the update), ``m``, ``v``; a
    returned dict with ``params``, ``m``, ``v`` is loaded before the next step.

    ``resume``: ``{"epoch", "parameters", "optimizer", "costs"}`` from a checkpoint; training
    continues at ``epoch`` exactly as if it had never stopped (the data order depends only on
    the epoch). ``on_epoch_end(epoch, epoch_cost, get_parameters, optimizer, costs)`` is called
    after every epoch; ``get_parameters()`` gives NumPy copies (the CLI checkpoints there).
    A NaN or infinite cost raises ``NonFiniteCost``.
    """
    dtype = torch_dtype(dtype)
    torch_X_train = torch.as_tensor(X_train, dtype=dtype, device=device)
    torch_Y_train = torch.as_tensor(Y_train, dtype=dtype, device=device)
    (n_x, m) = torch_X_train.shape
    costs = []
    start_epoch = 0

    parameters = initialize_parameters(dtype, device, initial_parameters)
    adam = make_optimizer(optimizer, list(parameters.values()), learning_rate)
    if resume is not None:
        with torch.no_grad():
            for name, value in parameters.items():
                value.copy_(torch.as_tensor(resume["parameters"][name]))
        adam.load_state_dict(resume["optimizer"])
        costs = list(resume["costs"])
        start_epoch = resume["epoch"]

    step = 0
    bar = tqdm(range(start_epoch, num_epochs), disable=not progress, unit="epoch",
               initial=start_epoch, total=num_epochs, dynamic_ncols=True)
    for epoch in bar:
        epoch_cost = 0.
        # Quirk of the original: divide by the number of *full* mini-batches (33 for
        # m = 1080, size 32) although 34 are run, the last with 24 examples.
        num_minibatches = int(m / minibatch_size)
        epoch_seed = seed + epoch + 1  # the original's ``seed = seed + 1`` each epoch
        minibatches = random_mini_batches(torch_X_train, torch_Y_train, minibatch_size, epoch_seed)
        indices = minibatch_indices(m, minibatch_size, epoch_seed) if hook is not None else None
        minibatch_costs = []

        for k, minibatch in enumerate(minibatches):
            (minibatch_X, minibatch_Y) = minibatch
            # TF's sess.run([optimizer, cost]) is these five lines: forward, cost, backward, step.
            adam.zero_grad()
            Z3 = forward_propagation(minibatch_X, parameters)
            cost = compute_cost(Z3, minibatch_Y)
            cost.backward()
            adam.step()
            minibatch_cost = cost.detach()
            minibatch_costs.append(minibatch_cost)
            if hook is not None:
                step += 1
                forced = hook(_record(epoch, step, indices[k], Z3, minibatch_cost, parameters, adam))
                if forced:
                    _load(parameters, adam, forced)
            # Accumulated on the device, in the cost's dtype, as NumPy does on the TF side
            # (float32 / int and float32 + float32): same value, and no sync per step.
            epoch_cost += minibatch_cost / num_minibatches

        epoch_cost = epoch_cost.item()
        if not np.isfinite(epoch_cost):
            bad = torch.stack(minibatch_costs).isfinite().logical_not().nonzero()[0, 0].item()
            raise NonFiniteCost(epoch, bad + 1, minibatch_costs[bad].item())
        bar.set_postfix(cost=f"{epoch_cost:.6f}", refresh=False)
        if print_cost is True and epoch % 100 == 0:
            tqdm.write("Cost after epoch %i: %f" % (epoch, epoch_cost))  # noqa: UP031 (the original)
        if print_cost is True and epoch % 5 == 0:
            costs.append(epoch_cost)
        if on_epoch_end is not None:
            on_epoch_end(epoch, epoch_cost, lambda: numpy_parameters(parameters), adam, costs)

    # The notebook plots ``costs`` here; the CLI does it (torch_port.train --out).
    with torch.no_grad():
        Z3 = forward_propagation(torch_X_train, parameters)
        correct_prediction = torch.eq(torch.argmax(Z3, dim=0), torch.argmax(torch_Y_train, dim=0))
        train_accuracy = torch.mean(correct_prediction.to(torch.float32)).cpu().numpy()
        X, Y = (torch.as_tensor(a, dtype=dtype, device=device) for a in (X_test, Y_test))
        Z3 = forward_propagation(X, parameters)
        correct_prediction = torch.eq(torch.argmax(Z3, dim=0), torch.argmax(Y, dim=0))
        test_accuracy = torch.mean(correct_prediction.to(torch.float32)).cpu().numpy()
    parameters = numpy_parameters(parameters)
    if print_cost:
        tqdm.write("Parameters have been trained!")
        tqdm.write(f"Train Accuracy: {train_accuracy}")  # a float32 value, printed as TF's is
        tqdm.write(f"Test Accuracy: {test_accuracy}")

    return parameters, costs


def predict(X, parameters):
    """Arg-max class of each column of ``X`` (12288, m) under ``parameters`` -> (m,) int64.

    ``torch.argmax(Z3, dim=0)`` is ``tf.argmax(Z3)``: TF's default axis is 0, the classes axis
    in this (classes, examples) layout; torch's default (no ``dim``) would flatten instead.
    """
    dtype = torch.from_numpy(np.asarray(parameters["W1"])[:0]).dtype
    params = {name: torch.as_tensor(np.asarray(parameters[name]), dtype=dtype)
              for name in PARAMETER_NAMES}
    x = torch.as_tensor(np.asarray(X), dtype=dtype)
    with torch.no_grad():
        z3 = forward_propagation(x, params)
        p = torch.argmax(z3, dim=0)
    prediction = p.numpy()
    return prediction


def _record(epoch, step, batch, Z3, cost, parameters, adam):
    """The hook's record, as NumPy copies (only built when a hook is given)."""
    def numpy(t):
        return t.detach().cpu().numpy().copy()
    slots = adam_slots(adam, parameters)
    return {"epoch": epoch, "step": step, "batch": batch, "output": numpy(Z3),
            "cost": numpy(cost), "grads": {n: numpy(p.grad) for n, p in parameters.items()},
            "params": {n: numpy(p) for n, p in parameters.items()},
            "m": {n: numpy(t) for n, t in slots["m"].items()},
            "v": {n: numpy(t) for n, t in slots["v"].items()}}


def _load(parameters, adam, state):
    """Teacher forcing: overwrite parameters and Adam moments with ``state`` (NumPy dicts)."""
    with torch.no_grad():
        for name, value in parameters.items():
            value.copy_(torch.as_tensor(np.asarray(state["params"][name])))
    load_adam_slots(adam, parameters, state["m"], state["v"])


def numpy_parameters(parameters):
    """NumPy copies of a dict of tensors (the trained parameters, for the caller)."""
    return {name: value.detach().cpu().numpy().copy() for name, value in parameters.items()}

