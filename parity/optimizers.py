"""Torch twins of Keras's optimizers: what Keras computes, step by step, in the parameters' dtype.

:func:`torch_optimizer_like` turns a Keras optimizer into the torch optimizer that reproduces it
(refusing, with a one-line :class:`signs.errors.InputError`, what it cannot reproduce). Three
Keras APIs, each with its own arithmetic (``api``):

* ``"keras3"``: ``keras.optimizers`` (Keras 3);
* ``"keras2"``: ``tf_keras.optimizers`` (Keras 2's optimizers since TF 2.11);
* ``"keras2-legacy"``: ``tf_keras.optimizers.legacy`` (Keras 2's ``OptimizerV2``, TF's fused
  ``ResourceApply*`` kernels).

=========  ==========================  =====================================================
Keras      twin                        update (``lr``: the step's learning rate)
=========  ==========================  =====================================================
Adam       :class:`KerasAdam`          ``alpha = lr * sqrt(1 - b2**t) / (1 - b1**t)``;
AdamW      :class:`KerasAdamW`         ``m += (g - m) * (1 - b1)``; ``v += (g*g - v) * (1 - b2)``;
                                       ``p -= (m * alpha) / (sqrt(v) + eps)`` (``amsgrad``:
                                       ``vhat = max(vhat, v)`` in place of ``v``)
SGD        :class:`KerasSGD`           ``u = u*mu - g*lr``; ``p += u``, nesterov
                                       ``p += u*mu - g*lr``; without momentum ``p -= g*lr``
RMSprop    :class:`KerasRMSprop`       ``v = rho*v + (1-rho)*g*g`` (centered: ``mg`` likewise of
                                       ``g``, ``v - mg*mg``); ``inc = lr*g / sqrt(v + eps)``;
                                       with momentum ``mom = momentum*mom + inc``, ``p -= mom``
Adagrad    :class:`KerasAdagrad`       ``acc += g*g``; ``p -= lr*g / sqrt(acc + eps)``
=========  ==========================  =====================================================

Before the update, as Keras does: the gradients are clipped (``clipnorm`` per tensor,
``global_clipnorm`` over all of them, ``clipvalue``), then ``weight_decay`` is applied,
decoupled: ``p -= p * wd * lr``.

**Constants, as Keras gives them to the arithmetic** (``D``: the parameter dtype). Keras keeps
the learning rate in a float32 variable (``floatx``) and casts it to ``D``. A Python float that
Keras passes through ``ops.cast``/``tf.cast`` becomes float32 first (TF converts a Python float
to a float32 tensor, then casts): Adam's betas in ``b ** t``, SGD's momentum, ``weight_decay``,
Keras 3 Adagrad's initial accumulator. A Python float that meets a tensor in an arithmetic op
is converted straight to ``D``: ``1 - beta_1``, ``1 - beta_2``, ``epsilon``, RMSprop's ``rho``,
``1 - rho`` and ``momentum``, the clipping bounds. So in float64 Keras's default Adam computes
``b1 ** t`` with ``float32(0.9)`` but ``m`` with ``1 - 0.9`` in full float64 -- neither TF1's
all-float32 constants (:class:`torch_port.optim.TFAdam`) nor torch's Python floats. The legacy
optimizers keep their hyper-parameters (``learning_rate``, ``beta_1``, ``beta_2``, ``rho``,
``momentum``, ``decay``) in float32 variables, so there ``1 - b`` is computed from the float32
value; ``epsilon`` stays exact; the legacy RMSprop without momentum and Adagrad add epsilon
*outside* the square root.

**Learning-rate schedules** are evaluated where Keras evaluates them: at the number of steps
taken so far (``iterations`` before the update), with Keras's own schedule object (one of its
built-in classes): Keras computes them in float32 with TF's ``pow`` and ``cos``, which differ
from NumPy's and torch's in the last bit at some steps (measured: 238 of 1200
``ExponentialDecay(0.1, 7, 0.93)`` steps against NumPy float32, 2 to 75 of 1200 against the
correctly rounded float64 power), and one float32 ulp of the learning rate (6e-8) is far above
float64 round-off. The legacy ``decay`` argument gives ``lr / (1 + decay * iterations)`` in ``D``.

**Slots**, for :func:`parity.generic.step_parity`, in torch's units under the names ``m`` and
``v`` (the quantities the comparison knows): Adam's ``m``/``v``; SGD's velocity ``u`` as the
momentum buffer ``-u / lr``; RMSprop's velocity as ``v``, its momentum (which includes the
learning rate) as ``mom / lr``; Adagrad's accumulator as ``v`` (``lr``: the learning rate of
the step just taken; a zero one leaves them in Keras's units). RMSprop's average gradient
(``centered``) and Adam's ``vhat`` (``amsgrad``) have no quantity: not compared (a note says so).

Refused, each with one line naming it: other optimizer classes (subclasses included), custom
schedules and callables as learning rate, ``use_ema``, ``gradient_accumulation_steps``,
``loss_scale_factor``, ``exclude_from_weight_decay``, legacy ``gradient_transformers``, and
hyper-parameters that are not numbers.
"""

from __future__ import annotations

import sys

import numpy as np
import torch

from signs.errors import InputError
from signs.precision import f32
from torch_port.dtypes import dtype_name
from torch_port.optim import PlainOptimizer, TFAdam

APIS = ("keras3", "keras2", "keras2-legacy")
SCHEDULES = ("ExponentialDecay", "PiecewiseConstantDecay", "PolynomialDecay", "InverseTimeDecay",
             "CosineDecay", "CosineDecayRestarts")
_API_NAMES = {"keras3": "keras.optimizers", "keras2": "tf_keras.optimizers",
              "keras2-legacy": "tf_keras.optimizers.legacy"}


def _real(dtype: torch.dtype):
    """The NumPy scalar type of a torch dtype (``np.float64`` for ``torch.float64``)."""
    return np.dtype(dtype_name(dtype)).type


