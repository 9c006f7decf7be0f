"""The idiomatic port's training loop without the overhead.

:func:`train` has the signature and hook protocol of :func:`torch_port.nn_model.train`. With
``adam_kernel="exact"`` (``--impl fast-exact``) it returns the readable loop's bits: it runs
the *same ATen kernels on the same operand layouts* as ``nn.Linear`` + ``F.cross_entropy`` +
``loss.backward()`` + ``TFAdam.step``, only without what surrounds them (where the readable
loop's time goes is measured in ``benchmarks/README.md``). With ``adam_kernel="fused"``
(``--impl fast``, the default of ``python -m torch_port.train``) TF1's Adam update runs as
one pass of torch's fused Adam kernel instead of ten (see :class:`FlatAdam`): the same
formula, other roundings (float64: ~1e-16; float32: ~1e-7), so its bits differ from the
readable loop's while its parity with TF1 stays within the stated tolerances.

What this loop does instead:

* data stays ``(examples, features)`` contiguous, as the GEMMs want it; each mini-batch is
  gathered with ``index_select`` into a preallocated ``(batch, features)`` buffer;
* forward and backward write into preallocated buffers (``out=``), with no autograd graph;
  the backward is written out as the ops autograd runs for this network
  (``AddmmBackward0``: ``dW = dZ.t().mm(A)``, ``dA = dZ.mm(W)``, ``db = dZ.sum(0)``;
  ``ReluBackward0``: ``threshold_backward``; ``cross_entropy``: ``nll_loss_backward`` then
  ``_log_softmax_backward_data``), so the gradients are autograd's to the bit;
* the parameters, gradients and both Adam moments live in one flat buffer each (the module's
  parameters and the optimizer's state are views into them), so TF1's Adam update is ten
  in-place passes over one buffer instead of twelve allocating passes per parameter
  (:func:`tf_adam_flat`), or one pass of the fused kernel;
* the batch costs go into a preallocated vector; the epoch cost is summed at the end of the
  epoch in the same order and dtype as the readable loop (one host sync per epoch, none per
  step).

Layouts: ``x_all`` (m, n_x); batch ``x`` (b, n_x); activations (b, n_h); logits (b, n_y);
``W`` (out, in) and ``b`` (out,) as in ``nn.Linear``.
"""

from __future__ import annotations

import contextlib

import numpy as np
import torch
from torch import nn

from torch_port.nn_model import (
    end_epoch,
    epoch_bar,
    force_state,
    report_accuracies,
    setup_training,
    step_record,
)
from torch_port.optim import TFAdam

_THRESHOLD_BACKWARD = torch.ops.aten.threshold_backward.grad_input
_NLL_LOSS_FORWARD = torch.ops.aten.nll_loss_forward.output
_NLL_LOSS_BACKWARD = torch.ops.aten.nll_loss_backward.grad_input
_MEAN = 1  # at::Reduction::Mean
_IGNORE_INDEX = -100  # F.cross_entropy's default


def tf_adam_flat(p, g, m, v, scratch, alpha: float, one_minus_b1: float, one_minus_b2: float,
                 eps: float) -> None:
    """TF1's Adam update in place on flat tensors, in TF1's formula order (as ``TFAdam.step``).

    ``m += (g - m) * (1 - b1)``; ``v += (g*g - v) * (1 - b2)``; ``p -= (m * alpha) / (sqrt(v) + eps)``.
    The last line is ``p.addcdiv_(m, sqrt(v) + eps, value=-alpha)``: ATen computes it as
    ``p + ((-alpha) * m) / d``, the same roundings (negation is exact). ``add_(alpha=)``,
    ``lerp_`` and ``addcmul_`` are *not* used: their CPU kernels fuse a multiply-add (one
    rounding instead of two), which changes the bits. ``scratch``: a tensor like ``p``.
    """
    torch.sub(g, m, out=scratch)
    scratch.mul_(one_minus_b1)
    m.add_(scratch)
    torch.mul(g, g, out=scratch)
    scratch.sub_(v)
    scratch.mul_(one_minus_b2)
    v.add_(scratch)
    torch.sqrt(v, out=scratch)
    scratch.add_(eps)
    p.addcdiv_(m, scratch, value=-alpha)


