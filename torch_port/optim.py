"""Adam as TensorFlow 1.x computes it, as a ``torch.optim.Optimizer``.

``torch.optim.Adam`` and TF1's ``AdamOptimizer`` differ in where epsilon goes:

* torch: ``p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)``
* TF1:   ``lr_t = lr * sqrt(1 - b2^t) / (1 - b1^t)``; ``p -= lr_t * m / (sqrt(v) + eps)``

i.e. TF1 adds epsilon to the *un-corrected* ``sqrt(v)``, which makes it act about
``1 / sqrt(1 - b2^t)`` times larger (about 30x at step 1). To match TF1 to round-off the
class also copies TF1's arithmetic: hyper-parameters are float32 constants cast to the
parameter dtype (lr 1e-4 becomes 9.99999974737875e-05 in float64); ``beta1_power`` and
``beta2_power`` are float32 accumulators multiplied by beta after each step (not ``beta**t``);
the moments are updated as ``m += (g - m) * (1 - b1)`` and ``v += (g*g - v) * (1 - b2)``; the
update is ``(m * lr_t) / (sqrt(v) + eps)``.

``beta_powers="keras"`` computes ``beta ** t`` with ``pow`` in the parameter dtype instead, as
Keras 3's ``keras.optimizers.Adam`` does (with TF1's float32-rounded hyper-parameters passed
in, as ``tf_original.keras_model`` does, the rest of the formula is the same).

State per parameter: ``m`` and ``v`` (TF's slot names); per group: ``beta1_power``,
``beta2_power`` (float32 values held as Python floats) and ``step``.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.optim import Optimizer

from torch_port.dtypes import dtype_name


def _plain(method):
    """The function under a ``functools.wraps`` decorator (the method itself if undecorated)."""
    return getattr(method, "__wrapped__", method)


class PlainOptimizer(Optimizer):
    """A ``torch.optim.Optimizer`` whose bookkeeping methods skip ``torch._disable_dynamo``.

    ``torch.optim.Optimizer`` wraps ``add_param_group``, ``zero_grad``, ``state_dict`` and
    ``load_state_dict`` in ``torch._disable_dynamo``, whose first call imports ``torch._dynamo``:
    about as long as ``import torch`` itself, before the first epoch. The optimizers of this
    project (``TFAdam`` and the harness's twins) are not meant for ``torch.compile``, so they
    call the plain functions (the wrappers' ``__wrapped__``).
    """

    def add_param_group(self, param_group: dict) -> None:
        _plain(Optimizer.add_param_group)(self, param_group)

    def zero_grad(self, set_to_none: bool = True) -> None:
        _plain(Optimizer.zero_grad)(self, set_to_none)

    def state_dict(self) -> dict:
        return _plain(Optimizer.state_dict)(self)

    def load_state_dict(self, state_dict: dict) -> None:
        _plain(Optimizer.load_state_dict)(self, state_dict)

    @staticmethod
    def evaluate(closure):
        """``step``'s closure, called with gradients on (``None`` without a closure)."""
        if closure is None:
            return None
        with torch.enable_grad():
            return closure()


class TFAdam(PlainOptimizer):
    """TF1 ``AdamOptimizer``'s update rule (defaults: lr 1e-3, betas 0.9/0.999, eps 1e-8)."""

    def __init__(self, params, lr=0.001, betas=(0.9, 0.999), eps=1e-8, beta_powers="tf1"):
        if beta_powers not in ("tf1", "keras"):
            raise ValueError(f"beta_powers must be 'tf1' or 'keras', got {beta_powers!r}")
        self.beta_powers = beta_powers
        if not lr > 0:
            raise ValueError(f"learning rate must be > 0, got {lr}")
        if not (0 <= betas[0] < 1 and 0 <= betas[1] < 1):
            raise ValueError(f"betas must be in [0, 1), got {betas}")
        defaults = {"lr": lr, "betas": betas, "eps": eps}
        super().__init__(params, defaults)
        for group in self.param_groups:
            self._init_group(group)

    @staticmethod
    def _init_group(group):
        # TF1 creates beta1_power/beta2_power as float32 variables initialised to beta. Kept
        # as Python floats holding float32 values, so state_dict() loads with weights_only=True.
        group.setdefault("beta1_power", float(np.float32(group["betas"][0])))
        group.setdefault("beta2_power", float(np.float32(group["betas"][1])))
        group.setdefault("step", 0)

    def constants(self, group, dtype: torch.dtype) -> tuple[float, float, float, float]:
        """``(alpha, 1 - beta1, 1 - beta2, eps)`` for ``group``'s next step, as TF1's kernel sees
        them: float32 values cast to the parameter dtype (``alpha``: the bias-corrected step size).
        Public for the fast path (``torch_port.fast``), which applies them to flat buffers."""
        real = np.dtype(dtype_name(dtype)).type
        lr, eps = real(np.float32(group["lr"])), real(np.float32(group["eps"]))
        beta1, beta2 = (real(np.float32(b)) for b in group["betas"])
        if self.beta_powers == "tf1":
            beta1_power = real(np.float32(group["beta1_power"]))
            beta2_power = real(np.float32(group["beta2_power"]))
        else:  # Keras 3: beta ** t, computed with pow in the variable's dtype
            t = real(group["step"] + 1)
            beta1_power, beta2_power = beta1 ** t, beta2 ** t
        one = real(1)
        alpha = lr * np.sqrt(one - beta2_power) / (one - beta1_power)
        return float(alpha), float(one - beta1), float(one - beta2), float(eps)

    @staticmethod
    def advance(group) -> None:
        """After a step, TF1's ``_finish``: the beta powers are multiplied by beta in float32."""
        for key, beta in (("beta1_power", group["betas"][0]), ("beta2_power", group["betas"][1])):
            group[key] = float(np.float32(np.float32(group[key]) * np.float32(beta)))
        group["step"] += 1

    @torch.no_grad()
    def step(self, closure=None):
        loss = self.evaluate(closure)
        for group in self.param_groups:
            self._init_group(group)
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            for p in params:
                state = self.state[p]
                if not state:
                    state["m"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                    state["v"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            alpha, one_minus_b1, one_minus_b2, eps = self.constants(group, params[0].dtype)
            grads = [p.grad for p in params]
            ms = [self.state[p]["m"] for p in params]
            vs = [self.state[p]["v"] for p in params]
            # m += (g - m) * (1 - b1);  v += (g*g - v) * (1 - b2)   (TF1's form, not b1*m + ...)
            deltas = torch._foreach_sub(grads, ms)
            torch._foreach_mul_(deltas, one_minus_b1)
            torch._foreach_add_(ms, deltas)
            deltas = torch._foreach_mul(grads, grads)
            torch._foreach_sub_(deltas, vs)
            torch._foreach_mul_(deltas, one_minus_b2)
            torch._foreach_add_(vs, deltas)
            # p -= (m * alpha) / (sqrt(v) + eps), written p.addcdiv_(m, d, value=-alpha), which
            # ATen computes as p + ((-alpha) * m) / d: the same roundings (negation is exact).
            # Not add_(alpha=)/lerp_/addcmul_: their kernels fuse a multiply-add (other bits).
            denominators = torch._foreach_sqrt(vs)
            torch._foreach_add_(denominators, eps)
            torch._foreach_addcdiv_(params, ms, denominators, value=-alpha)
            self.advance(group)
        return loss


OPTIMIZERS = ("tf-adam", "keras-adam", "adam")


def make_optimizer(name: str, params, lr: float):
    """``"tf-adam"`` (TF1's formula, the default), ``"keras-adam"`` (Keras 3's ``beta ** t``)
    or ``"adam"`` (``torch.optim.Adam``).

    Both use betas 0.9/0.999 and epsilon 1e-8, TF1's defaults (torch's own default is also 1e-8;
    Keras's is 1e-7).
    """
    if name == "tf-adam":
        return TFAdam(params, lr=lr, betas=(0.9, 0.999), eps=1e-8)
    if name == "keras-adam":
        return TFAdam(params, lr=lr, betas=(0.9, 0.999), eps=1e-8, beta_powers="keras")
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, betas=(0.9, 0.999), eps=1e-8)
    raise ValueError(f"unknown optimizer {name!r}: expected one of {', '.join(OPTIMIZERS)}")


def adam_slots(optimizer, params: dict) -> dict[str, dict[str, torch.Tensor]]:
    """The first and second moments ``{"m": {name: t}, "v": {name: t}}`` of either optimizer."""
    keys = ("m", "v") if isinstance(optimizer, TFAdam) else ("exp_avg", "exp_avg_sq")
    out = {"m": {}, "v": {}}
    for name, p in params.items():
        state = optimizer.state.get(p, {})
        for slot, key in zip(("m", "v"), keys):
            out[slot][name] = state[key] if key in state else torch.zeros_like(p)
    return out


def load_adam_slots(optimizer, params: dict, m: dict, v: dict) -> None:
    """Overwrite the moments of either optimizer from ``m`` and ``v`` (dicts of tensors/arrays)."""
    keys = ("m", "v") if isinstance(optimizer, TFAdam) else ("exp_avg", "exp_avg_sq")
    with torch.no_grad():
        for name, p in params.items():
            state = optimizer.state[p]
            for key, source in zip(keys, (m, v)):
                value = torch.as_tensor(np.asarray(source[name])).to(p.device, p.dtype)
                if key in state:
                    state[key].copy_(value.reshape(p.shape))
                else:
                    state[key] = value.reshape(p.shape).clone()
