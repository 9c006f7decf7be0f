"""Part 2 of the tutorial: the SIGNS network in TensorFlow 1.x style (``tf.compat.v1``).

Layout throughout: ``(features, examples)``. ``X`` is (12288, m), ``Y`` one-hot (6, m),
``W1`` (25, 12288), ``b1`` (25, 1), ... ``Z3`` (6, m).

Additions to the notebook, none of which change its numbers: a ``dtype`` (float32 as the
original, float64 for exact parity work) and ``initial_parameters`` (start from given weights
instead of the Glorot draw). The parity harness records its steps from the graph these functions
build (``parity.tf1.GraphRun``, as for any TF1 graph), so :func:`model` stays the notebook's loop.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from signs import minibatch_indices

tf1 = tf.compat.v1

PARAMETER_NAMES = ("W1", "b1", "W2", "b2", "W3", "b3")
LAYER_SIZES = {"W1": [25, 12288], "b1": [25, 1], "W2": [12, 25], "b2": [12, 1],
               "W3": [6, 12], "b3": [6, 1]}


def create_placeholders(n_x, n_y, dtype=tf.float32):
    """Placeholders for one mini-batch: ``X`` (n_x, None) and ``Y`` (n_y, None)."""
    X = tf1.placeholder(dtype, shape=[n_x, None], name="X")
    Y = tf1.placeholder(dtype, shape=[n_y, None], name="Y")
    return X, Y


def initialize_parameters(dtype=tf.float32):
    """Glorot-uniform weights with seed 1, zero biases, as ``tf.get_variable`` variables.

    The notebook's ``tf.contrib.layers.xavier_initializer(seed=1)`` is gone from TF 2.x;
    ``glorot_uniform_initializer(seed=1)`` is the same distribution drawn by the same op.
    With graph seed 1 and op seed 1 every initializer shares one random stream, so W3's
    unit draws equal W2's first 72 (a property of the original, kept).
    """
    tf1.set_random_seed(1)
    W1 = tf1.get_variable("W1", LAYER_SIZES["W1"], dtype=dtype,
                          initializer=tf1.glorot_uniform_initializer(seed=1))
    b1 = tf1.get_variable("b1", LAYER_SIZES["b1"], dtype=dtype, initializer=tf1.zeros_initializer())
    W2 = tf1.get_variable("W2", LAYER_SIZES["W2"], dtype=dtype,
                          initializer=tf1.glorot_uniform_initializer(seed=1))
    b2 = tf1.get_variable("b2", LAYER_SIZES["b2"], dtype=dtype, initializer=tf1.zeros_initializer())
    W3 = tf1.get_variable("W3", LAYER_SIZES["W3"], dtype=dtype,
                          initializer=tf1.glorot_uniform_initializer(seed=1))
    b3 = tf1.get_variable("b3", LAYER_SIZES["b3"], dtype=dtype, initializer=tf1.zeros_initializer())
    parameters = {"W1": W1, "b1": b1, "W2": W2, "b2": b2, "W3": W3, "b3": b3}
    return parameters


def forward_propagation(X, parameters):
    """LINEAR -> RELU -> LINEAR -> RELU -> LINEAR. ``X`` (12288, m) -> ``Z3`` (6, m)."""
    W1 = parameters["W1"]
    b1 = parameters["b1"]
    W2 = parameters["W2"]
    b2 = parameters["b2"]
    W3 = parameters["W3"]
    b3 = parameters["b3"]
    Z1 = tf.add(tf.matmul(W1, X), b1)
    A1 = tf.nn.relu(Z1)
    Z2 = tf.add(tf.matmul(W2, A1), b2)
    A2 = tf.nn.relu(Z2)
    Z3 = tf.add(tf.matmul(W3, A2), b3)
    return Z3


def compute_cost(Z3, Y):
    """Mean softmax cross-entropy; ``Z3`` and one-hot ``Y`` (6, m) are transposed to (m, 6) first."""
    logits = tf.transpose(Z3)
    labels = tf.transpose(Y)
    cost = tf.reduce_mean(tf.nn.softmax_cross_entropy_with_logits(logits=logits, labels=labels))
    return cost


def random_mini_batches(X, Y, mini_batch_size=64, seed=0):
    """Shuffle the columns of ``X`` (n_x, m) and ``Y`` (n_y, m) with ``np.random.seed(seed)``
    and cut them into mini-batches of ``mini_batch_size`` columns, the last holding the rest.
    The permutation and cut come from :func:`signs.minibatch_indices`, shared by every side.
    """
    mini_batches = []
    for indices in minibatch_indices(X.shape[1], mini_batch_size, seed):
        mini_batch_X = X[:, indices]
        mini_batch_Y = Y[:, indices]
        mini_batches.append((mini_batch_X, mini_batch_Y))
    return mini_batches


def model(X_train, Y_train, X_test, Y_test, learning_rate=0.0001,
          num_epochs=1500, minibatch_size=32, print_cost=True, *,
          dtype="float32", seed=3, initial_parameters=None):
    """Train the three-layer network with Adam; return ``(parameters, costs)``.

    ``X_*`` (12288, m) and one-hot ``Y_*`` (6, m), in ``(features, examples)`` layout.
    ``costs`` holds the epoch cost every 5 epochs (when ``print_cost``), as the notebook's plot.

    ``seed`` is the data-order seed: epoch ``e`` (from 0) shuffles with ``seed + e + 1``.
    ``initial_parameters``: NumPy arrays to start from instead of the Glorot draw.
    """
    dtype = tf.as_dtype(dtype)
    graph = tf.Graph()  # the notebook's ops.reset_default_graph(): start from an empty graph
    with graph.as_default():
        tf1.set_random_seed(1)
        (n_x, m) = X_train.shape
        n_y = Y_train.shape[0]
        costs = []

        X, Y = create_placeholders(n_x, n_y, dtype)
        parameters = initialize_parameters(dtype)
        Z3 = forward_propagation(X, parameters)
        cost = compute_cost(Z3, Y)
        optimizer = tf1.train.AdamOptimizer(learning_rate=learning_rate).minimize(cost)
        init = tf1.global_variables_initializer()

        with tf1.Session() as sess:
            sess.run(init)
            if initial_parameters is not None:
                _load(sess, parameters, initial_parameters)
            for epoch in range(num_epochs):
                epoch_cost = 0.
                # Quirk of the original: divide by the number of *full* mini-batches (33 for
                # m = 1080, size 32) although 34 are run, the last with 24 examples.
                num_minibatches = int(m / minibatch_size)
                seed = seed + 1
                minibatches = random_mini_batches(X_train, Y_train, minibatch_size, seed)

                for minibatch in minibatches:
                    (minibatch_X, minibatch_Y) = minibatch
                    _, minibatch_cost = sess.run([optimizer, cost],
                                                 feed_dict={X: minibatch_X, Y: minibatch_Y})
                    epoch_cost += minibatch_cost / num_minibatches

                if print_cost is True and epoch % 100 == 0:
                    print("Cost after epoch %i: %f" % (epoch, epoch_cost))  # noqa: UP031 (the original)
                if print_cost is True and epoch % 5 == 0:
                    costs.append(epoch_cost)

            # The notebook plots ``costs`` here; the CLI does it (tf_original.train --plot).
            parameters = sess.run(parameters)
            if print_cost:
                print("Parameters have been trained!")

            correct_prediction = tf.equal(tf.argmax(Z3), tf.argmax(Y))
            accuracy = tf.reduce_mean(tf.cast(correct_prediction, "float"))
            if print_cost:
                print("Train Accuracy:", accuracy.eval({X: X_train, Y: Y_train}))
                print("Test Accuracy:", accuracy.eval({X: X_test, Y: Y_test}))

    return parameters, costs


def predict(X, parameters):
    """Arg-max class of each column of ``X`` (12288, m) under ``parameters`` -> (m,) int64."""
    X = np.asarray(X)
    dtype = tf.as_dtype(parameters["W1"].dtype)
    with tf.Graph().as_default():
        params = {name: tf1.convert_to_tensor(parameters[name]) for name in PARAMETER_NAMES}
        x = tf1.placeholder(dtype, [X.shape[0], None])
        z3 = forward_propagation(x, params)
        p = tf.argmax(z3)
        with tf1.Session() as sess:
            prediction = sess.run(p, feed_dict={x: X})
    return prediction


def _load(sess, variables, values):
    """Assign NumPy ``values`` to the graph ``variables`` (both dicts keyed by name)."""
    for name, variable in variables.items():
        variable.load(np.asarray(values[name]), sess)


def glorot_draw(dtype="float32"):
    """The Glorot-uniform seed-1 draw :func:`initialize_parameters` makes, as NumPy arrays."""
    with tf.Graph().as_default():
        parameters = initialize_parameters(tf.as_dtype(dtype))
        with tf1.Session() as sess:
            sess.run(tf1.global_variables_initializer())
            return sess.run(parameters)


