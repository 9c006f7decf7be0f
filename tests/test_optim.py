"""Adam, two ways: TF1's formula (``TFAdam``) and ``torch.optim.Adam``, on hand-computed steps.

TF1:   m += (g - m)(1 - b1);  v += (g^2 - v)(1 - b2);  lr_t = lr sqrt(1 - b2^t) / (1 - b1^t);
       p -= lr_t m / (sqrt(v) + eps), with lr, b1, b2, eps float32 constants and b^t a float32
       accumulator multiplied by b after each step.
torch: m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2;
       p -= lr (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps).
"""

from __future__ import annotations

import io

import numpy as np
import pytest
from signs_testing import NO_TF_REASON

torch = pytest.importorskip("torch")

from torch_port.optim import TFAdam, make_optimizer  # noqa: E402

LR, B1, B2, EPS = 1e-4, 0.9, 0.999, 1e-8
P0 = np.array([0.5, -1.25, 2.0, 0.0])
GRADS = [np.array([0.3, -2e-3, 1e-6, -4e-8]), np.array([-0.1, -1e-3, 3e-6, 5e-8]),
         np.array([0.2, 4e-3, -2e-6, 1e-7])]


def tf1_reference(steps, dtype=np.float64, beta_powers="tf1"):
    """TF1's AdamOptimizer by hand, in NumPy: the parameter after each step."""
    real = np.dtype(dtype).type
    lr, b1, b2, eps = (real(np.float32(c)) for c in (LR, B1, B2, EPS))
    beta1_power, beta2_power = np.float32(B1), np.float32(B2)
    p, m, v = P0.astype(dtype), np.zeros(4, dtype), np.zeros(4, dtype)
    out = []
    for t, g in enumerate(GRADS[:steps], start=1):
        g = g.astype(dtype)
        if beta_powers == "tf1":
            p1, p2 = real(beta1_power), real(beta2_power)
        else:  # Keras 3: beta ** t in the variable's dtype
            p1, p2 = b1 ** real(t), b2 ** real(t)
        lr_t = lr * np.sqrt(real(1) - p2) / (real(1) - p1)
        m = m + (g - m) * (real(1) - b1)
        v = v + (g * g - v) * (real(1) - b2)
        p = p - (m * lr_t) / (np.sqrt(v) + eps)
        beta1_power = np.float32(beta1_power * np.float32(B1))
        beta2_power = np.float32(beta2_power * np.float32(B2))
        out.append(p.copy())
    return out


def torch_reference(steps):
    """torch.optim.Adam's documented update by hand, in float64."""
    p, m, v = P0.copy(), np.zeros(4), np.zeros(4)
    out = []
    for t, g in enumerate(GRADS[:steps], start=1):
        m = B1 * m + (1 - B1) * g
        v = B2 * v + (1 - B2) * g * g
        p = p - LR * (m / (1 - B1 ** t)) / (np.sqrt(v / (1 - B2 ** t)) + EPS)
        out.append(p.copy())
    return out


def run(optimizer_name, steps, dtype=torch.float64, grads=GRADS):
    """Apply ``grads`` with the named optimizer; the parameter after each step."""
    p = torch.tensor(P0, dtype=dtype, requires_grad=True)
    optimizer = make_optimizer(optimizer_name, [p], LR)
    out = []
    for g in grads[:steps]:
        p.grad = torch.as_tensor(g, dtype=dtype).clone()
        optimizer.step()
        out.append(p.detach().numpy().copy())
    return out, optimizer, p


def test_tf_adam_one_and_two_steps_by_hand_float64():
    expected = tf1_reference(2)
    actual, _, _ = run("tf-adam", 2)
    for step in range(2):
        np.testing.assert_allclose(actual[step], expected[step], rtol=1e-15, atol=0)
    assert not np.array_equal(actual[0], P0) and not np.array_equal(actual[1], actual[0])


def test_tf_adam_by_hand_float32():
    expected = tf1_reference(3, np.float32)
    actual, _, _ = run("tf-adam", 3, torch.float32)
    for step in range(3):
        assert actual[step].dtype == np.float32
        np.testing.assert_allclose(actual[step], expected[step], rtol=2e-7, atol=0)


def test_tf_adam_uses_float32_constants_even_in_float64():
    """TF1 turns lr, betas and epsilon into float32 constants (lr 1e-4 becomes
    9.99999974737875e-05): in float64 that moves the step by ~1e-8 relative, which the port
    must reproduce; exact float64 constants give a visibly different step."""
    actual, _, _ = run("tf-adam", 1)
    g = GRADS[0]
    m, v = (1 - B1) * g, (1 - B2) * g * g  # exact float64 constants
    exact = P0 - (LR * np.sqrt(1 - B2) / (1 - B1)) * m / (np.sqrt(v) + EPS)
    step, exact_step = P0 - actual[0], P0 - exact
    assert np.abs(step - exact_step).max() > 1e-12 * np.abs(exact_step).max()
    # 1 - float32(0.999) is 1.3e-5 away from 0.001 (relative); it matters where |g| ~ eps
    np.testing.assert_allclose(step, exact_step, rtol=2e-5)


def test_tf_adam_beta_powers_are_float32_accumulators():
    """TF1's beta1_power starts at float32(beta) and is multiplied by it in float32 after each step."""
    p = torch.nn.Parameter(torch.zeros(3, dtype=torch.float64))
    adam = TFAdam([p], lr=1e-4)
    group = adam.param_groups[0]
    assert group["beta2_power"] == np.float32(0.999)
    for _ in range(2):
        p.grad = torch.ones(3, dtype=torch.float64)
        adam.step()
    b1 = np.float32(0.9)
    assert group["beta1_power"] == np.float32(np.float32(b1 * b1) * b1)
    assert group["step"] == 2


