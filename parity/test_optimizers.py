"""The torch twins of Keras's optimizers (parity/optimizers.py).

Every optimizer, schedule, clipping option and weight decay, with Keras's defaults where the
case says so, trains a tiny float64 model (Dense 8 -> 5, ReLU, Dense 3) to round-off against
its twin from ``torch_optimizer_like``, teacher-forced and free-running: under Keras 3
(``keras.optimizers``, through :func:`parity.generic.step_parity`) and Keras 2 (``tf_keras``'s
optimizers and its legacy ``OptimizerV2`` ones: the whole matrix through a Keras 2 loop here,
which needs nothing of ``parity.layers``, and a few cases through ``step_parity`` itself). Then:
the roundings that matter (a twin that rounds one constant otherwise fails), the refusals, the
notes.
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("tensorflow", reason="TensorFlow is not installed: the optimizer twins are checked "
                    "against Keras")

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

from parity import optimizers as twins  # noqa: E402
from parity.compare import compare_records  # noqa: E402
from parity.generic import run_torch, step_parity, torch_optimizer_like  # noqa: E402
from parity.layers import load_torch_state  # noqa: E402
from parity.tolerances import generic_tolerances  # noqa: E402
from signs.errors import InputError  # noqa: E402
from signs.precision import f32  # noqa: E402
from torch_port.dtypes import torch_dtype  # noqa: E402
from torch_port.optim import TFAdam  # noqa: E402

try:
    import tf_keras
except ImportError:  # the tensorflow extra brings it; without it the Keras 2 cases skip
    tf_keras = None

F64 = "float64"
MODES = ("teacher-forced", "free-running")
ROUND_OFF = 1e-12  # float64: every figure measured here is <= 1e-14; a formula difference >= 1e-10
NAMES = ["0.weight", "0.bias", "2.weight", "2.bias"]
APIS = ("keras3", "keras2", "keras2-legacy")  # keras.optimizers, tf_keras.optimizers, tf_keras's legacy ones
K3, S3 = keras.optimizers, keras.optimizers.schedules


def _optimizers(api):
    if api == "keras3":
        return keras.optimizers, keras.optimizers.schedules
    if tf_keras is None:
        pytest.skip("tf_keras is not installed (pip install .[tensorflow]): the Keras 2 cases need it")
    if api == "keras2":
        return tf_keras.optimizers, tf_keras.optimizers.schedules
    return tf_keras.optimizers.legacy, tf_keras.optimizers.schedules


# case -> (build(optimizers, schedules), slot quantities compared, APIs that have it)
ALL, NEW, LEGACY = APIS, ("keras3", "keras2"), ("keras2-legacy",)
CASES = {
    "adam-defaults": (lambda o, s: o.Adam(), ["m", "v"], ALL),
    "adam": (lambda o, s: o.Adam(0.05), ["m", "v"], ALL),
    "adam-amsgrad": (lambda o, s: o.Adam(0.05, amsgrad=True), ["m", "v"], ALL),
    "adamw-defaults": (lambda o, s: o.AdamW(), ["m", "v"], NEW),
    "adamw": (lambda o, s: o.AdamW(0.05, weight_decay=0.13), ["m", "v"], NEW),
    "sgd": (lambda o, s: o.SGD(0.1), [], ALL),
    "sgd-momentum": (lambda o, s: o.SGD(0.1, momentum=0.9), ["m"], ALL),
    "sgd-nesterov": (lambda o, s: o.SGD(0.1, momentum=0.9, nesterov=True), ["m"], ALL),
    "rmsprop": (lambda o, s: o.RMSprop(0.01), ["v"], ALL),
    "rmsprop-momentum": (lambda o, s: o.RMSprop(0.01, momentum=0.9), ["m", "v"], ALL),
    "rmsprop-centered": (lambda o, s: o.RMSprop(0.01, centered=True), ["v"], ALL),
    "rmsprop-centered-momentum": (lambda o, s: o.RMSprop(0.01, momentum=0.7, centered=True), ["m", "v"], ALL),
    "adagrad": (lambda o, s: o.Adagrad(0.1), ["v"], ALL),
    "exponential-decay": (lambda o, s: o.SGD(s.ExponentialDecay(0.1, 2, 0.7), momentum=0.9), ["m"], ALL),
    "exponential-staircase": (lambda o, s: o.Adam(s.ExponentialDecay(0.05, 2, 0.7, staircase=True)),
                              ["m", "v"], ALL),
    "piecewise-constant": (lambda o, s: o.RMSprop(s.PiecewiseConstantDecay([1, 2], [0.02, 0.01, 0.005]),
                                                  momentum=0.5), ["m", "v"], ALL),
    "cosine-decay": (lambda o, s: o.SGD(s.CosineDecay(0.1, 3, alpha=0.1), momentum=0.9), ["m"], ALL),
    "cosine-warmup": (lambda o, s: o.Adam(s.CosineDecay(0.01, 3, warmup_target=0.05, warmup_steps=2)),
                      ["m", "v"], ALL),
    "inverse-time": (lambda o, s: o.Adagrad(s.InverseTimeDecay(0.1, 2, 0.5, staircase=True)), ["v"], ALL),
    "clipnorm": (lambda o, s: o.Adam(0.05, clipnorm=0.3), ["m", "v"], ALL),
    "clipvalue": (lambda o, s: o.SGD(0.1, momentum=0.9, clipvalue=0.07), ["m"], ALL),
    "global-clipnorm": (lambda o, s: o.RMSprop(0.01, global_clipnorm=0.3), ["v"], ALL),
    "weight-decay-sgd": (lambda o, s: o.SGD(0.1, momentum=0.9, weight_decay=0.13), ["m"], NEW),
    "weight-decay-adagrad": (lambda o, s: o.Adagrad(0.1, weight_decay=0.13), ["v"], NEW),
    "legacy-decay-sgd": (lambda o, s: o.SGD(0.1, momentum=0.9, decay=0.3), ["m"], LEGACY),
    "legacy-decay-adam": (lambda o, s: o.Adam(0.05, decay=0.3), ["m", "v"], LEGACY),
    "legacy-clipvalue-then-clipnorm": (lambda o, s: o.SGD(0.1, clipvalue=0.07, clipnorm=0.2), [], LEGACY),
}
# Keras 2's free-running runs are slow-marked (make test-all): teacher forcing already checks every
# step's arithmetic, and free-running adds only the drift, which Keras 3's runs show.
PARAMS = [pytest.param(api, case, mode, id=f"{api}-{case}-{mode}",
                       marks=[pytest.mark.slow] if api != "keras3" and mode == "free-running" else [])
          for case, (_, _, apis) in CASES.items() for api in apis for mode in MODES]


# --- the tiny model, on both sides -------------------------------------------------------------

def tiny_batches(steps=4, m=16):
    rng = np.random.default_rng(7)
    return [(rng.standard_normal((m, 8)), rng.integers(0, 3, m)) for _ in range(steps)]


def _randomize(variables, seed=0):
    rng = np.random.default_rng(seed)
    for v in variables:
        v.assign(rng.standard_normal(tuple(v.shape)))


def tiny_torch(dtype=F64):
    return nn.Sequential(nn.Linear(8, 5), nn.ReLU(), nn.Linear(5, 3)).to(torch_dtype(dtype))


def keras3_parity(keras_optimizer, mode="teacher-forced", torch_optimizer=None, dtype=F64, steps=4):
    """Step parity of the tiny Keras 3 model and its torch twin (``torch_optimizer``: a function
    of the Keras optimizer and the torch parameters, default ``torch_optimizer_like``)."""
    k = keras.Sequential([keras.Input((8,), dtype=dtype),
                          keras.layers.Dense(5, activation="relu", dtype=dtype, name="hidden"),
                          keras.layers.Dense(3, dtype=dtype, name="out")])
    _randomize(k.weights)
    t = tiny_torch(dtype)
    optimizer = (torch_optimizer or torch_optimizer_like)(keras_optimizer, t.parameters())
    return step_parity(k, keras.losses.SparseCategoricalCrossentropy(from_logits=True, dtype=dtype),
                       keras_optimizer, t, nn.CrossEntropyLoss(), optimizer, tiny_batches(steps), mode=mode)


def _to_torch(value):
    value = np.asarray(value)
    return value.T.copy() if value.ndim == 2 else value.copy()  # Dense kernel (in, out) -> (out, in)


def keras2_parity(keras_optimizer, mode="teacher-forced", torch_optimizer=None):
    """The same with a tf_keras model and optimizer: Keras 2's records (slots through
    ``parity.optimizers.keras_slots``, in torch's units), the torch side by ``run_torch``."""
    k = tf_keras.Sequential([tf_keras.Input((8,), dtype=F64),
                             tf_keras.layers.Dense(5, activation="relu", dtype=F64),
                             tf_keras.layers.Dense(3, dtype=F64)])
    variables = k.trainable_variables
    _randomize(variables)
    t = tiny_torch()
    load_torch_state(t, {name: _to_torch(v.numpy()) for name, v in zip(NAMES, variables)})
    optimizer = (torch_optimizer or torch_optimizer_like)(keras_optimizer, t.parameters())
    loss = tf_keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    batches, reference = tiny_batches(), []
    for step, (x, y) in enumerate(batches, start=1):
        with tf.GradientTape() as tape:
            output = k(x, training=True)
            cost = loss(y, output)
        grads = tape.gradient(cost, variables)
        keras_optimizer.apply_gradients(zip(grads, variables))
        record = {"step": step, "cost": float(cost), "output": np.asarray(output),
                  "grads": {n: _to_torch(g) for n, g in zip(NAMES, grads)},
                  "params": {n: _to_torch(v.numpy()) for n, v in zip(NAMES, variables)}}
        scale = twins.keras_slot_scale(keras_optimizer)
        for quantity, slots in twins.keras_slots(keras_optimizer, variables).items():
            record[quantity] = {n: _to_torch(s.numpy() * scale[quantity]) for n, s in zip(NAMES, slots)}
        reference.append(record)
    teacher = reference if mode == "teacher-forced" else None
    other = run_torch(t, nn.CrossEntropyLoss(), optimizer, batches, teacher, input_layout="same", names=NAMES)
    result = compare_records(reference, other, generic_tolerances(F64, mode), label="Keras 2 vs torch",
                             dtype=F64, mode=mode)
    result.notes = twins.optimizer_notes(keras_optimizer, optimizer, F64)
    return result


