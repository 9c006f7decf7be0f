"""Checkpoints of a training run: written atomically, loaded with ``weights_only=True``.

A checkpoint is a dict of tensors, numbers and strings (nothing that needs pickle's code
execution): ``format_version``, ``architecture``, the run's settings, the next ``epoch``,
``parameters`` in the tutorial's layout, the optimizer's ``state_dict`` and the ``costs``.
"""

from __future__ import annotations

import io
from pathlib import Path

import torch

from signs.errors import InputError
from signs.files import atomic_write
from signs.weights import PARAMETER_SHAPES

FORMAT_VERSION = 1
ARCHITECTURE = "signs-mlp-12288-25-12-6"
# Settings that must be the same to continue a run bit for bit.
SETTINGS = ("impl", "optimizer_name", "dtype", "lr", "batch_size", "seed", "num_epochs", "epoch_cost")


def save_checkpoint(path, *, epoch: int, parameters: dict, optimizer, costs, settings: dict) -> Path:
    """Write a checkpoint for a run that will continue at ``epoch`` (atomic: temp file + rename).

    A failed write raises :class:`signs.files.WriteError` and leaves the previous checkpoint.
    """
    payload = {
        "format_version": FORMAT_VERSION,
        "architecture": ARCHITECTURE,
        "epoch": int(epoch),
        "parameters": {name: torch.as_tensor(value).clone() for name, value in parameters.items()},
        "optimizer": optimizer.state_dict(),
        "costs": [float(c) for c in costs],
        "settings": dict(settings),
    }
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    atomic_write(path, lambda handle: handle.write(buffer.getvalue()))
    return Path(path)


def load_checkpoint(path) -> dict:
    """Read and check a checkpoint; every problem is one :class:`InputError` line."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such checkpoint file")
    if path.stat().st_size == 0:
        raise InputError(f"{path}: checkpoint file is empty")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 -- weights_only runs no code; any failure means a bad file
        # (a text or truncated file can raise IndexError, UnicodeDecodeError, struct.error, ...)
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputError(f"{path}: not a readable checkpoint, corrupt or not made by "
                         f"torch_port.train ({first[:160]})") from None
    if not isinstance(payload, dict) or "format_version" not in payload:
        raise InputError(f"{path}: not a torch_port checkpoint (no format_version)")
    version = payload["format_version"]
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise InputError(f"{path}: checkpoint format version {version} is newer than this program "
                         f"understands ({FORMAT_VERSION}); upgrade tf-torch-parity")
    if payload.get("architecture") != ARCHITECTURE:
        raise InputError(f"{path}: checkpoint is for architecture {payload.get('architecture')!r}, "
                         f"not {ARCHITECTURE!r}")
    params = payload.get("parameters")
    if not isinstance(params, dict) or set(params) != set(PARAMETER_SHAPES):
        raise InputError(f"{path}: checkpoint parameters are not W1, b1, W2, b2, W3, b3")
    for name, shape in PARAMETER_SHAPES.items():
        if tuple(params[name].shape) != shape:
            raise InputError(f"{path}: checkpoint {name} has shape {tuple(params[name].shape)}, "
                             f"expected {shape} (another architecture?)")
    for key in ("epoch", "optimizer", "costs", "settings"):
        if key not in payload:
            raise InputError(f"{path}: checkpoint lacks {key!r}")
    return payload


def check_settings(path, saved: dict, wanted: dict) -> None:
    """Refuse to resume with settings other than the checkpoint's (the result would not match)."""
    for key in SETTINGS:
        if key in saved and key in wanted and saved[key] != wanted[key]:
            raise InputError(f"{path}: checkpoint was made with {key}={saved[key]!r}, this run has "
                             f"{wanted[key]!r}; pass the same options to resume")


def resume_state(payload: dict) -> dict:
    """What a training function's ``resume=`` takes, from a loaded checkpoint: the next
    ``epoch``, the ``costs`` so far, the ``optimizer`` state and NumPy ``parameters``."""
    return {"epoch": payload["epoch"], "costs": list(payload["costs"]), "optimizer": payload["optimizer"],
            "parameters": {name: value.numpy() for name, value in payload["parameters"].items()}}


def default_checkpoint(out_dir) -> Path:
    """``OUT/checkpoint.pt``: where ``--checkpoint-every`` and an interrupted run save."""
    return Path(out_dir) / "checkpoint.pt"


