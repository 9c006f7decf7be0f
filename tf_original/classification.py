"""Softmax, sigmoid, their losses, one-vs-all and multi-label training, in TensorFlow.

The twin of ``torch_port/classification.py``: same functions, same order, same arguments,
same ``(classes or labels, examples)`` layout as the tutorial, NumPy in and out.

* From scratch, written from the course notes' formulas with TF ops: :func:`softmax`,
  :func:`hardmax`, :func:`sigmoid`, :func:`cross_entropy` (one-hot targets) and
  :func:`binary_cross_entropy` (multi-label targets). Natural logarithm, as both frameworks use.
* The framework's fused, numerically stable losses on logits, beside them:
  :func:`fused_softmax_cross_entropy` (``tf.nn.softmax_cross_entropy_with_logits``) and
  :func:`fused_sigmoid_cross_entropy` (``tf.nn.sigmoid_cross_entropy_with_logits``).
* Decisions: :func:`predict_one_vs_all` (the most confident binary classifier wins) and
  :func:`predict_multi_label` (every label whose probability reaches the threshold).
* Training, TF1 style (graph, placeholders, session, ``AdamOptimizer``), on the tutorial's
  architecture 12288 -> 25 -> 12 -> k with sigmoid outputs and binary cross-entropy, from the
  tutorial's initial weights and with its mini-batches: :func:`model_sigmoid`, and on top of
  it :func:`one_vs_all` (six separate k = 1 nets, one per SIGNS class, each starting from the
  tutorial's ``W1``, ``W2`` and row ``c`` of ``W3``) and :func:`multi_label` (one k = 3 net
  for the shapes set of :mod:`signs.multilabel`, starting from the first 3 rows of ``W3``).

The small functions run their ops eagerly when TF is in eager mode (TF 2's default) and in a
throw-away graph and session otherwise (e.g. after ``disable_eager_execution()``); either way
they return NumPy. ``python -m tf_original.classification`` trains the tutorial's softmax net,
the six one-vs-all nets and the multi-label net, and prints their accuracies.
"""

from __future__ import annotations

import numpy as np

from signs.cli import native_stderr_silenced

with native_stderr_silenced():  # TF's C++ start-up lines would precede a CLI error line
    import tensorflow as tf

from signs import accuracy_table, minibatch_indices
from signs.cli import run_main
from signs.errors import NonFiniteCost
from signs.multilabel import initial_parameters_for_outputs
from tf_original import model as tutorial
from tf_original.model import forward_propagation

tf1 = tf.compat.v1

PARAMETER_NAMES = ("W1", "b1", "W2", "b2", "W3", "b3")
DEFAULT_EPOCHS = 30


def _run(function, *arrays):
    """``function(*tensors)`` on NumPy-like inputs, returned as NumPy; eager if TF is, else in a session.

    float32/float64 inputs keep their dtype; anything else becomes float64 (NumPy's default).
    """
    values = []
    for a in arrays:
        a = np.asarray(a)
        values.append(a if a.dtype in (np.float32, np.float64) else a.astype(np.float64))
    if tf.executing_eagerly():
        return function(*(tf.constant(a) for a in values)).numpy()
    with tf.Graph().as_default():
        result = function(*(tf1.constant(a) for a in values))
        with tf1.Session() as sess:
            return sess.run(result)


def softmax(z):
    """From the formula ``a = e^z / sum(e^z)``, over axis 0 (classes): ``(C, m)`` or ``(C,)`` -> same shape.

    The column maximum is subtracted first: ``e^(z-c) / sum(e^(z-c))`` is the same number for
    any ``c``, and with ``c = max(z)`` no ``e^z`` can overflow.
    """
    def f(z):
        t = tf.exp(z - tf.reduce_max(z, axis=0, keepdims=True))
        return t / tf.reduce_sum(t, axis=0, keepdims=True)
    return _run(f, z)


def hardmax(z):
    """1 at the arg-max of each column, 0 elsewhere: ``(C, m)`` or ``(C,)`` -> same shape and dtype."""
    def f(z):
        # tf.one_hot(axis=0) puts the classes on axis 0, as the tutorial's one_hot_matrix
        return tf.one_hot(tf.argmax(z, axis=0), tf.shape(z)[0], axis=0, dtype=z.dtype)
    return _run(f, z)


def sigmoid(z):
    """From the formula ``a = 1 / (1 + e^-z)``, element-wise; any shape."""
    def f(z):
        return 1 / (1 + tf.exp(-z))
    return _run(f, z)


def cross_entropy(y_hat, y):
    """``L = -sum_i y_i log(y_hat_i)`` over axis 0 (classes), natural log; ``(C, m)`` -> ``(m,)``.

    ``y`` one-hot (or any probability columns); ``y_hat`` probabilities (e.g. :func:`softmax`).
    ``xlogy`` is ``y * log(y_hat)`` with ``0 * log(0) = 0``, the usual convention.
    """
    def f(y_hat, y):
        return -tf.reduce_sum(tf.math.xlogy(y, y_hat), axis=0)
    return _run(f, y_hat, y)


