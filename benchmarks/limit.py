"""The physical limit: the least time an epoch's arithmetic and memory traffic need on this machine.

Measured here, in one run beside the implementations (so a busy or throttled machine moves
both alike):

* **peak GEMM rate**: a large square ``mm`` (``PEAK_SIZE`` x ``PEAK_SIZE``) in the run's dtype,
  FLOP/s = 2 n^3 / seconds, best of a few;
* **memory bandwidth**: the best of ``copy_``, ``add_`` and an in-place ``mul_`` on buffers
  much larger than any cache (``STREAM_BYTES`` in all), bytes moved / seconds, best of a few;
  and the same on buffers as large, together, as Adam's working set (the flat parameters,
  gradients and moments), which stays in cache between steps, so the limit is not overstated
  for it.

What an epoch must do (``m`` examples in batches of ``b``, widths ``12288 -> 25 -> 12 -> 6``):

* FLOPs: the forward GEMMs ``2 b (sum in x out)``, the weight gradients (the same) and the
  input gradients of layers 2 and 3; everything else (ReLU, softmax, Adam's ~10 FLOPs per
  parameter) is memory-bound and counted as bytes;
* bytes from memory: the data set read once, in a new order (``m x 12288`` values); Adam's
  reads of parameters, gradients and both moments and its writes of three of them, every step.

The limit is ``max(FLOPs / peak, data bytes / bandwidth + Adam bytes / working-set
bandwidth)``: the roofline bound, as if arithmetic and traffic overlapped perfectly. No
implementation can beat it; the distance to it is what any implementation could still gain.
"""

from __future__ import annotations

import time

import torch

PEAK_SIZE = 2048
STREAM_BYTES = 512 * 1024 * 1024
REPEATS = 5


def _best_seconds(work, sync, repeats: int = REPEATS) -> float:
    work()  # warm-up
    sync()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        work()
        sync()
        best = min(best, time.perf_counter() - start)
    return best


def _sync_for(device) -> callable:
    return torch.cuda.synchronize if str(device).startswith("cuda") else (lambda: None)


def peak_gemm_flops(dtype=torch.float32, device="cpu", size: int = PEAK_SIZE) -> float:
    """FLOP/s of a large square matrix product on ``device`` in ``dtype``."""
    a = torch.rand(size, size, dtype=dtype, device=device)
    b = torch.rand(size, size, dtype=dtype, device=device)
    out = torch.empty(size, size, dtype=dtype, device=device)
    seconds = _best_seconds(lambda: torch.mm(a, b, out=out), _sync_for(device))
    return 2.0 * size ** 3 / seconds


def copy_bandwidth(num_bytes: int, device="cpu") -> float:
    """Bytes/s that simple streaming kernels reach on buffers of ``num_bytes`` in all: the best of
    ``copy_`` (one read, one write per element), ``add_`` (two reads, one write) and an in-place
    ``mul_`` (one read, one write). On a CPU ``copy_`` alone can be several times slower than
    the others on a cache-resident set, so the limit would be overstated by it."""
    n = max(1, num_bytes // 8)
    source = torch.rand(n, dtype=torch.float32, device=device)
    target = torch.rand(n, dtype=torch.float32, device=device)
    sync, size = _sync_for(device), n * 4
    kernels = ((lambda: target.copy_(source), 2), (lambda: target.add_(source), 3),
               (lambda: target.mul_(1.0), 2))
    return max(passes * size / _best_seconds(work, sync) for work, passes in kernels)


def epoch_work(m: int = 1080, batch_size: int = 32, widths=(12288, 25, 12, 6),
               dtype=torch.float32) -> dict:
    """The epoch's unavoidable FLOPs and bytes (see the module docstring)."""
    itemsize = torch.empty((), dtype=dtype).element_size()
    pairs = list(zip(widths[:-1], widths[1:]))
    parameters = sum(n_in * n_out + n_out for n_in, n_out in pairs)
    batches = [batch_size] * (m // batch_size) + ([m % batch_size] if m % batch_size else [])
    per_example = sum(2 * n_in * n_out for n_in, n_out in pairs) * 2 \
        + sum(2 * n_in * n_out for n_in, n_out in pairs[1:])
    return {"flops": float(m * per_example),
            "data_bytes": float(m * widths[0] * itemsize),
            "adam_bytes": float(len(batches) * 7 * parameters * itemsize),
            "adam_working_set_bytes": 4 * parameters * itemsize,
            "steps": len(batches)}


def measure(m: int = 1080, batch_size: int = 32, widths=(12288, 25, 12, 6), dtype=torch.float32,
            device="cpu", previous: dict | None = None) -> dict:
    """The limit (seconds per epoch) and what it is made of. With ``previous`` (this function's
    result from an earlier round), the best rate and bandwidths of both rounds count: a busy
    spell can only slow a measurement down, never speed it up."""
    work = epoch_work(m, batch_size, widths, dtype)
    peak = peak_gemm_flops(dtype, device)
    stream = copy_bandwidth(STREAM_BYTES, device)
    cached = copy_bandwidth(work["adam_working_set_bytes"], device)
    if previous is not None:
        peak = max(peak, previous["peak_gemm_flops"])
        stream = max(stream, previous["stream_bandwidth"])
        cached = max(cached, previous["working_set_bandwidth"])
    compute = work["flops"] / peak
    memory = work["data_bytes"] / stream + work["adam_bytes"] / cached
    return {"seconds_per_epoch": max(compute, memory), "compute_seconds": compute,
            "memory_seconds": memory, "peak_gemm_flops": peak, "stream_bandwidth": stream,
            "working_set_bandwidth": cached, **work}
