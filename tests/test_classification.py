"""Softmax, sigmoid and their losses on both sides: the course notes' worked examples, from-scratch
against fused, TF against torch; the multi-label shapes set; the classification CLIs.

Layout everywhere: ``(classes or labels, examples)``; a 1-D vector is one example.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from signs import multilabel
from signs.weights import load_initial_parameters

NEEDS_TF = "TensorFlow is not installed: the tf_original side cannot run (pip install '.[tensorflow]')"


def _side(name):
    if name == "tf":
        pytest.importorskip("tensorflow", reason=NEEDS_TF)
        from tf_original import classification
    else:
        from torch_port import classification
    return classification


@pytest.fixture(params=["torch", pytest.param("tf", marks=pytest.mark.tf)])
def side(request):
    """``torch_port.classification`` or ``tf_original.classification`` (skipped without TF)."""
    return _side(request.param)


@pytest.fixture
def both():
    """Both sides, for cross-framework checks (skipped without TF)."""
    return _side("tf"), _side("torch")


# ---------------------------------------------------------------- the notes' worked examples

NOTES_Z = [5.0, 2.0, -1.0, 3.0]


def test_softmax_worked_example(side):
    # e^z = [148.4, 7.4, 0.4, 20.1], sum 176.3, as the notes print them (1 decimal)
    assert np.round(np.exp(NOTES_Z), 1).tolist() == [148.4, 7.4, 0.4, 20.1]
    assert round(float(np.exp(NOTES_Z).sum()), 1) == 176.3
    a = side.softmax(NOTES_Z)
    assert np.round(a, 3).tolist() == [0.842, 0.042, 0.002, 0.114]
    assert a.sum() == pytest.approx(1.0, abs=1e-15)
    assert a.dtype == np.float64  # a Python list is float64, NumPy's default


def test_hardmax_worked_example(side):
    assert side.hardmax(NOTES_Z).tolist() == [1, 0, 0, 0]
    # the notes' second example writes z4 = -3 (and still prints softmax with z4 = 3): same hardmax
    assert side.hardmax([5.0, 2.0, -1.0, -3.0]).tolist() == [1, 0, 0, 0]
    columns = np.array([[5.0, 0.0], [2.0, 1.0], [-1.0, 7.0], [3.0, 2.0]])  # two examples
    assert side.hardmax(columns).tolist() == [[1, 0], [0, 0], [0, 1], [0, 0]]


def test_softmax_with_two_classes_is_logistic_regression(side):
    # softmax([z1, z2])_1 = e^z1 / (e^z1 + e^z2) = 1 / (1 + e^-(z1 - z2)) = sigmoid(z1 - z2)
    z = np.array([[5.0, 0.0, -3.0, 0.7, 20.0], [2.0, 0.0, 1.5, -0.2, -20.0]])
    a = side.softmax(z)
    s = side.sigmoid(z[0] - z[1])
    np.testing.assert_allclose(a[0], s, rtol=1e-15, atol=1e-15)
    np.testing.assert_allclose(a[1], 1 - s, rtol=1e-14, atol=1e-15)
    assert round(float(a[0, 0]), 3) == round(float(s[0]), 3) == 0.953  # z = [5, 2]


def test_sigmoid_notes_values(side):
    assert side.sigmoid(0.0) == 0.5
    assert round(float(side.sigmoid(4.6)), 2) == 0.99  # "Z(+4.6) ~ 1"
    assert round(float(side.sigmoid(-4.6)), 2) == 0.01  # "Z(-4.6) ~ 0"
    z = np.linspace(-8, 8, 17)
    np.testing.assert_allclose(side.sigmoid(z), np.exp(z) / (1 + np.exp(z)), rtol=1e-15)  # the 2nd form


def test_cross_entropy_worked_example_and_log_base(side):
    y = [0, 1, 0, 0]
    y_hat = [0.3, 0.2, 0.1, 0.4]
    loss = float(side.cross_entropy(y_hat, y))
    # Both frameworks use the natural log: -ln(0.2) = 1.6094...
    assert loss == pytest.approx(-math.log(0.2), rel=1e-15)
    assert round(loss, 3) == 1.609
    # The notes print 0.698: that is base 10, -log10(0.2) = 0.69897..., which ROUNDS to 0.699;
    # 0.698 is the value truncated to 3 digits, not rounded.
    assert round(-math.log10(0.2), 3) == 0.699
    assert math.floor(-math.log10(0.2) * 1000) / 1000 == 0.698
    assert round(loss / math.log(10), 3) == 0.699  # change of base: log10(x) = ln(x) / ln(10)


def test_binary_cross_entropy_worked_example_is_natural_log(side):
    # loss = -[log(0.6) + log(1 - 0.7) + log(0.4)]: y = [1, 0, 1], a = [0.6, 0.7, 0.4]
    loss = float(side.binary_cross_entropy([0.6, 0.7, 0.4], [1, 0, 1]))
    assert loss == pytest.approx(-(math.log(0.6) + math.log(0.3) + math.log(0.4)), rel=1e-15)
    assert round(loss, 3) == 2.631
    assert round(loss, 2) == 2.63  # the notes' value: natural log
    base10 = -(math.log10(0.6) + math.log10(0.3) + math.log10(0.4))
    assert round(base10, 3) == 1.143  # base 10 would print 1.14, not 2.63


# ---------------------------------------------------------------- from scratch against fused

def _logits_and_targets(dtype=np.float64):
    rng = np.random.default_rng(7)
    Z = rng.normal(0, 3, size=(6, 50)).astype(dtype)
    Y = np.eye(6, dtype=dtype)[:, rng.integers(0, 6, size=50)]
    multi_hot = (rng.random((6, 50)) < 0.5).astype(dtype)
    return Z, Y, multi_hot


def test_from_scratch_equals_fused(side):
    Z, Y, multi_hot = _logits_and_targets()
    np.testing.assert_allclose(side.cross_entropy(side.softmax(Z), Y),
                               side.fused_softmax_cross_entropy(Z, Y), rtol=1e-12)
    np.testing.assert_allclose(side.binary_cross_entropy(side.sigmoid(Z), multi_hot),
                               side.fused_sigmoid_cross_entropy(Z, multi_hot), rtol=1e-12)
    assert side.fused_softmax_cross_entropy(Z, Y).shape == (50,)
    assert side.fused_sigmoid_cross_entropy(Z, multi_hot).shape == (50,)


def test_fused_is_stable_where_from_scratch_is_not(side):
    # softmax gives exactly 0 for the true class when its logit is 1000 below: log(0) = -inf
    z, y = np.array([1000.0, 0.0]), np.array([0.0, 1.0])
    assert np.isinf(side.cross_entropy(side.softmax(z), y))
    assert float(side.fused_softmax_cross_entropy(z[:, None], y[:, None])[0]) == pytest.approx(1000.0)
    assert side.softmax(z).tolist() == [1.0, 0.0]  # no overflow: the maximum is subtracted first
    assert float(side.fused_sigmoid_cross_entropy(np.array([[-800.0]]), np.array([[1.0]]))[0]) == 800.0


def test_dtype_is_kept(side):
    Z, Y, multi_hot = _logits_and_targets(np.float32)
    for result in (side.softmax(Z), side.hardmax(Z), side.sigmoid(Z), side.cross_entropy(side.softmax(Z), Y),
                   side.binary_cross_entropy(side.sigmoid(Z), multi_hot),
                   side.fused_softmax_cross_entropy(Z, Y), side.fused_sigmoid_cross_entropy(Z, multi_hot)):
        assert isinstance(result, np.ndarray) and result.dtype == np.float32


def test_predictions(side):
    scores = np.array([[0.9, 0.2, 0.1], [0.3, 0.8, 0.1], [0.2, 0.1, 0.4]])  # 3 classifiers x 3 examples
    prediction = side.predict_one_vs_all(scores)
    assert prediction.tolist() == [0, 1, 2] and prediction.dtype == np.int64
    probabilities = np.array([[0.6, 0.2], [0.7, 0.5], [0.4, 0.9]])
    chosen = side.predict_multi_label(probabilities)
    assert chosen.tolist() == [[1, 0], [1, 1], [0, 1]] and chosen.dtype == np.int64
    assert side.predict_multi_label(probabilities, threshold=0.65).tolist() == [[0, 0], [1, 0], [0, 1]]
    with pytest.raises(ValueError, match="threshold"):
        side.predict_multi_label(probabilities, threshold=1.5)


# ---------------------------------------------------------------- TF against torch

@pytest.mark.tf
@pytest.mark.parametrize("dtype, rtol", [
    # float64: both compute the same formulas; only summation order and exp/log rounding
    # differ (a few ulps), so 1e-12 is already 10 000 ulps of slack.
    (np.float64, 1e-12),
    # float32: the same few ulps at float32's 6e-8 each; 1e-5 allows ~100 of them.
    (np.float32, 1e-5),
])
def test_tf_and_torch_agree(both, dtype, rtol):
    tf_side, torch_side = both
    Z, Y, multi_hot = _logits_and_targets(dtype)
    pairs = {
        "softmax": (Z,), "hardmax": (Z,), "sigmoid": (Z,),
        "cross_entropy": (torch_side.softmax(Z), Y),
        "binary_cross_entropy": (torch_side.sigmoid(Z), multi_hot),
        "fused_softmax_cross_entropy": (Z, Y), "fused_sigmoid_cross_entropy": (Z, multi_hot),
        "predict_one_vs_all": (Z,), "predict_multi_label": (torch_side.sigmoid(Z),),
    }
    for name, arguments in pairs.items():
        a = getattr(tf_side, name)(*arguments)
        b = getattr(torch_side, name)(*arguments)
        assert a.dtype == b.dtype and a.shape == b.shape, name
        np.testing.assert_allclose(a, b, rtol=rtol, atol=0, err_msg=name)


def test_same_functions_in_the_same_order(both):
    tf_side, torch_side = both

    def public(module):
        import inspect

        return [(name, list(inspect.signature(f).parameters)) for name, f in vars(module).items()
                if inspect.isfunction(f) and f.__module__ == module.__name__ and not name.startswith("_")]
    assert public(tf_side) == public(torch_side)


# ---------------------------------------------------------------- the multi-label shapes set

def test_multilabel_set_is_deterministic_and_well_formed():
    images, labels = multilabel.generate(200, seed=3)
    assert images.shape == (200, 64, 64, 3) and images.dtype == np.uint8
    assert labels.shape == (3, 200) and labels.dtype == np.int64
    assert set(np.unique(labels)) == {0, 1}
    patterns = {tuple(column) for column in labels.T}
    assert len(patterns) == 8  # every subset of {circle, square, triangle}, the empty one included
    assert 0.35 < labels.mean() < 0.65
    again_images, again_labels = multilabel.generate(200, seed=3)
    assert np.array_equal(images, again_images) and np.array_equal(labels, again_labels)
    other_images, _ = multilabel.generate(200, seed=4)
    assert not np.array_equal(images, other_images)


def test_multilabel_shapes_are_where_the_labels_say():
    rng = np.random.default_rng(0)
    empty = multilabel.render(np.array([0, 0, 0]), rng)
    full = multilabel.render(np.array([1, 1, 1]), rng)
    # shapes are bright (every channel >= 150 before noise), the background dark
    assert (empty.min(axis=2) > 170).sum() < 20
    assert (full.min(axis=2) > 170).sum() > 300


def test_multilabel_load_and_initial_parameters():
    train_x, train_y, test_x, test_y, shapes = multilabel.load_multilabel(20, 10, seed=1)
    assert train_x.shape == (20, 64, 64, 3) and test_y.shape == (3, 10) and shapes == multilabel.SHAPES
    tutorial = load_initial_parameters("float64")
    three = multilabel.initial_parameters_for_outputs(3, "float64")
    assert three["W3"].shape == (3, 12) and three["b3"].shape == (3, 1)
    assert np.array_equal(three["W3"], tutorial["W3"][:3]) and np.array_equal(three["W1"], tutorial["W1"])
    row = multilabel.initial_parameters_for_outputs([4], "float32")
    assert row["W3"].shape == (1, 12) and row["W3"].dtype == np.float32
    assert np.array_equal(row["W3"][0], load_initial_parameters("float32")["W3"][4])
    with pytest.raises(ValueError):
        multilabel.initial_parameters_for_outputs([6])


# ---------------------------------------------------------------- the command line

def test_cli_bad_values_exit_2(side, capsys, tmp_path):
    from signs.cli import run_main

    for argv in (["--dtype", "float16"], ["--epochs", "-1"], ["--data", "imagenet"]):
        with pytest.raises(SystemExit) as stopped:
            side.main(argv)
        assert stopped.value.code == 2
    capsys.readouterr()
    assert run_main(side.main, ["--data", "signs", "--data-dir", str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "does not exist" in err and "\n" not in err


def test_cli_prints_the_table(side, capsys):
    assert side.main(["--epochs", "0", "--data", "synthetic"]) == 0
    out = capsys.readouterr().out
    for text in ("softmax net", "one-vs-all", "multi-label", "train acc.", "test acc."):
        assert text in out