def binary_cross_entropy(y_hat, y):
    """``L = -sum_i [y_i log(a_i) + (1 - y_i) log(1 - a_i)]`` over axis 0 (labels), natural log.

    ``y`` multi-hot ``(k, m)``, ``y_hat`` per-label probabilities ``(k, m)`` -> ``(m,)``.
    """
    def f(y_hat, y):
        return -tf.reduce_sum(tf.math.xlogy(y, y_hat) + tf.math.xlogy(1 - y, 1 - y_hat), axis=0)
    return _run(f, y_hat, y)


def fused_softmax_cross_entropy(logits, y):
    """``tf.nn.softmax_cross_entropy_with_logits`` per example; ``(C, m)`` -> ``(m,)``.

    Softmax and cross-entropy in one stable op, twin of torch's ``F.cross_entropy``. It wants
    examples first, so the ``(C, m)`` columns are transposed (as the tutorial's cost does);
    ``y`` one-hot.
    """
    def f(logits, y):
        return tf.nn.softmax_cross_entropy_with_logits(labels=tf.transpose(y), logits=tf.transpose(logits))
    return _run(f, logits, y)


def fused_sigmoid_cross_entropy(logits, y):
    """``tf.nn.sigmoid_cross_entropy_with_logits`` summed over axis 0 (labels): ``(k, m)`` -> ``(m,)``.

    Twin of torch's ``F.binary_cross_entropy_with_logits`` (element-wise, stable for any logit).
    """
    def f(logits, y):
        return tf.reduce_sum(tf.nn.sigmoid_cross_entropy_with_logits(labels=y, logits=logits), axis=0)
    return _run(f, logits, y)


def predict_one_vs_all(scores):
    """The class whose binary classifier is most confident: arg-max over axis 0; ``(C, m)`` -> ``(m,)`` int64.

    ``scores``: row ``c`` is classifier ``c``'s logit or probability (same arg-max: the sigmoid
    is increasing; logits avoid ties where float probabilities saturate at 1).
    """
    def f(scores):
        return tf.argmax(scores, axis=0)
    return _run(f, scores)


def predict_multi_label(probabilities, threshold=0.5):
    """Every label whose probability is ``>= threshold``: ``(k, m)`` -> multi-hot ``(k, m)`` int64."""
    if not 0 < threshold < 1:
        raise ValueError(f"threshold must be in (0, 1), got {threshold}")

    def f(probabilities):
        return tf.cast(probabilities >= threshold, tf.int64)
    return _run(f, probabilities)


def compute_sigmoid_cost(Z3, Y):
    """Mean over examples of the binary cross-entropy summed over labels; ``Z3`` logits, ``Y`` ``(k, m)``.

    Element-wise, so no transpose is needed (the softmax cost transposes to (m, C)).
    """
    cost = tf.reduce_mean(tf.reduce_sum(tf.nn.sigmoid_cross_entropy_with_logits(labels=Y, logits=Z3), axis=0))
    return cost


def model_sigmoid(X_train, Y_train, initial_parameters, learning_rate=0.0001, num_epochs=DEFAULT_EPOCHS,
                  minibatch_size=32, *, dtype="float32", seed=3, hook=None):
    """Train 12288 -> 25 -> 12 -> k with ``k`` sigmoid outputs and binary cross-entropy.

    ``X_train`` (12288, m), multi-hot ``Y_train`` (k, m), NumPy, ``(features, examples)``.
    ``initial_parameters``: NumPy ``W1`` (25, 12288), ``b1`` (25, 1), ``W2`` (12, 25), ``b2``
    (12, 1), ``W3`` (k, 12), ``b3`` (k, 1), e.g. from
    :func:`signs.multilabel.initial_parameters_for_outputs`. The loop is the tutorial's:
    epoch ``e`` (from 0) shuffles with ``seed + e + 1`` (:func:`signs.minibatch_indices`), one
    ``AdamOptimizer`` step per mini-batch, and the epoch cost is the sum of the mini-batch
    costs over ``int(m / minibatch_size)`` (the original's quirk, kept; at least 1).

    Returns ``(parameters, costs)``: NumPy arrays in the same layout, one cost per epoch.
    ``hook(record)`` after every step: ``epoch``, ``step`` (from 1), ``cost`` (float, before the
    update) and ``params`` (dict of NumPy arrays, after the update).
    """
    dtype = tf.as_dtype(dtype)
    X_train = np.asarray(X_train, dtype=dtype.as_numpy_dtype)
    Y_train = np.asarray(Y_train, dtype=dtype.as_numpy_dtype)
    graph = tf.Graph()
    with graph.as_default():
        (n_x, m) = X_train.shape
        n_y = Y_train.shape[0]
        costs = []

        X = tf1.placeholder(dtype, shape=[n_x, None], name="X")
        Y = tf1.placeholder(dtype, shape=[n_y, None], name="Y")
        # Variables holding the given values (the tutorial draws them with get_variable).
        parameters = {name: tf1.Variable(np.asarray(initial_parameters[name], dtype=dtype.as_numpy_dtype),
                                         name=name) for name in PARAMETER_NAMES}
        Z3 = forward_propagation(X, parameters)
        cost = compute_sigmoid_cost(Z3, Y)
        optimizer = tf1.train.AdamOptimizer(learning_rate=learning_rate).minimize(cost)
        init = tf1.global_variables_initializer()

        with tf1.Session() as sess:
            sess.run(init)
            step = 0
            for epoch in range(num_epochs):
                epoch_cost = 0.
                num_minibatches = max(int(m / minibatch_size), 1)
                seed = seed + 1
                for k, indices in enumerate(minibatch_indices(m, minibatch_size, seed)):
                    feed = {X: X_train[:, indices], Y: Y_train[:, indices]}
                    _, minibatch_cost = sess.run([optimizer, cost], feed_dict=feed)
                    minibatch_cost = float(minibatch_cost)  # a Python float, as torch's .item()
                    if not np.isfinite(minibatch_cost):
                        raise NonFiniteCost(epoch, k + 1, minibatch_cost)
                    step += 1
                    if hook is not None:
                        hook({"epoch": epoch, "step": step, "cost": minibatch_cost,
                              "params": sess.run(parameters)})
                    epoch_cost += minibatch_cost / num_minibatches
                costs.append(epoch_cost)

            parameters = sess.run(parameters)
    return parameters, costs


