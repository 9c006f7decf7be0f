"""Locate, verify and load the SIGNS data; flatten, normalise and one-hot it.

Framework-free (NumPy and h5py only): ``tf_original`` and ``torch_port`` both import it.

Layouts: images are ``(examples, 64, 64, 3)`` uint8 as stored; labels are ``(1, examples)``
int64 as the tutorial returns them; :func:`flatten` gives the tutorial's
``(features, examples)`` = ``(12288, m)`` float array.
"""

from __future__ import annotations

import hashlib
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from signs.errors import DataError

TRAIN_FILE = "train_signs.h5"
TEST_FILE = "test_signs.h5"
IMAGE_SHAPE = (64, 64, 3)
NUM_CLASSES = 6
GENUINE_SHA256 = {
    TRAIN_FILE: "47480709d99f2ea6ae428ecc491fc6f65ff1d05336736dd859d5565e0ad3cf74",
    TEST_FILE: "539fb746ed9e947eb244cfca73f4d1b03f9bf5524d609eeed2cd76ddb1b179be",
}
GENUINE_SIZE = {TRAIN_FILE: 13_281_872, TEST_FILE: 1_477_712}
HOW_TO_USE_REAL_DATA = (
    "for the real SIGNS put train_signs.h5 and test_signs.h5 in ./datasets or $SIGNS_DIR "
    "(or pass --data-dir)"
)


def _stderr(message: str) -> None:
    print(message, file=sys.stderr)


@dataclass(frozen=True)
class DataSource:
    """Where a run's data comes from.

    ``kind`` is ``"signs"`` (both genuine files), ``"other"`` (files with the SIGNS layout
    that are not the genuine ones) or ``"synthetic"`` (the generated SIGNS-like set).
    """

    directory: Path
    kind: str
    notice: str | None = None


def default_data_dir() -> Path:
    """``$SIGNS_DIR`` if set, else ``./datasets``."""
    return Path(os.environ.get("SIGNS_DIR") or "datasets")


def sha256_of(path: Path) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def is_genuine(path: Path) -> bool:
    """True if ``path`` is byte for byte the genuine SIGNS file of the same name."""
    name = path.name
    if name not in GENUINE_SHA256 or not path.is_file():
        return False
    return path.stat().st_size == GENUINE_SIZE[name] and sha256_of(path) == GENUINE_SHA256[name]


def resolve_data(data: str = "auto", data_dir: str | os.PathLike | None = None,
                 synthetic_seed: int = 0) -> DataSource:
    """Decide which directory a run reads, without reading the arrays yet.

    ``data``: ``"auto"`` (real files if both are in the directory, else synthetic),
    ``"signs"`` (require both files) or ``"synthetic"``. ``data_dir``: explicit directory;
    else ``$SIGNS_DIR``; else ``./datasets``. An explicit directory that does not exist is an
    error; a default one that does not exist simply means "no real data here".
    """
    if data not in ("auto", "signs", "synthetic"):
        raise DataError(f"--data {data!r}: expected one of auto, signs, synthetic")
    explicit = data_dir is not None
    directory = Path(data_dir) if explicit else default_data_dir()
    if data == "synthetic":
        return _synthetic_source(synthetic_seed)
    if explicit and not directory.exists():
        raise DataError(f"{directory}: data directory does not exist; "
                        "pass an existing directory or use --data synthetic")
    if directory.exists() and not directory.is_dir():
        raise DataError(f"{directory}: is not a directory; pass the directory that holds "
                        f"{TRAIN_FILE} and {TEST_FILE}")
    present = [directory / name for name in (TRAIN_FILE, TEST_FILE) if (directory / name).exists()]
    if len(present) == 2:
        if all(is_genuine(p) for p in present):
            return DataSource(directory, "signs")
        odd = [str(p) for p in present if not is_genuine(p)]
        what = f"{odd[0]} is not the genuine SIGNS file" if len(odd) == 1 else \
            f"{' and '.join(odd)} are not the genuine SIGNS files"
        return DataSource(directory, "other", f"note: {what} (sha256 differs); loading anyway")
    if data == "signs":
        missing = [name for name in (TRAIN_FILE, TEST_FILE) if not (directory / name).exists()]
        raise DataError(f"{directory}: missing {' and '.join(missing)}; {HOW_TO_USE_REAL_DATA}, "
                        "or use --data synthetic")
    return _synthetic_source(synthetic_seed)


def _synthetic_source(seed: int) -> DataSource:
    from signs.synthetic import ensure_synthetic  # local: only runs that need it pay for it

    directory = ensure_synthetic(seed)
    return DataSource(directory, "synthetic",
                      f"note: using the synthetic SIGNS-like set (seed {seed}, in {directory}), "
                      f"not the real photos; {HOW_TO_USE_REAL_DATA}")


