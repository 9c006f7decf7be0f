"""Your own TF1 code (``tf.compat.v1`` graphs, ``Saver`` checkpoints) against its PyTorch port.

The TF1 counterpart of :mod:`parity.generic` (which does the same for Keras models):

* :func:`load_checkpoint_into` / :func:`save_checkpoint_from`: a ``tf.train.Saver`` checkpoint into
  a torch module and its optimizer, and back (:mod:`parity.tf1_checkpoint`), by a name map of
  TF1 variable names (exact, globs, regexes) -> ``state_dict`` keys with layouts
  (:mod:`parity.tf1_map`: :func:`same`, :func:`dense`, :func:`conv2d`, :func:`lstm_kernel`, ...).
* :func:`step_parity`: trains a TF1 graph (``build_graph()``) and the torch module side by side
  on the same batches and compares every step with :func:`parity.compare.compare_records`: the
  same table, verdict, JSON, plot and tolerances as the Keras harness, plus
  :func:`first_divergence`.
* :class:`GraphRun`: the TF1 side alone, step by step (the graph, its update kernels, and every
  step's output, loss, applied gradients, variables and slots in TF1's names), with teacher forcing;
  :func:`step_parity` and the tutorial's own traces (:mod:`parity.trace`) both run TF1 through it.
* TF1's optimizers and schedules as torch twins (:mod:`parity.tf1_optim`).

**What the harness finds in your graph by itself.** ``build_graph()`` runs inside a fresh
``tf.Graph`` (graph-level seed ``seed``) and returns the input placeholders ``x``, ``y``, the
``output`` to compare (e.g. the logits), the ``loss`` and either the ``train_op`` or the
optimizer (then ``optimizer.minimize(loss, global_step=tf.train.get_global_step())`` is built).
From the ``train_op`` the harness walks back to TF1's update kernels (``ResourceApplyAdam``,
``ApplyMomentum``, ...): each names the variable it updates, the gradient it applied (fetched in
the training step's own ``session.run``, so it is exactly the one used), the slot variables and
the scalar inputs (learning rate, momentum, beta powers...). Every other global variable is a
model variable to be mapped (trainable or not, e.g. BatchNorm's moving statistics); the
optimizer's slots, beta powers and ``global_step`` are recognised as its state.

**Per step** (``x``, ``y`` fed as given, plus ``feeds``): TF1's output, loss, gradients (before
the update), parameters and slots (after), converted into torch's layout and names by the name
map; the torch side is run by :func:`parity.generic.run_torch`, one step at a time. Slots are
compared as the engine's ``m`` and ``v`` (see :class:`parity.tf1_optim.TwinInfo`). The scalar
inputs of TF1's kernel are compared with what the torch twin uses at that step; a difference is
a note (e.g. a schedule that TF1 applies to its ``global_step`` but the twin does not).
Teacher-forced: after every step the torch parameters and slots are reset to TF1's.

**Dropout** (``stochastic=``, as :func:`parity.generic.step_parity` names it): ``"share"``
(default) feeds the ``keep_prob`` placeholders their training value from ``feeds`` and
``is_training`` True, fetches the mask TF1 drew at each step, and makes each torch
``nn.Dropout`` apply that mask with TF1's formula (a forward hook), see :func:`find_dropouts`.
``"off"`` feeds ``keep_prob`` 1.0 (then TF1's dropout is the identity, exactly) and sets the torch
``nn.Dropout`` modules' ``p`` to 0 for the run (the module stays in ``train()``); if an
``is_training`` placeholder is named, it is fed False and the torch module runs in ``eval()``
mode instead (equivalent for dropout; a BatchNorm under the same switch then uses its moving
statistics on both sides). ``"own"``: each side draws its own masks (fails wherever dropout is
active: for showing that the masks are the difference). The mode used is a note.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from parity.compare import Comparison, compare_records
from parity.generic import checked_run, run_torch, to_channels_first
from parity.tf1_checkpoint import (
    checkpoint_variables,
    describe,
    load_checkpoint_into,
    open_checkpoint,
    optimizer_state_names,
    save_checkpoint_from,
    slot_names,
)
from parity.tf1_map import (
    Mapping,
    Target,
    conv1d,
    conv2d,
    dense,
    lstm_bias,
    lstm_kernel,
    resolve,
    same,
    torch_tensors_of,
)
from parity.tf1_optim import (
    KERNELS,
    AdagradOptimizer,
    AdamOptimizer,
    ExponentialDecay,
    GradientDescentOptimizer,
    MomentumOptimizer,
    PiecewiseConstant,
    RMSPropOptimizer,
    exponential_decay,
    kernel_inputs,
    piecewise_constant,
    slot_order,
    twin_info,
)
from parity.tolerances import QUANTITIES, generic_tolerances
from signs.errors import InputError
from torch_port.dtypes import dtype_name
from torch_port.optim import TFAdam

STOCHASTIC_MODES = ("share", "off", "own")

__all__ = [
    "TF1Graph", "GraphRun", "step_parity", "first_divergence", "find_updates", "find_dropouts",
    "graph_mapping",
    "load_checkpoint_into", "save_checkpoint_from", "checkpoint_variables", "describe", "open_checkpoint",
    "same", "dense", "conv2d", "conv1d", "lstm_kernel", "lstm_bias", "Target", "resolve", "Mapping",
    "GradientDescentOptimizer", "MomentumOptimizer", "RMSPropOptimizer", "AdagradOptimizer", "AdamOptimizer",
    "exponential_decay", "piecewise_constant", "ExponentialDecay", "PiecewiseConstant", "STOCHASTIC_MODES",
    "TFAdam", "slot_names", "optimizer_state_names", "Update", "Dropout",
]


def _one_line(text) -> str:
    return " ".join(str(text).split())


# --- the graph -----------------------------------------------------------------------------------

@dataclass
class TF1Graph:
    """What ``build_graph()`` returns (or a dict with these keys, or a tuple in this order):
    ``x``, ``y`` (placeholders), ``output`` (compared with the torch module's output), ``loss``
    (a scalar) and ``train``: the ``train_op``, or a ``tf.compat.v1.train.Optimizer``."""

    x: object
    y: object
    output: object
    loss: object
    train: object


def _as_graph_spec(built) -> TF1Graph:
    if isinstance(built, TF1Graph):
        return built
    if isinstance(built, dict):
        train = built.get("train_op", built.get("optimizer", built.get("train")))
        missing = [k for k in ("x", "y", "output", "loss") if k not in built]
        if missing or train is None:
            missing += [] if train is not None else ["train_op (or optimizer)"]
            raise InputError(f"build_graph() returned a dict without {', '.join(missing)}: return x, y, "
                             "output, loss and train_op (or optimizer)")
        return TF1Graph(built["x"], built["y"], built["output"], built["loss"], train)
    if isinstance(built, (tuple, list)) and len(built) == 5:
        return TF1Graph(*built)
    raise InputError(f"build_graph() returned {type(built).__name__}: return a parity.tf1.TF1Graph, a dict "
                     "(x, y, output, loss, train_op) or a tuple (x, y, output, loss, train_op)")


def _build(build_graph, seed: int):
    import tensorflow as tf

    tf1 = tf.compat.v1
    graph = tf.Graph()
    with graph.as_default():
        if seed is not None:
            tf1.set_random_seed(seed)
        try:
            built = build_graph()
        except InputError:
            raise
        except Exception as error:
            raise InputError(f"build_graph() raised {type(error).__name__}: "
                             f"{_one_line(error)[:300]}") from None
        spec = _as_graph_spec(built)
        if isinstance(spec.train, tf1.train.Optimizer):
            try:
                spec.train = spec.train.minimize(spec.loss, global_step=tf1.train.get_global_step())
            except Exception as error:
                raise InputError(f"optimizer.minimize(loss) failed: {type(error).__name__}: "
                                 f"{_one_line(error)[:300]}") from None
        if isinstance(spec.train, tf.Tensor):
            spec.train = spec.train.op
        if not isinstance(spec.train, tf.Operation):
            raise InputError(f"build_graph(): train_op must be an operation (or optimizer), got "
                             f"{type(spec.train).__name__}")
    return graph, spec


@dataclass
class Update:
    """One TF1 update kernel: the ``variable`` it updates (``name``), its ``kernel`` type without
    ``Resource`` (``ApplyAdam``), the ``grad`` tensor it applied, its ``slots`` (kernel input name
    -> slot variable) and ``scalars`` (kernel input name -> tensor)."""

    name: str
    variable: object
    kernel: str
    grad: object
    slots: dict = field(default_factory=dict)
    scalars: dict = field(default_factory=dict)


_VARIABLE_OPS = ("VarHandleOp", "VariableV2", "Variable")
# the slot inputs of TF1's update kernels (Adam m, v; Momentum and Adagrad accum; RMSProp ms, mom, mg)
SLOT_INPUTS = ("m", "v", "accum", "ms", "mom", "mg")


def _variable_of(tensor, variables: dict):
    op = tensor.op
    while op.type in ("Identity", "ReadVariableOp", "Cast") and op.inputs:
        op = op.inputs[0].op
    return variables.get(op.name) if op.type in _VARIABLE_OPS else None


def find_updates(train_op, graph) -> list[Update]:
    """Every update kernel the ``train_op`` runs (walking back through inputs and control inputs),
    in the order of ``tf.trainable_variables()``; refuses sparse updates and unknown kernels."""
    import tensorflow as tf

    with graph.as_default():
        variables = {v.op.name: v for v in tf.compat.v1.global_variables()}
        order = [v.op.name for v in tf.compat.v1.trainable_variables()]
    seen, stack, updates, problems = set(), [train_op], [], []
    while stack:
        op = stack.pop()
        if op.name in seen:
            continue
        seen.add(op.name)
        kernel = op.type.removeprefix("Resource")
        if kernel.startswith(("Apply", "SparseApply")):
            if kernel not in KERNELS:
                problems.append(f"{op.name} ({op.type})")
            else:
                names = [a.name for a in op.op_def.input_arg]
                inputs = dict(zip(names, op.inputs))
                variable = _variable_of(inputs["var"], variables)
                grad = inputs.get("grad", inputs.get("delta"))
                slots = {n: _variable_of(t, variables) for n, t in inputs.items() if n in SLOT_INPUTS}
                scalars = {n: t for n, t in inputs.items() if n not in ("var", "grad", "delta", *SLOT_INPUTS)}
                updates.append(Update(variable.op.name, variable, kernel, grad, slots, scalars))
        stack.extend(t.op for t in op.inputs)
        stack.extend(op.control_inputs)
    if problems:
        raise InputError(f"train_op runs update kernels with no torch twin here: {', '.join(problems)} "
                         f"(supported: {', '.join(sorted(set(KERNELS.values())))}; dense gradients only)")
    if not updates:
        raise InputError(f"train_op {train_op.name!r} updates no variable (is it the optimizer's "
                         "minimize(...) or apply_gradients(...)?)")
    kinds = sorted({u.kernel for u in updates})
    if len(kinds) > 1:
        raise InputError(f"train_op mixes optimizers ({', '.join(kinds)}): one optimizer per comparison")
    updates.sort(key=lambda u: order.index(u.name) if u.name in order else len(order))
    return updates


def _optimizer_variables(updates: list[Update], graph) -> set[str]:
    """Names of the optimizer's own variables: slots, and the variables its scalar inputs read
    (beta powers, a global step behind a schedule), plus ``global_step``."""
    import tensorflow as tf

    with graph.as_default():
        variables = {v.op.name: v for v in tf.compat.v1.global_variables()}
        step = tf.compat.v1.train.get_global_step()
    names = {s.op.name for u in updates for s in u.slots.values() if s is not None}
    stack, seen = [t.op for u in updates for t in u.scalars.values()], set()
    while stack:
        op = stack.pop()
        if op.name in seen:
            continue
        seen.add(op.name)
        if op.type in _VARIABLE_OPS and op.name in variables:
            names.add(op.name)
        stack.extend(t.op for t in op.inputs)
    if step is not None:
        names.add(step.op.name)
    return names


def graph_mapping(graph, updates, name_map, module, ignore=(), ignore_torch=()) -> Mapping:
    """Pair the graph's model variables (all but the optimizer's) with ``module``'s tensors."""
    import tensorflow as tf

    with graph.as_default():
        variables = {v.op.name: (tuple(v.shape.as_list()), v.dtype.base_dtype.name)
                     for v in tf.compat.v1.global_variables()}
    return resolve(name_map, variables, torch_tensors_of(module),
                   optimizer_state=_optimizer_variables(updates, graph), ignore=ignore,
                   ignore_torch=ignore_torch)


