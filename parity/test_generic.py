"""The generic Keras <-> torch harness: layer transfers, the unmatched report, optimizer step parity.

Every transfer test checks the torch tensors against the documented layout *and* that both
models then compute the same outputs (an independent check: a self-consistent but wrong
layout would round-trip yet compute something else).
"""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("tensorflow", reason="TensorFlow is not installed: the generic Keras <-> torch harness "
                    "needs Keras on one side")

import keras  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

from parity.errors import TransferError  # noqa: E402
from parity.generic import (  # noqa: E402
    f32,
    step_parity,
    to_channels_first,
    torch_optimizer_like,
)
from parity.layers import keras_to_torch, match_layers, torch_to_keras  # noqa: E402
from signs.errors import InputError  # noqa: E402
from torch_port.dtypes import torch_dtype  # noqa: E402
from torch_port.optim import TFAdam  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel:UserWarning")
F64 = "float64"


def keras_model(input_shape, *layers, input_dtype=F64):
    return keras.Sequential([keras.Input(shape=input_shape, dtype=input_dtype), *layers])


def randomize(model, seed=0):
    """Random values in every Keras weight (positive variances), so no layout hides behind zeros/ones."""
    rng = np.random.default_rng(seed)
    for v in model.weights:
        value = rng.standard_normal(tuple(v.shape))
        v.assign(np.abs(value) + 0.5 if "variance" in v.name else value)


def weights_of(model) -> dict:
    return {v.path: v.numpy().copy() for v in model.weights}


# kind -> (Keras model, torch module, input batch in Keras layout, expected torch tensors from Keras weights)
def _dense():
    k = keras_model((5,), keras.layers.Dense(3, dtype=F64, name="d"))
    t = nn.Sequential(nn.Linear(5, 3)).double()
    return k, t, np.random.default_rng(1).standard_normal((4, 5)), \
        lambda w: {"0.weight": w["d/kernel"].T, "0.bias": w["d/bias"]}


def _conv2d():
    k = keras_model((6, 7, 2), keras.layers.Conv2D(4, (3, 2), padding="same", dtype=F64, name="c"))
    t = nn.Sequential(nn.Conv2d(2, 4, (3, 2), padding="same")).double()
    return k, t, np.random.default_rng(2).standard_normal((3, 6, 7, 2)), \
        lambda w: {"0.weight": w["c/kernel"].transpose(3, 2, 0, 1), "0.bias": w["c/bias"]}


def _batchnorm():
    k = keras_model((5, 5, 3),
                    keras.layers.BatchNormalization(momentum=0.9, epsilon=1e-5, dtype=F64, name="bn"))
    t = nn.Sequential(nn.BatchNorm2d(3, momentum=0.1, eps=1e-5)).double()
    return k, t, np.random.default_rng(3).standard_normal((2, 5, 5, 3)), \
        lambda w: {"0.weight": w["bn/gamma"], "0.bias": w["bn/beta"], "0.running_mean": w["bn/moving_mean"],
                   "0.running_var": w["bn/moving_variance"]}


def _embedding():
    k = keras_model((4,), keras.layers.Embedding(10, 3, dtype=F64, name="e"), input_dtype="int32")
    t = nn.Sequential(nn.Embedding(10, 3)).double()
    return k, t, np.random.default_rng(4).integers(0, 10, (2, 4)), lambda w: {"0.weight": w["e/embeddings"]}


def _layernorm():
    k = keras_model((6,), keras.layers.LayerNormalization(epsilon=1e-5, dtype=F64, name="ln"))
    t = nn.Sequential(nn.LayerNorm(6, eps=1e-5)).double()
    return k, t, np.random.default_rng(5).standard_normal((3, 6)), \
        lambda w: {"0.weight": w["ln/gamma"], "0.bias": w["ln/beta"]}


KINDS = {"dense": _dense, "conv2d": _conv2d, "batchnorm": _batchnorm, "embedding": _embedding,
         "layernorm": _layernorm}


def _short(weights: dict) -> dict:
    return {"/".join(path.split("/")[-2:]): value for path, value in weights.items()}


def to_channels_last(x):
    """(m, C, H, W) -> (m, H, W, C), the inverse of ``to_channels_first``."""
    if isinstance(x, torch.Tensor):
        return x.permute(0, 2, 3, 1).contiguous()
    return np.ascontiguousarray(np.asarray(x).transpose(0, 2, 3, 1))


