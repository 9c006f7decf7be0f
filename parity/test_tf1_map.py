"""TF1 name maps and layouts (parity.tf1_map), framework-free: no TensorFlow needed.

Each layout is checked three ways: the documented shapes, the round trip TF -> torch -> TF, and
the *arithmetic*: the torch module computes, with the converted weights, what the TF1 formula
computes with the original ones (written here in NumPy), so a self-consistent but wrong layout
cannot pass.
"""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from torch import nn

from parity.errors import TransferError
from parity.tf1_map import Target, conv2d, dense, lstm_bias, lstm_kernel, resolve, same, torch_tensors_of

RNG = np.random.default_rng(0)


def tf_vars(**shapes):
    return {name.replace("__", "/"): (shape, "float64") for name, shape in shapes.items()}


def one_pair(name_map, tf_shapes, module):
    mapping = resolve(name_map, tf_shapes, torch_tensors_of(module))
    mapping.raise_if_problems("test")
    return mapping


def load(module, mapping, values):
    state = mapping.to_torch(values)
    with torch.no_grad():
        for key, value in state.items():
            module.state_dict(keep_vars=True)[key].copy_(torch.as_tensor(value))
    return state


def test_dense_conv_and_bias_layouts_by_shape_with_globs():
    module = nn.ModuleDict({"conv1": nn.Conv2d(3, 4, 5), "fc": nn.Linear(6, 2)}).double()
    shapes = tf_vars(conv1__Variable=(5, 5, 3, 4), conv1__Variable_1=(4,), fc__W=(6, 2), fc__b=(2, 1))
    mapping = one_pair({"conv*/Variable": "conv{1}.weight", "conv*/Variable_1": "conv{1}.bias",
                        "fc/W": "fc.weight", "fc/b": "fc.bias"}, shapes, module)
    kinds = {p.tf_name: (p.kind, p.torch_keys) for p in mapping.pairs}
    assert kinds == {"conv1/Variable": ("conv2d", ("conv1.weight",)),
                     "conv1/Variable_1": ("same", ("conv1.bias",)),
                     "fc/W": ("dense", ("fc.weight",)), "fc/b": ("same", ("fc.bias",))}
    values = {name: RNG.standard_normal(shape) for name, (shape, _) in shapes.items()}
    load(module, mapping, values)
    # the arithmetic: TF1's NHWC conv (cross-correlation) and x @ W + b
    x = RNG.standard_normal((2, 9, 9, 3))
    kernel = values["conv1/Variable"]
    expected = np.zeros((2, 5, 5, 4))
    for i in range(5):
        for j in range(5):
            expected[:, i, j, :] = np.einsum("mhwc,hwco->mo", x[:, i:i + 5, j:j + 5, :], kernel)
    expected += values["conv1/Variable_1"]
    got = module["conv1"](torch.as_tensor(x).permute(0, 3, 1, 2)).permute(0, 2, 3, 1).detach().numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)
    h = RNG.standard_normal((3, 6))
    np.testing.assert_allclose(module["fc"](torch.as_tensor(h)).detach().numpy(),
                               h @ values["fc/W"] + values["fc/b"].ravel(), rtol=1e-12)
    back = mapping.to_tf(mapping.to_torch(values))
    for name, value in values.items():
        np.testing.assert_array_equal(back[name], value)


def test_flatten_permutation_for_a_dense_after_an_nhwc_reshape():
    h, w, c, out = 3, 2, 4, 5
    module = nn.Linear(h * w * c, out).double()
    kernel = RNG.standard_normal((h * w * c, out))
    mapping = one_pair({"fc1/Variable": dense("weight", flatten_hwc=(h, w, c)), "b": "bias"},
                       tf_vars(fc1__Variable=(h * w * c, out), b=(out,)), module)
    load(module, mapping, {"fc1/Variable": kernel, "b": np.zeros(out)})
    feature_map = RNG.standard_normal((2, h, w, c))       # NHWC, as TF1 reshapes it
    tf_out = feature_map.reshape(2, -1) @ kernel
    torch_in = torch.as_tensor(feature_map).permute(0, 3, 1, 2).flatten(1)   # NCHW, as torch flattens
    np.testing.assert_allclose(module(torch_in).detach().numpy(), tf_out, rtol=1e-12)
    back = mapping.to_tf(mapping.to_torch({"fc1/Variable": kernel, "b": np.zeros(out)}))
    np.testing.assert_array_equal(back["fc1/Variable"], kernel)