class FlatAdam:
    """Binds a :class:`TFAdam` (one param group) to flat parameter/gradient/moment buffers.

    After construction the parameters of ``params`` are views of :attr:`p`, their ``.grad``
    views of :attr:`g`, and the optimizer's ``state[p]["m"]``/``["v"]`` views of :attr:`m`
    and :attr:`v` (existing values are copied in, e.g. after ``load_state_dict``), so
    ``state_dict()``, ``adam_slots`` and ``load_adam_slots`` keep working. :meth:`step` is
    ``TFAdam.step`` on the flat buffers; the beta powers advance in the optimizer's group.

    ``kernel="exact"``: :func:`tf_adam_flat`, TFAdam's bits. ``kernel="fused"``: torch's fused
    Adam kernel (``torch._fused_adam_``, one pass, CPU and CUDA), which computes
    ``p -= lr / bc1 * m / (sqrt(v) / bc2 + eps)`` with ``bc1 = 1 - beta1**t`` and
    ``bc2 = sqrt(1 - beta2**t)`` from its step count ``t``. Handing it ``lr = alpha * bc1 / bc2``
    and ``eps = eps_tf1 / bc2`` makes that ``p -= alpha * m / (sqrt(v) + eps_tf1)``, TF1's update
    with TF1's own step size ``alpha`` (its float32 beta-power accumulators, or Keras's
    ``beta ** t``): the same formula up to round-off.
    """

    KERNELS = ("exact", "fused")

    def __init__(self, params: list[nn.Parameter], optimizer: TFAdam, kernel: str = "exact"):
        if not isinstance(optimizer, TFAdam) or len(optimizer.param_groups) != 1:
            raise ValueError("the fast path needs a TFAdam with one parameter group "
                             "(optimizer 'tf-adam' or 'keras-adam')")
        if kernel not in self.KERNELS:
            raise ValueError(f"adam_kernel must be one of {', '.join(self.KERNELS)}, got {kernel!r}")
        self.kernel = kernel
        self.optimizer, self.group = optimizer, optimizer.param_groups[0]
        self.p = torch.cat([q.detach().reshape(-1) for q in params])
        self.g = torch.zeros_like(self.p)
        self.m, self.v = torch.zeros_like(self.p), torch.zeros_like(self.p)
        self.scratch = torch.empty_like(self.p)
        offset = 0
        for q in params:
            size, shape = q.numel(), q.shape
            state = optimizer.state[q]
            for key, flat in (("m", self.m), ("v", self.v)):
                view = flat[offset:offset + size].view(shape)
                if key in state:
                    view.copy_(state[key])
                state[key] = view
            q.data = self.p[offset:offset + size].view(shape)
            q.grad = self.g[offset:offset + size].view(shape)
            offset += size

        # the fused kernel's step count (float32, as torch.optim.Adam keeps it), on the device
        self.kernel_step = torch.zeros((), dtype=torch.float32, device=self.p.device)

    def step(self) -> None:
        alpha, one_minus_b1, one_minus_b2, eps = self.optimizer.constants(self.group, self.p.dtype)
        if self.kernel == "exact":
            tf_adam_flat(self.p, self.g, self.m, self.v, self.scratch, alpha, one_minus_b1,
                         one_minus_b2, eps)
        else:
            beta1, beta2 = (float(np.float32(b)) for b in self.group["betas"])  # TF1's float32 betas
            t = self.group["step"] + 1
            bias1, bias2 = 1.0 - beta1 ** t, (1.0 - beta2 ** t) ** 0.5  # what the kernel computes
            self.kernel_step.fill_(t)
            torch._fused_adam_([self.p], [self.g], [self.m], [self.v], [], [self.kernel_step],
                               lr=alpha * bias1 / bias2, beta1=beta1, beta2=beta2, weight_decay=0.0,
                               eps=eps / bias2, amsgrad=False, maximize=False)
        self.optimizer.advance(self.group)


