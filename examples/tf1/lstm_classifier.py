"""The classic TF1 recurrent MNIST classifier: each 28x28 image read row by row by an LSTM.

As the well-known TF1 examples wrote it: ``X`` (batch, timesteps, num_input) and one-hot ``Y``
placeholders; the output layer as ``tf.Variable(tf.random_normal(...))`` dicts ``weights['out']``
and ``biases['out']`` (checkpoint names ``Variable``, ``Variable_1``); an
``rnn_cell.BasicLSTMCell(num_hidden, forget_bias=1.0)`` unrolled by ``static_rnn`` over the
unstacked time steps (``unroll="static"``, names ``rnn/basic_lstm_cell/kernel`` and ``.../bias``)
or by ``dynamic_rnn`` (``unroll="dynamic"``, the same names); the logits from the last output;
mean softmax cross-entropy; ``GradientDescentOptimizer(learning_rate).minimize``.

Additions: ``dtype``, the sizes as parameters, and ``optimizer`` (any TF1 optimizer, built
by the caller, so that one program exercises every optimizer twin).
"""

from __future__ import annotations

import tensorflow as tf

from examples.tf1._compat import rnn_cell

tf1 = tf.compat.v1


def RNN(x, weights, biases, timesteps, num_hidden, dtype, unroll="static"):
    cell = rnn_cell().BasicLSTMCell(num_hidden, forget_bias=1.0)
    if unroll == "static":
        # a list of `timesteps` tensors of shape (batch_size, num_input)
        x = tf.unstack(x, timesteps, 1)
        outputs, states = tf1.nn.static_rnn(cell, x, dtype=dtype)
        last = outputs[-1]
    else:
        outputs, states = tf1.nn.dynamic_rnn(cell, x, dtype=dtype)
        last = outputs[:, -1]
    return tf.matmul(last, weights["out"]) + biases["out"]


def build(dtype="float32", timesteps=28, num_input=28, num_hidden=128, num_classes=10, learning_rate=0.001,
          optimizer=None, unroll="static"):
    """The graph in the current default graph; a dict of ``X``, ``Y``, ``logits``, ``loss_op``,
    ``train_op``, ``accuracy``."""
    dtype = tf.as_dtype(dtype)
    X = tf1.placeholder(dtype, [None, timesteps, num_input])
    Y = tf1.placeholder(dtype, [None, num_classes])
    weights = {"out": tf.Variable(tf1.random_normal([num_hidden, num_classes], dtype=dtype))}
    biases = {"out": tf.Variable(tf1.random_normal([num_classes], dtype=dtype))}
    logits = RNN(X, weights, biases, timesteps, num_hidden, dtype, unroll)
    prediction = tf.nn.softmax(logits)
    loss_op = tf.reduce_mean(tf.nn.softmax_cross_entropy_with_logits(logits=logits, labels=Y))
    optimizer = optimizer if optimizer is not None else tf1.train.GradientDescentOptimizer(learning_rate)
    train_op = optimizer.minimize(loss_op, global_step=tf1.train.get_global_step())
    correct_pred = tf.equal(tf.argmax(prediction, 1), tf.argmax(Y, 1))
    accuracy = tf.reduce_mean(tf.cast(correct_pred, dtype))
    return {"X": X, "Y": Y, "logits": logits, "loss_op": loss_op, "train_op": train_op, "accuracy": accuracy}
