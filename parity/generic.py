"""Step parity for your own pair: a Keras model and its torch port, trained side by side.

:func:`step_parity` copies the Keras model's weights into the torch module (through
:mod:`parity.layers`), runs the same mini-batches through both, one optimizer step each, and
compares per step the forward output, the loss, the gradients, the parameters after the
update and the optimizer's slots, with the normwise ``difference`` of :mod:`parity.compare`.
The result is a :class:`parity.compare.Comparison`, the same as the tutorial's report
gives, with its table, verdict, JSON and plot.

**Layout of the comparison: torch's.** Keras values are converted into the torch module's
layout and names (``conv1.weight`` OIHW, ...) by the very converters that copied the weights;
a 4-D output is compared as NCHW.

**Inputs.** ``batches`` yields ``(x, y)`` NumPy pairs in Keras's layout. With
``input_layout="NHWC"`` (the default) a 4-D ``x`` is transposed to NCHW for torch
(:func:`to_channels_first`); other ranks go to both sides as they are. ``"same"`` passes every
input unchanged (a channels-first Keras model, or a torch module that permutes itself).
Floating inputs and targets are cast to the models' dtype; integer ones stay integers (int64
for torch).

**Modes.** ``"teacher-forced"``: after every step the torch module is reset to Keras's
parameters and slots, so each step's figure is that step's own error. ``"free-running"``:
both train on their own; the figures show the accumulated drift.

**Optimizer slots**, compared in torch's units: Adam's ``m`` and ``v`` (Keras ``_momentums`` /
``_velocities``; ``TFAdam``'s ``m``/``v`` or ``torch.optim.Adam``'s ``exp_avg``/``exp_avg_sq``).
SGD with momentum: quantity ``m`` is torch's ``momentum_buffer`` ``b`` (``b = mu*b + g``,
``p -= lr*b``); Keras keeps the velocity ``u = mu*u - lr*g`` (``p += u``), i.e. ``u = -lr*b``
in exact arithmetic (no dampening), so Keras's ``u`` is compared as ``-u / lr``. Other
optimizers: slots are not compared (said in ``notes``).

Not compared: BatchNorm moving statistics (Keras updates the variance with the biased batch
variance, torch with the unbiased one; training-mode outputs do not use them).
"""

from __future__ import annotations

import itertools

import numpy as np
import torch

from parity.compare import MODES, Comparison, compare_records
from parity.layers import LayerMatch, keras_state, load_torch_state, match_layers
from parity.tolerances import generic_tolerances
from signs.errors import InputError
from signs.precision import f32
from torch_port.dtypes import dtype_name
from torch_port.optim import TFAdam

INPUT_LAYOUTS = ("NHWC", "same")
SLOTS = ("m", "v")


def to_channels_first(x):
    """(m, H, W, C) -> (m, C, H, W): the input conversion from Keras (NHWC) to torch (NCHW)."""
    if isinstance(x, torch.Tensor):
        return x.permute(0, 3, 1, 2).contiguous()
    return np.ascontiguousarray(np.asarray(x).transpose(0, 3, 1, 2))


# --- optimizers ---------------------------------------------------------------------------

def torch_optimizer_like(keras_optimizer, params):
    """The torch optimizer that computes what ``keras_optimizer`` does, on ``params``.

    Keras ``Adam`` -> ``TFAdam(beta_powers="keras")`` (epsilon added to the un-corrected
    ``sqrt(v)``, ``beta ** t`` in the variable's dtype); Keras ``SGD`` -> ``torch.optim.SGD``
    (momentum, nesterov). The learning rate is Keras's float32 value. Refuses
    (:class:`InputError`) what has no exact twin: schedules, weight decay, clipping, EMA, amsgrad.
    """
    import keras

    _refuse_unsupported(keras_optimizer)
    lr = float(np.asarray(keras_optimizer.learning_rate))
    if type(keras_optimizer) is keras.optimizers.Adam:
        return TFAdam(params, lr=lr, betas=(keras_optimizer.beta_1, keras_optimizer.beta_2),
                      eps=keras_optimizer.epsilon, beta_powers="keras")
    if type(keras_optimizer) is keras.optimizers.SGD:
        # Keras casts the Python-float momentum with ops.cast, which goes through float32
        return torch.optim.SGD(params, lr=lr, momentum=f32(keras_optimizer.momentum),
                               nesterov=bool(keras_optimizer.nesterov))
    raise InputError(f"no torch twin for Keras {type(keras_optimizer).__name__}: Adam and SGD are supported "
                     "(build the torch optimizer yourself; its slots will not be compared)")