# --- the learning rate -------------------------------------------------------------------------

class KerasSchedule:
    """A built-in Keras learning-rate schedule as a function of the step: ``schedule(step)``, the
    value Keras uses at that step (float32, or the schedule's own dtype), as a Python float.

    It calls Keras's schedule object itself, with the step as an int64 scalar as Keras does:
    its float32 ``pow`` and ``cos`` are TF's (see the module docstring). Needs Keras (TF).
    """

    def __init__(self, keras_schedule):
        self.keras_schedule = keras_schedule

    def __call__(self, step: int) -> float:
        return float(np.asarray(self.keras_schedule(np.int64(step))))

    def __repr__(self) -> str:
        return f"KerasSchedule({type(self.keras_schedule).__name__})"


# --- the twins ---------------------------------------------------------------------------------

class KerasOptimizer(PlainOptimizer):
    """What every Keras optimizer does around its update, then the update of a subclass.

    Per :meth:`step`: the learning rate for this step (``learning_rate``: a number, kept as Keras
    keeps it, in a ``lr_dtype`` variable (``floatx``: float32), or a callable of the step, e.g.
    :class:`KerasSchedule`; the legacy ``decay`` divides it by ``1 + decay * iterations``); the
    gradients clipped (``clipnorm``, ``global_clipnorm``, ``clipvalue``, in ``api``'s order);
    ``weight_decay`` (decoupled, ``p -= p * wd * lr``, ``wd`` through float32); the update.

    Per group: ``lr`` (the constant learning rate, or the schedule's value for the next step),
    ``iterations`` (steps taken; Keras's ``optimizer.iterations``) and ``last_lr`` (the learning
    rate of the last step in the parameters' dtype, which turns slots into torch's units).
    """

    #: quantity -> state key of the slot compared under that quantity
    slot_keys: dict = {}

    def __init__(self, params, defaults: dict, learning_rate, *, weight_decay=None, clipnorm=None,
                 clipvalue=None, global_clipnorm=None, decay=0.0, lr_dtype="float32", api="keras3"):
        if api not in APIS:
            raise ValueError(f"api must be one of {', '.join(APIS)}, got {api!r}")
        if api != "keras2-legacy" and decay:
            raise ValueError("decay is the legacy optimizers' argument: pass api='keras2-legacy'")
        if api == "keras2-legacy" and weight_decay is not None:
            raise ValueError("the legacy Keras 2 optimizers have no weight_decay")
        self.api = api
        self.schedule = learning_rate if callable(learning_rate) else None
        if self.schedule is None:
            lr = float(np.dtype(lr_dtype).type(learning_rate))  # Keras's variable holds it
            if not lr > 0:
                raise ValueError(f"learning rate must be > 0, got {learning_rate!r}")
        else:
            lr = self.schedule(0)
        self.clipnorm, self.clipvalue, self.global_clipnorm = clipnorm, clipvalue, global_clipnorm
        self.decay = float(decay)
        defaults = {**defaults, "lr": lr, "weight_decay": weight_decay, "iterations": 0, "last_lr": lr}
        super().__init__(params, defaults)

    @property
    def iterations(self) -> int:
        """Steps taken (Keras's ``optimizer.iterations``)."""
        return self.param_groups[0]["iterations"]

    def learning_rate_at(self, iterations: int, group: dict | None = None) -> float:
        """The learning rate Keras uses after ``iterations`` steps, before the legacy ``decay``:
        the schedule's value then, or the (float32) constant."""
        if self.schedule is not None:
            return self.schedule(iterations)
        return (group or self.param_groups[0])["lr"]

    def _step_lr(self, iterations: int, group: dict, real) -> float:
        """This step's learning rate as the update sees it, in the parameter dtype ``real``."""
        lr = real(self.learning_rate_at(iterations, group))
        if self.decay:  # legacy: lr_t / (1.0 + decay_t * local_step), decay_t a float32 hyper
            lr = lr / (real(1.0) + real(np.float32(self.decay)) * real(iterations))
        return lr

    # gradient clipping, in each API's order (Keras 3: one of the three; tf_keras: the first
    # set of clipnorm, global_clipnorm, clipvalue; legacy: clipvalue, then clipnorm or global)
    def _clip(self, grads: list) -> list:
        if self.api == "keras3" or self.api == "keras2":
            if self.clipnorm and self.clipnorm > 0:
                return [_clip_by_norm(g, self.clipnorm) for g in grads]
            if self.global_clipnorm and self.global_clipnorm > 0:
                return _clip_by_global_norm(grads, self.global_clipnorm)
            if self.clipvalue and self.clipvalue > 0:
                return [g.clamp(-self.clipvalue, self.clipvalue) for g in grads]
            return grads
        if self.clipvalue is not None:
            grads = [g.clamp(-self.clipvalue, self.clipvalue) for g in grads]
        if self.clipnorm is not None:
            grads = [_clip_by_norm(g, self.clipnorm) for g in grads]
        if self.global_clipnorm is not None:
            grads = _clip_by_global_norm(grads, self.global_clipnorm)
        return grads

    @staticmethod
    def weight_decay_value(group: dict, real) -> float:
        """``weight_decay`` as Keras applies it: ``tf.cast`` of a Python float, through float32."""
        return float(real(np.float32(group["weight_decay"])))

    def _initial_state(self, p: torch.Tensor, group: dict) -> dict:
        return {key: torch.zeros_like(p, memory_format=torch.preserve_format)
                for key in self.state_keys(group)}

    def state_keys(self, group: dict) -> tuple:
        """The slots this group's parameters get (state keys, Keras's slot names)."""
        raise NotImplementedError

    def constants(self, group: dict, real, iterations: int, lr) -> dict:
        """The update's scalars for ``group``'s step after ``iterations`` steps, in ``real``."""
        raise NotImplementedError

    def _update(self, p, g, state: dict, c: dict, group: dict) -> None:
        raise NotImplementedError

    @torch.no_grad()
    def step(self, closure=None):
        loss = self.evaluate(closure)
        iterations = self.iterations
        pairs = [(group, p) for group in self.param_groups for p in group["params"] if p.grad is not None]
        if not pairs:
            return loss
        grads = self._clip([p.grad for _, p in pairs])
        cache, last_lr = {}, None
        for (group, p), g in zip(pairs, grads):
            key = (id(group), p.dtype)
            if key not in cache:
                real = _real(p.dtype)
                lr = self._step_lr(iterations, group, real)
                cache[key] = (lr, self.constants(group, real, iterations, lr))
                last_lr = float(lr) if last_lr is None else last_lr
            lr, c = cache[key]
            if group["weight_decay"] is not None:  # Keras: variable.assign_sub(variable * wd * lr)
                p.sub_(p.mul(self.weight_decay_value(group, _real(p.dtype))).mul_(float(lr)))
            state = self.state[p]
            if not state:
                state.update(self._initial_state(p, group))
            self._update(p, g, state, c, group)
        for group in self.param_groups:
            group["iterations"] = iterations + 1
            group["last_lr"] = last_lr
            if self.schedule is not None:
                group["lr"] = self.schedule(iterations + 1)
        return loss

    def slot_views(self) -> dict[str, tuple[str, float]]:
        """``{quantity: (state key, factor to torch's units)}`` of the slots compared."""
        return {quantity: (key, 1.0) for quantity, key in self.slot_keys.items()}


