"""The tutorial's weights between its implementations' layouts: round trips, clear refusals."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from parity.errors import TransferError
from parity.tutorial_layouts import to_canonical, to_native, transfer
from signs.implementations import NAMES as IMPLEMENTATIONS
from signs.weights import load_initial_parameters


@pytest.fixture(scope="module")
def canonical():
    return load_initial_parameters("float32")


@pytest.mark.parametrize("source,target", list(itertools.permutations(IMPLEMENTATIONS, 2)))
def test_round_trip_through_every_pair(canonical, source, target):
    there = transfer(source, target, to_native(source, canonical))
    back = to_canonical(target, there)
    for name, value in canonical.items():
        np.testing.assert_array_equal(back[name], value)


def test_keras_kernels_are_transposed_and_biases_flat(canonical):
    keras = to_native("keras", canonical)
    assert keras["fc1/kernel"].shape == (12288, 25)
    np.testing.assert_array_equal(keras["fc1/kernel"], canonical["W1"].T)
    assert keras["fc3/bias"].shape == (6,)
    torch_nn = to_native("idiomatic", canonical)
    np.testing.assert_array_equal(torch_nn["fc1.weight"], canonical["W1"])  # (out, in) on both


def test_untransposed_keras_kernel_is_refused_with_a_hint(canonical):
    keras = to_native("keras", canonical)
    keras["fc2/kernel"] = keras["fc2/kernel"].T  # (12, 25): someone forgot the transpose
    expected = r"fc2/kernel has shape \(12, 25\), expected \(25, 12\).*transposed"
    with pytest.raises(TransferError, match=expected):
        to_canonical("keras", keras)


def test_mismatched_names_are_refused(canonical):
    values = to_native("idiomatic", canonical)
    values["fc4.weight"] = values.pop("fc3.weight")
    with pytest.raises(TransferError, match=r"missing \['fc3.weight'\], unexpected \['fc4.weight'\]"):
        to_canonical("idiomatic", values)


def test_unknown_implementation_is_refused(canonical):
    with pytest.raises(TransferError, match="unknown implementation 'jax'"):
        to_native("jax", canonical)
