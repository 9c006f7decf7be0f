"""How time per epoch grows with the hidden width and the batch size (``--scaling``).

For each shape the torch port's fast step (:class:`torch_port.fast.FastStep`), a plain
autograd step (``nn.Module`` forward, ``F.cross_entropy``, ``backward()``, ``TFAdam.step``,
the mini-batch gathered with ``index_select``) and the floor (:mod:`benchmarks.floor`) each
run whole epochs over random data of the tutorial's size (m = 1080, 12288 features); the
table shows the best epoch of each and the ratios. Where ``fast / floor`` is near 1 the port
is bound by arithmetic; where ``autograd / fast`` is large, by per-step overhead.

Shapes: the first hidden width ``n_h1`` in ``WIDTHS`` at batch 32, then batch sizes in
``BATCHES`` at width 25 (the other widths stay 12 and 6).
"""

from __future__ import annotations

import time

import torch
import torch.nn.functional as F

from benchmarks.floor import Floor, epoch_batches, time_epochs
from torch_port.fast import FastStep
from torch_port.nn_model import SignsNet
from torch_port.optim import TFAdam

WIDTHS = (25, 100, 400, 1600)
BATCHES = (32, 128, 512, 1080)


def _problem(m, n_x, n_h1, dtype, device, seed=0):
    gen = torch.Generator().manual_seed(seed)
    x = torch.rand(m, n_x, generator=gen, dtype=dtype).to(device)
    y = torch.randint(0, 6, (m,), generator=gen).to(device)
    torch.manual_seed(seed)
    net = SignsNet(n_x, n_h1, 12, 6).to(device=device, dtype=dtype)
    return x, y, net


def _sync(device) -> None:
    if str(device).startswith("cuda"):
        torch.cuda.synchronize()


def time_fast(m, n_x, n_h1, batch_size, dtype, device, epochs) -> list[float]:
    x, y, net = _problem(m, n_x, n_h1, dtype, device)
    step = FastStep(net, TFAdam(net.parameters(), lr=1e-4), x, y, batch_size)
    sizes = epoch_batches(m, batch_size)
    costs = torch.empty(len(sizes), dtype=dtype, device=device)
    slots, labels = costs.unbind(0), torch.empty_like(y)
    order = torch.randperm(m).to(device)
    out = []
    for epoch in range(epochs + 1):  # the first epoch is a warm-up
        start = time.perf_counter()
        torch.index_select(y, 0, order, out=labels)  # as torch_port.fast.train does
        for k, (index, batch_y) in enumerate(zip(order.split(sizes), labels.split(sizes))):
            step.run(index, slots[k], batch_y)
        costs.sum().item()
        if epoch:
            out.append(time.perf_counter() - start)
    return out


def time_autograd(m, n_x, n_h1, batch_size, dtype, device, epochs) -> list[float]:
    x, y, net = _problem(m, n_x, n_h1, dtype, device)
    adam = TFAdam(net.parameters(), lr=1e-4)
    order = torch.randperm(m).to(device)
    out = []
    for epoch in range(epochs + 1):
        start = time.perf_counter()
        running = 0.0
        for begin in range(0, m, batch_size):
            index = order[begin:begin + batch_size]
            adam.zero_grad()
            loss = F.cross_entropy(net(x.index_select(0, index)), y.index_select(0, index))
            loss.backward()
            adam.step()
            running += loss.detach()
        running.item()
        if epoch:
            out.append(time.perf_counter() - start)
    return out


def time_floor(m, n_x, n_h1, batch_size, dtype, device, epochs) -> list[float]:
    floor = Floor((n_x, n_h1, 12, 6), batch_size, dtype, device)
    return time_epochs(floor, floor.step, epoch_batches(m, batch_size), epochs)


def measure(dtype=torch.float32, device="cpu", epochs: int = 2, m: int = 1080, n_x: int = 12288,
            widths=WIDTHS, batches=BATCHES, progress=None) -> list[dict]:
    """One row per shape: best seconds per epoch of floor, fast and autograd steps."""
    shapes = list(dict.fromkeys([(w, 32) for w in widths] + [(25, b) for b in batches]))
    rows = []
    for n_h1, batch_size in shapes:
        row = {"n_h1": n_h1, "batch_size": batch_size,
               "steps_per_epoch": len(epoch_batches(m, batch_size))}
        for key, timer in (("floor", time_floor), ("fast", time_fast), ("autograd", time_autograd)):
            row[key] = min(timer(m, n_x, n_h1, batch_size, dtype, device, epochs))
            _sync(device)
        if progress:
            progress(f"scaling: n_h1={n_h1:<5} batch={batch_size:<5} floor {row['floor']:.4f} s  "
                     f"fast {row['fast']:.4f} s  autograd {row['autograd']:.4f} s per epoch")
        rows.append(row)
    return rows