# --- dropout -------------------------------------------------------------------------------------

@dataclass
class Dropout:
    """A TF1 dropout: its ``output`` tensor and how it is computed. ``kind`` ``"div"``: TF divides
    by ``factor`` (a tensor ``keep_prob``-like, when the rate is a tensor), ``"mul"``: multiplies by
    ``factor`` (``1 / (1 - rate)``, a constant), both then ``where(mask, ., 0)`` with the boolean
    ``mask`` tensor. ``"fallback"``: the mask is not reachable (inside a ``tf.cond``, as
    ``tf.layers.dropout(training=<placeholder>)`` builds it): it is taken as ``output != 0`` and the
    torch side multiplies by ``1 / (1 - p)`` of its ``nn.Dropout``, as TF does for a Python-number
    rate. Exact where the dropout's input is nonzero, and where it is zero only after a ReLU
    (whose gradient is zero there anyway)."""

    output: object
    kind: str
    mask: object = None
    factor: object = None


def _scope(name: str) -> str:
    return name.rsplit("/", 1)[0] if "/" in name else ""


def _random_ancestor(op, depth: int = 6) -> bool:
    stack = [(op, 0)]
    while stack:
        op, d = stack.pop()
        if op.type.startswith(("RandomUniform", "StatelessRandomUniform")):
            return True
        if d < depth:
            stack.extend((t.op, d + 1) for t in op.inputs)
    return False


