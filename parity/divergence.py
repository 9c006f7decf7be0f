"""Where a failing pair diverges: the first layer, the first gradient, at the first failing step.

When :func:`parity.generic.step_parity` finds a quantity outside tolerance (either mode), it
re-runs the first failing step layer by layer (:func:`locate`): both sides are put back in the
state they had at the start of that step (the Keras weights, BatchNorm moving statistics
included, and the torch module's parameters and buffers, recorded before every step), the
stochastic layers replay that step's draws (:mod:`parity.stochastic`), and one forward and
backward pass of the step's batch records

* every matched layer's **output**: the Keras layers' by wrapping their ``call`` (so Sequential,
  functional models with branches and subclassed models alike), the torch modules' by forward
  hooks; a ``Dense``/convolution is compared *before* its ``activation=`` (torch applies it in
  another module); the Keras value is converted to the torch layout (4-D: NCHW; after a Flatten:
  the (c, h, w) order; recurrent: the torch module's ``output`` or its last step, as Keras's
  ``return_sequences`` says);
* every parameter's **gradient**, in torch's layout and names.

Each is compared normwise (``max|a - b| / max|a|``, Keras the reference) against the
comparison's ``output`` (layer outputs) and ``grads`` tolerances, in the Keras model's layer
order. The report (:class:`Divergence`) names the first layer whose output is outside
tolerance and the first parameter whose gradient is, with the relative difference and both
values' norms, and a hint for that kind of layer. When every layer and gradient agrees it
names what does not: the model output after the last layer, the loss, a BatchNorm moving mean
(the ``moving mean`` quantity, see :func:`add_moving_means`) or a parameter's update (the
optimizer). It is ``result.divergence``, shown in the verdict (one line), after the table, and
in the JSON (``"divergence"``).

In ``"free-running"`` mode the two sides start the failing step from their own states: when
that is not step 1, the report says how far apart their parameters already were.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from parity.compare import difference, scaled_difference, tensor_difference
from parity.layers import flatten_input_hwc, keras_layer_is, keras_leaves
from parity.stochastic import KerasStochastic, TorchStochastic, to_torch_layout

MOVING_MEAN = "moving mean"
_ACTIVATED = ("dense", "conv1d", "conv2d", "conv2d_transpose", "depthwise_conv2d", "separable_conv2d")
_UPDATE = ("params", "m", "v")


# --- BatchNorm moving means, the comparison's extra quantity --------------------------------------

def add_moving_means(result, reference: list, other: list, tolerance: float) -> None:
    """Compare the BatchNorm moving means (records' ``stats``: ``{torch name: array}`` after each
    step) as the quantity ``"moving mean"``, against ``tolerance``, into ``result`` (per step,
    per tensor, worst, failing). Both sides update them with ``momentum``'s convex combination of
    the old value and the batch mean, so they agree to round-off unless the momenta differ
    (Keras ``momentum=m`` is torch ``1 - m``). Each tensor is measured against the largest
    moving mean: a per-step increment is ``momentum`` times a batch mean whose round-off is
    relative to the activations, not to that mean, which is zero in exact arithmetic for some
    channels (those fed by a BatchNorm-removed constant). The moving variances are not compared:
    Keras updates them with the biased batch variance, torch with the unbiased one."""
    if not any(r.get("stats") for r in reference):
        return
    worst_abs = worst_rel = 0.0
    worst_step = 0
    for diff, a, b in zip(result.steps, reference, other):
        stats_a, stats_b = a.get("stats") or {}, b.get("stats") or {}
        scale = max((float(np.abs(v).max()) for v in stats_a.values() if np.size(v)), default=0.0)
        step_abs = step_rel = 0.0
        for name, value in stats_a.items():
            pair = scaled_difference(value, stats_b[name], scale)
            diff.detail[f"{MOVING_MEAN}/{name}"] = pair
            step_abs, step_rel = max(step_abs, pair[0]), max(step_rel, pair[1])
        diff.abs[MOVING_MEAN], diff.rel[MOVING_MEAN] = step_abs, step_rel
        if step_rel > worst_rel or step_rel != step_rel:
            worst_rel, worst_step = step_rel, diff.step
        worst_abs = max(worst_abs, step_abs)
    result.tolerances[MOVING_MEAN] = tolerance
    result.worst_abs[MOVING_MEAN], result.worst_rel[MOVING_MEAN] = worst_abs, worst_rel
    result.worst_step[MOVING_MEAN] = worst_step
    if not worst_rel <= tolerance:
        result.failing.append(MOVING_MEAN)


# --- the report ---------------------------------------------------------------------------------

@dataclass
class Figure:
    """One layer's output or one parameter's gradient (or update) in the re-run step."""

    keras_layer: str
    torch_name: str           # the torch module's path (outputs) or the tensor's name
    kind: str
    rel: float
    max_abs: float
    norm_keras: float
    norm_torch: float
    tolerance: float
    note: str = ""

    @property
    def ok(self) -> bool:
        return self.rel <= self.tolerance

    def to_json(self) -> dict:
        return {"keras_layer": self.keras_layer, "torch": self.torch_name, "kind": self.kind,
                "max_rel_diff": _finite(self.rel), "max_abs_diff": _finite(self.max_abs),
                "norm_keras": _finite(self.norm_keras), "norm_torch": _finite(self.norm_torch),
                "tolerance": self.tolerance, "ok": self.ok, **({"note": self.note} if self.note else {})}


def _finite(x):
    return x if not isinstance(x, float) or np.isfinite(x) else str(x)


def _norms(f: Figure) -> str:
    return f"norms: Keras {f.norm_keras:.3g}, torch {f.norm_torch:.3g}"


@dataclass
class Divergence:
    """Where the first failing ``step`` diverges. ``found``: ``"layer output"``, ``"gradient"``,
    ``"model output"``, ``"cost"``, ``"moving mean"``, ``"update"``, ``"none"`` or ``"error"``
    (the re-run itself failed: ``detail`` says why); ``first``: its figure; ``gradient``: the
    first gradient outside tolerance (also when a layer output came first); ``layers`` and
    ``gradients``: every figure of the re-run, in the Keras model's order."""

    step: int
    found: str
    first: Figure | None = None
    gradient: Figure | None = None
    hint: str = ""
    detail: str = ""
    layers: list = field(default_factory=list)
    gradients: list = field(default_factory=list)

    def line(self) -> str:
        """One line: ``first divergence: layer `gru` output, step 1, rel 3.2e-01 (norms: ...);
        first gradient: ...; check the gate order ...``."""
        f, s = self.first, self.step
        if self.found == "layer output":
            text = (f"first divergence: layer `{f.keras_layer}` output, step {s}, rel {f.rel:.1e} "
                    f"({_norms(f)})")
        elif self.found == "gradient":
            text = (f"first divergence: gradient of `{f.torch_name}` (layer `{f.keras_layer}`), step {s}, "
                    f"rel {f.rel:.1e} ({_norms(f)}), every layer output within tolerance")
        elif self.found == "moving mean":
            text = (f"first divergence: layer `{f.keras_layer}` moving mean (`{f.torch_name}`), step {s}, "
                    f"rel {f.rel:.1e} ({_norms(f)}), outputs and gradients within tolerance")
        elif self.found == "update":
            text = (f"first divergence: the update of `{f.torch_name}` (layer `{f.keras_layer}`), step {s}, "
                    f"rel {f.rel:.1e} ({_norms(f)}), outputs and gradients within tolerance")
        elif self.found in ("model output", "cost"):
            what = "the model output" if self.found == "model output" else "the loss"
            text = (f"first divergence: {what}, step {s}, rel {f.rel:.1e} ({_norms(f)}), every matched layer "
                    "within tolerance")
        elif self.found == "error":
            text = f"first divergence not located: {self.detail}"
        else:
            text = (f"no divergence found re-running step {s} layer by layer: every layer output and "
                    "gradient within tolerance")
        if self.gradient is not None and self.found == "layer output":
            g = self.gradient
            text += (f"; first gradient: `{g.torch_name}` (layer `{g.keras_layer}`), rel {g.rel:.1e} "
                     f"({_norms(g)})")
        if self.detail and self.found != "error":
            text += f"; {self.detail}"
        return text + (f"; {self.hint}" if self.hint else "")

    def table(self) -> str:
        """The re-run's figures: per layer output, then per gradient, with both norms."""
        from tabulate import tabulate

        rows = [[f.keras_layer, f.torch_name, what, f"{f.rel:.3e}", f"{f.norm_keras:.3e}",
                 f"{f.norm_torch:.3e}", f"{f.tolerance:.0e}",
                 ("ok" if f.ok else "FAIL") + (f" ({f.note})" if f.note else "")]
                for what, figures in (("output", self.layers), ("gradient", self.gradients)) for f in figures]
        body = tabulate(rows, headers=["Keras layer", "torch", "what", "max rel diff", "norm Keras",
                                       "norm torch", "tolerance", "ok"]) if rows else ""
        title = f"step {self.step} re-run layer by layer:"
        return "\n".join(part for part in (self.line(), title if rows else "", body) if part)

    def to_json(self) -> dict:
        return {"step": self.step, "found": self.found, "line": self.line(), "hint": self.hint,
                **({"detail": self.detail} if self.detail else {}),
                "first": None if self.first is None else self.first.to_json(),
                "first_gradient": None if self.gradient is None else self.gradient.to_json(),
                "layers": [f.to_json() for f in self.layers],
                "gradients": [f.to_json() for f in self.gradients]}