def test_torch_adam_one_and_two_steps_by_hand():
    expected = torch_reference(2)
    actual, optimizer, _ = run("adam", 2)
    assert isinstance(optimizer, torch.optim.Adam)
    for step in range(2):
        np.testing.assert_allclose(actual[step], expected[step], rtol=1e-14, atol=0)


def test_the_two_formulas_differ_by_where_epsilon_goes():
    """Step 1 on the same gradient g: TF1 gives lr g / (|g| + eps / sqrt(1 - b2)), torch gives
    lr g / (|g| + eps): TF1's epsilon acts ~1/sqrt(1 - b2) = 31.6 times larger. The measured
    gap must be what those two closed forms predict, largest where |g| is near epsilon."""
    tf_after, _, _ = run("tf-adam", 1)
    torch_after, _, _ = run("adam", 1)
    g = GRADS[0]
    tf_step = LR * g / (np.abs(g) + EPS / np.sqrt(1 - B2))
    torch_step = LR * g / (np.abs(g) + EPS)
    predicted = torch_step - tf_step  # p_tf - p_torch
    measured = tf_after[0] - torch_after[0]
    assert np.all(measured != 0)
    # TFAdam's float32 constants (lr, 1 - beta2) shift the TF step by ~1e-7 relative.
    np.testing.assert_allclose(measured, predicted, rtol=1e-3, atol=LR * 1e-6)
    # relative to the step: negligible for |g| = 0.3, dominant for |g| = 4e-8 ~ 4 eps
    relative = np.abs(measured) / np.abs(torch_step)
    assert relative[0] < 1e-5 and relative[3] > 0.5


def test_drift_between_the_formulas_accumulates():
    """With a constant gradient both take a step of ~lr each time, and TF1's effective epsilon
    eps / sqrt(1 - b2^t) shrinks towards eps, so the gap grows every step, by the closed form."""
    g = np.full(4, 2e-7)
    grads = [g] * 100
    tf_path, _, _ = run("tf-adam", 100, grads=grads)
    torch_path, _, _ = run("adam", 100, grads=grads)
    gaps = np.array([(a - b)[0] for a, b in zip(tf_path, torch_path)])
    t = np.arange(1, 101)
    predicted = np.cumsum(LR * g[0] * (1 / (g[0] + EPS) - 1 / (g[0] + EPS / np.sqrt(1 - B2 ** t))))
    assert np.all(np.diff(gaps) > 0)
    np.testing.assert_allclose(gaps, predicted, rtol=1e-3)
    assert gaps[-1] > 10 * gaps[0]


def test_keras_adam_uses_beta_to_the_t():
    expected = tf1_reference(3, beta_powers="keras")
    actual, optimizer, _ = run("keras-adam", 3)
    assert optimizer.beta_powers == "keras"
    for step in range(3):
        np.testing.assert_allclose(actual[step], expected[step], rtol=1e-15, atol=0)
    tf1_path, _, _ = run("tf-adam", 3)
    assert np.array_equal(actual[0], tf1_path[0])  # t = 1: b ** 1 is the accumulator's start
    # by step 3 the float32 accumulators and pow differ: a tiny, real change of the update
    gap = np.abs(actual[2] - tf1_path[2]).max() / np.abs(P0 - tf1_path[2]).max()
    assert 0 < gap < 1e-5, gap


def test_state_dict_round_trip_with_weights_only():
    _, optimizer, p = run("tf-adam", 2)
    buffer = io.BytesIO()
    torch.save(optimizer.state_dict(), buffer)
    buffer.seek(0)
    state = torch.load(buffer, weights_only=True)
    q = p.detach().clone().requires_grad_(True)
    restored = TFAdam([q], lr=LR)
    restored.load_state_dict(state)
    assert restored.param_groups[0]["beta1_power"] == optimizer.param_groups[0]["beta1_power"]
    assert restored.param_groups[0]["step"] == 2
    for param in (p, q):
        param.grad = torch.as_tensor(GRADS[2]).clone()
    optimizer.step()
    restored.step()
    assert torch.equal(p, q)
    np.testing.assert_allclose(q.detach().numpy(), tf1_reference(3)[2], rtol=1e-15, atol=0)


def test_bad_optimizer_arguments():
    p = torch.zeros(2, requires_grad=True)
    with pytest.raises(ValueError, match="unknown optimizer"):
        make_optimizer("sgd", [p], 0.1)
    with pytest.raises(ValueError, match="learning rate"):
        TFAdam([p], lr=0)
    with pytest.raises(ValueError, match="beta_powers"):
        TFAdam([p], beta_powers="tf2")


@pytest.mark.tf
def test_tf_adam_equals_tensorflow_adam_optimizer():
    """The real TF1 AdamOptimizer on the same start and gradients: identical in float64."""
    tf = pytest.importorskip("tensorflow", reason=NO_TF_REASON)
    tf1 = tf.compat.v1
    with tf.Graph().as_default():
        var = tf1.Variable(P0, dtype=tf.float64)
        grad = tf1.placeholder(tf.float64, [4])
        train = tf1.train.AdamOptimizer(LR).apply_gradients([(grad, var)])
        with tf1.Session() as sess:
            sess.run(tf1.global_variables_initializer())
            expected = []
            for g in GRADS:
                sess.run(train, {grad: g})
                expected.append(sess.run(var))
    actual, _, _ = run("tf-adam", 3)
    for step in range(3):
        np.testing.assert_allclose(actual[step], expected[step], rtol=1e-15, atol=0)