def _as_dropout(select) -> Dropout | None:
    if select.type not in ("SelectV2", "Select") or len(select.inputs) != 3:
        return None
    condition, scaled = select.inputs[0].op, select.inputs[1].op
    scope = _scope(select.name)
    if condition.type != "GreaterEqual" or _scope(condition.name) != scope or _scope(scaled.name) != scope:
        return None
    if not _random_ancestor(condition.inputs[0].op):
        return None
    if scaled.type == "RealDiv":
        return Dropout(select.outputs[0], "div", select.inputs[0], scaled.inputs[1])
    if scaled.type == "Mul":
        return Dropout(select.outputs[0], "mul", select.inputs[0], scaled.inputs[1])
    return None


def find_dropouts(graph, tensors=None) -> list[Dropout]:
    """The dropouts of ``graph`` in order of creation (``tf.nn.dropout``'s ``where(random >= rate,
    x / keep, 0)`` or ``x * scale``), or the given dropout output ``tensors`` (names or tensors),
    each resolved to its mask where reachable, else the ``fallback`` (see :class:`Dropout`)."""
    if tensors is None:
        found = []
        for op in graph.get_operations():
            if op.name.startswith("gradients") or "_grad/" in op.name:
                continue
            dropout = _as_dropout(op)
            if dropout is not None:
                found.append(dropout)
        return found
    outputs = [_tensor(graph, t, "dropouts") for t in tensors]
    return [_as_dropout(t.op) or Dropout(t, "fallback") for t in outputs]


