"""A synthetic SIGNS-like data set, for machines without the real training file.

Each image is a rendered "hand": a palm with 0-5 raised fingers (the label), drawn with
random position, size, rotation, skin and background colours, a wrist, clutter and pixel
noise. Same keys, shapes and dtypes as the real files (1080 / 120 images (64, 64, 3) uint8,
labels int64, ``list_classes`` 0..5), written as ``train_signs.h5`` / ``test_signs.h5`` and
read back by the very same loader. Deterministic: the same seed gives identical bytes.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import h5py
import numpy as np

FORMAT_VERSION = 1
TRAIN_SIZE, TEST_SIZE = 1080, 120
_GRID_Y, _GRID_X = np.mgrid[0:64, 0:64].astype(np.float64)


def cache_root() -> Path:
    """``$SIGNS_CACHE_DIR`` if set, else ``~/.cache/tf-torch-parity``."""
    env = os.environ.get("SIGNS_CACHE_DIR")
    return Path(env) if env else Path.home() / ".cache" / "tf-torch-parity"


def _capsule(x0, y0, x1, y1, radius):
    """Boolean (64, 64) mask of the points within ``radius`` of segment (x0, y0)-(x1, y1)."""
    dx, dy = x1 - x0, y1 - y0
    t = ((_GRID_X - x0) * dx + (_GRID_Y - y0) * dy) / max(dx * dx + dy * dy, 1e-9)
    t = np.clip(t, 0.0, 1.0)
    return (_GRID_X - (x0 + t * dx)) ** 2 + (_GRID_Y - (y0 + t * dy)) ** 2 <= radius ** 2


def render_hand(fingers: int, rng: np.random.Generator) -> np.ndarray:
    """One (64, 64, 3) uint8 image of a hand showing ``fingers`` raised fingers."""
    base = rng.uniform(40, 220, size=3)
    slope = rng.normal(0, 0.8, size=(2, 3))
    image = base + _GRID_X[..., None] * slope[0] + _GRID_Y[..., None] * slope[1]
    for _ in range(rng.integers(0, 4)):  # background clutter
        cx, cy, r = rng.uniform(0, 64), rng.uniform(0, 64), rng.uniform(3, 10)
        mask = (_GRID_X - cx) ** 2 + (_GRID_Y - cy) ** 2 <= r * r
        image[mask] = rng.uniform(0, 255, size=3)

    skin = np.array([rng.uniform(150, 250), rng.uniform(100, 190), rng.uniform(70, 160)])
    scale = rng.uniform(0.8, 1.2)
    cx, cy = rng.uniform(24, 40), rng.uniform(34, 44)
    tilt = rng.normal(0, 0.25)
    up = np.array([np.sin(tilt), -np.cos(tilt)])
    palm_r = 9 * scale
    hand = _capsule(cx, cy, cx - up[0] * 30, cy - up[1] * 30, 6 * scale)  # wrist, downwards
    hand |= (_GRID_X - cx) ** 2 + (_GRID_Y - cy) ** 2 <= palm_r ** 2
    if fingers:
        spread = rng.uniform(0.9, 1.5)
        angles = tilt + np.linspace(-spread / 2, spread / 2, 5)[:fingers] if fingers > 1 else \
            np.array([tilt + rng.uniform(-0.3, 0.3)])
        if fingers > 1:
            angles = angles - angles.mean() + tilt
        for angle in angles:
            length = palm_r + rng.uniform(8, 13) * scale
            bx, by = cx + np.sin(angle) * palm_r * 0.6, cy - np.cos(angle) * palm_r * 0.6
            tx, ty = cx + np.sin(angle) * length, cy - np.cos(angle) * length
            hand |= _capsule(bx, by, tx, ty, rng.uniform(1.8, 2.6) * scale)
    shade = 1.0 + 0.15 * (_GRID_X - cx)[hand] / 32.0
    image[hand] = skin * shade[:, None]
    image += rng.normal(0, rng.uniform(4, 14), size=image.shape)
    return np.clip(np.rint(image), 0, 255).astype(np.uint8)


def generate(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` images ``(n, 64, 64, 3)`` uint8 and labels ``(n,)`` int64, balanced over 0..5."""
    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.arange(n) % 6).astype(np.int64)
    images = np.stack([render_hand(int(k), rng) for k in labels])
    return images, labels


def _write_h5(path: Path, split: str, images: np.ndarray, labels: np.ndarray) -> None:
    """Write one file atomically (temporary file in the same directory, then rename)."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        with h5py.File(tmp, "w", libver="earliest", track_order=False) as handle:
            handle.create_dataset(f"{split}_set_x", data=images, track_times=False)
            handle.create_dataset(f"{split}_set_y", data=labels, track_times=False)
            handle.create_dataset("list_classes", data=np.arange(6, dtype=np.int64),
                                  track_times=False)
            handle.attrs["synthetic_format_version"] = FORMAT_VERSION
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_synthetic(directory: str | os.PathLike, seed: int = 0) -> Path:
    """Generate the synthetic train and test files for ``seed`` into ``directory``."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    # Train and test come from independent streams of the same seed.
    train = generate(TRAIN_SIZE, seed * 2)
    test = generate(TEST_SIZE, seed * 2 + 1)
    _write_h5(directory / "train_signs.h5", "train", *train)
    _write_h5(directory / "test_signs.h5", "test", *test)
    return directory


def ensure_synthetic(seed: int = 0) -> Path:
    """The cache directory holding the synthetic files for ``seed``, generated on first use."""
    directory = cache_root() / f"synthetic-v{FORMAT_VERSION}-seed{seed}"
    if not ((directory / "train_signs.h5").is_file() and (directory / "test_signs.h5").is_file()):
        write_synthetic(directory, seed)
    return directory