# --- hints ---------------------------------------------------------------------------------------

def hint(kind: str, keras_layer=None, torch_module=None, after_flatten: bool = False,
         what: str = "output", mode: str = "share") -> str:
    """What to check for a divergence at a layer of ``kind``."""
    if kind == "dense":
        if after_flatten:
            return ("check the Flatten permutation: Keras flattens (h, w, c), torch (c, h, w) (the Dense "
                    "after it needs its inputs permuted: flatten_shapes)")
        return "check the kernel transposition (Keras (in, out), torch (out, in))"
    if kind in ("conv1d", "conv2d", "conv2d_transpose", "depthwise_conv2d", "separable_conv2d"):
        return ("check the kernel layout (Keras HWIO, torch OIHW), the padding (Keras 'same' with stride 2 "
                "pads bottom/right only: F.pad(x, (0, 1, 0, 1))) and the strides")
    if kind == "batchnorm":
        if what == MOVING_MEAN:
            momentum = getattr(keras_layer, "momentum", None)
            said = "" if momentum is None else f": Keras {momentum:g} is torch {1 - momentum:.3g}"
            return f"check BatchNorm momentum (Keras momentum=m is torch momentum=1-m{said})"
        return "check BatchNorm epsilon (Keras 1e-3, torch 1e-5) and the axis"
    if kind == "layernorm":
        return "check LayerNorm epsilon (Keras 1e-3, torch 1e-5)"
    if kind == "gru":
        return "check the gate order (Keras GRU z, r, h; torch r, z, n) and the two biases"
    if kind == "lstm":
        return ("check the gate order (Keras i, f, c, o = torch i, f, g, o) and the bias (Keras one, torch "
                "bias_ih + bias_hh)")
    if kind == "simple_rnn":
        return "check the activation and the bias (Keras one, torch bias_ih + bias_hh)"
    if kind == "bidirectional":
        return ("check the gate order and the backward half (torch's out[:, 0, u:] is Keras's last backward "
                "output)")
    if kind == "embedding":
        return "check the indices and padding_idx"
    if kind == "multi_head_attention":
        return "check the head packing of the projections and the attention scale"
    if kind == "prelu":
        return "check the slope axis (nn.PReLU acts along dim 1)"
    if kind in ("dropout", "spatial_dropout1d", "spatial_dropout2d", "spatial_dropout3d", "gaussian_noise",
                "gaussian_dropout", "alpha_dropout"):
        if mode == "own":
            return ("masks not shared (stochastic='own': each side draws its own); the default 'share' "
                    "shares them")
        text = ("masks not shared? check the rate (a note says when it differs) and where the module is "
                "applied")
        return text + ("; and the Flatten order before it" if after_flatten else "")
    return ""




