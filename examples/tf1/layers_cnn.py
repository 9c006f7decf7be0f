"""The ``tf.layers`` MNIST tutorial's CNN (TF 1.x's "Build a Convolutional Neural Network using
Estimators"), as a plain graph with a training switch.

The tutorial's ``cnn_model_fn``: ``conv2d(32, [5, 5], "same", relu)``, ``max_pooling2d([2, 2], 2)``,
``conv2d(64, ...)``, pooling, a reshape to ``(-1, 7 * 7 * 64)``, ``dense(1024, relu)``,
``dropout(rate=0.4, training=mode == TRAIN)``, ``dense(10)`` logits;
``losses.sparse_softmax_cross_entropy`` on integer labels; ``GradientDescentOptimizer(0.001)
.minimize(loss, global_step=tf.train.get_global_step())``. The variables are the layers' own:
``conv2d/kernel``, ``conv2d/bias``, ``conv2d_1/kernel``, ..., ``dense_1/bias``.

Instead of an Estimator's ``mode``, ``training`` is a ``placeholder_with_default(False)`` (the
usual TF1 idiom, ``is_training``), or a Python bool. With a placeholder, ``tf.layers.dropout``
builds a ``tf.cond``, whose random mask lives inside the condition's branch.
Additions: ``dtype``, widths, ``optimizer``.
"""

from __future__ import annotations

import tensorflow as tf

from examples.tf1._compat import layers

tf1 = tf.compat.v1


def cnn(features, training, conv1=32, conv2=64, fc=1024, rate=0.4):
    L = layers()
    input_layer = tf.reshape(features, [-1, 28, 28, 1])
    conv_1 = L.conv2d(inputs=input_layer, filters=conv1, kernel_size=[5, 5], padding="same",
                      activation=tf.nn.relu)
    pool1 = L.max_pooling2d(inputs=conv_1, pool_size=[2, 2], strides=2)
    conv_2 = L.conv2d(inputs=pool1, filters=conv2, kernel_size=[5, 5], padding="same",
                      activation=tf.nn.relu)
    pool2 = L.max_pooling2d(inputs=conv_2, pool_size=[2, 2], strides=2)
    pool2_flat = tf.reshape(pool2, [-1, 7 * 7 * conv2])
    dense = L.dense(inputs=pool2_flat, units=fc, activation=tf.nn.relu)
    dropout = L.dropout(inputs=dense, rate=rate, training=training)
    logits = L.dense(inputs=dropout, units=10)
    return logits, dropout


def build(dtype="float32", conv1=32, conv2=64, fc=1024, learning_rate=0.001, optimizer=None, training=None):
    """The graph in the current default graph; a dict of ``x``, ``labels``, ``is_training`` (the
    switch placeholder, or None when ``training`` is a Python bool), ``logits``, ``dropout`` (its
    output), ``loss``, ``train_op``."""
    dtype = tf.as_dtype(dtype)
    x = tf1.placeholder(dtype, [None, 784], name="x")
    labels = tf1.placeholder(tf.int64, [None], name="labels")
    is_training = tf1.placeholder_with_default(False, [], name="is_training") if training is None else None
    logits, dropout = cnn(x, is_training if training is None else training, conv1, conv2, fc)
    loss = tf1.losses.sparse_softmax_cross_entropy(labels=labels, logits=logits)
    global_step = tf1.train.get_or_create_global_step()
    optimizer = optimizer if optimizer is not None else tf1.train.GradientDescentOptimizer(learning_rate)
    train_op = optimizer.minimize(loss=loss, global_step=global_step)
    return {"x": x, "labels": labels, "is_training": is_training, "logits": logits, "dropout": dropout,
            "loss": loss, "train_op": train_op}
