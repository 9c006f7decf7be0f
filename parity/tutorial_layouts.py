"""The tutorial's weights and outputs between the layouts of its implementations.

For the tutorial's own network only (``W1``...``b3``); a model of yours goes through
:mod:`parity.layers` instead. Each implementation's layout is a field of its record in
:mod:`signs.implementations`; the canonical form is the tutorial's: ``W1`` (25, 12288) =
(out, in), ``b1`` (25, 1), ..., and the network output ``Z3`` (6, m) = (classes, examples).

==========  ===================  =======================  ==================  ==================
layout      implementations      weight name / layout     bias                output
==========  ===================  =======================  ==================  ==================
tutorial    tf1, line-by-line    ``W1`` (out, in)         ``b1`` (out, 1)     ``Z3`` (6, m)
module      idiomatic, fast      ``fc1.weight`` (out, in) ``fc1.bias`` (out,) logits (m, 6)
keras       keras                ``fc1/kernel`` (in, out) ``fc1/bias`` (out,) logits (m, 6)
==========  ===================  =======================  ==================  ==================
"""

from __future__ import annotations

import numpy as np

from parity.errors import TransferError
from signs import implementations
from signs.weights import PARAMETER_SHAPES

CANONICAL = tuple(PARAMETER_SHAPES)
LAYER = {"W1": "fc1", "b1": "fc1", "W2": "fc2", "b2": "fc2", "W3": "fc3", "b3": "fc3"}
NATIVE_NAMES = {
    "tutorial": {name: name for name in CANONICAL},
    "module": {name: f"{LAYER[name]}.{'weight' if name[0] == 'W' else 'bias'}" for name in CANONICAL},
    "keras": {name: f"{LAYER[name]}/{'kernel' if name[0] == 'W' else 'bias'}" for name in CANONICAL},
}


def layout_of(impl: str) -> str:
    """The layout of implementation ``impl`` (a registry name); unknown names are refused."""
    if impl not in implementations.IMPLEMENTATIONS:
        raise TransferError(f"unknown implementation {impl!r}; expected one of "
                            f"{', '.join(implementations.NAMES)}")
    return implementations.IMPLEMENTATIONS[impl].layout


def native_shape(impl: str, name: str) -> tuple[int, ...]:
    """Shape of canonical parameter ``name`` in ``impl``'s own layout."""
    layout = layout_of(impl)
    out, inp = PARAMETER_SHAPES[name] if name[0] == "W" else (PARAMETER_SHAPES[name][0], None)
    if name[0] == "b":
        return (out, 1) if layout == "tutorial" else (out,)
    return (inp, out) if layout == "keras" else (out, inp)


def to_canonical(impl: str, values: dict) -> dict[str, np.ndarray]:
    """``impl``'s named arrays -> tutorial layout. Refuses missing/extra names or wrong shapes."""
    layout = layout_of(impl)
    names = NATIVE_NAMES[layout]
    _check_names(impl, values, set(names.values()))
    out = {}
    for name, native in names.items():
        value = np.asarray(values[native])
        expected = native_shape(impl, name)
        if value.shape != expected:
            raise TransferError(_shape_message(impl, native, value.shape, expected))
        out[name] = value.T if layout == "keras" and name[0] == "W" else value.reshape(PARAMETER_SHAPES[name])
    return out


def to_native(impl: str, canonical: dict) -> dict[str, np.ndarray]:
    """Tutorial layout -> ``impl``'s named arrays (transposing Keras kernels, flattening biases)."""
    layout = layout_of(impl)
    names = NATIVE_NAMES[layout]
    _check_names("canonical", canonical, set(names))
    out = {}
    for name, native in names.items():
        value = np.asarray(canonical[name])
        if value.shape != PARAMETER_SHAPES[name]:
            raise TransferError(_shape_message("canonical", name, value.shape, PARAMETER_SHAPES[name]))
        value = value.T if layout == "keras" and name[0] == "W" else value
        out[native] = np.ascontiguousarray(value.reshape(native_shape(impl, name)))
    return out


def output_to_canonical(impl: str, output) -> np.ndarray:
    """The network output as (classes, examples): ``Z3`` as is, logits (m, 6) transposed."""
    output = np.asarray(output)
    return output if layout_of(impl) == "tutorial" else output.T


def transfer(source: str, target: str, values: dict) -> dict[str, np.ndarray]:
    """Weights of ``source`` re-laid for ``target`` (any two registered implementations)."""
    return to_native(target, to_canonical(source, values))


def _check_names(impl: str, values: dict, expected: set) -> None:
    missing, extra = sorted(expected - set(values)), sorted(set(values) - expected)
    if missing or extra:
        raise TransferError(f"{impl} weights: names do not match; missing {missing or 'none'}, "
                            f"unexpected {extra or 'none'}")


def _shape_message(impl, name, got, expected) -> str:
    hint = ""
    if tuple(got) == tuple(reversed(expected)):
        hint = " (transposed? a Keras kernel is (in, out), nn.Linear.weight and the tutorial's W (out, in))"
    return f"{impl} weights: {name} has shape {tuple(got)}, expected {tuple(expected)}{hint}"
