"""TensorFlow 1.x's "Deep MNIST for experts" convnet, as its users wrote it (``tf.compat.v1``).

The tutorial's architecture and idioms, unchanged: ``weight_variable`` / ``bias_variable``
helpers creating ``tf.Variable``s (truncated normal, stddev 0.1; constant 0.1) under
``tf.name_scope`` blocks, so that the checkpoint names are ``conv1/Variable``,
``conv1/Variable_1``, ..., ``fc2/Variable_1``; 5x5 SAME convolutions with ReLU, 2x2 max-pooling,
a reshape of the NHWC map to a flat vector, a ReLU layer, dropout through a ``keep_prob``
placeholder, the logits; mean softmax cross-entropy; ``AdamOptimizer(1e-4).minimize``; training
feeds ``keep_prob: 0.5``; ``tf.train.Saver`` checkpoints.

Additions, none changing the numbers: ``dtype`` (float64 for exact parity work; the tutorial's
``keep_prob`` placeholder is float32 and must have ``x``'s dtype for ``tf.nn.dropout``), widths
``conv1``, ``conv2``, ``fc`` (the tutorial's 32, 64, 1024) so tests can shrink the network, and
``optimizer`` (the tutorial's Adam by default).
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

tf1 = tf.compat.v1


def deepnn(x, dtype=tf.float32, conv1=32, conv2=64, fc=1024):
    """``x`` (m, 784) -> ``(y_conv, keep_prob)``: the logits (m, 10) and the dropout placeholder."""
    with tf1.name_scope("reshape"):
        x_image = tf.reshape(x, [-1, 28, 28, 1])

    with tf1.name_scope("conv1"):
        W_conv1 = weight_variable([5, 5, 1, conv1], dtype)
        b_conv1 = bias_variable([conv1], dtype)
        h_conv1 = tf.nn.relu(conv2d(x_image, W_conv1) + b_conv1)

    with tf1.name_scope("pool1"):
        h_pool1 = max_pool_2x2(h_conv1)

    with tf1.name_scope("conv2"):
        W_conv2 = weight_variable([5, 5, conv1, conv2], dtype)
        b_conv2 = bias_variable([conv2], dtype)
        h_conv2 = tf.nn.relu(conv2d(h_pool1, W_conv2) + b_conv2)

    with tf1.name_scope("pool2"):
        h_pool2 = max_pool_2x2(h_conv2)

    # after two poolings the 28x28 image is a 7x7 map of conv2 features
    with tf1.name_scope("fc1"):
        W_fc1 = weight_variable([7 * 7 * conv2, fc], dtype)
        b_fc1 = bias_variable([fc], dtype)
        h_pool2_flat = tf.reshape(h_pool2, [-1, 7 * 7 * conv2])
        h_fc1 = tf.nn.relu(tf.matmul(h_pool2_flat, W_fc1) + b_fc1)

    with tf1.name_scope("dropout"):
        keep_prob = tf1.placeholder(dtype)
        h_fc1_drop = tf1.nn.dropout(h_fc1, keep_prob)

    with tf1.name_scope("fc2"):
        W_fc2 = weight_variable([fc, 10], dtype)
        b_fc2 = bias_variable([10], dtype)
        y_conv = tf.matmul(h_fc1_drop, W_fc2) + b_fc2
    return y_conv, keep_prob


def conv2d(x, W):
    return tf.nn.conv2d(x, W, strides=[1, 1, 1, 1], padding="SAME")


def max_pool_2x2(x):
    return tf.nn.max_pool2d(x, ksize=[1, 2, 2, 1], strides=[1, 2, 2, 1], padding="SAME")


def weight_variable(shape, dtype=tf.float32):
    initial = tf1.truncated_normal(shape, stddev=0.1, dtype=dtype)
    return tf.Variable(initial)


def bias_variable(shape, dtype=tf.float32):
    initial = tf.constant(0.1, shape=shape, dtype=dtype)
    return tf.Variable(initial)


def build(dtype="float32", conv1=32, conv2=64, fc=1024, learning_rate=1e-4, optimizer=None):
    """The tutorial's graph in the current default graph: a dict of its endpoints
    (``x``, ``y_``, ``keep_prob``, ``y_conv``, ``cross_entropy``, ``train_step``, ``accuracy``)."""
    dtype = tf.as_dtype(dtype)
    x = tf1.placeholder(dtype, [None, 784])
    y_ = tf1.placeholder(dtype, [None, 10])
    y_conv, keep_prob = deepnn(x, dtype, conv1, conv2, fc)
    with tf1.name_scope("loss"):
        cross_entropy = tf.nn.softmax_cross_entropy_with_logits(labels=y_, logits=y_conv)
    cross_entropy = tf.reduce_mean(cross_entropy)
    with tf1.name_scope("adam_optimizer"):
        optimizer = optimizer or tf1.train.AdamOptimizer(learning_rate)
        train_step = optimizer.minimize(cross_entropy)
    with tf1.name_scope("accuracy"):
        correct_prediction = tf.equal(tf.argmax(y_conv, 1), tf.argmax(y_, 1))
        accuracy = tf.reduce_mean(tf.cast(correct_prediction, dtype))
    return {"x": x, "y_": y_, "keep_prob": keep_prob, "y_conv": y_conv, "cross_entropy": cross_entropy,
            "train_step": train_step, "accuracy": accuracy}


def train(images, labels, steps, batch_size=50, checkpoint=None, seed=0, **options):
    """The tutorial's loop: ``steps`` Adam steps on consecutive batches with ``keep_prob`` 0.5;
    saves a ``tf.train.Saver`` checkpoint at prefix ``checkpoint`` if given. Returns the costs."""
    with tf.Graph().as_default():
        tf1.set_random_seed(seed)
        net = build(**options)
        costs = []
        with tf1.Session() as sess:
            sess.run(tf1.global_variables_initializer())
            for i in range(steps):
                start = (i * batch_size) % len(images)
                batch = images[start:start + batch_size], labels[start:start + batch_size]
                _, cost = sess.run([net["train_step"], net["cross_entropy"]],
                                   feed_dict={net["x"]: batch[0], net["y_"]: batch[1], net["keep_prob"]: 0.5})
                costs.append(float(cost))
            if checkpoint is not None:
                tf1.train.Saver().save(sess, str(checkpoint))
    return np.asarray(costs)