def _tensor(graph, value, what: str):
    import tensorflow as tf

    if isinstance(value, (tf.Tensor, tf.Variable)):
        return value
    if isinstance(value, tf.Operation):
        return value.outputs[0]
    name = str(value)
    try:
        return graph.get_tensor_by_name(name if ":" in name else name + ":0")
    except (KeyError, ValueError):
        raise InputError(f"{what}: the graph has no tensor {name!r}") from None


class _SharedMasks:
    """Forward hooks that make torch ``nn.Dropout`` modules apply TF1's masks of the current step."""

    def __init__(self, pairs: list, input_layout: str):
        self.pairs, self.input_layout = pairs, input_layout
        self.current, self.used, self.handles = {}, set(), []

    def set(self, values: list) -> None:
        self.current = {id(module): (dropout, path, value) for (dropout, module, path), value
                        in zip(self.pairs, values)}
        self.used = set()

    def hook(self, module, inputs, output):
        dropout, path, (mask, factor) = self.current[id(module)]
        if id(module) in self.used:
            raise InputError(f"torch {path} (nn.Dropout) ran twice in one step: masks can be shared only for "
                             "a dropout module called once per forward pass")
        self.used.add(id(module))
        x = inputs[0]
        mask = np.asarray(mask)
        if self.input_layout == "NHWC" and mask.ndim == 4:
            mask = to_channels_first(mask)
        if tuple(mask.shape) != tuple(x.shape):
            raise InputError(f"dropout {dropout.output.name} draws a mask of shape {tuple(mask.shape)}, "
                             f"torch {path} gets an input of shape {tuple(x.shape)}: wrong dropout_map?")
        mask = torch.as_tensor(mask, device=x.device)
        if dropout.kind == "div":
            scaled = x / torch.as_tensor(factor, dtype=x.dtype, device=x.device)
        elif dropout.kind == "mul":
            scaled = x * torch.as_tensor(factor, dtype=x.dtype, device=x.device)
        else:
            scaled = x * (1.0 / (1.0 - module.p))
        return torch.where(mask, scaled, torch.zeros((), dtype=x.dtype, device=x.device))

    def __enter__(self):
        self.handles = [module.register_forward_hook(self.hook) for _, module, _ in self.pairs]
        return self

    def __exit__(self, *exc):
        for handle in self.handles:
            handle.remove()


def _torch_dropouts(module) -> list:
    return [(path, m) for path, m in module.named_modules() if type(m) is nn.Dropout]


def _pair_dropouts(graph, module, dropouts: list[Dropout], dropout_map) -> list:
    torch_side = _torch_dropouts(module)
    if dropout_map:
        modules = dict(module.named_modules())
        by_output = {d.output.name: d for d in dropouts}
        pairs = []
        for tf_name, path in dropout_map.items():
            tensor = _tensor(graph, tf_name, "dropout_map")
            dropout = by_output.get(tensor.name) or _as_dropout(tensor.op) or Dropout(tensor, "fallback")
            if path not in modules or type(modules[path]) is not nn.Dropout:
                raise InputError(f"dropout_map: torch {path!r} is not an nn.Dropout of the module (its "
                                 f"nn.Dropout modules: {', '.join(p for p, _ in torch_side) or 'none'})")
            pairs.append((dropout, modules[path], path))
        return pairs
    active = [(p, m) for p, m in torch_side if m.p > 0]
    if len(active) != len(dropouts):
        hidden = [op.outputs[0].name for op in graph.get_operations() if op.type == "Identity"
                  and "dropout" in op.name.lower() and op.name.endswith("cond/Identity")]
        raise InputError(f"the graph has {len(dropouts)} dropout(s)"
                         + (f" ({', '.join(d.output.name for d in dropouts)})" if dropouts else "")
                         + f", the torch module {len(active)} nn.Dropout with p > 0"
                         + (f" ({', '.join(p for p, _ in active)})" if active else "")
                         + ": pass dropouts=[...] (TF1 dropout outputs"
                         + (f"; under a tf.cond: {', '.join(hidden)}" if hidden else "")
                         + ") and/or dropout_map={tf_output: torch_path}, or stochastic='off'")
    return [(d, m, p) for d, (p, m) in zip(dropouts, active)]


