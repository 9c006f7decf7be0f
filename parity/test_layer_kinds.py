"""The layer kinds of parity/layers.py, each against a hand-written torch twin.

Per kind: float64 step parity (SGD, teacher-forced and free-running) at the default 1e-10
bounds, the weights round trip (Keras -> torch -> Keras), at least one wrong twin that fails
(gates in torch's order, a misplaced LSTM bias, unflipped / untransposed kernels) and the
one-line refusals of what cannot be matched exactly. Tiny shapes (batch 4, 5 steps, 3
features, 4 units, 3 steps): the file runs in seconds.

The GRU (its bias is one Keras variable for two torch tensors) and MultiHeadAttention (three
Keras kernels for one in-projection) convert as *groups* (``LayerMatch.to_torch_values``);
their gradients are also checked group by group against autograd (:func:`gradient_parity`).
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("tensorflow", reason="TensorFlow is not installed: the layer kinds need Keras on one "
                    "side")

import keras  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

from parity.errors import TransferError  # noqa: E402
from parity.generic import step_parity, to_channels_first, torch_optimizer_like  # noqa: E402
from parity.layers import (  # noqa: E402
    RECORDS,
    gate_blocks,
    keras_state,
    keras_to_torch,
    match_layers,
    torch_to_keras,
    torch_transpose_padding,
    transpose_conv_crops,
)

F64 = "float64"
BATCH, TIME, FEATURES, UNITS, STEPS = 4, 5, 3, 4, 3
MODES = ["teacher-forced", "free-running"]


def sequential(input_shape, *layers):
    return keras.Sequential([keras.Input(shape=input_shape, dtype=F64), *layers])


def randomize(model, seed=0, scale=0.5):
    rng = np.random.default_rng(seed)
    for v in model.weights:
        v.assign(scale * rng.standard_normal(tuple(v.shape)))


def batches(model, input_shape, seed=1, steps=STEPS):
    """``steps`` (x, y) pairs in Keras's layout; y shaped as the model's output (MSE targets)."""
    rng = np.random.default_rng(seed)
    out_shape = tuple(np.asarray(model(np.zeros((BATCH, *input_shape)))).shape)
    return [(rng.standard_normal((BATCH, *input_shape)), rng.standard_normal(out_shape))
            for _ in range(steps)]


def parity(keras_model, torch_module, input_shape, mode="teacher-forced", **kwargs):
    optimizer = keras.optimizers.SGD(learning_rate=0.01)
    return step_parity(keras_model, keras.losses.MeanSquaredError(dtype=F64), optimizer, torch_module,
                       nn.MSELoss(), torch_optimizer_like(optimizer, torch_module.parameters()),
                       batches(keras_model, input_shape), mode=mode, **kwargs)


def assert_passes(result, kinds):
    assert result.passed, result.table()
    assert max(result.worst_rel.values()) <= 1e-12, result.worst_rel
    assert [p[2] for p in result.match.pairs] == kinds
    assert result.steps[-1].cost_a != result.steps[0].cost_a  # it trained


def torch_forward(module, x, channels_first=False):
    x = torch.as_tensor(to_channels_first(x) if channels_first else x)
    module.eval()
    with torch.no_grad():
        return module(x).numpy()


def relative(a, b) -> float:
    return float(np.abs(np.asarray(a) - np.asarray(b)).max() / np.abs(np.asarray(a)).max())


def round_trip(keras_model, torch_module):
    """Keras -> torch -> Keras gives the Keras weights back, bit for bit."""
    original = [v.numpy().copy() for v in keras_model.weights]
    keras_to_torch(keras_model, torch_module)
    for v in keras_model.weights:
        v.assign(np.zeros(tuple(v.shape)))
    torch_to_keras(torch_module, keras_model)
    for value, v in zip(original, keras_model.weights):
        np.testing.assert_array_equal(v.numpy(), value)


def gradient_parity(keras_model, torch_module, x, y, channels_first=False) -> float:
    """The worst relative difference of outputs and gradients after one forward/backward, the
    Keras gradients converted group by group (``LayerMatch.to_torch_values``)."""
    import tensorflow as tf

    match = keras_to_torch(keras_model, torch_module)
    variables = keras_model.trainable_variables
    with tf.GradientTape() as tape:
        out = keras_model(x, training=True)
        cost = keras.losses.MeanSquaredError(dtype=F64)(y, out)
    grads = match.to_torch_values(variables, [np.asarray(g) for g in tape.gradient(cost, variables)])
    torch_module.train()
    xt = torch.as_tensor(to_channels_first(x) if channels_first else x)
    out_t = torch_module(xt)
    nn.MSELoss()(out_t, torch.as_tensor(y)).backward()
    params = dict(torch_module.named_parameters())
    assert sorted(grads) == sorted(n for n, p in params.items() if p.requires_grad)
    worst = relative(np.asarray(out), out_t.detach().numpy())
    for name, g in grads.items():
        worst = max(worst, relative(g, params[name].grad.numpy()))
    return worst


def refusal(keras_model, torch_module) -> str:
    with pytest.raises(TransferError) as error:
        keras_to_torch(keras_model, torch_module)
    message = str(error.value)
    assert "\n" not in message, message
    assert message.startswith("cannot transfer weights Keras -> torch:")
    return message


# --- recurrent layers ------------------------------------------------------------------------------

class LastStep(nn.Module):
    """A torch recurrent twin of a Keras RNN + Dense head (return_sequences=False: the last output)."""

    def __init__(self, rnn: nn.Module, units=UNITS, outputs=2, sequences=False, flip=False):
        super().__init__()
        self.rnn, self.sequences, self.flip = rnn, sequences, flip
        self.head = None if sequences else nn.Linear(units, outputs)
        if isinstance(rnn, (nn.LSTM, nn.RNN)) and hasattr(rnn, "bias_hh_l0"):
            rnn.bias_hh_l0.requires_grad_(False)  # Keras has one bias: bias_ih_l0 is it

    def forward(self, x):
        out, _ = self.rnn(x.flip(1) if self.flip else x)
        return out if self.sequences else self.head(out[:, -1])


def lstm_pair(sequences=False, **options):
    head = [] if sequences else [keras.layers.Dense(2, dtype=F64, name="head")]
    k = sequential((TIME, FEATURES), keras.layers.LSTM(UNITS, return_sequences=sequences, dtype=F64,
                                                       name="lstm", **options), *head)
    randomize(k)
    t = LastStep(nn.LSTM(FEATURES, UNITS, batch_first=True), sequences=sequences,
                 flip=options.get("go_backwards", False)).double()
    return k, t


def gru_pair(sequences=False):
    head = [] if sequences else [keras.layers.Dense(2, dtype=F64, name="head")]
    k = sequential((TIME, FEATURES),
                   keras.layers.GRU(UNITS, return_sequences=sequences, dtype=F64, name="gru"), *head)
    randomize(k)
    return k, LastStep(nn.GRU(FEATURES, UNITS, batch_first=True), sequences=sequences).double()


def rnn_pair():
    k = sequential((TIME, FEATURES), keras.layers.SimpleRNN(UNITS, dtype=F64, name="rnn"),
                   keras.layers.Dense(2, dtype=F64, name="head"))
    randomize(k)
    return k, LastStep(nn.RNN(FEATURES, UNITS, batch_first=True)).double()


@pytest.mark.parametrize("mode", MODES)
def test_lstm_step_parity(mode):
    k, t = lstm_pair()
    result = parity(k, t, (TIME, FEATURES), mode)
    assert_passes(result, ["lstm", "dense"])
    assert result.notes == []
    assert "rnn.bias_ih_l0" in result.reference[0]["grads"]        # Keras's bias, in torch's name
    assert "rnn.bias_hh_l0" not in result.reference[0]["grads"]    # frozen at zero, not compared
    assert not t.rnn.bias_hh_l0.detach().numpy().any()


@pytest.mark.parametrize("mode", MODES)
def test_lstm_sequences_and_go_backwards(mode):
    k, t = lstm_pair(sequences=True, go_backwards=True)
    result = parity(k, t, (TIME, FEATURES), mode)
    assert_passes(result, ["lstm"])
    assert len(result.notes) == 1
    assert "go_backwards=True" in result.notes[0] and "x.flip(1)" in result.notes[0]


def test_lstm_layout_and_round_trip():
    k, t = lstm_pair()
    keras_to_torch(k, t)
    cell = k.get_layer("lstm").cell
    # gates i, f, c (torch's g), o in the same order: a plain transpose
    np.testing.assert_array_equal(t.rnn.weight_ih_l0.detach().numpy(), cell.kernel.numpy().T)
    np.testing.assert_array_equal(t.rnn.weight_hh_l0.detach().numpy(), cell.recurrent_kernel.numpy().T)
    np.testing.assert_array_equal(t.rnn.bias_ih_l0.detach().numpy(), cell.bias.numpy())
    round_trip(k, t)
    # torch -> Keras: the bias is the sum of torch's two
    with torch.no_grad():
        t.rnn.bias_hh_l0.fill_(0.25)
    torch_to_keras(t, k)
    np.testing.assert_allclose(cell.bias.numpy(), t.rnn.bias_ih_l0.detach().numpy() + 0.25, rtol=0, atol=0)


def test_lstm_bias_in_the_wrong_place_fails():
    k, t = lstm_pair()
    state = keras_state(match_layers(k, t))
    bias = k.get_layer("lstm").cell.bias.numpy()
    doubled = {**state, "rnn.bias_hh_l0": bias}         # the bias in both: counted twice
    t.load_state_dict({n: torch.as_tensor(v) for n, v in doubled.items()})
    result = parity(k, t, (TIME, FEATURES), transfer=False)
    assert not result.passed and result.steps[0].rel["output"] > 1e-3  # seen at the first step
    k, t = lstm_pair()
    moved = {**keras_state(match_layers(k, t)), "rnn.bias_ih_l0": np.zeros_like(bias), "rnn.bias_hh_l0": bias}
    t.load_state_dict({n: torch.as_tensor(v) for n, v in moved.items()})  # same sum, the wrong tensor
    result = parity(k, t, (TIME, FEATURES), transfer=False)
    first = result.steps[0].rel
    assert first["output"] < 1e-12 and first["grads"] < 1e-12      # step 1's forward and gradients agree
    assert first["params"] > 1e-3 and "params" in result.failing   # its update does not


def test_lstm_trainable_bias_hh_is_refused():
    k, t = lstm_pair()
    t.rnn.bias_hh_l0.requires_grad_(True)
    message = refusal(k, t)
    assert ("lstm/bias <-> rnn.bias_hh_l0: Keras has one bias where torch adds bias_ih and bias_hh; with "
            "both trainable an update moves their sum twice as far") in message
    assert message.endswith("rnn.bias_hh_l0.requires_grad_(False)")


@pytest.mark.parametrize("options, torch_options, expected", [
    ({"recurrent_activation": "hard_sigmoid"}, {},
     "recurrent_activation 'hard_sigmoid': nn.LSTM's gates use the sigmoid, fixed"),
    ({"activation": "relu"}, {}, "activation 'relu': nn.LSTM's is tanh, fixed"),
    ({"dropout": 0.1}, {}, "dropout=0.1, recurrent_dropout=0.0: Keras draws random masks"),
    ({}, {"num_layers": 2}, "torch module 'rnn' (LSTM) has weights but is not a supported kind in this "
                            "configuration: num_layers=2"),
    ({}, {"batch_first": False}, "torch module 'rnn' (LSTM) has weights but is not a supported kind in this "
                                 "configuration: batch_first=False"),
    ({}, {"proj_size": 2}, "proj_size=2 (a projected LSTM) has no Keras counterpart"),
    ({}, {"bidirectional": True}, "Keras layer 'lstm' (LSTM) is a lstm layer but is paired (by order) with "
                                  "torch module 'rnn' (LSTM), a bidirectional"),
])
def test_lstm_refusals(options, torch_options, expected):
    k = sequential((TIME, FEATURES), keras.layers.LSTM(UNITS, dtype=F64, name="lstm", **options),
                   keras.layers.Dense(2, dtype=F64, name="head"))
    t = LastStep(nn.LSTM(FEATURES, UNITS, **{"batch_first": True, **torch_options})).double()
    assert expected in refusal(k, t)


@pytest.mark.parametrize("mode", MODES)
def test_gru_step_parity(mode):
    k, t = gru_pair()
    assert_passes(parity(k, t, (TIME, FEATURES), mode), ["gru", "dense"])


def test_gru_gates_and_biases_group_by_group():
    k, t = gru_pair(sequences=True)
    x, y = batches(k, (TIME, FEATURES))[0]
    assert gradient_parity(k, t, x, y) < 1e-12
    cell = k.get_layer("gru").cell
    kernel = cell.kernel.numpy()
    z, r, h = np.split(kernel, 3, axis=1)
    np.testing.assert_array_equal(t.rnn.weight_ih_l0.detach().numpy(), np.concatenate([r, z, h], axis=1).T)
    np.testing.assert_array_equal(t.rnn.bias_hh_l0.detach().numpy(),
                                  gate_blocks(cell.bias.numpy()[1], (1, 0, 2)))
    round_trip(k, t)


def test_gru_gates_in_torch_order_fail():
    k, t = gru_pair(sequences=True)
    x = batches(k, (TIME, FEATURES))[0][0]
    keras_to_torch(k, t)
    assert relative(np.asarray(k(x)), torch_forward(t, x)) < 1e-14
    cell = k.get_layer("gru").cell
    with torch.no_grad():  # copied as if Keras's z, r, h were torch's r, z, n
        t.rnn.weight_ih_l0.copy_(torch.as_tensor(cell.kernel.numpy().T))
        t.rnn.weight_hh_l0.copy_(torch.as_tensor(cell.recurrent_kernel.numpy().T))
        t.rnn.bias_ih_l0.copy_(torch.as_tensor(cell.bias.numpy()[0]))
        t.rnn.bias_hh_l0.copy_(torch.as_tensor(cell.bias.numpy()[1]))
    assert relative(np.asarray(k(x)), torch_forward(t, x)) > 1e-2


def test_gru_reset_after_false_is_refused():
    k = sequential((TIME, FEATURES), keras.layers.GRU(UNITS, reset_after=False, dtype=F64, name="gru"))
    message = refusal(k, LastStep(nn.GRU(FEATURES, UNITS, batch_first=True), sequences=True).double())
    assert ("Keras layer 'gru' (GRU) cannot be matched exactly with torch module 'rnn' (GRU): "
            "reset_after=False applies the reset gate before the recurrent matmul") in message


@pytest.mark.parametrize("mode", MODES)
def test_simple_rnn_step_parity(mode):
    k, t = rnn_pair()
    assert_passes(parity(k, t, (TIME, FEATURES), mode), ["simple_rnn", "dense"])


def test_simple_rnn_round_trip_and_activation_refused():
    k, t = rnn_pair()
    round_trip(k, t)
    relu = LastStep(nn.RNN(FEATURES, UNITS, batch_first=True, nonlinearity="relu")).double()
    assert "activation 'tanh', but nn.RNN(nonlinearity='relu')" in refusal(k, relu)


# --- Bidirectional ---------------------------------------------------------------------------------

class BidirectionalTwin(nn.Module):
    """nn.LSTM/GRU/RNN(bidirectional=True) merging its two halves as Keras's merge_mode does."""

    def __init__(self, rnn: nn.Module, merge="concat", sequences=True, units=UNITS):
        super().__init__()
        self.rnn, self.merge, self.sequences, self.units = rnn, merge, sequences, units
        for name in ("bias_hh_l0", "bias_hh_l0_reverse"):
            if not isinstance(rnn, nn.GRU) and hasattr(rnn, name):
                getattr(rnn, name).requires_grad_(False)

    def forward(self, x):
        out, _ = self.rnn(x)
        u = self.units
        if self.sequences:
            forward, backward = out[..., :u], out[..., u:]
        else:  # Keras's backward half: after the whole reversed sequence, at torch's position 0
            forward, backward = out[:, -1, :u], out[:, 0, u:]
        return {"concat": lambda: torch.cat([forward, backward], -1), "sum": lambda: forward + backward,
                "ave": lambda: (forward + backward) / 2, "mul": lambda: forward * backward}[self.merge]()


