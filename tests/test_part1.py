"""Part 1 of the tutorial on both sides: the notebook's printed values, and TF == torch.

The expected numbers are the ones the notebook prints (SPEC.md's recipes), cross-checked
against plain NumPy where a formula exists.
"""

from __future__ import annotations

import importlib

import numpy as np
import pytest
from signs_testing import require_tf

SIDES = [pytest.param("tf_original", marks=pytest.mark.tf), "torch_port"]

# The notebook's printed results.
LINEAR_FUNCTION = np.array([[-2.15657382], [2.95891446], [-1.08926781], [-0.84538042]])
COST = np.array([1.00538719, 1.03664088, 0.41385433, 0.39956617])
ONE_HOT = np.array([[0., 0., 0., 1., 0., 0.],
                    [1., 0., 0., 0., 0., 1.],
                    [0., 1., 0., 0., 1., 0.],
                    [0., 0., 1., 0., 0., 0.]])


@pytest.fixture(params=SIDES)
def part1(request):
    if request.param == "tf_original":
        require_tf()
    else:
        pytest.importorskip("torch")
    return importlib.import_module(f"{request.param}.part1")


@pytest.fixture(scope="module")
def both():
    require_tf()
    return importlib.import_module("tf_original.part1"), importlib.import_module("torch_port.part1")


def test_loss_snippet(part1):
    assert part1.loss_snippet() == 9


def test_placeholder_snippet(part1):
    assert part1.placeholder_snippet() == 6
    assert part1.placeholder_snippet(-4) == -8


@pytest.mark.tf
def test_constants_snippet_tf_prints_a_tensor():
    require_tf()
    tf_part1 = importlib.import_module("tf_original.part1")
    printed, value = tf_part1.constants_snippet()
    # Building the graph computed nothing: printing c shows a symbolic tensor, not 20.
    assert printed.startswith('Tensor("Mul') and "dtype=int32" in printed and "20" not in printed
    assert value == 20


def test_constants_snippet_torch_prints_the_value():
    torch_part1 = importlib.import_module("torch_port.part1")
    printed, value = torch_part1.constants_snippet()
    assert printed.startswith("tensor(20")  # eager: the value is already there
    assert value == 20


def test_linear_function(part1):
    result = part1.linear_function()
    assert result.shape == (4, 1) and result.dtype == np.float64
    np.testing.assert_allclose(result, LINEAR_FUNCTION, rtol=0, atol=5e-9)
    # SPEC.md's recipe in plain NumPy: seed 1, then X (3, 1), W (4, 3), b (4, 1), in that order.
    np.random.seed(1)
    X, W, b = np.random.randn(3, 1), np.random.randn(4, 3), np.random.randn(4, 1)
    np.testing.assert_allclose(result, W @ X + b, rtol=1e-15)


def test_sigmoid(part1):
    assert part1.sigmoid(0) == 0.5
    np.testing.assert_allclose(part1.sigmoid(12), 0.999994, atol=5e-7)
    np.testing.assert_allclose(part1.sigmoid(12), 1 / (1 + np.exp(-12)), rtol=1e-7)
    assert np.asarray(part1.sigmoid(12)).dtype == np.float32


def test_cost_with_the_notebooks_already_sigmoided_logits(part1):
    logits = part1.sigmoid(np.array([0.2, 0.4, 0.7, 0.9]))
    labels = np.array([0, 0, 1, 1])
    result = part1.cost(logits, labels)
    assert result.shape == (4,) and result.dtype == np.float32
    np.testing.assert_allclose(result, COST, rtol=1e-6)
    # sigmoid cross-entropy with logits z: max(z, 0) - z * y + log(1 + exp(-|z|))
    z = logits.astype(np.float64)
    reference = np.maximum(z, 0) - z * labels + np.log1p(np.exp(-np.abs(z)))
    np.testing.assert_allclose(result, reference, rtol=1e-6)


def test_one_hot_matrix_is_classes_by_examples(part1):
    result = part1.one_hot_matrix(np.array([1, 2, 3, 0, 2, 1]), 4)
    assert result.shape == (4, 6) and result.dtype == np.float32
    assert np.array_equal(result, ONE_HOT)


def test_ones(part1):
    result = part1.ones([3])
    assert result.dtype == np.float32 and np.array_equal(result, [1., 1., 1.])
    assert part1.ones([2, 3]).shape == (2, 3)


@pytest.mark.tf
def test_torch_port_equals_tf_original(both):
    tf_part1, torch_part1 = both
    z = tf_part1.sigmoid(np.array([0.2, 0.4, 0.7, 0.9]))
    pairs = {
        "loss_snippet": (tf_part1.loss_snippet(), torch_part1.loss_snippet()),
        "placeholder_snippet": (tf_part1.placeholder_snippet(), torch_part1.placeholder_snippet()),
        "constants_snippet": (tf_part1.constants_snippet()[1], torch_part1.constants_snippet()[1]),
        "linear_function": (tf_part1.linear_function(), torch_part1.linear_function()),
        "sigmoid(0)": (tf_part1.sigmoid(0), torch_part1.sigmoid(0)),
        "sigmoid(12)": (tf_part1.sigmoid(12), torch_part1.sigmoid(12)),
        "sigmoid(vector)": (z, torch_part1.sigmoid(np.array([0.2, 0.4, 0.7, 0.9]))),
        "cost": (tf_part1.cost(z, [0, 0, 1, 1]), torch_part1.cost(z, [0, 0, 1, 1])),
        "one_hot_matrix": (tf_part1.one_hot_matrix([1, 2, 3, 0, 2, 1], 4),
                           torch_part1.one_hot_matrix([1, 2, 3, 0, 2, 1], 4)),
        "ones": (tf_part1.ones([3]), torch_part1.ones([3])),
    }
    for name, (tf_value, torch_value) in pairs.items():
        tf_value, torch_value = np.asarray(tf_value), np.asarray(torch_value)
        assert tf_value.dtype == torch_value.dtype, name
        assert tf_value.shape == torch_value.shape, name
        # float32 round-off: TF and torch may evaluate exp/log1p differently in the last bit
        np.testing.assert_allclose(torch_value, tf_value, rtol=2 * np.finfo(np.float32).eps,
                                   err_msg=name)
