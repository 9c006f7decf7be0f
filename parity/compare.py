"""Normwise differences between two traces, per quantity per step, against the tolerances."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from parity.tolerances import QUANTITIES
from parity.trace import STATE, Trace


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


@dataclass
class StepDiff:
    """One step: ``abs``/``rel`` per quantity, and ``detail`` per tensor (``grads/W1`` ...)."""

    step: int
    cost_a: float
    cost_b: float
    abs: dict = field(default_factory=dict)
    rel: dict = field(default_factory=dict)
    detail: dict = field(default_factory=dict)


@dataclass
class Comparison:
    """A whole comparison: per-step differences, the worst of each quantity, the verdict."""

    steps: list
    tolerances: dict
    worst_abs: dict
    worst_rel: dict
    worst_step: dict
    failing: list
    batches_match: bool

    @property
    def passed(self) -> bool:
        return self.batches_match and not self.failing


def compare_step(a: dict, b: dict) -> StepDiff:
    """Differences of two records of the same step (``a`` the reference)."""
    diff = StepDiff(a["step"], a["cost"], b["cost"])
    diff.abs["cost"], diff.rel["cost"] = difference(a["cost"], b["cost"])
    if "params" in a and "params" in b:
        diff.abs["output"], diff.rel["output"] = difference(a["output"], b["output"])
        for quantity in STATE:
            worst_abs = worst_rel = 0.0
            for name in a[quantity]:
                pair = difference(a[quantity][name], b[quantity][name])
                diff.detail[f"{quantity}/{name}"] = pair
                worst_abs, worst_rel = max(worst_abs, pair[0]), max(worst_rel, pair[1])
            diff.abs[quantity], diff.rel[quantity] = worst_abs, worst_rel
    return diff


def compare(a: Trace, b: Trace, tolerances: dict) -> Comparison:
    """Compare trace ``b`` with reference ``a`` step by step, up to the shorter one."""
    steps, batches_match = [], True
    worst_abs = dict.fromkeys(QUANTITIES, 0.0)
    worst_rel = dict.fromkeys(QUANTITIES, 0.0)
    worst_step = dict.fromkeys(QUANTITIES, 0)
    for ra, rb in zip(a.records, b.records):
        if ra["batch"].shape != rb["batch"].shape or not np.array_equal(ra["batch"], rb["batch"]):
            batches_match = False
        diff = compare_step(ra, rb)
        steps.append(diff)
        for quantity, rel in diff.rel.items():
            if rel > worst_rel[quantity] or (rel != rel):
                worst_rel[quantity], worst_step[quantity] = rel, diff.step
            worst_abs[quantity] = max(worst_abs[quantity], diff.abs[quantity])
    failing = [q for q in QUANTITIES if not worst_rel[q] <= tolerances[q]]
    return Comparison(steps, tolerances, worst_abs, worst_rel, worst_step, failing, batches_match)
