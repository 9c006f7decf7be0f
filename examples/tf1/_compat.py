"""``tf.compat.v1.layers`` and ``tf.compat.v1.nn.rnn_cell`` wherever this TensorFlow keeps them.

With Keras 3 (TF 2.16+), ``tf.compat.v1.layers.dense`` and ``tf.compat.v1.nn.rnn_cell.LSTMCell``
raise "not available with Keras 3"; the same TF1 classes live on in ``tf_keras`` (the Keras 2
package), whose v1 API exports them as ``keras.__internal__.legacy.layers`` / ``.rnn_cell``.
"""

from __future__ import annotations

import tensorflow as tf


def _usable(getter) -> bool:
    try:
        getter()
        return True
    except (AttributeError, ImportError):
        return False


def layers():
    """The TF1 ``tf.layers`` module (``dense``, ``conv2d``, ``max_pooling2d``, ``dropout`` ...)."""
    if _usable(lambda: tf.compat.v1.layers.dense):
        return tf.compat.v1.layers
    from tf_keras.api._v1.keras.__internal__ import legacy

    return legacy.layers


def rnn_cell():
    """The TF1 ``tf.nn.rnn_cell`` module (``BasicLSTMCell``, ``LSTMCell``, ``MultiRNNCell`` ...)."""
    if _usable(lambda: tf.compat.v1.nn.rnn_cell.BasicLSTMCell):
        return tf.compat.v1.nn.rnn_cell
    from tf_keras.api._v1.keras.__internal__ import legacy

    return legacy.rnn_cell


def has_legacy() -> bool:
    """Whether :func:`layers` and :func:`rnn_cell` can be had (``tf_keras`` installed, or TF < 2.16)."""
    return _usable(layers) and _usable(rnn_cell)
