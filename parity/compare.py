"""The one comparison engine: two runs' step records, per quantity per step, against tolerances.

Everything the harness compares goes through :func:`compare_records`: the tutorial's
implementations (:mod:`parity.trace`, via :func:`compare`), a Keras model and its torch port
(:mod:`parity.generic`) and the golden traces (:mod:`parity.golden`).

A **record** is one training step: ``step``, ``cost`` and, where kept, ``output`` and the
dicts ``grads``, ``params`` (after the update), ``m``, ``v`` keyed by tensor name; the
tutorial's records also carry ``epoch`` and ``batch`` (the examples' indices). Both sides'
records must be in one layout (the harness converts before comparing).

Differences are **normwise relative** (:func:`difference`); a quantity's figure is its worst
tensor's; a quantity fails when its worst step exceeds its tolerance. Epoch costs (what the
training functions print and return every 5 epochs), where both sides have them, are compared
too, against the cost's tolerance.

A record of the compared side may also hold ``replayed``: its ``params``/``m``/``v`` after the
same step taken from its own state with the *reference's* gradients
(:func:`parity.generic.run_torch`; teacher-forced, that state is the reference's). Then a
parameter or slot outside tolerance whose gradient is within it, and whose same-gradient figure
is within it too, differs only through the optimizer's per-element step:
:func:`explain_by_gradients` counts the same-gradient figure and says so.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from parity import present
from parity.tolerances import QUANTITIES, ZERO_TENSOR_FACTOR

MODES = ("teacher-forced", "free-running")
STATE = ("grads", "params", "m", "v")
EPOCH_COST = "epoch cost"


def difference(a, b) -> tuple[float, float]:
    """``(max|a - b|, max|a - b| / max|a|)`` for two arrays of the same shape.

    ``a`` is the reference. Where ``a`` is all zeros the relative figure is 0 if ``b`` is
    too, else infinite. NaNs count as infinitely different.
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"shapes differ: {a.shape} vs {b.shape}")
    if a.size == 0:
        return 0.0, 0.0
    delta = np.abs(a - b)
    if not np.all(np.isfinite(delta)):
        return float("inf"), float("inf")
    max_abs, scale = float(delta.max()), float(np.abs(a).max())
    if scale == 0.0:
        return max_abs, 0.0 if max_abs == 0.0 else float("inf")
    return max_abs, max_abs / scale


def is_round_off(a, scale: float) -> bool:
    """Whether the floating tensor ``a`` is zero up to round-off next to ``scale`` (its quantity's
    largest value): ``max|a| <= ZERO_TENSOR_FACTOR * eps * scale``."""
    a = np.asarray(a)
    if not (scale > 0 and a.size and np.issubdtype(a.dtype, np.floating)):
        return False
    return float(np.abs(a).max()) <= ZERO_TENSOR_FACTOR * float(np.finfo(a.dtype).eps) * scale


def scaled_difference(a, b, scale: float) -> tuple[float, float]:
    """``(max|a - b|, max|a - b| / scale)``: a tensor's difference measured against its quantity's
    largest value instead of its own (``scale`` 0: the absolute difference)."""
    max_abs = difference(a, b)[0]
    return max_abs, max_abs / scale if scale > 0 else max_abs


def tensor_difference(a, b, scale: float) -> tuple[float, float]:
    """:func:`difference` of one tensor, unless the reference ``a`` is zero up to round-off next
    to its quantity's largest tensor (:func:`is_round_off`): then :func:`scaled_difference`.
    Such a tensor is zero in exact arithmetic (e.g. the gradient of a bias followed by
    BatchNorm); both sides hold round-off noise there, and noise over noise says nothing."""
    if is_round_off(a, scale):
        return scaled_difference(a, b, scale)
    return difference(a, b)


@dataclass
class StepDiff:
    """One step: ``abs``/``rel`` per quantity, and ``detail`` per tensor (``grads/W1`` ...)."""

    step: int
    cost_a: float
    cost_b: float
    abs: dict = field(default_factory=dict)
    rel: dict = field(default_factory=dict)
    detail: dict = field(default_factory=dict)
    #: per tensor (``params/fc1.weight``), the difference from the same gradients (``replayed``)
    replayed: dict = field(default_factory=dict)
    #: per tensor whose own figure :func:`explain_by_gradients` replaced: that own figure
    explained: dict = field(default_factory=dict)


