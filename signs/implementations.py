"""The registry of the tutorial's implementations: one record each, one name each (framework-free).

Every command speaks this vocabulary: ``python -m tf_original.train --impl``,
``python -m torch_port.train --impl``, ``python -m parity report --pair A:B``,
``python -m benchmarks --impls``, and the docs.

==============  ==========  ============================================  ===========  ============
name            framework   what it is                                    layout       Adam
==============  ==========  ============================================  ===========  ============
``tf1``         tensorflow  the original: TF1 graph, Session, feed_dict   tutorial     tf1
``keras``       tensorflow  its TF2/Keras twin                            keras        keras
``line-by-line`` torch      the line-by-line port (``torch_port.model``)  tutorial     as chosen
``idiomatic``   torch       nn.Module, DataLoader, autograd               module       as chosen
``fast``        torch       the idiomatic port without the overhead,      module       as chosen
                            TF1's Adam in one fused pass, denormals
                            flushed as TF does (round-off differs from
                            ``idiomatic``; the CLI default)
``fast-exact``  torch       the same, Adam in ten passes: ``idiomatic``'s  module       as chosen
                            bits exactly
==============  ==========  ============================================  ===========  ============

Layouts (how :mod:`parity.tutorial_layouts` re-lays weights and outputs): ``tutorial`` is
``W1`` (out, in), ``b1`` (out, 1), output ``Z3`` (6, m); ``module`` is ``nn.Linear``'s
``fc1.weight`` (out, in), ``fc1.bias`` (out,), logits (m, 6); ``keras`` is ``fc1/kernel``
(in, out), ``fc1/bias`` (out,), logits (m, 6).

Each record names the module and function that train it (imported only when used, so this
module needs neither framework) and the fixed keyword arguments that select it. Every
training function takes the tutorial's arrays (``X`` (12288, m), one-hot ``Y`` (6, m)) and
the same keywords (``learning_rate``, ``num_epochs``, ``minibatch_size``, ``print_cost``,
``dtype``, ``seed``, ``initial_parameters``); all but ``tf1`` also a per-step ``hook`` (the parity
harness records ``tf1`` from its graph, as any TF1 graph: ``parity.trace``); the torch ones also
``device``, ``optimizer``, ``epoch_cost``, ``resume``, ``on_epoch_end`` and ``progress``.

Adding an implementation: one record here, plus its tests; the CLIs, the parity report and
tests and the benchmark pick it up from :data:`IMPLEMENTATIONS`.
"""

from __future__ import annotations

import functools
import importlib
from dataclasses import dataclass, field

from signs.errors import InputError

FRAMEWORKS = ("tensorflow", "torch")
LAYOUTS = ("tutorial", "module", "keras")


@dataclass(frozen=True)
class Implementation:
    """One implementation of the tutorial's training.

    ``name``: the one name users type. ``label``: one line for tables. ``framework``:
    ``"tensorflow"`` or ``"torch"``. ``layout``: one of :data:`LAYOUTS`. ``module``,
    ``function``, ``options``: the training function and the fixed keywords that select this
    implementation. ``epoch_marker``: the dotted path of a module-level function its training
    calls exactly once at the start of every epoch (its shuffle), which the benchmark's clock
    wraps. ``adam``: the Adam
    convention a TensorFlow implementation computes (``"tf1"``: float32 beta-power
    accumulators; ``"keras"``: ``beta ** t``), ``None`` for torch ones, which take the
    ``optimizer`` keyword. ``optimizers``: the torch optimizers it implements (None: all).
    ``command``: the CLI that runs it.
    """

    name: str
    label: str
    framework: str
    layout: str
    module: str
    function: str
    epoch_marker: str
    command: str
    options: dict = field(default_factory=dict)
    adam: str | None = None
    optimizers: tuple | None = None

    def load(self):
        """The module, imported (raises ImportError when its framework is missing)."""
        return importlib.import_module(self.module)

    def trainer(self, module=None):
        """The training function with this implementation's fixed options bound."""
        function = getattr(module if module is not None else self.load(), self.function)
        return functools.partial(function, **self.options) if self.options else function

    def check_optimizer(self, optimizer: str) -> None:
        """Refuse (one line) a torch optimizer this implementation does not implement."""
        if self.optimizers is not None and optimizer not in self.optimizers:
            raise InputError(f"{self.name} implements only {', '.join(self.optimizers)}, not {optimizer!r}; "
                             "use --impl idiomatic or line-by-line for it")


IMPLEMENTATIONS = {impl.name: impl for impl in (
    Implementation("tf1", "TF1 original: tf.compat.v1 graph + Session, feed_dict", "tensorflow",
                   "tutorial", "tf_original.model", "model", "tf_original.model.random_mini_batches",
                   "python -m tf_original.train --impl tf1", adam="tf1"),
    Implementation("keras", "TF2/Keras twin: tf.function train step", "tensorflow", "keras",
                   "tf_original.keras_model", "train", "tf_original.keras_model.minibatch_indices",
                   "python -m tf_original.train --impl keras", adam="keras"),
    Implementation("line-by-line", "torch_port.model.model: the line-by-line twin", "torch", "tutorial",
                   "torch_port.model", "model", "torch_port.model.random_mini_batches",
                   "python -m torch_port.train --impl line-by-line"),
    Implementation("idiomatic", "torch_port.nn_model.train: nn.Module, DataLoader, autograd", "torch",
                   "module", "torch_port.nn_model", "train", "torch_port.nn_model.minibatch_indices",
                   "python -m torch_port.train --impl idiomatic"),
    Implementation("fast", "torch_port.fast.train: no autograd or allocations, one-pass fused Adam",
                   "torch", "module", "torch_port.fast", "train", "torch_port.nn_model.minibatch_indices",
                   "python -m torch_port.train --impl fast", {"adam_kernel": "fused", "flush_denormal": True},
                   optimizers=("tf-adam", "keras-adam")),
    Implementation("fast-exact", "torch_port.fast.train: the idiomatic port's bits, without its overhead",
                   "torch", "module", "torch_port.fast", "train", "torch_port.nn_model.minibatch_indices",
                   "python -m torch_port.train --impl fast-exact", {"adam_kernel": "exact"},
                   optimizers=("tf-adam", "keras-adam")),
)}
REFERENCE = "tf1"
DEFAULT_TORCH = "fast"
NAMES = tuple(IMPLEMENTATIONS)


def names(framework: str | None = None) -> tuple[str, ...]:
    """The implementations' names, all or those of one framework, in registry order."""
    return tuple(name for name, impl in IMPLEMENTATIONS.items() if framework in (None, impl.framework))


def get(name: str) -> Implementation:
    """The record named ``name``; an unknown name is a one-line :class:`InputError`."""
    if name not in IMPLEMENTATIONS:
        raise InputError(f"unknown implementation {name!r}; expected one of {', '.join(NAMES)}")
    return IMPLEMENTATIONS[name]


def torch_optimizer_for(pair) -> str:
    """The torch optimizer that computes what the TensorFlow side of ``pair`` computes: ``keras-adam``
    (``beta ** t``) when either implementation is Keras's, else ``tf-adam`` (TF1's float32
    beta-power accumulators)."""
    return "keras-adam" if any(get(name).adam == "keras" for name in pair) else "tf-adam"
