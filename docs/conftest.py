"""pytest setup for the executed docs: every ``>>>`` example in ``docs/*.md`` is a doctest.

* The synthetic SIGNS-like set the pages train on goes to the session's temporary
  ``$SIGNS_CACHE_DIR`` (see the root ``conftest.py``).
* The pages that run TensorFlow code beside PyTorch (both mapping pages, acceptable_difference,
  pitfalls, walkthrough) are skipped, with the reason, where TensorFlow is absent.
* Each page runs with the global random states and NumPy print options saved and restored,
  so a page that calls ``torch.manual_seed`` or ``np.random.seed`` leaves no trace on the
  tests that run after it.
* ``side_by_side.md`` is generated code, not examples: ``tests/test_docs_side_by_side.py``
  checks it instead.
"""

from __future__ import annotations

import importlib.util
import random
from pathlib import Path

import numpy as np
import pytest

collect_ignore = ["side_by_side.md"]

HAS_TENSORFLOW = importlib.util.find_spec("tensorflow") is not None
# The pages whose examples run TensorFlow code beside PyTorch (other pages handle a missing
# TensorFlow themselves).
TENSORFLOW_PAGES = ("mapping.md", "mapping_next.md", "acceptable_difference.md", "pitfalls.md",
                    "port_your_tf1_model.md", "walkthrough.md")
DOCS = Path(__file__).resolve().parent


def pytest_collection_modifyitems(config, items):
    if HAS_TENSORFLOW:
        return
    for item in items:
        path = getattr(item, "path", None)
        if path is not None and path.resolve().parent == DOCS and path.name in TENSORFLOW_PAGES:
            item.add_marker(pytest.mark.skip(
                reason=f"{path.name} runs TensorFlow code beside PyTorch and needs TensorFlow "
                       "(pip install '.[tensorflow]')"))


@pytest.fixture(autouse=True)
def _isolated_global_state():
    """Save and restore Python's, NumPy's and torch's random states and NumPy's print options."""
    python_state = random.getstate()
    numpy_state = np.random.get_state()
    print_options = np.get_printoptions()
    torch_state = None
    if importlib.util.find_spec("torch") is not None:
        import torch

        torch_state = torch.random.get_rng_state()
    yield
    random.setstate(python_state)
    np.random.set_state(numpy_state)
    np.set_printoptions(**print_options)
    if torch_state is not None:
        import torch

        torch.random.set_rng_state(torch_state)
