"""Step parity for TF1 programs this project did not write (examples/tf1), against their torch
twins, float64, a whole epoch each, dropout included -- and the ways a port goes wrong, caught.

Data: random 28x28 "images" (flattened, or as 28 rows of 28 for the LSTM), batches of 8, one
"epoch" = 10 steps. Widths are shrunk; the architectures are the programs'.
"""

from __future__ import annotations

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow", reason="TensorFlow is not installed: TF1 parity needs it")

import torch  # noqa: E402

from examples.tf1 import _compat, layers_cnn, layers_cnn_torch, mnist_deep, mnist_deep_torch  # noqa: E402
from parity import tf1 as P  # noqa: E402
from parity.errors import TransferError  # noqa: E402
from parity.tolerances import generic_tolerances, tolerances_for  # noqa: E402
from signs.errors import InputError  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")
tf1 = tf.compat.v1
RNG = np.random.default_rng(4)
IMAGES = RNG.random((80, 784))
ONE_HOT = np.eye(10)[RNG.integers(0, 10, 80)]
EPOCH = [(IMAGES[i:i + 8], ONE_HOT[i:i + 8]) for i in range(0, 80, 8)]
DEEP = {"conv1": 4, "conv2": 8, "fc": 32}
KEEP_PROB = "dropout/Placeholder"   # mnist_deep's keep_prob placeholder, created in name_scope("dropout")
needs_legacy = pytest.mark.skipif(not _compat.has_legacy(), reason="tf.compat.v1 rnn_cell/layers need "
                                  "tf_keras with Keras 3 (pip install tf_keras)")


def deep_graph():
    net = mnist_deep.build("float64", **DEEP)
    return {"x": net["x"], "y": net["y_"], "output": net["y_conv"], "loss": net["cross_entropy"],
            "train_op": net["train_step"]}


def deep_parity(mode="teacher-forced", name_map=None, **options):
    net = mnist_deep_torch.DeepNN(**DEEP).double()
    options.setdefault("feeds", {KEEP_PROB: 0.5})
    optimizer = P.AdamOptimizer(net.parameters(), 1e-4)
    return P.step_parity(deep_graph, net, mnist_deep_torch.loss, optimizer, EPOCH,
                         name_map or mnist_deep_torch.name_map(DEEP["conv2"]), mode=mode, keep_prob=KEEP_PROB,
                         **options)


@pytest.mark.parametrize("mode", ["teacher-forced", "free-running"])
def test_mnist_deep_a_whole_epoch_with_shared_dropout_masks(mode):
    result = deep_parity(mode)
    assert result.passed, (result.table(), P.first_divergence(result))
    assert len(result.steps) == 10 and max(result.worst_rel.values()) < 1e-13
    assert set(result.tolerances) == {"output", "cost", "grads", "params", "m", "v"}
    # the masks were really drawn: dropout on and dropout off train differently
    assert result.notes == ["stochastic='share': TF1's dropout masks applied in torch: "
                            "dropout/dropout/SelectV2:0 -> dropout"]
    off = deep_parity(mode, stochastic="off")
    assert off.notes == ["stochastic='off': TF1 fed dropout/Placeholder:0=1.0; torch nn.Dropout p=0"]
    assert off.passed and abs(off.reference[0]["cost"] - result.reference[0]["cost"]) > 1e-6


def test_mnist_deep_without_the_flatten_permutation_is_caught_at_step_1():
    """fc1's kernel by its shape alone: transposed, but its rows in TF1's (h, w, c) order while
    torch flattens (c, h, w) -- every shape fits, the numbers do not."""
    wrong = dict(mnist_deep_torch.name_map(DEEP["conv2"]), **{"fc1/Variable": "fc1.weight"})
    result = deep_parity(name_map=wrong)
    assert not result.passed and "output" in result.failing
    assert P.first_divergence(result).startswith("first divergence at step 1: output ")
    assert result.worst_rel["output"] > 1e-2


