"""TF1 ``Saver`` checkpoints written by TF1 programs this project did not write, into their
PyTorch twins (parity.tf1_checkpoint): weights, optimizer slots, the round trip back, refusals.

Checkpoints come from the programs' own training loops (examples/tf1), so their names are the
ones TF1 chose (``conv1/Variable_1``, ``rnn/basic_lstm_cell/kernel``, ``fc1/Variable/Adam_1``).
"""

from __future__ import annotations

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow", reason="TensorFlow is not installed: TF1 checkpoints need it")

import torch  # noqa: E402

from examples.tf1 import (  # noqa: E402
    _compat,  # noqa: E402
    mnist_deep,
    mnist_deep_torch,
)
from parity import tf1 as P  # noqa: E402
from parity.errors import TransferError  # noqa: E402
from parity.tf1_checkpoint import main  # noqa: E402
from signs.cli import run_main  # noqa: E402
from signs.errors import InputError  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")   # TF1 APIs announce their deprecation
tf1 = tf.compat.v1
WIDTHS = {"conv1": 4, "conv2": 8, "fc": 32}
RNG = np.random.default_rng(2)
IMAGES = RNG.random((40, 784))
LABELS = np.eye(10)[RNG.integers(0, 10, 40)]
needs_legacy = pytest.mark.skipif(not _compat.has_legacy(), reason="tf.compat.v1 rnn_cell/layers need "
                                  "tf_keras with Keras 3 (pip install tf_keras)")


@pytest.fixture(scope="module")
def deep_checkpoint(tmp_path_factory):
    """mnist_deep trained 3 Adam steps by its own loop, saved by its own Saver (float64)."""
    prefix = tmp_path_factory.mktemp("mnist_deep") / "model.ckpt"
    mnist_deep.train(IMAGES, LABELS, steps=3, batch_size=8, checkpoint=prefix, dtype="float64", **WIDTHS)
    return prefix


def tf_logits(prefix, images):
    """The logits of mnist_deep restored from ``prefix``, keep_prob 1 (TF1's inference)."""
    with tf.Graph().as_default(), tf1.Session() as sess:
        net = mnist_deep.build("float64", **WIDTHS)
        tf1.train.Saver().restore(sess, str(prefix))
        return sess.run(net["y_conv"], {net["x"]: images, net["keep_prob"]: 1.0})


def twin():
    return mnist_deep_torch.DeepNN(**{k: v for k, v in WIDTHS.items()}).double()


def test_the_tutorials_checkpoint_loads_into_the_twin_and_computes_the_same(deep_checkpoint):
    net = twin()
    mapping = P.load_checkpoint_into(net, deep_checkpoint, mnist_deep_torch.name_map(WIDTHS["conv2"]))
    assert {p.tf_name: p.kind for p in mapping.pairs} == {
        "conv1/Variable": "conv2d", "conv1/Variable_1": "same", "conv2/Variable": "conv2d",
        "conv2/Variable_1": "same", "fc1/Variable": "dense", "fc1/Variable_1": "same",
        "fc2/Variable": "dense", "fc2/Variable_1": "same"}
    reader = tf.train.load_checkpoint(str(deep_checkpoint))
    np.testing.assert_array_equal(net.conv1.weight.detach().numpy(),
                                  reader.get_tensor("conv1/Variable").transpose(3, 2, 0, 1))
    net.eval()
    got = net(torch.as_tensor(IMAGES[:6])).detach().numpy()
    np.testing.assert_allclose(got, tf_logits(deep_checkpoint, IMAGES[:6]), rtol=1e-12, atol=1e-13)


def test_adam_slots_and_beta_powers_go_into_the_torch_optimizer(deep_checkpoint):
    net = twin()
    optimizer = P.AdamOptimizer(net.parameters(), 1e-4)
    mapping = P.load_checkpoint_into(net, deep_checkpoint, mnist_deep_torch.name_map(WIDTHS["conv2"]),
                                     optimizer=optimizer)
    reader = tf.train.load_checkpoint(str(deep_checkpoint))
    group = optimizer.param_groups[0]
    # minimize() ran under name_scope("adam_optimizer"): TF1 put the beta powers there too
    assert group["beta1_power"] == float(reader.get_tensor("adam_optimizer/beta1_power")) == float(
        np.float32(np.float32(np.float32(0.9) * np.float32(0.9)) * np.float32(0.9)) * np.float32(0.9))
    assert group["beta2_power"] == float(reader.get_tensor("adam_optimizer/beta2_power"))
    state = optimizer.state[net.fc1.weight]
    expected_m = mapping.pair("fc1/Variable").to_torch(reader.get_tensor("fc1/Variable/Adam"), offset=False)
    np.testing.assert_array_equal(state["m"].numpy(), expected_m["fc1.weight"])
    np.testing.assert_array_equal(optimizer.state[net.conv2.weight]["v"].numpy(),
                                  reader.get_tensor("conv2/Variable/Adam_1").transpose(3, 2, 0, 1))
    assert mapping.notes == ["optimizer state loaded: 16 slot variables, adam_optimizer/beta1_power, "
                             "adam_optimizer/beta2_power"]