class FastStep:
    """One training step of a 3-layer ``nn.Linear`` MLP (ReLU, softmax cross-entropy) + TF1 Adam.

    ``net`` has ``fc1``, ``fc2``, ``fc3`` (any widths); ``x_all`` (m, n_x) and integer labels
    ``y_all`` (m,) on the parameters' device and dtype. Buffers for ``batch_size`` rows are
    allocated once. :meth:`run` takes a batch's row indices (1-D int64, at most ``batch_size``),
    a 0-dim tensor to write the batch cost into and, optionally, the batch's labels already
    gathered (a contiguous (b,) int64 tensor; else they are gathered from ``y_all``).
    Afterwards :attr:`logits` (b, n_y) holds the batch's logits and the parameters' ``.grad``
    the gradients the update used.
    """

    def __init__(self, net: nn.Module, optimizer: TFAdam, x_all: torch.Tensor, y_all: torch.Tensor,
                 batch_size: int, adam_kernel: str = "exact"):
        layers = [net.fc1, net.fc2, net.fc3]
        self.adam = FlatAdam([t for layer in layers for t in (layer.weight, layer.bias)], optimizer,
                             adam_kernel)
        # detached aliases of the (now flat-buffer) parameters: no autograd bookkeeping per op
        self.weights = [layer.weight.detach() for layer in layers]
        self.biases = [layer.bias.detach() for layer in layers]
        self.weight_grads = [layer.weight.grad for layer in layers]
        self.bias_grads = [layer.bias.grad.view(1, -1) for layer in layers]  # (1, out): sum keepdim
        self.x_all, self.y_all = x_all.contiguous(), y_all.contiguous()
        b = min(batch_size, self.x_all.shape[0])
        kw = {"dtype": self.x_all.dtype, "device": self.x_all.device}
        widths = [layer.out_features for layer in layers]
        self.x = torch.empty(b, self.x_all.shape[1], **kw)
        self.y = torch.empty(b, dtype=torch.int64, device=self.x_all.device)
        self.z = [torch.empty(b, w, **kw) for w in widths]  # Z1, Z2 (ReLU in place: A1, A2), Z3
        self.dz = [torch.empty(b, w, **kw) for w in widths]
        self.da = [torch.empty(b, w, **kw) for w in widths[:2]]
        self.log_probs = torch.empty(b, widths[2], **kw)
        self.d_log_probs = torch.empty(b, widths[2], **kw)
        self.total_weight = torch.empty((), **kw)
        self.one = torch.ones((), **kw)
        self.logits = self.z[2]
        self._cache: dict[int, tuple] = {}

    def _views(self, n: int) -> tuple:
        """The first ``n`` rows of every batch buffer (made once per batch size)."""
        if n not in self._cache:
            rows = [t[:n] for t in (self.x, self.y, *self.z, *self.dz, *self.da, self.log_probs,
                                    self.d_log_probs)]
            self._cache[n] = tuple(rows)
        return self._cache[n]

    def run(self, index: torch.Tensor, cost: torch.Tensor, y: torch.Tensor | None = None) -> None:
        x, y_buffer, z1, z2, z3, dz1, dz2, dz3, da1, da2, log_probs, d_log_probs = self._views(index.shape[0])
        (W1, W2, W3), (b1, b2, b3) = self.weights, self.biases
        (dW1, dW2, dW3), (db1, db2, db3) = self.weight_grads, self.bias_grads
        torch.index_select(self.x_all, 0, index, out=x)
        if y is None:
            y = torch.index_select(self.y_all, 0, index, out=y_buffer)
        # forward: F.linear on 2-D input is addmm(bias, input, weight.t()); ReLU in place
        a1 = torch.relu_(torch.addmm(b1, x, W1.t(), out=z1))
        a2 = torch.relu_(torch.addmm(b2, a1, W2.t(), out=z2))
        torch.addmm(b3, a2, W3.t(), out=z3)
        self.logits = z3
        # F.cross_entropy(z3, y) = nll_loss(log_softmax(z3, 1), y), mean reduction
        torch._log_softmax(z3, 1, False, out=log_probs)
        _NLL_LOSS_FORWARD(log_probs, y, None, _MEAN, _IGNORE_INDEX,
                          output=cost, total_weight=self.total_weight)
        # backward, op for op as autograd runs it. AddmmBackward0 for addmm(b, a, W.t()):
        # W.t() is column-major, so dW = dz.t().mm(a) (autograd transposes it twice); a is
        # row-major, so da = dz.mm(W); db = dz.sum(0) (sum_to the bias's shape).
        _NLL_LOSS_BACKWARD(self.one, log_probs, y, None, _MEAN, _IGNORE_INDEX, self.total_weight,
                           grad_input=d_log_probs)
        torch._log_softmax_backward_data(d_log_probs, log_probs, 1, log_probs.dtype, out=dz3)
        torch.mm(dz3.t(), a2, out=dW3)
        torch.sum(dz3, 0, keepdim=True, out=db3)
        torch.mm(dz3, W3, out=da2)
        _THRESHOLD_BACKWARD(da2, a2, 0, grad_input=dz2)  # ReluBackward0, on the ReLU's output
        torch.mm(dz2.t(), a1, out=dW2)
        torch.sum(dz2, 0, keepdim=True, out=db2)
        torch.mm(dz2, W2, out=da1)
        _THRESHOLD_BACKWARD(da1, a1, 0, grad_input=dz1)
        torch.mm(dz1.t(), x, out=dW1)
        torch.sum(dz1, 0, keepdim=True, out=db1)
        self.adam.step()


