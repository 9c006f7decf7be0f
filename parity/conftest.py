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
    return load_tutorial_arrays("synthetic", notify=None)


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
