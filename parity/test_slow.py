"""The full tutorial run, 1500 epochs free-running, TF1 vs the torch port: the final drift.

Slow (about 3 minutes per implementation and dtype on a 2-core CPU): ``make test-all`` or
``pytest -m slow parity``. Runs both sides through their public ``model()`` (no hook, full
speed) from the same weights on the same data, then compares the epoch costs recorded every 5
epochs and the final parameters.
"""

from __future__ import annotations

import pytest

from parity.compare import difference
from parity.conftest import requires_tf

EPOCHS = 1500


@pytest.mark.slow
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_full_training_drift(data, dtype):
    requires_tf(("tf1",))
    from tf_original.model import model as tf_model
    from torch_port.model import model as torch_model

    arrays = (data.X_train, data.Y_train, data.X_test, data.Y_test)
    tf_params, tf_costs = tf_model(*arrays, num_epochs=EPOCHS, dtype=dtype)
    torch_params, torch_costs = torch_model(*arrays, num_epochs=EPOCHS, dtype=dtype)
    assert len(tf_costs) == len(torch_costs) == EPOCHS // 5
    cost_drift = max(difference(a, b)[1] for a, b in zip(tf_costs, torch_costs))
    param_drift = max(difference(tf_params[n], torch_params[n])[1] for n in tf_params)
    print(f"\n{dtype}, {EPOCHS} epochs: final parameters differ by {param_drift:.2e}, epoch costs by "
          f"up to {cost_drift:.2e} (normwise relative); "
          f"final cost {tf_costs[-1]:.6f} vs {torch_costs[-1]:.6f}")
    if dtype == "float64":  # round-off stays round-off over 51,000 steps
        assert param_drift < 1e-8 and cost_drift < 1e-8
    else:  # float32 drifts, but both runs must end on the same solution
        assert param_drift < 5e-2
        assert cost_drift < 1e-2
