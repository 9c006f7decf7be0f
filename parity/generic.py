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
both train on their own; the figures show the accumulated drift. In both modes each torch
step is also *replayed* with the reference's gradients (the optimizer's step from the torch
side's state, the reference's when teacher-forced, with the reference's gradients, then undone):
where a parameter or slot differs only because an optimizer's per-element step amplifies a
gradient difference that is itself within tolerance, :func:`parity.compare.compare_records` says
so and counts the same-gradient figure (:func:`parity.compare.explain_by_gradients`).

**Optimizer slots**, compared as ``m`` and ``v`` in torch's units, as
:mod:`parity.optimizers` defines them per optimizer (the twins of Keras's Adam, AdamW, SGD,
RMSprop and Adagrad, and ``TFAdam``/``torch.optim.Adam``/``torch.optim.SGD``): Adam's moments
as they are; SGD's velocity ``u = mu*u - lr*g`` as torch's buffer ``-u / lr``; RMSprop's
velocity as ``v``; Adagrad's accumulator as ``v``. Slots it cannot compare are said in
``notes``.

**BatchNorm moving statistics**: the moving means are compared after every step, as the quantity
``moving mean`` (against the ``params`` bound; a momentum copied as is shows only there:
training-mode outputs use the batch statistics); the moving variances are not (Keras updates
them with the biased batch variance, torch with the unbiased one).

**Stochastic layers** (Dropout, SpatialDropout*, GaussianNoise, GaussianDropout): the same
masks on both sides, step for step, or none (``stochastic=``): :mod:`parity.stochastic`.

**Where it diverges**: a failing comparison re-runs its first failing step layer by layer and
names the first layer output and the first gradient outside tolerance (``result.divergence``,
in the verdict, the table and the JSON): :mod:`parity.divergence`.

**Keras 2**: models built with ``tf_keras`` work as Keras 3 ones do (the layer records accept
both).
"""

from __future__ import annotations

import copy
import itertools

import numpy as np
import torch

from parity.compare import MODES, Comparison, compare_records
from parity.divergence import MOVING_MEAN, StepState, add_moving_means, locate
from parity.layers import LayerMatch, keras_state, load_torch_state, match_layers
from parity.optimizers import (  # noqa: F401  (re-exported: tests and docs import them from here)
    is_keras_adam,
    keras_slot_scale,
    keras_slots,
    load_torch_slots,
    optimizer_notes,
    torch_optimizer_like,
    torch_slots,
)
from parity.stochastic import KerasStochastic, TorchStochastic, keras_stochastic_layers, match_stochastic
from parity.tolerances import generic_tolerances
from signs.errors import InputError
from signs.precision import f32  # noqa: F401  (re-exported)
from torch_port.dtypes import dtype_name

INPUT_LAYOUTS = ("NHWC", "same")
SLOTS = ("m", "v")


def to_channels_first(x):
    """(m, H, W, C) -> (m, C, H, W): the input conversion from Keras (NHWC) to torch (NCHW)."""
    if isinstance(x, torch.Tensor):
        return x.permute(0, 3, 1, 2).contiguous()
    return np.ascontiguousarray(np.asarray(x).transpose(0, 3, 1, 2))


# --- optimizers ---------------------------------------------------------------------------
# The torch twins of Keras's optimizers, the slots of both sides and the notes live in
# parity/optimizers.py (imported above); these names stay importable from here.


# --- running each side ---------------------------------------------------------------------

def _keras_input(value, dtype):
    value = np.asarray(value)
    return value.astype(dtype) if np.issubdtype(value.dtype, np.floating) else value


def _torch_input(value, dtype, device):
    value = np.asarray(value)
    if np.issubdtype(value.dtype, np.floating):
        return torch.as_tensor(np.ascontiguousarray(value.astype(dtype)), device=device)
    return torch.as_tensor(np.ascontiguousarray(value.astype(np.int64)), device=device)


def variable_dtype(variable) -> str:
    """A Keras variable's dtype name: Keras 3 gives ``"float64"``, Keras 2 a ``tf.DType``."""
    return dtype_name(getattr(variable.dtype, "name", variable.dtype))


def _torch_batch(x, y, dtype, device, input_layout: str):
    x = np.asarray(x)
    if input_layout == "NHWC" and x.ndim == 4:
        x = to_channels_first(x)
    return _torch_input(x, dtype, device), _torch_input(y, dtype, device)


