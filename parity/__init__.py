"""Parity harness: run two implementations of the tutorial step by step and compare them.

Modules: ``impls`` (the four implementations and their layouts), ``transfer`` (weights between
layouts, with checks), ``trace`` (per-step records through each side's hook), ``tolerances``
(stated once, with reasons), ``compare`` (normwise differences), ``report`` (table, JSON,
plot; ``python -m parity report``) and ``golden`` (committed TF traces for machines without TF).
TensorFlow and torch are imported lazily, only by the implementations that need them.
"""
