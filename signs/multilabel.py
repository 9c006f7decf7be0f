"""A synthetic multi-label set, framework-free: "which shapes appear in the picture?".

Each image is ``(64, 64, 3)`` uint8 and shows a random subset of {circle, square, triangle}:
every shape is present with probability 1/2, independently of the others, so an image may
hold none, one, two or all three. The label of an image is a multi-hot column, one row per
shape in :data:`SHAPES` order, so a set of ``m`` images has labels ``(3, m)`` int64 -- the
``(labels, examples)`` layout of the tutorial. Unlike SIGNS (exactly one class per image,
softmax), the labels are not mutually exclusive: the net needs one sigmoid per label and
binary cross-entropy summed over labels (see ``docs/theory/multi_label.md``).

Drawing: a dark background with a gentle colour gradient, each present shape in its own
randomly chosen quadrant (so no shape hides another) at a random size, offset, tilt and bright
colour, then pixel noise. Easy enough for the tutorial's small fully-connected net to learn
something in a few dozen epochs (it has no convolutions: it must learn each shape in each
quadrant separately). Deterministic: the same ``seed`` gives identical arrays; a few hundred
images take well under a second.

Also here, because both sides need the same numbers and must not re-draw them:
:func:`initial_parameters_for_outputs`, the tutorial's Glorot seed-1 weights with the output
layer cut to the first ``k`` rows (or one chosen row) of ``W3``.
"""

from __future__ import annotations

import numpy as np

from signs.weights import load_initial_parameters

SHAPES = ("circle", "square", "triangle")
IMAGE_SHAPE = (64, 64, 3)
_GRID_Y, _GRID_X = np.mgrid[0:64, 0:64].astype(np.float64) + 0.5
# Quadrant centres (x, y); each present shape takes a different one.
_CELLS = np.array([(16.0, 16.0), (48.0, 16.0), (16.0, 48.0), (48.0, 48.0)])


def _shape_mask(shape: str, cx: float, cy: float, size: float, angle: float) -> np.ndarray:
    """Boolean ``(64, 64)`` mask of one shape centred at ``(cx, cy)``; ``size`` is its half-width."""
    if shape == "circle":
        return (_GRID_X - cx) ** 2 + (_GRID_Y - cy) ** 2 <= size ** 2
    # square and triangle: rotate the pixel grid into the shape's own frame
    c, s = np.cos(angle), np.sin(angle)
    u = c * (_GRID_X - cx) + s * (_GRID_Y - cy)
    v = -s * (_GRID_X - cx) + c * (_GRID_Y - cy)
    if shape == "square":
        half = size * 0.85  # a square of the same half-width looks much bigger than the circle
        return (np.abs(u) <= half) & (np.abs(v) <= half)
    if shape == "triangle":
        # equilateral, pointing "up" in its own frame, circumradius ``size``
        apex, base = -size, size / 2
        slope = np.tan(np.pi / 6)  # half-width grows by tan(30 deg) per unit down from the apex
        return (v >= apex) & (v <= base) & (np.abs(u) <= (v - apex) * slope)
    raise ValueError(f"unknown shape {shape!r}: expected one of {', '.join(SHAPES)}")


def render(present: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One ``(64, 64, 3)`` uint8 image holding the shapes whose entry in ``present`` (3,) is 1."""
    base = rng.uniform(10, 90, size=3)  # a dark background with a gentle colour gradient
    slope = rng.normal(0, 0.3, size=(2, 3))
    image = base + _GRID_X[..., None] * slope[0] + _GRID_Y[..., None] * slope[1]
    cells = rng.permutation(len(_CELLS))
    for k, shape in enumerate(SHAPES):
        if not present[k]:
            continue
        cx, cy = _CELLS[cells[k]] + rng.uniform(-3, 3, size=2)
        mask = _shape_mask(shape, cx, cy, rng.uniform(9, 12), rng.uniform(-0.3, 0.3))
        image[mask] = rng.uniform(150, 255, size=3)  # a bright colour
    image += rng.normal(0, rng.uniform(3, 10), size=image.shape)
    return np.clip(np.rint(image), 0, 255).astype(np.uint8)


def generate(m: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``m`` images ``(m, 64, 64, 3)`` uint8 and multi-hot labels ``(3, m)`` int64 (rows: :data:`SHAPES`).

    Every label pattern is drawn independently with probability 1/2 per shape.
    """
    if m < 0:
        raise ValueError(f"m must be >= 0, got {m}")
    rng = np.random.default_rng(seed)
    labels = (rng.random((len(SHAPES), m)) < 0.5).astype(np.int64)
    images = np.empty((m, *IMAGE_SHAPE), dtype=np.uint8)
    for i in range(m):
        images[i] = render(labels[:, i], rng)
    return images, labels


def load_multilabel(m_train: int = 400, m_test: int = 200, seed: int = 0):
    """A train and a test set from independent streams of ``seed``.

    Returns ``(train_x (m_train, 64, 64, 3) uint8, train_y (3, m_train) int64,
    test_x (m_test, 64, 64, 3) uint8, test_y (3, m_test) int64, SHAPES)``; flatten the images
    with :func:`signs.flatten` to the tutorial's ``(12288, m)``.
    """
    train_x, train_y = generate(m_train, 2 * seed)
    test_x, test_y = generate(m_test, 2 * seed + 1)
    return train_x, train_y, test_x, test_y, SHAPES


def initial_parameters_for_outputs(outputs, dtype: str = "float32") -> dict[str, np.ndarray]:
    """The tutorial's Glorot seed-1 parameters with the output layer cut to ``outputs``.

    ``outputs`` is an int ``k`` (the first ``k`` rows of ``W3``/``b3``: a net with ``k`` sigmoid
    outputs) or a sequence of row indices (``[c]``: the single-output head of one-vs-all
    classifier ``c``). ``W1`` (25, 12288), ``b1`` (25, 1), ``W2`` (12, 25), ``b2`` (12, 1) are
    the tutorial's; ``W3`` is (k, 12) and ``b3`` (k, 1) -- rows of the tutorial's ``W3`` (6, 12)
    and zero biases. A deterministic slice of one stored draw: both sides start from the very
    same numbers, nothing is re-drawn.
    """
    params = load_initial_parameters(dtype)
    rows = list(range(outputs)) if isinstance(outputs, int | np.integer) else [int(r) for r in outputs]
    if not rows or any(not 0 <= r < params["W3"].shape[0] for r in rows):
        raise ValueError(f"outputs {outputs!r}: expected 1..6 outputs or row indices in 0..5")
    params = dict(params)
    params["W3"] = params["W3"][rows].copy()
    params["b3"] = params["b3"][rows].copy()
    return params