def _torch_forward(module, x):
    module.eval()
    x = to_channels_first(x) if x.ndim == 4 else x
    with torch.no_grad():
        out = module(torch.as_tensor(x)).numpy()
    return to_channels_last(out) if out.ndim == 4 else out


@pytest.mark.parametrize("kind", list(KINDS))
def test_transfer_round_trip_and_same_outputs(kind):
    k, t, x, expected = KINDS[kind]()
    randomize(k)
    original = weights_of(k)
    match = keras_to_torch(k, t)
    assert [p[2] for p in match.pairs] == [kind]
    tensors = {**dict(t.named_parameters()), **dict(t.named_buffers())}
    for name, value in expected(_short(original)).items():
        np.testing.assert_array_equal(tensors[name].detach().numpy(), value)
    np.testing.assert_allclose(_torch_forward(t, x), np.asarray(k(x, training=False)), rtol=0, atol=1e-12)
    for v in k.weights:
        v.assign(np.zeros(tuple(v.shape)))
    torch_to_keras(t, k)
    for path, value in weights_of(k).items():
        np.testing.assert_array_equal(value, original[path])


def test_dense_after_flatten_gets_its_inputs_permuted():
    k = keras_model((2, 3, 4), keras.layers.Flatten(dtype=F64), keras.layers.Dense(5, dtype=F64, name="fc"))
    t = nn.Sequential(nn.Flatten(), nn.Linear(24, 5)).double()
    randomize(k)
    match = keras_to_torch(k, t)
    x = np.random.default_rng(0).standard_normal((3, 2, 3, 4))
    np.testing.assert_allclose(_torch_forward(t, x), np.asarray(k(x)), rtol=0, atol=1e-12)
    kernel = k.get_layer("fc").kernel.numpy()
    assert not np.array_equal(t[1].weight.detach().numpy(), kernel.T)  # a plain transpose would be wrong
    torch_to_keras(t, k)
    np.testing.assert_array_equal(k.get_layer("fc").kernel.numpy(), kernel)
    assert match.pairs == [("fc", "1", "dense", "order")]


class ChannelsLastFlatten(nn.Module):
    def forward(self, x):
        return x.permute(0, 2, 3, 1).flatten(1)


def test_flatten_shapes_none_for_a_module_that_flattens_channels_last():
    k = keras_model((2, 3, 4), keras.layers.Flatten(dtype=F64), keras.layers.Dense(5, dtype=F64, name="fc"))
    t = nn.Sequential(ChannelsLastFlatten(), nn.Linear(24, 5)).double()
    randomize(k)
    x = np.random.default_rng(0).standard_normal((3, 2, 3, 4))
    keras_to_torch(k, t)  # the default permutation is wrong for this module
    assert np.abs(_torch_forward(t, x) - np.asarray(k(x))).max() > 1e-3
    keras_to_torch(k, t, flatten_shapes={"fc": None})
    np.testing.assert_allclose(_torch_forward(t, x), np.asarray(k(x)), rtol=0, atol=1e-12)
    with pytest.raises(TransferError, match=r"flatten_shapes names no Dense layer.*\['dense9'\]"):
        keras_to_torch(k, t, flatten_shapes={"dense9": None})


class SubclassedKeras(keras.Model):
    """A subclassed Keras model: its Flatten has no recorded input shape."""

    def __init__(self):
        super().__init__(dtype=F64)
        self.flat = keras.layers.Flatten(dtype=F64)
        self.fc = keras.layers.Dense(5, dtype=F64, name="fc")

    def call(self, x):
        return self.fc(self.flat(x))


def test_flatten_shape_keras_cannot_tell_is_asked_for():
    k = SubclassedKeras()
    x = np.random.default_rng(0).standard_normal((3, 2, 3, 4))
    k(x)
    randomize(k)
    t = nn.Sequential(nn.Flatten(), nn.Linear(24, 5)).double()
    message = _refusal(k, t)
    assert ("Keras cannot tell the shape of the Flatten before Dense 'fc': "
            "pass flatten_shapes={'fc': (H, W, C)}") in message
    keras_to_torch(k, t, flatten_shapes={"fc": (2, 3, 4)})
    np.testing.assert_allclose(_torch_forward(t, x), np.asarray(k(x)), rtol=0, atol=1e-12)


