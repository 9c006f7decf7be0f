"""The tutorial in PyTorch: a line-by-line twin of ``tf_original`` plus an idiomatic version.

Never imports TensorFlow. ``model.py`` mirrors ``tf_original/model.py`` function by function;
``nn_model.py`` is the idiomatic ``nn.Module`` / ``Dataset`` / ``DataLoader`` form and
``fast.py`` the same computation without its overhead (bit for bit; the CLI's default);
``optim.py`` holds the TF1-compatible Adam; ``dtypes.py`` the one dtype-name conversion;
``train.py`` the command line. The implementations and their names are listed in
``signs/implementations.py``.
"""
