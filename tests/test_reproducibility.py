"""Same seed, same implementation, same device: bit-identical costs and weights, run after run.

Two float32 runs of 2 epochs on the synthetic set for each torch implementation; every step's
cost and the final weights must agree to the last bit. Reproducibility across an interruption
(``--resume`` after SIGINT or SIGKILL ends with the uninterrupted run's weights, bit for bit)
is tested in ``test_faults.py``. The settings this relies on are in ``docs/errors.md``.
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from signs import convert_to_one_hot, flatten, load_dataset  # noqa: E402
from torch_port import model as port  # noqa: E402
from torch_port import nn_model  # noqa: E402

pytestmark = pytest.mark.usefixtures("torch_one_thread")


@pytest.fixture(scope="module")
def arrays(synthetic_dir):
    train_x, train_y, test_x, test_y, _ = load_dataset(synthetic_dir, "auto", notify=None)
    return flatten(train_x), convert_to_one_hot(train_y, 6), flatten(test_x), convert_to_one_hot(test_y, 6)


def _run(train, arrays):
    """One run: (every step's cost as float32 bytes, final parameters)."""
    costs = []

    def hook(record):
        costs.append(np.asarray(record["cost"]).tobytes())

    parameters, _ = train(*arrays, num_epochs=2, print_cost=False, dtype="float32", seed=3, hook=hook)
    return costs, parameters


@pytest.mark.parametrize("train", [port.model, nn_model.train], ids=["line-by-line", "idiomatic"])
def test_two_runs_are_bit_identical(train, arrays):
    first_costs, first = _run(train, arrays)
    second_costs, second = _run(train, arrays)
    assert len(first_costs) == 2 * 34  # 1080 examples in batches of 32: 34 steps per epoch
    assert first_costs == second_costs
    assert sorted(first) == sorted(second) == ["W1", "W2", "W3", "b1", "b2", "b3"]
    for name in first:
        assert first[name].dtype == np.float32
        assert first[name].tobytes() == second[name].tobytes(), name


def test_a_different_seed_changes_the_run(arrays):
    """The check above can fail: another data-order seed gives other costs."""
    costs, _ = _run(port.model, arrays)
    other = []
    port.model(*arrays, num_epochs=1, print_cost=False, dtype="float32", seed=4,
               hook=lambda record: other.append(np.asarray(record["cost"]).tobytes()))
    assert other != costs[:34]