@dataclass
class Comparison:
    """A whole comparison: per-step differences, the worst of each quantity, the verdict.

    ``batches_match``: both sides saw the same mini-batches (and steps). ``epochs``: per epoch
    whose cost both sides reported, ``(epoch, cost_a, cost_b, relative difference)``.
    ``label``, ``dtype``, ``mode``, ``notes`` (conventions that differ), ``match`` (a layer
    pairing) and the two sides' ``reference``/``other`` records describe the run;
    ``stochastic``: how stochastic layers ran (``"share"``, ``"off"``, ``"own"``; None without
    any); ``divergence``: where a failing comparison first diverges (:mod:`parity.divergence`).
    """

    steps: list
    tolerances: dict
    worst_abs: dict
    worst_rel: dict
    worst_step: dict
    failing: list
    batches_match: bool
    epochs: list = field(default_factory=list)
    label: str = "A vs B"
    dtype: str = "float64"
    mode: str = "teacher-forced"
    notes: list = field(default_factory=list)
    match: object = None
    reference: list = field(default_factory=list, repr=False)
    other: list = field(default_factory=list, repr=False)
    stochastic: str | None = None
    divergence: object = None

    @property
    def passed(self) -> bool:
        return self.batches_match and not self.failing

    @property
    def quantities(self) -> list[str]:
        """The quantities compared, in the order of ``QUANTITIES`` (then the epoch cost)."""
        found = [q for q in QUANTITIES if q in self.tolerances]
        return found + ([EPOCH_COST] if self.epochs else [])

    def table(self) -> str:
        return present.table(self)

    def verdict(self, label: str | None = None) -> str:
        return present.verdict(self, label or self.label)

    def to_json(self, **meta) -> dict:
        return present.to_json(self, **meta)

    def plot(self, path, title: str | None = None):
        return present.plot(self, title or f"{self.label}, {self.dtype}, {self.mode}", path)


def _largest(values: dict) -> float:
    return max((float(np.abs(v).max()) for v in values.values() if np.size(v)), default=0.0)


def round_off_gradients(record: dict) -> set:
    """The tensors whose gradient in ``record`` is zero up to round-off next to the largest
    gradient (``max|g| <= ZERO_TENSOR_FACTOR * eps * that``): zero in exact arithmetic, e.g. the
    bias of a BatchNorm whose output only reaches another BatchNorm, which removes any constant."""
    grads = record.get("grads") or {}
    scale = _largest(grads)
    return {name for name, g in grads.items() if is_round_off(g, scale)}


def compare_step(a: dict, b: dict) -> StepDiff:
    """Differences of one step's records (``a`` the reference), for the quantities both have.

    Per tensor, normwise (:func:`tensor_difference`); a quantity's figure is its worst tensor's.
    A parameter whose reference gradient is zero up to round-off (:func:`round_off_gradients`)
    is moved by round-off alone on each side, and an optimizer that divides by ``sqrt(v) +
    epsilon`` (Adam) turns that round-off into steps of its own, different on each side: its
    parameters and slots are measured against their quantity's largest tensor, as a tensor that
    is zero in exact arithmetic is. A real difference there still shows: in the gradient itself.
    """
    diff = StepDiff(a["step"], a["cost"], b["cost"])
    diff.abs["cost"], diff.rel["cost"] = difference(a["cost"], b["cost"])
    if "output" in a and "output" in b:
        diff.abs["output"], diff.rel["output"] = difference(a["output"], b["output"])
    driven_by_round_off = round_off_gradients(a)
    replayed = b.get("replayed") or {}
    for quantity in STATE:
        if quantity not in a or quantity not in b:
            continue
        scale = _largest(a[quantity])
        worst_abs = worst_rel = 0.0
        for name, value in a[quantity].items():
            measure = (scaled_difference if quantity != "grads" and name in driven_by_round_off
                       else tensor_difference)
            pair = measure(value, b[quantity][name], scale)
            diff.detail[f"{quantity}/{name}"] = pair
            if name in replayed.get(quantity, {}):
                diff.replayed[f"{quantity}/{name}"] = measure(value, replayed[quantity][name], scale)
            worst_abs, worst_rel = max(worst_abs, pair[0]), max(worst_rel, pair[1])
        diff.abs[quantity], diff.rel[quantity] = worst_abs, worst_rel
    return diff


