"""The registry of implementations (signs/implementations.py): every record is usable as written."""

from __future__ import annotations

import importlib
import inspect

import pytest

from parity.trace import GRAPHS
from signs import implementations
from signs.errors import InputError

RECORDS = list(implementations.IMPLEMENTATIONS.values())


@pytest.mark.parametrize("impl", RECORDS, ids=[impl.name for impl in RECORDS])
def test_every_record_names_a_training_function_and_an_epoch_marker(impl):
    assert impl.framework in implementations.FRAMEWORKS and impl.layout in implementations.LAYOUTS
    if impl.framework == "tensorflow":
        pytest.importorskip("tensorflow", reason="TensorFlow is not installed: its records cannot load")
    function = getattr(impl.load(), impl.function)
    accepted = set(inspect.signature(function).parameters)
    assert set(impl.options) <= accepted, f"{impl.name}: options the function does not take"
    assert {"learning_rate", "num_epochs", "minibatch_size", "print_cost", "dtype", "seed",
            "initial_parameters"} <= accepted
    # the parity traces record a step through the function's hook, or (GRAPHS) from its TF1 graph
    assert "hook" in accepted or callable(GRAPHS.get(impl.name)), f"{impl.name}: no way to record its steps"
    if impl.framework == "torch":
        assert {"device", "optimizer", "resume", "on_epoch_end", "progress"} <= accepted
        assert impl.adam is None
    else:
        assert impl.adam in ("tf1", "keras")
    module, marker = impl.epoch_marker.rsplit(".", 1)
    assert callable(getattr(importlib.import_module(module), marker))
    side = "tf_original" if impl.framework == "tensorflow" else "torch_port"
    assert impl.command == f"python -m {side}.train --impl {impl.name}"


def test_names_are_unique_and_the_defaults_are_registered():
    assert len(set(implementations.NAMES)) == len(implementations.NAMES)
    assert implementations.get(implementations.DEFAULT_TORCH).framework == "torch"
    assert implementations.get(implementations.REFERENCE).framework == "tensorflow"
    assert implementations.names("torch") == ("line-by-line", "idiomatic", "fast", "fast-exact")


def test_an_unknown_name_is_one_line_naming_the_choices():
    with pytest.raises(InputError, match=r"unknown implementation 'jax'; expected one of tf1, keras, "):
        implementations.get("jax")


def test_the_torch_optimizer_follows_the_tensorflow_side():
    assert implementations.torch_optimizer_for(("tf1", "fast")) == "tf-adam"
    assert implementations.torch_optimizer_for(("keras", "idiomatic")) == "keras-adam"
    assert implementations.torch_optimizer_for(("line-by-line", "keras")) == "keras-adam"
    with pytest.raises(InputError, match="fast implements only tf-adam, keras-adam, not 'adam'"):
        implementations.get("fast").check_optimizer("adam")