# --- re-running one step ---------------------------------------------------------------------------

def _identity(x):
    return x


def _array(value) -> np.ndarray:
    if isinstance(value, (list, tuple)):
        value = value[0]
    return np.asarray(value)


def _torch_like_keras(kind: str, layer, output) -> np.ndarray:
    """The torch module's output as its Keras layer gives it: a recurrent module's last step
    (``return_sequences=False``), a Bidirectional's halves merged; tuples' first element."""
    if kind == "bidirectional":
        out = output[0] if isinstance(output, (list, tuple)) else output
        units = layer.forward_layer.cell.units
        if layer.return_sequences:
            forward, backward = out[..., :units], out[..., units:]
        else:
            forward, backward = out[:, -1, :units], out[:, 0, units:]
        merges = {"sum": lambda: forward + backward, "ave": lambda: (forward + backward) / 2,
                  "mul": lambda: forward * backward}
        merged = merges.get(layer.merge_mode, lambda: torch.cat([forward, backward], -1))
        return merged().detach().cpu().numpy()
    if isinstance(output, (list, tuple)):
        output = output[0]
    if kind in ("lstm", "gru", "simple_rnn") and not layer.return_sequences and output.dim() == 3:
        output = output[:, -1]
    return output.detach().cpu().numpy()


def _keras_merged(kind: str, layer, value) -> np.ndarray:
    if kind == "bidirectional" and isinstance(value, (list, tuple)) and layer.merge_mode is None:
        return np.concatenate([np.asarray(v) for v in value], -1)
    return _array(value)