def explain_by_gradients(steps: list, tolerances: dict) -> list[str]:
    """Where a step's parameters or slots are outside tolerance only through the optimizer.

    An optimizer whose step is per element (Adam divides by ``sqrt(v) + epsilon``) multiplies a
    gradient element's difference by up to ``lr / epsilon`` (bias-corrected). Measured on
    MobileNetV2, Keras 2's default Adam, step 1: a BatchNorm beta's gradient element of 7.7e-6
    (epsilon's effective size at step 1 is 3.2e-6) agreed to 7.6e-15, which Adam multiplies by
    27 into 2.0e-13 on the parameter: 2.0e-10 of a tensor that had moved only ~lr (1e-3) from
    zero, while every gradient agreed to 1e-13. Such a tensor (a ``params``,
    ``m`` or ``v`` tensor outside its tolerance at a step whose gradients are all within theirs)
    is judged by its ``replayed`` figure instead: the same step from the compared side's state
    with the reference's gradients. Teacher-forced that state is the reference's, and the figure
    measures the optimizer's own arithmetic; free-running it also carries the drift of the steps
    before (this step's amplification is what it leaves out). When it is within tolerance for
    every such tensor of the quantity, it replaces their figures in ``steps`` (the own figure
    kept in ``explained``). Returns one note per quantity explained (none without replayed
    records, e.g. the tutorial's traces)."""
    worst = {}
    for s in steps:
        if "grads" not in s.rel or not s.rel["grads"] <= tolerances.get("grads", 0.0):
            continue
        for quantity in ("params", "m", "v"):
            bound = tolerances.get(quantity)
            if bound is None or quantity not in s.rel or s.rel[quantity] <= bound:
                continue
            keys = [k for k in s.detail if k.split("/", 1)[0] == quantity]
            over = [k for k in keys if not s.detail[k][1] <= bound]
            if not all(k in s.replayed and s.replayed[k][1] <= bound for k in over):
                continue
            for k in over:
                s.explained[k], s.detail[k] = s.detail[k], s.replayed[k]
                name = k.split("/", 1)[1]
                gradient = s.detail.get(f"grads/{name}", (0.0, 0.0))[1]
                if s.explained[k][1] > worst.get(quantity, (0.0,))[0]:
                    worst[quantity] = (s.explained[k][1], name, s.step, gradient, s.replayed[k][1])
            s.abs[quantity] = max(s.detail[k][0] for k in keys)
            s.rel[quantity] = max(s.detail[k][1] for k in keys)
    notes = []
    for quantity, (own, name, step, gradient, same) in worst.items():
        count = sum(1 for s in steps for k in s.explained if k.split("/", 1)[0] == quantity)
        notes.append(f"{quantity}: {count} tensor(s) outside tolerance only through the optimizer's "
                     f"per-element step (worst: {name} at step {step}, {own:.1e} from each side's own "
                     f"gradient, whose difference is {gradient:.1e}; {same:.1e} from the same "
                     "gradient, the figure counted): an optimizer dividing by sqrt(v) + epsilon (Adam) turns "
                     "the round-off of a gradient element near epsilon into a visible step")
    return notes


def _same_batches(reference: list, other: list) -> bool:
    """Same steps in the same order and, where both records name their examples, the same ones
    (over the steps both lists have: a shorter run may be compared with a longer one's start)."""
    for a, b in zip(reference, other):
        if a["step"] != b["step"]:
            return False
        if "batch" in a and "batch" in b:
            batch_a, batch_b = np.asarray(a["batch"]), np.asarray(b["batch"])
            if batch_a.shape != batch_b.shape or not np.array_equal(batch_a, batch_b):
                return False
    return True


def compare_records(reference: list, other: list, tolerances: dict, *, epoch_costs=None,
                    **extra) -> Comparison:
    """Compare the records ``other`` with ``reference`` step by step, up to the shorter list;
    the quantities are those both sides recorded.

    ``epoch_costs``: optionally ``(reference's, other's)``, each ``{epoch: cost}``; the epochs
    both have are compared against the cost's tolerance. ``extra``: :class:`Comparison`'s
    descriptive fields (``label``, ``dtype``, ``mode``, ``notes``, ``match``).
    """
    steps = [compare_step(a, b) for a, b in zip(reference, other)]
    explained = explain_by_gradients(steps, tolerances)
    if explained:
        extra["notes"] = list(extra.get("notes") or []) + explained
    present_quantities = [q for q in QUANTITIES if any(q in s.rel for s in steps)]
    worst_abs = dict.fromkeys(present_quantities, 0.0)
    worst_rel = dict.fromkeys(present_quantities, 0.0)
    worst_step = dict.fromkeys(present_quantities, 0)
    for s in steps:
        for q, rel in s.rel.items():
            if rel > worst_rel[q] or rel != rel:
                worst_rel[q], worst_step[q] = rel, s.step
            worst_abs[q] = max(worst_abs[q], s.abs[q])
    bounds = {q: tolerances[q] for q in present_quantities}
    failing = [q for q in present_quantities if not worst_rel[q] <= bounds[q]]
    epochs = []
    if epoch_costs is not None:
        costs_a, costs_b = epoch_costs
        for epoch in sorted(set(costs_a) & set(costs_b)):
            max_abs, rel = difference(costs_a[epoch], costs_b[epoch])
            epochs.append((epoch, float(costs_a[epoch]), float(costs_b[epoch]), max_abs, rel))
        if epochs:
            worst = max(epochs, key=lambda row: row[4] if row[4] == row[4] else float("inf"))
            bounds[EPOCH_COST] = tolerances["cost"]
            worst_abs[EPOCH_COST], worst_rel[EPOCH_COST] = max(row[3] for row in epochs), worst[4]
            worst_step[EPOCH_COST] = f"epoch {worst[0]}"
            if not worst[4] <= bounds[EPOCH_COST]:
                failing.append(EPOCH_COST)
    return Comparison(steps, bounds, worst_abs, worst_rel, worst_step, failing,
                      _same_batches(reference, other), epochs,
                      reference=list(reference), other=list(other), **extra)


def compare(a, b, tolerances: dict, **extra) -> Comparison:
    """Compare :class:`parity.trace.Trace` ``b`` with reference ``a``: their records and the
    epoch costs both reported."""
    extra.setdefault("label", f"{a.impl} vs {b.impl}")
    extra.setdefault("dtype", a.config.dtype)
    return compare_records(a.records, b.records, tolerances,
                           epoch_costs=(dict(a.epoch_costs), dict(b.epoch_costs)), **extra)