def test_round_trip_back_to_a_checkpoint_the_original_graph_restores(deep_checkpoint, tmp_path):
    net = twin()
    name_map = mnist_deep_torch.name_map(WIDTHS["conv2"])
    optimizer = P.AdamOptimizer(net.parameters(), 1e-4)
    P.load_checkpoint_into(net, deep_checkpoint, name_map, optimizer=optimizer)
    back = tmp_path / "back" / "model.ckpt"
    P.save_checkpoint_from(net, back, name_map, optimizer=optimizer, reference=deep_checkpoint)
    original, written = tf.train.load_checkpoint(str(deep_checkpoint)), tf.train.load_checkpoint(str(back))
    assert set(P.checkpoint_variables(back)) == set(P.checkpoint_variables(deep_checkpoint))
    for name in P.checkpoint_variables(deep_checkpoint):
        np.testing.assert_array_equal(written.get_tensor(name), original.get_tensor(name), err_msg=name)
    np.testing.assert_allclose(tf_logits(back, IMAGES[:4]), tf_logits(deep_checkpoint, IMAGES[:4]), rtol=0)


def test_training_continues_in_torch_where_tf1_stopped(deep_checkpoint):
    """Both sides start from the checkpoint (TF1: Saver.restore, torch: load_checkpoint_into with the
    Adam state) and train one more epoch, free-running, dropout masks shared."""
    net = twin()
    optimizer = P.AdamOptimizer(net.parameters(), 1e-4)
    result = P.step_parity(_deep_graph, net, mnist_deep_torch.loss, optimizer, _batches(),
                           mnist_deep_torch.name_map(WIDTHS["conv2"]), mode="free-running",
                           checkpoint=deep_checkpoint, feeds={"dropout/Placeholder": 0.5},
                           keep_prob="dropout/Placeholder")
    assert result.passed, (result.table(), P.first_divergence(result))
    # beta powers and learning rate as TF1's kernel saw them: no note but the masks'
    assert result.notes == ["stochastic='share': TF1's dropout masks applied in torch: "
                            "dropout/dropout/SelectV2:0 -> dropout"]


def _deep_graph():
    net = mnist_deep.build("float64", **WIDTHS)
    return {"x": net["x"], "y": net["y_"], "output": net["y_conv"], "loss": net["cross_entropy"],
            "train_op": net["train_step"]}


def _batches():
    return [(IMAGES[i:i + 8], LABELS[i:i + 8]) for i in range(0, 40, 8)]


def test_a_wrong_name_map_or_a_missing_transpose_is_refused_in_one_line(deep_checkpoint):
    net = twin()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    wrong = dict(mnist_deep_torch.name_map(WIDTHS["conv2"]))
    wrong["conv*/Variable"] = P.same("conv{1}.weight")          # the kernel as it is: HWIO into OIHW
    del wrong["fc2/Variable_1"]                                    # a variable left without a twin
    wrong["fc3/Variable"] = "fc3.weight"                           # a variable that is not there
    with pytest.raises(TransferError) as caught:
        P.load_checkpoint_into(net, deep_checkpoint, wrong)
    message = str(caught.value)
    assert message.startswith(f"checkpoint {deep_checkpoint} -> torch: ") and "\n" not in message
    for part in ["conv1/Variable (5, 5, 1, 4) as same", "an HWIO conv kernel: use conv2d",
                 "no twin in the name map: fc2/Variable_1 (10,)", "'fc3/Variable': no such variable",
                 "torch tensors with no TF1 variable: fc2.bias"]:
        assert part in message, (part, message)
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())     # nothing copied


def test_a_float32_checkpoint_needs_cast_and_a_wrong_optimizer_is_refused(deep_checkpoint):
    expected = (r": 1 problem: conv1/Variable -> conv1.weight, .*, fc2/Variable_1 -> fc2.bias: TF1 float64, "
                r"torch float32: build the module in float64 .*or pass cast=True$")
    with pytest.raises(TransferError, match=expected):
        P.load_checkpoint_into(twin().float(), deep_checkpoint, mnist_deep_torch.name_map(8))
    P.load_checkpoint_into(twin().float(), deep_checkpoint, mnist_deep_torch.name_map(8), cast=True)
    net = twin()
    with pytest.raises(TransferError, match=r"checkpoint has no 'momentum' slot 'conv1/Variable/Momentum'"):
        P.load_checkpoint_into(net, deep_checkpoint, mnist_deep_torch.name_map(8),
                               optimizer=P.MomentumOptimizer(net.parameters(), 0.1, 0.9))


def test_paths_that_are_no_checkpoint_are_refused(tmp_path):
    with pytest.raises(InputError, match=r"checkpoint .*nowhere/model.ckpt: not found \(no .*\.index"):
        P.load_checkpoint_into(twin(), tmp_path / "nowhere" / "model.ckpt", {"a": "b"})
    (tmp_path / "junk.index").write_bytes(b"not a checkpoint")
    with pytest.raises(InputError) as caught:
        P.checkpoint_variables(tmp_path / "junk")
    assert "junk: not a TF checkpoint (" in str(caught.value) and "\n" not in str(caught.value)


