"""The one conversion from a dtype name to a ``torch.dtype`` (float32 and float64 only)."""

from __future__ import annotations

import torch

DTYPES = {"float32": torch.float32, "float64": torch.float64}


def torch_dtype(dtype) -> torch.dtype:
    """``"float32"``/``"float64"`` (or a NumPy dtype, or a ``torch.dtype``) -> ``torch.dtype``.

    Anything else is a ``ValueError`` naming what was given.
    """
    if isinstance(dtype, torch.dtype):
        if dtype not in DTYPES.values():
            raise ValueError(f"dtype must be float32 or float64, got {dtype}")
        return dtype
    name = str(dtype).removeprefix("torch.")
    if name not in DTYPES:
        raise ValueError(f"dtype must be float32 or float64, got {dtype!r}")
    return DTYPES[name]


def dtype_name(dtype) -> str:
    """The NumPy-style name of a ``torch.dtype`` (``torch.float64`` -> ``"float64"``)."""
    return str(dtype).removeprefix("torch.")
