"""Parity, step by step, of the one-vs-all and multi-label sigmoid nets: TF1 graph against the port.

Both sides start from the same numbers (the tutorial's Glorot seed-1 ``W1``, ``W2`` and a slice
of its ``W3``, never re-drawn), see the same mini-batches (``signs.minibatch_indices``) and use
the same Adam (TF1's ``AdamOptimizer`` against ``torch_port.optim.TFAdam``). After every step
the hooks record the mini-batch cost and all parameters; the two records must agree.

Differences are normwise per tensor, ``max|a - b| / max|a|`` (element-wise ratios blow up on
near-zero entries). They are measured twice: on the parameters themselves, and on how far they
moved from where they started (``params - initial``), which is the stricter figure: with the
tutorial's learning rate 1e-4 a few steps move the weights by ~1e-3 of their size, so a
difference in the updates alone would hide below the parameters' own size.

Small and fast on purpose: 64 synthetic images, mini-batches of 32, 2-3 epochs.
"""

from __future__ import annotations

import numpy as np
import pytest

from signs import convert_to_one_hot, flatten, multilabel, synthetic

pytest.importorskip("tensorflow", reason="TensorFlow is not installed: TF-vs-torch parity cannot run "
                    "(pip install '.[tensorflow]')")

from tf_original import classification as tf_side  # noqa: E402  (after the skip)
from torch_port import classification as torch_side  # noqa: E402

pytestmark = pytest.mark.tf

TOLERANCES = {
    # float64: both sides evaluate the same formulas, TF1's Adam form included, so the only
    # differences are summation order in the matmuls (12288-term sums) and exp/log1p rounding,
    # ~1e-16 relative each. Adam divides by sqrt(v) + eps, which for gradients near eps/sqrt(v)
    # turns a tiny gradient's relative round-off into an absolute one. Measured: ~2e-14 on the
    # parameters, ~4e-12 on their displacement, ~3e-16 on the costs. 1e-10 / 1e-9 / 1e-12 leave
    # two orders of margin or more and still catch any real formula difference (a port using
    # torch.optim.Adam's epsilon placement is off by ~3e-3 after one step).
    "float64": {"params": 1e-10, "moved": 1e-9, "cost": 1e-12},
    # float32: the same effects at float32's 6e-8 resolution, plus oneDNN (TF) and torch's BLAS
    # summing the 12288-term products in different orders (~1e-6 relative on a matmul). Step 1
    # is the worst case for the displacement: v is ~0 there, so Adam's update is ~lr * sign(g)
    # and entries whose gradient is at round-off level can flip. Measured: ~7e-6 on the
    # parameters, ~1.6e-3 on the displacement, ~1.2e-7 (2 ulps) on the costs; 1e-4 / 2e-2 / 1e-5
    # keep a 12x margin or more.
    "float32": {"params": 1e-4, "moved": 2e-2, "cost": 1e-5},
}


def normwise(a, b) -> float:
    """``max|a - b| / max|a|`` (``max|a - b|`` when ``a`` is all zeros)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    scale = np.abs(a).max()
    difference = np.abs(a - b).max()
    return float(difference / scale) if scale > 0 else float(difference)


def compare(tf_records, torch_records, initial, dtype):
    """The worst normwise differences over every step; asserts the records line up step for step."""
    assert len(tf_records) == len(torch_records) > 0
    worst = {"params": 0.0, "moved": 0.0, "cost": 0.0}
    for a, b in zip(tf_records, torch_records):
        assert (a["epoch"], a["step"], a.get("classifier")) == (b["epoch"], b["step"], b.get("classifier"))
        worst["cost"] = max(worst["cost"], abs(a["cost"] - b["cost"]) / abs(a["cost"]))
        start = initial(a)
        for name, value in a["params"].items():
            assert value.dtype == b["params"][name].dtype == np.dtype(dtype)
            worst["params"] = max(worst["params"], normwise(value, b["params"][name]))
            moved = normwise(value - start[name], b["params"][name] - start[name])
            worst["moved"] = max(worst["moved"], moved)
    return worst


def check(worst, dtype):
    for key, value in worst.items():
        assert value <= TOLERANCES[dtype][key], f"{dtype} {key}: {value:.3g} > {TOLERANCES[dtype][key]:g}"


@pytest.fixture(scope="module")
def hands():
    """64 synthetic SIGNS-like images: ``X`` (12288, 64) float64 and one-hot ``Y`` (6, 64)."""
    images, labels = synthetic.generate(64, seed=11)
    return flatten(images, np.float64), convert_to_one_hot(labels, 6)


@pytest.fixture(scope="module")
def shapes():
    """64 shapes images: ``X`` (12288, 64) float64 and multi-hot ``Y`` (3, 64)."""
    images, labels = multilabel.generate(64, seed=12)
    return flatten(images, np.float64), labels.astype(np.float64)


def run_both(function, X, Y, dtype, epochs):
    """``function`` (``one_vs_all`` or ``multi_label``) on both sides; their hooks' records and results."""
    records, results = [], []
    for side in (tf_side, torch_side):
        recorded = []
        results.append(getattr(side, function)(X.astype(dtype), Y.astype(dtype), 0.0001, epochs, 32,
                                               dtype=dtype, seed=3, hook=recorded.append))
        records.append(recorded)
    return records, results