@dataclass
class _Layer:
    keras_name: str
    keras_layer: object
    torch_path: str
    torch_module: object
    kind: str
    hwc: tuple | None = None
    after_flatten: bool = False
    between: list = field(default_factory=list)   # the layers not compared since the previous one


def _paired_layers(keras_model, match, stochastic) -> list[_Layer]:
    """The matched layers (weighted and stochastic), in the Keras model's order."""
    weighted = {}
    for group in match.groups:
        context = group.context
        weighted.setdefault(group.keras_layer, (context.keras_layer, context.torch_module, group.kind))
    paths = {keras_name: torch_path for keras_name, torch_path, _, _ in match.pairs}
    chances = {p.keras_name: p for p in (stochastic.pairs if stochastic is not None else [])}
    out, after, between = [], False, []
    for layer in keras_leaves(keras_model):
        name = layer.name
        if keras_layer_is(layer, "Flatten"):
            after = isinstance(flatten_input_hwc(layer), tuple)
        if name in weighted:
            keras_layer, module, kind = weighted[name]
            out.append(_Layer(name, keras_layer, paths.get(name, ""), module, kind, after_flatten=after,
                              between=between))
            after, between = False, []
        elif name in chances:
            pair = chances[name]
            out.append(_Layer(name, pair.keras_layer, pair.torch_path, pair.torch_module, pair.kind.name,
                              pair.hwc, after_flatten=after, between=between))
            between = []
        else:
            between.append(name)
    return out


