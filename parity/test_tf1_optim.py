"""TF1 optimizers and schedules against their torch twins (parity.tf1_optim), through
parity.tf1.step_parity on a small ``variable_scope``/``get_variable`` MLP, in float64 where any
difference of formula or constant shows (~1e-8 for a float32-rounded learning rate) above
round-off (~1e-16)."""

from __future__ import annotations

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow", reason="TensorFlow is not installed: TF1 parity needs it")

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

from parity import tf1 as P  # noqa: E402
from signs.errors import InputError  # noqa: E402

tf1 = tf.compat.v1
RNG = np.random.default_rng(1)
X = RNG.standard_normal((48, 5))
Y = np.eye(3)[RNG.integers(0, 3, 48)]
BATCHES = [(X[i:i + 6], Y[i:i + 6]) for i in range(0, 48, 6)]   # 8 steps
NAME_MAP = {"layer*/weights": "fc{1}.weight", "layer*/biases": "fc{1}.bias"}


def mlp_graph(make_optimizer):
    """A TF1-style MLP: ``get_variable`` under ``variable_scope('layer1')`` ..., x @ W + b."""
    def build():
        x = tf1.placeholder(tf.float64, [None, 5])
        y = tf1.placeholder(tf.float64, [None, 3])
        h = x
        for i, (n_in, n_out) in enumerate([(5, 7), (7, 3)], start=1):
            with tf1.variable_scope(f"layer{i}"):
                w = tf1.get_variable("weights", [n_in, n_out], tf.float64)
                b = tf1.get_variable("biases", [n_out], tf.float64, initializer=tf1.constant_initializer(0.1))
            h = tf.matmul(h, w) + b
            if i == 1:
                h = tf.nn.tanh(h)
        loss = tf.reduce_mean(tf.nn.softmax_cross_entropy_with_logits(labels=y, logits=h))
        step = tf1.train.get_or_create_global_step()
        return {"x": x, "y": y, "output": h, "loss": loss, "optimizer": make_optimizer(step)}
    return build


class MLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(5, 7), nn.Linear(7, 3)

    def forward(self, x):
        return self.fc2(torch.tanh(self.fc1(x)))


def xent(logits, labels):
    return F.cross_entropy(logits, labels)


CASES = {
    "gradient descent": (lambda s: tf1.train.GradientDescentOptimizer(0.3),
                         lambda p: P.GradientDescentOptimizer(p, 0.3)),
    "momentum": (lambda s: tf1.train.MomentumOptimizer(0.1, 0.9),
                 lambda p: P.MomentumOptimizer(p, 0.1, 0.9)),
    "nesterov, exponential decay": (
        lambda s: tf1.train.MomentumOptimizer(tf1.train.exponential_decay(0.3, s, 3, 0.7), 0.9,
                                              use_nesterov=True),
        lambda p: P.MomentumOptimizer(p, P.exponential_decay(0.3, 3, 0.7), 0.9, use_nesterov=True)),
    "rmsprop": (lambda s: tf1.train.RMSPropOptimizer(0.01), lambda p: P.RMSPropOptimizer(p, 0.01)),
    "rmsprop centered, momentum, piecewise": (
        lambda s: tf1.train.RMSPropOptimizer(tf1.train.piecewise_constant(s, [2, 5], [0.02, 0.01, 0.003]),
                                             decay=0.8, momentum=0.5, epsilon=1e-6, centered=True),
        lambda p: P.RMSPropOptimizer(p, P.piecewise_constant([2, 5], [0.02, 0.01, 0.003]), decay=0.8,
                                     momentum=0.5, epsilon=1e-6, centered=True)),
    "adagrad": (lambda s: tf1.train.AdagradOptimizer(0.3, initial_accumulator_value=0.2),
                lambda p: P.AdagradOptimizer(p, 0.3, initial_accumulator_value=0.2)),
    "adam, staircase decay": (
        lambda s: tf1.train.AdamOptimizer(tf1.train.exponential_decay(0.01, s, 3, 0.5, staircase=True)),
        lambda p: P.AdamOptimizer(p, P.exponential_decay(0.01, 3, 0.5, staircase=True))),
}


@pytest.mark.parametrize("mode", ["teacher-forced", "free-running"])
@pytest.mark.parametrize("case", list(CASES))
def test_every_tf1_optimizer_has_an_exact_twin(case, mode):
    make_tf, make_torch = CASES[case]
    torch_net = MLP().double()
    result = P.step_parity(mlp_graph(make_tf), torch_net, xent, make_torch(torch_net.parameters()), BATCHES,
                           NAME_MAP, mode=mode)
    assert result.passed, (result.table(), result.notes, P.first_divergence(result))
    assert not result.notes
    assert max(result.worst_rel.values()) < 1e-13
    family = case.split(",")[0].split()[0]
    slots = {"gradient": set(), "momentum": {"m"}, "nesterov": {"m"}, "adagrad": {"v"}}.get(family,
                                                                                           {"m", "v"})
    assert set(result.tolerances) == {"output", "cost", "grads", "params"} | slots
    if case.startswith("rmsprop centered"):
        assert "fc1.weight/mg" in result.reference[0]["m"]     # RMSProp's mg is compared too


