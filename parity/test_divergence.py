"""Where a failing pair diverges (parity/divergence.py), and batches that do not fit.

Each wrong twin below fails, and the report names what differs first: a layer's output (a conv
kernel reshaped instead of transposed, BatchNorm's epsilon, an LSTM bias counted twice), the
model output after the last layer, the loss, a BatchNorm moving mean, or a parameter's update
(the optimizer), with the step, the relative difference and both norms, in the verdict, the
table and the JSON. A passing pair's report is unchanged.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("tensorflow", reason="TensorFlow is not installed: the harness needs Keras on one side")

import keras  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

from parity import divergence  # noqa: E402
from parity.divergence import MOVING_MEAN  # noqa: E402
from parity.generic import step_parity, torch_optimizer_like  # noqa: E402
from parity.layers import keras_state, match_layers  # noqa: E402
from signs.errors import InputError  # noqa: E402

F64 = "float64"


def sequential(input_shape, *layers):
    return keras.Sequential([keras.Input(shape=input_shape, dtype=F64), *layers])


def conv_model():
    layers = keras.layers
    return sequential((6, 6, 2), layers.Conv2D(3, 3, padding="same", dtype=F64, name="conv"),
                      layers.BatchNormalization(momentum=0.9, epsilon=1e-5, dtype=F64, name="bn"),
                      layers.ReLU(dtype=F64), layers.Flatten(dtype=F64),
                      layers.Dense(4, dtype=F64, name="fc"))


def conv_twin(eps=1e-5, momentum=0.1):
    return nn.Sequential(nn.Conv2d(2, 3, 3, padding=1), nn.BatchNorm2d(3, eps=eps, momentum=momentum),
                         nn.ReLU(), nn.Flatten(), nn.Linear(108, 4)).double()


def image_batches(steps=2, seed=3):
    rng = np.random.default_rng(seed)
    return [(rng.standard_normal((6, 6, 6, 2)), rng.integers(0, 4, 6)) for _ in range(steps)]


def run(keras_model, torch_module, batches=None, optimizer=None, torch_optimizer=None, torch_loss=None,
        **options):
    optimizer = optimizer or keras.optimizers.SGD(learning_rate=0.05)
    torch_optimizer = torch_optimizer or torch_optimizer_like(optimizer, torch_module.parameters())
    return step_parity(keras_model, keras.losses.SparseCategoricalCrossentropy(from_logits=True, dtype=F64),
                       optimizer, torch_module, torch_loss or nn.CrossEntropyLoss(), torch_optimizer,
                       batches or image_batches(), **options)


def test_a_passing_pair_has_no_divergence_and_an_unchanged_report():
    result = run(conv_model(), conv_twin())
    assert result.passed and getattr(result, "divergence", None) is None
    assert result.verdict() == ("PASS: Keras vs torch, float64 teacher-forced, 2 steps: every quantity "
                                "within tolerance")
    assert "re-run" not in result.table() and "divergence" not in result.to_json()
    assert result.table().splitlines()[-1].split()[0] == MOVING_MEAN.split()[0]  # BatchNorm: moving means too


def test_a_reshaped_conv_kernel_is_named_in_the_verdict_table_and_json():
    k, t = conv_model(), conv_twin()
    state = keras_state(match_layers(k, t))
    state["0.weight"] = k.get_layer("conv").kernel.numpy().reshape(3, 2, 3, 3)
    t.load_state_dict({n: torch.as_tensor(v) for n, v in state.items()}, strict=False)
    result = run(k, t, transfer=False)
    found = result.divergence
    assert (found.step, found.found) == (1, "layer output")
    assert (found.first.keras_layer, found.first.torch_name) == ("conv", "0")
    verdict = result.verdict()
    assert "\n" not in verdict
    assert verdict.startswith("FAIL: Keras vs torch, float64 teacher-forced, 2 steps: outside tolerance: ")
    assert "; first divergence: layer `conv` output, step 1, rel " in verdict
    assert f"(norms: Keras {found.first.norm_keras:.3g}, torch {found.first.norm_torch:.3g})" in verdict
    assert "check the kernel layout (Keras HWIO, torch OIHW)" in verdict
    table = result.table()
    assert "step 1 re-run layer by layer:" in table
    rows = [line.split() for line in table.splitlines() if line.startswith(("conv ", "bn ", "fc "))]
    assert [(r[0], r[2]) for r in rows] == [("conv", "output"), ("bn", "output"), ("fc", "output"),
                                            ("conv", "gradient"), ("conv", "gradient"), ("bn", "gradient"),
                                            ("bn", "gradient"), ("fc", "gradient"), ("fc", "gradient")]
    document = json.loads(json.dumps(result.to_json()))["divergence"]
    assert document["found"] == "layer output" and document["first"]["keras_layer"] == "conv"
    assert document["line"] == found.line() and document["first"]["ok"] is False
    assert len(document["layers"]) == 3 and len(document["gradients"]) == 6


def test_batchnorm_epsilon_is_named_at_the_batchnorm():
    result = run(conv_model(), conv_twin(eps=1e-3), steps=1)
    assert result.divergence.first.keras_layer == "bn"
    assert result.divergence.layers[0].ok  # the conv before it agrees
    assert "check BatchNorm epsilon (Keras 1e-3, torch 1e-5)" in result.divergence.line()


def test_batchnorm_momentum_is_found_in_the_moving_mean():
    result = run(conv_model(), conv_twin(momentum=0.9))
    assert result.failing == [MOVING_MEAN]
    assert result.divergence.found == "moving mean"
    assert result.divergence.line().startswith("first divergence: layer `bn` moving mean (`1.running_mean`), "
                                               "step 1, rel ")
    assert "Keras 0.9 is torch 0.1" in result.divergence.line()


def test_the_optimizer_is_found_in_the_update():
    k, t = conv_model(), conv_twin()
    optimizer = keras.optimizers.SGD(learning_rate=0.05)
    wrong = torch.optim.SGD(t.parameters(), lr=0.1)
    result = run(k, t, optimizer=optimizer, torch_optimizer=wrong, steps=1)
    found = result.divergence
    assert (found.found, found.first.torch_name, found.first.keras_layer) == ("update", "0.weight", "conv")
    assert found.line().startswith("first divergence: the update of `0.weight` (layer `conv`), step 1, rel ")
    assert "check the optimizer" in found.line()


def test_free_running_says_how_far_apart_the_sides_entered_the_step():
    """Momentum 0.9 against 0.5: step 1 agrees (the buffer is the gradient), step 2 does not."""
    k, t = conv_model(), conv_twin()
    optimizer = keras.optimizers.SGD(learning_rate=0.05, momentum=0.9)
    half = torch_optimizer_like(keras.optimizers.SGD(learning_rate=0.05, momentum=0.5), t.parameters())
    result = run(k, t, optimizer=optimizer, torch_optimizer=half, mode="free-running")
    found = result.divergence
    assert found.step == 2 and found.found == "update"
    assert "free-running: the sides entered step 2 with parameters " in found.line()


def test_the_model_output_and_the_loss():
    layers = keras.layers
    k = sequential((5,), layers.Dense(4, activation="softmax", dtype=F64, name="fc"))
    t = nn.Sequential(nn.Linear(5, 4)).double()  # the softmax forgotten
    rng = np.random.default_rng(0)
    batches = [(rng.standard_normal((6, 5)), rng.integers(0, 4, 6))]
    loss = keras.losses.SparseCategoricalCrossentropy(dtype=F64)
    optimizer = keras.optimizers.SGD(learning_rate=0.1)
    result = step_parity(k, loss, optimizer, t, nn.CrossEntropyLoss(),
                         torch_optimizer_like(optimizer, t.parameters()), batches)
    assert result.divergence.found == "model output"
    assert result.divergence.layers[0].ok and result.divergence.layers[0].note == "before its activation"
    t = nn.Sequential(nn.Linear(5, 4), nn.Softmax(dim=1)).double()
    smoothed = nn.NLLLoss()

    def wrong_loss(output, target):  # the log forgotten: NLL of the probabilities themselves
        return smoothed(output, target)

    result = step_parity(k, loss, optimizer, t, wrong_loss, torch_optimizer_like(optimizer, t.parameters()),
                         batches)
    assert result.divergence.found == "cost"
    assert "check the losses" in result.divergence.line()


def test_a_doubled_lstm_bias_is_named_at_the_lstm():
    layers = keras.layers
    k = sequential((5, 3), layers.LSTM(4, dtype=F64, name="lstm"), layers.Dense(2, dtype=F64, name="head"))

    class Twin(nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn, self.head = nn.LSTM(3, 4, batch_first=True), nn.Linear(4, 2)
            self.rnn.bias_hh_l0.requires_grad_(False)

        def forward(self, x):
            return self.head(self.rnn(x)[0][:, -1])

    t = Twin().double()
    state = keras_state(match_layers(k, t))
    state["rnn.bias_hh_l0"] = state["rnn.bias_ih_l0"]  # the one Keras bias in both torch biases
    t.load_state_dict({n: torch.as_tensor(v) for n, v in state.items()})
    rng = np.random.default_rng(1)
    result = run(k, t, [(rng.standard_normal((4, 5, 3)), rng.integers(0, 2, 4))], transfer=False)
    assert result.divergence.line().startswith("first divergence: layer `lstm` output, step 1")
    line = result.divergence.line()
    assert "check the gate order (Keras i, f, c, o = torch i, f, g, o) and the bias" in line


def test_the_re_run_can_be_turned_off_and_never_raises(monkeypatch):
    result = run(conv_model(), conv_twin(eps=1e-3), steps=1, find_divergence=False)
    assert not result.passed and getattr(result, "divergence", None) is None

    def broken(*args, **kwargs):
        raise RuntimeError("no luck\nsecond line")

    monkeypatch.setattr(divergence, "_keras_pass", broken)
    result = run(conv_model(), conv_twin(eps=1e-3), steps=1)
    assert result.divergence.found == "error"
    assert result.divergence.line() == ("first divergence not located: the layer-by-layer re-run of step 1 "
                                        "failed: RuntimeError: no luck")
    monkeypatch.undo()
    k, t = conv_model(), conv_twin(eps=1e-3)
    result = run(k, t, steps=1)
    assert result.divergence.found == "layer output"
    # the re-run puts both sides back as training left them
    variables = k.trainable_variables
    keras_now = result.match.to_torch_values(variables, [v.numpy() for v in variables])
    for name, value in result.reference[-1]["params"].items():
        np.testing.assert_array_equal(keras_now[name], value)
        np.testing.assert_array_equal(dict(t.named_parameters())[name].detach().numpy(),
                                      result.other[-1]["params"][name])


@pytest.mark.parametrize("batch, message", [
    ((np.zeros((6, 6, 6, 3)), np.zeros(6, int)),
     "batch 1: x has shape (6, 6, 6, 3), the Keras model takes (None, 6, 6, 2) (do the batches fit both "
     "models? x in Keras's layout, batch first (images channels-last: (batch, H, W, C)))"),
    ((np.zeros((6, 2, 6, 6)), np.zeros(6, int)), "batch 1: x has shape (6, 2, 6, 6), the Keras model takes"),
    ((np.zeros((6, 6, 6, 2)), np.zeros(5, int)),
     "batch 1: x holds 6 examples, y 5 (do the batches fit both models?)"),
    ((np.zeros((6, 6, 6, 2)),), "batch 1: expected an (x, y) pair of arrays, got tuple of length 1"),
])
def test_batches_that_do_not_fit_are_one_line(batch, message):
    with pytest.raises(InputError) as error:
        run(conv_model(), conv_twin(), [batch])
    assert str(error.value).startswith(message) and "\n" not in str(error.value)