@contextlib.contextmanager
def _dropout_off(module, eval_mode: bool):
    """torch's dropout switched off for the run: ``p = 0`` on every ``nn.Dropout``, or ``eval()``
    for every forward (a pre-hook: ``run_torch`` puts the module in ``train()`` before each step)."""
    saved = [(m, m.p) for _, m in module.named_modules() if isinstance(m, nn.modules.dropout._DropoutNd)]
    handle = None

    def evaluate(root, inputs):
        root.eval()

    if eval_mode:
        handle = module.register_forward_pre_hook(evaluate)
    else:
        for m, _ in saved:
            m.p = 0.0
    try:
        yield
    finally:
        if handle is not None:
            handle.remove()
            module.train()
        for m, p in saved:
            m.p = p


# --- the TF1 side, step by step ------------------------------------------------------------------

class GraphRun:
    """The TF1 side of a comparison: the graph ``build_graph()`` builds (in a fresh ``tf.Graph``,
    graph-level seed ``seed``), the update kernels its ``train_op`` runs (:func:`find_updates`), and
    :meth:`train`, which runs it on batches and records every step in TF1's own names and layouts.
    :func:`step_parity` uses it for any graph; :mod:`parity.trace` for the tutorial's."""

    def __init__(self, build_graph, seed: int | None = 0):
        import tensorflow as tf

        self.graph, self.spec = _build(build_graph, seed)
        self.updates = find_updates(self.spec.train, self.graph)
        self.kernel = self.updates[0].kernel
        self.dtype = self.updates[0].variable.dtype.base_dtype.name
        with self.graph.as_default():
            self.variables = {v.op.name: v for v in tf.compat.v1.global_variables()}
        self.x, self.y = self.tensor(self.spec.x, "x"), self.tensor(self.spec.y, "y")
        self.output, self.loss = self.tensor(self.spec.output, "output"), self.tensor(self.spec.loss, "loss")

    def tensor(self, value, what: str):
        """The graph's tensor ``value`` (a tensor, an operation or a name); one line if absent."""
        return _tensor(self.graph, value, what)

    def load(self, session, params: dict | None = None, slots: dict | None = None) -> None:
        """Assign NumPy values to variables by name (``params``) and to the update kernels' slots
        (``slots``: ``{variable: {kernel input: value}}``, e.g. ``{"W1": {"m": ..., "v": ...}}``)."""
        for name, value in (params or {}).items():
            self.variables[name].load(np.asarray(value), session)
        by_variable = {u.name: u for u in self.updates}
        for name, per_input in (slots or {}).items():
            for kernel_input, value in per_input.items():
                by_variable[name].slots[kernel_input].load(np.asarray(value), session)

    def train(self, batches, *, feeds: dict | None = None, extra=None, start=None, force=None,
              full=None) -> list[dict]:
        """Train one step per ``(x, y)`` batch (fed as given, plus the constant ``feeds``) and
        return one record per step: ``step`` (from 1), ``cost`` (the loss as fetched: a NumPy
        scalar of the graph's dtype), ``output``, ``grads`` (by variable name: the gradient each
        update kernel applied, fetched in the training step's own ``session.run``), ``scalars``
        (the kernel's scalar inputs: learning rate, beta powers...), ``extra`` (the value of the
        fetch ``extra`` in that run) and, where ``full(step)`` (default: every step), ``params``
        (the updated variables after the step) and ``slots`` (``{variable: {kernel input:
        value}}``).

        ``start(session)``: called once the variables are initialised (restore a checkpoint, load
        initial values with :meth:`load`). ``force(step, record)``: the state to load after the
        step (teacher forcing), ``{"params": ..., "slots": ...}`` as :meth:`load` takes, or None.
        A step that fails is one line (:class:`InputError`).
        """
        import tensorflow as tf

        tf1 = tf.compat.v1
        fetch_step = {"output": self.output, "loss": self.loss,
                      "grads": {u.name: u.grad for u in self.updates}, "scalars": self.updates[0].scalars,
                      "extra": extra if extra is not None else []}
        fetch_state = {"params": {u.name: u.variable for u in self.updates},
                       "slots": {u.name: dict(u.slots) for u in self.updates}}
        records = []
        with self.graph.as_default(), tf1.Session(graph=self.graph) as session:
            session.run(tf1.global_variables_initializer())
            if start is not None:
                start(session)
            for step, (x, y) in enumerate(batches, start=1):
                feed = dict(feeds or {})
                feed[self.x], feed[self.y] = _feed_value(self.x, x), _feed_value(self.y, y)
                try:
                    _, got = session.run([self.spec.train, fetch_step], feed_dict=feed)
                except Exception as error:
                    raise InputError(f"TF1 step {step} failed: {type(error).__name__}: "
                                     f"{_one_line(error)[:300]}") from None
                record = {"step": step, "cost": got["loss"], "output": np.asarray(got["output"]),
                          "grads": got["grads"], "scalars": got["scalars"], "extra": got["extra"]}
                if full is None or full(step):
                    record.update(session.run(fetch_state))
                records.append(record)
                forced = force(step, record) if force is not None else None
                if forced:
                    self.load(session, forced.get("params"), forced.get("slots"))
        return records


