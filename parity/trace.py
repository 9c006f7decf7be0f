"""Per-step traces of any registered implementation.

Nothing here re-implements either side.

* **TF1** (``tf1``) is recorded the way any TF1 user's graph is: :class:`parity.tf1.GraphRun`
  trains the graph that the tutorial's own functions build (:func:`tutorial_graph`) and fetches
  each step's output, cost, the gradients its Adam kernels applied, the parameters and Adam's
  slots; this module adds only what is the tutorial's: its mini-batch order, its initial weights
  and its epoch cost (:func:`tutorial_epoch_costs`, the notebook's divide-by-33 quirk included).
* **Every other implementation**'s training function (from :mod:`signs.implementations`, with
  the options that select it, e.g. the fast path) runs as the CLIs call it, with a ``hook`` that
  copies what it reports (converted to the tutorial layout by :mod:`parity.tutorial_layouts`).
  A trace that covers whole epochs also keeps the epoch costs the function prints and returns
  (``print_cost=True``, its printed lines captured), so the quirks of what the CLIs print are
  compared too.

In teacher-forced mode either kind is handed the reference's state after every step.
"""

from __future__ import annotations

import contextlib
import io
import math
import re
from dataclasses import dataclass, field

import numpy as np

from parity.compare import STATE
from parity.tutorial_layouts import output_to_canonical, to_canonical, to_native
from signs import implementations, minibatch_indices
from signs.data import TutorialArrays
from signs.errors import InputError
from signs.weights import load_initial_parameters

PRINTED_COST = re.compile(r"^Cost after epoch (\d+): (\S+)$")


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

    def epochs(self, m: int) -> tuple[int, bool]:
        """How many epochs of ``m`` examples the ``steps`` touch, and whether they end on an epoch's
        last mini-batch (only then is there an epoch cost to compare)."""
        per_epoch = math.ceil(m / self.batch_size)
        return math.ceil(self.steps / per_epoch), self.steps % per_epoch == 0

    def keeps_full(self, step: int) -> bool:
        return (self.full_steps is None or step <= self.full_steps
                or (self.every > 0 and step % self.every == 0))


@dataclass
class Trace:
    """One implementation's steps: ``records[k]`` is step ``k + 1``, in the tutorial layout.

    Each record: ``step``, ``epoch``, ``batch`` (column indices), ``cost`` (float) and, when
    kept in full, ``output`` (6, m) and the dicts ``grads``, ``params`` (after the update),
    ``m``, ``v`` keyed ``W1`` ... ``b3``. ``epoch_costs``: ``[(epoch, cost)]`` as the training
    function returned them (every 5 epochs), for the epochs the trace covers whole; ``printed``:
    what it printed meanwhile.
    """

    impl: str
    config: RunConfig
    records: list = field(default_factory=list)
    epoch_costs: list = field(default_factory=list)
    printed: str = ""

    def full(self, step: int) -> dict | None:
        record = self.records[step - 1]
        return record if "params" in record else None


def _teacher_state(teacher: Trace, step: int) -> dict:
    """The teacher's record of ``step``, which teacher forcing loads; one line if it was not kept
    in full."""
    reference = teacher.full(step)
    if reference is None:
        raise InputError(f"teacher step {step} was not recorded in full")
    return reference


def tutorial_graph(n_x: int, n_y: int, dtype: str, learning_rate: float):
    """``build_graph`` for :class:`parity.tf1.GraphRun`: the graph of ``tf_original.model.model``,
    built by the tutorial's own functions (``X`` (n_x, None), ``Z3`` (n_y, None), Adam as the
    notebook writes it)."""
    import tensorflow as tf

    from tf_original import model as original

    def build_graph():
        X, Y = original.create_placeholders(n_x, n_y, tf.as_dtype(dtype))
        parameters = original.initialize_parameters(tf.as_dtype(dtype))
        Z3 = original.forward_propagation(X, parameters)
        cost = original.compute_cost(Z3, Y)
        return X, Y, Z3, cost, tf.compat.v1.train.AdamOptimizer(learning_rate=learning_rate)

    return build_graph


# Implementations recorded by parity.tf1 from their graph (name -> build_graph factory).
GRAPHS = {"tf1": tutorial_graph}


def tutorial_batches(m: int, config: RunConfig) -> list[tuple[int, np.ndarray]]:
    """``(epoch, column indices)`` of the first ``config.steps`` mini-batches in the tutorial's
    order: epoch ``e`` (from 0) shuffles with ``config.seed + e + 1``."""
    batches = [(epoch, indices) for epoch in range(config.epochs(m)[0])
               for indices in minibatch_indices(m, config.batch_size, config.seed + epoch + 1)]
    return batches[:config.steps]


def tutorial_epoch_costs(costs: list, epochs: list, m: int, batch_size: int) -> list[tuple[int, float]]:
    """The notebook's epoch cost, every 5 epochs, from each step's cost (as fetched, in the graph's
    dtype) and epoch: the sum of ``cost / int(m / batch_size)`` in step order, accumulated as
    ``tf_original.model.model`` accumulates it. The notebook divides by the number of *full*
    mini-batches: 33 for 1080 examples in 32s, although 34 are run."""
    totals = {}
    for cost, epoch in zip(costs, epochs):
        totals[epoch] = totals.get(epoch, 0.) + cost / int(m / batch_size)
    return [(epoch, float(total)) for epoch, total in totals.items() if epoch % 5 == 0]