def train(X_train, Y_train, X_test, Y_test, learning_rate=0.0001, num_epochs=1500,
          minibatch_size=32, print_cost=True, *, dtype="float32", seed=3,
          initial_parameters=None, hook=None, device="cpu", optimizer="tf-adam",
          epoch_cost="original", resume=None, on_epoch_end=None, progress=False, adam_kernel="exact",
          flush_denormal=False):
    """:func:`torch_port.nn_model.train` without its overhead; same arguments, same results
    (bit for bit with ``adam_kernel="exact"``; to round-off with ``"fused"``, see :class:`FlatAdam`).

    ``flush_denormal=True`` trains with denormal floats flushed to zero, as TensorFlow's CPU
    kernels run (TF sets flush-to-zero in its compute threads): after about 20 epochs some of
    Adam's ``v`` and of the gradients fall below float32's normal range (1.2e-38), and arithmetic
    on denormals made an epoch 3x slower here. Flushing changes values only below 1e-38, where
    they cannot move an update (``sqrt(v)`` sits next to epsilon = 1e-8). It applies to the
    calling thread and to the intra-op threads torch starts afterwards (``python -m
    torch_port.train`` sets it at start-up, before any); it is turned off again on return.

    ``optimizer`` must be ``"tf-adam"`` or ``"keras-adam"`` (``"adam"``, torch's own Adam,
    has no fast path: use ``nn_model.train``). ``hook``, ``resume`` and ``on_epoch_end``
    work as there (the hook's ``output`` is the logits (m, 6), dicts keyed by ``state_dict``
    names); the optimizer handed to ``on_epoch_end`` is a real :class:`TFAdam` whose state
    is views of the flat buffers, so checkpoints are the same.
    """
    if optimizer not in ("tf-adam", "keras-adam"):
        raise ValueError(f"the fast path implements TF1's Adam only ('tf-adam', 'keras-adam'), "
                         f"not {optimizer!r}; use torch_port.nn_model.train")
    with denormals_flushed(flush_denormal):
        setup = setup_training(X_train, Y_train, learning_rate, minibatch_size, dtype=dtype, seed=seed,
                               initial_parameters=initial_parameters, device=device, optimizer=optimizer,
                               epoch_cost=epoch_cost, resume=resume)
        net, adam, dataset, sampler = setup.net, setup.optimizer, setup.dataset, setup.sampler
        costs = setup.costs
        fast = FastStep(net, adam, dataset.x, dataset.y, minibatch_size, adam_kernel)
        named = setup.named
        batch_costs = torch.empty(len(sampler), dtype=setup.dtype, device=device)
        cost_slots = batch_costs.unbind(0)  # 0-dim views, made once
        labels = torch.empty_like(dataset.y)  # the epoch's labels in batch order
        step = 0

        bar = epoch_bar(setup, num_epochs, progress)
        for epoch in bar:
            sampler.set_epoch(epoch)
            batches = list(sampler)
            sizes = [len(batch) for batch in batches]
            order = torch.from_numpy(np.concatenate(batches)).to(device)
            torch.index_select(dataset.y, 0, order, out=labels)
            for k, (index, y) in enumerate(zip(order.split(sizes), labels.split(sizes))):
                cost = cost_slots[k]
                fast.run(index, cost, y)
                if hook is not None:
                    step += 1
                    forced = hook(step_record(epoch, step, batches[k], fast.logits, cost, named, adam))
                    if forced:
                        force_state(named, adam, forced)
            value = _epoch_cost(batch_costs[:len(batches)], setup.divisor)
            end_epoch(epoch, value, batch_costs[:len(batches)], bar, print_cost, costs, on_epoch_end,
                      net.tutorial_parameters, adam)

        report_accuracies(net, X_train, Y_train, X_test, Y_test, setup.dtype, device, print_cost)
        return net.tutorial_parameters(), costs


@contextlib.contextmanager
def denormals_flushed(enabled: bool):
    """Flush denormal floats to zero while the block runs (see :func:`train`); no-op if not ``enabled``."""
    if not enabled:
        yield
        return
    torch.set_flush_denormal(True)
    try:
        yield
    finally:
        torch.set_flush_denormal(False)


def _epoch_cost(batch_costs: torch.Tensor, divisor: int) -> float:
    """``sum(cost_k / divisor)`` accumulated left to right in the costs' dtype, as the readable
    loop's ``running += loss / divisor`` does (a tensor sum would add in another order)."""
    shares = (batch_costs / divisor).cpu().numpy()
    running = shares[0]
    for share in shares[1:]:
        running = running + share  # NumPy scalars of the same dtype: one IEEE rounding each
    return float(running)