def _keras_pass(keras_model, keras_loss, x, y, layers: list[_Layer]):
    """One forward and backward pass of the Keras model (training=True), capturing each layer's
    output (before its activation for Dense/convolutions) and the gradients."""
    import tensorflow as tf

    captured, installed = {}, []

    def wrap(entry: _Layer, bound):
        layer = entry.keras_layer
        strip = entry.kind in _ACTIVATED and "activation" in layer.__dict__ and layer.__dict__["activation"]

        def call(*args, **kwargs):
            if not strip:
                out = bound(*args, **kwargs)
                captured.setdefault(entry.keras_name, out)
                return out
            activation = layer.__dict__["activation"]
            layer.__dict__["activation"] = _identity
            try:
                pre = bound(*args, **kwargs)
            finally:
                layer.__dict__["activation"] = activation
            captured.setdefault(entry.keras_name, pre)
            return activation(pre)

        return call

    for entry in layers:
        layer = entry.keras_layer
        installed.append((layer, layer.__dict__.get("call")))
        layer.__dict__["call"] = wrap(entry, layer.call)
    variables = list(keras_model.trainable_variables)
    try:
        with tf.GradientTape() as tape:
            output = keras_model(x, training=True)
            cost = keras_loss(y, output)
        grads = tape.gradient(cost, variables)
    finally:
        for layer, previous in reversed(installed):
            if previous is None:
                layer.__dict__.pop("call", None)
            else:
                layer.__dict__["call"] = previous
    grads = [np.zeros(tuple(v.shape)) if g is None else np.asarray(tf.convert_to_tensor(g))
             for g, v in zip(grads, variables)]
    return captured, variables, grads


def _torch_pass(module, torch_loss, x, y, layers: list[_Layer]):
    captured, handles = {}, []
    for entry in layers:
        def hook(_module, _inputs, output, path=entry.torch_path):
            captured.setdefault(path, output)

        handles.append(entry.torch_module.register_forward_hook(hook))
    try:
        module.train()
        for p in module.parameters():
            p.grad = None
        output = module(x)
        torch_loss(output, y).backward()
    finally:
        for handle in handles:
            handle.remove()
    grads = {n: None if p.grad is None else p.grad.detach().cpu().numpy().copy()
             for n, p in module.named_parameters()}
    return captured, grads


def _output_figure(entry: _Layer, keras_value, torch_value, tolerance: float) -> Figure:
    note = "before its activation" if entry.kind in _ACTIVATED and callable(
        getattr(entry.keras_layer, "activation", None)) and getattr(entry.keras_layer.activation, "__name__",
                                                                    "") != "linear" else ""
    if keras_value is None or torch_value is None:
        missing = "Keras" if keras_value is None else "torch"
        return Figure(entry.keras_name, entry.torch_path, entry.kind, 0.0, 0.0, float("nan"), float("nan"),
                      tolerance, f"not compared: the {missing} side did not run it")
    k = _keras_merged(entry.kind, entry.keras_layer, keras_value)
    t = _torch_like_keras(entry.kind, entry.keras_layer, torch_value)
    converted = to_torch_layout(k, t.shape, entry.hwc)
    norms = float(np.linalg.norm(k)), float(np.linalg.norm(t))
    if converted is None:
        return Figure(entry.keras_name, entry.torch_path, entry.kind, float("inf"), float("inf"), *norms,
                      tolerance, f"shapes differ: Keras {k.shape}, torch {t.shape}")
    max_abs, rel = difference(converted, t)
    return Figure(entry.keras_name, entry.torch_path, entry.kind, rel, max_abs, *norms, tolerance, note)


def _group_layer(match) -> dict:
    """torch tensor name -> (Keras layer name, kind)."""
    return {name: (g.keras_layer, g.kind) for g in match.groups for name in g.torch_names}


def _tensor_figure(name, owner, a, b, scale, tolerance, note="") -> Figure:
    a, b = np.asarray(a), np.asarray(b)
    max_abs, rel = tensor_difference(a, b, scale)
    return Figure(owner[0], name, owner[1], rel, max_abs, float(np.linalg.norm(a)), float(np.linalg.norm(b)),
                  tolerance, note)


def _first_record_figure(result, step: int, quantities, match, reference, other, order) -> Figure | None:
    """The first tensor (in ``order``) of ``quantities`` outside tolerance in the step's records."""
    owners = _group_layer(match)
    record_a, record_b = reference[step - 1], other[step - 1]
    for quantity in quantities:
        tolerance = result.tolerances.get(quantity)
        values_a, values_b = record_a.get("stats" if quantity == MOVING_MEAN else quantity), None
        if tolerance is None or not values_a:
            continue
        values_b = record_b.get("stats" if quantity == MOVING_MEAN else quantity) or {}
        scale = max((float(np.abs(v).max()) for v in values_a.values() if np.size(v)), default=0.0)
        for name in sorted(values_a, key=lambda n: order.get(n, (len(order), 0))):
            if name not in values_b:
                continue
            figure = _tensor_figure(name, owners.get(name, ("?", "?")), values_a[name], values_b[name], scale,
                                    tolerance, "" if quantity == MOVING_MEAN else quantity)
            if not figure.ok:
                return figure
    return None