class LastPosition(BidirectionalTwin):
    """A wrong twin of return_sequences=False: out[:, -1] for both halves (the backward one has then
    seen only the last step)."""

    def forward(self, x):
        return self.rnn(x)[0][:, -1]


def bidirectional_pair(layer=keras.layers.LSTM, torch_class=nn.LSTM, merge="concat", sequences=True):
    k = sequential((TIME, FEATURES), keras.layers.Bidirectional(
        layer(UNITS, return_sequences=sequences, dtype=F64), merge_mode=merge, dtype=F64, name="bi"))
    randomize(k)
    t = BidirectionalTwin(torch_class(FEATURES, UNITS, batch_first=True, bidirectional=True), merge,
                          sequences).double()
    return k, t


@pytest.mark.parametrize("mode", MODES)
def test_bidirectional_lstm_step_parity(mode):
    k, t = bidirectional_pair()
    result = parity(k, t, (TIME, FEATURES), mode)
    assert_passes(result, ["bidirectional"])
    assert result.notes == []
    assert {"rnn.weight_ih_l0_reverse", "rnn.bias_ih_l0_reverse"} <= set(result.reference[0]["grads"])


@pytest.mark.parametrize("merge", ["sum", "ave", "mul"])
def test_bidirectional_merge_modes(merge):
    k, t = bidirectional_pair(merge=merge)
    result = parity(k, t, (TIME, FEATURES))
    assert_passes(result, ["bidirectional"])
    assert len(result.notes) == 1 and f"merge_mode={merge!r}: torch concatenates the two directions" \
        in result.notes[0]