def test_trainable_on_one_side_only_is_refused():
    t = nn.Sequential(nn.Linear(5, 4), nn.Linear(4, 3)).double()
    t[0].weight.requires_grad_(False)
    message = _refusal(_two_dense(), t)
    assert "body/kernel <-> 0.weight: Keras trains it, torch does not" in message


def test_default_conventions_are_reported():
    k = keras_model((4, 4, 3), keras.layers.BatchNormalization(dtype=F64, name="bn"),
                    keras.layers.LayerNormalization(dtype=F64, name="ln"))
    t = nn.Sequential(nn.BatchNorm2d(3), nn.LayerNorm(3)).double()
    notes = " | ".join(match_layers(k, t).notes)
    assert "bn <-> 0: epsilon differs: Keras 0.001, torch 1e-05" in notes
    assert "bn <-> 0: momentum differs: Keras 0.99 means torch 0.01, torch has 0.1" in notes
    assert "ln <-> 1: epsilon differs: Keras 0.001, torch 1e-05" in notes
    assert "unbiased" in notes
    matched = nn.Sequential(nn.BatchNorm2d(3, eps=1e-3, momentum=0.01), nn.LayerNorm(3, eps=1e-3)).double()
    notes = match_layers(k, matched).notes
    assert not any("epsilon" in n or "momentum" in n for n in notes), notes


def _two_dense():
    return keras_model((5,), keras.layers.Dense(4, dtype=F64, name="body"),
                       keras.layers.Dense(3, dtype=F64, name="head"))


def _refusal(k, t, **kwargs) -> str:
    with pytest.raises(TransferError) as error:
        keras_to_torch(k, t, **kwargs)
    message = str(error.value)
    assert "\n" not in message, message  # one clear line
    assert message.startswith("cannot transfer weights Keras -> torch:")
    return message


def test_kinds_that_differ_are_refused():
    message = _refusal(_two_dense(), nn.Sequential(nn.Linear(5, 4), nn.LayerNorm(4)))
    assert ("Keras layer 'head' (Dense) is a dense layer but is paired (by order) with torch module '1' "
            "(LayerNorm), a layernorm; the order differs? pass name_map") in message


def test_shapes_that_do_not_fit_are_refused():
    message = _refusal(_two_dense(), nn.Sequential(nn.Linear(6, 4), nn.Linear(4, 3)))
    assert "body/kernel (5, 4) becomes (4, 5) in torch layout, but 0.weight is (4, 6)" in message
    message = _refusal(_two_dense(), nn.Sequential(nn.Linear(5, 4, bias=False), nn.Linear(4, 3)))
    assert "Keras layer 'body' (Dense) has a bias that torch module '0' (Linear) lacks" in message


def test_leftover_and_unsupported_layers_are_refused():
    message = _refusal(_two_dense(), nn.Sequential(nn.Linear(5, 4)))
    assert "Keras layer 'head' (Dense) has no torch counterpart (left over)" in message
    message = _refusal(_two_dense(), nn.Sequential(nn.Linear(5, 4), nn.Linear(4, 3), nn.Linear(3, 2)))
    assert "torch module '2' (Linear) has no Keras counterpart (left over)" in message
    message = _refusal(_two_dense(), nn.Sequential(nn.Linear(5, 4), nn.GRU(4, 3)))
    assert "torch module '1' (GRU) has weights but is not a supported kind" in message


class HeadFirst(nn.Module):
    """Registers its layers in another order than it uses them: matching by order fails."""

    def __init__(self):
        super().__init__()
        self.head = nn.Linear(4, 3)
        self.body = nn.Linear(5, 4)

    def forward(self, x):
        return self.head(self.body(x))


