"""The benchmark's table (tabulate) and JSON document, and the machine description."""

from __future__ import annotations

import os
import platform
import sys

import numpy as np
import torch
from tabulate import tabulate

TF1 = "tf1"


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info(device: str) -> dict:
    tf = sys.modules.get("tensorflow")
    info = {
        "cpu_model": cpu_model(),
        "cores": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "tensorflow": getattr(tf, "__version__", None),
        "device": device,
    }
    try:
        info["load_average"] = list(os.getloadavg())
    except OSError:
        pass
    if device.startswith("cuda"):
        info["cuda_device"] = torch.cuda.get_device_name(device)
        info["cuda_version"] = torch.version.cuda
    return info


def ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def table(results: list, floor, reference: str | None, extra_floors: tuple = (),
          limit: dict | None = None) -> str:
    """One row per implementation plus the floor and the physical limit; ratios use the best
    (min) seconds per epoch.

    ``x TF1`` needs the ``tf1`` row; ``reference`` names the row the parameters are compared to;
    ``limit``: :func:`benchmarks.limit.measure`'s figures.
    """
    ref = next((r for r in results if r.name == TF1), None)
    bound = limit["seconds_per_epoch"] if limit else None
    headers = ["implementation", "device", "s/epoch min", "s/epoch median", "steps/s",
               "x TF1", "x floor", "x limit", "final cost", "rel. diff vs " + (reference or "-")]
    rows = []
    for r in results:
        rows.append([r.name, r.device, r.best, r.median, r.steps_per_epoch / r.best,
                     ratio(r.best, ref.best if ref else None), ratio(r.best, floor.best if floor else None),
                     ratio(r.best, bound), r.final_cost, getattr(r, "difference", None)])
    for r in ((floor,) if floor is not None else ()) + tuple(extra_floors):
        rows.append([r.name, r.device, r.best, r.median, r.steps_per_epoch / r.best,
                     ratio(r.best, ref.best if ref else None), ratio(r.best, floor.best),
                     ratio(r.best, bound), None, None])
    if limit:
        device = floor.device if floor is not None else "-"
        rows.append(["physical limit", device, bound, None, limit["steps"] / bound,
                     ratio(bound, ref.best if ref else None), ratio(bound, floor.best if floor else None),
                     1.0, None, None])
    return tabulate(rows, headers=headers,
                    floatfmt=("", "", ".4f", ".4f", ".0f", ".3f", ".2f", ".2f", ".6f", ".1e"), missingval="-")


def scaling_table(rows: list[dict]) -> str:
    headers = ["n_h1", "batch", "steps/epoch", "floor s/epoch", "fast s/epoch", "autograd s/epoch",
               "fast / floor", "autograd / fast"]
    body = [[r["n_h1"], r["batch_size"], r["steps_per_epoch"], r["floor"], r["fast"], r["autograd"],
             r["fast"] / r["floor"], r["autograd"] / r["fast"]] for r in rows]
    return tabulate(body, headers=headers, floatfmt=("", "", "", ".4f", ".4f", ".4f", ".2f", ".2f"))


def document(results: list, floor, floor_parts: dict, reference: str | None, machine: dict,
             settings: dict, skipped: dict, scaling: list | None, floor_with_gather=None,
             limit: dict | None = None) -> dict:
    """The JSON document: the table's figures, per run seconds, machine and settings."""
    ref = next((r for r in results if r.name == TF1), None)
    bound = limit["seconds_per_epoch"] if limit else None

    def figures(r) -> dict:
        return {"device": r.device, "seconds_per_epoch": r.best, "seconds_per_epoch_min": r.best,
                "seconds_per_epoch_median": r.median, "seconds_per_epoch_runs": r.run_seconds,
                "epochs_measured": len(r.epoch_seconds), "steps_per_epoch": r.steps_per_epoch,
                "steps_per_second": r.steps_per_epoch / r.best,
                "ratio_to_tf1": ratio(r.best, ref.best if ref else None),
                "ratio_to_floor": ratio(r.best, floor.best if floor else None),
                "ratio_to_limit": ratio(r.best, bound)}

    implementations = {}
    for r in results:
        implementations[r.name] = dict(figures(r), final_cost=r.final_cost,
                                       max_rel_param_diff_vs_reference=getattr(r, "difference", None),
                                       warmup_included=r.warmup_included)
    out = {"machine": machine, "settings": settings, "reference": reference,
           "implementations": implementations, "skipped": skipped}
    if floor is not None:
        out["floor"] = dict(figures(floor), parts_seconds_per_epoch_min=
                            {k: min(v) for k, v in floor_parts.items()},
                            definition="GEMMs of forward and backward + TF1's Adam in one fused pass, "
                            "preallocated tensors; see benchmarks/floor.py")
        if floor_with_gather is not None:
            out["floor_with_gather"] = figures(floor_with_gather)
    if limit is not None:
        out["limit"] = dict(limit, definition="max(FLOPs / peak GEMM rate, data bytes / stream "
                            "bandwidth + Adam bytes / working-set bandwidth), measured in this run; "
                            "see benchmarks/limit.py")
    if scaling is not None:
        out["scaling"] = scaling
    return out
