"""pytest setup for the executed docs: every ``>>>`` example in ``docs/*.md`` is a doctest.

* TensorFlow's C++ logging is silenced before anything imports it.
* The synthetic SIGNS-like set the pages train on is generated into a temporary
  ``$SIGNS_CACHE_DIR`` unless one is set already (by the caller, ``.ci/run`` or
  ``tests/conftest.py``), so running the docs never writes into the user's home directory.
* The pages that run TensorFlow code beside PyTorch (mapping, pitfalls, walkthrough) are
  skipped, with the reason, where TensorFlow is absent.
* Each page runs with the global random states and NumPy print options saved and restored,
  so a page that calls ``torch.manual_seed`` or ``np.random.seed`` leaves no trace on the
  tests that run after it.
* ``side_by_side.md`` is generated code, not examples: ``tests/test_docs_side_by_side.py``
  checks it instead.
"""

from __future__ import annotations

import importlib.util
import os
import random
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

collect_ignore = ["side_by_side.md"]

HAS_TENSORFLOW = importlib.util.find_spec("tensorflow") is not None
# The pages whose examples run TensorFlow code beside PyTorch (other pages handle a missing
# TensorFlow themselves).
TENSORFLOW_PAGES = ("mapping.md", "pitfalls.md", "walkthrough.md")
DOCS = Path(__file__).resolve().parent
_TEMP_CACHE: str | None = None


def pytest_configure(config):
    global _TEMP_CACHE
    if not os.environ.get("SIGNS_CACHE_DIR"):
        _TEMP_CACHE = tempfile.mkdtemp(prefix="signs-cache-docs-")
        os.environ["SIGNS_CACHE_DIR"] = _TEMP_CACHE


def pytest_unconfigure(config):
    if _TEMP_CACHE is not None:
        shutil.rmtree(_TEMP_CACHE, ignore_errors=True)
        if os.environ.get("SIGNS_CACHE_DIR") == _TEMP_CACHE:
            del os.environ["SIGNS_CACHE_DIR"]


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