def _clip_by_norm(g: torch.Tensor, clipnorm: float) -> torch.Tensor:
    """``tf.clip_by_norm(g, clipnorm)``: ``g * c / max(||g||, c)`` (``||g|| = 0`` stays 0)."""
    l2sum = torch.sum(g * g)
    l2norm = torch.sqrt(l2sum) if l2sum > 0 else l2sum
    return g.mul(clipnorm).div_(torch.clamp(l2norm, min=clipnorm))


def _clip_by_global_norm(grads: list, clipnorm: float) -> list:
    """``g * (c * min(1 / n, 1 / c))``, ``n`` the norm of all gradients together (Keras 3's
    ``clip_by_global_norm``; ``tf.clip_by_global_norm`` sums halved squares: round-off apart, the
    same)."""
    norm = torch.sqrt(torch.sum(torch.stack([torch.sum(g * g) for g in grads])))
    scale = torch.minimum(1.0 / norm, torch.tensor(1.0 / clipnorm, dtype=norm.dtype)).mul(clipnorm)
    scale = scale + (norm - norm)  # NaN for a non-finite norm, as Keras
    return [g * scale for g in grads]


class KerasAdam(KerasOptimizer):
    """Keras's ``Adam`` (defaults: Keras's, epsilon 1e-7), with ``weight_decay`` its ``AdamW``.

    ``b ** t`` with the betas through float32 (``ops.cast`` of a Python float), ``1 - b`` and
    epsilon from the Python floats in the parameter dtype (legacy: ``1 - b`` of the float32
    beta); ``adaptive_epsilon`` (tf_keras): epsilon times ``sqrt(1 - b2 ** t)``. State: ``m``,
    ``v`` (and ``vhat`` with ``amsgrad``).
    """

    slot_keys = {"m": "m", "v": "v"}

    def __init__(self, params, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7,
                 amsgrad=False, adaptive_epsilon=False, **options):
        defaults = {"beta_1": float(beta_1), "beta_2": float(beta_2), "epsilon": float(epsilon),
                    "amsgrad": bool(amsgrad), "adaptive_epsilon": bool(adaptive_epsilon)}
        super().__init__(params, defaults, learning_rate, **options)

    def state_keys(self, group):
        return ("m", "v", "vhat") if group["amsgrad"] else ("m", "v")

    def constants(self, group, real, iterations, lr):
        beta_1, beta_2 = real(np.float32(group["beta_1"])), real(np.float32(group["beta_2"]))
        local_step = real(iterations + 1)
        beta_1_power, beta_2_power = np.power(beta_1, local_step), np.power(beta_2, local_step)
        alpha = lr * np.sqrt(real(1) - beta_2_power) / (real(1) - beta_1_power)
        if self.api == "keras2-legacy":  # the kernel's (1 - beta) of the float32 hyper
            one_minus_beta_1, one_minus_beta_2 = real(1) - beta_1, real(1) - beta_2
        else:  # a Python float times a tensor
            one_minus_beta_1, one_minus_beta_2 = real(1 - group["beta_1"]), real(1 - group["beta_2"])
        epsilon = real(group["epsilon"])
        if group["adaptive_epsilon"]:
            epsilon = epsilon * np.sqrt(real(1) - beta_2_power)
        return {"alpha": float(alpha), "one_minus_beta_1": float(one_minus_beta_1),
                "one_minus_beta_2": float(one_minus_beta_2), "epsilon": float(epsilon)}

    def _update(self, p, g, state, c, group):
        m, v = state["m"], state["v"]
        m.add_(g.sub(m).mul_(c["one_minus_beta_1"]))
        v.add_(g.mul(g).sub_(v).mul_(c["one_minus_beta_2"]))
        if group["amsgrad"]:
            torch.maximum(state["vhat"], v, out=state["vhat"])
            v = state["vhat"]
        p.sub_(m.mul(c["alpha"]).div_(v.sqrt().add_(c["epsilon"])))


class KerasAdamW(KerasAdam):
    """Keras's ``AdamW``: :class:`KerasAdam` with Keras's default ``weight_decay`` 0.004."""

    def __init__(self, params, learning_rate=0.001, weight_decay=0.004, **options):
        super().__init__(params, learning_rate, weight_decay=weight_decay, **options)