def parity(api, keras_optimizer, mode="teacher-forced", torch_optimizer=None):
    run = keras3_parity if api == "keras3" else keras2_parity
    return run(keras_optimizer, mode, torch_optimizer)


# --- every optimizer, schedule and option: float64 parity at round-off ------------------------

@pytest.mark.parametrize("api, case, mode", PARAMS)
def test_twin_trains_like_keras_float64(api, case, mode):
    build, slots, _ = CASES[case]
    keras_optimizer = build(*_optimizers(api))
    result = parity(api, keras_optimizer, mode)
    assert result.passed, result.table()
    assert result.quantities == ["output", "cost", "grads", "params"] + slots
    assert max(result.worst_rel.values()) <= ROUND_OFF, result.table()
    uncompared = ("centered" in case) + ("amsgrad" in case)  # RMSprop's mg, Adam's vhat
    assert len(result.notes) == uncompared and all("is not compared" in n for n in result.notes), result.notes


@pytest.mark.skipif(tf_keras is None, reason="tf_keras is not installed")
@pytest.mark.parametrize("mode", MODES)
def test_keras2_model_and_optimizers_through_step_parity(mode):
    """A tf_keras model with tf_keras optimizers, new and legacy, through step_parity itself."""
    o, legacy, s = tf_keras.optimizers, tf_keras.optimizers.legacy, tf_keras.optimizers.schedules
    loss = tf_keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    for make in (lambda: o.Adam(),
                 lambda: o.RMSprop(s.ExponentialDecay(0.01, 2, 0.7), momentum=0.9, centered=True),
                 lambda: legacy.SGD(0.1, momentum=0.9, nesterov=True, decay=0.3, clipnorm=0.5)):
        k = tf_keras.Sequential([tf_keras.Input((8,), dtype=F64),
                                 tf_keras.layers.Dense(5, activation="relu", dtype=F64),
                                 tf_keras.layers.Dense(3, dtype=F64)])
        _randomize(k.trainable_variables)
        keras_optimizer, t = make(), tiny_torch()
        twin = torch_optimizer_like(keras_optimizer, t.parameters())
        result = step_parity(k, loss, keras_optimizer, t, nn.CrossEntropyLoss(), twin, tiny_batches(),
                             mode=mode)
        assert result.passed and max(result.worst_rel.values()) <= ROUND_OFF, result.table()
        assert "m" in result.quantities


