"""TF1's ``tf.compat.v1.train`` optimizers and learning-rate schedules as torch twins.

Each twin computes what TF1's C++ kernel computes, in the same order of operations, so that a
float64 run agrees with TF1's to round-off (~1e-16), not merely to ~1e-8:

=========================  ======================================================  ================
TF1 class                  update (the kernel's expression)                        slots (state)
=========================  ======================================================  ================
GradientDescentOptimizer   ``var -= grad * lr``                                    --
MomentumOptimizer          ``accum = accum * momentum + grad``;                    ``momentum``
                           ``var -= accum * lr``, or with ``use_nesterov``
                           ``var -= grad * lr + accum * momentum * lr``
RMSPropOptimizer           ``ms += (grad^2 - ms) * (1 - decay)``;                  ``rms`` (starts at
                           centered: ``mg += (grad - mg) * (1 - decay)``,          1), ``momentum``,
                           ``denom = (ms - mg^2) + epsilon``, else                 ``mg`` (centered)
                           ``denom = ms + epsilon``;
                           ``mom = mom * momentum + grad * lr / sqrt(denom)``;
                           ``var -= mom``
AdagradOptimizer           ``accum += grad^2``; ``var -= grad * lr * rsqrt(accum)``  ``accumulator``
                                                                                   (starts at 0.1)
AdamOptimizer              :class:`torch_port.optim.TFAdam` (float32 beta powers)  ``m``, ``v``
=========================  ======================================================  ================

**Constants.** TF1 turns Python-float hyper-parameters into float32 tensors
(``ops.convert_to_tensor``) and casts them to the variable's dtype in ``_apply_dense``: in a
float64 graph ``lr=0.01`` is used as ``float64(float32(0.01))`` = 0.009999999776482582. The
twins do the same (float32 rounding, then the parameter dtype). Adagrad's
``initial_accumulator_value`` and RMSProp's initial ``rms`` of 1 are created in the variable's
dtype (no rounding).

**Schedules.** ``learning_rate`` may be :class:`ExponentialDecay` or :class:`PiecewiseConstant`
(what ``tf.compat.v1.train.exponential_decay`` / ``piecewise_constant`` compute, in TF's float32
arithmetic), evaluated at the twin's ``global_step``: the number of steps taken so far, as TF's
``global_step`` when the graph's ``minimize(..., global_step=...)`` increments it.

Slots are stored under TF1's slot names, in TF1's order of creation (which fixes the checkpoint
names: ``<var>/Adam``, ``<var>/Adam_1``; ``<var>/RMSProp``, ``<var>/RMSProp_1``, ...), see
:data:`TWIN_INFO`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from signs.errors import InputError
from torch_port.dtypes import dtype_name
from torch_port.optim import PlainOptimizer, TFAdam

# --- schedules ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class ExponentialDecay:
    """``tf.compat.v1.train.exponential_decay(learning_rate, global_step, decay_steps, decay_rate,
    staircase)``: ``learning_rate * decay_rate ** (global_step / decay_steps)`` (the exponent
    floored with ``staircase``), in float32 as TF computes it (Python floats become float32
    tensors). Two details decide the last bit, and with it float64 parity (one float32 ulp of
    the learning rate moves the parameters by ~1e-8): TF's graph optimizer (Grappler, on in
    every ``Session``) replaces the division by the constant ``decay_steps`` with a
    multiplication by its float32 reciprocal (``global_step * (1 / decay_steps)``; with the
    true division 12 of the first 40 steps of ``(0.3, 3, 0.7)`` were off by one ulp), and TF's
    scalar float32 ``pow`` is the float32 rounding of the exact power (computed here in float64).
    Measured equal to TF 2.21's values for the first 40 steps of several schedules
    (parity/test_tf1_optim.py)."""

    learning_rate: float
    decay_steps: int
    decay_rate: float
    staircase: bool = False

    def __call__(self, global_step: int) -> float:
        p = np.float32(global_step) * (np.float32(1) / np.float32(self.decay_steps))
        if self.staircase:
            p = np.floor(p)
        power = np.float32(float(np.float32(self.decay_rate)) ** float(p))
        return float(np.float32(self.learning_rate) * power)


@dataclass(frozen=True)
class PiecewiseConstant:
    """``tf.compat.v1.train.piecewise_constant(global_step, boundaries, values)``: ``values[0]`` while
    ``global_step <= boundaries[0]``, ``values[i]`` while ``boundaries[i-1] < global_step <=
    boundaries[i]``, ``values[-1]`` after; values are float32 (Python floats in TF1)."""

    boundaries: tuple
    values: tuple

    def __post_init__(self):
        if len(self.values) != len(self.boundaries) + 1:
            raise InputError(f"piecewise_constant: {len(self.values)} values for {len(self.boundaries)} "
                             "boundaries; expected one more value than boundaries")

    def __call__(self, global_step: int) -> float:
        for boundary, value in zip(self.boundaries, self.values):
            if global_step <= boundary:
                return float(np.float32(value))
        return float(np.float32(self.values[-1]))


def exponential_decay(learning_rate, decay_steps, decay_rate, staircase=False) -> ExponentialDecay:
    """The twin of ``tf.compat.v1.train.exponential_decay`` (without its ``global_step`` argument:
    the torch optimizer supplies its own)."""
    return ExponentialDecay(learning_rate, decay_steps, decay_rate, staircase)


def piecewise_constant(boundaries, values) -> PiecewiseConstant:
    """The twin of ``tf.compat.v1.train.piecewise_constant`` (without ``x``, the global step)."""
    return PiecewiseConstant(tuple(boundaries), tuple(values))


def _as_real(value: float, dtype: torch.dtype):
    """A TF1 hyper-parameter as its kernel sees it: float32, then cast to the parameter dtype."""
    return np.dtype(dtype_name(dtype)).type(np.float32(value))


def learning_rate_at(lr, global_step: int) -> float:
    """The learning rate ``lr`` (a number or a schedule) at ``global_step``."""
    return float(lr(global_step)) if callable(lr) else float(lr)


# --- the twins ---------------------------------------------------------------------------------

class _TF1Optimizer(PlainOptimizer):
    """Common part: a learning rate that may be a schedule, ``global_step`` per group, TF slot names.

    ``tf_name``: TF1's default optimizer name (the checkpoint suffix of its slots); ``slots``:
    the state keys in TF1's order of creation.
    """

    tf_name = ""
    slots: tuple = ()

    def __init__(self, params, defaults: dict):
        lr = defaults["lr"]
        if not callable(lr) and not lr > 0:
            raise ValueError(f"learning_rate must be > 0 or a schedule, got {lr!r}")
        super().__init__(params, defaults)
        for group in self.param_groups:
            group.setdefault("global_step", 0)

    def _initial_state(self, p: torch.Tensor, group: dict) -> dict:
        return {key: torch.zeros_like(p, memory_format=torch.preserve_format) for key in self.slots}

    def kernel_inputs(self, group: dict, dtype: torch.dtype) -> dict[str, float]:
        """The scalar inputs of TF1's kernel for ``group``'s next step, keyed by the kernel's input
        names (``lr``, ``momentum``, ...), as floats of ``dtype``."""
        return {"lr": float(_as_real(learning_rate_at(group["lr"], group["global_step"]), dtype))}

    def _update(self, p, grad, state, constants, group) -> None:
        raise NotImplementedError

    @torch.no_grad()
    def step(self, closure=None):
        loss = self.evaluate(closure)
        for group in self.param_groups:
            group.setdefault("global_step", 0)
            params = [p for p in group["params"] if p.grad is not None]
            if params:
                constants = {k: _as_real_exact(v, params[0].dtype)
                             for k, v in self.kernel_inputs(group, params[0].dtype).items()}
                for p in params:
                    state = self.state[p]
                    if not state:
                        state.update(self._initial_state(p, group))
                    self._update(p, p.grad, state, constants, group)
            group["global_step"] += 1
        return loss


def _as_real_exact(value: float, dtype: torch.dtype):
    return np.dtype(dtype_name(dtype)).type(value)


class GradientDescentOptimizer(_TF1Optimizer):
    """``tf.compat.v1.train.GradientDescentOptimizer(learning_rate)``: ``var -= grad * lr``."""

    tf_name = "GradientDescent"

    def __init__(self, params, learning_rate):
        super().__init__(params, {"lr": learning_rate})

    def _update(self, p, grad, state, c, group) -> None:
        p.sub_(grad * float(c["lr"]))


class MomentumOptimizer(_TF1Optimizer):
    """``tf.compat.v1.train.MomentumOptimizer(learning_rate, momentum, use_nesterov=False)``."""

    tf_name = "Momentum"
    slots = ("momentum",)

    def __init__(self, params, learning_rate, momentum, use_nesterov=False):
        super().__init__(params, {"lr": learning_rate, "momentum": momentum, "use_nesterov": use_nesterov})

    def kernel_inputs(self, group, dtype):
        return {**super().kernel_inputs(group, dtype), "momentum": float(_as_real(group["momentum"], dtype))}

    def _update(self, p, grad, state, c, group) -> None:
        lr, momentum = float(c["lr"]), float(c["momentum"])
        accum = state["momentum"]
        accum.copy_(accum * momentum + grad)
        if group["use_nesterov"]:
            p.sub_(grad * lr + accum * momentum * lr)
        else:
            p.sub_(accum * lr)


class RMSPropOptimizer(_TF1Optimizer):
    """``tf.compat.v1.train.RMSPropOptimizer(learning_rate, decay=0.9, momentum=0.0, epsilon=1e-10,
    centered=False)``; the slot ``rms`` starts at 1, as in TF1 (Keras and torch start at 0)."""

    tf_name = "RMSProp"

    def __init__(self, params, learning_rate, decay=0.9, momentum=0.0, epsilon=1e-10, centered=False):
        super().__init__(params, {"lr": learning_rate, "decay": decay, "momentum": momentum,
                                  "epsilon": epsilon, "centered": centered})
        # TF1's order of creation: rms, then mg (centered), then momentum
        self.slots = ("rms", "mg", "momentum") if centered else ("rms", "momentum")

    def _initial_state(self, p, group):
        state = super()._initial_state(p, group)
        state["rms"] = torch.ones_like(p, memory_format=torch.preserve_format)
        return state

    def kernel_inputs(self, group, dtype):
        return {**super().kernel_inputs(group, dtype), "rho": float(_as_real(group["decay"], dtype)),
                "momentum": float(_as_real(group["momentum"], dtype)),
                "epsilon": float(_as_real(group["epsilon"], dtype))}

    def _update(self, p, grad, state, c, group) -> None:
        one_minus_rho = float(type(c["rho"])(1) - c["rho"])
        lr, momentum, epsilon = float(c["lr"]), float(c["momentum"]), float(c["epsilon"])
        ms, mom = state["rms"], state["momentum"]
        ms.add_((grad * grad - ms) * one_minus_rho)
        if "mg" in state:
            mg = state["mg"]
            mg.add_((grad - mg) * one_minus_rho)
            denominator = (ms - mg * mg) + epsilon
        else:
            denominator = ms + epsilon
        mom.copy_(mom * momentum + (grad * lr) / denominator.sqrt())
        p.sub_(mom)


class AdagradOptimizer(_TF1Optimizer):
    """``tf.compat.v1.train.AdagradOptimizer(learning_rate, initial_accumulator_value=0.1)``."""

    tf_name = "Adagrad"
    slots = ("accumulator",)

    def __init__(self, params, learning_rate, initial_accumulator_value=0.1):
        if not initial_accumulator_value > 0:
            raise ValueError(f"initial_accumulator_value must be > 0, got {initial_accumulator_value}")
        super().__init__(params, {"lr": learning_rate,
                                  "initial_accumulator_value": initial_accumulator_value})

    def _initial_state(self, p, group):
        return {"accumulator": torch.full_like(p, group["initial_accumulator_value"],
                                               memory_format=torch.preserve_format)}

    def _update(self, p, grad, state, c, group) -> None:
        accum = state["accumulator"]
        accum.add_(grad * grad)
        p.sub_(grad * float(c["lr"]) * accum.rsqrt())


class AdamOptimizer(TFAdam):
    """``tf.compat.v1.train.AdamOptimizer(learning_rate, beta1, beta2, epsilon)``: TF1's Adam
    (:class:`torch_port.optim.TFAdam`, float32 beta powers), with TF1's argument names and a
    learning rate that may be a schedule (evaluated at ``group["step"]``, TF's global step)."""

    tf_name = "Adam"
    slots = ("m", "v")

    def __init__(self, params, learning_rate=0.001, beta1=0.9, beta2=0.999, epsilon=1e-8):
        self.schedule = learning_rate if callable(learning_rate) else None
        first = learning_rate(0) if callable(learning_rate) else learning_rate
        super().__init__(params, lr=first, betas=(beta1, beta2), eps=epsilon)

    def step(self, closure=None):
        if self.schedule is not None:
            for group in self.param_groups:
                group["lr"] = self.schedule(group.get("step", 0))
        return super().step(closure)


# --- what the harness needs to know of each twin -------------------------------------------------

@dataclass(frozen=True)
class TwinInfo:
    """How a torch optimizer's state lines up with TF1's.

    ``apply_op``: TF1's kernel (``ResourceApply<name>``/``Apply<name>``); ``state_of_input``: the
    kernel's slot inputs -> the twin's state keys; ``quantity``: state key -> (compared quantity,
    name suffix): the comparison engine knows ``m`` (first-moment-like: Adam's ``m``, Momentum's
    accumulator, RMSProp's ``momentum``, and its ``mg`` as ``<name>/mg``) and ``v`` (second-moment-
    like: Adam's ``v``, RMSProp's ``rms``, Adagrad's accumulator)."""

    apply_ops: tuple
    state_of_input: dict
    quantity: dict
    slots: tuple = ()
    tf_name: str = ""


TWIN_INFO = {
    GradientDescentOptimizer: TwinInfo(("ApplyGradientDescent",), {}, {}, (), "GradientDescent"),
    MomentumOptimizer: TwinInfo(("ApplyMomentum",), {"accum": "momentum"}, {"momentum": ("m", "")},
                                ("momentum",), "Momentum"),
    RMSPropOptimizer: TwinInfo(("ApplyRMSProp", "ApplyCenteredRMSProp"),
                               {"ms": "rms", "mom": "momentum", "mg": "mg"},
                               {"momentum": ("m", ""), "mg": ("m", "/mg"), "rms": ("v", "")},
                               ("rms", "mg", "momentum"), "RMSProp"),
    AdagradOptimizer: TwinInfo(("ApplyAdagrad",), {"accum": "accumulator"}, {"accumulator": ("v", "")},
                               ("accumulator",), "Adagrad"),
    TFAdam: TwinInfo(("ApplyAdam",), {"m": "m", "v": "v"}, {"m": ("m", ""), "v": ("v", "")}, ("m", "v"),
                     "Adam"),
}

# TF1's kernel of each optimizer (the Resource* variants have the same inputs)
KERNELS = {"ApplyGradientDescent": "GradientDescentOptimizer", "ApplyMomentum": "MomentumOptimizer",
           "ApplyRMSProp": "RMSPropOptimizer", "ApplyCenteredRMSProp": "RMSPropOptimizer (centered)",
           "ApplyAdagrad": "AdagradOptimizer", "ApplyAdam": "AdamOptimizer"}


def twin_info(optimizer) -> TwinInfo:
    """The :class:`TwinInfo` of a torch optimizer; refuses (:class:`InputError`) one that is no twin."""
    for cls in type(optimizer).__mro__:
        if cls in TWIN_INFO:
            return TWIN_INFO[cls]
    raise InputError(f"torch optimizer {type(optimizer).__name__} is no TF1 twin: use one of parity.tf1's "
                     "GradientDescentOptimizer, MomentumOptimizer, RMSPropOptimizer, AdagradOptimizer, "
                     "AdamOptimizer (or torch_port.optim.TFAdam)")


def slot_order(optimizer) -> tuple:
    """The twin's slot state keys in TF1's order of creation (checkpoint suffixes ``''``, ``_1``...)."""
    if isinstance(optimizer, _TF1Optimizer):
        return tuple(optimizer.slots)
    return twin_info(optimizer).slots


def global_step_of(optimizer) -> int:
    """How many steps the twin has taken (TF's ``global_step`` when the graph increments it)."""
    group = optimizer.param_groups[0]
    return int(group["step"] if isinstance(optimizer, TFAdam) else group.get("global_step", 0))


def set_global_step(optimizer, step: int) -> None:
    for group in optimizer.param_groups:
        group["step" if isinstance(optimizer, TFAdam) else "global_step"] = int(step)


def kernel_inputs(optimizer, dtype: torch.dtype) -> dict[str, float]:
    """The scalar kernel inputs the twin will use at its next step (first group), keyed by TF1's
    kernel input names, for comparison with what TF1's kernel was fed."""
    group = optimizer.param_groups[0]
    if isinstance(optimizer, TFAdam):
        real = np.dtype(dtype_name(dtype)).type
        lr = group["lr"]
        if isinstance(optimizer, AdamOptimizer) and optimizer.schedule is not None:
            lr = optimizer.schedule(group.get("step", 0))
        out = {"lr": lr, "beta1": group["betas"][0], "beta2": group["betas"][1], "epsilon": group["eps"]}
        out = {k: float(real(np.float32(v))) for k, v in out.items()}
        if optimizer.beta_powers == "tf1":
            out["beta1_power"] = float(real(np.float32(group["beta1_power"])))
            out["beta2_power"] = float(real(np.float32(group["beta2_power"])))
        return out
    if isinstance(optimizer, _TF1Optimizer):
        inputs = optimizer.kernel_inputs(group, dtype)
        if isinstance(optimizer, GradientDescentOptimizer):
            inputs = {"alpha": inputs["lr"]}
        return inputs
    twin_info(optimizer)
    return {}


def same_value(a: float, b: float) -> bool:
    return a == b or (math.isnan(a) and math.isnan(b))