# --- running -------------------------------------------------------------------------------------

def _feed_value(placeholder, value):
    value = np.asarray(value)
    dtype = placeholder.dtype.base_dtype.as_numpy_dtype
    return value.astype(dtype) if np.issubdtype(value.dtype, np.number) or value.dtype == bool else value


def _slot_record(info, quantity_of_key: dict, names: list) -> dict:
    record = {}
    for state_key, per_name in quantity_of_key.items():
        quantity, suffix = info.quantity[state_key]
        for name in names:
            if name in per_name:
                record.setdefault(quantity, {})[name + suffix] = per_name[name]
    return record


def _twin_slots(optimizer, info, params: dict) -> dict:
    """``{state key: {torch name: array}}`` of the twin (zeros where it has taken no step)."""
    out = {}
    for state_key in info.quantity:
        values = {}
        for name, p in params.items():
            state = optimizer.state.get(p, {})
            if state_key in state:
                values[name] = state[state_key].detach().cpu().numpy().copy()
        if values:
            out[state_key] = values
    return out


def _load_twin_slots(optimizer, params: dict, slots: dict) -> None:
    with torch.no_grad():
        for state_key, per_name in slots.items():
            for name, value in per_name.items():
                p = params[name]
                value = torch.as_tensor(np.asarray(value)).to(p.device, p.dtype)
                state = optimizer.state[p]
                if state_key in state:
                    state[state_key].copy_(value)
                else:
                    state[state_key] = value.clone()


def _copy_params(module, values: dict) -> None:
    tensors = module.state_dict(keep_vars=True)
    with torch.no_grad():
        for key, value in values.items():
            tensors[key].copy_(torch.as_tensor(np.ascontiguousarray(value)).to(tensors[key].device,
                                                                                 tensors[key].dtype))


def _frozen_problems(module, mapping: Mapping, trained: set[str]) -> list[str]:
    params = dict(module.named_parameters())
    problems = []
    for pair in mapping.pairs:
        for key in pair.frozen_keys:
            if params.get(key) is not None and params[key].requires_grad:
                problems.append(f"torch {key} must be frozen ({key}.requires_grad_(False)): TF1's LSTM cell "
                                f"has one bias ({pair.tf_name}), torch two, and both would learn")
        for key in pair.torch_keys:
            if key in pair.frozen_keys or key not in params:
                continue
            if pair.tf_name in trained and not params[key].requires_grad:
                problems.append(f"torch {key} is frozen, but TF1 trains {pair.tf_name}")
            if pair.tf_name not in trained and params[key].requires_grad:
                problems.append(f"torch trains {key}, but TF1's train_op does not update {pair.tf_name}")
    return problems


def _compare_kernel_inputs(tf_values: dict, twin_values: dict, step: int, noted: set, notes: list) -> None:
    for name, value in tf_values.items():
        if name not in twin_values or name in noted:
            continue
        theirs = twin_values[name]
        if not (value == theirs or (math.isnan(value) and math.isnan(theirs))):
            noted.add(name)
            notes.append(f"TF1's kernel input {name} at step {step} is {value!r}, the torch twin's "
                         f"{theirs!r} (a schedule, a constant or a global step that differs)")