def test_bidirectional_last_output_and_simple_rnn():
    k, t = bidirectional_pair(keras.layers.SimpleRNN, nn.RNN, sequences=False)
    result = parity(k, t, (TIME, FEATURES), "free-running")
    assert_passes(result, ["bidirectional"])
    assert any(f"torch's out[:, 0, {UNITS}:] (h_n[1]), not out[:, -1, {UNITS}:]" in n for n in result.notes)
    wrong = LastPosition(nn.RNN(FEATURES, UNITS, batch_first=True, bidirectional=True)).double()
    keras_to_torch(k, wrong)
    x = batches(k, (TIME, FEATURES))[0][0]
    assert relative(np.asarray(k(x)), torch_forward(wrong, x)) > 1e-2
    k, t = bidirectional_pair(keras.layers.SimpleRNN, nn.RNN)
    round_trip(k, t)


@pytest.mark.parametrize("mode", MODES)
def test_bidirectional_gru_step_parity(mode):
    k, t = bidirectional_pair(keras.layers.GRU, nn.GRU)
    assert_passes(parity(k, t, (TIME, FEATURES), mode), ["bidirectional"])


def test_bidirectional_gru_group_by_group():
    k, t = bidirectional_pair(keras.layers.GRU, nn.GRU)
    x, y = batches(k, (TIME, FEATURES))[0]
    assert gradient_parity(k, t, x, y) < 1e-12
    round_trip(k, t)