def test_name_map_is_the_fallback_when_the_order_differs():
    k, t = _two_dense(), HeadFirst().double()
    assert "becomes (4, 5) in torch layout, but head.weight is (3, 4)" in _refusal(k, t)
    randomize(k)
    match = keras_to_torch(k, t, name_map={"body": "body"})
    assert match.pairs == [("body", "body", "dense", "name_map"), ("head", "head", "dense", "order")]
    x = np.random.default_rng(0).standard_normal((2, 5))
    np.testing.assert_allclose(_torch_forward(t, x), np.asarray(k(x)), rtol=0, atol=1e-12)
    report = match.report()
    assert "name_map" in report and "order" in report
    message = _refusal(k, t, name_map={"trunk": "body"})
    assert ("name_map names Keras layer 'trunk', which the model has not (weighted layers: body, head)"
            in message)


# --- step parity on a tiny model --------------------------------------------------------------

def tiny_pair(dtype=F64, seed=0):
    k = keras.Sequential([keras.Input((8,), dtype=dtype),
                          keras.layers.Dense(5, activation="relu", dtype=dtype, name="hidden"),
                          keras.layers.Dense(3, dtype=dtype, name="out")])
    randomize(k, seed)
    t = nn.Sequential(nn.Linear(8, 5), nn.ReLU(), nn.Linear(5, 3)).to(torch_dtype(dtype))
    return k, t


def tiny_batches(steps=4, m=16):
    rng = np.random.default_rng(7)
    return [(rng.standard_normal((m, 8)), rng.integers(0, 3, m)) for _ in range(steps)]


def tiny_parity(keras_optimizer, mode="teacher-forced", torch_optimizer=None, dtype=F64, **kwargs):
    k, t = tiny_pair(dtype)
    torch_optimizer = (torch_optimizer or torch_optimizer_like)(keras_optimizer, t.parameters())
    return step_parity(k, keras.losses.SparseCategoricalCrossentropy(from_logits=True, dtype=dtype),
                       keras_optimizer, t, nn.CrossEntropyLoss(), torch_optimizer, tiny_batches(),
                       mode=mode, **kwargs)


OPTIMIZERS = {
    "sgd": lambda: keras.optimizers.SGD(learning_rate=0.1),
    "momentum": lambda: keras.optimizers.SGD(learning_rate=0.1, momentum=0.9),
    "nesterov": lambda: keras.optimizers.SGD(learning_rate=0.1, momentum=0.9, nesterov=True),
    "adam": lambda: keras.optimizers.Adam(learning_rate=0.01, beta_1=f32(0.9), beta_2=f32(0.999),
                                          epsilon=f32(1e-7)),
}


@pytest.mark.parametrize("mode", ["teacher-forced", "free-running"])
@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_optimizers_pass_step_parity_float64(name, mode):
    result = tiny_parity(OPTIMIZERS[name](), mode)
    assert result.passed, result.table()
    slots = {"sgd": [], "momentum": ["m"], "nesterov": ["m"], "adam": ["m", "v"]}[name]
    assert result.quantities == ["output", "cost", "grads", "params"] + slots
    assert result.notes == []
    assert max(result.worst_rel.values()) <= 1e-12


def test_adam_float32_passes_the_default_bounds():
    result = tiny_parity(OPTIMIZERS["adam"](), "free-running", dtype="float32")
    assert result.passed, result.table()


def test_conv_batchnorm_model_trains_alike_nhwc_inputs():
    """Conv2D -> BatchNorm (training mode: batch statistics) -> ReLU -> Flatten -> Dense, NHWC inputs."""
    k = keras_model((6, 6, 2), keras.layers.Conv2D(3, 3, padding="same", dtype=F64, name="conv"),
                    keras.layers.BatchNormalization(momentum=0.9, epsilon=1e-5, dtype=F64, name="bn"),
                    keras.layers.ReLU(dtype=F64), keras.layers.Flatten(dtype=F64),
                    keras.layers.Dense(4, dtype=F64, name="fc"))
    randomize(k)
    t = nn.Sequential(nn.Conv2d(2, 3, 3, padding="same"), nn.BatchNorm2d(3, momentum=0.1, eps=1e-5),
                      nn.ReLU(), nn.Flatten(), nn.Linear(108, 4)).double()
    rng = np.random.default_rng(3)
    batches = [(rng.standard_normal((8, 6, 6, 2)), rng.integers(0, 4, 8)) for _ in range(3)]
    optimizer = keras.optimizers.SGD(learning_rate=0.05, momentum=0.9)
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True, dtype=F64)
    result = step_parity(k, loss, optimizer, t, nn.CrossEntropyLoss(),
                         torch_optimizer_like(optimizer, t.parameters()), batches, mode="free-running")
    assert result.passed, result.table()
    assert [p[2] for p in result.match.pairs] == ["conv2d", "batchnorm", "dense"]
    assert any("unbiased" in note for note in result.notes)
    assert "1.weight" in result.reference[0]["grads"]
    assert "1.running_mean" not in result.reference[0]["params"]  # moving statistics are not compared
    # conv's bias is followed by BatchNorm: its gradient is zero up to round-off on both sides,
    # measured against the largest gradient instead of itself (noise over noise is ~1)
    gradient = result.reference[0]["grads"]["0.bias"]
    assert np.abs(gradient).max() < 1e-12 * np.abs(result.reference[0]["grads"]["0.weight"]).max()