def test_keras_default_adam_in_float64_no_longer_fails():
    """The issue's bug: Keras's default Adam in a float64 model against the old twin (TF1's
    float32 constants, TFAdam) fails on params, m and v; the new twin agrees to round-off."""
    def old_twin(keras_optimizer, params):
        return TFAdam(params, lr=float(np.asarray(keras_optimizer.learning_rate)), betas=(0.9, 0.999),
                      eps=1e-7, beta_powers="keras")

    for mode in MODES:
        old = keras3_parity(keras.optimizers.Adam(), mode, torch_optimizer=old_twin)
        assert not old.passed and {"params", "m", "v"} <= set(old.failing), old.table()
        assert old.worst_rel["grads"] < ROUND_OFF or mode == "free-running"
        assert any("TFAdam rounds them to float32" in note for note in old.notes)
        new = keras3_parity(keras.optimizers.Adam(), mode)
        assert new.passed and max(new.worst_rel.values()) <= ROUND_OFF, new.table()
        assert new.notes == []


def test_torch_adam_with_keras_defaults_fails_on_params():
    def plain(keras_optimizer, params):
        return torch.optim.Adam(params, lr=f32(0.001), betas=(0.9, 0.999), eps=1e-7)

    result = keras3_parity(keras.optimizers.Adam(), torch_optimizer=plain)
    assert not result.passed and "params" in result.failing
    assert result.worst_rel["grads"] < ROUND_OFF and result.worst_rel["params"] > 1e-7
    assert any(n.startswith("torch.optim.Adam adds epsilon to the bias-corrected") for n in result.notes)