def first_failing_step(result) -> int | None:
    for diff in result.steps:
        for quantity, rel in diff.rel.items():
            tolerance = result.tolerances.get(quantity)
            if tolerance is not None and not rel <= tolerance:
                return diff.step
    return None


@dataclass
class StepState:
    """What :func:`locate` needs of the run: per step (1-based), the Keras weights (values of
    ``keras_model.weights``) and the torch state dict at the start of the step; the inputs of
    both sides; the Keras side's stochastic draws."""

    keras_weights: dict = field(default_factory=dict)
    torch_states: dict = field(default_factory=dict)
    keras_batches: list = field(default_factory=list)
    torch_batches: list = field(default_factory=list)
    keras_stochastic: KerasStochastic | None = None

    def keras_hook(self, keras_model):
        def hook(step):
            self.keras_weights[step] = [np.array(v.numpy()) for v in keras_model.weights]
        return hook

    def torch_hook(self, module):
        def hook(step):
            self.torch_states[step] = {k: v.detach().clone() for k, v in module.state_dict().items()}
        return hook


def locate(result, keras_model, keras_loss, torch_module, torch_loss, match, stochastic, state: StepState,
           reference: list, other: list) -> Divergence | None:
    """Re-run the first failing step of ``result`` layer by layer (see the module docstring).
    Never raises: a re-run that fails gives ``found="error"`` with the reason."""
    step = first_failing_step(result)
    if step is None:
        return None
    try:
        return _locate(result, step, keras_model, keras_loss, torch_module, torch_loss, match, stochastic,
                       state, reference, other)
    except Exception as error:  # a diagnostic must not hide the comparison it explains
        message = str(error).strip().splitlines()[0] if str(error).strip() else ""
        return Divergence(step, "error", detail=f"the layer-by-layer re-run of step {step} failed: "
                          f"{type(error).__name__}{': ' + message if message else ''}")


