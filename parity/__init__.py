"""Parity harness: run two implementations of the tutorial step by step and compare them.

Modules: ``impls`` (the four implementations and their layouts), ``transfer`` (weights between
layouts, with checks), ``trace`` (per-step records through each side's hook), ``tolerances``
(stated once, with reasons), ``compare`` (normwise differences), ``report`` (table, JSON,
plot; ``python -m parity report``) and ``golden`` (committed TF traces for machines without TF).
For your own models: ``layers`` (Keras <-> torch weight transfer for common layers) and
``generic`` (``step_parity`` for any Keras model and torch module; the SIGNS CNN in
``tf_original/cnn.py`` and ``torch_port/cnn.py`` is its worked example, goldens by
``cnn_golden``).
TensorFlow and torch are imported lazily, only by the implementations that need them.
"""