def read_split(path: str | os.PathLike, split: str | None = None):
    """Read one SIGNS file: ``(images (m, 64, 64, 3) uint8, labels (m,) int64, classes)``.

    ``split`` is ``"train"`` or ``"test"``; by default taken from the file name. Every way the
    file can be wrong raises :class:`DataError` naming the file and the problem.
    """
    path = Path(path)
    if split is None:
        split = "train" if path.name.startswith("train") else "test"
    x_key, y_key = f"{split}_set_x", f"{split}_set_y"
    if not path.exists():
        raise DataError(f"{path}: no such file; {HOW_TO_USE_REAL_DATA}, or use --data synthetic")
    if path.is_dir():
        raise DataError(f"{path}: is a directory, expected an HDF5 file")
    if path.stat().st_size == 0:
        raise DataError(f"{path}: file is empty")
    try:
        readable = h5py.is_hdf5(path)
    except OSError as exc:
        raise DataError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    if not readable:
        raise DataError(f"{path}: not an HDF5 file")
    try:
        with h5py.File(path, "r") as handle:
            for key in (x_key, y_key, "list_classes"):
                if key not in handle:
                    found = ", ".join(sorted(handle.keys())) or "nothing"
                    raise DataError(f"{path}: missing dataset {key!r} (found: {found})")
            images = np.asarray(handle[x_key][:])
            labels = np.asarray(handle[y_key][:])
            classes = np.asarray(handle["list_classes"][:])
    except DataError:
        raise
    except (OSError, KeyError, ValueError, TypeError) as exc:
        raise DataError(f"{path}: cannot be read as HDF5, truncated or corrupt ({exc})") from None
    _check_split(path, x_key, images, y_key, labels, classes)
    return images, labels.astype(np.int64).reshape(-1), classes


def _check_split(path, x_key, images, y_key, labels, classes) -> None:
    if images.dtype != np.uint8:
        raise DataError(f"{path}: {x_key} has dtype {images.dtype}, expected uint8 pixels 0..255")
    if images.ndim != 4 or images.shape[1:] != IMAGE_SHAPE:
        raise DataError(f"{path}: {x_key} has shape {images.shape}, expected (m, 64, 64, 3)")
    if images.shape[0] == 0:
        raise DataError(f"{path}: {x_key} is empty (0 images)")
    if not np.issubdtype(labels.dtype, np.integer):
        raise DataError(f"{path}: {y_key} has dtype {labels.dtype}, expected integer labels")
    if labels.ndim == 2 and 1 in labels.shape:
        labels = labels.reshape(-1)
    if labels.ndim != 1:
        raise DataError(f"{path}: {y_key} has shape {labels.shape}, expected (m,)")
    if labels.shape[0] != images.shape[0]:
        raise DataError(f"{path}: {images.shape[0]} images but {labels.shape[0]} labels")
    if labels.min() < 0 or labels.max() >= NUM_CLASSES:
        bad = labels[(labels < 0) | (labels >= NUM_CLASSES)]
        raise DataError(f"{path}: {y_key} has labels outside 0..5 (e.g. {int(bad[0])})")
    if classes.ndim != 1 or classes.shape[0] != NUM_CLASSES:
        raise DataError(f"{path}: list_classes has shape {classes.shape}, expected (6,)")


def load_dataset(data_dir: str | os.PathLike | None = None, data: str = "auto",
                 synthetic_seed: int = 0, notify: Callable[[str], None] | None = _stderr):
    """Load SIGNS as the tutorial does.

    Returns ``(train_set_x_orig, train_set_y_orig, test_set_x_orig, test_set_y_orig, classes)``:
    images ``(m, 64, 64, 3)`` uint8, labels ``(1, m)`` int64, classes ``(6,)``.
    Where the data comes from: see :func:`resolve_data`; its one-line notice (synthetic data,
    or files that are not the genuine ones) goes to ``notify``.
    """
    source = resolve_data(data, data_dir, synthetic_seed)
    loaded = load_from(source.directory)
    if source.notice and notify is not None:  # after loading: a bad file is one error line
        notify(source.notice)
    return loaded


def load_from(directory: str | os.PathLike):
    """Read ``train_signs.h5`` and ``test_signs.h5`` from ``directory``.

    Returns the tuple of :func:`load_dataset`.
    """
    directory = Path(directory)
    train_x, train_y, train_classes = read_split(directory / TRAIN_FILE, "train")
    test_x, test_y, test_classes = read_split(directory / TEST_FILE, "test")
    if not np.array_equal(train_classes, test_classes):
        raise DataError(f"{directory}: train and test files list different classes "
                        f"({train_classes.tolist()} vs {test_classes.tolist()})")
    return train_x, train_y.reshape(1, -1), test_x, test_y.reshape(1, -1), train_classes