def one_vs_all(X_train, Y_train, learning_rate=0.0001, num_epochs=DEFAULT_EPOCHS, minibatch_size=32, *,
               dtype="float32", seed=3, hook=None):
    """Six (``C``) separate binary classifiers, classifier ``c`` trained on "class ``c`` or not".

    ``X_train`` (12288, m), one-hot ``Y_train`` (C, m). Classifier ``c`` is a k = 1 net
    (:func:`model_sigmoid`) fitted to row ``c`` of ``Y_train``, starting from the tutorial's
    ``W1``, ``W2`` and row ``c`` of its ``W3``. Each sees the same mini-batches (same ``seed``).
    Returns ``(classifiers, costs)``: ``C`` parameter dicts and ``C`` cost lists. ``hook``
    receives :func:`model_sigmoid`'s records with ``classifier`` (``c``) added.
    """
    classifiers, costs = [], []
    for c in range(Y_train.shape[0]):
        record_hook = None if hook is None else (lambda record, c=c: hook({"classifier": c, **record}))
        initial = initial_parameters_for_outputs([c], dtype)
        parameters, cost = model_sigmoid(X_train, Y_train[c:c + 1], initial, learning_rate, num_epochs,
                                         minibatch_size, dtype=dtype, seed=seed, hook=record_hook)
        classifiers.append(parameters)
        costs.append(cost)
    return classifiers, costs


def multi_label(X_train, Y_train, learning_rate=0.0001, num_epochs=DEFAULT_EPOCHS, minibatch_size=32, *,
                dtype="float32", seed=3, hook=None):
    """One net with ``k`` sigmoid outputs for multi-hot ``Y_train`` (k, m); ``X_train`` (12288, m).

    Starts from the tutorial's ``W1``, ``W2`` and the first ``k`` rows of ``W3``; returns
    :func:`model_sigmoid`'s ``(parameters, costs)``.
    """
    initial = initial_parameters_for_outputs(Y_train.shape[0], dtype)
    return model_sigmoid(X_train, Y_train, initial, learning_rate, num_epochs, minibatch_size,
                         dtype=dtype, seed=seed, hook=hook)


def output_logits(X, parameters):
    """The forward pass ``Z3`` (k, m) of ``X`` (12288, m) under NumPy ``parameters``, as NumPy."""
    X = np.asarray(X)
    dtype = tf.as_dtype(np.asarray(parameters["W1"]).dtype)
    with tf.Graph().as_default():
        params = {name: tf1.convert_to_tensor(np.asarray(parameters[name])) for name in PARAMETER_NAMES}
        x = tf1.placeholder(dtype, [X.shape[0], None])
        z3 = forward_propagation(x, params)
        with tf1.Session() as sess:
            return sess.run(z3, feed_dict={x: X})


def main(argv=None) -> int:
    """The command line: train, print the accuracy table (see :mod:`signs.accuracy_table`)."""
    side = accuracy_table.Side(
        framework="TensorFlow (TF1 style)", prog="python -m tf_original.classification",
        default_epochs=DEFAULT_EPOCHS,
        model=tutorial.model, predict=tutorial.predict, one_vs_all=one_vs_all,
        predict_one_vs_all=predict_one_vs_all, output_logits=output_logits, multi_label=multi_label,
        predict_multi_label=predict_multi_label, sigmoid=sigmoid)
    return accuracy_table.main(side, argv)


if __name__ == "__main__":
    raise SystemExit(run_main(main))