def embedding_parity(keras_optimizer, batches):
    k = keras_model((4,), keras.layers.Embedding(10, 3, dtype=F64, name="embed"),
                    keras.layers.Flatten(dtype=F64), keras.layers.Dense(2, dtype=F64, name="fc"),
                    input_dtype="int32")
    randomize(k)
    t = nn.Sequential(nn.Embedding(10, 3), nn.Flatten(), nn.Linear(12, 2)).double()
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True, dtype=F64)
    return step_parity(k, loss, keras_optimizer, t, nn.CrossEntropyLoss(),
                       torch_optimizer_like(keras_optimizer, t.parameters()), batches)


def test_embedding_model_trains_alike_integer_inputs():
    """Embedding -> Flatten -> Dense on integer inputs: Keras's sparse (IndexedSlices) gradient is
    made dense; the flatten of an (m, T, D) sequence needs no permutation."""
    rng = np.random.default_rng(5)
    batches = [(rng.integers(0, 10, (6, 4)), rng.integers(0, 2, 6)) for _ in range(3)]  # repeated tokens
    result = embedding_parity(OPTIMIZERS["momentum"](), batches)
    assert result.passed, result.table()
    assert result.reference[0]["grads"]["0.weight"].shape == (10, 3)


def test_keras_adam_squares_repeated_embedding_rows_one_by_one():
    """Found by this harness: Keras 3's Adam applies ``square`` to the IndexedSlices gradient of an
    Embedding slice by slice, so a row looked up twice in a batch gets g1^2 + g2^2 in v, where
    torch's dense gradient gives (g1 + g2)^2. Without repeated indices both agree to round-off."""
    rng = np.random.default_rng(5)
    unique = [(rng.permutation(10)[:4].reshape(1, 4), rng.integers(0, 2, 1)) for _ in range(3)]
    result = embedding_parity(OPTIMIZERS["adam"](), unique)
    assert result.passed, result.table()
    assert any("squares an Embedding's sparse gradient per occurrence" in note for note in result.notes)
    repeated = [(np.array([[3, 3, 5, 7]]), np.array([1]))]
    result = embedding_parity(OPTIMIZERS["adam"](), repeated)
    assert not result.passed
    assert result.worst_rel["grads"] < 1e-12 and result.worst_rel["m"] < 1e-12  # linear in g: agree
    assert result.steps[0].detail["v/0.weight"][1] > 1e-2                       # the square does not
    assert result.steps[0].detail["v/2.weight"][1] < 1e-12


def test_sgd_momentum_slot_is_keras_velocity_over_minus_lr():
    k, t = tiny_pair()
    optimizer = keras.optimizers.SGD(learning_rate=0.1, momentum=0.9)
    torch_optimizer = torch_optimizer_like(optimizer, t.parameters())
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True, dtype=F64)
    result = step_parity(k, loss, optimizer, t, nn.CrossEntropyLoss(), torch_optimizer, tiny_batches(1))
    velocity = optimizer.momentums[optimizer._get_variable_index(k.get_layer("out").bias)].numpy()
    # the twin keeps Keras's own velocity u; the comparison shows it as torch's buffer -u / lr
    np.testing.assert_allclose(torch_optimizer.state[t[2].bias]["momentum"].numpy(), velocity, rtol=1e-15)
    # step 1: that buffer is the gradient
    np.testing.assert_allclose(result.reference[0]["m"]["2.bias"], t[2].bias.grad.numpy(), rtol=1e-15)


