"""Fixtures of the parity tests: the data and a cache of traces shared by the whole session."""

from __future__ import annotations

import pytest

from parity.trace import Data, RunConfig, Trace, run
from signs import implementations
from signs.data import load_tutorial_arrays


def requires_tf(pair) -> None:
    """Skip (with the reason) when a TensorFlow implementation is asked for and TF is absent."""
    if any(implementations.get(impl).framework == "tensorflow" for impl in pair):
        pytest.importorskip("tensorflow", reason="TensorFlow is not installed; TF-side parity needs it "
                            "(the golden-trace tests still check torch without it)")


@pytest.fixture(scope="session")
def data() -> Data:
    return load_tutorial_arrays(data="synthetic", notify=None)


class TraceCache:
    """Runs each (implementation, config, teacher) once per session."""

    def __init__(self, data: Data):
        self.data, self.traces = data, {}

    def get(self, impl: str, config: RunConfig, teacher: Trace | None = None) -> Trace:
        key = (impl, repr(config), None if teacher is None else (teacher.impl, repr(teacher.config)))
        if key not in self.traces:
            self.traces[key] = run(impl, self.data, config, teacher=teacher)
        return self.traces[key]


@pytest.fixture(scope="session")
def traces(data) -> TraceCache:
    return TraceCache(data)


@pytest.fixture
def cuda_full_float32():
    """Skip without a CUDA device; otherwise run the test with TF32 off, then restore the flags.

    TF32 rounds matmul and convolution inputs to 10 mantissa bits (cuDNN convolutions allow it
    by default, matmuls do not); the goldens were made on CPU in full float32.
    """
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device: the CUDA parity test needs one (run it on a GPU machine)")
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved
