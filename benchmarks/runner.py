"""Run the implementations in one process, alternating them, and collect their timings.

Timing: **seconds per epoch = the interval between the starts of consecutive epochs**, taken
by :class:`EpochClock` (a timestamp at each call of the implementation's per-epoch shuffle).
So graph/model construction, data conversion and the final accuracy evaluation are never
counted, and the first epoch (graph tracing, first-call allocations) is dropped: with
``E >= 3`` epochs a run yields the ``E - 2`` intervals between epoch starts 1, 2, ... E-1
(each interval is one whole epoch: shuffle, gather, every step, the epoch cost). With
``E == 2`` the one interval runs from the start of epoch 1 to the end of the call (it then
includes the final evaluation); with ``E == 1`` it includes the first epoch's warm-up as
well (a smoke test, flagged in the JSON).
"""

from __future__ import annotations

import importlib
import statistics
import time
from dataclasses import dataclass, field

import numpy as np


class EpochClock:
    """Context manager: wraps ``module.<name>`` so every call records ``time.perf_counter()``.

    The wrapper calls the original with the same arguments and returns its result; the
    attribute is restored on exit.
    """

    def __init__(self, module, name: str):
        self.module, self.name = module, name
        self.starts: list[float] = []

    def __enter__(self):
        self.original = getattr(self.module, self.name)

        def timed(*args, **kwargs):
            self.starts.append(time.perf_counter())
            return self.original(*args, **kwargs)

        setattr(self.module, self.name, timed)
        return self

    def __exit__(self, *exc):
        setattr(self.module, self.name, self.original)
        return False


def epoch_seconds(starts: list[float], end: float) -> list[float]:
    """Per-epoch seconds from the epoch start times and the end of the call (see module doc)."""
    if len(starts) >= 3:
        return list(np.diff(starts[1:]))
    if len(starts) == 2:
        return [end - starts[1]]
    return [end - starts[0]] if starts else []


@dataclass
class Result:
    """Everything measured for one implementation (or the floor) over all repeats."""

    name: str
    device: str
    steps_per_epoch: int
    epoch_seconds: list[float] = field(default_factory=list)  # every measured epoch, all repeats
    run_seconds: list[float] = field(default_factory=list)    # per run: median of its epochs
    parameters: dict | None = None
    final_cost: float | None = None
    warmup_included: bool = False

    @property
    def best(self) -> float:
        return min(self.epoch_seconds)

    @property
    def median(self) -> float:
        return statistics.median(self.epoch_seconds)

    def add_run(self, seconds: list[float]) -> None:
        self.epoch_seconds.extend(seconds)
        self.run_seconds.append(statistics.median(seconds))


def run_once(impl, module, data, *, epochs: int, dtype: str, device: str):
    """Train ``impl`` (a :class:`signs.implementations.Implementation` whose ``module`` is
    loaded) once; return ``(per-epoch seconds, parameters)``."""
    X, Y, X_test, Y_test = data
    marker_module, marker = impl.epoch_marker.rsplit(".", 1)
    kwargs = {"num_epochs": epochs, "print_cost": False, "dtype": dtype}
    if impl.framework == "torch":
        kwargs["device"] = device
    with EpochClock(importlib.import_module(marker_module), marker) as clock:
        parameters, _ = impl.trainer(module)(X, Y, X_test, Y_test, **kwargs)
        end = time.perf_counter()
    return epoch_seconds(clock.starts, end), parameters


def full_batch_cost(parameters: dict, X: np.ndarray, Y: np.ndarray) -> float:
    """Mean softmax cross-entropy of ``parameters`` on all of ``X`` (12288, m), one-hot ``Y``
    (6, m), in float64 NumPy: the same yardstick for every implementation."""
    p = {k: np.asarray(v, dtype=np.float64) for k, v in parameters.items()}
    A1 = np.maximum(p["W1"] @ X + p["b1"], 0)
    A2 = np.maximum(p["W2"] @ A1 + p["b2"], 0)
    Z3 = p["W3"] @ A2 + p["b3"]
    shifted = Z3 - Z3.max(axis=0, keepdims=True)
    log_softmax = shifted - np.log(np.exp(shifted).sum(axis=0, keepdims=True))
    return float(-(Y * log_softmax).sum(axis=0).mean())


def max_relative_difference(a: dict, b: dict) -> float:
    """Largest normwise relative difference ``max|a-b| / max|b|`` over the parameter tensors."""
    worst = 0.0
    for name, ref in b.items():
        ref = np.asarray(ref, dtype=np.float64)
        diff = np.max(np.abs(np.asarray(a[name], dtype=np.float64).reshape(ref.shape) - ref))
        worst = max(worst, float(diff / max(np.max(np.abs(ref)), np.finfo(float).tiny)))
    return worst