class KerasSGD(KerasOptimizer):
    """Keras's ``SGD``: velocity ``u = u*mu - g*lr`` (``mu``: momentum through float32),
    ``p += u`` (nesterov: ``p += u*mu - g*lr``); ``p -= g*lr`` without momentum. State:
    ``momentum`` (Keras's ``u``, compared as torch's buffer ``-u / lr``)."""

    def __init__(self, params, learning_rate=0.01, momentum=0.0, nesterov=False, **options):
        defaults = {"momentum": float(momentum), "nesterov": bool(nesterov)}
        super().__init__(params, defaults, learning_rate, **options)

    def state_keys(self, group):
        return ("momentum",) if group["momentum"] != 0 else ()

    def constants(self, group, real, iterations, lr):
        return {"lr": float(lr), "momentum": float(real(np.float32(group["momentum"])))}

    def _update(self, p, g, state, c, group):
        if group["momentum"] == 0:
            p.sub_(g.mul(c["lr"]))
            return
        u = state["momentum"]
        u.copy_(u.mul(c["momentum"]).sub_(g.mul(c["lr"])))
        if group["nesterov"]:
            p.add_(u.mul(c["momentum"]).sub_(g.mul(c["lr"])))
        else:
            p.add_(u)

    def slot_views(self):
        if all(group["momentum"] == 0 for group in self.param_groups):
            return {}
        return {"m": ("momentum", -_per_lr(self.param_groups[0]["last_lr"]))}


class KerasRMSprop(KerasOptimizer):
    """Keras's ``RMSprop`` (defaults: rho 0.9, momentum 0, epsilon 1e-7, not centered).

    Keras 3 and tf_keras: ``rho``, ``1 - rho``, ``momentum``, epsilon from the Python floats,
    epsilon inside the square root. Legacy: ``rho`` and ``momentum`` float32 hypers; with
    momentum TF's fused kernel (``ms += (g*g - ms) * (1 - rho)``, epsilon inside the root),
    without it ``p -= lr*g / (sqrt(v) + eps)``, epsilon outside. State: ``velocity``,
    ``momentum`` (momentum > 0), ``average_gradient`` (centered).
    """

    def __init__(self, params, learning_rate=0.001, rho=0.9, momentum=0.0, epsilon=1e-7, centered=False,
                 **options):
        defaults = {"rho": float(rho), "momentum": float(momentum), "epsilon": float(epsilon),
                    "centered": bool(centered)}
        super().__init__(params, defaults, learning_rate, **options)

    def state_keys(self, group):
        return (("velocity",) + ("momentum",) * (group["momentum"] > 0)
                + ("average_gradient",) * group["centered"])

    def constants(self, group, real, iterations, lr):
        if self.api == "keras2-legacy":
            rho, momentum = real(np.float32(group["rho"])), real(np.float32(group["momentum"]))
            one_minus_rho = real(1.0) - rho
        else:
            rho, momentum, one_minus_rho = real(group["rho"]), real(group["momentum"]), real(1 - group["rho"])
        return {"lr": float(lr), "rho": float(rho), "one_minus_rho": float(one_minus_rho),
                "momentum": float(momentum), "epsilon": float(real(group["epsilon"]))}

    def _update(self, p, g, state, c, group):
        v = state["velocity"]
        if self.api == "keras2-legacy" and group["momentum"] > 0:  # ResourceApply(Centered)RMSProp
            v.add_(g.mul(g).sub_(v).mul_(c["one_minus_rho"]))
            if group["centered"]:
                mg = state["average_gradient"]
                mg.add_(g.sub(mg).mul_(c["one_minus_rho"]))
                denominator = v.sub(mg.mul(mg)).add_(c["epsilon"])
            else:
                denominator = v.add(c["epsilon"])
            mom = state["momentum"]
            mom.copy_(mom.mul(c["momentum"]).add_(g.mul(c["lr"]).div_(denominator.sqrt())))
            p.sub_(mom)
            return
        v.copy_(v.mul(c["rho"]).add_(g.mul(g).mul_(c["one_minus_rho"])))
        if group["centered"]:
            mg = state["average_gradient"]
            mg.copy_(mg.mul(c["rho"]).add_(g.mul(c["one_minus_rho"])))
            denominator = v.sub(mg.mul(mg))
        else:
            denominator = v
        if self.api == "keras2-legacy":  # no momentum: epsilon outside the square root
            p.sub_(g.mul(c["lr"]).div_(denominator.sqrt().add_(c["epsilon"])))
            return
        increment = g.mul(c["lr"]).div_(denominator.add(c["epsilon"]).sqrt())
        if group["momentum"] > 0:
            mom = state["momentum"]
            mom.copy_(mom.mul(c["momentum"]).add_(increment))
            p.sub_(mom)
        else:
            p.sub_(increment)

    def slot_views(self):
        views = {"v": ("velocity", 1.0)}
        if any(group["momentum"] > 0 for group in self.param_groups):
            views["m"] = ("momentum", _per_lr(self.param_groups[0]["last_lr"]))
        return views


class KerasAdagrad(KerasOptimizer):
    """Keras's ``Adagrad`` (defaults: initial accumulator 0.1, epsilon 1e-7): ``acc += g*g``,
    ``p -= lr*g / sqrt(acc + eps)`` (legacy: ``/ (sqrt(acc) + eps)``). The initial accumulator
    goes through float32 in Keras 3 (``ops.cast``), is exact in tf_keras. State:
    ``accumulator``."""

    slot_keys = {"v": "accumulator"}

    def __init__(self, params, learning_rate=0.001, initial_accumulator_value=0.1, epsilon=1e-7, **options):
        defaults = {"initial_accumulator_value": float(initial_accumulator_value), "epsilon": float(epsilon)}
        super().__init__(params, defaults, learning_rate, **options)

    def state_keys(self, group):
        return ("accumulator",)

    def _initial_state(self, p, group):
        value = group["initial_accumulator_value"]
        value = float(_real(p.dtype)(np.float32(value) if self.api == "keras3" else value))
        return {"accumulator": torch.full_like(p, value, memory_format=torch.preserve_format)}

    def constants(self, group, real, iterations, lr):
        return {"lr": float(lr), "epsilon": float(real(group["epsilon"]))}

    def _update(self, p, g, state, c, group):
        accumulator = state["accumulator"]
        accumulator.add_(g.mul(g))
        if self.api == "keras2-legacy":  # ResourceApplyAdagradV2
            p.sub_(g.mul(c["lr"]).div_(accumulator.sqrt().add_(c["epsilon"])))
        else:
            p.sub_(g.mul(c["lr"]).div_(accumulator.add(c["epsilon"]).sqrt()))