def _sigmoid(x):
    return 1 / (1 + np.exp(-x))


def tf1_basic_lstm(x, kernel, bias, units, forget_bias):
    """TF1's BasicLSTMCell/LSTMCell arithmetic: gates = concat([x, h]) @ kernel + bias, split into
    i, j, f, o; c = c * sigmoid(f + forget_bias) + sigmoid(i) * tanh(j); h = tanh(c) * sigmoid(o)."""
    m = x.shape[0]
    h, c = np.zeros((m, units)), np.zeros((m, units))
    outputs = []
    for t in range(x.shape[1]):
        gates = np.concatenate([x[:, t], h], axis=1) @ kernel + bias
        i, j, f, o = np.split(gates, 4, axis=1)
        c = c * _sigmoid(f + forget_bias) + _sigmoid(i) * np.tanh(j)
        h = np.tanh(c) * _sigmoid(o)
        outputs.append(h)
    return np.stack(outputs, axis=1)


@pytest.mark.parametrize("forget_bias", [1.0, 0.0, 2.5])
def test_lstm_cell_kernel_and_forget_bias_into_nn_lstm(forget_bias):
    n_in, units = 3, 5
    lstm = nn.LSTM(n_in, units, batch_first=True).double()
    lstm.bias_hh_l0.requires_grad_(False)
    kernel, bias = RNG.standard_normal((n_in + units, 4 * units)), RNG.standard_normal(4 * units)
    mapping = one_pair({"rnn/basic_lstm_cell/kernel": lstm_kernel("weight_ih_l0", "weight_hh_l0"),
                        "rnn/basic_lstm_cell/bias": lstm_bias("bias_ih_l0", "bias_hh_l0", forget_bias)},
                       tf_vars(rnn__basic_lstm_cell__kernel=(n_in + units, 4 * units),
                               rnn__basic_lstm_cell__bias=(4 * units,)), lstm)
    values = {"rnn/basic_lstm_cell/kernel": kernel, "rnn/basic_lstm_cell/bias": bias}
    state = load(lstm, mapping, values)
    # documented layout: torch gate blocks i, f, g, o from TF's i, j, f, o; forget_bias on f only
    blocks = np.split(bias, 4)
    np.testing.assert_array_equal(state["bias_ih_l0"], np.concatenate(
        [blocks[0], blocks[2] + forget_bias, blocks[1], blocks[3]]))
    np.testing.assert_array_equal(state["bias_hh_l0"], np.zeros(4 * units))
    u = units
    np.testing.assert_array_equal(state["weight_ih_l0"][u:2 * u], kernel[:n_in, 2 * u:3 * u].T)   # f <- f
    np.testing.assert_array_equal(state["weight_hh_l0"][2 * u:3 * u], kernel[n_in:, u:2 * u].T)   # g <- j
    x = RNG.standard_normal((2, 4, n_in))
    expected = tf1_basic_lstm(x, kernel, bias, units, forget_bias)
    np.testing.assert_allclose(lstm(torch.as_tensor(x))[0].detach().numpy(), expected, rtol=1e-12, atol=1e-14)
    # gradients and slots convert without the forget-bias shift; parameters back with it removed
    linear = mapping.pair("rnn/basic_lstm_cell/bias").to_torch(bias, offset=False)
    np.testing.assert_array_equal(linear["bias_ih_l0"],
                                  np.concatenate([blocks[0], blocks[2], blocks[1], blocks[3]]))
    back = mapping.to_tf(state)
    np.testing.assert_allclose(back["rnn/basic_lstm_cell/bias"], bias, rtol=0, atol=1e-15)
    np.testing.assert_array_equal(back["rnn/basic_lstm_cell/kernel"], kernel)