def test_mnist_deep_with_an_untransposed_kernel_is_refused_before_training():
    wrong = dict(mnist_deep_torch.name_map(DEEP["conv2"]), **{"conv*/Variable": P.same("conv{1}.weight")})
    with pytest.raises(TransferError, match=r"^TF1 graph -> torch: 2 problems: conv1/Variable "
                                            r"\(5, 5, 1, 4\) as same .*use conv2d"):
        deep_parity(name_map=wrong)


def test_dropout_needs_its_training_value_and_a_torch_dropout_to_share_with():
    with pytest.raises(InputError, match=r"keep_prob dropout/Placeholder:0: give its training value in "
                                         "feeds="):
        deep_parity(feeds={})
    net = mnist_deep_torch.DeepNN(**DEEP).double()
    net.dropout = torch.nn.Identity()
    with pytest.raises(InputError, match=r"the graph has 1 dropout\(s\) \(dropout/dropout/SelectV2:0\), the "
                                         r"torch module 0 nn.Dropout with p > 0: pass dropouts="):
        P.step_parity(deep_graph, net, mnist_deep_torch.loss, P.AdamOptimizer(net.parameters(), 1e-4), EPOCH,
                      mnist_deep_torch.name_map(DEEP["conv2"]), feeds={KEEP_PROB: 0.5}, keep_prob=KEEP_PROB)


def test_a_graph_function_that_raises_is_one_line():
    def broken():
        raise ValueError("shapes (3, 4) and (5, 6)\nare incompatible")

    net = mnist_deep_torch.DeepNN(**DEEP).double()
    with pytest.raises(InputError) as caught:
        P.step_parity(broken, net, mnist_deep_torch.loss, P.AdamOptimizer(net.parameters()), EPOCH,
                      {"a": "b"})
    assert str(caught.value) == "build_graph() raised ValueError: shapes (3, 4) and (5, 6) are incompatible"
    with pytest.raises(InputError, match=r"returned a dict without loss"):
        P.step_parity(lambda: {"x": 1, "y": 2, "output": 3, "train_op": 4}, net, mnist_deep_torch.loss,
                      P.AdamOptimizer(net.parameters()), EPOCH, {"a": "b"})
    with pytest.raises(InputError, match=r"mode 'teacher': expected one of teacher-forced, free-running"):
        deep_parity("teacher")


# --- the LSTM classifier ---------------------------------------------------------------------------

SEQUENCES = [(x.reshape(-1, 28, 28), y) for x, y in EPOCH]


def lstm_parity(mode, unroll="static", make_tf=None, make_torch=None, units=8, freeze=True):
    from examples.tf1 import lstm_classifier, lstm_classifier_torch

    def build():
        optimizer = make_tf() if make_tf else tf1.train.GradientDescentOptimizer(0.5)
        net = lstm_classifier.build("float64", num_hidden=units, unroll=unroll, optimizer=optimizer)
        return {"x": net["X"], "y": net["Y"], "output": net["logits"], "loss": net["loss_op"],
                "train_op": net["train_op"]}

    net = lstm_classifier_torch.LSTMClassifier(28, units).double()
    if not freeze:
        net.lstm.bias_hh_l0.requires_grad_(True)
    params = [p for p in net.parameters() if p.requires_grad]
    optimizer = make_torch(params) if make_torch else P.GradientDescentOptimizer(params, 0.5)
    return P.step_parity(build, net, lstm_classifier_torch.loss, optimizer, SEQUENCES,
                         lstm_classifier_torch.NAME_MAP, mode=mode)


@needs_legacy
@pytest.mark.parametrize("mode, unroll", [("teacher-forced", "static"), ("free-running", "static"),
                                          ("free-running", "dynamic")])
def test_lstm_classifier_a_whole_epoch(mode, unroll):
    result = lstm_parity(mode, unroll)
    assert result.passed, (result.table(), P.first_divergence(result))
    assert max(result.worst_rel.values()) < 1e-12