def test_a_refused_save_writes_nothing(tmp_path):
    net = twin()
    target = tmp_path / "out" / "model.ckpt"
    with pytest.raises(TransferError, match=r"give its layout .* or reference="):
        P.save_checkpoint_from(net, target, {"conv1/Variable": "conv1.weight"})
    with pytest.raises(TransferError, match="torch tensors with no TF1 variable"):
        P.save_checkpoint_from(net, target, {"conv1/Variable": P.conv2d("conv1.weight")})
    assert not (tmp_path / "out").exists()
    # with explicit layouts and every key, no reference is needed
    full = {"conv1/W": P.conv2d("conv1.weight"), "conv1/b": P.same("conv1.bias"),
            "conv2/W": P.conv2d("conv2.weight"), "conv2/b": P.same("conv2.bias"),
            "fc1/W": P.dense("fc1.weight", flatten_hwc=(7, 7, 8)), "fc1/b": P.same("fc1.bias"),
            "fc2/W": P.dense("fc2.weight"), "fc2/b": P.same("fc2.bias")}
    P.save_checkpoint_from(net, target, full)
    again = twin()
    P.load_checkpoint_into(again, target, full)
    assert all(torch.equal(a, b) for a, b in zip(net.state_dict().values(), again.state_dict().values()))


@needs_legacy
@pytest.mark.parametrize("cell", ["BasicLSTMCell", "LSTMCell"])
def test_rnn_cell_lstm_checkpoint_into_nn_lstm(cell, tmp_path):
    """TF1's LSTM cells (gates i, j, f, o; forget_bias 1.0 added inside) -> nn.LSTM (i, f, g, o)."""
    from examples.tf1 import lstm_classifier_torch

    scope = {"BasicLSTMCell": "basic_lstm_cell", "LSTMCell": "lstm_cell"}[cell]
    x = RNG.standard_normal((3, 6, 4))
    with tf.Graph().as_default(), tf1.Session() as sess:
        tf1.set_random_seed(3)
        inputs = tf1.placeholder(tf.float64, [None, 6, 4])
        outputs, _ = tf1.nn.dynamic_rnn(getattr(_compat.rnn_cell(), cell)(5), inputs, dtype=tf.float64)
        sess.run(tf1.global_variables_initializer())
        bias = [v for v in tf1.global_variables() if v.op.name.endswith("bias")][0]
        sess.run(bias.assign(RNG.standard_normal(20)))           # a bias that is not all zeros
        expected = sess.run(outputs, {inputs: x})
        tf1.train.Saver().save(sess, str(tmp_path / "lstm"))
    lstm = torch.nn.LSTM(4, 5, batch_first=True).double()
    lstm.bias_hh_l0.requires_grad_(False)
    P.load_checkpoint_into(lstm, tmp_path / "lstm", {
        f"rnn/{scope}/kernel": P.lstm_kernel("weight_ih_l0", "weight_hh_l0"),
        f"rnn/{scope}/bias": P.lstm_bias("bias_ih_l0", "bias_hh_l0", forget_bias=1.0)})
    np.testing.assert_allclose(lstm(torch.as_tensor(x))[0].detach().numpy(), expected, rtol=1e-12, atol=1e-14)
    assert lstm_classifier_torch.NAME_MAP  # the example's map uses the same targets


def test_cli_lists_a_checkpoint_and_refuses_bad_input_with_exit_2(deep_checkpoint, capsys, tmp_path):
    assert run_main(main, ["inspect", str(deep_checkpoint)]) == 0
    out = capsys.readouterr().out
    assert "conv1/Variable " in out and "(5, 5, 1, 4)" in out and "fc2/Variable_1/Adam_1" in out
    assert run_main(main, ["inspect", str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: checkpoint ") and "not found" in err and err.count("\n") == 1
    out_file = tmp_path / "state.pt"
    argv = ["convert", str(deep_checkpoint), str(out_file), "--module",
            "examples.tf1.mnist_deep_torch:DeepNN", "--kwargs", '{"conv1": 4, "conv2": 8, "fc": 32}',
            "--map", "examples.tf1.mnist_deep_torch:name_map", "--map-kwargs", '{"conv2": 8}', "--double"]
    assert run_main(main, argv) == 0
    state = torch.load(out_file, weights_only=True)
    reader = tf.train.load_checkpoint(str(deep_checkpoint))
    np.testing.assert_array_equal(state["fc2.weight"].numpy(), reader.get_tensor("fc2/Variable").T)
    bad = argv[:]
    bad[bad.index("examples.tf1.mnist_deep_torch:name_map")] = "examples.tf1.mnist_deep_torch:nothing"
    assert run_main(main, bad[:2] + [str(tmp_path / "other.pt")] + bad[3:]) == 2
    assert "has no attribute 'nothing'" in capsys.readouterr().err
    assert not (tmp_path / "other.pt").exists()