def test_regex_with_named_groups_and_reshape_of_unit_axes():
    module = nn.ModuleList([nn.Linear(4, 3), nn.Linear(3, 2)]).double()
    mapping = one_pair({re.compile(r"layer_(?P<i>\d+)/weights"): "{i}.weight",
                        re.compile(r"layer_(\d+)/biases"): same("{1}.bias")},
                       tf_vars(layer_0__weights=(4, 3), layer_0__biases=(3, 1), layer_1__weights=(3, 2),
                               layer_1__biases=(1, 2)), module)
    assert {p.torch_keys[0] for p in mapping.pairs} == {"0.weight", "0.bias", "1.weight", "1.bias"}


def test_a_square_matrix_is_ambiguous_until_told():
    module = nn.Linear(3, 3).double()
    shapes = tf_vars(W=(3, 3), b=(3,))
    with pytest.raises(TransferError, match=r"ambiguous .*dense\(\.\.\.\) for an \(in, out\) kernel"):
        resolve({"W": "weight", "b": "bias"}, shapes, torch_tensors_of(module)).raise_if_problems("x")
    assert resolve({"W": dense("weight"), "b": "bias"}, shapes, torch_tensors_of(module)).ok
    assert resolve({"W": same("weight"), "b": "bias"}, shapes, torch_tensors_of(module)).ok


def test_every_problem_is_listed_in_one_line():
    module = nn.ModuleDict({"conv": nn.Conv2d(1, 2, 3), "fc": nn.Linear(4, 5),
                            "extra": nn.Linear(1, 1)}).double()
    shapes = {"conv/kernel": ((3, 3, 1, 2), "float64"), "conv/bias": ((2,), "float32"),
              "fc/kernel": ((4, 6), "float64"), "fc/bias": ((5,), "float64"),
              "orphan": ((7,), "float64"), "conv/kernel/Adam": ((3, 3, 1, 2), "float64")}
    name_map = {"conv/kernel": same("conv.weight"), "conv/bias": "conv.bias", "fc/kernel": "fc.weights",
                "fc/bias": "fc.bias", "fc/kernal": "fc.weight", "gone*/x": "x"}
    mapping = resolve(name_map, shapes, torch_tensors_of(module), optimizer_state={"conv/kernel/Adam"})
    with pytest.raises(TransferError) as caught:
        mapping.raise_if_problems("checkpoint ckpt -> torch")
    message = str(caught.value)
    assert "\n" not in message
    for part in ["conv/kernel (3, 3, 1, 2) as same", "an HWIO conv kernel: use conv2d",   # missing transpose
                 "conv/bias -> conv.bias: TF1 float32, torch float64",                       # dtype
                 "'fc.weights': the torch module has no such tensor (did you mean 'fc.weight'?)",
                 "'fc/kernal': no such variable (did you mean 'fc/kernel'?)",         # names a missing one
                 "pattern 'gone*/x' matches no variable",
                 "TF1 variables with no twin in the name map: orphan (7,)",           # left over, TF side
                 "torch tensors with no TF1 variable: fc.weight, extra.weight, extra.bias"]:  # torch side
        assert part in message, (part, message)
    assert "Adam" not in message   # optimizer state is recognised, not a variable without a twin


def test_targets_refuse_wrong_arity_and_unknown_kinds():
    with pytest.raises(TransferError, match="kind lstm_kernel takes 2 torch key"):
        Target(("a",), "lstm_kernel")
    with pytest.raises(TransferError, match="unknown kind"):
        Target(("a",), "transpose")
    with pytest.raises(TransferError, match="non-empty dict"):
        resolve({}, {}, {})
    with pytest.raises(TransferError, match="must be a torch key"):
        resolve({"a": 3}, {}, {})


def test_conv2d_target_checks_its_shapes():
    module = nn.Conv2d(2, 3, 3).double()
    bad = resolve({"k": conv2d("weight"), "b": "bias"}, tf_vars(k=(3, 3, 3, 2), b=(3,)),
                  torch_tensors_of(module))
    assert not bad.ok and "k (3, 3, 3, 2) as conv2d gives ((2, 3, 3, 3),)" in bad.problems[0]