def test_twin_is_built_with_keras_defaults():
    params = [nn.Parameter(torch.zeros(2, dtype=torch.float64))]
    adam = torch_optimizer_like(keras.optimizers.Adam(), params)
    assert type(adam) is twins.KerasAdam and adam.api == "keras3"
    group = adam.param_groups[0]
    assert group["lr"] == f32(0.001)  # Keras's float32 variable
    assert (group["beta_1"], group["beta_2"], group["epsilon"]) == (0.9, 0.999, 1e-7)
    assert group["weight_decay"] is None
    adamw = torch_optimizer_like(keras.optimizers.AdamW(), params)
    assert type(adamw) is twins.KerasAdamW and adamw.param_groups[0]["weight_decay"] == 0.004
    rmsprop = torch_optimizer_like(keras.optimizers.RMSprop(), params).param_groups[0]
    assert [rmsprop[k] for k in ("rho", "momentum", "epsilon", "centered")] == [0.9, 0.0, 1e-7, False]
    # a twin built directly takes Keras's defaults and keeps the learning rate as Keras does
    direct = twins.KerasAdam(params)
    assert direct.param_groups[0]["lr"] == f32(0.001) and direct.param_groups[0]["epsilon"] == 1e-7


# --- the roundings that matter: a twin that rounds one constant otherwise fails ---------------

class ExactBetaPowers(twins.KerasAdam):
    """b ** t with the Python-float betas (Keras: ops.cast, through float32)."""

    def constants(self, group, real, iterations, lr):
        c = super().constants(group, real, iterations, lr)
        t = real(iterations + 1)
        beta_1_power, beta_2_power = real(group["beta_1"]) ** t, real(group["beta_2"]) ** t
        c["alpha"] = float(lr * np.sqrt(real(1) - beta_2_power) / (real(1) - beta_1_power))
        return c


class ExactMomentum(twins.KerasSGD):
    """SGD's momentum as the Python float (Keras: ops.cast, through float32)."""

    def constants(self, group, real, iterations, lr):
        return {**super().constants(group, real, iterations, lr), "momentum": float(real(group["momentum"]))}


class Float32Rho(twins.KerasRMSprop):
    """RMSprop's rho and 1 - rho from float32 (Keras 3: the Python floats)."""

    def constants(self, group, real, iterations, lr):
        rho = real(np.float32(group["rho"]))
        c = super().constants(group, real, iterations, lr)
        return {**c, "rho": float(rho), "one_minus_rho": float(1 - rho)}


class ExactInitialAccumulator(twins.KerasAdagrad):
    """Keras 3 Adagrad's initial accumulator as the Python float (Keras 3: ops.cast, float32)."""

    def _initial_state(self, p, group):
        return {"accumulator": torch.full_like(p, group["initial_accumulator_value"])}


class ExactWeightDecay(twins.KerasSGD):
    """weight_decay as the Python float (Keras: tf.cast, through float32)."""

    @staticmethod
    def weight_decay_value(group, real):
        return float(real(group["weight_decay"]))