def test_bidirectional_refusals():
    k, _ = bidirectional_pair(keras.layers.GRU, nn.GRU)
    message = refusal(k, BidirectionalTwin(nn.LSTM(FEATURES, UNITS, batch_first=True, bidirectional=True)))
    assert "Keras Bidirectional(GRU) against torch LSTM: build GRU(bidirectional=True)" in message
    inner = keras.layers.LSTM(UNITS, return_sequences=True, recurrent_dropout=0.2, dtype=F64)
    k = sequential((TIME, FEATURES), keras.layers.Bidirectional(inner, dtype=F64, name="bi"))
    message = refusal(k, BidirectionalTwin(nn.LSTM(FEATURES, UNITS, batch_first=True, bidirectional=True)))
    assert "forward_layer: dropout=0.0, recurrent_dropout=0.2" in message


def test_bidirectional_merge_none_is_noted():
    k, t = bidirectional_pair(merge=None)
    notes = match_layers(k, t).notes
    assert notes == [f"bi <-> rnn: merge_mode=None: torch concatenates the two directions; the torch module "
                     f"must merge them itself: (out[..., :{UNITS}], out[..., {UNITS}:]) (Keras returns the "
                     "pair)"]


# --- convolutions ------------------------------------------------------------------------------------

class Conv1dTwin(nn.Module):
    """A Conv1D twin on (batch, steps, channels) inputs: it transposes around nn.Conv1d itself."""

    def __init__(self, conv: nn.Conv1d, causal_pad=0):
        super().__init__()
        self.conv, self.causal_pad = conv, causal_pad

    def forward(self, x):
        x = x.transpose(1, 2)
        if self.causal_pad:
            x = nn.functional.pad(x, (self.causal_pad, 0))
        return self.conv(x).transpose(1, 2)


