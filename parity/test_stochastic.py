"""Stochastic layers (parity/stochastic.py): the same masks on both sides, or none, step for step.

* the harness's Keras formulas are Keras's own, bit for bit (Keras 3 and Keras 2), given the
  mask Keras drew;
* every kind trains alike in float64 with the masks shared (both modes, Keras 3 and Keras 2),
  the masks differ from step to step and each side applies the same one;
* ``stochastic="off"`` makes them the identity on both sides; ``"own"`` fails at the layer;
* what cannot be shared is one line naming it: a layer left over on either side, kinds that
  differ, a torch module calling ``F.dropout`` itself, a module run twice, AlphaDropout,
  random augmentation layers; a rate that differs is noted and fails at that layer.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("tensorflow", reason="TensorFlow is not installed: stochastic layers need Keras on one "
                    "side")

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

from parity.compare import MODES  # noqa: E402
from parity.errors import TransferError  # noqa: E402
from parity.generic import step_parity, torch_optimizer_like  # noqa: E402
from parity.stochastic import (  # noqa: E402
    GaussianDropout,
    GaussianNoise,
    keras_dropout,
    match_stochastic,
    to_torch_layout,
)

F64 = "float64"
BATCH, STEPS = 5, 3


def keras2():
    return pytest.importorskip("tf_keras", reason="tf_keras (Keras 2) is not installed")


def sequential(api, input_shape, *layers, dtype=F64):
    return api.Sequential([api.Input(shape=input_shape, dtype=dtype), *layers])


def batches(input_shape, outputs, steps=STEPS, seed=1):
    rng = np.random.default_rng(seed)
    return [(rng.standard_normal((BATCH, *input_shape)), rng.integers(0, outputs, BATCH))
            for _ in range(steps)]


def parity(keras_model, torch_module, input_shape, mode="teacher-forced", api=keras, outputs=3, **options):
    optimizer = api.optimizers.SGD(learning_rate=0.05)
    dtype = {"dtype": F64} if api is keras else {}
    loss = api.losses.SparseCategoricalCrossentropy(from_logits=True, **dtype)
    return step_parity(keras_model, loss, optimizer, torch_module, nn.CrossEntropyLoss(),
                       torch_optimizer_like(optimizer, torch_module.parameters()),
                       batches(input_shape, outputs), mode=mode, **options)


def assert_passes(result):
    assert result.passed, f"{result.verdict()}\n{result.table()}"
    assert max(result.worst_rel.values()) <= 1e-12, result.worst_rel
    assert getattr(result, "divergence", None) is None


class Transposed(nn.Module):
    """nn.Dropout1d drops channels of (N, C, L); a Keras SpatialDropout1D acts on (N, L, C)."""

    def __init__(self, module):
        super().__init__()
        self.module = module

    def forward(self, x):
        return self.module(x.transpose(1, 2)).transpose(1, 2)


class LastStep(nn.Module):
    def forward(self, x):
        return x[:, -1]


# kind -> (Keras layers, torch module), on (6, 6, 2) images or (4, 3) sequences
def _conv_net(api, stochastic_keras, stochastic_torch):
    layers = api.layers
    k = sequential(api, (6, 6, 2), layers.Conv2D(4, 3, activation="relu", dtype=F64), stochastic_keras,
                   layers.Flatten(dtype=F64), layers.Dense(3, dtype=F64))
    t = nn.Sequential(nn.Conv2d(2, 4, 3), nn.ReLU(), stochastic_torch, nn.Flatten(), nn.Linear(64, 3))
    t = t.double()
    return k, t, (6, 6, 2)


def _after_flatten(api):
    layers = api.layers
    k = sequential(api, (6, 6, 2), layers.Conv2D(4, 3, dtype=F64), layers.Flatten(dtype=F64),
                   layers.Dropout(0.5, dtype=F64, name="drop"), layers.Dense(3, dtype=F64))
    t = nn.Sequential(nn.Conv2d(2, 4, 3), nn.Flatten(), nn.Dropout(0.5), nn.Linear(64, 3)).double()
    return k, t, (6, 6, 2)


def _sequence_net(api, stochastic_keras, stochastic_torch):
    layers = api.layers
    k = sequential(api, (4, 3), layers.Dense(5, dtype=F64), stochastic_keras,
                   layers.LSTM(3, dtype=F64, name="lstm"))
    lstm = nn.LSTM(5, 3, batch_first=True)
    lstm.bias_hh_l0.requires_grad_(False)

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.dense, self.drop, self.lstm = nn.Linear(3, 5), stochastic_torch, lstm

        def forward(self, x):
            return self.lstm(self.drop(self.dense(x)))[0][:, -1]

    return k, Net().double(), (4, 3)


def kinds(api):
    layers = api.layers
    return {
        "dropout": lambda: _conv_net(api, layers.Dropout(0.3, dtype=F64), nn.Dropout(0.3)),
        "dropout_after_flatten": lambda: _after_flatten(api),
        "spatial_dropout2d": lambda: _conv_net(api, layers.SpatialDropout2D(0.5, dtype=F64),
                                               nn.Dropout2d(0.5)),
        "gaussian_noise": lambda: _conv_net(api, layers.GaussianNoise(0.2, dtype=F64), GaussianNoise(0.2)),
        "gaussian_dropout": lambda: _conv_net(api, layers.GaussianDropout(0.3, dtype=F64),
                                              GaussianDropout(0.3)),
        "spatial_dropout1d": lambda: _sequence_net(api, layers.SpatialDropout1D(0.4, dtype=F64),
                                                   Transposed(nn.Dropout1d(0.4))),
        "dropout_noise_shape": lambda: _sequence_net(
            api, layers.Dropout(0.4, noise_shape=(None, 1, 5), dtype=F64), Transposed(nn.Dropout1d(0.4))),
        "sequence_dropout": lambda: _sequence_net(api, layers.Dropout(0.4, dtype=F64), nn.Dropout(0.4)),
    }


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("kind", list(kinds(keras)))
def test_every_kind_trains_alike_with_shared_masks(kind, mode):
    k, t, shape = kinds(keras)[kind]()
    result = parity(k, t, shape, mode)
    assert_passes(result)
    assert result.notes[-1].startswith("stochastic layers: masks shared (Keras's draws, seed 0, applied by "
                                       "the torch modules): ")
    assert json.loads(json.dumps(result.to_json()))["stochastic"] == "share"


@pytest.mark.parametrize("kind", ["dropout_after_flatten", "spatial_dropout2d", "gaussian_noise",
                                  "spatial_dropout1d"])
def test_every_kind_trains_alike_in_keras2(kind):
    tf_keras = keras2()
    k, t, shape = kinds(tf_keras)[kind]()
    assert_passes(parity(k, t, shape, "free-running", api=tf_keras))


def test_masks_change_every_step_and_both_sides_apply_the_same():
    k, t, shape = kinds(keras)["dropout_after_flatten"]()
    seen = []
    t[2].register_forward_hook(lambda module, inputs, output: seen.append(
        (inputs[0].detach().numpy().copy(), output.detach().numpy().copy())))
    result = parity(k, t, shape, stochastic_seed=7)
    assert_passes(result)
    kept = [output != 0 for _, output in seen]
    assert len(kept) == STEPS and not np.array_equal(kept[0], kept[1])
    for x, output in seen:  # torch's nn.Dropout formula with the shared mask
        np.testing.assert_array_equal(output, np.where(output != 0, x * (1 / (1 - 0.5)), 0.0))
    assert 0.3 < np.mean(kept) < 0.7


@pytest.mark.parametrize("api_name", ["keras", "tf_keras"])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_the_keras_formula_is_keras_own_bit_for_bit(api_name, dtype):
    """Keras's own Dropout/SpatialDropout2D against the harness's formula given the mask Keras drew
    (inputs without zeros, so the mask is where the output is not 0)."""
    api = keras if api_name == "keras" else keras2()
    x = np.random.default_rng(0).uniform(0.5, 2.0, (3, 4, 4, 5)).astype(dtype)
    for layer, rate in ((api.layers.Dropout(0.3, dtype=dtype), 0.3),
                        (api.layers.SpatialDropout2D(0.6, dtype=dtype), 0.6)):
        theirs = np.asarray(layer(tf.constant(x), training=True))
        keep = theirs != 0
        mine = np.asarray(keras_dropout(rate, tf.constant(x), keep))
        np.testing.assert_array_equal(mine, theirs)


def test_off_makes_them_the_identity_on_both_sides():
    k, t, shape = kinds(keras)["spatial_dropout2d"]()
    result = parity(k, t, shape, stochastic="off")
    assert_passes(result)
    assert result.notes[-1].startswith("stochastic layers: off (the identity on both sides, in training too)")
    assert result.to_json()["stochastic"] == "off"


def test_own_masks_fail_at_the_stochastic_layer():
    k, t, shape = kinds(keras)["gaussian_noise"]()
    result = parity(k, t, shape, stochastic="own", steps=1)
    assert not result.passed
    divergence = result.divergence
    assert divergence.found == "layer output" and divergence.first.kind == "gaussian_noise"
    assert [f.ok for f in divergence.layers][:1] == [True]  # the conv before it agrees
    assert "masks not shared (stochastic='own': each side draws its own)" in result.verdict()


def test_a_rate_that_differs_is_noted_and_named():
    k, t, shape = _conv_net(keras, keras.layers.Dropout(0.5, dtype=F64, name="drop"), nn.Dropout(0.25))
    result = parity(k, t, shape, steps=1)
    assert "drop <-> 2: rate differs: Keras 0.5, torch p=0.25" in result.notes
    assert result.divergence.first.keras_layer == "drop"
    assert "check the rate" in result.divergence.line()


def test_to_torch_layout():
    x = np.arange(2 * 3 * 4 * 5).reshape(2, 3, 4, 5)
    np.testing.assert_array_equal(to_torch_layout(x, (2, 5, 3, 4)), x.transpose(0, 3, 1, 2))
    np.testing.assert_array_equal(to_torch_layout(x, (2, 3, 4, 5)), x)
    assert to_torch_layout(x, (2, 60)) is None
    flat = x.reshape(2, -1)  # a Keras flatten of (3, 4, 5): (h, w, c) order
    np.testing.assert_array_equal(to_torch_layout(flat, (2, 60), hwc=(3, 4, 5)),
                                  x.transpose(0, 3, 1, 2).reshape(2, -1))
    sequence = np.arange(2 * 6 * 4).reshape(2, 6, 4)
    np.testing.assert_array_equal(to_torch_layout(sequence, (2, 6, 4)), sequence)
    np.testing.assert_array_equal(to_torch_layout(sequence, (2, 4, 6)), sequence.transpose(0, 2, 1))


def test_the_torch_twins_are_the_identity_in_eval_mode():
    x = torch.randn(3, 4, dtype=torch.float64)
    for module in (GaussianNoise(0.5), GaussianDropout(0.3)):
        assert not torch.equal(module(x), x)
        assert torch.equal(module.eval()(x), x)
    with pytest.raises(ValueError, match="GaussianDropout p=1"):
        GaussianDropout(1)


# --- what cannot be shared: one line each ---------------------------------------------------------

def refusal(k, t, shape, **options) -> str:
    with pytest.raises(TransferError) as error:
        parity(k, t, shape, **options)
    message = str(error.value)
    assert "\n" not in message, message
    return message


class HandRolled(nn.Module):
    """A port that writes its dropout by hand: no module the harness can give Keras's masks."""

    def __init__(self):
        super().__init__()
        self.conv, self.fc = nn.Conv2d(2, 4, 3), nn.Linear(64, 3)

    def forward(self, x):
        x = torch.flatten(torch.relu(self.conv(x)), 1)
        keep = (torch.rand_like(x) >= 0.3).to(x.dtype)
        return self.fc(x * keep / 0.7)


