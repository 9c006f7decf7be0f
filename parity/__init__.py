"""Parity harness: run two implementations step by step and compare them.

The tutorial's implementations are listed once, in ``signs/implementations.py`` (names,
frameworks, layouts, training functions). Here: ``tutorial_layouts`` (the tutorial's weights
between those layouts, with checks), ``trace`` (per-step records through each
implementation's hook, and the epoch costs it prints), ``tolerances`` (stated once, with
reasons), ``compare`` (the one comparison engine: normwise differences per quantity per step),
``present`` (its table, verdict, JSON and plot), ``report`` (``python -m parity report``) and
``golden`` (committed TF traces in one format, for machines without TF;
``python -m parity golden``).
For your own models: ``layers`` (Keras <-> torch weight transfer, one record per layer kind)
and ``generic`` (``step_parity`` for any Keras model and torch module; the SIGNS CNN in
``tf_original/cnn.py`` and ``torch_port/cnn.py`` is its worked example); ``errors`` holds
``TransferError``.
TensorFlow and torch are imported lazily, only by the implementations that need them.
"""
