"""The implementations the benchmark trains, and how each one is called and clocked.

Each takes the tutorial's arrays (``X`` (12288, m) float64, one-hot ``Y`` (6, m)) and returns
``(parameters, costs)`` in the tutorial's layout (``W`` (out, in), ``b`` (out, 1)).

``epoch_marker`` names the function the implementation's module calls exactly once at the
start of every epoch (its per-epoch shuffle); :class:`benchmarks.runner.EpochClock` wraps it
to timestamp epoch starts without touching the training code.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Impl:
    name: str
    label: str
    framework: str  # "tensorflow" or "torch"
    module: str
    function: str
    epoch_marker: str
    options: dict = field(default_factory=dict)

    def load(self):
        """The module, imported (raises ImportError when its framework is missing)."""
        return importlib.import_module(self.module)

    def train(self, module, X, Y, X_test, Y_test, *, epochs: int, dtype: str, device: str):
        kwargs = dict(self.options, num_epochs=epochs, print_cost=False, dtype=dtype)
        if self.framework == "torch":
            kwargs["device"] = device
        return getattr(module, self.function)(X, Y, X_test, Y_test, **kwargs)


IMPLS = {impl.name: impl for impl in (
    Impl("tf1", "TF1 original: tf.compat.v1 graph + Session, feed_dict", "tensorflow",
         "tf_original.model", "model", "random_mini_batches"),
    Impl("keras", "TF2/Keras twin: tf.function train step", "tensorflow",
         "tf_original.keras_model", "train", "minibatch_indices"),
    Impl("torch-line-by-line", "torch_port.model.model (the readable twin)", "torch",
         "torch_port.model", "model", "random_mini_batches"),
    Impl("torch-idiomatic", "torch_port.nn_model.train: nn.Module, DataLoader, autograd", "torch",
         "torch_port.nn_model", "train", "minibatch_indices", {"fast": False}),
    Impl("torch-fast", "torch_port.nn_model.train(fast=True): torch_port.fast", "torch",
         "torch_port.nn_model", "train", "minibatch_indices", {"fast": True}),
)}
REFERENCE = "tf1"
