"""The TensorFlow original and its Keras twin, and the port against them on the same inputs.

Skipped as a whole when TensorFlow is not installed.
"""

from __future__ import annotations

import numpy as np
import pytest
from signs_testing import NO_TF_REASON

tf = pytest.importorskip("tensorflow", reason=NO_TF_REASON)
torch = pytest.importorskip("torch")

from signs import convert_to_one_hot, flatten, load_from  # noqa: E402
from signs.weights import PARAMETER_SHAPES, load_initial_parameters  # noqa: E402
from tf_original import keras_model  # noqa: E402
from tf_original import model as original  # noqa: E402
from torch_port import model as port  # noqa: E402
from torch_port import nn_model  # noqa: E402

tf1 = tf.compat.v1
pytestmark = [pytest.mark.tf, pytest.mark.usefixtures("torch_one_thread")]


def normwise(a, b) -> float:
    """``max|a - b| / max|b|``: element-wise ratios blow up near zero (SPEC.md)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.abs(a - b).max() / np.abs(b).max())


def inputs(dtype, m=12, seed=0):
    """X (12288, m) in [0, 1), one-hot Y (6, m), and the initial weights with non-zero biases."""
    rng = np.random.default_rng(seed)
    X = rng.random((12288, m)).astype(dtype)
    Y = convert_to_one_hot(rng.integers(0, 6, m), 6).astype(dtype)
    params = load_initial_parameters(dtype)
    for name in ("b1", "b2", "b3"):
        params[name] = rng.normal(0, 0.1, params[name].shape).astype(dtype)
    return X, Y, params


def tf_forward_and_cost(X, Y, params):
    """Run the TF side's forward_propagation and compute_cost on NumPy inputs."""
    with tf.Graph().as_default():
        x, y = original.create_placeholders(X.shape[0], Y.shape[0], tf.as_dtype(X.dtype))
        assert x.shape.as_list() == [12288, None] and y.shape.as_list() == [6, None]
        constants = {name: tf1.constant(value) for name, value in params.items()}
        Z3 = original.forward_propagation(x, constants)
        cost = original.compute_cost(Z3, y)
        with tf1.Session() as sess:
            return sess.run([Z3, cost], feed_dict={x: X, y: Y})


def torch_forward_and_cost(X, Y, params):
    torch_params = port.initialize_parameters(str(X.dtype), initial_parameters=params)
    Z3 = port.forward_propagation(torch.as_tensor(X), torch_params)
    return Z3.detach().numpy(), port.compute_cost(Z3, torch.as_tensor(Y)).item()


@pytest.fixture(scope="module")
def subset(synthetic_dir):
    train_x, train_y, test_x, test_y, _ = load_from(synthetic_dir)
    return (flatten(train_x[:128], np.float32), convert_to_one_hot(train_y[:, :128], 6),
            flatten(test_x[:24], np.float32), convert_to_one_hot(test_y[:, :24], 6))


# --------------------------------------------------------------------------- weights

@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_stored_glorot_draw_equals_tf(dtype):
    """The port starts from a stored copy; it must be exactly what TF draws (tests -k glorot)."""
    drawn = original.glorot_draw(dtype)
    stored = load_initial_parameters(dtype)
    assert set(drawn) == set(stored)
    for name, value in drawn.items():
        assert value.dtype == np.dtype(dtype) and value.shape == PARAMETER_SHAPES[name]
        assert np.array_equal(value, stored[name]), name


def test_tf_initialize_parameters_layout():
    with tf.Graph().as_default():
        params = original.initialize_parameters()
        for name, variable in params.items():
            assert tuple(variable.shape.as_list()) == PARAMETER_SHAPES[name]
            assert variable.dtype.base_dtype == tf.float32


# --------------------------------------------------------------------------- same inputs

def test_random_mini_batches_identical_on_both_sides():
    rng = np.random.default_rng(0)
    X = rng.random((3, 1080))
    Y = convert_to_one_hot(rng.integers(0, 6, 1080), 6)
    tf_batches = original.random_mini_batches(X, Y, 32, seed=4)
    torch_batches = port.random_mini_batches(torch.as_tensor(X), torch.as_tensor(Y), 32, seed=4)
    assert len(tf_batches) == len(torch_batches) == 34
    for (tx, ty), (px, py) in zip(tf_batches, torch_batches):
        assert np.array_equal(tx, px.numpy()) and np.array_equal(ty, py.numpy())


