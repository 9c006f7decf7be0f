"""The benchmark (``python -m benchmarks``) and the fast path it times (``torch_port.fast``).

The fast path's promise is "same numbers, bit for bit" as the readable idiomatic loop, so
those tests compare with ``==``, not a tolerance.
"""

from __future__ import annotations

import copy
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
from signs import convert_to_one_hot, flatten
from signs.data import load_from
from signs.weights import load_initial_parameters
from torch_port import nn_model
from torch_port.fast import tf_adam_flat
from torch_port.optim import TFAdam

PROG = "python -m benchmarks"


# --------------------------------------------------------------------------- the command line

def test_benchmark_runs_and_writes_json(tmp_path, small_data_dir):
    out = tmp_path / "bench.json"
    impls = ["torch-line-by-line", "torch-idiomatic"]
    result = run_cli("benchmarks", "--epochs", "1", "--repeats", "1", "--impls", ",".join(impls),
                     "--data", "auto", "--data-dir", small_data_dir, "--json", out)
    assert result.returncode == 0, result.stderr
    assert "floor (GEMMs + Adam)" in result.stdout and "torch-idiomatic" in result.stdout
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


def test_a_bad_argument_exits_2_with_one_line():
    result = run_cli("benchmarks", "--impls", "torch-fast,nope")
    line = assert_one_line_error(result.returncode, result.stderr, PROG)
    assert "nope" in line and "torch-idiomatic" in line  # names the culprit and the choices


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


# --------------------------------------------------------------------------- the fast path: same bits

@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_flat_adam_update_is_tf_adam_step_bit_for_bit(dtype):
    gen = torch.Generator().manual_seed(0)
    shapes = [(25, 12288), (25,), (12, 25), (12,), (6, 12), (6,)]
    params = [torch.nn.Parameter(torch.randn(s, generator=gen, dtype=dtype) * 0.1) for s in shapes]
    flat = [p.detach().clone().reshape(-1) for p in params]
    reference = TFAdam(params, lr=1e-4)
    p = torch.cat(flat)
    m, v, scratch = torch.zeros_like(p), torch.zeros_like(p), torch.empty_like(p)
    flat_adam = TFAdam([torch.nn.Parameter(torch.zeros(1, dtype=dtype))], lr=1e-4)  # constants only
    group = flat_adam.param_groups[0]
    for _ in range(3):
        for q in params:
            q.grad = torch.randn(q.shape, generator=gen, dtype=dtype) * 1e-3
        g = torch.cat([q.grad.reshape(-1) for q in params])
        constants = flat_adam._constants(group, dtype)
        reference.step()
        tf_adam_flat(p, g, m, v, scratch, *constants)
        flat_adam._finish(group)
    assert torch.equal(p, torch.cat([q.detach().reshape(-1) for q in params]))
    assert torch.equal(m, torch.cat([reference.state[q]["m"].reshape(-1) for q in params]))
    assert torch.equal(v, torch.cat([reference.state[q]["v"].reshape(-1) for q in params]))


@pytest.fixture(scope="module")
def tutorial_arrays(synthetic_dir):
    train_x, train_y, test_x, test_y, _ = load_from(synthetic_dir)
    return flatten(train_x), convert_to_one_hot(train_y, 6), flatten(test_x), convert_to_one_hot(test_y, 6)


class _Stop(Exception):
    pass


def _first_records(arrays, dtype, fast, steps=3):
    records = []

    def hook(record):
        records.append(record)
        if len(records) == steps:
            raise _Stop
        if len(records) == 2:  # teacher forcing goes through the fast path's views too
            return {"params": {k: v * 1.001 for k, v in record["params"].items()},
                    "m": record["m"], "v": {k: v * 0.5 for k, v in record["v"].items()}}
        return None

    with pytest.raises(_Stop):
        nn_model.train(*arrays, num_epochs=1, print_cost=False, dtype=dtype, hook=hook, fast=fast)
    return records


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_fast_train_hook_records_are_the_readable_loops(tutorial_arrays, torch_one_thread, dtype):
    slow = _first_records(tutorial_arrays, dtype, fast=False)
    fast = _first_records(tutorial_arrays, dtype, fast=True)
    for a, b in zip(slow, fast):
        assert a["step"] == b["step"] and np.array_equal(a["batch"], b["batch"])
        for key in ("output", "cost"):
            assert np.array_equal(a[key], b[key]), key
        for key in ("grads", "params", "m", "v"):
            for name in a[key]:
                assert np.array_equal(a[key][name], b[key][name]), (key, name)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_fast_train_two_epochs_are_the_readable_loops(tutorial_arrays, torch_one_thread, dtype):
    runs = []
    for fast in (False, True):
        epoch_costs: list[float] = []
        params, _ = nn_model.train(*tutorial_arrays, num_epochs=2, print_cost=False, dtype=dtype,
                                   fast=fast, on_epoch_end=lambda epoch, cost, *_, out=epoch_costs:
                                   out.append(cost))
        runs.append((params, epoch_costs))
    (slow_params, slow_costs), (fast_params, fast_costs) = runs
    for name in slow_params:
        assert np.array_equal(slow_params[name], fast_params[name]), name
    assert len(slow_costs) == 2 and slow_costs == fast_costs


def test_fast_train_refuses_torch_adam(tutorial_arrays):
    with pytest.raises(ValueError, match="TF1's Adam"):
        nn_model.train(*tutorial_arrays, num_epochs=1, print_cost=False, optimizer="adam", fast=True)


def test_fast_train_resumes_bit_for_bit(tutorial_arrays, torch_one_thread):
    """A checkpoint taken from the fast path (its optimizer state is views of flat buffers)
    resumes in either path exactly where an uninterrupted run would be."""
    saved = {}

    def on_epoch_end(epoch, cost, get_parameters, optimizer, costs):
        if epoch == 0:
            state = copy.deepcopy(optimizer.state_dict())
            saved.update(epoch=1, parameters=get_parameters(), optimizer=state, costs=list(costs))

    whole, _ = nn_model.train(*tutorial_arrays, num_epochs=2, print_cost=False, dtype="float64",
                              fast=True, on_epoch_end=on_epoch_end)
    for fast in (True, False):
        resumed, _ = nn_model.train(*tutorial_arrays, num_epochs=2, print_cost=False, dtype="float64",
                                    fast=fast, resume=saved)
        for name in whole:
            assert np.array_equal(whole[name], resumed[name]), (fast, name)