@pytest.mark.parametrize("mode", MODES)
def test_conv1d_step_parity(mode):
    k = sequential((TIME, FEATURES), keras.layers.Conv1D(UNITS, 2, dtype=F64, name="conv"))
    randomize(k)
    t = Conv1dTwin(nn.Conv1d(FEATURES, UNITS, 2)).double()
    result = parity(k, t, (TIME, FEATURES), mode)
    assert_passes(result, ["conv1d"])
    assert result.notes == []


def test_conv1d_causal_padding_noted_and_matched_by_hand():
    k = sequential((TIME, FEATURES),
                   keras.layers.Conv1D(UNITS, 3, padding="causal", dilation_rate=2, dtype=F64, name="conv"))
    randomize(k)
    t = Conv1dTwin(nn.Conv1d(FEATURES, UNITS, 3, dilation=2), causal_pad=4).double()
    result = parity(k, t, (TIME, FEATURES))
    assert_passes(result, ["conv1d"])
    assert result.notes == ["conv <-> conv: Keras padding 'causal' pads 4 steps at the start only; torch "
                            "Conv1d cannot: F.pad(x, (4, 0)) first, with padding=0"]


def test_conv1d_reshaped_kernel_fails():
    k = sequential((TIME, FEATURES), keras.layers.Conv1D(UNITS, 2, dtype=F64, name="conv"))
    randomize(k)
    t = Conv1dTwin(nn.Conv1d(FEATURES, UNITS, 2)).double()
    state = keras_state(match_layers(k, t))
    state["conv.weight"] = k.get_layer("conv").kernel.numpy().reshape(UNITS, FEATURES, 2)  # no transpose
    t.load_state_dict({n: torch.as_tensor(v) for n, v in state.items()})
    result = parity(k, t, (TIME, FEATURES), transfer=False)
    assert {"output", "cost", "grads"} <= set(result.failing)


class TransposeTwin(nn.Module):
    """ConvTranspose2d -> (cut) -> flatten -> Linear; ``cut`` removes the last rows/columns
    where no padding/output_padding of torch's matches Keras's 'same'."""

    def __init__(self, conv: nn.ConvTranspose2d, features: int, cut: int = 0):
        super().__init__()
        self.up, self.cut = conv, cut
        self.fc = nn.Linear(features, 2)

    def forward(self, x):
        y = self.up(x)
        if self.cut:
            y = y[:, :, :-self.cut, :-self.cut]
        return self.fc(y.flatten(1))


TRANSPOSE_CASES = {  # (kernel, stride, padding, output_padding) -> torch (padding, output_padding) or cut
    "valid k3 s2": ((3, 2, "valid", None), (0, 0)),
    "valid k2 s3": ((2, 3, "valid", None), (0, 1)),       # Keras (i-1)*s + max(k, s): torch output_padding
    "same k4 s2": ((4, 2, "same", None), (1, 0)),
    "same k3 s2": ((3, 2, "same", None), "cut 1"),         # Keras cuts the end, torch would cut the start
    "same k2 s3": ((2, 3, "same", None), (0, 1)),
    "same k5 s3 op2": ((5, 3, "same", 2), (1, 0)),
}


