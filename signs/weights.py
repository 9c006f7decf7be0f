"""Framework-free weight files: the stored Glorot seed-1 draw and ``.npz`` import/export.

Parameters are a dict ``{"W1", "b1", "W2", "b2", "W3", "b3"}`` of NumPy arrays in the
tutorial's layout: ``W`` is (out, in), ``b`` is (out, 1).

The port cannot re-draw TF's weights (the random generators differ), so the draw that
``tf_original.model.initialize_parameters`` makes is stored here for float32 and float64
(TF's float64 draw is not the float32 one widened). Regenerate with
``python -m tf_original.export --initial`` and check with ``pytest tests -k glorot``.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from signs.errors import InputError
from signs.files import atomic_write

PARAMETER_SHAPES = {"W1": (25, 12288), "b1": (25, 1), "W2": (12, 25), "b2": (12, 1),
                    "W3": (6, 12), "b3": (6, 1)}
INITIAL_DIR = Path(__file__).with_name("initial_weights")


def initial_weights_path(dtype: str = "float32") -> Path:
    """Where the stored Glorot seed-1 draw for ``dtype`` lives."""
    return INITIAL_DIR / f"glorot_seed1_{np.dtype(dtype).name}.npz"


def load_initial_parameters(dtype: str = "float32") -> dict[str, np.ndarray]:
    """TF's Glorot-uniform seed-1 draw (biases zero), as NumPy arrays of ``dtype``."""
    name = np.dtype(dtype).name
    if name not in ("float32", "float64"):
        raise InputError(f"dtype {name}: the stored initial weights are float32 or float64")
    return load_parameters(initial_weights_path(name))


def check_parameters(params: dict, source: str = "parameters") -> dict[str, np.ndarray]:
    """Refuse a parameter dict with missing, extra or mis-shaped entries (one clear line)."""
    missing = [k for k in PARAMETER_SHAPES if k not in params]
    extra = [k for k in params if k not in PARAMETER_SHAPES]
    if missing or extra:
        raise InputError(f"{source}: expected parameters W1, b1, W2, b2, W3, b3; "
                         f"missing {missing or 'none'}, unexpected {extra or 'none'}")
    out = {}
    for name, shape in PARAMETER_SHAPES.items():
        value = np.asarray(params[name])
        if value.shape != shape:
            raise InputError(f"{source}: {name} has shape {value.shape}, expected {shape} "
                             "(tutorial layout: W is (out, in), b is (out, 1))")
        if value.dtype.kind != "f":
            raise InputError(f"{source}: {name} has dtype {value.dtype}, expected floats")
        out[name] = value
    return out


def load_parameters(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Read a parameters ``.npz`` (tutorial layout), checking names and shapes."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such weights file")
    try:
        with np.load(path, allow_pickle=False) as archive:
            params = {key: archive[key] for key in archive.files}
    except (OSError, ValueError, EOFError) as exc:
        raise InputError(f"{path}: not a readable .npz weights file ({exc})") from None
    return check_parameters(params, str(path))


def save_parameters(path: str | os.PathLike, params: dict) -> Path:
    """Write ``params`` (tutorial layout) to ``path`` as ``.npz``, atomically."""
    path = Path(path)
    params = check_parameters({k: np.asarray(v) for k, v in params.items()}, str(path))
    atomic_write(path, lambda handle: np.savez(handle, **params))
    return path
