"""The benchmark (``python -m benchmarks``): its command line, clock and yardsticks.

The fast path it times is tested against the readable loop in ``tests/test_model_torch.py``.
"""

from __future__ import annotations

import json
import math
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from signs_testing import REPO_ROOT, assert_one_line_error, run_cli

# An editable install made before benchmarks/ existed does not map it; `python -m pytest`
# has the repository on sys.path anyway, the bare `pytest` script does not.
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from benchmarks.cli import entry
from benchmarks.floor import epoch_batches
from benchmarks.runner import EpochClock, epoch_seconds, full_batch_cost, max_relative_difference
from signs import convert_to_one_hot
from signs.weights import load_initial_parameters

PROG = "python -m benchmarks"


# --------------------------------------------------------------------------- the command line

def test_benchmark_runs_and_writes_json(tmp_path, small_data_dir):
    out = tmp_path / "bench.json"
    impls = ["line-by-line", "idiomatic"]
    result = run_cli("benchmarks", "--epochs", "1", "--repeats", "1", "--impls", ",".join(impls),
                     "--data", "auto", "--data-dir", small_data_dir, "--json", out)
    assert result.returncode == 0, result.stderr
    assert "floor (GEMMs + Adam)" in result.stdout and "idiomatic" in result.stdout
    doc = json.loads(out.read_text())
    assert set(doc["implementations"]) == set(impls)
    for name in impls:
        figures = doc["implementations"][name]
        assert figures["seconds_per_epoch"] > 0 and figures["seconds_per_epoch_median"] > 0
        assert figures["steps_per_epoch"] == 3  # 96 examples in batches of 32
        assert math.isfinite(figures["final_cost"])
    # the two ports compute the same model: after one epoch their float32 results agree
    costs = [doc["implementations"][name]["final_cost"] for name in impls]
    assert costs[0] == pytest.approx(costs[1], rel=1e-5)
    assert doc["floor"]["seconds_per_epoch"] > 0
    assert doc["machine"]["cores"] >= 1 and doc["machine"]["torch"] == torch.__version__
    # the physical limit: a row, and every implementation's distance to it
    assert "physical limit" in result.stdout and "x limit" in result.stdout
    limit = doc["limit"]["seconds_per_epoch"]
    assert 0 < limit < doc["floor"]["seconds_per_epoch"]
    for name in impls:
        figures = doc["implementations"][name]
        assert figures["ratio_to_limit"] == pytest.approx(figures["seconds_per_epoch"] / limit)


def test_epoch_work_counts_the_tutorials_flops_and_bytes():
    from benchmarks.limit import epoch_work

    work = epoch_work(1080, 32, dtype=torch.float32)
    layers = 12288 * 25 + 25 * 12 + 12 * 6
    # forward and weight gradients of every layer, input gradients of layers 2 and 3
    assert work["flops"] == 1080 * (2 * 2 * layers + 2 * (25 * 12 + 12 * 6))
    assert work["data_bytes"] == 1080 * 12288 * 4  # the data set read once per epoch
    parameters = layers + 25 + 12 + 6
    assert work["steps"] == 34 and work["adam_bytes"] == 34 * 7 * parameters * 4


def test_a_bad_argument_exits_2_with_one_line():
    result = run_cli("benchmarks", "--impls", "fast,nope")
    line = assert_one_line_error(result.returncode, result.stderr, PROG)
    assert "nope" in line and "idiomatic" in line  # names the culprit and the choices


@pytest.mark.parametrize("argv", [["--epochs", "0"], ["--repeats", "x"], ["--device", "tpu"],
                                  ["--impls", ","], ["--threads", "-1"]])
def test_bad_arguments_in_process(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        entry(argv)
    assert_one_line_error(exit_info.value.code, capsys.readouterr().err, PROG)


def test_json_into_a_missing_directory_is_one_line(tmp_path, capsys):
    code = entry(["--json", str(tmp_path / "no" / "such" / "dir" / "b.json")])
    line = assert_one_line_error(code, capsys.readouterr().err, PROG)
    assert "does not exist" in line


# --------------------------------------------------------------------------- timing helpers

def test_epoch_seconds_drop_the_first_epoch_and_the_evaluation():
    # epoch starts at 0, 1, 3, 6; the call ends at 10 (the last epoch and the evaluation)
    assert epoch_seconds([0.0, 1.0, 3.0, 6.0], 10.0) == [2.0, 3.0]
    assert epoch_seconds([0.0, 1.0], 4.0) == [3.0]
    assert epoch_seconds([0.0], 4.0) == [4.0]


def test_epoch_clock_wraps_and_restores():
    class Module:
        @staticmethod
        def shuffle(x):
            return x * 2

    original = Module.shuffle
    with EpochClock(Module, "shuffle") as clock:
        assert Module.shuffle(3) == 6 and Module.shuffle(4) == 8
    assert len(clock.starts) == 2 and clock.starts[0] <= clock.starts[1]
    assert Module.shuffle is original


def test_epoch_batches():
    assert epoch_batches(1080, 32) == [32] * 33 + [24]
    assert epoch_batches(96, 32) == [32] * 3


def test_full_batch_cost_matches_torch_cross_entropy():
    rng = np.random.default_rng(0)
    params = load_initial_parameters("float64")
    X = rng.random((12288, 50))
    Y = convert_to_one_hot(rng.integers(0, 6, (1, 50)), 6)
    t = {k: torch.from_numpy(v) for k, v in params.items()}
    A1 = torch.relu(t["W1"] @ torch.from_numpy(X) + t["b1"])
    Z3 = t["W3"] @ torch.relu(t["W2"] @ A1 + t["b2"]) + t["b3"]
    expected = F.cross_entropy(Z3.T, torch.from_numpy(Y.argmax(0))).item()
    assert full_batch_cost(params, X, Y) == pytest.approx(expected, rel=1e-12)


def test_max_relative_difference_is_normwise():
    a = {"W": np.array([1.0, 100.0]), "b": np.array([0.0, 1e-9])}
    b = {"W": np.array([1.5, 100.0]), "b": np.array([0.0, 2e-9])}
    # W: 0.5 / 100; b: 1e-9 / 2e-9 = 0.5 (normwise per tensor, worst tensor wins)
    assert max_relative_difference(a, b) == pytest.approx(0.5)