def test_a_keras_dropout_without_a_torch_module_is_refused():
    k, _, shape = _conv_net(keras, keras.layers.Dropout(0.3, dtype=F64, name="drop"), nn.Identity())
    message = refusal(k, HandRolled().double(), shape)
    assert message == ("cannot pair the stochastic layers: 1 problem: Keras layer 'drop' (Dropout) has no "
                       "torch counterpart: the torch module needs a nn.Dropout module (registered in "
                       "__init__, in the same order) so that the harness can give it Keras's masks (or pass "
                       "stochastic='off')")


def test_a_torch_dropout_without_a_keras_layer_is_refused():
    layers = keras.layers
    k = sequential(keras, (6, 6, 2), layers.Conv2D(4, 3, dtype=F64), layers.Flatten(dtype=F64),
                   layers.Dense(3, dtype=F64))
    t = nn.Sequential(nn.Conv2d(2, 4, 3), nn.Flatten(), nn.Dropout(0.2), nn.Linear(64, 3)).double()
    assert "torch module '2' (Dropout) has no Keras counterpart (left over)" in refusal(k, t, (6, 6, 2))


def test_kinds_that_differ_are_refused():
    k, t, shape = _conv_net(keras, keras.layers.SpatialDropout2D(0.5, dtype=F64, name="sd"), nn.Dropout(0.5))
    assert ("Keras layer 'sd' (SpatialDropout2D) is paired (by order) with torch module '2' (Dropout); its "
            "twin is nn.Dropout2d") in refusal(k, t, shape)
    odd = keras.layers.Dropout(0.4, noise_shape=(None, 4, 1), dtype=F64, name="d")
    k, t, shape = _sequence_net(keras, odd, nn.Dropout(0.4))
    assert "its twin is a dropout with noise_shape=(None, 4, 1)" in refusal(k, t, shape)


