"""The floor: the time of a training step's unavoidable work, at the tutorial's shapes.

Per mini-batch of ``b`` examples (``b`` = 32, and 24 for the last of 1080), in torch, on
tensors allocated once, with nothing else in the loop:

* the GEMMs of the forward pass: ``Z_l = addmm(b_l, A_{l-1}, W_l.t())`` for the three layers
  (``A_0 = X`` (b, 12288), ``W_l`` (out, in));
* the GEMMs of the backward pass: ``dW_l = dZ_l.t() @ A_{l-1}`` for the three layers and
  ``dA_{l-1} = dZ_l @ W_l`` for l = 2, 3 (no gradient for the input ``X``);
* TF1's Adam update over all parameters, in place on flat buffers, in one pass of torch's fused
  Adam kernel with TF1's step size folded in, as the default fast path runs it
  (:class:`torch_port.fast.FlatAdam`); the ten passes that keep TFAdam's bits
  (:func:`torch_port.fast.tf_adam_flat`) are timed as a part, ``adam_ten_passes``.

Not in the floor (each implementation pays for it on top): gathering the mini-batch from the
data set, ReLU, softmax cross-entropy and its gradient, the bias-gradient sums, the epoch
cost, and every Python or framework cost. The gather is memory traffic every implementation
must pay (each epoch reads the whole (1080, 12288) data set, 53 MB in float32, in a new
order), so :func:`measure` also reports ``floor_with_gather``: the floor plus an
``index_select`` of each mini-batch's rows from a data set of the real size.

The operand layouts are the ones ``nn.Linear`` and autograd use (and ``torch_port.fast``
reproduces). How far the floor is from the hardware is :mod:`benchmarks.limit`'s question.
"""

from __future__ import annotations

import time

import torch

from torch_port.fast import tf_adam_flat


def epoch_batches(m: int, batch_size: int) -> list[int]:
    """Mini-batch sizes of one epoch: ``m // b`` full batches and the remainder, if any."""
    sizes = [batch_size] * (m // batch_size)
    return sizes + ([m % batch_size] if m % batch_size else [])


class Floor:
    """Preallocated operands for one MLP shape; :meth:`gemms`, :meth:`adam`, :meth:`step`."""

    def __init__(self, widths=(12288, 25, 12, 6), batch_size: int = 32, dtype=torch.float32,
                 device="cpu", seed: int = 0, m: int = 1080):
        gen = torch.Generator(device="cpu").manual_seed(seed)
        kw = {"dtype": dtype, "device": device}

        def randn(*shape, scale=0.01):
            return (torch.randn(*shape, generator=gen, dtype=dtype) * scale).to(device)

        pairs = list(zip(widths[:-1], widths[1:]))
        sizes = [n_out * n_in + n_out for n_in, n_out in pairs]
        self.p = randn(sum(sizes))
        self.g, self.m = torch.zeros(sum(sizes), **kw), torch.zeros(sum(sizes), **kw)
        self.v, self.scratch = torch.zeros(sum(sizes), **kw), torch.empty(sum(sizes), **kw)
        self.W, self.b, self.dW = [], [], []
        offset = 0
        for (n_in, n_out), size in zip(pairs, sizes):
            self.W.append(self.p[offset:offset + n_out * n_in].view(n_out, n_in))
            self.dW.append(self.g[offset:offset + n_out * n_in].view(n_out, n_in))
            self.b.append(self.p[offset + n_out * n_in:offset + size])
            offset += size
        self.x = randn(batch_size, widths[0], scale=1.0)
        self.examples, self.x_all = m, None  # (m, n_x) data set for gather(), made on first use
        self.order, self.position = None, 0
        self.z = [torch.empty(batch_size, w, **kw) for w in widths[1:]]
        self.dz = [randn(batch_size, w) for w in widths[1:]]
        self.da = [torch.empty(batch_size, w, **kw) for w in widths[1:-1]]
        self.device = device
        self.step_count = torch.ones((), dtype=torch.float32, device=device)

    def gemms(self, n: int) -> None:
        a = [self.x[:n]] + [z[:n] for z in self.z[:-1]]
        for l, (W, b) in enumerate(zip(self.W, self.b)):
            torch.addmm(b, a[l], W.t(), out=self.z[l][:n])
        for l in reversed(range(len(self.W))):
            torch.mm(self.dz[l][:n].t(), a[l], out=self.dW[l])
            if l > 0:
                torch.mm(self.dz[l][:n], self.W[l], out=self.da[l - 1][:n])

    def adam(self) -> None:
        """One pass of the fused kernel, as ``FlatAdam(kernel="fused")`` calls it."""
        torch._fused_adam_([self.p], [self.g], [self.m], [self.v], [], [self.step_count],
                           lr=1e-4, beta1=0.9, beta2=0.999, weight_decay=0.0, eps=1e-8,
                           amsgrad=False, maximize=False)

    def adam_ten_passes(self) -> None:
        """TFAdam's bits: :func:`torch_port.fast.tf_adam_flat`."""
        tf_adam_flat(self.p, self.g, self.m, self.v, self.scratch, 1e-6, 0.1, 0.001, 1e-8)

    def step(self, n: int) -> None:
        self.gemms(n)
        self.adam()

    def gather(self, n: int) -> None:
        """Copy the next ``n`` rows of a shuffled (m, n_x) data set into the batch buffer."""
        if self.x_all is None:
            gen = torch.Generator().manual_seed(1)
            self.x_all = torch.rand(self.examples, self.x.shape[1], generator=gen, dtype=self.x.dtype)
            self.x_all, self.order = self.x_all.to(self.device), torch.randperm(self.examples, generator=gen)
            self.order = self.order.to(self.device)
        if self.position + n > self.order.shape[0]:
            self.position = 0
        torch.index_select(self.x_all, 0, self.order[self.position:self.position + n], out=self.x[:n])
        self.position += n

    def step_with_gather(self, n: int) -> None:
        self.gather(n)
        self.step(n)

    def sync(self) -> None:
        if str(self.device).startswith("cuda"):
            torch.cuda.synchronize()


def time_epochs(floor: Floor, work, batches: list[int], epochs: int) -> list[float]:
    """Seconds for each of ``epochs`` passes of ``work(n)`` over the epoch's batch sizes."""
    out = []
    work(batches[0])  # warm-up: first-call allocations inside the BLAS
    floor.sync()
    for _ in range(epochs):
        start = time.perf_counter()
        for n in batches:
            work(n)
        floor.sync()
        out.append(time.perf_counter() - start)
    return out


def measure(m: int = 1080, batch_size: int = 32, widths=(12288, 25, 12, 6), dtype=torch.float32,
            device="cpu", epochs: int = 5) -> dict[str, list[float]]:
    """Seconds per epoch (one value per pass) of the floor and of its parts.

    Keys: ``floor`` (GEMMs + Adam, per step), ``floor_with_gather``, ``gemms``, ``adam``
    (one fused pass), ``adam_ten_passes``.
    """
    floor = Floor(widths, batch_size, dtype, device, m=m)
    batches = epoch_batches(m, batch_size)
    return {
        "floor": time_epochs(floor, floor.step, batches, epochs),
        "floor_with_gather": time_epochs(floor, floor.step_with_gather, batches, epochs),
        "gemms": time_epochs(floor, floor.gemms, batches, epochs),
        "adam": time_epochs(floor, lambda n: floor.adam(), batches, epochs),
        "adam_ten_passes": time_epochs(floor, lambda n: floor.adam_ten_passes(), batches, epochs),
    }