def _refuse_unsupported(keras_optimizer) -> None:
    import keras

    if isinstance(keras_optimizer._learning_rate, keras.optimizers.schedules.LearningRateSchedule):
        raise InputError("Keras optimizer has a learning-rate schedule: use a constant learning rate")
    used = [name for name in ("weight_decay", "clipnorm", "clipvalue", "global_clipnorm")
            if getattr(keras_optimizer, name, None)]
    used += [name for name in ("use_ema", "amsgrad") if getattr(keras_optimizer, name, False)]
    if used:
        raise InputError(f"Keras optimizer uses {', '.join(used)}: no exact torch twin here; turn them off")


def keras_slots(optimizer, variables) -> dict[str, list]:
    """Keras's slot variables per slot name, in the order of ``variables``: Adam's ``m``/``v``,
    SGD's velocity as ``m``; empty for other optimizers (their slots are not compared)."""
    import keras

    index = [optimizer._get_variable_index(v) for v in variables]
    if isinstance(optimizer, keras.optimizers.Adam):
        return {"m": [optimizer._momentums[i] for i in index], "v": [optimizer._velocities[i] for i in index]}
    if isinstance(optimizer, keras.optimizers.SGD) and optimizer.momentum:
        return {"m": [optimizer.momentums[i] for i in index]}
    return {}


def _keras_slot_scale(optimizer) -> dict[str, float]:
    """Factor turning a Keras slot into torch's units (SGD velocity u -> momentum buffer -u/lr)."""
    import keras

    if isinstance(optimizer, keras.optimizers.SGD):
        return {"m": -1.0 / float(np.asarray(optimizer.learning_rate))}
    return {"m": 1.0, "v": 1.0}


def _torch_slot_keys(optimizer) -> dict[str, str]:
    if isinstance(optimizer, TFAdam):
        return {"m": "m", "v": "v"}
    if isinstance(optimizer, torch.optim.Adam):
        return {"m": "exp_avg", "v": "exp_avg_sq"}
    if isinstance(optimizer, torch.optim.SGD) and any(g["momentum"] for g in optimizer.param_groups):
        return {"m": "momentum_buffer"}
    return {}


def torch_slots(optimizer, params: dict) -> dict[str, dict]:
    """``{slot: {name: array}}`` of a torch optimizer, in the slot names of :data:`SLOTS`."""
    out = {}
    for slot, key in _torch_slot_keys(optimizer).items():
        out[slot] = {}
        for name, p in params.items():
            value = optimizer.state.get(p, {}).get(key)
            value = np.zeros(tuple(p.shape)) if value is None else value.detach().cpu().numpy().copy()
            out[slot][name] = value
    return out


def load_torch_slots(optimizer, params: dict, slots: dict) -> None:
    """Overwrite a torch optimizer's slots from ``{slot: {name: array}}`` (teacher forcing)."""
    with torch.no_grad():
        for slot, key in _torch_slot_keys(optimizer).items():
            if slot not in slots:
                continue
            for name, p in params.items():
                value = torch.as_tensor(np.asarray(slots[slot][name])).to(p.device, p.dtype)
                state = optimizer.state[p]
                if key in state and state[key] is not None:
                    state[key].copy_(value)
                else:
                    state[key] = value.clone()


