"""The harness's one error type for weights that do not fit (framework-free)."""

from __future__ import annotations

from signs.errors import InputError


class TransferError(InputError):
    """Weights that do not fit the target (names, shapes, kinds): one line listing every problem."""
