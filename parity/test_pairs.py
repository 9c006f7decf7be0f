"""Step parity between every pair of registered implementations, both dtypes, both modes.

The first steps of every pair (forward output, cost, gradients, parameters and Adam moments
after each step), and a whole epoch (34 steps) of every torch implementation against the TF1
original, with the epoch cost each prints. The implementations come from the registry
(``signs/implementations.py``), so a new one is tested here without touching this file.
Tolerances come from parity/tolerances.py, where each is justified.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from parity.compare import EPOCH_COST, compare
from parity.conftest import requires_tf
from parity.tolerances import QUANTITIES, tolerances_for
from parity.trace import RunConfig
from signs.implementations import DEFAULT_TORCH, NAMES, names, torch_optimizer_for

PAIRS = list(itertools.combinations(NAMES, 2))
TORCH = names("torch")
# A whole epoch for every torch implementation but fast-exact, which is idiomatic's bits exactly
# (tests/test_model_torch.py asserts it with ==) and goes through the first steps above; in float32
# the free-running epoch is left to the golden comparison (10 epochs), and idiomatic's float32 epoch
# to fast's (the same kernels but Adam's).
EPOCH_CASES = [(impl, dtype, mode) for impl in TORCH if impl != "fast-exact"
               for dtype, mode in (("float64", "teacher-forced"), ("float64", "free-running"),
                                   ("float32", "teacher-forced"))
               if (impl, dtype) != ("idiomatic", "float32")]
FIRST_STEPS = 3
EPOCH_STEPS = 34


def pair_traces(traces, pair, dtype, mode, steps):
    requires_tf(pair)
    config = RunConfig(steps=steps, dtype=dtype, torch_optimizer=torch_optimizer_for(pair))
    reference = traces.get(pair[0], config)
    teacher = reference if mode == "teacher-forced" else None
    return reference, traces.get(pair[1], config, teacher=teacher)


def assert_parity(reference, other, dtype, mode, pair):
    result = compare(reference, other, tolerances_for(dtype, mode, pair))
    assert result.batches_match, "the two sides saw different mini-batches"
    assert len(result.steps) == len(reference.records)
    for step in result.steps:  # every step was compared on every quantity
        assert set(step.rel) == set(QUANTITIES), step.step
    worst = {q: f"{result.worst_rel[q]:.1e} (tol {result.tolerances[q]:.0e})" for q in result.quantities}
    assert result.passed, f"{pair} {dtype} {mode}: {worst}"
    return result


@pytest.mark.parametrize("mode", ["teacher-forced", "free-running"])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("pair", PAIRS, ids=[f"{a}-vs-{b}" for a, b in PAIRS])
def test_first_steps_of_every_pair(traces, pair, dtype, mode):
    reference, other = pair_traces(traces, pair, dtype, mode, FIRST_STEPS)
    assert_parity(reference, other, dtype, mode, pair)


@pytest.mark.parametrize("impl,dtype,mode", EPOCH_CASES, ids=["-".join(case) for case in EPOCH_CASES])
def test_one_epoch_tf1_vs_every_torch_implementation(traces, impl, dtype, mode):
    """A whole epoch, so the epoch cost each side prints (and returns for the plot) is compared:
    the original's quirk (divide by the 33 full batches, though 34 run) must be kept."""
    pair = ("tf1", impl)
    reference, other = pair_traces(traces, pair, dtype, mode, EPOCH_STEPS)
    result = assert_parity(reference, other, dtype, mode, pair)
    assert [row[0] for row in result.epochs] == [0], "the epoch cost was not compared"
    assert EPOCH_COST in result.quantities
    # what the port printed is what it returned (TF1's epoch cost is the notebook's model()'s, bit
    # for bit: tests/test_model_tf.py; its trace comes from the graph, where nothing is printed)
    assert f"Cost after epoch 0: {other.epoch_costs[0][1]:f}" in other.printed, other.impl
    if dtype == "float64":  # round-off level, far inside the stated tolerance
        assert max(result.worst_rel.values()) < 1e-12


def test_the_cli_default_is_tested():
    assert DEFAULT_TORCH in TORCH and ("tf1", DEFAULT_TORCH) in PAIRS


def test_float64_is_not_trivially_equal(traces):
    """The sides really are different code: float32 differs, float64 differs by round-off only."""
    requires_tf(("tf1",))
    for dtype in ("float32", "float64"):
        reference, other = pair_traces(traces, ("tf1", "line-by-line"), dtype, "free-running", EPOCH_STEPS)
        last_a, last_b = reference.records[-1]["params"]["W1"], other.records[-1]["params"]["W1"]
        assert not np.array_equal(last_a, last_b), dtype


def test_torch_optim_adam_is_caught(traces):
    """torch.optim.Adam instead of TF1's formula: the parameters fail, visibly, even in float64."""
    requires_tf(("tf1",))
    config = RunConfig(steps=FIRST_STEPS, dtype="float64", torch_optimizer="adam")
    reference = traces.get("tf1", RunConfig(steps=FIRST_STEPS, dtype="float64"))
    other = traces.get("line-by-line", config, teacher=reference)
    result = compare(reference, other, tolerances_for("float64", "teacher-forced", ("tf1", "line-by-line")))
    assert not result.passed
    assert "params" in result.failing
    assert result.worst_rel["params"] > 1e-4  # a formula difference, not round-off
    assert result.worst_rel["grads"] <= result.tolerances["grads"]  # teacher forcing isolates it