@dataclass
class TutorialArrays:
    """SIGNS in the tutorial's layout, ready to train on.

    ``X_train`` (12288, m) and ``X_test`` float64 in [0, 1]; one-hot ``Y_train`` (6, m) and
    ``Y_test``; ``train_labels`` and ``test_labels`` (m,) int64; ``source`` where it came from;
    ``train_images`` and ``test_images`` the images as stored, (m, 64, 64, 3) uint8 (for the
    convolutional models).
    """

    X_train: np.ndarray
    Y_train: np.ndarray
    X_test: np.ndarray
    Y_test: np.ndarray
    train_labels: np.ndarray
    test_labels: np.ndarray
    source: DataSource
    train_images: np.ndarray
    test_images: np.ndarray

    @property
    def kind(self) -> str:
        return self.source.kind


def load_tutorial_arrays(data_dir: str | os.PathLike | None = None, data: str = "auto",
                         notify: Callable[[str], None] | None = _stderr) -> TutorialArrays:
    """Resolve, load, flatten and one-hot SIGNS as every command line does.

    The source's notice goes to ``notify`` only once the files have loaded, so a bad file
    gives one error line, not a note and then an error.
    """
    source = resolve_data(data, data_dir)
    train_x, train_y, test_x, test_y, _ = load_from(source.directory)
    if source.notice and notify is not None:
        notify(source.notice)
    return TutorialArrays(flatten(train_x), convert_to_one_hot(train_y, NUM_CLASSES), flatten(test_x),
                          convert_to_one_hot(test_y, NUM_CLASSES), train_y.reshape(-1),
                          test_y.reshape(-1), source, train_x, test_x)


def flatten(images: np.ndarray, dtype=np.float64) -> np.ndarray:
    """``(m, 64, 64, 3)`` uint8 -> ``(12288, m)`` in [0, 1]: ``X.reshape(m, -1).T / 255``.

    Float64 like the NumPy original unless ``dtype`` says otherwise (the division is done in
    float64 and then cast, so the float32 result is the original's float64 values rounded).
    """
    flat = images.reshape(images.shape[0], -1).T / 255.0
    if not np.all(np.isfinite(flat)) or flat.min() < 0 or flat.max() > 1:
        raise DataError("images: pixel values outside [0, 1] after dividing by 255")
    return flat.astype(dtype, copy=False)


def convert_to_one_hot(Y: np.ndarray, C: int) -> np.ndarray:
    """Labels ``(1, m)`` (or ``(m,)``) -> one-hot columns ``(C, m)``: ``np.eye(C)[Y.reshape(-1)].T``."""
    return np.eye(C)[np.asarray(Y).reshape(-1)].T


def minibatch_indices(m: int, minibatch_size: int = 64, seed: int = 0) -> list[np.ndarray]:
    """The column indices of each mini-batch of the tutorial's ``random_mini_batches``.

    ``np.random.seed(seed)``, one ``np.random.permutation(m)``, then consecutive slices of
    ``minibatch_size``; the last holds the remainder (m = 1080, size 32: 33 x 32 + 24).
    Both sides' ``random_mini_batches`` and the idiomatic port's sampler use these indices,
    so every implementation sees the same examples in the same order.
    """
    if minibatch_size < 1:
        raise ValueError(f"minibatch_size must be >= 1, got {minibatch_size}")
    np.random.seed(seed)
    permutation = np.random.permutation(m)
    return [permutation[k:k + minibatch_size] for k in range(0, m, minibatch_size)]


def load_image(path: str | os.PathLike, max_pixels: int = 50_000_000) -> np.ndarray:
    """Any photo -> ``(64, 64, 3)`` uint8 RGB, resized as the notebook's last cell does.

    Raises :class:`DataError` for a missing, unreadable, non-image or absurdly large file.
    """
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such image file")
    try:
        with Image.open(path) as image:
            width, height = image.size
            if width * height > max_pixels:
                raise DataError(f"{path}: image is {width}x{height}, larger than "
                                f"{max_pixels:,} pixels; resize it first")
            rgb = image.convert("RGB").resize((64, 64), Image.Resampling.BILINEAR)
            return np.asarray(rgb, dtype=np.uint8)
    except DataError:
        raise
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as exc:
        raise DataError(f"{path}: not a readable image ({type(exc).__name__}: {exc})") from None