def _numpy_exponential_decay(step):
    """ExponentialDecay(0.1, 2, 0.7) in NumPy float32: NumPy's pow, not TF's."""
    return float(np.float32(0.1) * np.power(np.float32(0.7), np.float32(step) / np.float32(2)))


def _twin(cls, **changes):
    def build(keras_optimizer, params):
        _, options = twins.twin_settings(keras_optimizer)
        return cls(params, **{**options, **changes})
    return build


def _one_step_late(step):
    return twins.KerasSchedule(S3.ExponentialDecay(0.1, 2, 0.7))(step + 1)


ROUNDINGS = {  # case -> (Keras optimizer, a twin that computes one detail otherwise)
    "adam-1-beta-from-float32": (lambda: K3.Adam(), _twin(twins.KerasAdam, api="keras2-legacy")),
    "adam-beta-powers-exact": (lambda: K3.Adam(), _twin(ExactBetaPowers)),
    "sgd-momentum-exact": (lambda: K3.SGD(0.1, momentum=0.9), _twin(ExactMomentum)),
    "rmsprop-rho-float32": (lambda: K3.RMSprop(0.01), _twin(Float32Rho)),
    "rmsprop-epsilon-outside": (lambda: K3.RMSprop(0.01), _twin(twins.KerasRMSprop, api="keras2-legacy")),
    "adagrad-initial-exact": (lambda: K3.Adagrad(0.1), _twin(ExactInitialAccumulator)),
    "weight-decay-exact": (lambda: K3.SGD(0.5, momentum=0.9, weight_decay=0.3), _twin(ExactWeightDecay)),
    "schedule-numpy-float32": (lambda: K3.SGD(S3.ExponentialDecay(0.1, 2, 0.7), momentum=0.9),
                               _twin(twins.KerasSGD, learning_rate=_numpy_exponential_decay)),
    "schedule-one-step-late": (lambda: K3.SGD(S3.ExponentialDecay(0.1, 2, 0.7)),
                               _twin(twins.KerasSGD, learning_rate=_one_step_late)),
}


@pytest.mark.parametrize("case", list(ROUNDINGS))
def test_each_rounding_matters(case):
    """The twin rounding one constant otherwise than Keras fails float64 parity: each detail of
    the module docstring is needed, and the check sees it."""
    make_keras, wrong = ROUNDINGS[case]
    assert keras3_parity(make_keras()).passed  # the right twin
    result = keras3_parity(make_keras(), torch_optimizer=wrong)
    assert not result.passed, result.table()
    assert result.worst_rel["grads"] < ROUND_OFF  # same gradients: the optimizer differs


def test_float32_twins_pass_the_default_bounds():
    for make in (lambda: keras.optimizers.Adam(), lambda: keras.optimizers.RMSprop(
            keras.optimizers.schedules.CosineDecay(0.01, 3), momentum=0.9, centered=True, clipnorm=0.5)):
        result = keras3_parity(make(), "free-running", dtype="float32")
        assert result.passed, result.table()


# --- slots, state, notes ----------------------------------------------------------------------

def test_sgd_and_rmsprop_slots_are_compared_in_torch_units():
    """SGD's velocity u as torch's buffer -u / lr; RMSprop's momentum (lr inside) as mom / lr."""
    keras_optimizer = keras.optimizers.SGD(0.1, momentum=0.9)
    result = keras3_parity(keras_optimizer, steps=1)
    grad = result.reference[0]["grads"]["2.bias"]
    np.testing.assert_allclose(result.reference[0]["m"]["2.bias"], grad, rtol=1e-15)  # step 1: b = g
    np.testing.assert_allclose(result.other[0]["m"]["2.bias"], grad, rtol=1e-15)
    rmsprop = keras3_parity(keras.optimizers.RMSprop(0.01, momentum=0.9), steps=1)
    v = rmsprop.reference[0]["v"]["2.bias"]
    np.testing.assert_allclose(v, 0.1 * grad ** 2, rtol=1e-14)  # v = (1 - rho) g^2
    np.testing.assert_allclose(rmsprop.reference[0]["m"]["2.bias"], grad / np.sqrt(v + 1e-7), rtol=1e-14)


