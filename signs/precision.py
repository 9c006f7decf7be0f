"""Float32 constants as TensorFlow keeps them (framework-free)."""

from __future__ import annotations

import numpy as np


def f32(value: float) -> float:
    """A Python float holding the float32 rounding of ``value``.

    TF1 keeps learning rate, betas, epsilon (and momentum) as float32 constants; Keras keeps
    the learning rate as a float32 variable but the others as Python floats. Passing
    ``f32(0.9)`` etc. to Keras (and comparing in float64) makes both compute with TF1's values.
    """
    return float(np.float32(value))
