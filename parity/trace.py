"""Per-step traces of any of the four implementations, recorded through their own hooks.

Nothing here re-implements either side: each implementation's training function runs as
users call it, with a ``hook`` that copies what it reports (converted to the tutorial layout
by :mod:`parity.transfer`) and, in teacher-forced mode, hands back the reference's state.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from parity.transfer import IMPLEMENTATIONS, output_to_canonical, to_canonical, to_native
from signs.data import TutorialArrays
from signs.errors import InputError
from signs.weights import load_initial_parameters

STATE = ("grads", "params", "m", "v")


# What a trace trains on: the tutorial's arrays (X (12288, m), one-hot Y (6, m)), as loaded by
# signs.data.load_tutorial_arrays.
Data = TutorialArrays


@dataclass
class RunConfig:
    """What to run. ``steps`` training steps; data-order ``seed`` (weights: Glorot seed 1).

    ``full_steps``: how many first steps keep every tensor (None: all); after that only the
    cost is kept, plus the full state every ``every`` steps (0: never). Long runs need this:
    one full float64 step holds about 10 MB.
    """

    steps: int = 34
    dtype: str = "float64"
    lr: float = 0.0001
    batch_size: int = 32
    seed: int = 3
    torch_optimizer: str = "tf-adam"
    device: str = "cpu"
    full_steps: int | None = None
    every: int = 0

    def keeps_full(self, step: int) -> bool:
        return (self.full_steps is None or step <= self.full_steps
                or (self.every > 0 and step % self.every == 0))


@dataclass
class Trace:
    """One implementation's steps: ``records[k]`` is step ``k + 1``, in the tutorial layout.

    Each record: ``step``, ``epoch``, ``batch`` (column indices), ``cost`` (float) and, when
    kept in full, ``output`` (6, m) and the dicts ``grads``, ``params`` (after the update),
    ``m``, ``v`` keyed ``W1`` ... ``b3``.
    """

    impl: str
    config: RunConfig
    records: list = field(default_factory=list)

    def full(self, step: int) -> dict | None:
        record = self.records[step - 1]
        return record if "params" in record else None


class _Enough(Exception):
    """Raised by the hook to stop training once the requested steps are recorded."""


def run(impl: str, data: Data, config: RunConfig, teacher: Trace | None = None,
        initial_parameters: dict | None = None) -> Trace:
    """Train ``impl`` for ``config.steps`` steps and return its :class:`Trace`.

    With ``teacher``, after every step the implementation is reset to the teacher's
    parameters and Adam moments after that step (teacher forcing), so each step's difference
    is that step's own error. ``initial_parameters`` (tutorial layout) default to TF's stored
    Glorot seed-1 draw for ``config.dtype``.
    """
    if impl not in IMPLEMENTATIONS:
        raise InputError(f"unknown implementation {impl!r}; expected one of {', '.join(IMPLEMENTATIONS)}")
    if teacher is not None and len(teacher.records) < config.steps:
        raise InputError(f"teacher trace has {len(teacher.records)} steps, {config.steps} needed")
    trace = Trace(impl, config)
    initial = initial_parameters or load_initial_parameters(config.dtype)

    def hook(record):
        step = record["step"]
        kept = {"step": step, "epoch": record["epoch"], "batch": np.asarray(record["batch"]),
                "cost": float(np.asarray(record["cost"]))}
        if config.keeps_full(step):
            kept["output"] = output_to_canonical(impl, record["output"])
            kept.update({key: to_canonical(impl, record[key]) for key in STATE})
        trace.records.append(kept)
        if step >= config.steps:
            raise _Enough
        if teacher is not None:
            reference = teacher.full(step)
            if reference is None:
                raise InputError(f"teacher step {step} was not recorded in full")
            return {key: to_native(impl, reference[key]) for key in ("params", "m", "v")}
        return None

    batches_per_epoch = math.ceil(data.X_train.shape[1] / config.batch_size)
    epochs = math.ceil(config.steps / batches_per_epoch)
    train = _trainer(impl)
    kwargs = {"learning_rate": config.lr, "num_epochs": epochs, "minibatch_size": config.batch_size,
              "print_cost": False, "dtype": config.dtype, "seed": config.seed,
              "initial_parameters": initial, "hook": hook}
    if impl in ("torch", "torch-nn"):
        kwargs.update(device=config.device, optimizer=config.torch_optimizer)
    if config.steps > 0:
        try:
            train(data.X_train, data.Y_train, data.X_test, data.Y_test, **kwargs)
        except _Enough:
            pass
    return trace


def _trainer(impl: str):
    """The implementation's own training function (imported only when used)."""
    if impl == "tf1":
        from tf_original.model import model
        return model
    if impl == "keras":
        from tf_original.keras_model import train
        return train
    if impl == "torch":
        from torch_port.model import model
        return model
    from torch_port.nn_model import train
    return train


def default_torch_optimizer(pair: tuple[str, str]) -> str:
    """The torch optimizer that matches the other side's Adam: Keras's (``beta ** t``) or TF1's."""
    return "keras-adam" if "keras" in pair else "tf-adam"
