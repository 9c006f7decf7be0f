"""Part 1 of the tutorial: exploring the TensorFlow library, TF1 style.

Every function builds a graph, runs it in a ``Session`` and returns NumPy values, as the
notebook does. Each snippet builds its own ``tf.Graph`` (the notebook relies on one global
default graph; a fresh graph per snippet is the same thing without leaking state, and leaves
TF2's eager mode untouched for the rest of the process).
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

tf1 = tf.compat.v1


def loss_snippet():
    """``y_hat = 36``, ``y = 39``, ``loss = (y - y_hat)**2`` as variables -> 9."""
    with tf.Graph().as_default():
        y_hat = tf1.constant(36, name="y_hat")
        y = tf1.constant(39, name="y")
        loss = tf1.Variable((y - y_hat) ** 2, name="loss")
        init = tf1.global_variables_initializer()
        with tf1.Session() as session:
            session.run(init)
            return session.run(loss)


def constants_snippet():
    """``c = a * b`` with ``a = 2``, ``b = 10`` -> ``(str(c), value)``.

    Printing ``c`` shows a tensor; running it in a session gives 20.
    """
    with tf.Graph().as_default():
        a = tf1.constant(2)
        b = tf1.constant(10)
        c = tf1.multiply(a, b)
        printed = str(c)  # building the graph computed nothing: this is a Tensor, not 20
        with tf1.Session() as session:
            return printed, session.run(c)


def placeholder_snippet(value=3):
    """An int64 placeholder ``x``; ``2 * x`` fed ``x = 3`` -> 6."""
    with tf.Graph().as_default():
        x = tf1.placeholder(tf.int64, name="x")
        with tf1.Session() as session:
            return session.run(2 * x, feed_dict={x: value})


def linear_function():
    """``Y = W X + b`` with NumPy seed 1 draws X (3, 1), W (4, 3), b (4, 1), in that order -> (4, 1)."""
    np.random.seed(1)
    with tf.Graph().as_default():
        X = tf1.constant(np.random.randn(3, 1), name="X")
        W = tf1.constant(np.random.randn(4, 3), name="W")
        b = tf1.constant(np.random.randn(4, 1), name="b")
        Y = tf.add(tf.matmul(W, X), b)
        with tf1.Session() as sess:
            result = sess.run(Y)
    return result


def sigmoid(z):
    """Sigmoid of ``z`` fed through a float32 placeholder."""
    with tf.Graph().as_default():
        x = tf1.placeholder(tf.float32, name="x")
        sigmoid = tf.sigmoid(x)
        with tf1.Session() as sess:
            result = sess.run(sigmoid, feed_dict={x: z})
    return result


def cost(logits, labels):
    """Element-wise ``sigmoid_cross_entropy_with_logits`` through two float32 placeholders.

    Quirk kept from the notebook: its example passes ``sigmoid([0.2, 0.4, 0.7, 0.9])`` as the
    logits, i.e. values that have already been through a sigmoid, which the loss applies again.
    """
    with tf.Graph().as_default():
        z = tf1.placeholder(tf.float32, name="z")
        y = tf1.placeholder(tf.float32, name="y")
        cost = tf.nn.sigmoid_cross_entropy_with_logits(logits=z, labels=y)
        with tf1.Session() as sess:
            cost = sess.run(cost, feed_dict={z: logits, y: labels})
    return cost


def one_hot_matrix(labels, C):
    """``tf.one_hot(labels, C, axis=0)``: a (C, m) float32 matrix, one column per example."""
    with tf.Graph().as_default():
        C = tf1.constant(C, name="C")
        one_hot_matrix = tf.one_hot(labels, C, axis=0)
        with tf1.Session() as sess:
            one_hot = sess.run(one_hot_matrix)
    return one_hot


def ones(shape):
    """``tf.ones(shape)`` evaluated: float32 ones."""
    with tf.Graph().as_default():
        ones = tf.ones(shape)
        with tf1.Session() as sess:
            ones = sess.run(ones)
    return ones