@pytest.mark.parametrize("dtype, tolerance", [("float64", 1e-13), ("float32", 2e-6)])
def test_forward_cost_predict_match_tf(dtype, tolerance):
    X, Y, params = inputs(dtype)
    tf_Z3, tf_cost = tf_forward_and_cost(X, Y, params)
    torch_Z3, torch_cost = torch_forward_and_cost(X, Y, params)
    assert tf_Z3.shape == torch_Z3.shape == (6, 12) and tf_Z3.dtype == torch_Z3.dtype
    assert normwise(torch_Z3, tf_Z3) <= tolerance
    assert abs(torch_cost - tf_cost) <= tolerance * abs(tf_cost)
    tf_prediction = original.predict(X, params)
    torch_prediction = port.predict(X, params)
    assert tf_prediction.shape == torch_prediction.shape == (12,)
    assert np.array_equal(tf_prediction, torch_prediction)
    assert np.array_equal(torch_prediction, tf_Z3.argmax(axis=0))


def test_keras_kernels_are_transposed_and_match_torch():
    X, _, params = inputs("float64", m=5)
    net = keras_model.set_tutorial_parameters(keras_model.build_model("float64"), params)
    fc1 = net.get_layer("fc1")
    assert tuple(fc1.kernel.shape) == (12288, 25)  # Keras Dense kernel is (in, out) = W.T
    assert np.array_equal(fc1.kernel.numpy(), params["W1"].T)
    assert tuple(fc1.bias.shape) == (25,)
    round_trip = keras_model.tutorial_parameters(net)
    for name in params:
        assert np.array_equal(round_trip[name], params[name]), name
    keras_logits = net(X.T).numpy()
    torch_net = nn_model.SignsNet().to(torch.float64).load_tutorial_parameters(params)
    torch_logits = torch_net(torch.as_tensor(X.T)).detach().numpy()
    assert keras_logits.shape == torch_logits.shape == (5, 6)
    assert normwise(torch_logits, keras_logits) <= 1e-13


# --------------------------------------------------------------------------- training

def test_short_training_runs_decrease_cost_and_agree(subset, capsys):
    """TF1 model, Keras train and the torch port: 6 epochs on 128 examples, same costs."""
    results = {
        "tf1": original.model(*subset, num_epochs=6),
        "keras": keras_model.train(*subset, num_epochs=6),
        "torch": port.model(*subset, num_epochs=6),
    }
    out = capsys.readouterr().out
    assert out.count("Cost after epoch 0:") == 3 and out.count("Test Accuracy:") == 3
    for name, (params, costs) in results.items():
        assert len(costs) == 2, name  # epochs 0 and 5
        assert costs[1] < costs[0] - 0.02, (name, costs)
        for key, shape in PARAMETER_SHAPES.items():
            assert params[key].shape == shape and params[key].dtype == np.float32, (name, key)
    tf_params, tf_costs = results["tf1"]
    for name in ("keras", "torch"):
        params, costs = results[name]
        np.testing.assert_allclose(costs, tf_costs, rtol=1e-5, err_msg=name)
        for key in params:
            assert normwise(params[key], tf_params[key]) <= 1e-4, (name, key)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_the_harness_trains_the_notebooks_graph_bit_for_bit(subset, dtype, capsys):
    """parity.trace records TF1 through the general harness (parity.tf1.GraphRun on the graph the
    tutorial's functions build), not through model(): both must train identically. 128 examples,
    6 epochs (24 steps): the epoch costs model() returns (the divide-by-int(m / 32) quirk and its
    accumulation dtype included) and its final parameters, bit for bit."""
    from types import SimpleNamespace

    from parity.trace import RunConfig, run
    from signs.weights import load_initial_parameters

    arrays = [np.asarray(a, dtype) for a in subset]
    initial = load_initial_parameters(dtype)
    params, costs = original.model(*arrays, num_epochs=6, dtype=dtype, initial_parameters=initial)
    assert "Cost after epoch 0:" in capsys.readouterr().out
    data = SimpleNamespace(X_train=arrays[0], Y_train=arrays[1], X_test=arrays[2], Y_test=arrays[3])
    trace = run("tf1", data, RunConfig(steps=24, dtype=dtype), initial_parameters=initial)
    assert [epoch for epoch, _ in trace.epoch_costs] == [0, 5]
    assert [cost for _, cost in trace.epoch_costs] == [float(c) for c in costs]
    for name in original.PARAMETER_NAMES:
        assert trace.records[-1]["params"][name].tobytes() == params[name].tobytes(), name