def transpose_pair(case):
    (kernel, stride, padding, output_padding), torch_args = TRANSPOSE_CASES[case]
    shape = (3, 4, 2)
    layer = keras.layers.Conv2DTranspose(3, kernel, strides=stride, padding=padding,
                                         output_padding=output_padding, dtype=F64, name="up")
    k = sequential(shape, layer, keras.layers.Flatten(dtype=F64), keras.layers.Dense(2, dtype=F64, name="fc"))
    randomize(k)
    features = int(np.prod(layer.output.shape[1:]))
    if torch_args == "cut 1":
        conv, cut = nn.ConvTranspose2d(2, 3, kernel, stride=stride), 1
    else:
        conv, cut = nn.ConvTranspose2d(2, 3, kernel, stride=stride, padding=torch_args[0],
                                       output_padding=torch_args[1]), 0
    return k, TransposeTwin(conv, features, cut).double(), shape


@pytest.mark.parametrize("case", list(TRANSPOSE_CASES))
def test_conv2d_transpose_step_parity(case):
    k, t, shape = transpose_pair(case)
    (kernel, stride, padding, output_padding), torch_args = TRANSPOSE_CASES[case]
    expected = torch_transpose_padding((kernel,) * 2, (stride,) * 2, (1, 1), padding,
                                       None if output_padding is None else (output_padding,) * 2)
    assert expected == (None if torch_args == "cut 1" else tuple((a, a) for a in torch_args))
    result = parity(k, t, shape, "free-running")
    assert_passes(result, ["conv2d_transpose", "dense"])
    if TRANSPOSE_CASES[case][1] == "cut 1":
        assert len(result.notes) == 1 and "cuts (start, end) = [(0, 1), (0, 1)] per axis" in result.notes[0]
        assert "use padding=0, output_padding=0 and cut the output yourself" in result.notes[0]
    else:
        assert result.notes == []


def test_conv2d_transpose_teacher_forced_and_round_trip():
    k, t, shape = transpose_pair("same k4 s2")
    assert_passes(parity(k, t, shape), ["conv2d_transpose", "dense"])
    round_trip(k, t)
    kernel = k.get_layer("up").kernel.numpy()                   # (kh, kw, out, in) -> (in, out, kh, kw)
    np.testing.assert_array_equal(t.up.weight.detach().numpy(), kernel.transpose(3, 2, 0, 1))


@pytest.mark.parametrize("wrong", ["flipped", "reshaped"])
def test_conv2d_transpose_flipped_or_reshaped_kernel_fails(wrong):
    """No spatial flip: Keras's and torch's transposed convolutions are both the gradient of a
    cross-correlation. A flipped kernel, or one reshaped instead of transposed, fails."""
    k, t, shape = transpose_pair("same k4 s2")
    state = keras_state(match_layers(k, t))
    kernel = k.get_layer("up").kernel.numpy()                                  # (kh, kw, out, in)
    state["up.weight"] = np.ascontiguousarray(kernel[::-1, ::-1].transpose(3, 2, 0, 1) if wrong == "flipped"
                                              else kernel.reshape(2, 3, 4, 4))
    t.load_state_dict({n: torch.as_tensor(v) for n, v in state.items()})
    result = parity(k, t, shape, transfer=False)
    assert {"output", "cost", "grads"} <= set(result.failing), result.worst_rel


def test_conv2d_transpose_padding_conventions():
    assert transpose_conv_crops(3, 2, 1, "same", None) == (0, 1)    # TF: the smaller half first
    assert torch_transpose_padding((3, 3), (2, 2), (1, 1), "same", None) is None
    assert torch_transpose_padding((4, 3), (2, 1), (1, 1), "same", None) == ((1, 1), (0, 0))
    assert torch_transpose_padding((2,), (3,), (1,), "valid", None) == ((0,), (1,))
    k, _, _ = transpose_pair("same k4 s2")
    notes = match_layers(k, TransposeTwin(nn.ConvTranspose2d(2, 3, 4, stride=2), 8 * 6 * 3).double()).notes
    assert notes == ["up <-> up: Keras padding 'same', output_padding=None is torch padding=(1, 1), "
                     "output_padding=(0, 0); torch has padding=(0, 0), output_padding=(0, 0)"]


class DepthwiseTwin(nn.Module):
    def __init__(self, channels=3, multiplier=2, features=4 * 4 * 6):
        super().__init__()
        self.depthwise = nn.Conv2d(channels, channels * multiplier, 3, padding="same", groups=channels)
        self.fc = nn.Linear(features, 2)

    def forward(self, x):
        return self.fc(self.depthwise(x).flatten(1))


def depthwise_pair():
    k = sequential((4, 4, 3), keras.layers.DepthwiseConv2D(3, depth_multiplier=2, padding="same", dtype=F64,
                                                           name="dw"),
                   keras.layers.Flatten(dtype=F64), keras.layers.Dense(2, dtype=F64, name="fc"))
    randomize(k)
    return k, DepthwiseTwin().double()


@pytest.mark.parametrize("mode", MODES)
def test_depthwise_conv2d_step_parity(mode):
    k, t = depthwise_pair()
    result = parity(k, t, (4, 4, 3), mode)
    assert_passes(result, ["depthwise_conv2d", "dense"])
    assert result.notes == []


