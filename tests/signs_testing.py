"""Helpers for the tests (imported by ``conftest.py`` and the test modules).

Named ``signs_testing`` rather than ``helpers`` so it cannot clash with a module of the same
name elsewhere on ``sys.path``.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
HAS_TF = importlib.util.find_spec("tensorflow") is not None
NO_TF_REASON = "TensorFlow is not installed (pip install -e '.[tensorflow]' to run the TF side)"


def require_tf():
    """Import TensorFlow or skip the calling test with a clear reason."""
    return pytest.importorskip("tensorflow", reason=NO_TF_REASON)


# --------------------------------------------------------------------------- data files

def write_split(path, split: str, images, labels, classes=None, keys=None) -> Path:
    """Write one SIGNS-layout HDF5 file: ``{split}_set_x``, ``{split}_set_y``, ``list_classes``.

    ``keys`` (optional) overrides which of the three datasets are written, to build files
    with a key missing.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    classes = np.arange(6, dtype=np.int64) if classes is None else classes
    content = {f"{split}_set_x": images, f"{split}_set_y": labels, "list_classes": classes}
    with h5py.File(path, "w") as handle:
        for key, value in content.items():
            if keys is None or key in keys:
                handle.create_dataset(key, data=value)
    return path


def small_split(m: int, seed: int):
    """``m`` random images (m, 64, 64, 3) uint8 and labels (m,) int64 cycling through 0..5."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(m, 64, 64, 3), dtype=np.uint8)
    labels = rng.permutation(np.arange(m) % 6).astype(np.int64)
    return images, labels


def make_data_dir(directory, m_train: int = 96, m_test: int = 24, seed: int = 0) -> Path:
    """A directory with small, valid (non-genuine) ``train_signs.h5`` and ``test_signs.h5``."""
    directory = Path(directory)
    write_split(directory / "train_signs.h5", "train", *small_split(m_train, seed))
    write_split(directory / "test_signs.h5", "test", *small_split(m_test, seed + 1))
    return directory


# --------------------------------------------------------------------------- CLI helpers

def cli_env(extra_path: list[str] | None = None, **overrides) -> dict[str, str]:
    """The environment for a CLI subprocess: ours, quiet TF, the repository importable."""
    env = dict(os.environ)
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env["OMP_NUM_THREADS"] = "1"  # as the torch_one_thread fixture does in-process
    paths = [*(extra_path or []), str(REPO_ROOT)]
    if env.get("PYTHONPATH"):
        paths.append(env["PYTHONPATH"])
    env["PYTHONPATH"] = os.pathsep.join(paths)
    env.update(overrides)
    return env


def run_cli(module: str, *args, cwd=None, env=None, timeout: float = 240) -> subprocess.CompletedProcess:
    """``python -m module args...`` in a subprocess; text output captured."""
    return subprocess.run([sys.executable, "-m", module, *map(str, args)], cwd=cwd,
                          env=env or cli_env(), capture_output=True, text=True, timeout=timeout)


def assert_one_line_error(returncode: int, stderr: str, prog: str) -> str:
    """Exit 2, exactly one line on stderr, ``error: ...`` or ``<prog>: error: ...``, no traceback."""
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert returncode == 2, f"exit status {returncode}, stderr:\n{stderr}"
    assert "Traceback" not in stderr, stderr
    assert len(lines) == 1, f"expected one line on stderr, got {len(lines)}:\n{stderr}"
    assert lines[0].startswith(("error: ", f"{prog}: error: ")), lines[0]
    return lines[0]


class Background:
    """A CLI subprocess started now and collected later, its output in files (no pipe limits).

    Lets a test module start its slow end-to-end runs at once so that they overlap.
    """

    def __init__(self, argv, cwd, env=None, timeout: float = 300):
        self.cwd, self.timeout = Path(cwd), timeout
        self.cwd.mkdir(parents=True, exist_ok=True)
        self._out = open(self.cwd / ".stdout", "w+")
        self._err = open(self.cwd / ".stderr", "w+")
        self.process = subprocess.Popen([sys.executable, *map(str, argv)], cwd=cwd,
                                        env=env or cli_env(), stdout=self._out, stderr=self._err,
                                        text=True)
        self._result = None

    def result(self) -> subprocess.CompletedProcess:
        if self._result is None:
            try:
                self.process.wait(self.timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            outputs = []
            for handle in (self._out, self._err):
                handle.seek(0)
                outputs.append(handle.read())
                handle.close()
            self._result = subprocess.CompletedProcess(self.process.args, self.process.returncode,
                                                       *outputs)
        return self._result

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.result()