def _locate(result, step, keras_model, keras_loss, torch_module, torch_loss, match, stochastic, state,
            reference, other) -> Divergence:
    layers = _paired_layers(keras_model, match, stochastic)
    mode = stochastic.mode if stochastic is not None else "share"
    x, y = state.keras_batches[step - 1]
    xt, yt = state.torch_batches[step - 1]
    final_keras = [np.array(v.numpy()) for v in keras_model.weights]
    final_torch = {k: v.detach().clone() for k, v in torch_module.state_dict().items()}
    saved_grads = {n: None if p.grad is None else p.grad.detach().clone()
                   for n, p in torch_module.named_parameters()}
    keras_side = state.keras_stochastic
    try:
        for v, value in zip(keras_model.weights, state.keras_weights[step]):
            v.assign(value)
        torch_module.load_state_dict(state.torch_states[step])
        if keras_side is not None:
            keras_side.begin(step, replay=True)
            with keras_side:
                keras_out, variables, keras_grads = _keras_pass(keras_model, keras_loss, x, y, layers)
        else:
            keras_out, variables, keras_grads = _keras_pass(keras_model, keras_loss, x, y, layers)
        draws = keras_side.draws if keras_side is not None else {}
        if stochastic is not None:
            torch_side = TorchStochastic(stochastic, torch_module, draws)
            with torch_side:
                torch_side.begin(step)
                torch_out, torch_grads = _torch_pass(torch_module, torch_loss, xt, yt, layers)
        else:
            torch_out, torch_grads = _torch_pass(torch_module, torch_loss, xt, yt, layers)
    finally:
        for v, value in zip(keras_model.weights, final_keras):
            v.assign(value)
        torch_module.load_state_dict(final_torch)
        for n, p in torch_module.named_parameters():
            p.grad = saved_grads[n]

    output_tolerance = result.tolerances.get("output", result.tolerances.get("cost"))
    figures = [_output_figure(e, keras_out.get(e.keras_name), torch_out.get(e.torch_path), output_tolerance)
               for e in layers]
    order = {}
    position = {e.keras_name: i for i, e in enumerate(layers)}
    for group in match.groups:
        for name in group.torch_names:
            order[name] = (position.get(group.keras_layer, len(position)), len(order))
    converted = match.to_torch_values(variables, keras_grads)
    scale = max((float(np.abs(v).max()) for v in converted.values() if np.size(v)), default=0.0)
    owners = _group_layer(match)
    gradient_tolerance = result.tolerances.get("grads", output_tolerance)
    gradients = []
    for name in sorted(converted, key=lambda n: order.get(n, (len(position), 0))):
        theirs = torch_grads.get(name)
        theirs = np.zeros_like(converted[name]) if theirs is None else theirs
        gradients.append(_tensor_figure(name, owners.get(name, ("?", "?")), converted[name], theirs, scale,
                                        gradient_tolerance))

    by_name = {e.keras_name: e for e in layers}
    first = next((f for f in figures if not f.ok), None)
    gradient = next((f for f in gradients if not f.ok), None)
    detail = ""
    if result.mode == "free-running" and step > 1:
        drift = result.steps[step - 2].rel.get("params")
        if drift is not None:
            detail = (f"free-running: the sides entered step {step} with parameters {drift:.1e} apart (run "
                      "teacher-forced to see each step's own error)")
    if first is not None:
        entry = by_name[first.keras_layer]
        text = hint(entry.kind, entry.keras_layer, entry.torch_module, entry.after_flatten, "output", mode)
        if entry.between and mode != "own":
            text += f"; or what runs before it: {', '.join(f'`{name}`' for name in entry.between)}"
        return Divergence(step, "layer output", first, gradient, text, detail, figures, gradients)
    diff = result.steps[step - 1]
    failing = {q for q, rel in diff.rel.items() if q in result.tolerances and not rel <= result.tolerances[q]}
    if "output" in failing or "cost" in failing:
        a, b = reference[step - 1], other[step - 1]
        quantity = "output" if "output" in failing else "cost"
        max_abs, rel = difference(a[quantity], b[quantity])
        whole = Figure("", quantity, "", rel, max_abs, float(np.linalg.norm(a[quantity])),
                       float(np.linalg.norm(b[quantity])), result.tolerances[quantity])
    if "output" in failing:
        return Divergence(step, "model output", whole, None,
                          "check what runs after the last matched layer (its activation, pooling, softmax, "
                          "reshape)", detail, figures, gradients)
    if "cost" in failing:
        return Divergence(step, "cost", whole, None,
                          "check the losses (reduction, from_logits, label format, class weights)", detail,
                          figures, gradients)
    if gradient is not None:
        entry = by_name.get(gradient.keras_layer)
        text = "" if entry is None else hint(entry.kind, entry.keras_layer, entry.torch_module,
                                             entry.after_flatten, "gradient", mode)
        return Divergence(step, "gradient", gradient, None, text, detail, figures, gradients)
    if MOVING_MEAN in failing:
        figure = _first_record_figure(result, step, [MOVING_MEAN], match, reference, other, order)
        if figure is not None:
            entry = by_name.get(figure.keras_layer)
            layer = entry.keras_layer if entry is not None else None
            return Divergence(step, "moving mean", figure, None, hint("batchnorm", layer, what=MOVING_MEAN),
                              detail, figures, gradients)
    if failing & set(_UPDATE):
        quantities = [q for q in _UPDATE if q in failing]
        figure = _first_record_figure(result, step, quantities, match, reference, other, order)
        if figure is not None:
            return Divergence(step, "update", figure, None,
                              "check the optimizer (its formula, constants, epsilon placement, learning "
                              "rate)",
                              detail, figures, gradients)
    return Divergence(step, "none", None, None, "", detail, figures, gradients)