def test_depthwise_channel_order_and_round_trip():
    k, t = depthwise_pair()
    round_trip(k, t)
    kernel = k.get_layer("dw").kernel.numpy()                         # (3, 3, in=3, m=2)
    weight = t.depthwise.weight.detach().numpy()                      # (6, 1, 3, 3)
    for c in range(3):
        for j in range(2):
            np.testing.assert_array_equal(weight[c * 2 + j, 0], kernel[:, :, c, j])
    state = keras_state(match_layers(k, t))                           # multiplier-major: wrong
    state["depthwise.weight"] = np.ascontiguousarray(kernel.transpose(3, 2, 0, 1).reshape(6, 1, 3, 3))
    t.load_state_dict({n: torch.as_tensor(v) for n, v in state.items()})
    result = parity(k, t, (4, 4, 3), transfer=False)
    assert {"output", "cost", "grads"} <= set(result.failing)


class SeparableConv2d(nn.Module):
    """A user's separable conv: exactly the two children ``depthwise`` and ``pointwise``."""

    def __init__(self, channels, out, kernel, multiplier=1, depthwise_bias=False):
        super().__init__()
        self.depthwise = nn.Conv2d(channels, channels * multiplier, kernel, groups=channels,
                                   bias=depthwise_bias)
        self.pointwise = nn.Conv2d(channels * multiplier, out, 1)

    def forward(self, x):
        return self.pointwise(self.depthwise(x))


def separable_pair(depthwise_bias=False):
    k = sequential((5, 5, 3), keras.layers.SeparableConv2D(4, 3, depth_multiplier=2, dtype=F64, name="sep"),
                   keras.layers.Flatten(dtype=F64), keras.layers.Dense(2, dtype=F64, name="fc"))
    randomize(k)
    t = nn.Sequential(SeparableConv2d(3, 4, 3, multiplier=2, depthwise_bias=depthwise_bias), nn.Flatten(),
                      nn.Linear(3 * 3 * 4, 2)).double()
    return k, t


@pytest.mark.parametrize("mode", MODES)
def test_separable_conv2d_step_parity(mode):
    k, t = separable_pair()
    result = parity(k, t, (5, 5, 3), mode)
    assert_passes(result, ["separable_conv2d", "dense"])
    assert result.match.pairs[0][:2] == ("sep", "0")  # one Keras layer, one torch container
    assert result.notes == []


def test_separable_round_trip_and_depthwise_bias_refused():
    k, t = separable_pair()
    round_trip(k, t)
    message = refusal(*separable_pair(depthwise_bias=True))
    assert ("torch depthwise has a bias; Keras SeparableConv2D has one bias, after the pointwise conv"
            in message)


# --- PReLU -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("mode", MODES)
def test_prelu_per_channel_step_parity(mode):
    k = sequential((4, 4, 3), keras.layers.PReLU(shared_axes=[1, 2], dtype=F64, name="act"),
                   keras.layers.Flatten(dtype=F64), keras.layers.Dense(2, dtype=F64, name="fc"))
    randomize(k)
    t = nn.Sequential(nn.PReLU(3), nn.Flatten(), nn.Linear(48, 2)).double()
    result = parity(k, t, (4, 4, 3), mode)
    assert_passes(result, ["prelu", "dense"])
    assert result.notes == []


def test_prelu_features_and_single_slope():
    k = sequential((6,), keras.layers.Dense(5, dtype=F64, name="d"),
                   keras.layers.PReLU(dtype=F64, name="act"), keras.layers.Dense(2, dtype=F64, name="fc"))
    randomize(k)
    t = nn.Sequential(nn.Linear(6, 5), nn.PReLU(5), nn.Linear(5, 2)).double()
    assert_passes(parity(k, t, (6,)), ["dense", "prelu", "dense"])
    k = sequential((4, 4, 3), keras.layers.PReLU(shared_axes=[1, 2, 3], dtype=F64, name="act"))
    randomize(k)
    t = nn.Sequential(nn.PReLU()).double()
    round_trip(k, t)
    assert tuple(t[0].weight.shape) == (1,)


def test_prelu_per_position_is_refused():
    k = sequential((4, 4, 3), keras.layers.PReLU(dtype=F64, name="act"))
    message = refusal(k, nn.Sequential(nn.PReLU(3)).double())
    assert ("Keras layer 'act' (PReLU) cannot be matched exactly with torch module '0' (PReLU): Keras alpha "
            "(4, 4, 3) has a slope per position") in message


# --- MultiHeadAttention --------------------------------------------------------------------------------

class AttentionTwin(nn.Module):
    def __init__(self, embed, heads, **options):
        super().__init__()
        self.attn = nn.MultiheadAttention(embed, heads, **{"batch_first": True, **options})

    def forward(self, x):
        return self.attn(x, x, x, need_weights=False)[0]