# --- reading a Keras optimizer -----------------------------------------------------------------

def keras_identity(keras_optimizer) -> tuple[str, str] | None:
    """``(api, kind)`` of a Keras optimizer whose class the twins reproduce (exactly that class,
    not a subclass), else None."""
    module = type(keras_optimizer).__module__ or ""
    if module.startswith("keras."):
        import keras

        o = keras.optimizers
        classes = {"keras3": {o.Adam: "adam", o.AdamW: "adamw", o.SGD: "sgd", o.RMSprop: "rmsprop",
                              o.Adagrad: "adagrad"}}
    elif module.startswith("tf_keras."):
        import tf_keras

        o, legacy = tf_keras.optimizers, tf_keras.optimizers.legacy
        classes = {"keras2": {o.Adam: "adam", o.AdamW: "adamw", o.SGD: "sgd", o.RMSprop: "rmsprop",
                              o.Adagrad: "adagrad"},
                   "keras2-legacy": {legacy.Adam: "adam", legacy.SGD: "sgd", legacy.RMSprop: "rmsprop",
                                     legacy.Adagrad: "adagrad"}}
    else:
        return None
    for api, table in classes.items():
        if type(keras_optimizer) in table:
            return api, table[type(keras_optimizer)]
    return None


def _where(keras_optimizer, api: str | None = None) -> str:
    """``Keras optimizer Adam (keras.optimizers)``: how a message names the optimizer."""
    name = type(keras_optimizer).__name__
    return f"Keras optimizer {name} ({_API_NAMES[api]})" if api else f"Keras optimizer {name}"


def _keras_learning_rate(keras_optimizer, api: str):
    """Keras's learning rate: ``(value or KerasSchedule, dtype of the variable)``; refuses what the
    twins cannot reproduce."""
    if api == "keras2-legacy":
        source = keras_optimizer._hyper.get("learning_rate")
    else:
        source = keras_optimizer._learning_rate
    schedule = _as_schedule(source)
    if schedule is not None:
        return KerasSchedule(schedule), "float32"
    if callable(source) and not hasattr(source, "numpy"):
        raise InputError(f"{_where(keras_optimizer, api)}: its learning rate is a callable "
                         f"{type(source).__name__}, not a built-in schedule; the harness cannot tell it "
                         "is a function of the step alone: use a number or one of Keras's schedules")
    value = np.asarray(source)
    if value.dtype.kind not in "fiu":
        raise InputError(f"{_where(keras_optimizer, api)}: learning rate {source!r} is not a number")
    if api == "keras2-legacy" and not hasattr(source, "numpy"):
        return float(value), "float32"  # a Python number until its float32 variable is created
    return float(value), value.dtype.name


def _as_schedule(source):
    """``source`` if it is a Keras learning-rate schedule of a built-in class, None if it is no
    schedule; refuses other schedules."""
    for name in ("keras", "tf_keras"):  # a schedule of either was made with it imported
        package = sys.modules.get(name)
        if package is None:
            continue
        schedules = package.optimizers.schedules
        if isinstance(source, schedules.LearningRateSchedule):
            if type(source) in [getattr(schedules, n) for n in SCHEDULES if hasattr(schedules, n)]:
                return source
            raise InputError(f"learning-rate schedule {type(source).__name__} is not one of Keras's built-in "
                             f"schedules ({', '.join(SCHEDULES)}): the harness cannot tell it is a function "
                             "of the step alone; use a built-in one")
    return None


def _hyper(keras_optimizer, api: str, name: str) -> float:
    """A hyper-parameter as a Python float (legacy: the float32 value of its variable, created
    or not yet)."""
    value = keras_optimizer._hyper[name] if api == "keras2-legacy" else getattr(keras_optimizer, name)
    if callable(value) and not hasattr(value, "numpy"):
        raise InputError(f"{_where(keras_optimizer, api)}: {name} is a callable; the twins need a number")
    try:
        value = float(np.asarray(value))
    except (TypeError, ValueError):
        raise InputError(f"{_where(keras_optimizer, api)}: {name}={value!r} is not a number") from None
    return f32(value) if api == "keras2-legacy" else value


def _refuse_unsupported(keras_optimizer, api: str) -> None:
    """One line for each setting the twins do not reproduce (the first one found)."""
    where = _where(keras_optimizer, api)
    if getattr(keras_optimizer, "use_ema", False):
        raise InputError(f"{where}: use_ema=True is not reproduced (the harness compares the trained "
                         "weights, not their moving average); turn it off")
    for name in ("gradient_accumulation_steps", "loss_scale_factor"):
        if getattr(keras_optimizer, name, None):
            value = getattr(keras_optimizer, name)
            raise InputError(f"{where}: {name}={value!r} is not reproduced; turn it off")
    if getattr(keras_optimizer, "_exclude_from_weight_decay", None) \
            or getattr(keras_optimizer, "_exclude_from_weight_decay_pattern", None) \
            or getattr(keras_optimizer, "_exclude_from_weight_decay_names", None):
        raise InputError(f"{where}: exclude_from_weight_decay is not reproduced (the twin cannot tell which "
                         "torch parameters those variables are); build the twin with parameter groups "
                         "(weight_decay=None for the excluded ones)")
    aggregator = getattr(keras_optimizer, "gradient_aggregator", None)
    if api == "keras2-legacy" and (getattr(keras_optimizer, "gradient_transformers", None) or
                                   getattr(aggregator, "__name__", "") != "all_reduce_sum_gradients"):
        raise InputError(f"{where}: gradient_transformers/gradient_aggregator are not reproduced; "
                         "remove them")