def _moving_means(match: LayerMatch) -> list:
    """The BatchNorm moving-mean groups of a match (compared as the quantity ``moving mean``)."""
    return [g for g in match.groups if g.kind == "batchnorm" and g.keras_names == ("moving_mean",)]


def run_keras(model, loss, optimizer, batches: list, match: LayerMatch,
              input_layout: str = "NHWC", step_hook=None) -> list[dict]:
    """Train the Keras side one step per batch; records in torch's layout (see module docstring).

    Record: ``step``, ``cost``, ``output``, ``grads``, ``params`` (after the update), the
    slots ``m``/``v`` where the optimizer has them, dicts keyed by torch name, and ``stats``:
    the BatchNorm moving means after the step, where the model has any. ``step_hook(step)`` is
    called before each step (the harness records the weights there and tells the stochastic
    layers the step).
    """
    import tensorflow as tf

    variables = list(model.trainable_variables)
    dtype = variable_dtype(variables[0])
    moving_means = _moving_means(match)
    if not getattr(optimizer, "built", True):  # tf_keras's optimizers build in apply_gradients
        optimizer.build(variables)
    records = []
    for step, (x, y) in enumerate(batches, start=1):
        if step_hook is not None:
            step_hook(step)
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
        scale = keras_slot_scale(optimizer)
        for slot, values in keras_slots(optimizer, variables).items():
            slots = match.to_torch_values(variables, [s.numpy() * scale[slot] for s in values])
            record[slot] = {name: value.astype(dtype) for name, value in slots.items()}
        if moving_means:
            record["stats"] = {g.torch_names[0]: g.to_torch(g.keras_variables[0].numpy())[0]
                               for g in moving_means}
        records.append(record)
    return records


def run_torch(module: torch.nn.Module, loss, optimizer, batches: list, teacher: list | None = None,
              input_layout: str = "NHWC", names: list | None = None, stats: list | None = None,
              step_hook=None, replay: list | None = None) -> list[dict]:
    """Train the torch side one step per batch (``zero_grad``, ``backward``, ``step``).

    ``names``: the parameters to record (default: all trainable ones); ``stats``: buffers
    recorded as ``stats`` after each step (BatchNorm running means). With ``teacher`` (the
    reference's records), the module's parameters, those buffers and the optimizer's slots are
    reset to the teacher's after every step but the last. With ``replay`` (the reference's
    records), each step is first replayed with the reference's gradients (:func:`replay_step`:
    ``replayed`` in the record). ``step_hook(step)``: called before each step. Needs no
    TensorFlow: the golden-trace tests use it alone.
    """
    params = {n: p for n, p in module.named_parameters() if p.requires_grad}
    if names is not None:
        params = {n: params[n] for n in names}
    first = next(iter(params.values()))
    dtype, device = dtype_name(first.dtype), first.device
    module.train()
    records = []
    buffers = dict(module.named_buffers())
    for step, (x, y) in enumerate(batches, start=1):
        if step_hook is not None:
            step_hook(step)
        x, y = _torch_batch(x, y, dtype, device, input_layout)
        optimizer.zero_grad(set_to_none=True)
        output = module(x)
        cost = loss(output, y)
        cost.backward()
        grads = {n: np.zeros(tuple(p.shape), dtype) if p.grad is None
                 else p.grad.detach().cpu().numpy().copy() for n, p in params.items()}
        replayed = replay_step(optimizer, params, replay[step - 1]["grads"]) if replay else None
        optimizer.step()
        record = {"step": step, "cost": float(cost.detach().cpu()), "output": output.detach().cpu().numpy(),
                  "grads": grads, "params": {n: p.detach().cpu().numpy().copy() for n, p in params.items()}}
        record.update(torch_slots(optimizer, params))
        if replayed is not None:
            record["replayed"] = replayed
        if stats:
            record["stats"] = {n: buffers[n].detach().cpu().numpy().copy() for n in stats}
        records.append(record)
        if teacher is not None and step < len(batches):  # the module ends in its own state
            reference = teacher[step - 1]
            load_torch_state(module, {**reference["params"], **reference.get("stats", {})})
            load_torch_slots(optimizer, params, {s: reference[s] for s in SLOTS if s in reference})
    return records