def test_twin_state_dict_round_trips():
    keras_optimizer = keras.optimizers.Adam(keras.optimizers.schedules.ExponentialDecay(0.05, 2, 0.7))
    module = tiny_torch()
    twin = torch_optimizer_like(keras_optimizer, module.parameters())
    x, y = (torch.as_tensor(a) for a in tiny_batches(1)[0])
    for _ in range(2):
        twin.zero_grad()
        nn.functional.cross_entropy(module(x), y).backward()
        twin.step()
    state = twin.state_dict()
    again = torch_optimizer_like(keras_optimizer, module.parameters())
    again.load_state_dict(state)
    assert again.iterations == 2 and again.param_groups[0]["lr"] == twin.param_groups[0]["lr"]
    for p in module.parameters():
        assert torch.equal(again.state[p]["m"], twin.state[p]["m"])


def test_notes_name_what_differs():
    keras_optimizer = keras.optimizers.RMSprop(0.01, momentum=0.9)
    other_rho = twins.KerasRMSprop(tiny_torch().parameters(), learning_rate=0.01, rho=0.8, momentum=0.9)
    assert twins.optimizer_notes(keras_optimizer, other_rho, F64) == ["rho: Keras 0.9, the twin 0.8"]
    torch_rmsprop = torch.optim.RMSprop(tiny_torch().parameters(), lr=f32(0.01), alpha=0.9, momentum=0.9)
    notes = twins.optimizer_notes(keras_optimizer, torch_rmsprop, F64)
    assert any("torch RMSprop is not Keras RMSprop's arithmetic (where epsilon goes" in n for n in notes)
    scheduled = keras.optimizers.SGD(keras.optimizers.schedules.ExponentialDecay(0.1, 2, 0.7), momentum=0.9)
    torch_sgd = torch.optim.SGD(tiny_torch().parameters(), lr=0.1, momentum=0.9)
    notes = twins.optimizer_notes(scheduled, torch_sgd, F64)
    assert any(note.startswith("Keras SGD uses a learning-rate schedule") for note in notes)
    wrong_api = twins.KerasAdam(tiny_torch().parameters(), api="keras2-legacy")
    notes = twins.optimizer_notes(keras.optimizers.Adam(), wrong_api, F64)
    assert any("api='keras2-legacy'" in note for note in notes)


# --- refusals: one line naming what and where --------------------------------------------------

class MyAdam(keras.optimizers.Adam):
    pass


class MySchedule(keras.optimizers.schedules.LearningRateSchedule):
    def __call__(self, step):
        return 0.01


def _refused(keras_optimizer) -> str:
    with pytest.raises(InputError) as error:
        torch_optimizer_like(keras_optimizer, [nn.Parameter(torch.zeros(1))])
    message = str(error.value)
    assert "\n" not in message, message
    return message


def test_what_cannot_be_reproduced_is_refused_in_one_line():
    message = _refused(MyAdam())
    assert message.startswith("Keras optimizer MyAdam (module ") and "has no torch twin" in message
    assert "Keras optimizer Nadam" in _refused(keras.optimizers.Nadam())
    assert ("learning-rate schedule MySchedule is not one of Keras's built-in schedules"
            in _refused(keras.optimizers.SGD(MySchedule())))
    assert "its learning rate is a callable function" in _refused(keras.optimizers.SGD(lambda: 0.01))
    where = "Keras optimizer Adam (keras.optimizers): "
    assert _refused(keras.optimizers.Adam(use_ema=True)).startswith(where + "use_ema=True is not reproduced")
    assert (where + "gradient_accumulation_steps=2 is not reproduced"
            in _refused(keras.optimizers.Adam(gradient_accumulation_steps=2)))
    assert where + "loss_scale_factor=128.0 is not reproduced" in _refused(K3.Adam(loss_scale_factor=128.0))
    excluding = keras.optimizers.AdamW()
    excluding.exclude_from_weight_decay(var_names=["bias"])
    assert "Keras optimizer AdamW (keras.optimizers): exclude_from_weight_decay" in _refused(excluding)


@pytest.mark.skipif(tf_keras is None, reason="tf_keras is not installed")
def test_keras2_refusals():
    assert _refused(tf_keras.optimizers.Adam(use_ema=True)).startswith(
        "Keras optimizer Adam (tf_keras.optimizers): use_ema=True")
    transformed = tf_keras.optimizers.legacy.SGD(0.1, gradient_transformers=[lambda pairs: pairs])
    assert "(tf_keras.optimizers.legacy): gradient_transformers" in _refused(transformed)
    assert "Keras optimizer Adamax" in _refused(tf_keras.optimizers.legacy.Adamax())