def twin_settings(keras_optimizer) -> tuple[type, dict]:
    """The twin class and its keyword arguments for ``keras_optimizer`` (without ``params``):
    what :func:`torch_optimizer_like` builds. Refuses (:class:`InputError`, one line) what the
    twins do not reproduce."""
    identity = keras_identity(keras_optimizer)
    if identity is None:
        raise InputError(f"{_where(keras_optimizer)} (module {type(keras_optimizer).__module__}) has no "
                         "torch twin: torch_optimizer_like reproduces Keras's own Adam, AdamW, SGD, RMSprop "
                         "and Adagrad (keras, tf_keras, tf_keras legacy), not subclasses or other "
                         "optimizers; build the torch optimizer yourself")
    api, kind = identity
    _refuse_unsupported(keras_optimizer, api)
    learning_rate, lr_dtype = _keras_learning_rate(keras_optimizer, api)

    def hyper(name):
        return _hyper(keras_optimizer, api, name)

    options = {"learning_rate": learning_rate, "lr_dtype": lr_dtype, "api": api}
    for name in ("clipnorm", "clipvalue", "global_clipnorm"):
        value = getattr(keras_optimizer, name, None)
        options[name] = None if value is None else float(value)
    if api == "keras2-legacy":
        options["decay"] = float(keras_optimizer._initial_decay)
    else:
        weight_decay = getattr(keras_optimizer, "weight_decay", None)
        options["weight_decay"] = None if weight_decay is None else float(weight_decay)
    if kind in ("adam", "adamw"):
        options.update(beta_1=hyper("beta_1"), beta_2=hyper("beta_2"), epsilon=float(keras_optimizer.epsilon),
                       amsgrad=bool(keras_optimizer.amsgrad),
                       adaptive_epsilon=bool(getattr(keras_optimizer, "adaptive_epsilon", False)))
        return (KerasAdamW if kind == "adamw" else KerasAdam), options  # AdamW: Adam + weight_decay
    if kind == "sgd":
        nesterov = keras_optimizer.nesterov
        momentum = hyper("momentum") if (api != "keras2-legacy" or keras_optimizer._momentum) else 0.0
        return KerasSGD, {**options, "momentum": momentum, "nesterov": bool(nesterov)}
    if kind == "rmsprop":
        momentum = hyper("momentum") if (api != "keras2-legacy" or keras_optimizer._momentum) else 0.0
        return KerasRMSprop, {**options, "rho": hyper("rho"), "momentum": momentum,
                              "epsilon": float(keras_optimizer.epsilon),
                              "centered": bool(keras_optimizer.centered)}
    initial = (keras_optimizer._initial_accumulator_value if api == "keras2-legacy"
               else keras_optimizer.initial_accumulator_value)
    return KerasAdagrad, {**options, "initial_accumulator_value": float(initial),
                          "epsilon": float(keras_optimizer.epsilon)}


def torch_optimizer_like(keras_optimizer, params):
    """The torch optimizer that computes what ``keras_optimizer`` computes, on ``params``.

    Keras's ``Adam`` -> :class:`KerasAdam`, ``AdamW`` -> :class:`KerasAdamW`, ``SGD`` ->
    :class:`KerasSGD`, ``RMSprop`` -> :class:`KerasRMSprop`, ``Adagrad`` -> :class:`KerasAdagrad`,
    of Keras 3, tf_keras or tf_keras's legacy optimizers, with its hyper-parameters, defaults
    included, its learning rate or schedule, clipping and weight decay (see the module
    docstring). Refuses
    (:class:`InputError`, one line) what it cannot reproduce. For TF1's all-float32 Adam (the
    tutorial's) use :class:`torch_port.optim.TFAdam` yourself.
    """
    cls, options = twin_settings(keras_optimizer)
    return cls(params, **options)


# --- slots: Keras's and torch's, in torch's units ----------------------------------------------

# quantity -> Keras 3 / tf_keras attribute (a list of slot variables) per kind, and the legacy
# optimizers' slot names
_KERAS_SLOT_LISTS = {"adam": {"m": "_momentums", "v": "_velocities"},
                     "adamw": {"m": "_momentums", "v": "_velocities"},
                     "sgd": {"m": "momentums"},
                     "rmsprop": {"m": "_momentums", "v": "_velocities"},
                     "adagrad": {"v": "_accumulators"}}
_LEGACY_SLOT_NAMES = {"adam": {"m": "m", "v": "v"}, "sgd": {"m": "momentum"},
                      "rmsprop": {"m": "momentum", "v": "rms"}, "adagrad": {"v": "accumulator"}}


def _has_momentum(keras_optimizer, api: str, kind: str) -> bool:
    if api == "keras2-legacy":
        return bool(keras_optimizer._momentum)
    momentum = float(keras_optimizer.momentum)
    return momentum != 0 if kind == "sgd" else momentum > 0


def keras_slots(optimizer, variables) -> dict[str, list]:
    """Keras's slot variables per quantity (``m``, ``v``), in the order of ``variables``:
    Adam's momentum and velocity, SGD's velocity (``m``), RMSprop's velocity (``v``) and
    momentum (``m``), Adagrad's accumulator (``v``); empty for other optimizers (their slots
    are not compared). Keras 3, tf_keras and legacy tf_keras optimizers."""
    identity = keras_identity(optimizer)
    if identity is None:
        return {}
    api, kind = identity
    names = dict((_LEGACY_SLOT_NAMES if api == "keras2-legacy" else _KERAS_SLOT_LISTS)[kind])
    if kind in ("sgd", "rmsprop") and not _has_momentum(optimizer, api, kind):
        names.pop("m")
    if api == "keras2-legacy":
        return {q: [optimizer.get_slot(v, name) for v in variables] for q, name in names.items()}
    if api == "keras3":
        index = [optimizer._get_variable_index(v) for v in variables]
    else:
        index = [optimizer._index_dict[optimizer._var_key(v)] for v in variables]
    return {q: [getattr(optimizer, name)[i] for i in index] for q, name in names.items()}