def replay_step(optimizer, params: dict, grads: dict) -> dict:
    """The optimizer's step from its current state with ``grads`` (``{name: array}``, e.g. the
    reference's) in place of the parameters' own gradients, then undone: ``{"params": ...,
    "m": ..., "v": ...}`` after it (the slots the optimizer has), as NumPy. Parameters, gradients
    and the optimizer's state (slots, step counts, learning rates) are as before on return."""
    saved_state = copy.deepcopy(optimizer.state_dict())
    saved = {n: (p.detach().clone(), p.grad) for n, p in params.items()}
    try:
        for n, p in params.items():
            if n in grads:
                p.grad = torch.as_tensor(np.array(grads[n])).to(p.device, p.dtype)
        optimizer.step()
        replayed = {"params": {n: p.detach().cpu().numpy().copy() for n, p in params.items()}}
        replayed.update(torch_slots(optimizer, params))
    finally:
        with torch.no_grad():
            for n, p in params.items():
                p.copy_(saved[n][0])
                p.grad = saved[n][1]
        optimizer.load_state_dict(saved_state)
    return replayed


def _before_each_step(snapshot, stochastic_side):
    """The step hook of one side: record its state for the divergence report (``snapshot``, None
    when not looking for one), then give its stochastic layers the step's draws."""
    def hook(step):
        if snapshot is not None:
            snapshot(step)
        stochastic_side.begin(step)
    return hook


def checked_run(mode: str, input_layout: str, batches, steps: int | None) -> list:
    """The first ``steps`` batches as a list, after refusing (one line) an unknown mode or input
    layout, or fewer batches than steps (the checks every step-parity harness makes)."""
    if mode not in MODES:
        raise InputError(f"mode {mode!r}: expected one of {', '.join(MODES)}")
    if input_layout not in INPUT_LAYOUTS:
        raise InputError(f"input_layout {input_layout!r}: expected one of {', '.join(INPUT_LAYOUTS)}")
    batches = list(itertools.islice(batches, steps)) if steps is not None else list(batches)
    if not batches or (steps is not None and len(batches) < steps):
        raise InputError(f"{steps} steps asked for, {len(batches)} batches given")
    return batches