class Functional(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv, self.drop, self.fc = nn.Conv2d(2, 4, 3), nn.Dropout(0.3), nn.Linear(64, 3)

    def forward(self, x):
        x = torch.flatten(torch.relu(self.conv(x)), 1)
        return self.fc(F.dropout(x, 0.3, self.training))  # self.drop is never called


def test_f_dropout_in_training_is_refused_naming_the_module():
    k, _, shape = _conv_net(keras, keras.layers.Dropout(0.3, dtype=F64), nn.Identity())
    for stochastic in ("share", "off"):
        message = refusal(k, Functional().double(), shape, stochastic=stochastic)
        assert message.startswith("torch module '<root>' (Functional) calls "
                                  "torch.nn.functional.dropout(p=0.3) in training: the harness can share (or "
                                  "turn off) only the masks of dropout modules it pairs with Keras's layers")
    assert F.dropout.__module__ == "torch.nn.functional"  # put back


class Twice(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv, self.drop, self.fc = nn.Conv2d(2, 4, 3), nn.Dropout(0.5), nn.Linear(64, 3)

    def forward(self, x):
        return self.fc(self.drop(self.drop(torch.flatten(self.conv(x), 1))))


def test_a_torch_module_run_more_often_than_its_keras_layer_is_refused():
    k, _, shape = _after_flatten(keras)
    message = refusal(k, Twice().double(), shape)
    assert message.startswith("step 1: torch module 'drop' ran 2 times in training, Keras layer 'drop' 1")


def test_draws_that_do_not_fit_the_torch_input_are_refused():
    layers = keras.layers
    k = sequential(keras, (6, 6, 2), layers.Conv2D(4, 3, dtype=F64),
                   layers.Dropout(0.3, dtype=F64, name="drop"), layers.Flatten(dtype=F64),
                   layers.Dense(3, dtype=F64))
    t = nn.Sequential(nn.Conv2d(2, 4, 3), nn.Flatten(), nn.Dropout(0.3), nn.Linear(64, 3)).double()
    message = refusal(k, t, (6, 6, 2))
    assert message.startswith("step 1: Keras layer 'drop' drew for an input of shape (5, 4, 4, 4) (Keras "
                              "layout), torch module '2' gets (5, 64): they sit in different places of the "
                              "models")


def test_alpha_dropout_only_off_and_augmentation_layers_refused():
    alpha = keras.layers.AlphaDropout(0.2, dtype=F64, name="alpha")
    k, t, shape = _conv_net(keras, alpha, nn.AlphaDropout(0.2))
    assert "Keras layer 'alpha' (AlphaDropout): its masks are not shared here" in refusal(k, t, shape)
    assert_passes(parity(k, t, shape, stochastic="off"))
    layers = keras.layers
    k = sequential(keras, (6, 6, 2), layers.RandomFlip(dtype=F64, name="flip"),
                   layers.Conv2D(4, 3, dtype=F64), layers.Flatten(dtype=F64), layers.Dense(3, dtype=F64))
    t = nn.Sequential(nn.Conv2d(2, 4, 3), nn.Flatten(), nn.Linear(64, 3)).double()
    assert "Keras layer 'flip' (RandomFlip) draws random numbers in training" in refusal(k, t, (6, 6, 2))


def test_name_map_pairs_stochastic_layers_too():
    layers = keras.layers
    k = sequential(keras, (6,), layers.Dense(4, dtype=F64, name="a"),
                   layers.Dropout(0.2, dtype=F64, name="d1"), layers.Dense(4, dtype=F64, name="b"),
                   layers.Dropout(0.6, dtype=F64, name="d2"), layers.Dense(3, dtype=F64, name="c"))

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.second, self.first = nn.Dropout(0.6), nn.Dropout(0.2)  # registered in the other order
            self.a, self.b, self.c = nn.Linear(6, 4), nn.Linear(4, 4), nn.Linear(4, 3)

        def forward(self, x):
            return self.c(self.second(self.b(self.first(self.a(x)))))

    t = Net().double()
    assert "its twin" not in " ".join(match_stochastic(k, t).notes)
    assert_passes(parity(k, t, (6,), name_map={"d1": "first", "d2": "second"}))
    message = refusal(k, t, (6,), name_map={"d1": "nothing"})
    assert "name_map names torch module 'nothing', which is not a stochastic module" in message