def optimizer_notes(keras_optimizer, torch_optimizer, dtype: str) -> list[str]:
    """Conventions in which the two optimizers differ (a note each), for the report."""
    import keras

    notes = []
    keras_kind, torch_name = type(keras_optimizer).__name__, type(torch_optimizer).__name__
    group = torch_optimizer.param_groups[0]
    keras_lr = float(np.asarray(keras_optimizer.learning_rate))
    if isinstance(keras_optimizer, keras.optimizers.Adam):
        if isinstance(torch_optimizer, torch.optim.Adam):
            notes.append("torch.optim.Adam adds epsilon to the bias-corrected sqrt(v); Keras (like TF1) to "
                         "the raw sqrt(v): use torch_port.optim.TFAdam(beta_powers='keras')")
        elif isinstance(torch_optimizer, TFAdam):
            if torch_optimizer.beta_powers != "keras":
                notes.append("TFAdam(beta_powers='tf1') keeps TF1's float32 beta-power accumulators; Keras "
                             "computes beta ** t: use beta_powers='keras'")
            constants = {"beta_1": keras_optimizer.beta_1, "beta_2": keras_optimizer.beta_2,
                         "epsilon": keras_optimizer.epsilon}
            inexact = [k for k, v in constants.items() if dtype == "float64" and f32(v) != float(v)]
            if inexact:
                notes.append(f"Keras Adam's {', '.join(inexact)} are not float32 values; TFAdam rounds them "
                             "to float32 (TF1's convention): in float64 give Keras f32(...) values")
        else:
            notes.append(f"Keras Adam against torch {torch_name}: different algorithms")
    elif isinstance(keras_optimizer, keras.optimizers.SGD):
        if not isinstance(torch_optimizer, torch.optim.SGD):
            notes.append(f"Keras SGD against torch {torch_name}: different algorithms")
        else:
            if f32(group["momentum"]) != f32(keras_optimizer.momentum) or group.get("dampening", 0):
                notes.append(f"momentum: Keras {keras_optimizer.momentum}, torch {group['momentum']} "
                             f"(dampening {group.get('dampening', 0)}; must be 0)")
            elif dtype == "float64" and group["momentum"] != f32(keras_optimizer.momentum):
                notes.append(f"momentum: Keras computes with float32({keras_optimizer.momentum}) (its "
                             "ops.cast of a Python float goes through float32), torch with "
                             f"{group['momentum']!r}: in float64 give torch f32(momentum)")
            if bool(group.get("nesterov")) != bool(keras_optimizer.nesterov):
                notes.append("nesterov differs")
    else:
        notes.append(f"Keras {keras_kind}: optimizer slots are not compared")
    if f32(group["lr"]) != keras_lr:
        notes.append(f"learning rate: Keras {keras_lr!r} (a float32 variable), torch {group['lr']!r}")
    elif dtype == "float64" and group["lr"] != keras_lr and not isinstance(torch_optimizer, TFAdam):
        notes.append(f"learning rate: Keras computes with the float32 {keras_lr!r}, torch with "
                     f"{group['lr']!r}: in float64 give torch f32(lr)")
    return notes


def _is_keras_adam(optimizer) -> bool:
    import keras

    return isinstance(optimizer, keras.optimizers.Adam)


# --- running each side ---------------------------------------------------------------------

def _keras_input(value, dtype):
    value = np.asarray(value)
    return value.astype(dtype) if np.issubdtype(value.dtype, np.floating) else value


def _torch_input(value, dtype, device):
    value = np.asarray(value)
    if np.issubdtype(value.dtype, np.floating):
        return torch.as_tensor(np.ascontiguousarray(value.astype(dtype)), device=device)
    return torch.as_tensor(np.ascontiguousarray(value.astype(np.int64)), device=device)


def run_keras(model, loss, optimizer, batches: list, match: LayerMatch,
              input_layout: str = "NHWC") -> list[dict]:
    """Train the Keras side one step per batch; records in torch's layout (see module docstring).

    Record: ``step``, ``cost``, ``output``, ``grads``, ``params`` (after the update) and the
    slots ``m``/``v`` where the optimizer has them, dicts keyed by torch name.
    """
    import tensorflow as tf

    variables = list(model.trainable_variables)
    dtype = dtype_name(variables[0].dtype)
    if not optimizer.built:
        optimizer.build(variables)
    records = []
    for step, (x, y) in enumerate(batches, start=1):
        x, y = _keras_input(x, dtype), _keras_input(y, dtype)
        with tf.GradientTape() as tape:
            output = model(x, training=True)
            cost = loss(y, output)
        grads = tape.gradient(cost, variables)
        optimizer.apply_gradients(zip(grads, variables))
        output = np.asarray(output)
        if input_layout == "NHWC" and output.ndim == 4:
            output = to_channels_first(output)
        # IndexedSlices (an Embedding's gradient) made dense; None (unused variable) as zeros
        grads = [np.zeros(tuple(v.shape), dtype) if g is None else np.asarray(tf.convert_to_tensor(g))
                 for g, v in zip(grads, variables)]
        record = {"step": step, "cost": float(np.asarray(cost)), "output": output,
                  "grads": match.to_torch_values(variables, grads),
                  "params": match.to_torch_values(variables, [v.numpy() for v in variables])}
        scale = _keras_slot_scale(optimizer)
        for slot, values in keras_slots(optimizer, variables).items():
            slots = match.to_torch_values(variables, [s.numpy() * scale[slot] for s in values])
            record[slot] = {name: value.astype(dtype) for name, value in slots.items()}
        records.append(record)
    return records