def step_parity(keras_model, keras_loss, keras_optimizer, torch_module, torch_loss, torch_optimizer,
                batches, steps: int | None = None, mode: str = "teacher-forced", *,
                input_layout: str = "NHWC", tolerances: dict | None = None, transfer: bool = True,
                name_map: dict | None = None, flatten_shapes: dict | None = None, stochastic: str = "share",
                stochastic_seed: int = 0, find_divergence: bool = True) -> Comparison:
    """Train both sides for ``steps`` batches and compare them step by step.

    ``keras_loss(y_true, y_pred)`` and ``torch_loss(output, target)`` (note the argument
    orders); ``torch_optimizer`` built on ``torch_module``'s parameters (e.g. with
    :func:`torch_optimizer_like`). ``transfer=True`` first copies the Keras weights into the
    torch module (refusing, with :class:`parity.errors.TransferError`, what does not fit);
    ``transfer=False`` keeps the torch module's own weights (to check a transfer of yours).
    ``tolerances``: ``{quantity: max normwise relative difference}``, default
    :func:`parity.tolerances.generic_tolerances` (the BatchNorm ``moving mean`` takes the
    ``params`` bound unless given its own). ``name_map`` and ``flatten_shapes``: see
    :mod:`parity.layers` (``name_map`` may pair stochastic layers too).

    ``stochastic``: ``"share"`` (default: Dropout, SpatialDropout*, GaussianNoise and
    GaussianDropout apply the same masks on both sides, step for step, drawn with
    ``stochastic_seed``), ``"off"`` (the identity on both sides) or ``"own"`` (each side draws
    its own): see :mod:`parity.stochastic`; a note says which. ``find_divergence``: when a
    quantity fails, re-run the first failing step layer by layer and report the first layer
    output and the first gradient outside tolerance (``result.divergence``, in the verdict, the
    table and the JSON; :mod:`parity.divergence`); it records both sides' weights before every
    step.
    """
    batches = checked_run(mode, input_layout, batches, steps)
    keras_dtype = variable_dtype(keras_model.trainable_variables[0])
    torch_dtype = dtype_name(next(torch_module.parameters()).dtype)
    if keras_dtype != torch_dtype:
        raise InputError(f"the Keras model is {keras_dtype}, the torch module {torch_dtype}: build both in "
                         "one dtype (Keras layers take dtype=, torch modules .to(dtype))")
    _check_batches(keras_model, batches)
    stochastic_names = {entry[0] for entry in keras_stochastic_layers(keras_model)[0]}
    name_map = dict(name_map or {})
    weight_map = {k: v for k, v in name_map.items() if k not in stochastic_names}
    match = match_layers(keras_model, torch_module, weight_map, flatten_shapes)
    match.raise_if_problems("Keras -> torch")
    dense_hwc = {g.keras_layer: g.context.hwc for g in match.groups if g.kind == "dense"}
    stochastic_map = {k: v for k, v in name_map.items() if k not in weight_map}
    chances = match_stochastic(keras_model, torch_module, stochastic_map, stochastic, stochastic_seed,
                               dense_hwc)
    chances.raise_if_problems()
    if transfer:
        load_torch_state(torch_module, keras_state(match))
    names = match.torch_names()
    state = StepState()
    keras_side = KerasStochastic(chances)
    keras_step = _before_each_step(state.keras_hook(keras_model) if find_divergence else None, keras_side)
    with keras_side:
        reference = run_keras(keras_model, keras_loss, keras_optimizer, batches, match, input_layout,
                              step_hook=keras_step)
    torch_side = TorchStochastic(chances, torch_module, keras_side.draws)
    torch_step = _before_each_step(state.torch_hook(torch_module) if find_divergence else None, torch_side)
    with torch_side:
        other = run_torch(torch_module, torch_loss, torch_optimizer, batches,
                          teacher=reference if mode == "teacher-forced" else None, replay=reference,
                          input_layout=input_layout, names=names,
                          stats=[g.torch_names[0] for g in _moving_means(match)], step_hook=torch_step)
    notes = list(match.notes) + optimizer_notes(keras_optimizer, torch_optimizer, keras_dtype)
    notes += [chances.summary()] * bool(chances.pairs) + chances.notes
    if is_keras_adam(keras_optimizer) and any(w.kind == "embedding" for w in match.trainable()):
        notes.append("Keras Adam squares an Embedding's sparse gradient per occurrence: a row looked up "
                     "twice in a batch gets v += (g1^2 + g2^2) (1 - beta_2), torch (dense) (g1 + g2)^2: "
                     "parity holds only for batches without repeated indices")
    bounds = tolerances or generic_tolerances(keras_dtype, mode)
    result = compare_records(reference, other, bounds, label="Keras vs torch", dtype=keras_dtype, mode=mode,
                             match=match, notes=notes)
    add_moving_means(result, reference, other, bounds.get(MOVING_MEAN, bounds.get("params", bounds["cost"])))
    if chances.pairs:
        result.stochastic = chances.mode
    if find_divergence and not result.passed:
        device = next(torch_module.parameters()).device
        state.keras_batches = [tuple(_keras_input(v, keras_dtype) for v in batch) for batch in batches]
        state.torch_batches = [_torch_batch(x, y, keras_dtype, device, input_layout) for x, y in batches]
        state.keras_stochastic = keras_side
        result.divergence = locate(result, keras_model, keras_loss, torch_module, torch_loss, match, chances,
                                   state, reference, other)
    return result


def _check_batches(keras_model, batches: list) -> None:
    """One line (:class:`InputError`) for a batch that is not an (x, y) pair, whose x does not fit
    the Keras model's input shape, or whose x and y hold different numbers of examples."""
    try:
        inputs = keras_model.inputs
        expected = tuple(None if s is None else int(s) for s in inputs[0].shape) if len(inputs) == 1 else None
    except (AttributeError, TypeError, ValueError, IndexError):
        expected = None
    for step, batch in enumerate(batches, start=1):
        if not isinstance(batch, (tuple, list)) or len(batch) != 2:
            raise InputError(f"batch {step}: expected an (x, y) pair of arrays, got {type(batch).__name__}"
                             + (f" of length {len(batch)}" if isinstance(batch, (tuple, list)) else ""))
        x, y = batch
        if isinstance(x, (dict, list, tuple)) or isinstance(y, (dict, list, tuple)):
            continue  # several inputs or outputs: the models say what they take
        x, y = np.asarray(x), np.asarray(y)
        if expected is not None and (x.ndim != len(expected) or any(
                e is not None and e != s for e, s in zip(expected[1:], x.shape[1:]))):
            layout = " (images channels-last: (batch, H, W, C))" if len(expected) == 4 else ""
            shown = "(" + ", ".join("None" if e is None else str(e) for e in expected) + ")"
            raise InputError(f"batch {step}: x has shape {x.shape}, the Keras model takes {shown} (do the "
                             f"batches fit both models? x in Keras's layout, batch first{layout})")
        if x.ndim and y.ndim and x.shape[0] != y.shape[0]:
            raise InputError(f"batch {step}: x holds {x.shape[0]} examples, y {y.shape[0]} (do the batches "
                             "fit both models?)")
