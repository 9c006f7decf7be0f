"""SIGNS data, framework-free: both ``tf_original`` and ``torch_port`` import it."""

from signs.data import (
    DataSource,
    convert_to_one_hot,
    flatten,
    load_dataset,
    load_from,
    minibatch_indices,
    read_split,
    resolve_data,
)
from signs.errors import DataError, InputError

__all__ = [
    "DataError",
    "DataSource",
    "InputError",
    "convert_to_one_hot",
    "flatten",
    "load_dataset",
    "load_from",
    "minibatch_indices",
    "read_split",
    "resolve_data",
]