def _run_graph(impl: str, data: Data, config: RunConfig, teacher: Trace | None, initial: dict) -> Trace:
    """:func:`run` for an implementation of :data:`GRAPHS`, through :class:`parity.tf1.GraphRun`."""
    from parity.tf1 import GraphRun

    (n_x, m), n_y = data.X_train.shape, data.Y_train.shape[0]
    batches = tutorial_batches(m, config)
    graph = GraphRun(GRAPHS[impl](n_x, n_y, config.dtype, config.lr), seed=1)

    def force(step, record):
        reference = _teacher_state(teacher, step)
        slots = {name: {"m": reference["m"][name], "v": reference["v"][name]} for name in reference["m"]}
        return {"params": reference["params"], "slots": slots}

    steps = graph.train(((data.X_train[:, i], data.Y_train[:, i]) for _, i in batches),
                        start=lambda session: graph.load(session, params=initial),
                        force=force if teacher is not None else None, full=config.keeps_full)
    trace = Trace(impl, config)
    for got, (epoch, indices) in zip(steps, batches):
        kept = {"step": got["step"], "epoch": epoch, "batch": np.asarray(indices), "cost": float(got["cost"])}
        if "params" in got:
            kept.update(output=got["output"], grads=got["grads"], params=got["params"],
                        m={name: slots["m"] for name, slots in got["slots"].items()},
                        v={name: slots["v"] for name, slots in got["slots"].items()})
        trace.records.append(kept)
    if batches and config.epochs(m)[1]:
        trace.epoch_costs = tutorial_epoch_costs([got["cost"] for got in steps], [e for e, _ in batches], m,
                                                 config.batch_size)
    return trace


class _Enough(Exception):
    """Raised by the hook to stop training once the requested steps are recorded."""


def run(impl: str, data: Data, config: RunConfig, teacher: Trace | None = None,
        initial_parameters: dict | None = None) -> Trace:
    """Train ``impl`` (a registry name) for ``config.steps`` steps and return its :class:`Trace`.

    With ``teacher``, after every step the implementation is reset to the teacher's
    parameters and Adam moments after that step (teacher forcing), so each step's difference
    is that step's own error. ``initial_parameters`` (tutorial layout) default to TF's stored
    Glorot seed-1 draw for ``config.dtype``.
    """
    record = implementations.get(impl)
    if teacher is not None and len(teacher.records) < config.steps:
        raise InputError(f"teacher trace has {len(teacher.records)} steps, {config.steps} needed")
    initial = initial_parameters or load_initial_parameters(config.dtype)
    if impl in GRAPHS:
        return _run_graph(impl, data, config, teacher, initial)
    trace = Trace(impl, config)
    epochs, whole_epochs = config.epochs(data.X_train.shape[1])

    def hook(step_record):
        step = step_record["step"]
        kept = {"step": step, "epoch": step_record["epoch"], "batch": np.asarray(step_record["batch"]),
                "cost": float(np.asarray(step_record["cost"]))}
        if config.keeps_full(step):
            kept["output"] = output_to_canonical(impl, step_record["output"])
            kept.update({key: to_canonical(impl, step_record[key]) for key in STATE})
        trace.records.append(kept)
        if step >= config.steps and not whole_epochs:
            raise _Enough  # mid-epoch: no epoch cost to wait for
        if teacher is not None:
            reference = _teacher_state(teacher, step)
            return {key: to_native(impl, reference[key]) for key in ("params", "m", "v")}
        return None

    kwargs = {"learning_rate": config.lr, "num_epochs": epochs, "minibatch_size": config.batch_size,
              "print_cost": whole_epochs, "dtype": config.dtype, "seed": config.seed,
              "initial_parameters": initial, "hook": hook}
    if record.framework == "torch":
        record.check_optimizer(config.torch_optimizer)
        kwargs.update(device=config.device, optimizer=config.torch_optimizer)
    if config.steps > 0:
        printed = io.StringIO()
        try:
            with contextlib.redirect_stdout(printed):
                _, costs = record.trainer()(data.X_train, data.Y_train, data.X_test, data.Y_test, **kwargs)
            trace.epoch_costs = [(epoch, float(cost)) for epoch, cost in zip(range(0, epochs, 5), costs)]
        except _Enough:
            pass
        trace.printed = printed.getvalue()
        _check_printed(trace)
    return trace


def _check_printed(trace: Trace) -> None:
    """What the training function printed as "Cost after epoch E: C" is the cost it returned."""
    returned = dict(trace.epoch_costs)
    for line in trace.printed.splitlines():
        found = PRINTED_COST.match(line.strip())
        if found:
            epoch, text = int(found.group(1)), found.group(2)
            if epoch not in returned or text != f"{returned[epoch]:f}":
                raise RuntimeError(f"{trace.impl} printed {line.strip()!r} but returned "
                                     f"{returned.get(epoch)!r} for epoch {epoch}")