@pytest.mark.parametrize("dtype, classes", [
    ("float64", 6),
    ("float32", 2),  # TF builds a graph per classifier (~0.3 s each): 2 of the 6 are enough here
])
def test_one_vs_all_parity(hands, dtype, classes):
    X, Y = hands
    (tf_records, torch_records), (tf_result, torch_result) = run_both("one_vs_all", X, Y[:classes], dtype,
                                                                      epochs=2)
    assert len(tf_records) == classes * 2 * 2  # classifiers x 2 epochs x 2 mini-batches
    initial = {c: multilabel.initial_parameters_for_outputs([c], dtype) for c in range(classes)}
    worst = compare(tf_records, torch_records, lambda record: initial[record["classifier"]], dtype)
    print(f"one-vs-all {dtype}: {worst}")
    check(worst, dtype)
    assert worst["moved"] < 1 and all(r["params"]["W3"].shape == (1, 12) for r in tf_records)

    (tf_classifiers, tf_costs), (torch_classifiers, torch_costs) = tf_result, torch_result
    np.testing.assert_allclose(tf_costs, torch_costs, rtol=TOLERANCES[dtype]["cost"])
    tf_scores = np.concatenate([tf_side.output_logits(X.astype(dtype), p) for p in tf_classifiers])
    torch_scores = np.concatenate([torch_side.output_logits(X.astype(dtype), p) for p in torch_classifiers])
    assert tf_scores.shape == (classes, 64)
    assert normwise(tf_scores, torch_scores) <= TOLERANCES[dtype]["params"]
    agree = np.mean(tf_side.predict_one_vs_all(tf_scores) == torch_side.predict_one_vs_all(torch_scores))
    assert agree >= (1.0 if dtype == "float64" else 0.95)  # float32: a near-tie may flip


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_multi_label_parity(shapes, dtype):
    X, Y = shapes
    (tf_records, torch_records), (tf_result, torch_result) = run_both("multi_label", X, Y, dtype, epochs=3)
    assert len(tf_records) == 3 * 2
    initial = multilabel.initial_parameters_for_outputs(3, dtype)
    worst = compare(tf_records, torch_records, lambda record: initial, dtype)
    print(f"multi-label {dtype}: {worst}")
    check(worst, dtype)

    (tf_parameters, tf_costs), (torch_parameters, torch_costs) = tf_result, torch_result
    assert tf_parameters["W3"].shape == (3, 12)
    np.testing.assert_allclose(tf_costs, torch_costs, rtol=TOLERANCES[dtype]["cost"])
    tf_probabilities = tf_side.sigmoid(tf_side.output_logits(X.astype(dtype), tf_parameters))
    torch_probabilities = torch_side.sigmoid(torch_side.output_logits(X.astype(dtype), torch_parameters))
    assert normwise(tf_probabilities, torch_probabilities) <= TOLERANCES[dtype]["params"]
    assert tf_costs[-1] < tf_costs[0]  # it learns: the check is not between two frozen nets
