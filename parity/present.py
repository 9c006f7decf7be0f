"""How a :class:`parity.compare.Comparison` is shown: the table, the verdict line, JSON, the plot.

One presentation for every comparison the harness makes (the tutorial's report, your own
Keras model and torch port, the goldens).
"""

from __future__ import annotations

import io
import math
from pathlib import Path

from tabulate import tabulate

from signs.files import atomic_write

REPORT_FORMAT_VERSION = 1


def _quantities(result) -> list:
    """The comparison's quantities, then any extra one the harness added (``moving mean``)."""
    shown = list(result.quantities)
    return shown + [q for q in result.tolerances if q not in shown and q in result.worst_rel]


def table(result) -> str:
    """Per quantity: max abs diff, max rel diff, at which step, tolerance, ok/FAIL; then, for a
    failing pair, where it diverges (:mod:`parity.divergence`)."""
    explained = {key.split("/", 1)[0] for s in result.steps for key in s.explained}
    rows = [[q, f"{result.worst_abs[q]:.3e}", f"{result.worst_rel[q]:.3e}", result.worst_step[q],
             f"{result.tolerances[q]:.0e}", ("ok*" if q in explained else "ok") if q not in result.failing
             else "FAIL"]
            for q in _quantities(result)]
    text = tabulate(rows, headers=["quantity", "max abs diff", "max rel diff", "at step", "tolerance", "ok"])
    if explained:
        text += ("\n* figures from the same step replayed with the reference's gradients, where the "
                 "optimizer's per-element step amplified gradient round-off (see the notes)")
    divergence = result.divergence
    return text if divergence is None or result.passed else f"{text}\n\n{divergence.table()}"


def verdict(result, label: str) -> str:
    """One line: PASS/FAIL, what was compared, and what is outside tolerance."""
    if result.passed:
        detail = "every quantity within tolerance"
    else:
        detail = f"outside tolerance: {', '.join(result.failing) or 'the steps or mini-batches differ'}"
        divergence = result.divergence
        if divergence is not None:
            detail += f"; {divergence.line()}"
    return (f"{'PASS' if result.passed else 'FAIL'}: {label}, {result.dtype} {result.mode}, "
            f"{len(result.steps)} steps: {detail}")


def _finite(x):
    return x if not isinstance(x, float) or math.isfinite(x) else str(x)


def to_json(result, **meta) -> dict:
    """The figures of a comparison as JSON-ready data, with ``meta`` (e.g. ``pair``) added."""
    quantities = _quantities(result)
    document = {
        "format_version": REPORT_FORMAT_VERSION,
        "passed": result.passed,
        "dtype": result.dtype,
        "mode": result.mode,
        **({"notes": list(result.notes)} if result.notes else {}),
        **meta,
        "steps_run": len(result.steps),
        "batches_match": result.batches_match,
        "tolerances": {q: result.tolerances[q] for q in quantities},
        "worst": {q: {"max_abs_diff": _finite(result.worst_abs[q]),
                      "max_rel_diff": _finite(result.worst_rel[q]),
                      "step": result.worst_step[q]} for q in quantities},
        "failing": list(result.failing),
        "steps": [{"step": s.step, "cost_a": s.cost_a, "cost_b": s.cost_b,
                   "max_abs_diff": {q: _finite(v) for q, v in s.abs.items()},
                   "max_rel_diff": {q: _finite(v) for q, v in s.rel.items()},
                   **({"explained": {k: _finite(own[1]) for k, own in s.explained.items()}}
                      if s.explained else {})}
                  for s in result.steps],
    }
    if result.stochastic:
        document["stochastic"] = result.stochastic
    if result.divergence is not None and not result.passed:
        document["divergence"] = result.divergence.to_json()
    if result.epochs:
        document["epoch_costs"] = [{"epoch": e, "cost_a": a, "cost_b": b, "max_abs_diff": _finite(d),
                                    "max_rel_diff": _finite(r)} for e, a, b, d, r in result.epochs]
    return document


def plot(result, title: str, path) -> Path:
    """Each quantity's relative difference against the step, log scale, tolerances dashed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(7, 4.5))
    for index, q in enumerate(_quantities(result)):
        points = [(s.step, s.rel[q]) for s in result.steps if q in s.rel]
        if not points:
            continue
        steps, values = zip(*points)
        color = f"C{index}"
        # A log axis cannot show 0: steps where both sides agree exactly are left as gaps.
        axes.plot(steps, [v if v > 0 else float("nan") for v in values], marker=".", color=color, label=q)
        axes.axhline(result.tolerances[q], color=color, linestyle="--", linewidth=0.7)
    axes.set_yscale("log")
    axes.set_xlabel("training step (gaps: bit-identical; dashed: tolerances)")
    axes.set_ylabel("max |a - b| / max |a|  (normwise)")
    axes.set_title(title)
    axes.legend(fontsize=8, ncol=3)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    plt.close(figure)
    atomic_write(path, lambda handle: handle.write(buffer.getvalue()))
    return Path(path)
