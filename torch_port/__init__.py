"""The tutorial in PyTorch: a line-by-line twin of ``tf_original`` plus an idiomatic version.

Never imports TensorFlow. ``model.py`` mirrors ``tf_original/model.py`` function by function;
``nn_model.py`` is the idiomatic ``nn.Module`` / ``Dataset`` / ``DataLoader`` form;
``optim.py`` holds the TF1-compatible Adam.
"""