def test_torch_adam_epsilon_convention_shows_as_a_mismatch():
    def plain_adam(keras_optimizer, params):
        return torch.optim.Adam(params, lr=f32(0.01), betas=(f32(0.9), f32(0.999)), eps=f32(1e-7))

    result = tiny_parity(OPTIMIZERS["adam"](), torch_optimizer=plain_adam)
    assert not result.passed
    assert "params" in result.failing
    assert result.worst_rel["params"] > 1e-7
    assert any("torch.optim.Adam adds epsilon to the bias-corrected" in note for note in result.notes)


def test_python_float_adam_constants_are_noted_in_float64():
    """TF1's float32-rounded constants (TFAdam) against Keras's Python floats: noted, and failing;
    the default twin (torch_optimizer_like) computes what Keras does and passes."""
    def tf1_style(keras_optimizer, params):
        return TFAdam(params, lr=0.01, betas=(0.9, 0.999), eps=1e-7, beta_powers="keras")

    result = tiny_parity(keras.optimizers.Adam(learning_rate=0.01), torch_optimizer=tf1_style)
    assert any("beta_1, beta_2, epsilon are not float32 values" in note for note in result.notes)
    assert not result.passed
    assert tiny_parity(keras.optimizers.Adam(learning_rate=0.01)).passed


def test_unsupported_optimizers_have_no_twin():
    with pytest.raises(InputError, match=r"Keras optimizer Nadam \(module .*\) has no torch twin"):
        torch_optimizer_like(keras.optimizers.Nadam(), [torch.zeros(1)])
    with pytest.raises(InputError, match="use_ema=True is not reproduced"):
        torch_optimizer_like(keras.optimizers.AdamW(use_ema=True), [torch.zeros(1)])


def test_bad_arguments_are_refused():
    k, t = tiny_pair()
    args = (keras.losses.SparseCategoricalCrossentropy(from_logits=True), keras.optimizers.SGD(0.1))
    with pytest.raises(InputError, match="the Keras model is float64, the torch module float32"):
        step_parity(k, *args, t.float(), nn.CrossEntropyLoss(), torch.optim.SGD(t.parameters(), 0.1),
                    tiny_batches())
    t.double()
    with pytest.raises(InputError, match="mode 'teacher'"):
        step_parity(k, *args, t, nn.CrossEntropyLoss(), torch.optim.SGD(t.parameters(), 0.1), tiny_batches(),
                    mode="teacher")
    with pytest.raises(InputError, match="9 steps asked for, 4 batches given"):
        step_parity(k, *args, t, nn.CrossEntropyLoss(), torch.optim.SGD(t.parameters(), 0.1), tiny_batches(),
                    steps=9)