@needs_legacy
def test_lstm_classifier_with_nesterov_momentum_and_a_decaying_rate():
    result = lstm_parity(
        "free-running",
        make_tf=lambda: tf1.train.MomentumOptimizer(
            tf1.train.exponential_decay(0.3, tf1.train.get_or_create_global_step(), 3, 0.7), 0.9,
            use_nesterov=True),
        make_torch=lambda p: P.MomentumOptimizer(p, P.exponential_decay(0.3, 3, 0.7), 0.9, use_nesterov=True))
    assert result.passed and not result.notes, (result.table(), result.notes)


@needs_legacy
def test_lstm_with_a_trainable_second_bias_is_refused():
    with pytest.raises(TransferError, match=r"torch lstm.bias_hh_l0 must be frozen .*one bias "
                                            r"\(rnn/basic_lstm_cell/bias\), torch two, and both would learn"):
        lstm_parity("teacher-forced", freeze=False)


# --- the tf.layers CNN -----------------------------------------------------------------------------

LABELS = [(x, np.argmax(y, axis=1)) for x, y in EPOCH]
# tf.compat.v1.losses.sparse_softmax_cross_entropy reduces in float32 even in a float64 graph
# (compute_weighted_loss casts the per-example losses to float32): the cost agrees only to
# float32 round-off, in an order of summation torch does not share (measured 1e-7 to 2e-7);
# its gradient is float32(1/8) = 1/8 exactly, so everything else keeps float64's 1e-10.
FLOAT32_LOSS = {"cost": 1e-6}


def layers_parity(training, **options):
    def build():
        net = layers_cnn.build("float64", **DEEP, learning_rate=0.05, training=training)
        return {"x": net["x"], "y": net["labels"], "output": net["logits"], "loss": net["loss"],
                "train_op": net["train_op"]}

    net = layers_cnn_torch.CNN(**DEEP).double()
    tolerances = {**generic_tolerances("float64", "free-running"), **FLOAT32_LOSS}
    optimizer = P.GradientDescentOptimizer(net.parameters(), 0.05)
    return P.step_parity(build, net, layers_cnn_torch.loss, optimizer, LABELS,
                         layers_cnn_torch.name_map(DEEP["conv2"]), mode="free-running",
                         tolerances=tolerances, **options)


@needs_legacy
def test_tf_layers_cnn_dropout_under_an_is_training_switch():
    """``dropout(training=is_training)`` is a tf.cond: its mask is out of reach, so it is read off
    the output (exact here: the dropout follows a ReLU). Found by name; without it, refused."""
    with pytest.raises(InputError, match=r"the graph has 0 dropout\(s\), the torch module 1 nn.Dropout with "
                                         r"p > 0 \(dropout\): pass dropouts=\[...\] \(TF1 dropout outputs; "
                                         r"under a tf.cond: dropout/cond/Identity:0\)"):
        layers_parity(None, is_training="is_training")
    shared = layers_parity(None, is_training="is_training", dropouts=["dropout/cond/Identity"])
    assert shared.passed, (shared.table(), P.first_divergence(shared))
    assert any("output != 0" in note for note in shared.notes)
    off = layers_parity(None, is_training="is_training", stochastic="off")   # TF1 fed False, torch eval()
    assert off.passed and max(v for q, v in off.worst_rel.items() if q != "cost") < 1e-13


@needs_legacy
def test_tf_layers_cnn_with_a_python_bool_switch_shares_the_exact_mask():
    result = layers_parity(True)
    assert result.passed, (result.table(), result.notes)
    assert result.notes == ["stochastic='share': TF1's dropout masks applied in torch: "
                            "dropout/dropout/SelectV2:0 -> dropout"]
    own = layers_parity(True, stochastic="own")
    assert not own.passed and P.first_divergence(own).startswith("first divergence at step 1: output")


# --- the tutorial's own graph, through the same general code ---------------------------------------

