"""Shared fixtures for the test suite.

* The synthetic SIGNS-like set goes to the session's temporary ``$SIGNS_CACHE_DIR`` (see the
  root ``conftest.py``); subprocesses inherit the variable.
* ``genuine_test_file``: the genuine ``test_signs.h5`` from ``$SIGNS_DIR``, else
  ``../shared/datasets`` beside the repository; tests that need it skip when it is absent.
* ``small_data_dir``: small SIGNS-layout files for fast CLI runs (see ``signs_testing``).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from signs_testing import REPO_ROOT, make_data_dir


def pytest_collection_modifyitems(session, config, items):
    """Tests that collect the results of test_cli.py's background subprocesses (fixture
    ``cli_runs``) go last, so those subprocesses overlap the rest of the suite."""
    items.sort(key=lambda item: "cli_runs" in getattr(item, "fixturenames", ()))


@pytest.fixture(scope="session")
def synthetic_dir() -> Path:
    """The session's synthetic set for seed 0 (generated once, in ``$SIGNS_CACHE_DIR``)."""
    from signs.synthetic import ensure_synthetic

    return ensure_synthetic(0)


@pytest.fixture(scope="session")
def small_data_dir(tmp_path_factory) -> Path:
    """Small valid SIGNS-layout files (96 train, 24 test): fast CLI runs."""
    return make_data_dir(tmp_path_factory.mktemp("small-signs"))


@pytest.fixture(scope="session")
def genuine_test_file() -> Path:
    """The genuine ``test_signs.h5``: ``$SIGNS_DIR``, else ``../shared/datasets``; else skip."""
    candidates = []
    if os.environ.get("SIGNS_DIR"):
        candidates.append(Path(os.environ["SIGNS_DIR"]) / "test_signs.h5")
    candidates.append(REPO_ROOT.parent / "shared" / "datasets" / "test_signs.h5")
    for path in candidates:
        if path.is_file():
            return path
    pytest.skip("the genuine SIGNS test file is absent: set SIGNS_DIR to the directory holding "
                f"test_signs.h5 (looked in {', '.join(str(p.parent) for p in candidates)})")




@pytest.fixture(scope="module")
def torch_one_thread():
    """Run a module's torch work on one thread (restored afterwards).

    The test machines are small and shared: two intra-op threads fighting other processes for
    two cores run several times slower than one. The CLI subprocesses get ``OMP_NUM_THREADS=1``
    (see ``signs_testing.cli_env``), so in-process and subprocess runs compute alike.
    """
    torch = pytest.importorskip("torch")
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