def test_the_twin_reports_a_learning_rate_that_differs_from_tf1s():
    torch_net = MLP().double()
    result = P.step_parity(mlp_graph(CASES["nesterov, exponential decay"][0]), torch_net, xent,
                           P.MomentumOptimizer(torch_net.parameters(), 0.3, 0.9, use_nesterov=True), BATCHES,
                           NAME_MAP, mode="teacher-forced")
    assert not result.passed
    assert any("kernel input lr at step 2 is 0.2663" in n and "torch twin's 0.300000011920928" in n
               for n in result.notes), result.notes
    assert P.first_divergence(result).startswith("first divergence at step 2: params")


def test_torch_sgd_without_float32_constants_is_no_twin():
    torch_net = MLP().double()
    with pytest.raises(InputError, match="torch optimizer SGD is no TF1 twin"):
        P.step_parity(mlp_graph(CASES["momentum"][0]), torch_net, xent,
                      torch.optim.SGD(torch_net.parameters(), 0.1, momentum=0.9), BATCHES, NAME_MAP)
    with pytest.raises(InputError, match=r"trains with MomentumOptimizer \(ApplyMomentum\), the torch "
                                         "optimizer is AdamOptimizer"):
        P.step_parity(mlp_graph(CASES["momentum"][0]), torch_net, xent,
                      P.AdamOptimizer(torch_net.parameters(), 0.1), BATCHES, NAME_MAP)


@pytest.mark.parametrize("schedule", [(0.3, 3, 0.7, False), (0.1, 10, 0.96, False), (0.1, 5, 0.9, False),
                                      (0.01, 4, 0.5, True), (0.2, 7, 0.3, True)])
def test_exponential_decay_is_tf1s_to_the_last_bit(schedule):
    lr, steps, rate, staircase = schedule
    with tf.Graph().as_default(), tf1.Session() as sess:
        step = tf1.train.get_or_create_global_step()
        decayed = tf1.train.exponential_decay(lr, step, steps, rate, staircase=staircase)
        increment = tf1.assign_add(step, 1)
        sess.run(tf1.global_variables_initializer())
        values = [(sess.run(decayed), sess.run(increment))[0] for _ in range(40)]
    twin = P.exponential_decay(lr, steps, rate, staircase)
    assert [np.float32(twin(k)) for k in range(40)] == values


def test_piecewise_constant_is_tf1s():
    with tf.Graph().as_default(), tf1.Session() as sess:
        step = tf1.train.get_or_create_global_step()
        value = tf1.train.piecewise_constant(step, [3, 7], [0.1, 0.01, 0.001])
        increment = tf1.assign_add(step, 1)
        sess.run(tf1.global_variables_initializer())
        values = [(sess.run(value), sess.run(increment))[0] for _ in range(10)]
    twin = P.piecewise_constant([3, 7], [0.1, 0.01, 0.001])
    assert [np.float32(twin(k)) for k in range(10)] == values
    with pytest.raises(InputError, match="one more value than boundaries"):
        P.piecewise_constant([1, 2], [0.1])


def test_twins_keep_tf1s_slot_names_and_initial_values():
    p = nn.Parameter(torch.zeros(2, dtype=torch.float64))
    p.grad = torch.ones(2, dtype=torch.float64)
    rms = P.RMSPropOptimizer([p], 0.1, momentum=0.5, centered=True)
    rms.step()
    assert list(rms.state[p]) == ["rms", "mg", "momentum"]         # TF1's order of creation
    np.testing.assert_allclose(rms.state[p]["rms"].numpy(), 1 + (1 - 1) * np.float32(0.1))   # starts at 1
    adagrad = P.AdagradOptimizer([p], 0.1)
    adagrad.step()
    assert adagrad.state[p]["accumulator"][0].item() == 0.1 + 1.0     # starts at 0.1 (float64, not rounded)
    momentum = P.MomentumOptimizer([p], 0.1, 0.9)
    assert momentum.kernel_inputs(momentum.param_groups[0], torch.float64) == {
        "lr": float(np.float32(0.1)), "momentum": float(np.float32(0.9))}
    with pytest.raises(ValueError, match="learning_rate must be > 0"):
        P.GradientDescentOptimizer([p], 0.0)