@pytest.mark.parametrize("mode", ["teacher-forced", "free-running"])
def test_the_tutorials_tf1_graph_is_one_use_of_the_general_harness(data, mode):
    """tf_original.model's own functions (placeholders aside: examples-first, transposed into the
    graph) against torch_port.nn_model.SignsNet, one epoch of the tutorial's mini-batches (seed 4),
    TF1's Adam at 1e-4, the Glorot draw of seed 1 copied over: the tutorial's float64 bounds."""
    from signs import minibatch_indices
    from tf_original import model as tutorial
    from torch_port.nn_model import SignsNet

    def build():
        x = tf1.placeholder(tf.float64, [None, 12288])
        y = tf1.placeholder(tf.float64, [None, 6])
        parameters = tutorial.initialize_parameters(tf.float64)
        Z3 = tutorial.forward_propagation(tf.transpose(x), parameters)
        cost = tutorial.compute_cost(Z3, tf.transpose(y))
        return {"x": x, "y": y, "output": tf.transpose(Z3), "loss": cost,
                "optimizer": tf1.train.AdamOptimizer(learning_rate=0.0001)}

    X, Y = data.X_train, data.Y_train
    batches = [(X[:, i].T, Y[:, i].T) for i in minibatch_indices(X.shape[1], 32, 4)]
    net = SignsNet().double()
    optimizer = P.AdamOptimizer(net.parameters(), 0.0001)
    result = P.step_parity(build, net, mnist_deep_torch.loss, optimizer, batches,
                           {"W*": "fc{1}.weight", "b*": "fc{1}.bias"}, mode=mode)
    assert len(result.steps) == len(batches) == 34
    assert result.passed, (result.table(), P.first_divergence(result))
    assert result.tolerances == tolerances_for("float64", mode, ("tf1", "idiomatic"))
    assert not result.notes


def test_float32_as_the_tutorial_wrote_it_meets_the_generic_float32_bounds(tmp_path):
    def build():
        net = mnist_deep.build("float32", **DEEP)
        return {"x": net["x"], "y": net["y_"], "output": net["y_conv"], "loss": net["cross_entropy"],
                "train_op": net["train_step"]}

    net = mnist_deep_torch.DeepNN(**DEEP)
    optimizer = P.AdamOptimizer(net.parameters(), 1e-4)
    result = P.step_parity(build, net, mnist_deep_torch.loss, optimizer, EPOCH,
                           mnist_deep_torch.name_map(DEEP["conv2"]), feeds={KEEP_PROB: 0.5},
                           keep_prob=KEEP_PROB, dropout_map={"dropout/dropout/SelectV2": "dropout"})
    assert result.passed and result.dtype == "float32", result.table()
    assert result.tolerances == generic_tolerances("float32", "teacher-forced")
    # the same table, JSON and plot as every comparison of the project
    assert result.table().splitlines()[0].split() == ["quantity", "max", "abs", "diff", "max", "rel", "diff",
                                                      "at", "step", "tolerance", "ok"]
    document = result.to_json(pair="mnist_deep")
    assert document["passed"] and document["steps_run"] == 10 and document["pair"] == "mnist_deep"
    assert result.plot(tmp_path / "drift.png").stat().st_size > 0


def test_bad_arguments_are_refused_in_one_line():
    with pytest.raises(InputError, match=r"^12 steps asked for, 10 batches given$"):
        deep_parity(steps=12)
    with pytest.raises(InputError, match=r"^feeds: the graph has no tensor 'dropout/keep_prob'$"):
        deep_parity(feeds={"dropout/keep_prob": 0.5})
    with pytest.raises(InputError, match=r"^stochastic 'shared': expected one of share, off, own$"):
        deep_parity(stochastic="shared")
    with pytest.raises(InputError, match=r"^the TF1 graph is float64, the torch module float32: build both"):
        net = mnist_deep_torch.DeepNN(**DEEP)
        P.step_parity(deep_graph, net, mnist_deep_torch.loss, P.AdamOptimizer(net.parameters(), 1e-4), EPOCH,
                      mnist_deep_torch.name_map(DEEP["conv2"]), feeds={KEEP_PROB: 0.5}, keep_prob=KEEP_PROB)
    with pytest.raises(TransferError, match=r"^TF1 graph -> torch: 1 problem: name map names 'fc3/Variable': "
                                            r"no such variable \(did you mean 'fc2/Variable'\?\)$"):
        deep_parity(name_map=dict(mnist_deep_torch.name_map(DEEP["conv2"]), **{"fc3/Variable": "fc2.weight"}))