def step_parity(build_graph, torch_module, torch_loss, torch_optimizer, batches, name_map: dict,
                steps: int | None = None, mode: str = "teacher-forced", *, feeds: dict | None = None,
                stochastic: str = "share", keep_prob=(), is_training=None, dropouts=None,
                dropout_map: dict | None = None, input_layout: str = "NHWC", tolerances: dict | None = None,
                checkpoint=None, transfer: bool = True, seed: int | None = 0, ignore=(),
                ignore_torch=()) -> Comparison:
    """Train the TF1 graph of ``build_graph()`` and ``torch_module`` on ``batches`` and compare
    every step (see the module docstring).

    ``torch_loss(output, target)``; ``torch_optimizer``: a twin of the graph's optimizer
    (:class:`AdamOptimizer`, :class:`MomentumOptimizer`, ...) on ``torch_module``'s parameters.
    ``batches``: ``(x, y)`` NumPy pairs in TF1's layout (4-D ``x`` and masks go to torch as NCHW
    with ``input_layout="NHWC"``). ``name_map``: TF1 names -> torch keys (:mod:`parity.tf1_map`).
    ``feeds``: constant extra feeds (``{keep_prob: 0.5}``), placeholders or their names.
    ``keep_prob``: the keep-probability placeholder(s); ``is_training``: a training-switch
    placeholder; ``dropouts``: TF1 dropout outputs, when :func:`find_dropouts` cannot find them
    (e.g. under a ``tf.cond``); ``dropout_map``: ``{tf dropout output: torch module path}`` when the
    order of the ``nn.Dropout`` modules differs. ``checkpoint``: start both sides from a TF1
    checkpoint (TF1 ``Saver.restore``, torch :func:`load_checkpoint_into`, with the optimizer state
    when the checkpoint has it); else ``transfer=True`` copies TF1's initial variables into torch.
    ``ignore``/``ignore_torch``: globs of variables/keys with no twin on purpose.
    """
    import tensorflow as tf

    tf1 = tf.compat.v1
    if stochastic not in STOCHASTIC_MODES:
        raise InputError(f"stochastic {stochastic!r}: expected one of {', '.join(STOCHASTIC_MODES)}")
    batches = checked_run(mode, input_layout, batches, steps)
    info = twin_info(torch_optimizer)

    run = GraphRun(build_graph, seed)
    graph, updates, kernel, tf_dtype = run.graph, run.updates, run.kernel, run.dtype
    if kernel not in info.apply_ops:
        raise InputError(f"the TF1 graph trains with {KERNELS[kernel]} ({kernel}), the torch optimizer is "
                         f"{type(torch_optimizer).__name__}: use its twin")
    torch_dtype = dtype_name(next(p for p in torch_module.parameters()).dtype)
    if tf_dtype != torch_dtype:
        raise InputError(f"the TF1 graph is {tf_dtype}, the torch module {torch_dtype}: build both in one "
                         "dtype")
    mapping = graph_mapping(graph, updates, name_map, torch_module, ignore, ignore_torch)
    trained = {u.name for u in updates}
    mapping.problems += _frozen_problems(torch_module, mapping, trained)
    mapping.raise_if_problems("TF1 graph -> torch")

    with graph.as_default():
        constant = {_tensor(graph, k, "feeds"): v for k, v in (feeds or {}).items()}
        keep_list = [keep_prob] if isinstance(keep_prob, (str, tf.Tensor)) else list(keep_prob)
        keep = [_tensor(graph, k, "keep_prob") for k in keep_list]
        switch = _tensor(graph, is_training, "is_training") if is_training is not None else None
        notes = list(mapping.notes)
        pairs = []
        if stochastic == "off":
            constant.update({k: 1.0 for k in keep})
            if switch is not None:
                constant[switch] = False
            if keep or switch is not None or _has_active_dropout(torch_module):
                fed = [f"{k.name}=1.0" for k in keep]
                fed += [f"{switch.name}=False"] if switch is not None else []
                notes.append(f"stochastic='off': TF1 fed {', '.join(fed) or 'nothing'}"
                             + ("; torch in eval()" if switch is not None else "; torch nn.Dropout p=0"))
        else:
            missing = [k.name for k in keep if k not in constant]
            if missing:
                raise InputError(f"keep_prob {', '.join(missing)}: give its training value in feeds= (e.g. "
                                 "feeds={keep_prob: 0.5}), or use stochastic='off'")
            if switch is not None and switch not in constant:
                constant[switch] = True
            if stochastic == "own":
                notes.append("stochastic='own': each side draws its own dropout masks")
            else:
                found = find_dropouts(graph, dropouts)
                needed = found or dropout_map or _has_active_dropout(torch_module)
                pairs = _pair_dropouts(graph, torch_module, found, dropout_map) if needed else []
            if pairs:
                notes.append("stochastic='share': TF1's dropout masks applied in torch: " + ", ".join(
                    f"{d.output.name} -> {path}" for d, _, path in pairs))
            if any(d.kind == "fallback" for d, _, _ in pairs):
                notes.append("dropout masks taken as output != 0 where TF1's mask is out of reach (under a "
                             "tf.cond): exact where the dropout's input is nonzero or follows a ReLU")
        saver = tf1.train.Saver() if checkpoint is not None else None
    model_pairs = mapping.pairs
    by_name = {p.tf_name: p for p in model_pairs}
    names = [k for u in updates for k in by_name[u.name].torch_keys if k not in by_name[u.name].frozen_keys]
    params = {n: p for n, p in torch_module.named_parameters()}
    start_values = {}

    def start(session):
        if checkpoint is not None:
            open_checkpoint(checkpoint)
            try:
                saver.restore(session, str(checkpoint))
            except Exception as error:
                raise InputError(f"checkpoint {checkpoint}: TF1's Saver cannot restore it into the graph: "
                                 f"{_one_line(error)[:200]}") from None
        start_values.update(session.run({p.tf_name: run.variables[p.tf_name] for p in model_pairs}))

    masks_fetch = {"masks": [(d.mask if d.mask is not None else d.output) for d, _, _ in pairs],
                   "factors": [d.factor for d, _, _ in pairs if d.factor is not None]}
    steps_tf = run.train(batches, feeds=constant, extra=masks_fetch, start=start)
    if checkpoint is not None:
        # the optimizer's state too, when the checkpoint has its slots (or it has none)
        has_slots = any(n.endswith("/" + info.tf_name) for n in checkpoint_variables(checkpoint))
        with_optimizer = has_slots or not slot_order(torch_optimizer)
        load_checkpoint_into(torch_module, checkpoint, name_map,
                             optimizer=torch_optimizer if with_optimizer else None, ignore=ignore,
                             ignore_torch=ignore_torch)
    elif transfer:
        _copy_params(torch_module, mapping.to_torch(start_values))
    reference, states, kernel_values, masks = [], [], [], []
    for got in steps_tf:
        out = got["output"]
        if input_layout == "NHWC" and out.ndim == 4:
            out = to_channels_first(out)
        record = {"step": got["step"], "cost": float(got["cost"]), "output": out,
                  "grads": _select(mapping.to_torch(got["grads"], offset=False), names),
                  "params": _select(mapping.to_torch(got["params"]), names)}
        slot_values = {}
        for var_name, per_input in got["slots"].items():
            for kernel_input, value in per_input.items():
                converted = by_name[var_name].to_torch(value, offset=False)
                state_key = info.state_of_input[kernel_input]
                slot_values.setdefault(state_key, {}).update(_select(converted, names))
        record.update(_slot_record(info, slot_values, names))
        reference.append(record)
        states.append((record["params"], slot_values))
        kernel_values.append({k: float(v) for k, v in got["scalars"].items() if np.ndim(v) == 0})
        factors = iter(got["extra"]["factors"])
        masks.append([(np.asarray(m) != 0 if d.kind == "fallback" else np.asarray(m),
                       next(factors) if d.factor is not None else None)
                      for (d, _, _), m in zip(pairs, got["extra"]["masks"])])

    other, noted = [], set()
    torch_params = {n: params[n] for n in names}
    shared = _SharedMasks(pairs, input_layout)
    off = (_dropout_off(torch_module, eval_mode=switch is not None) if stochastic == "off"
           else contextlib.nullcontext())
    with shared, off:
        for step, batch in enumerate(batches, start=1):
            shared.set(masks[step - 1])
            twin_values = kernel_inputs(torch_optimizer, params[names[0]].dtype)
            _compare_kernel_inputs(kernel_values[step - 1], twin_values, step, noted, notes)
            try:
                record = run_torch(torch_module, torch_loss, torch_optimizer, [batch],
                                   replay=[reference[step - 1]],
                                   input_layout=input_layout, names=names)[0]
            except InputError:
                raise
            except Exception as error:
                raise InputError(f"torch step {step} failed: {type(error).__name__}: "
                                 f"{_one_line(error)[:300]}") from None
            record = {k: v for k, v in record.items() if k not in ("m", "v")}
            if "replayed" in record:  # the step from TF1's gradients: its parameters (slots go by twin names)
                record["replayed"] = {"params": record["replayed"]["params"]}
            record["step"] = step
            record.update(_slot_record(info, _twin_slots(torch_optimizer, info, torch_params), names))
            other.append(record)
            if mode == "teacher-forced" and step < len(batches):
                tf_params, tf_slots = states[step - 1]
                _copy_params(torch_module, tf_params)
                _load_twin_slots(torch_optimizer, torch_params, tf_slots)
    if any(p.tf_name not in trained for p in model_pairs):
        notes.append("not compared: variables TF1 does not train (e.g. BatchNorm moving statistics)")
    return compare_records(reference, other, tolerances or generic_tolerances(tf_dtype, mode),
                           label="TF1 vs torch", dtype=tf_dtype, mode=mode, match=mapping, notes=notes)


def _has_active_dropout(module) -> bool:
    return any(m.p > 0 for _, m in _torch_dropouts(module))


def _select(values: dict, names: list) -> dict:
    return {n: values[n] for n in names if n in values}


def first_divergence(result: Comparison) -> str | None:
    """The first step where a quantity leaves its tolerance, with the worst tensor of each state
    quantity there (``None`` when every step is within tolerance)."""
    for s in result.steps:
        bad = [q for q in QUANTITIES if q in s.rel and not s.rel[q] <= result.tolerances.get(q, math.inf)]
        if not bad:
            continue
        parts = []
        for q in bad:
            tensors = {k: v for k, v in s.detail.items() if k.startswith(q + "/")}
            worst = max(tensors, key=lambda k: tensors[k][1] if tensors[k][1] == tensors[k][1] else math.inf,
                        default=None)
            parts.append(f"{q} {s.rel[q]:.3e} > {result.tolerances[q]:.0e}"
                         + (f" (worst: {worst.split('/', 1)[1]})" if worst else ""))
        return f"first divergence at step {s.step}: " + "; ".join(parts)
    return None