def run_torch(module: torch.nn.Module, loss, optimizer, batches: list, teacher: list | None = None,
              input_layout: str = "NHWC", names: list | None = None) -> list[dict]:
    """Train the torch side one step per batch (``zero_grad``, ``backward``, ``step``).

    ``names``: the parameters to record (default: all trainable ones). With ``teacher`` (the
    reference's records), the module's parameters and the optimizer's slots are reset to the
    teacher's after every step but the last. Needs no TensorFlow: the golden-trace tests use it
    alone.
    """
    params = {n: p for n, p in module.named_parameters() if p.requires_grad}
    if names is not None:
        params = {n: params[n] for n in names}
    first = next(iter(params.values()))
    dtype, device = dtype_name(first.dtype), first.device
    module.train()
    records = []
    for step, (x, y) in enumerate(batches, start=1):
        x = np.asarray(x)
        if input_layout == "NHWC" and x.ndim == 4:
            x = to_channels_first(x)
        x, y = _torch_input(x, dtype, device), _torch_input(y, dtype, device)
        optimizer.zero_grad(set_to_none=True)
        output = module(x)
        cost = loss(output, y)
        cost.backward()
        grads = {n: np.zeros(tuple(p.shape), dtype) if p.grad is None
                 else p.grad.detach().cpu().numpy().copy() for n, p in params.items()}
        optimizer.step()
        record = {"step": step, "cost": float(cost.detach().cpu()), "output": output.detach().cpu().numpy(),
                  "grads": grads, "params": {n: p.detach().cpu().numpy().copy() for n, p in params.items()}}
        record.update(torch_slots(optimizer, params))
        records.append(record)
        if teacher is not None and step < len(batches):  # the module ends in its own state
            reference = teacher[step - 1]
            load_torch_state(module, reference["params"])
            load_torch_slots(optimizer, params, {s: reference[s] for s in SLOTS if s in reference})
    return records


def step_parity(keras_model, keras_loss, keras_optimizer, torch_module, torch_loss, torch_optimizer,
                batches, steps: int | None = None, mode: str = "teacher-forced", *,
                input_layout: str = "NHWC", tolerances: dict | None = None, transfer: bool = True,
                name_map: dict | None = None, flatten_shapes: dict | None = None) -> Comparison:
    """Train both sides for ``steps`` batches and compare them step by step.

    ``keras_loss(y_true, y_pred)`` and ``torch_loss(output, target)`` (note the argument
    orders); ``torch_optimizer`` built on ``torch_module``'s parameters (e.g. with
    :func:`torch_optimizer_like`). ``transfer=True`` first copies the Keras weights into the
    torch module (refusing, with :class:`parity.errors.TransferError`, what does not fit);
    ``transfer=False`` keeps the torch module's own weights (to check a transfer of yours).
    ``tolerances``: ``{quantity: max normwise relative difference}``, default
    :func:`parity.tolerances.generic_tolerances`. ``name_map`` and ``flatten_shapes``: see
    :mod:`parity.layers`.
    """
    if mode not in MODES:
        raise InputError(f"mode {mode!r}: expected one of {', '.join(MODES)}")
    if input_layout not in INPUT_LAYOUTS:
        raise InputError(f"input_layout {input_layout!r}: expected one of {', '.join(INPUT_LAYOUTS)}")
    batches = list(itertools.islice(batches, steps)) if steps is not None else list(batches)
    if not batches or (steps is not None and len(batches) < steps):
        raise InputError(f"{steps} steps asked for, {len(batches)} batches given")
    keras_dtype = dtype_name(keras_model.trainable_variables[0].dtype)
    torch_dtype = dtype_name(next(torch_module.parameters()).dtype)
    if keras_dtype != torch_dtype:
        raise InputError(f"the Keras model is {keras_dtype}, the torch module {torch_dtype}: build both in "
                         "one dtype (Keras layers take dtype=, torch modules .to(dtype))")
    match = match_layers(keras_model, torch_module, name_map, flatten_shapes)
    match.raise_if_problems("Keras -> torch")
    if transfer:
        load_torch_state(torch_module, keras_state(match))
    names = match.torch_names()
    reference = run_keras(keras_model, keras_loss, keras_optimizer, batches, match, input_layout)
    other = run_torch(torch_module, torch_loss, torch_optimizer, batches,
                      teacher=reference if mode == "teacher-forced" else None,
                      input_layout=input_layout, names=names)
    notes = list(match.notes) + optimizer_notes(keras_optimizer, torch_optimizer, keras_dtype)
    if _is_keras_adam(keras_optimizer) and any(w.kind == "embedding" for w in match.trainable()):
        notes.append("Keras Adam squares an Embedding's sparse gradient per occurrence: a row looked up "
                     "twice in a batch gets v += (g1^2 + g2^2) (1 - beta_2), torch (dense) (g1 + g2)^2: "
                     "parity holds only for batches without repeated indices")
    return compare_records(reference, other, tolerances or generic_tolerances(keras_dtype, mode),
                           label="Keras vs torch", dtype=keras_dtype, mode=mode, match=match, notes=notes)