def keras_last_learning_rate(optimizer, api: str) -> float:
    """The learning rate of the step Keras has just taken (``iterations`` already counts it)."""
    step = max(int(np.asarray(optimizer.iterations)) - 1, 0)
    if api == "keras2":  # tf_keras keeps the step's value (a schedule's too) in its variable
        return float(np.asarray(optimizer.learning_rate))
    source = optimizer._hyper["learning_rate"] if api == "keras2-legacy" else optimizer._learning_rate
    schedule = _as_schedule(source)
    lr = KerasSchedule(schedule)(step) if schedule is not None else float(np.asarray(source))
    if api == "keras2-legacy" and optimizer._initial_decay:
        lr = lr / (1.0 + float(np.float32(optimizer._initial_decay)) * step)
    return lr


def keras_slot_scale(optimizer) -> dict[str, float]:
    """Factor turning each Keras slot into torch's units: SGD's velocity ``u`` -> ``-u / lr``,
    RMSprop's momentum (which includes ``lr``) -> ``mom / lr``; others as they are."""
    identity = keras_identity(optimizer)
    scale = {"m": 1.0, "v": 1.0}
    if identity is not None and identity[1] in ("sgd", "rmsprop"):
        lr = keras_last_learning_rate(optimizer, identity[0])
        scale["m"] = -_per_lr(lr) if identity[1] == "sgd" else _per_lr(lr)
    return scale


def _per_lr(lr: float) -> float:
    """``1 / lr``, the factor from a slot that includes the learning rate to torch's units; 1 for
    a zero learning rate (a schedule decayed to 0), where both sides then compare Keras's units."""
    return 1.0 / lr if lr else 1.0


def _torch_slot_views(optimizer) -> dict[str, tuple[str, float]]:
    """``{quantity: (state key, factor to torch's units)}`` of a torch optimizer."""
    if isinstance(optimizer, KerasOptimizer):
        return optimizer.slot_views()
    if isinstance(optimizer, TFAdam):
        return {"m": ("m", 1.0), "v": ("v", 1.0)}
    if isinstance(optimizer, (torch.optim.Adam, torch.optim.AdamW)):
        return {"m": ("exp_avg", 1.0), "v": ("exp_avg_sq", 1.0)}
    if isinstance(optimizer, torch.optim.SGD) and any(g["momentum"] for g in optimizer.param_groups):
        return {"m": ("momentum_buffer", 1.0)}
    if isinstance(optimizer, torch.optim.RMSprop):
        views = {"v": ("square_avg", 1.0)}
        if any(g["momentum"] for g in optimizer.param_groups):
            views["m"] = ("momentum_buffer", 1.0)
        return views
    if isinstance(optimizer, torch.optim.Adagrad):
        return {"v": ("sum", 1.0)}
    return {}


def _torch_slot_keys(optimizer) -> dict[str, str]:
    """``{quantity: state key}`` of the slots compared (see :func:`torch_slots`)."""
    return {quantity: key for quantity, (key, _) in _torch_slot_views(optimizer).items()}


def torch_slots(optimizer, params: dict) -> dict[str, dict]:
    """``{quantity: {name: array}}`` of a torch optimizer's slots, in torch's units (zeros where a
    parameter has no state yet)."""
    out = {}
    for quantity, (key, factor) in _torch_slot_views(optimizer).items():
        out[quantity] = {}
        for name, p in params.items():
            value = optimizer.state.get(p, {}).get(key)
            if value is None:
                out[quantity][name] = np.zeros(tuple(p.shape))
            else:
                value = value.detach().cpu().numpy()
                out[quantity][name] = value * value.dtype.type(factor) if factor != 1.0 else value.copy()
    return out


def load_torch_slots(optimizer, params: dict, slots: dict) -> None:
    """Overwrite a torch optimizer's slots from ``{quantity: {name: array}}`` in torch's units
    (teacher forcing)."""
    with torch.no_grad():
        for quantity, (key, factor) in _torch_slot_views(optimizer).items():
            if quantity not in slots:
                continue
            for name, p in params.items():
                value = np.asarray(slots[quantity][name])
                if factor != 1.0:
                    value = value / factor
                value = torch.as_tensor(value).to(p.device, p.dtype)
                state = optimizer.state[p]
                if key in state and state[key] is not None:
                    state[key].copy_(value)
                else:
                    state[key] = value.clone()


# --- notes: conventions in which the two sides differ ------------------------------------------

def _twin_notes(keras_optimizer, twin: KerasOptimizer) -> list[str]:
    identity = keras_identity(keras_optimizer)
    if identity is None:
        return [f"{_where(keras_optimizer)} against the twin {type(twin).__name__}: the Keras side is no "
                "optimizer the twins reproduce"]
    try:
        cls, options = twin_settings(keras_optimizer)
    except InputError as error:
        return [str(error)]
    notes = []
    if type(twin) not in ((KerasAdam, KerasAdamW) if cls in (KerasAdam, KerasAdamW) else (cls,)):
        notes.append(f"Keras {type(keras_optimizer).__name__} against {type(twin).__name__}: different "
                     f"algorithms; use {cls.__name__} (torch_optimizer_like)")
        return notes
    if twin.api != options["api"]:
        notes.append(f"the twin computes as api={twin.api!r}, the Keras optimizer is {options['api']!r} "
                     f"({_API_NAMES[options['api']]}): constants and formulas differ")
    group = twin.param_groups[0]
    mine = {**{k: group[k] for k in group if k not in ("params", "lr", "iterations", "last_lr")},
            "clipnorm": twin.clipnorm, "clipvalue": twin.clipvalue, "global_clipnorm": twin.global_clipnorm,
            "decay": twin.decay}
    for name, value in options.items():
        if name in ("api", "lr_dtype", "learning_rate") or name not in mine:
            continue
        if mine[name] != value and not (name == "decay" and not mine[name] and not value):
            notes.append(f"{name}: Keras {value!r}, the twin {mine[name]!r}")
    keras_lr = options["learning_rate"]
    if isinstance(keras_lr, KerasSchedule) != (twin.schedule is not None):
        notes.append("learning rate: one side has a schedule, the other not")
    elif twin.schedule is None and f32(group["lr"]) != f32(keras_lr):
        notes.append(f"learning rate: Keras {keras_lr!r}, the twin {group['lr']!r}")
    if cls is KerasRMSprop and options["centered"]:
        notes.append("RMSprop's average gradient (centered) is not compared: the comparison's slot "
                     "quantities are m and v")
    if cls in (KerasAdam, KerasAdamW) and options["amsgrad"]:
        notes.append("Adam's vhat (amsgrad) is not compared: the comparison's slot quantities are m and v")
    return notes