def test_report_table_json_and_plot(tmp_path):
    result = tiny_parity(OPTIMIZERS["sgd"]())
    table = result.table()
    assert [line.split()[0] for line in table.splitlines()[2:]] == ["output", "cost", "grads", "params"]
    figures = json.loads(json.dumps(result.to_json(pair=["keras", "torch"])))
    assert figures["passed"] is True and figures["dtype"] == "float64" and figures["mode"] == "teacher-forced"
    assert set(figures["tolerances"]) == {"output", "cost", "grads", "params"}
    assert [s["step"] for s in figures["steps"]] == [1, 2, 3, 4]
    assert set(figures["steps"][0]) == {"step", "cost_a", "cost_b", "max_abs_diff", "max_rel_diff"}
    path = result.plot(tmp_path / "parity.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert result.verdict().startswith("PASS: Keras vs torch, float64 teacher-forced, 4 steps")


def test_round_off_zero_tensor_is_measured_against_its_quantity():
    from parity.compare import tensor_difference

    zero_in_exact = np.array([1e-17, -2e-17])  # next to tensors of size 10: round-off noise
    max_abs, rel = tensor_difference(zero_in_exact, np.array([-1e-17, 3e-17]), scale=10.0)
    assert max_abs == pytest.approx(5e-17) and rel == pytest.approx(5e-18)
    small = np.array([1e-3, -2e-3])  # small but real: its own normwise figure
    assert tensor_difference(small, small * (1 + 1e-6), scale=10.0)[1] == pytest.approx(1e-6)
    assert tensor_difference(small, -small, scale=10.0)[1] == pytest.approx(2.0)


def test_channels_conversions_are_inverse():
    x = np.arange(2 * 3 * 4 * 5).reshape(2, 3, 4, 5)
    assert to_channels_first(x).shape == (2, 5, 3, 4)
    np.testing.assert_array_equal(to_channels_last(to_channels_first(x)), x)
    t = torch.as_tensor(x)
    assert torch.equal(to_channels_last(to_channels_first(t)), t)


def _records(grad_delta: float, param_delta: float, replayed_delta: float | None):
    """One step of a reference and an other side: a gradient off by ``grad_delta``, a parameter off
    by ``param_delta`` and, unless None, a replayed parameter (same gradient) off by ``replayed_delta``."""
    g, p = np.array([1.0, 1e-6]), np.array([1e-3, -1e-3])
    reference = {"step": 1, "cost": 1.0, "grads": {"beta": g}, "params": {"beta": p}}
    other = {"step": 1, "cost": 1.0, "grads": {"beta": g + [0, grad_delta]},
             "params": {"beta": p + [0, param_delta]}}
    if replayed_delta is not None:
        other["replayed"] = {"params": {"beta": p + [0, replayed_delta]}}
    return [reference], [other]


def test_a_parameter_off_only_through_the_optimizers_step_is_explained():
    """Grads within tolerance, the parameter 2e-10 out (Adam's per-element step), the same step from the
    reference's gradient within: counted at the latter, with a note. Each condition can fail it."""
    from parity.compare import compare_records

    bounds = {"cost": 1e-10, "grads": 1e-10, "params": 1e-10}
    result = compare_records(*_records(1e-14, 2e-13, 1e-17), bounds)
    assert result.passed and result.worst_rel["params"] == pytest.approx(1e-14)
    assert result.steps[0].explained["params/beta"][1] == pytest.approx(2e-10)
    assert any(n.startswith("params: 1 tensor(s) outside tolerance only through the optimizer's per-element "
                            "step (worst: beta at step 1, 2.0e-10") for n in result.notes)
    assert "ok*" in result.table() and "replayed with the reference's gradients" in result.table()
    assert result.to_json()["steps"][0]["explained"] == {"params/beta": pytest.approx(2e-10)}
    # the optimizer itself differs: the same gradient gives another step
    assert compare_records(*_records(1e-14, 2e-13, 2e-13), bounds).failing == ["params"]
    # the gradients differ beyond their tolerance: nothing to explain
    assert set(compare_records(*_records(1e-9, 2e-13, 1e-17), bounds).failing) == {"grads", "params"}
    # no replay (free-running, the tutorial's traces): the figure stands
    assert compare_records(*_records(1e-14, 2e-13, None), bounds).failing == ["params"]


@pytest.mark.parametrize("make", [lambda ps: torch.optim.Adam(ps, lr=1e-3),
                                  lambda ps: torch_optimizer_like(keras.optimizers.Adam(), ps)],
                         ids=["torch.optim.Adam", "Keras Adam twin"])
def test_replay_step_leaves_everything_as_it_was(make):
    """replay_step with the parameters' own gradients is the step itself, bit for bit, and afterwards
    the parameters, gradients and optimizer state are untouched: the real step still gives the same."""
    from parity.generic import replay_step

    torch.manual_seed(0)
    net = nn.Linear(3, 2).double()
    optimizer = make(list(net.parameters()))
    params = dict(net.named_parameters())
    for _ in range(2):  # from an empty state, then from one with slots and a step count
        optimizer.zero_grad()
        net(torch.randn(4, 3, dtype=torch.float64)).square().sum().backward()
        before = {n: (p.detach().clone(), p.grad.clone()) for n, p in params.items()}
        own = {n: p.grad.numpy().copy() for n, p in params.items()}
        replayed = replay_step(optimizer, params, own)
        other = replay_step(optimizer, params, {n: g * 2 for n, g in own.items()})
        for n, p in params.items():
            assert torch.equal(p, before[n][0]) and torch.equal(p.grad, before[n][1])
        optimizer.step()
        for n, p in params.items():
            assert replayed["params"][n].tobytes() == p.detach().numpy().tobytes()
            assert not np.array_equal(other["params"][n], replayed["params"][n])
