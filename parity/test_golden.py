"""Golden TF1 traces: still equal to live TF (CPU), and the torch port against them (CPU, CUDA).

The goldens let a machine without TensorFlow (the GPU machine) check the port against the
original. If a golden no longer matches live TF, regenerate it with ``make golden``.
"""

from __future__ import annotations

import pytest

from parity import golden
from parity.compare import compare, difference
from parity.tolerances import GOLDEN_LONG, tolerances_for
from parity.trace import RunConfig, run
from signs.implementations import DEFAULT_TORCH, names

TORCH = names("torch")
# fast-exact is idiomatic's bits exactly (tests/test_model_torch.py), so it adds nothing here;
# idiomatic's 10 epochs are slow-marked (make test-all): the default (fast) and the line-by-line
# port run here, idiomatic's first steps and first epoch in test_pairs.py.
GOLDEN_TORCH = [pytest.param(impl, marks=[pytest.mark.slow] if impl == "idiomatic" else [])
                for impl in TORCH if impl != "fast-exact"]
DTYPES = ["float32", "float64"]


@pytest.fixture(scope="module")
def goldens(data):
    return {dtype: golden.load_tutorial(data, dtype) for dtype in DTYPES}


def test_goldens_are_small_enough_to_commit():
    total = sum(golden.tutorial_path(dtype).stat().st_size for dtype in DTYPES)
    assert total <= 10 * 1024 * 1024, total


@pytest.mark.parametrize("dtype", DTYPES)
def test_golden_matches_live_tensorflow(data, goldens, dtype):
    pytest.importorskip("tensorflow", reason="TensorFlow is not installed: cannot check the goldens "
                        "against live TF here (CI does)")
    short = RunConfig(steps=golden.STEPS_PER_EPOCH, dtype=dtype, full_steps=golden.FULL_STEPS,
                      every=golden.STEPS_PER_EPOCH)
    live = golden.sampled(run("tf1", data, short))
    # Same program, same machine class: float64 must agree to round-off; float32 to the
    # free-running bound (oneDNN may pick other kernels on another CPU).
    result = compare(goldens[dtype], live, tolerances_for(dtype, "free-running", ("tf1", "tf1")))
    assert result.batches_match
    assert result.passed, {q: result.worst_rel[q] for q in result.failing}


def check_torch_against_golden(data, gold, dtype, device, impl=DEFAULT_TORCH):
    config = golden.tutorial_config(dtype)
    config.device = device
    mine = golden.sampled(run(impl, data, config))
    first = RunConfig(steps=golden.FULL_STEPS, dtype=dtype)
    head = compare(type(gold)(gold.impl, first, gold.records[:golden.FULL_STEPS]),
                   type(mine)(mine.impl, first, mine.records[:golden.FULL_STEPS]),
                   tolerances_for(dtype, "free-running", ("tf1", impl)))
    assert head.batches_match
    assert head.passed, {q: head.worst_rel[q] for q in head.failing}
    bounds = GOLDEN_LONG[dtype]
    cost = max(difference(a["cost"], b["cost"])[1] for a, b in zip(gold.records, mine.records))
    params = max(difference(a["params"][name], b["params"][name])[1]
                 for a, b in zip(gold.records, mine.records) if "params" in a
                 for name in a["params"])
    assert len(mine.records) == len(gold.records) == golden.LONG_EPOCHS * golden.STEPS_PER_EPOCH
    assert cost <= bounds["cost"], cost
    assert params <= bounds["params"], params
    return cost, params


@pytest.mark.parametrize("impl", GOLDEN_TORCH)
@pytest.mark.parametrize("dtype", DTYPES)
def test_torch_cpu_matches_golden(data, goldens, dtype, impl):
    """Every torch implementation, the CLI's default (the fast path) included, free-running for
    10 epochs against the committed TF1 trace."""
    check_torch_against_golden(data, goldens[dtype], dtype, "cpu", impl)


@pytest.mark.gpu
@pytest.mark.parametrize("impl", TORCH)
@pytest.mark.parametrize("dtype", DTYPES)
def test_torch_cuda_matches_golden(data, goldens, dtype, impl, cuda_full_float32):
    cost, params = check_torch_against_golden(data, goldens[dtype], dtype, "cuda", impl)
    print(f"CUDA {impl} vs TF1 golden, {dtype}: cost {cost:.2e}, params {params:.2e} (max normwise rel.)")