def attention_pair(heads=2, key_dim=4, embed=None, key_size=None, **torch_options):
    embed = embed or heads * key_dim
    query = keras.Input((TIME, heads * key_dim), dtype=F64)
    layer = keras.layers.MultiHeadAttention(heads, key_dim, dtype=F64, name="mha")
    if key_size:
        value = keras.Input((TIME, key_size), dtype=F64)
        k = keras.Model([query, value], layer(query, value))
    else:
        k = keras.Model(query, layer(query, query))
    randomize(k)
    return k, AttentionTwin(embed, torch_options.pop("torch_heads", heads), **torch_options).double()


@pytest.mark.parametrize("mode", MODES)
def test_multi_head_attention_step_parity(mode):
    k, t = attention_pair()
    result = parity(k, t, (TIME, 8), mode)
    assert_passes(result, ["multi_head_attention"])
    assert result.notes == []


def test_multi_head_attention_group_by_group():
    k, t = attention_pair()
    x, y = batches(k, (TIME, 8))[0]
    assert gradient_parity(k, t, x, y) < 1e-12
    assert match_layers(k, t).torch_names() == ["attn.in_proj_weight", "attn.in_proj_bias",
                                                "attn.out_proj.weight", "attn.out_proj.bias"]
    query = k.get_layer("mha").query_dense.kernel.numpy()                       # (E, heads, key_dim)
    np.testing.assert_array_equal(t.attn.in_proj_weight.detach().numpy()[:8], query.reshape(8, 8).T)
    round_trip(k, t)
    with torch.no_grad():  # query and key projections swapped: another function
        w = t.attn.in_proj_weight
        w.copy_(torch.cat([w[8:16], w[:8], w[16:]]))
    assert relative(np.asarray(k(x)), torch_forward(t, x)) > 1e-3


def test_multi_head_attention_float32_scale_in_float64_is_noted():
    k, t = attention_pair(heads=2, key_dim=2)
    x = batches(k, (TIME, 4))[0][0]
    match = keras_to_torch(k, t)
    assert len(match.notes) == 1 and "Keras scales the attention scores by float32(1/sqrt(key_dim)) = " \
        "0.7071067690849304 even in float64" in match.notes[0]
    assert 1e-9 < relative(np.asarray(k(x)), torch_forward(t, x)) < 1e-7   # outside the 1e-10 bound
    k, t = attention_pair(heads=2, key_dim=4)                                # 1/sqrt(4) is a float32
    assert keras_to_torch(k, t).notes == []
    x = batches(k, (TIME, 8))[0][0]
    assert relative(np.asarray(k(x)), torch_forward(t, x)) < 1e-14


@pytest.mark.parametrize("pair, expected", [
    (lambda: attention_pair(torch_heads=4), "num_heads differ: Keras 2, torch 4"),
    (lambda: attention_pair(embed=16), "key_dim * num_heads = 4 * 2 = 8, torch embed_dim 16"),
    (lambda: attention_pair(key_size=6), "Keras key size 6, value size 6 != embed_dim 8: only the packed "
                                         "in-projection"),
    (lambda: attention_pair(kdim=6, vdim=6), "torch module 'attn' (MultiheadAttention) has weights but is "
                                             "not a supported kind in this configuration: kdim=6, vdim=6 "
                                             "differ from embed_dim=8"),
    (lambda: attention_pair(dropout=0.1), "attention dropout Keras 0.0, torch 0.1: random masks"),
    (lambda: attention_pair(batch_first=False), "configuration: batch_first=False"),
    (lambda: attention_pair(add_bias_kv=True), "add_bias_kv=True has no Keras counterpart"),
])
def test_multi_head_attention_refusals(pair, expected):
    assert expected in refusal(*pair())


# --- the records ------------------------------------------------------------------------------------

def test_every_kind_is_one_record_in_the_docstring_table():
    import parity.layers as layers

    table = layers.__doc__.split("**Flatten order.**")[0]
    for name, record in RECORDS.items():
        assert f"\n{name} " in table, name
        assert record.name == name and record.keras and (record.weights or record.specs)
    assert set(RECORDS) >= {"lstm", "gru", "simple_rnn", "bidirectional", "conv1d", "conv2d_transpose",
                            "depthwise_conv2d", "separable_conv2d", "multi_head_attention", "prelu"}


def test_per_variable_view_refuses_grouped_weights():
    k, t = gru_pair(sequences=True)
    match = match_layers(k, t)
    bias = [w for w in match.weights if w.keras_name == "bias"]
    assert [w.torch_name for w in bias] == ["rnn.bias_ih_l0", "rnn.bias_hh_l0"]
    with pytest.raises(TransferError, match="convert together"):
        bias[0].to_torch(np.zeros((2, 3 * UNITS)))
    kernel = next(w for w in match.weights if w.keras_name == "kernel")
    assert kernel.to_torch(np.zeros((FEATURES, 3 * UNITS))).shape == (3 * UNITS, FEATURES)
