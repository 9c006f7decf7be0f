"""Classic TF1 programs written by others (re-written here from their well-known architecture),
each with a PyTorch twin, used to prove :mod:`parity.tf1` on code this project did not design.

* :mod:`examples.tf1.mnist_deep`: TensorFlow 1.x's "Deep MNIST for experts" convnet
  (``tf.Variable`` weights under ``name_scope``, ``tf.nn.conv2d``, ``keep_prob`` dropout, Adam);
  twin :mod:`examples.tf1.mnist_deep_torch`.
* :mod:`examples.tf1.lstm_classifier`: the classic TF1 recurrent MNIST classifier (rows as time
  steps, ``rnn_cell.BasicLSTMCell`` with ``forget_bias=1.0``, ``static_rnn``/``dynamic_rnn``, a
  ``tf.Variable`` output layer); twin :mod:`examples.tf1.lstm_classifier_torch`.
* :mod:`examples.tf1.layers_cnn`: the ``tf.layers`` MNIST tutorial's CNN (``conv2d``,
  ``max_pooling2d``, ``dense``, ``dropout(training=...)``, ``global_step``); twin
  :mod:`examples.tf1.layers_cnn_torch`. Needs ``tf_keras`` (TF 2.16+ keeps ``tf.compat.v1.layers``
  and ``rnn_cell`` only there).

Widths are parameters so that tests can shrink them; the architectures are the originals'.
"""