def optimizer_notes(keras_optimizer, torch_optimizer, dtype: str) -> list[str]:
    """Conventions in which the two optimizers differ (a note each), for the report."""
    if isinstance(torch_optimizer, KerasOptimizer):
        return _twin_notes(keras_optimizer, torch_optimizer)
    identity = keras_identity(keras_optimizer)
    keras_kind, torch_name = type(keras_optimizer).__name__, type(torch_optimizer).__name__
    if identity is None:
        return [f"Keras {keras_kind}: no twin known; optimizer slots are not compared"]
    kind = identity[1]
    try:
        cls, options = twin_settings(keras_optimizer)
    except InputError as error:
        return [str(error)]
    notes = []
    group = torch_optimizer.param_groups[0]
    keras_lr = options["learning_rate"]
    extras = [name for name in ("weight_decay", "clipnorm", "clipvalue", "global_clipnorm", "decay")
              if options.get(name)]
    if isinstance(keras_lr, KerasSchedule):
        extras.insert(0, "a learning-rate schedule")
    if extras:
        notes.append(f"Keras {keras_kind} uses {', '.join(extras)}, which torch {torch_name} does not "
                     f"reproduce: use {cls.__name__} (torch_optimizer_like)")
    if kind in ("adam", "adamw"):
        if isinstance(torch_optimizer, (torch.optim.Adam, torch.optim.AdamW)):
            notes.append("torch.optim.Adam adds epsilon to the bias-corrected sqrt(v); Keras (like TF1) to "
                         "the raw sqrt(v): use torch_optimizer_like (parity.optimizers.KerasAdam)")
        elif isinstance(torch_optimizer, TFAdam):
            if torch_optimizer.beta_powers != "keras":
                notes.append("TFAdam(beta_powers='tf1') keeps TF1's float32 beta-power accumulators; Keras "
                             "computes beta ** t: use beta_powers='keras'")
            constants = {name: options[name] for name in ("beta_1", "beta_2", "epsilon")}
            inexact = [k for k, v in constants.items() if dtype == "float64" and f32(v) != float(v)]
            if inexact:
                notes.append(f"Keras Adam's {', '.join(inexact)} are not float32 values; TFAdam rounds them "
                             "to float32 (TF1's convention), Keras does not: use torch_optimizer_like "
                             "(parity.optimizers.KerasAdam)")
        else:
            notes.append(f"Keras Adam against torch {torch_name}: different algorithms")
    elif kind == "sgd":
        if not isinstance(torch_optimizer, torch.optim.SGD):
            notes.append(f"Keras SGD against torch {torch_name}: different algorithms")
        else:
            momentum = options["momentum"]
            if f32(group["momentum"]) != f32(momentum) or group.get("dampening", 0):
                notes.append(f"momentum: Keras {momentum}, torch {group['momentum']} "
                             f"(dampening {group.get('dampening', 0)}; must be 0)")
            elif dtype == "float64" and group["momentum"] != f32(momentum):
                notes.append(f"momentum: Keras computes with float32({momentum}) (its cast of a Python "
                             f"float goes through float32), torch with {group['momentum']!r}: in float64 "
                             "give torch f32(momentum)")
            if bool(group.get("nesterov")) != options["nesterov"]:
                notes.append("nesterov differs")
            if group.get("weight_decay"):
                notes.append("torch.optim.SGD's weight_decay adds wd * p to the gradient; Keras decays the "
                             "weights apart from the gradient")
    elif kind in ("rmsprop", "adagrad") and isinstance(torch_optimizer,
                                                         (torch.optim.RMSprop, torch.optim.Adagrad)):
        notes.append(f"torch {torch_name} is not Keras {keras_kind}'s arithmetic (where epsilon goes, the "
                     f"initial accumulator, the constants' float32 roundings): use {cls.__name__} "
                     "(torch_optimizer_like)")
    else:
        notes.append(f"Keras {keras_kind} against torch {torch_name}: different algorithms")
    if not isinstance(keras_lr, KerasSchedule) and "lr" in group:
        if f32(group["lr"]) != f32(keras_lr):
            notes.append(f"learning rate: Keras {keras_lr!r} (a float32 variable), torch {group['lr']!r}")
        elif dtype == "float64" and group["lr"] != keras_lr and not isinstance(torch_optimizer, TFAdam):
            notes.append(f"learning rate: Keras computes with the float32 {keras_lr!r}, torch with "
                         f"{group['lr']!r}: in float64 give torch f32(lr)")
    return notes


def is_keras_adam(optimizer) -> bool:
    """Keras 3's Adam or AdamW (which squares an Embedding's sparse gradient slice by slice;
    tf_keras sums repeated rows first)."""
    identity = keras_identity(optimizer)
    return identity is not None and identity[0] == "keras3" and identity[1] in ("adam", "adamw")
